//! The seams where effects happen. The engine drives plans through these traits only; the CLI
//! wires real implementations (Docker, Hetzner, AWS, SSH, files) and tests wire in-memory fakes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::resource::{Address, Kind, ObservedResource, Resource, Scope};
use crate::secret::{Secret, SecretRef};

/// A failure reported by a [`Provider`]. Only what the engine branches on is distinguished.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The object is gone.
    #[error("`{0}` was not found")]
    NotFound(String),
    /// The API asked us to slow down; retrying after the delay may succeed.
    #[error("rate limited; retry after {retry_after:?}")]
    RateLimited {
        /// How long the API asked us to wait.
        retry_after: Duration,
    },
    /// Credentials are missing or refused.
    #[error("not authorized: {0}")]
    Auth(String),
    /// A passing failure (timeout, 5xx, locked object); the same call may succeed later.
    #[error("{0} (temporary)")]
    Transient(String),
    /// Anything else, with a message that names the object and what to do.
    #[error("{0}")]
    Other(String),
}

/// A failure to resolve a [`SecretRef`]. Names the reference, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resolve secret `{reference}`: {reason}")]
pub struct SecretError {
    /// The reference that could not be resolved.
    pub reference: SecretRef,
    /// Why, and what to do.
    pub reason: String,
}

/// Resolves secret references at apply time.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The value behind `reference`.
    async fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError>;
}

/// What a step may look at while it runs.
#[derive(Clone)]
pub struct StepContext {
    /// The stack and environment.
    pub scope: Scope,
    /// Secret resolution.
    pub secrets: Arc<dyn SecretSource>,
    /// The world as known when the step started: everything observed, updated with the results
    /// of the steps finished so far (so an agent step finds the address of the host just created).
    pub world: Arc<BTreeMap<Address, ObservedResource>>,
    /// The hash of the plan being applied (for audit records on hosts).
    pub plan_hash: String,
    /// Who is applying it (`user@machine (pid N)`, as recorded in the lock).
    pub holder: String,
    /// Who is applying it, as hosts record it in their audit log (`--actor`, or
    /// `user@machine`): no process id, nothing that needs quoting.
    pub actor: Actor,
}

/// Observes and changes resources of some kinds: a cloud (hosts, keys, firewalls), the local
/// Docker engine, or the hosts themselves over SSH (hardening, agents).
#[async_trait]
pub trait Provider: Send + Sync {
    /// A short name for messages (`local`, `hetzner`, `aws`, `ssh`).
    fn name(&self) -> &str;
    /// The kinds this provider manages.
    fn kinds(&self) -> &[Kind];
    /// Everything of those kinds that carries `scope`'s ownership labels.
    async fn observe(
        &self,
        scope: &Scope,
        world: &BTreeMap<Address, ObservedResource>,
    ) -> Result<Vec<ObservedResource>, ProviderError>;
    /// Creates `desired` and reports what now exists.
    async fn create(
        &self,
        desired: &Resource,
        ctx: &StepContext,
    ) -> Result<ObservedResource, ProviderError>;
    /// Changes `observed` in place to match `desired`.
    async fn update(
        &self,
        desired: &Resource,
        observed: &ObservedResource,
        ctx: &StepContext,
    ) -> Result<ObservedResource, ProviderError>;
    /// Deletes `observed` (it carries our ownership labels; the engine checked).
    async fn delete(
        &self,
        observed: &ObservedResource,
        ctx: &StepContext,
    ) -> Result<(), ProviderError>;
}

/// Where and how to reach a host over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEndpoint {
    /// The host's name in the stack.
    pub host: String,
    /// IP address or DNS name.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Admin user.
    pub user: String,
}

/// What a remote script printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status.
    pub status: i32,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// A failure talking to a host; names the host and the step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host `{host}`, step `{step}`: {message}")]
pub struct RemoteError {
    /// The host's name.
    pub host: String,
    /// The step (`connect`, `facts`, `hardening`, ...).
    pub step: String,
    /// What went wrong and what to do.
    pub message: String,
}

/// One open connection to one host, kept for the whole run.
#[async_trait]
pub trait Remote: Send + Sync {
    /// Runs `script` with `sh -s` on the host, feeding `payload` after it (a tar stream of
    /// files, for example). `step` names the work for messages and timeouts.
    async fn run(
        &self,
        step: &str,
        script: &str,
        payload: &[u8],
    ) -> Result<ExecOutput, RemoteError>;
}

/// Opens connections to hosts.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Connects and authenticates to `endpoint`, checking its pinned host key.
    async fn connect(&self, endpoint: &HostEndpoint) -> Result<Arc<dyn Remote>, RemoteError>;
}

/// The small state kept per stack and environment. It never holds secret values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Incremented on every save.
    pub serial: u64,
    /// Digest of the last plan applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_plan_hash: Option<String>,
    /// SSH host keys pinned at first contact, by host name (`ssh-ed25519 AAAA...`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_keys: BTreeMap<String, String>,
    /// The SSH port each host was last configured to listen on, by host name; a host not
    /// listed listens on [`crate::resource::FRESH_HOST_SSH_PORT`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ssh_ports: BTreeMap<String, u16>,
    /// Image ids deployed per agent, oldest first; the last is the one running (see
    /// [`State::record_image`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub image_history: BTreeMap<String, Vec<String>>,
}

