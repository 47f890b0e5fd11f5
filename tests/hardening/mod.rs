//! Helpers for the hardening tests: a local stack in a temp dir run through the real binary,
//! commands on its hosts, and the removal of everything it made, also when a test fails.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use hermes_testbed::{LocalStackGuard, StackDir};

/// Long enough for a cold hardening through a cold apt cache (packages come from Debian).
pub(crate) const APPLY_TIMEOUT: Duration = Duration::from_mins(15);
/// Plans, status and commands on hosts.
pub(crate) const SHORT_TIMEOUT: Duration = Duration::from_mins(2);

/// One local stack and its hosts.
pub(crate) struct Stack {
    pub(crate) dir: StackDir,
    _guard: LocalStackGuard,
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ran {
    fn of(output: &Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success, showing what was printed otherwise.
    pub(crate) fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self:#?}");
        self
    }

    /// The JSON printed on standard output.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}

impl Stack {
    /// A stack named `<prefix>-<hex>`; `body` follows the `name` line.
    pub(crate) fn new(prefix: &str, body: &str) -> Self {
        let dir = StackDir::new(prefix).expect("a stack directory");
        let guard = dir.guard();
        let stack = Self { dir, _guard: guard };
        stack.write(body);
        stack
    }

    /// Rewrites the stack file.
    pub(crate) fn write(&self, body: &str) {
        self.dir
            .write_stack(&format!("version = 1\nname = \"{{{{stack}}}}\"\n{body}"))
            .expect("the stack file is written");
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.stack_path()
    }

    /// `hermes-infra VERB STACK ARGS...`.
    pub(crate) fn run(&self, verb: &str, args: &[&str], timeout: Duration) -> Ran {
        let path = self.path();
        let mut full = vec![verb, path.to_str().expect("a UTF-8 path")];
        full.extend_from_slice(args);
        let output = hermes_testbed::run_binary(
            std::path::Path::new(env!("CARGO_BIN_EXE_hermes-infra")),
            &full,
            &[("NO_COLOR", "1")],
            timeout,
        )
        .expect("the binary runs to its end");
        Ran::of(&output)
    }

    /// `power on|off STACK HOST` (the state comes before the stack file).
    pub(crate) fn power(&self, state: &str, host: &str) -> Ran {
        let path = self.path();
        let output = hermes_testbed::run_binary(
            std::path::Path::new(env!("CARGO_BIN_EXE_hermes-infra")),
            &["power", state, path.to_str().expect("a UTF-8 path"), host],
            &[("NO_COLOR", "1")],
            SHORT_TIMEOUT,
        )
        .expect("the binary runs to its end");
        Ran::of(&output)
    }

    /// `apply --yes` with `args`, as JSON.
    pub(crate) fn apply(&self, args: &[&str]) -> Ran {
        self.apply_within(args, APPLY_TIMEOUT)
    }

    /// `apply --yes` with `args`, as JSON, bounded by `timeout` (a VM under emulation is slow).
    pub(crate) fn apply_within(&self, args: &[&str], timeout: Duration) -> Ran {
        let mut all = vec!["--yes", "--output", "json"];
        all.extend_from_slice(args);
        self.run("apply", &all, timeout)
    }

    /// `script` run by `sh -c` on `host` as the admin user, over the pinned key.
    pub(crate) fn on(&self, host: &str, script: &str) -> Ran {
        self.run(
            "ssh",
            &[host, "--", "sh", "-c", &shell_word(script)],
            SHORT_TIMEOUT,
        )
    }

    /// The stack's state file (environment `dev`).
    pub(crate) fn state_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(".hermes-infra/state")
            .join(self.dir.stack_name())
            .join("dev/state.json")
    }

    /// The stack's state.
    pub(crate) fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.state_path()).expect("the state file is readable");
        serde_json::from_str(&text).expect("the state is JSON")
    }

    /// The name of the Docker network the stack's hosts are on.
    pub(crate) fn network(&self) -> String {
        format!("hermes-{}-dev", self.dir.stack_name())
    }

    /// The address of `host` on the stack's network.
    pub(crate) fn address(&self, host: &str) -> String {
        let status = self
            .run("status", &["--output", "json"], SHORT_TIMEOUT)
            .ok()
            .json();
        status["hosts"]
            .as_array()
            .and_then(|hosts| hosts.iter().find(|h| h["host"] == host))
            .and_then(|h| h["address"].as_str())
            .unwrap_or_else(|| panic!("host {host} has no address: {status}"))
            .to_owned()
    }
}

