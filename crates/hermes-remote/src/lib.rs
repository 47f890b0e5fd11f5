//! Talking to hosts over SSH with `ssh2`: the real [`Connector`] and [`Remote`] of hermes-infra.
//!
//! What it does:
//! - [`SshConnector`] opens one SSH connection per host (TCP connect, handshake preferring
//!   ed25519 host keys, public-key authentication with the admin key) and hands back an
//!   [`SshRemote`] that keeps that one session open for the whole run, sends keepalives, and runs
//!   each script on its own exec channel with `sh -s`, feeding a payload after the script.
//! - Host keys are pinned at first contact through the caller's [`HostKeys`]; a changed key is
//!   refused before any credential is sent, with the command to accept it deliberately.
//! - Every blocking call is bounded (connect timeout, per-operation timeout); every error is a
//!   [`RemoteError`] naming the host and the step.
//! - It counts connections and exec channels per host ([`RoundTrips`]).
//! - [`ensure_admin_key`] makes an ed25519 admin key in OpenSSH format when hermes-infra needs
//!   one of its own (local stacks).
//!
//! What it does not do: it never decides what to run, and it knows nothing of stacks, plans,
//! providers or state files; the caller gives it scripts, payloads and pinned keys, and records
//! newly pinned keys itself. It never logs scripts, payloads, output or key material.
//!
//! [`Connector`]: hermes_core::seams::Connector
//! [`Remote`]: hermes_core::seams::Remote
//! [`RemoteError`]: hermes_core::seams::RemoteError

mod connector;
mod exec;
mod host_keys;
mod keygen;
mod session;

use std::sync::atomic::{AtomicU64, Ordering};

pub use connector::{SshConfig, SshConnector, scan_host_key};
pub use host_keys::{HostKey, HostKeys, PinnedHostKeys, accept_new_key_command};
pub use keygen::{AdminKey, KeyError, ensure_admin_key, generate_admin_key};
pub use session::SshRemote;

/// The step named in errors raised while connecting (TCP, handshake, host key, authentication).
pub const CONNECT_STEP: &str = "connect";

/// What crossed the wire to one host, for the "round trips per host" report.
///
/// A new connection costs about five to six network round trips (TCP, version exchange, key
/// exchange, service request, authentication); each exec channel about three more (open, exec,
/// output and close).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundTrips {
    /// SSH connections opened to the host (handshake completed, whether or not the host key
    /// and authentication were then accepted).
    pub connections: u64,
    /// Exec channels opened (one per script run).
    pub exec_channels: u64,
}

/// Live counters for one host, shared between the connector and the host's remote.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    exec_channels: AtomicU64,
}

impl Counters {
    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn exec_channel_opened(&self) {
        self.exec_channels.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RoundTrips {
        RoundTrips {
            connections: self.connections.load(Ordering::Relaxed),
            exec_channels: self.exec_channels.load(Ordering::Relaxed),
        }
    }
}
