//! Opening SSH connections: TCP, handshake, host-key check, authentication, all bounded.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hermes_core::seams::{Connector, HostEndpoint, Remote, RemoteError};
use ssh2::{MethodType, Session};

use crate::host_keys::{HostKey, HostKeys, method_preference, mismatch_message};
use crate::session::SshRemote;
use crate::{CONNECT_STEP, Counters, RoundTrips};

/// Extra time the async side waits for a blocking call beyond its own timeout (for name
/// resolution, which has no timeout of its own, and thread scheduling).
pub(crate) const GRACE: Duration = Duration::from_secs(5);

/// The step named in errors of [`scan_host_key`].
const SCAN_STEP: &str = "scan-host-key";

/// How to connect and how long to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    /// The admin private key (OpenSSH format, no passphrase).
    pub private_key: PathBuf,
    /// Limit for opening a connection: TCP connect, handshake and authentication together.
    pub connect_timeout: Duration,
    /// Limit for one operation on an open connection: a whole script run, from opening its
    /// channel to its exit status; also bounds each keepalive.
    pub op_timeout: Duration,
    /// How often a keepalive is sent on an open connection (zero: never). SSH counts it in
    /// whole seconds, at least two.
    pub keepalive: Duration,
}

impl SshConfig {
    /// A configuration with `private_key` and the default limits: 15 s to connect, 10 min per
    /// operation, a keepalive every 30 s.
    pub fn new(private_key: impl Into<PathBuf>) -> Self {
        Self {
            private_key: private_key.into(),
            connect_timeout: Duration::from_secs(15),
            op_timeout: Duration::from_mins(10),
            keepalive: Duration::from_secs(30),
        }
    }
}

/// Opens SSH connections with `ssh2`, checking host keys against a [`HostKeys`].
pub struct SshConnector {
    config: SshConfig,
    host_keys: Arc<dyn HostKeys>,
    counters: Mutex<BTreeMap<String, Arc<Counters>>>,
}

