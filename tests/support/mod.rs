//! Helpers for end-to-end tests of the binary.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support module"
)]

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The repository root.
pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary with `args`, with colour and inherited configuration switched off.
pub(crate) fn hermes(args: &[&str]) -> Cmd {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hermes-infra"));
    cmd.args(args)
        .env_remove("HERMES_INFRA_ENV")
        .env_remove("HERMES_INFRA_LOG")
        .env_remove("HERMES_INFRA_ACTOR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    Cmd(cmd)
}

/// A command about to run.
pub(crate) struct Cmd(pub(crate) Command);

/// What a run printed and how it ended.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Cmd {
    pub(crate) fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.0.env(key, value);
        self
    }

    /// Runs to the end (bounded: a run that takes over two minutes is killed).
    pub(crate) fn run(self) -> Run {
        self.run_within(Duration::from_mins(2))
    }

    /// Runs to the end; a run that takes longer than `bound` is killed.
    pub(crate) fn run_within(mut self, bound: Duration) -> Run {
        self.0.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.0.spawn().expect("the binary starts");
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let out_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = std::time::Instant::now() + bound;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: out_reader.join().unwrap(),
            stderr: err_reader.join().unwrap(),
        }
    }
}

/// A loopback listener standing in for every outside endpoint; it counts connections.
pub(crate) struct Sentinel {
    port: u16,
    count: Arc<AtomicUsize>,
}

impl Sentinel {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stream.is_ok() {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Self { port, count }
    }

    /// Points Docker, Hetzner and AWS clients at the sentinel.
    pub(crate) fn env(&self, cmd: Cmd) -> Cmd {
        let url = format!("http://127.0.0.1:{}", self.port);
        cmd.env("DOCKER_HOST", format!("tcp://127.0.0.1:{}", self.port))
            .env("HERMES_INFRA_HCLOUD_ENDPOINT", &url)
            .env("AWS_ENDPOINT_URL", &url)
            .env("HCLOUD_TOKEN", "sentinel-token")
    }

    pub(crate) fn connections(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// A name no other test (or test run) uses: `<prefix>-<pid>-<counter>`.
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}