/// How many image ids the state keeps per agent.
pub const IMAGE_HISTORY_LEN: usize = 10;

impl State {
    /// The port `host`'s sshd listens on, as far as the state knows.
    pub fn ssh_port(&self, host: &str) -> u16 {
        self.ssh_ports
            .get(host)
            .copied()
            .unwrap_or(crate::resource::FRESH_HOST_SSH_PORT)
    }

    /// Records that `agent` now runs image `id`. The history reads like a stack of releases:
    /// the same id again changes nothing; the id before the last (a rollback, or a stack set
    /// back to the earlier release) takes the last off, so that the next rollback goes further
    /// back; any other id goes on top, and the oldest beyond [`IMAGE_HISTORY_LEN`] are dropped.
    /// Returns whether the history changed.
    pub fn record_image(&mut self, agent: &str, id: &str) -> bool {
        let history = self.image_history.entry(agent.to_owned()).or_default();
        match history.as_slice() {
            [.., last] if last == id => return false,
            [.., before, _] if before == id => {
                history.pop();
            }
            _ => {
                history.push(id.to_owned());
                let excess = history.len().saturating_sub(IMAGE_HISTORY_LEN);
                history.drain(..excess);
            }
        }
        true
    }

    /// The image `agent` ran before the one it runs now, as far as the state knows: where
    /// `rollback` returns it.
    pub fn previous_image(&self, agent: &str) -> Option<&str> {
        match self.image_history.get(agent)?.as_slice() {
            [.., before, _] => Some(before),
            _ => None,
        }
    }
}

/// Who holds a lock, since when, for what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// A random id naming this holding of the lock.
    pub id: String,
    /// `user@machine (pid N)`.
    pub holder: String,
    /// The operation (`apply`, `destroy`, ...).
    pub operation: String,
    /// When the lock was taken, in seconds since the Unix epoch.
    pub created_unix: u64,
    /// After this many seconds the lock is considered abandoned and may be taken over.
    pub ttl_secs: u64,
    /// The plan being applied, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
}

/// The answer to a lock attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    /// The lock is ours.
    Acquired,
    /// Someone else holds it.
    HeldBy(LockInfo),
}

/// A failure of the state backend; names the backend and the object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state backend {backend}: {message}")]
pub struct StateError {
    /// The backend (`local file /path/...`, `s3://bucket/key`).
    pub backend: String,
    /// What went wrong and what to do.
    pub message: String,
}

/// Stores [`State`] per stack and environment, guarded by a lock with a TTL.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Where the state lives, for messages.
    fn describe(&self, scope: &Scope) -> String;
    /// Takes the lock for `scope` unless a live lock is held by someone else. A lock older than
    /// its TTL is taken over.
    async fn try_lock(&self, scope: &Scope, info: &LockInfo) -> Result<LockAttempt, StateError>;
    /// Releases the lock with id `lock_id` (a lock held by someone else is left alone).
    async fn unlock(&self, scope: &Scope, lock_id: &str) -> Result<(), StateError>;
    /// The state, or the default state when none was saved yet.
    async fn load(&self, scope: &Scope) -> Result<State, StateError>;
    /// Saves the state; refuses unless `lock_id` holds the lock.
    async fn save(&self, scope: &Scope, state: &State, lock_id: &str) -> Result<(), StateError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(state: &State) -> Vec<&str> {
        state.image_history["a"]
            .iter()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn image_history_is_a_stack_of_releases() {
        let mut state = State::default();
        assert!(state.record_image("a", "1"));
        assert_eq!(
            state.previous_image("a"),
            None,
            "one release: nothing before"
        );
        assert!(!state.record_image("a", "1"), "the same id again");
        assert!(state.record_image("a", "2"));
        assert!(state.record_image("a", "3"));
        assert_eq!(state.previous_image("a"), Some("2"));
        // A rollback to 2 takes 3 off; the next goes back to 1.
        assert!(state.record_image("a", "2"));
        assert_eq!(history(&state), ["1", "2"]);
        assert_eq!(state.previous_image("a"), Some("1"));
        // A release neither last nor before it goes on top.
        assert!(state.record_image("a", "1"));
        assert!(state.record_image("a", "4"));
        assert_eq!(history(&state), ["1", "4"]);
        assert!(state.record_image("a", "1"));
        assert!(state.record_image("a", "5"));
        assert!(state.record_image("a", "4"));
        assert_eq!(history(&state), ["1", "5", "4"]);
    }

    #[test]
    fn image_history_keeps_the_newest_releases() {
        let mut state = State::default();
        for id in 0..25 {
            state.record_image("a", &id.to_string());
        }
        let kept = history(&state);
        assert_eq!(kept.len(), IMAGE_HISTORY_LEN);
        assert_eq!(kept.first(), Some(&"15"));
        assert_eq!(kept.last(), Some(&"24"));
    }
}