impl std::fmt::Debug for SshConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshConnector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SshConnector {
    /// A connector using `config`, pinning and checking host keys with `host_keys`.
    pub fn new(config: SshConfig, host_keys: Arc<dyn HostKeys>) -> Self {
        Self {
            config,
            host_keys,
            counters: Mutex::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &SshConfig {
        &self.config
    }

    /// Connections and exec channels so far, by host name.
    pub fn round_trips(&self) -> BTreeMap<String, RoundTrips> {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(host, counters)| (host.clone(), counters.snapshot()))
            .collect()
    }

    /// Connects and authenticates to `endpoint` like [`Connector::connect`], keeping the
    /// concrete type (for [`SshRemote::round_trips`] and [`SshRemote::host_key`]).
    pub async fn open(&self, endpoint: &HostEndpoint) -> Result<SshRemote, RemoteError> {
        let counters = Arc::clone(
            self.counters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(endpoint.host.clone())
                .or_default(),
        );
        let config = self.config.clone();
        let host_keys = Arc::clone(&self.host_keys);
        let target = endpoint.clone();
        let started = Instant::now();
        let opened = bounded(endpoint, CONNECT_STEP, config.connect_timeout, move || {
            connect_blocking(&config, &target, host_keys.as_ref(), &counters)
        })
        .await?;
        tracing::debug!(
            host = %endpoint.host,
            address = %display_address(endpoint),
            elapsed_ms = started.elapsed().as_millis(),
            "ssh connected"
        );
        Ok(opened)
    }
}

#[async_trait]
impl Connector for SshConnector {
    async fn connect(&self, endpoint: &HostEndpoint) -> Result<Arc<dyn Remote>, RemoteError> {
        Ok(Arc::new(self.open(endpoint).await?))
    }
}

/// Reads the key `endpoint` presents, without authenticating and without consulting or changing
/// any pinned key (for `hermes-infra ssh` and for tests). Prefers an ed25519 key.
pub async fn scan_host_key(
    endpoint: &HostEndpoint,
    timeout: Duration,
) -> Result<HostKey, RemoteError> {
    let target = endpoint.clone();
    bounded(endpoint, SCAN_STEP, timeout, move || {
        let deadline = Instant::now() + timeout;
        let (session, _socket) = open_transport(&target, SCAN_STEP, deadline, None)?;
        let key = presented_key(&session, &target, SCAN_STEP);
        let _ = session.disconnect(None, "host key read", None);
        key
    })
    .await
}

/// Runs blocking `work` on tokio's blocking pool, waiting at most `limit` plus [`GRACE`].
pub(crate) async fn bounded<T, F>(
    endpoint: &HostEndpoint,
    step: &str,
    limit: Duration,
    work: F,
) -> Result<T, RemoteError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, RemoteError> + Send + 'static,
{
    let task = tokio::task::spawn_blocking(work);
    match tokio::time::timeout(limit + GRACE, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(remote_error(
            endpoint,
            step,
            format!("the SSH worker thread failed: {join}"),
        )),
        Err(_) => Err(remote_error(
            endpoint,
            step,
            format!(
                "no answer from {} within {}",
                display_address(endpoint),
                seconds(limit + GRACE)
            ),
        )),
    }
}

fn connect_blocking(
    config: &SshConfig,
    endpoint: &HostEndpoint,
    host_keys: &dyn HostKeys,
    counters: &Arc<Counters>,
) -> Result<SshRemote, RemoteError> {
    let deadline = Instant::now() + config.connect_timeout;
    let fail = |message: String| remote_error(endpoint, CONNECT_STEP, message);
    let address = display_address(endpoint);

    if let Err(err) = std::fs::metadata(&config.private_key) {
        return Err(fail(format!(
            "the admin key `{}` cannot be read: {err}",
            config.private_key.display()
        )));
    }

    let pinned = match host_keys.pinned(&endpoint.host) {
        Some(line) => Some(HostKey::parse(&line).map_err(|err| {
            fail(format!(
                "the host key pinned in state cannot be read ({err}); accept the current key \
                 deliberately with `{}`",
                crate::accept_new_key_command(&endpoint.host)
            ))
        })?),
        None => None,
    };

    let (session, socket) = open_transport(endpoint, CONNECT_STEP, deadline, pinned.as_ref())?;
    counters.connection_opened();

    let presented = presented_key(&session, endpoint, CONNECT_STEP)?;
    if let Some(pinned) = &pinned
        && *pinned != presented
    {
        let _ = session.disconnect(None, "host key mismatch", None);
        return Err(fail(mismatch_message(
            &endpoint.host,
            &address,
            &presented,
            pinned,
        )));
    }

    session.set_timeout(timeout_ms(remaining(deadline)));
    if let Err(err) = session.userauth_pubkey_file(&endpoint.user, None, &config.private_key, None)
    {
        let _ = session.disconnect(None, "authentication failed", None);
        return Err(fail(if is_timeout(&err) {
            format!(
                "{address} did not finish authentication within {}",
                seconds(config.connect_timeout)
            )
        } else {
            format!(
                "{address} refused the admin key `{}` for user `{}` ({}); check that its public \
                 key is in that user's authorized_keys",
                config.private_key.display(),
                endpoint.user,
                err.message()
            )
        }));
    }
    if !session.authenticated() {
        return Err(fail(format!(
            "{address} did not accept user `{}` with the admin key `{}`",
            endpoint.user,
            config.private_key.display()
        )));
    }

    if pinned.is_none() {
        host_keys
            .pin(&endpoint.host, &presented.openssh())
            .map_err(|message| fail(format!("host key {presented} not pinned: {message}")))?;
        tracing::info!(host = %endpoint.host, key = %presented, "pinned host key at first contact");
    }

    SshRemote::start(
        endpoint.clone(),
        session,
        socket,
        presented,
        Arc::clone(counters),
        config,
    )
}

/// TCP connect and SSH handshake, both before `deadline`. Returns the session and a clone of
/// its socket (for waiting on it).
fn open_transport(
    endpoint: &HostEndpoint,
    step: &str,
    deadline: Instant,
    pinned: Option<&HostKey>,
) -> Result<(Session, TcpStream), RemoteError> {
    let fail = |message: String| remote_error(endpoint, step, message);
    let address = display_address(endpoint);

    let addrs: Vec<SocketAddr> = (endpoint.address.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|err| fail(format!("cannot resolve `{}`: {err}", endpoint.address)))?
        .collect();
    let mut last_error = None;
    let mut stream = None;
    for addr in addrs {
        let left = remaining(deadline);
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(tcp) => {
                stream = Some(tcp);
                break;
            }
            Err(err) => last_error = Some(err),
        }
    }
    let tcp = stream.ok_or_else(|| {
        fail(match last_error {
            Some(err) if err.kind() == std::io::ErrorKind::TimedOut => {
                format!("no TCP answer from {address} before the connect timeout")
            }
            Some(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => format!(
                "{address} refused the TCP connection; is sshd running there and the port open?"
            ),
            Some(err) => format!("cannot open a TCP connection to {address}: {err}"),
            None => format!("no address to connect to for {address} before the connect timeout"),
        })
    })?;
    let _ = tcp.set_nodelay(true);
    let socket = tcp
        .try_clone()
        .map_err(|err| fail(format!("cannot use the socket to {address}: {err}")))?;

    let mut session =
        Session::new().map_err(|err| fail(format!("cannot start an SSH session: {err}")))?;
    session.set_tcp_stream(tcp);
    session.set_blocking(true);
    session.set_timeout(timeout_ms(remaining(deadline)));
    session
        .method_pref(MethodType::HostKey, &method_preference(pinned))
        .map_err(|err| fail(format!("cannot set host-key preferences: {err}")))?;
    session.handshake().map_err(|err| {
        fail(if is_timeout(&err) {
            format!("{address} accepted TCP but did not complete the SSH handshake in time")
        } else {
            format!("SSH handshake with {address} failed: {}", err.message())
        })
    })?;
    Ok((session, socket))
}

fn presented_key(
    session: &Session,
    endpoint: &HostEndpoint,
    step: &str,
) -> Result<HostKey, RemoteError> {
    let (blob, _) = session
        .host_key()
        .ok_or_else(|| remote_error(endpoint, step, "the host presented no host key".to_owned()))?;
    HostKey::from_blob(blob).map_err(|err| {
        remote_error(
            endpoint,
            step,
            format!("the host key cannot be read: {err}"),
        )
    })
}

pub(crate) fn remote_error(endpoint: &HostEndpoint, step: &str, message: String) -> RemoteError {
    RemoteError {
        host: endpoint.host.clone(),
        step: step.to_owned(),
        message,
    }
}

/// `10.0.0.5:22`, `[2001:db8::1]:22`.
pub(crate) fn display_address(endpoint: &HostEndpoint) -> String {
    if endpoint.address.contains(':') {
        format!("[{}]:{}", endpoint.address, endpoint.port)
    } else {
        format!("{}:{}", endpoint.address, endpoint.port)
    }
}

pub(crate) fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// A libssh2 timeout in milliseconds; never 0, which would mean "no timeout".
pub(crate) fn timeout_ms(limit: Duration) -> u32 {
    u32::try_from(limit.as_millis()).unwrap_or(u32::MAX).max(1)
}

/// libssh2's codes for a blocking call that ran out of time.
pub(crate) fn is_timeout(err: &ssh2::Error) -> bool {
    const LIBSSH2_ERROR_TIMEOUT: i32 = -9;
    const LIBSSH2_ERROR_SOCKET_TIMEOUT: i32 = -30;
    matches!(
        err.code(),
        ssh2::ErrorCode::Session(LIBSSH2_ERROR_TIMEOUT | LIBSSH2_ERROR_SOCKET_TIMEOUT)
    )
}

pub(crate) fn seconds(limit: Duration) -> String {
    let secs = limit.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs:.0}s")
    } else {
        format!("{secs:.1}s")
    }
}
