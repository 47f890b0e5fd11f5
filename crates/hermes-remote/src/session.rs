//! One open SSH session per host: scripts on exec channels, keepalives, bounded waits.

use std::net::TcpStream;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError, TryLockError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hermes_core::seams::{ExecOutput, HostEndpoint, Remote, RemoteError};
use ssh2::Session;

use crate::connector::{
    SshConfig, bounded, display_address, remaining, remote_error, seconds, timeout_ms,
};
use crate::exec::{Failure, Input, Pump, ssh_failure};
use crate::host_keys::HostKey;
use crate::{Counters, RoundTrips};

/// The command every script runs under (see [`crate::exec`] for how stdin is framed).
const SHELL: &str = "sh -s";
/// How long cleanup after a failed run may block.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(2);

/// An open, authenticated SSH connection to one host; runs are serialized on it.
pub struct SshRemote {
    endpoint: HostEndpoint,
    host_key: HostKey,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    op_timeout: Duration,
    _keepalive: Option<Keepalive>,
}

impl std::fmt::Debug for SshRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshRemote")
            .field("endpoint", &self.endpoint)
            .field("host_key", &self.host_key)
            .finish_non_exhaustive()
    }
}

struct Shared {
    conn: Mutex<Conn>,
}

struct Conn {
    session: Session,
    /// A clone of the session's socket, to wait on.
    socket: TcpStream,
    /// Why the session can no longer be used, after a failure that may have left it mid-way.
    broken: Option<String>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.broken.is_none() {
            self.session.set_blocking(true);
            self.session.set_timeout(timeout_ms(CLEANUP_TIMEOUT));
            let _ = self.session.disconnect(None, "hermes-infra is done", None);
        }
    }
}

impl SshRemote {
    pub(crate) fn start(
        endpoint: HostEndpoint,
        session: Session,
        socket: TcpStream,
        host_key: HostKey,
        counters: Arc<Counters>,
        config: &SshConfig,
    ) -> Result<Self, RemoteError> {
        let keepalive_secs = if config.keepalive.is_zero() {
            0
        } else {
            u32::try_from(config.keepalive.as_secs())
                .unwrap_or(u32::MAX)
                .max(2)
        };
        session.set_keepalive(false, keepalive_secs);
        session.set_timeout(timeout_ms(config.op_timeout));
        let shared = Arc::new(Shared {
            conn: Mutex::new(Conn {
                session,
                socket,
                broken: None,
            }),
        });
        let keepalive = if keepalive_secs == 0 {
            None
        } else {
            Some(
                Keepalive::spawn(
                    Arc::downgrade(&shared),
                    Duration::from_secs(keepalive_secs.into()),
                    &endpoint.host,
                )
                .map_err(|err| {
                    remote_error(
                        &endpoint,
                        crate::CONNECT_STEP,
                        format!("cannot start the keepalive thread: {err}"),
                    )
                })?,
            )
        };
        Ok(Self {
            endpoint,
            host_key,
            shared,
            counters,
            op_timeout: config.op_timeout,
            _keepalive: keepalive,
        })
    }

    /// The host this connection goes to.
    pub fn endpoint(&self) -> &HostEndpoint {
        &self.endpoint
    }

    /// The key the host presented (the pinned one, or the one pinned at this first contact).
    pub fn host_key(&self) -> &HostKey {
        &self.host_key
    }

    /// Connections and exec channels to this host so far (shared with the connector's
    /// per-host count, so reconnects show up here too).
    pub fn round_trips(&self) -> RoundTrips {
        self.counters.snapshot()
    }
}

