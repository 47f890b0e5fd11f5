//! One script on one exec channel: how stdin is framed for `sh -s`, and a non-blocking pump
//! that moves stdin, stdout and stderr at once.
//!
//! How a script is fed to `sh -s`: `dash` (Debian's `sh`) reads its script from stdin in
//! blocks, so bytes sent after the script may be swallowed by the shell instead of reaching the
//! command meant to read them. The script is therefore wrapped in one `{ ... }` group, which the
//! shell parses completely before running any of it (a script with a syntax error runs nothing),
//! and when there is a payload the group first prints a one-time marker on stdout; the payload
//! is sent only once the marker arrived, so the shell cannot have read any of it. That costs
//! one extra round trip for runs with a payload, none for runs without. Error messages of the
//! shell count lines one higher than the script's own numbering.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hermes_core::seams::ExecOutput;
use rustix::event::{PollFd, PollFlags, Timespec};
use sha2::{Digest, Sha256};
use ssh2::{BlockDirections, Channel, Session};

use crate::connector::{is_timeout, remaining};

/// How long one wait on the socket lasts at most (keepalives are checked in between).
const POLL_SLICE: Duration = Duration::from_secs(1);
/// Bytes read from one stream before turning to the other one and to stdin.
const READ_CHUNK: usize = 64 * 1024;
/// Chunks read from one stream in a row.
const READS_PER_TURN: usize = 16;

/// What goes to the shell's stdin.
pub(crate) struct Input {
    bytes: Vec<u8>,
    /// Where the payload starts, when there is one: nothing from there on is sent before the
    /// marker came back.
    payload_at: Option<usize>,
    marker: Vec<u8>,
}

impl Input {
    pub(crate) fn new(script: &str, payload: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(script.len() + payload.len() + 64);
        // The group's first command is on the `{` line, so an empty script is still a valid
        // group and the script's lines are numbered one higher.
        let marker = if payload.is_empty() {
            bytes.extend_from_slice(b"{ :\n");
            Vec::new()
        } else {
            let marker = format!("hermes-infra-ready-{}", nonce());
            bytes.extend_from_slice(format!("{{ printf '%s\\n' '{marker}'\n").as_bytes());
            format!("{marker}\n").into_bytes()
        };
        bytes.extend_from_slice(script.as_bytes());
        if !script.is_empty() && !script.ends_with('\n') {
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(b"}\n");
        let payload_at = (!payload.is_empty()).then_some(bytes.len());
        bytes.extend_from_slice(payload);
        Self {
            bytes,
            payload_at,
            marker,
        }
    }
}

/// A value that no script prints by accident.
fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = Sha256::new();
    hasher.update(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_le_bytes(),
    );
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hex::encode(&hasher.finalize()[..12])
}

/// Why a run stopped short.
pub(crate) enum Failure {
    /// The operation timeout passed.
    TimedOut,
    /// The connection failed; what happened.
    Ssh(String),
}

pub(crate) fn ssh_failure(what: &str, err: &ssh2::Error) -> Failure {
    if is_timeout(err) {
        Failure::TimedOut
    } else {
        Failure::Ssh(format!("{what}: {}", err.message()))
    }
}

fn would_block(err: &ssh2::Error) -> bool {
    const LIBSSH2_ERROR_EAGAIN: i32 = -37;
    err.code() == ssh2::ErrorCode::Session(LIBSSH2_ERROR_EAGAIN)
}

/// Moves bytes both ways on one channel without blocking on either direction, so neither a
/// full stdout, a full stderr nor a full stdin window can stall the others.
pub(crate) struct Pump<'a> {
    session: &'a Session,
    socket: &'a TcpStream,
    channel: &'a mut Channel,
    input: &'a Input,
    written: usize,
    marker_seen: bool,
    marker_scan: usize,
    stdin_done: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    stdout_done: bool,
    stderr_done: bool,
}

impl<'a> Pump<'a> {
    pub(crate) fn new(
        session: &'a Session,
        socket: &'a TcpStream,
        channel: &'a mut Channel,
        input: &'a Input,
    ) -> Self {
        Self {
            session,
            socket,
            channel,
            input,
            written: 0,
            marker_seen: input.payload_at.is_none(),
            marker_scan: 0,
            stdin_done: false,
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_done: false,
            stderr_done: false,
        }
    }

    pub(crate) fn run(mut self, deadline: Instant) -> Result<ExecOutput, Failure> {
        let mut buf = vec![0_u8; READ_CHUNK];
        while !(self.stdout_done && self.stderr_done) {
            if Instant::now() >= deadline {
                return Err(Failure::TimedOut);
            }
            let mut progress = self.feed();
            let (read, pending) = self.drain(&mut buf)?;
            progress |= read;
            if !self.marker_seen && self.find_marker() {
                self.marker_seen = true;
                progress = true;
            }
            if !progress {
                self.wait(deadline, pending)?;
            }
        }
        loop {
            match self.channel.wait_close() {
                Ok(()) => break,
                Err(err) if would_block(&err) => {
                    if Instant::now() >= deadline {
                        return Err(Failure::TimedOut);
                    }
                    self.wait(deadline, false)?;
                }
                Err(err) => return Err(ssh_failure("the channel did not close", &err)),
            }
        }
        let status = self.exit_status()?;
        Ok(ExecOutput {
            status,
            stdout: self.stdout,
            stderr: self.stderr,
        })
    }

