//! Every example stack in `stacks/` loads in every environment it declares.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

fn stacks() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stacks");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_four_example_stacks_exist() {
    let names: Vec<String> = stacks()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for wanted in [
        "local.toml",
        "hetzner-solo.toml",
        "aws-bedrock.toml",
        "multi-tenant.toml",
    ] {
        assert!(names.iter().any(|n| n == wanted), "missing stacks/{wanted}");
    }
}

#[test]
fn every_example_stack_loads_in_every_environment() {
    for path in stacks() {
        let first = hermes_stack::load(&path, Some(probe_env(&path).as_str()))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let envs: Vec<String> = first
            .file
            .environments
            .iter()
            .map(ToString::to_string)
            .collect();
        for env in envs {
            let loaded = hermes_stack::load(&path, Some(&env))
                .unwrap_or_else(|e| panic!("{} --env {env}: {e}", path.display()));
            assert_eq!(loaded.env, env);
            assert!(!loaded.hosts.is_empty(), "{} has no hosts", path.display());
        }
    }
}

fn probe_env(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let table: toml::Table = text.parse().unwrap();
    table["environments"].as_array().unwrap()[0]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn overlays_change_the_environment_they_name_only() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stacks/aws-bedrock.toml");
    let staging = hermes_stack::load(&path, Some("staging")).unwrap();
    let prod = hermes_stack::load(&path, Some("prod")).unwrap();
    let sizes = |s: &hermes_stack::LoadedStack| {
        s.hosts
            .iter()
            .map(|h| (h.name.clone(), h.size.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sizes(&staging),
        [("agents-1".to_owned(), "t3.small".to_owned())]
    );
    assert_eq!(
        sizes(&prod),
        [
            ("agents-1".into(), "t3.large".into()),
            ("agents-2".into(), "t3.large".into())
        ]
    );
    assert_eq!(prod.file.agents.values().nth(1).unwrap().host, "agents-2");
    assert_eq!(
        staging.file.agents.values().nth(1).unwrap().host,
        "agents-1"
    );
}

#[test]
fn require_env_refuses_to_guess() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stacks/aws-bedrock.toml");
    let err = hermes_stack::load(&path, None).unwrap_err().to_string();
    assert!(err.contains("requires an explicit environment"), "{err}");
    assert!(err.contains("aws-bedrock.toml:7:15:"), "{err}");
}

#[test]
fn load_all_checks_every_overlay_even_of_environments_not_asked_for() {
    let dir = std::env::temp_dir().join(format!("hermes-load-all-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.toml");
    let text = "version = 1\nname = \"s\"\nenvironments = [\"dev\", \"prod\"]\n[hosts.a]\n[overlay.prod.hosts.a]\nsise = \"large\"\n[overlay.dev.hosts.a]\nsize = \"huge\"\n";
    std::fs::write(&path, text).unwrap();
    // Each environment alone reports only its own overlay's problem...
    assert_eq!(
        hermes_stack::load(&path, Some("dev"))
            .unwrap_err()
            .diagnostics()
            .len(),
        1
    );
    // ...while load_all reports both, each at its own line.
    let err = hermes_stack::load_all(&path).unwrap_err();
    let lines: Vec<usize> = err.diagnostics().iter().map(|d| d.line).collect();
    assert_eq!(lines, [6, 8], "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_all_gives_one_stack_per_environment() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stacks/aws-bedrock.toml");
    let all = hermes_stack::load_all(&path).unwrap();
    let envs: Vec<&str> = all.iter().map(|s| s.env.as_str()).collect();
    assert_eq!(envs, ["staging", "prod"]);
}