#[async_trait]
impl Remote for SshRemote {
    /// Runs `script` with `sh -s`, `payload` following it on stdin. The operation timeout counts
    /// from this call (waiting for another run on the same connection included). A non-zero
    /// exit is reported in [`ExecOutput::status`], a death by signal as `128 + signal`; a
    /// failure of the connection itself is an error, after which the connection refuses further
    /// runs. The run ends when the shell exited and closed stdout and stderr: a background
    /// process left holding them keeps the run going until the timeout.
    async fn run(
        &self,
        step: &str,
        script: &str,
        payload: &[u8],
    ) -> Result<ExecOutput, RemoteError> {
        let shared = Arc::clone(&self.shared);
        let counters = Arc::clone(&self.counters);
        let endpoint = self.endpoint.clone();
        let owned_step = step.to_owned();
        let input = Input::new(script, payload);
        let limit = self.op_timeout;
        let started = Instant::now();
        let result = bounded(&self.endpoint, step, limit, move || {
            let deadline = started + limit;
            run_blocking(
                &shared,
                &counters,
                &endpoint,
                &owned_step,
                &input,
                deadline,
                limit,
            )
        })
        .await;
        match &result {
            Ok(output) => {
                tracing::debug!(
                    host = %self.endpoint.host,
                    step,
                    status = output.status,
                    stdout_bytes = output.stdout.len(),
                    stderr_bytes = output.stderr.len(),
                    elapsed_ms = started.elapsed().as_millis(),
                    "ssh run finished"
                );
            }
            Err(err) => {
                tracing::debug!(host = %self.endpoint.host, step, error = %err, "ssh run failed");
            }
        }
        result
    }
}

fn run_blocking(
    shared: &Shared,
    counters: &Counters,
    endpoint: &HostEndpoint,
    step: &str,
    input: &Input,
    deadline: Instant,
    limit: Duration,
) -> Result<ExecOutput, RemoteError> {
    let mut conn = shared.conn.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(reason) = &conn.broken {
        return Err(remote_error(
            endpoint,
            step,
            format!(
                "the connection to {} is unusable since an earlier failure ({reason}); nothing \
                 was run",
                display_address(endpoint)
            ),
        ));
    }
    if remaining(deadline).is_zero() {
        return Err(remote_error(
            endpoint,
            step,
            format!(
                "waited {} for an earlier run on the same connection; nothing was run",
                seconds(limit)
            ),
        ));
    }
    match conn.exec(counters, input, deadline) {
        Ok(output) => Ok(output),
        Err(failure) => {
            let message = match failure {
                Failure::TimedOut => format!(
                    "did not finish within {}; the connection was dropped (the script may \
                     still be running on the host)",
                    seconds(limit)
                ),
                Failure::Ssh(message) => format!(
                    "{message}; the connection to {} was dropped",
                    display_address(endpoint)
                ),
            };
            conn.broken = Some(message.clone());
            Err(remote_error(endpoint, step, message))
        }
    }
}

impl Conn {
    fn exec(
        &self,
        counters: &Counters,
        input: &Input,
        deadline: Instant,
    ) -> Result<ExecOutput, Failure> {
        let session = &self.session;
        session.set_blocking(true);
        session.set_timeout(timeout_ms(remaining(deadline)));
        session
            .keepalive_send()
            .map_err(|err| ssh_failure("keepalive failed", &err))?;
        let mut channel = session
            .channel_session()
            .map_err(|err| ssh_failure("cannot open a channel", &err))?;
        counters.exec_channel_opened();
        let result = channel
            .exec(SHELL)
            .map_err(|err| ssh_failure("cannot start `sh -s`", &err))
            .and_then(|()| {
                session.set_blocking(false);
                let pumped = Pump::new(session, &self.socket, &mut channel, input).run(deadline);
                session.set_blocking(true);
                pumped
            });
        if result.is_err() {
            session.set_timeout(timeout_ms(CLEANUP_TIMEOUT));
        }
        drop(channel);
        result
    }
}

/// A thread sending keepalives on an idle session; stops when the remote is dropped.
struct Keepalive {
    _stop: mpsc::Sender<()>,
}

impl Keepalive {
    fn spawn(shared: Weak<Shared>, every: Duration, host: &str) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let host = host.to_owned();
        std::thread::Builder::new()
            .name(format!("ssh-keepalive-{host}"))
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    let Some(shared) = shared.upgrade() else {
                        break;
                    };
                    let mut conn = match shared.conn.try_lock() {
                        Ok(conn) => conn,
                        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                        // A run holds the session and sends its own keepalives.
                        Err(TryLockError::WouldBlock) => continue,
                    };
                    if conn.broken.is_some() {
                        break;
                    }
                    if let Err(err) = conn.session.keepalive_send() {
                        tracing::debug!(%host, error = %err, "ssh keepalive failed");
                        conn.broken = Some(format!("keepalive failed: {}", err.message()));
                        break;
                    }
                }
            })?;
        Ok(Self { _stop: stop })
    }
}