    /// Sends what stdin may take now; true when something moved.
    fn feed(&mut self) -> bool {
        if self.stdin_done {
            return false;
        }
        let limit = match self.input.payload_at {
            Some(at) if !self.marker_seen => at,
            _ => self.input.bytes.len(),
        };
        if self.written < limit {
            return match self.channel.write(&self.input.bytes[self.written..limit]) {
                Ok(n) => {
                    self.written += n;
                    n > 0
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => false,
                Err(err) => {
                    // The shell closed its stdin (it exited, or stopped reading): the rest is
                    // not wanted. A broken connection shows up on the reading side.
                    tracing::debug!(error = %err, "stdin closed by the host; rest of input dropped");
                    self.stdin_done = true;
                    true
                }
            };
        }
        if self.written < self.input.bytes.len() {
            // Holding the payload back until the marker shows the shell parsed the script.
            return false;
        }
        match self.channel.send_eof() {
            Ok(()) => {
                self.stdin_done = true;
                true
            }
            Err(err) if would_block(&err) => false,
            Err(err) => {
                tracing::debug!(error = %err, "cannot close stdin; the host closed it already");
                self.stdin_done = true;
                true
            }
        }
    }

    /// Reads what stdout and stderr have now. Returns whether bytes came, and whether libssh2
    /// may hold more than the socket shows (so waiting should be brief).
    fn drain(&mut self, buf: &mut [u8]) -> Result<(bool, bool), Failure> {
        let mut progress = false;
        let mut pending = false;
        for stream_id in [0, 1] {
            let (done, sink) = if stream_id == 0 {
                (&mut self.stdout_done, &mut self.stdout)
            } else {
                (&mut self.stderr_done, &mut self.stderr)
            };
            if *done {
                continue;
            }
            let mut stream = self.channel.stream(stream_id);
            for _ in 0..READS_PER_TURN {
                match stream.read(buf) {
                    Ok(0) => {
                        // Zero bytes: end of the channel's data, unless data for the other
                        // stream is still queued (libssh2 masks EOF until it is read).
                        if self.channel.eof() {
                            *done = true;
                            progress = true;
                        } else {
                            pending = true;
                        }
                        break;
                    }
                    Ok(n) => {
                        sink.extend_from_slice(&buf[..n]);
                        progress = true;
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                    Err(err) => {
                        let which = if stream_id == 0 { "stdout" } else { "stderr" };
                        return Err(if err.kind() == ErrorKind::TimedOut {
                            Failure::TimedOut
                        } else {
                            Failure::Ssh(format!("reading {which} failed: {err}"))
                        });
                    }
                }
            }
        }
        Ok((progress, pending))
    }

    /// Finds and removes the ready marker in stdout.
    fn find_marker(&mut self) -> bool {
        let marker = &self.input.marker;
        let start = self.marker_scan;
        let found = self.stdout[start..]
            .windows(marker.len())
            .position(|window| window == marker.as_slice());
        if let Some(at) = found {
            self.stdout.drain(start + at..start + at + marker.len());
            true
        } else {
            self.marker_scan = self.stdout.len().saturating_sub(marker.len() - 1);
            false
        }
    }

    /// Waits until the socket can move in the direction libssh2 is blocked on, for at most a
    /// slice; sends a keepalive when a whole slice passed idle.
    fn wait(&self, deadline: Instant, brief: bool) -> Result<(), Failure> {
        let outbound = matches!(
            self.session.block_directions(),
            BlockDirections::Outbound | BlockDirections::Both
        );
        let mut flags = PollFlags::IN;
        if outbound {
            flags |= PollFlags::OUT;
        }
        let slice = if brief {
            Duration::from_millis(1)
        } else {
            remaining(deadline).min(POLL_SLICE)
        };
        let timeout = Timespec::try_from(slice).unwrap_or(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(self.socket, flags)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) if !brief && !outbound => {
                // Idle (a quiet script): keep middleboxes and the server's alive check happy.
                // Only here, where no packet is half-sent, may another packet be started.
                self.session
                    .keepalive_send()
                    .map(|_| ())
                    .map_err(|err| ssh_failure("keepalive failed", &err))
            }
            Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
            Err(err) => Err(Failure::Ssh(format!("waiting on the socket failed: {err}"))),
        }
    }

    fn exit_status(&self) -> Result<i32, Failure> {
        if let Ok(signal) = self.channel.exit_signal()
            && let Some(name) = signal.exit_signal
        {
            return Ok(128 + signal_number(&name));
        }
        self.channel
            .exit_status()
            .map_err(|err| ssh_failure("no exit status", &err))
    }
}

/// The number of a signal named in an SSH `exit-signal` message (RFC 4254 names, Linux numbers).
fn signal_number(name: &str) -> i32 {
    match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 127,
    }
}
