//! End-to-end tests of the `hermes-infra` binary: exit codes, output, saved plans, bad input.
//! Each test runs the real binary as a user would.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use support::{Sentinel, hermes, repo};

#[test]
fn version_and_help_show_only_working_verbs() {
    let version = hermes(&["--version"]).run();
    assert_eq!(version.code, 0);
    assert!(
        version.stdout.starts_with("hermes-infra "),
        "{}",
        version.stdout
    );

    let help = hermes(&["--help"]).run();
    assert_eq!(help.code, 0);
    let verbs: Vec<&str> = help
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        verbs,
        [
            "init",
            "validate",
            "plan",
            "apply",
            "destroy",
            "status",
            "audit",
            "ssh",
            "power",
            "logs",
            "exec",
            "rotate",
            "tunnel",
            "rollback",
            "image",
            "schema",
            "completions",
            "help"
        ]
    );
}

#[test]
fn init_writes_a_starter_stack_that_validates_and_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.toml");
    let path_s = path.to_str().unwrap();
    let init = hermes(&["init", path_s]).run();
    assert_eq!(init.code, 0, "{init:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("name = \"shop\""));
    assert!(
        text.lines().filter(|l| l.starts_with('#')).count() > 10,
        "the starter should explain itself"
    );
    for env in ["dev", "prod"] {
        let v = hermes(&["validate", path_s, "--env", env]).run();
        assert_eq!(v.code, 0, "{v:?}");
    }
    let again = hermes(&["init", path_s]).run();
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
}

#[test]
fn every_example_stack_validates() {
    for (file, env) in [
        ("local.toml", "dev"),
        ("hetzner-solo.toml", "prod"),
        ("aws-bedrock.toml", "staging"),
        ("aws-bedrock.toml", "prod"),
        ("multi-tenant.toml", "prod"),
    ] {
        let path = repo().join("stacks").join(file);
        let out = hermes(&["validate", path.to_str().unwrap(), "--env", env]).run();
        assert_eq!(out.code, 0, "{file} {env}: {out:?}");
        assert!(out.stdout.contains("is valid"), "{}", out.stdout);
    }
}

#[test]
fn validate_json_lists_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, "version = 1\nname = \"t\"\n[hosts.a]\n[agents.x]\nhost = \"a\"\nmodel = { provider = \"custom\", model = \"m\", base-url = \"http://llm.test/v1\" }\nlimits = { memroy = \"2g\" }\n").unwrap();
    let out = hermes(&["validate", path.to_str().unwrap(), "--output", "json"]).run();
    assert_eq!(out.code, 1);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 7);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `memory`"),
        "{v}"
    );
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let out = hermes(&["schema"]).run();
    assert_eq!(out.code, 0);
    let committed = std::fs::read_to_string(repo().join("stacks/stack.schema.json")).unwrap();
    assert_eq!(out.stdout, committed);
}

#[test]
fn completions_are_generated_for_common_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let out = hermes(&["completions", shell]).run();
        assert_eq!(out.code, 0);
        assert!(out.stdout.contains("validate"), "{shell}");
    }
}

/// Every file of `tests/bad-stacks/`: exit 1, a located message, no panic, and nothing
/// contacted: Docker, Hetzner and AWS endpoints all point at a listener that counts connections.
#[test]
fn bad_stacks_fail_cleanly_without_contacting_anything() {
    let sentinel = Sentinel::start();
    let dir = repo().join("tests/bad-stacks");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "only {} bad stacks", files.len());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let env = text
            .lines()
            .find_map(|l| l.strip_prefix("# env: "))
            .map(str::trim);
        let name = file.file_name().unwrap().to_str().unwrap();
        for verb in ["validate", "plan"] {
            let mut args = vec![verb, file.to_str().unwrap()];
            if let Some(env) = env {
                args.extend(["--env", env]);
            }
            let out = sentinel.env(hermes(&args)).run();
            assert_eq!(out.code, 1, "{name} {verb}: {out:?}");
            assert!(
                !out.stderr.contains("panicked"),
                "{name} {verb} panicked: {}",
                out.stderr
            );
            assert!(
                out.stderr.contains(&format!("{name}:")),
                "{name} {verb}: message does not name the file: {}",
                out.stderr
            );
            let located = out.stderr.lines().any(|l| {
                l.split(&format!("{name}:")).nth(1).is_some_and(|rest| {
                    let mut parts = rest.split(':');
                    parts.next().is_some_and(|n| n.parse::<u32>().is_ok())
                        && parts.next().is_some_and(|n| n.parse::<u32>().is_ok())
                })
            });
            assert!(
                located,
                "{name} {verb}: no file:line:column in {}",
                out.stderr
            );
        }
    }
    assert_eq!(
        sentinel.connections(),
        0,
        "a bad stack led to a network call"
    );
}

#[test]
fn a_missing_stack_file_is_a_clear_error() {
    let out = hermes(&["validate", "/nonexistent/stack.toml"]).run();
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("cannot read stack file `/nonexistent/stack.toml`"),
        "{}",
        out.stderr
    );
}

/// `--actor` and `HERMES_INFRA_ACTOR` name who hosts record in their audit log: a value that
/// could break out of the hosts' quoting is a usage error (exit 2) naming both and the fix,
/// before anything is read or contacted.
#[test]
fn an_unusable_actor_is_a_usage_error() {
    let stack = repo().join("stacks/local.toml");
    let stack = stack.to_str().unwrap();
    let long = "a".repeat(65);
    let runs = [
        (
            "flag with a quote",
            hermes(&["--actor", "o'brien", "validate", stack]),
        ),
        (
            "flag after the verb",
            hermes(&["validate", stack, "--actor", "a b"]),
        ),
        ("empty flag", hermes(&["--actor", "", "validate", stack])),
        ("long flag", hermes(&["--actor", &long, "validate", stack])),
        (
            "variable with a line break",
            hermes(&["validate", stack]).env("HERMES_INFRA_ACTOR", "ci\nresult=ok"),
        ),
        (
            "variable with a backslash",
            hermes(&["validate", stack]).env("HERMES_INFRA_ACTOR", "ci\\x"),
        ),
    ];
    for (what, cmd) in runs {
        let out = cmd.run();
        assert_eq!(out.code, 2, "{what}: {out:?}");
        assert!(out.stdout.is_empty(), "{what}: {out:?}");
        for needed in [
            "--actor",
            "HERMES_INFRA_ACTOR",
            "e.g. `--actor alice@laptop`",
        ] {
            assert!(out.stderr.contains(needed), "{what}: {}", out.stderr);
        }
    }

    let fine = hermes(&["--actor", "ci+deploy@runner-7", "validate", stack])
        .env("HERMES_INFRA_ACTOR", "ignored-when-the-flag-is-given")
        .run();
    assert_eq!(fine.code, 0, "{fine:?}");
    let from_env = hermes(&["validate", stack])
        .env("HERMES_INFRA_ACTOR", "alice@laptop")
        .run();
    assert_eq!(from_env.code, 0, "{from_env:?}");
}
