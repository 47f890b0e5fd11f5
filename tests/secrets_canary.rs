//! A canary secret, given to the binary the way an operator would (environment variables and a
//! secret file), appears in no output, no JSON, no saved plan, no state file and no log, even
//! at the most verbose level. (The engine's own tests cover a provider resolving the value, and
//! `tests/agent_deploy.rs` an agent deployed with one.) The apply creates the host only: the
//! stack's agents would be allowed to reach api.openai.com and api.telegram.org, and tests
//! contact nothing outside this machine.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use support::{hermes, unique};

const CANARY: &str = "canary-sk-5b1e0c7d9f2a4e68";

#[test]
fn a_canary_secret_leaks_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("canary");
    let _cleanup = hermes_testbed::LocalStackGuard::new(&name);
    std::fs::write(dir.path().join("tg.token"), format!("{CANARY}\n")).unwrap();
    let stack = dir.path().join("stack.toml");
    std::fs::write(
        &stack,
        format!(
            r#"version = 1
name = "{name}"
[hosts.main]
[agents.acme]
host = "main"
hostname = "acme.hermes.localhost"
model = {{ provider = "openai", model = "gpt-4.1", api-key = "env:CANARY_OPENAI_KEY" }}
messaging.telegram = {{ bot-token = "file:tg.token", allowed-users = ["1"] }}
secrets = {{ EXTRA_TOKEN = "env:CANARY_EXTRA" }}
"#
        ),
    )
    .unwrap();
    let plan_file = dir.path().join("plan.json");
    let s = stack.to_str().unwrap();
    let p = plan_file.to_str().unwrap();
    let runs = [
        vec!["-vvv", "validate", s],
        vec!["-vvv", "validate", s, "--output", "json"],
        vec!["-vvv", "plan", s],
        vec!["-vvv", "plan", s, "--output", "json", "--out", p],
        vec![
            "-vvv", "apply", s, "--yes", "--output", "json", "--target", "host",
        ],
    ];
    let mut seen = 0;
    for args in runs {
        let out = hermes(&args)
            .env("CANARY_OPENAI_KEY", CANARY)
            .env("CANARY_EXTRA", CANARY)
            .env("HERMES_INFRA_LOG", "trace")
            .run();
        seen += out.stdout.len() + out.stderr.len();
        assert_eq!(out.code, 0, "{args:?} failed");
        assert!(
            !out.stdout.contains(CANARY),
            "{args:?} printed the canary on stdout"
        );
        assert!(
            !out.stderr.contains(CANARY),
            "{args:?} printed the canary on stderr"
        );
    }
    assert!(
        seen > 1000,
        "the runs printed almost nothing; the test would prove nothing"
    );
    let mut files = 0;
    for entry in walk(dir.path()) {
        if entry.file_name().is_some_and(|n| n == "tg.token") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(
            !text.contains(CANARY),
            "{} holds the canary",
            entry.display()
        );
    }
    assert!(
        files >= 2,
        "expected the saved plan and stack files at least"
    );
    let saved = std::fs::read_to_string(&plan_file).unwrap();
    assert!(
        saved.contains("env:CANARY_OPENAI_KEY") && saved.contains("file:tg.token"),
        "references are kept"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