/// `text` as one word for the remote shell (ssh joins its arguments with spaces).
fn shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `docker ARGS`, trimmed standard output; panics on failure.
pub(crate) fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(out.status.success(), "docker {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The ssh-audit installed by `scripts/install-deps` (or on `PATH`).
pub(crate) fn ssh_audit() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let tools = std::env::var_os("HERMES_INFRA_TOOLS")
        .map_or_else(|| home.join(".cache/hermes-infra/tools"), PathBuf::from);
    let venv = tools.join("bin/ssh-audit");
    if venv.exists() {
        return venv;
    }
    let on_path = std::process::Command::new("ssh-audit").arg("-h").output();
    assert!(
        on_path.is_ok(),
        "ssh-audit is missing: run scripts/install-deps (it installs the pinned ssh-audit into {})",
        tools.display()
    );
    PathBuf::from("ssh-audit")
}

/// `audit --output json` of a stack with one host, `host`, which must be audited in full
/// (no error) and share (`shared`) or own (`own`) its kernel; its Lynis figures are checked,
/// and their profile: `hermes-compare` on a shared kernel, Lynis' default on an own one.
pub(crate) fn audit(
    stack: &Stack,
    host: &str,
    kernel: &str,
    timeout: Duration,
) -> serde_json::Value {
    let report = stack
        .run("audit", &["--output", "json"], timeout)
        .ok()
        .json();
    let audited = &report["hosts"][host];
    assert!(audited.get("errors").is_none(), "{report:#}");
    assert_eq!(audited["kernel"], kernel, "{report:#}");
    let profile = if kernel == "shared" {
        "hermes-compare"
    } else {
        "default"
    };
    assert_eq!(audited["lynis"]["profile"], profile, "{report:#}");
    check_lynis(&audited["lynis"]);
    report
}

/// Checks a Lynis figure of `audit --output json`: enough tests ran, and the per-test
/// breakdown reproduces the index (hardening.md §3.1).
pub(crate) fn check_lynis(lynis: &serde_json::Value) {
    assert!(lynis["tests"].as_u64().expect("tests") > 100, "{lynis}");
    let (got, max) =
        lynis["points"]
            .as_object()
            .expect("points")
            .values()
            .fold((0, 0), |(got, max), p| {
                (
                    got + p[0].as_u64().expect("points"),
                    max + p[1].as_u64().expect("maximum"),
                )
            });
    assert!(max > 0, "{lynis}");
    assert_eq!(
        lynis["index"].as_u64().expect("index"),
        got * 100 / max,
        "{lynis}"
    );
}

/// The largest point losses, as `ID -lost/max`.
pub(crate) fn losses(lynis: &serde_json::Value, top: usize) -> String {
    let mut lost: Vec<(u64, String, u64)> = lynis["points"]
        .as_object()
        .expect("points")
        .iter()
        .map(|(id, p)| {
            let (got, max) = (
                p[0].as_u64().expect("points"),
                p[1].as_u64().expect("points"),
            );
            (max - got, id.clone(), max)
        })
        .filter(|(lost, _, _)| *lost > 0)
        .collect();
    lost.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    lost.iter()
        .take(top)
        .map(|(lost, id, max)| format!("{id} -{lost}/{max}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints the outside auditors' figures of one host before and after hardening (`what` names the
/// profile and host kind), then checks what every hardened host must show: a higher Lynis index,
/// at least `bar`, no ssh-audit failure, fail2ban running.
#[allow(clippy::print_stderr, reason = "the figures go to the test log")]
pub(crate) fn compare(
    what: &str,
    baseline: &serde_json::Value,
    hardened: &serde_json::Value,
    bar: u64,
) {
    let (b, h) = (&baseline["lynis"], &hardened["lynis"]);
    let figures = |l: &serde_json::Value| {
        format!(
            "{} ({} tests, {} warnings, {} suggestions)",
            l["index"], l["tests"], l["warnings"], l["suggestions"]
        )
    };
    eprintln!(
        "Lynis ({what}): baseline {}, hardened {}",
        figures(b),
        figures(h)
    );
    eprintln!("baseline largest losses: {}", losses(b, 20));
    eprintln!("hardened largest losses: {}", losses(h, 20));
    eprintln!(
        "ssh-audit: baseline {}, hardened {}",
        baseline["ssh_audit"], hardened["ssh_audit"]
    );

    let index = |l: &serde_json::Value| l["index"].as_u64().expect("index");
    assert!(
        index(h) > index(b),
        "hardening raises the Lynis index: {b} -> {h}"
    );
    assert!(index(h) >= bar, "{h}");
    assert_eq!(hardened["ssh_audit"]["fail"], 0, "{hardened:#}");
    assert_eq!(hardened["fail2ban"]["state"], "running", "{hardened:#}");
}
