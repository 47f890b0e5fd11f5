//! The README's examples cannot rot: every TOML block in it is a valid stack.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use support::{hermes, repo};

#[test]
fn every_toml_block_of_the_readme_validates() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(!blocks.is_empty(), "the README shows no stack");
    let dir = tempfile::tempdir().unwrap();
    for (i, block) in blocks.iter().enumerate() {
        let path = dir.path().join(format!("readme-{i}.toml"));
        std::fs::write(&path, block).unwrap();
        let table: toml::Table = block.parse().unwrap();
        let envs: Vec<String> = table
            .get("environments")
            .and_then(|e| e.as_array())
            .map_or_else(
                || vec!["default".to_owned()],
                |a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                },
            );
        for env in envs {
            let out = hermes(&["validate", path.to_str().unwrap(), "--env", &env]).run();
            assert_eq!(out.code, 0, "README block {i} --env {env}: {}", out.stderr);
        }
    }
}
