//! Build plumbing: a long-running command with its output relayed as progress, a cross-process
//! lock so that two `hermes-infra` processes never build the same image at once, and a scratch
//! directory removed when dropped.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use hermes_core::seams::ProviderError;

/// How many of the last output lines an error message quotes.
const TAIL_LINES: usize = 25;
/// How often a silent build still says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// How long a stopped command gets to clean up before it is killed.
const GRACE: Duration = Duration::from_secs(30);

/// The progress callback every long operation takes.
pub(crate) type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// `name` found on `PATH` as an executable file.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs `program ARGS`, relaying each output line (stdout and stderr) to `progress` with
/// `prefix`, and a heartbeat line when it stays silent. Fails when it exits non-zero (quoting its
/// last lines) or runs longer than `timeout` (it is killed then).
pub(crate) async fn run_relayed(
    program: &Path,
    args: &[String],
    timeout: Duration,
    prefix: &str,
    progress: Progress<'_>,
) -> Result<(), ProviderError> {
    let shown = program.display().to_string();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ProviderError::Other(format!("cannot run `{shown}`: {e}")))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ProviderError::Other(format!(
            "cannot read the output of `{shown}`"
        )));
    };
    let mut out = BufReader::new(stdout).lines();
    let mut err = BufReader::new(stderr).lines();
    let (mut out_open, mut err_open) = (true, true);
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let keep = |line: String, tail: &mut VecDeque<String>| {
        progress(&format!("{prefix}{line}"));
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    };
    let timed_out = |tail: &VecDeque<String>| {
        ProviderError::Other(format!(
            "`{shown}` did not finish within {}s and was stopped; its last lines:\n{}",
            timeout.as_secs(),
            tail.iter().cloned().collect::<Vec<_>>().join("\n")
        ))
    };
    while out_open || err_open {
        tokio::select! {
            line = out.next_line(), if out_open => match line {
                Ok(Some(line)) => keep(line, &mut tail),
                _ => out_open = false,
            },
            line = err.next_line(), if err_open => match line {
                Ok(Some(line)) => keep(line, &mut tail),
                _ => err_open = false,
            },
            _ = heartbeat.tick() => {
                progress(&format!("{prefix}... still running ({}s)", started.elapsed().as_secs()));
            }
            () = tokio::time::sleep_until(deadline) => {
                stop(&mut child).await;
                return Err(timed_out(&tail));
            }
        }
    }
    let Ok(status) = tokio::time::timeout_at(deadline, child.wait()).await else {
        stop(&mut child).await;
        return Err(timed_out(&tail));
    };
    let status = status.map_err(|e| ProviderError::Other(format!("waiting for `{shown}`: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(ProviderError::Other(format!(
            "`{shown}` failed ({status}); its last lines:\n{}",
            tail.iter().cloned().collect::<Vec<_>>().join("\n")
        )))
    }
}

/// Stops a child that ran out of time: SIGTERM first (mmdebstrap then unmounts what it mounted
/// in its chroot and removes its temporary directory), SIGKILL if it is still there after
/// [`GRACE`].
async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// An exclusive lock on a file, held until dropped (an advisory `flock`, so it also excludes
/// other processes, and is released if the process dies).
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

/// Takes the lock at `path`, polling for at most `wait`; says once through `progress` that it is
/// waiting for `what`.
pub(crate) async fn lock(
    path: &Path,
    wait: Duration,
    what: &str,
    progress: Progress<'_>,
) -> Result<FileLock, ProviderError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| ProviderError::Other(format!("cannot open lock {}: {e}", path.display())))?;
    let started = Instant::now();
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(FileLock { _file: file }),
            Err(TryLockError::WouldBlock) => {
                if started.elapsed() > wait {
                    return Err(ProviderError::Transient(format!(
                        "another hermes-infra process held {} for more than {}s ({what})",
                        path.display(),
                        wait.as_secs()
                    )));
                }
                if !said {
                    progress(&format!(
                        "waiting while another hermes-infra run or step is {what}"
                    ));
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(TryLockError::Error(e)) => {
                return Err(ProviderError::Other(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
    }
}

/// A scratch directory under the system's temporary directory, removed (with its contents) when
/// dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A new empty directory whose name starts with `prefix`.
    pub(crate) fn new(prefix: &str) -> Result<Self, ProviderError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| ProviderError::Other(format!("cannot create {}: {e}", path.display())))?;
        Ok(Self { path })
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn finds_sh_and_not_nonsense() {
        assert!(find_program("sh").is_some());
        assert!(find_program("hermes-infra-no-such-program").is_none());
    }

    #[tokio::test]
    async fn relays_lines_and_reports_failures() {
        let lines = std::sync::Mutex::new(Vec::new());
        let progress = |l: &str| lines.lock().unwrap().push(l.to_owned());
        let sh = find_program("sh").unwrap();
        run_relayed(
            &sh,
            &["-c".into(), "echo one; echo two >&2".into()],
            Duration::from_secs(10),
            "t: ",
            &progress,
        )
        .await
        .unwrap();
        let seen = lines.lock().unwrap().clone();
        assert!(seen.contains(&"t: one".to_owned()), "{seen:?}");
        assert!(seen.contains(&"t: two".to_owned()), "{seen:?}");

        let err = run_relayed(
            &sh,
            &["-c".into(), "echo broken >&2; exit 3".into()],
            Duration::from_secs(10),
            "",
            &progress,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("broken"), "{err}");

        let err = run_relayed(
            &sh,
            &["-c".into(), "sleep 5".into()],
            Duration::from_millis(200),
            "",
            &progress,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
    }

    #[tokio::test]
    async fn a_second_lock_waits_for_the_first() {
        let dir = ScratchDir::new("hermes-infra-lock-test").unwrap();
        let path = dir.path().join("l.lock");
        let quiet = |_: &str| {};
        let first = lock(&path, Duration::from_secs(1), "test", &quiet)
            .await
            .unwrap();
        let err = lock(&path, Duration::from_millis(300), "test", &quiet)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("another hermes-infra process"));
        drop(first);
        lock(&path, Duration::from_secs(1), "test", &quiet)
            .await
            .unwrap();
        let kept = dir.path().to_owned();
        drop(dir);
        assert!(!kept.exists());
    }
}
