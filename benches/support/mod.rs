//! What the end-to-end benchmarks share: a local stack of `node-1..node-N` hosts in a temporary
//! directory run through the real binary, its creation with retries, and the machine's load.
#![allow(
    dead_code,
    reason = "each benchmark uses a different part of the helpers"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hermes_testbed::{LocalStackGuard, StackDir, run_binary};
use serde_json::Value;

/// Creating hosts (30 take a minute or two; the first may build the host image).
pub(crate) const CREATE_TIMEOUT: Duration = Duration::from_mins(20);
/// A no-op apply, status, destroy.
pub(crate) const SHORT_TIMEOUT: Duration = Duration::from_mins(5);
/// Attempts at creating hosts (a loaded machine can miss the provider's boot timeout).
pub(crate) const CREATE_ATTEMPTS: u32 = 3;

/// One local stack of `node-1..node-N` container hosts in a temporary directory.
pub(crate) struct Stack {
    pub(crate) dir: StackDir,
    pub(crate) guard: LocalStackGuard,
    /// The stack file's body for a number of hosts.
    body: fn(u32) -> String,
}

impl Stack {
    /// A stack named `<prefix>-<hex>` whose file is `body(count)` after the `name` line.
    pub(crate) fn new(prefix: &str, count: u32, body: fn(u32) -> String) -> Self {
        let dir = StackDir::new(prefix).unwrap();
        let guard = dir.guard();
        let stack = Self { dir, guard, body };
        stack.set_count(count);
        stack
    }

    /// Rewrites the stack file for `count` hosts.
    pub(crate) fn set_count(&self, count: u32) {
        self.write(&(self.body)(count));
    }

    /// Rewrites the stack file with `body` after the `name` line.
    pub(crate) fn write(&self, body: &str) {
        self.dir
            .write_stack(&format!(
                "version = 1\nname = \"{{{{stack}}}}\"\nenvironments = [\"dev\"]\n{body}"
            ))
            .unwrap();
    }

    /// `hermes-infra VERB STACK ARGS...`: wall time and the output, whatever the exit code.
    pub(crate) fn try_run(
        &self,
        verb: &str,
        args: &[&str],
        timeout: Duration,
    ) -> (Duration, Output) {
        self.try_run_words(&[verb], args, timeout)
    }

    /// `hermes-infra WORDS... STACK ARGS...` (`image build`): wall time and the output.
    pub(crate) fn try_run_words(
        &self,
        words: &[&str],
        args: &[&str],
        timeout: Duration,
    ) -> (Duration, Output) {
        let path = self.dir.stack_path();
        let mut full = words.to_vec();
        full.push(path.to_str().unwrap());
        full.extend_from_slice(args);
        let started = Instant::now();
        let out = run_binary(
            Path::new(env!("CARGO_BIN_EXE_hermes-infra")),
            &full,
            &[("NO_COLOR", "1")],
            timeout,
        )
        .unwrap();
        (started.elapsed(), out)
    }

    /// `hermes-infra VERB STACK ARGS...`: wall time and standard output; panics on failure.
    pub(crate) fn run(&self, verb: &str, args: &[&str], timeout: Duration) -> (Duration, String) {
        self.run_words_ok(&[verb], args, timeout)
    }

    /// `apply --target host --yes` (sets `count` first), retried up to [`CREATE_ATTEMPTS`]
    /// times when hosts did not finish booting in time (on a loaded machine): the total time.
    pub(crate) fn create(&self, count: u32) -> Duration {
        self.set_count(count);
        let mut total = Duration::ZERO;
        for attempt in 1..=CREATE_ATTEMPTS {
            let (elapsed, out) = self.try_run(
                "apply",
                &["--yes", "--output", "json", "--target", "host"],
                CREATE_TIMEOUT,
            );
            total += elapsed;
            if out.status.success() {
                return total;
            }
            let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let failed: Vec<&str> = report["failed"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["address"].as_str())
                .collect();
            assert!(
                attempt < CREATE_ATTEMPTS && !failed.is_empty(),
                "creating {count} hosts failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            println!(
                "  note: creating hosts, attempt {attempt} of {CREATE_ATTEMPTS}: {} failed \
                 (load {}); first error: {}; destroying them and retrying",
                failed.len(),
                load(),
                report["failed"][0]["error"].as_str().unwrap_or("?")
            );
            // A host that missed the boot timeout stays and counts as created on the next
            // apply, with sshd never up (seen here): remove it so that it is created anew.
            let mut args = vec!["--yes", "--allow-destroy"];
            for address in &failed {
                args.extend(["--target", address]);
            }
            self.run("destroy", &args, SHORT_TIMEOUT);
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `hermes-infra WORDS... STACK ARGS...`: wall time and standard output; panics on failure.
    pub(crate) fn run_words_ok(
        &self,
        words: &[&str],
        args: &[&str],
        timeout: Duration,
    ) -> (Duration, String) {
        let (elapsed, out) = self.try_run_words(words, args, timeout);
        assert!(
            out.status.success(),
            "hermes-infra {words:?} {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (elapsed, String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `apply --yes --output json ARGS`: wall time and the JSON report.
    pub(crate) fn apply(&self, args: &[&str], timeout: Duration) -> (Duration, Value) {
        let mut all = vec!["--yes", "--output", "json"];
        all.extend_from_slice(args);
        let (elapsed, stdout) = self.run("apply", &all, timeout);
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("apply printed no JSON ({e}):\n{stdout}"));
        (elapsed, report)
    }

    /// The Docker network the local provider made for the stack.
    pub(crate) fn network(&self) -> String {
        format!("hermes-{}-dev", self.dir.stack_name())
    }

    /// `host`'s SSH endpoint on the stack's network, from `status --output json`.
    pub(crate) fn ssh_endpoint(&self, host: &str) -> SocketAddr {
        let (_, stdout) = self.run("status", &["--output", "json"], SHORT_TIMEOUT);
        let status: Value = serde_json::from_str(&stdout).unwrap();
        let address = status["hosts"]
            .as_array()
            .and_then(|hosts| hosts.iter().find(|h| h["host"] == host))
            .and_then(|h| h["address"].as_str())
            .unwrap_or_else(|| panic!("host {host} has no address: {status}"));
        SocketAddr::new(address.parse().unwrap(), 22)
    }

    /// `destroy --yes`, then the guard's removal of anything left.
    pub(crate) fn destroy(self) -> Duration {
        let (elapsed, _) = self.run("destroy", &["--yes"], SHORT_TIMEOUT);
        let left = self.guard.clean().unwrap();
        assert!(
            left.containers.is_empty(),
            "destroy left containers: {left:?}"
        );
        elapsed
    }
}

/// The addresses in a report's `done` list.
pub(crate) fn done(report: &Value) -> Vec<String> {
    report["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["address"].as_str().unwrap().to_owned())
        .collect()
}

/// `uptime`, trimmed.
pub(crate) fn uptime() -> String {
    Command::new("uptime").output().map_or_else(
        |e| format!("(uptime: {e})"),
        |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
    )
}

/// The 1-minute load average.
pub(crate) fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
