//! Bounded blocking commands: for `Drop` guards (which cannot await) and for running the binary
//! under test. A command that outlives its time is killed with its whole process group.

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How often a running command is polled.
const POLL: Duration = Duration::from_millis(20);
/// How long the output readers get once the command ended (or was killed).
const DRAIN: Duration = Duration::from_secs(5);

/// What a bounded run produced.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Exit status and everything it printed (up to its end or its kill).
    pub(crate) output: Output,
    /// Whether it was killed for running out of time.
    pub(crate) timed_out: bool,
}

/// Runs `cmd` (stdin closed, output captured) in a process group of its own, killing the group
/// when it runs longer than `timeout`.
pub(crate) fn run(mut cmd: Command, timeout: Duration) -> anyhow::Result<Finished> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().with_context(|| format!("cannot run {shown}"))?;
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().context("waiting for a child")? {
            break (status, false);
        }
        if Instant::now() >= deadline {
            break (kill_group(&mut child)?, true);
        }
        std::thread::sleep(POLL);
    };
    let output = Output {
        status,
        stdout: stdout.recv_timeout(DRAIN).unwrap_or_default(),
        stderr: stderr.recv_timeout(DRAIN).unwrap_or_default(),
    };
    Ok(Finished { output, timed_out })
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

/// Kills the child's process group (the child is its leader) and reaps the child.
fn kill_group(child: &mut Child) -> anyhow::Result<ExitStatus> {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    child.wait().context("reaping a killed child")
}

/// How long one blocking `docker` call may take.
pub(crate) const DOCKER_TIMEOUT: Duration = Duration::from_mins(1);

/// Runs `program ARGS` (normally `docker`) with [`DOCKER_TIMEOUT`]; its stdout when it succeeds.
pub(crate) fn docker(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let done = run(cmd, DOCKER_TIMEOUT)?;
    let shown = args.join(" ");
    if done.timed_out {
        bail!("`{program} {shown}` did not finish within {DOCKER_TIMEOUT:?}");
    }
    if !done.output.status.success() {
        bail!(
            "`{program} {shown}` failed: {}",
            String::from_utf8_lossy(&done.output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&done.output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn captures_output_and_kills_on_timeout() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let done = run(cmd, Duration::from_secs(10)).unwrap();
        assert!(!done.timed_out);
        assert_eq!(done.output.status.code(), Some(3));
        assert_eq!(done.output.stdout, b"out\n");
        assert_eq!(done.output.stderr, b"err\n");

        // The grandchild `sleep` holds the pipes open: killing the group ends it too.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; sleep 30 & wait"]);
        let started = Instant::now();
        let done = run(cmd, Duration::from_millis(300)).unwrap();
        assert!(done.timed_out);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(done.output.stdout, b"started\n");
    }
}
