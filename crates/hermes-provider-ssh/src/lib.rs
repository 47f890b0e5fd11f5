//! The SSH host provider: observes and applies the host-level resources (`host-hardening`,
//! `docker-engine`) and the agents of hosts that another provider created, through one SSH
//! connection per host for the whole run.
//!
//! - Observation is one facts script per host (one exec round trip after authentication),
//!   hosts in parallel up to a bound. The facts carry each phase's manifest and the current
//!   digests of its files, so a hand-edited managed file shows as drift in `plan`.
//! - A phase is one idempotent script fed one tar stream of rendered files; a service reloads
//!   only when its files changed. A no-op apply therefore costs the facts round trip alone.
//! - Changes to sshd or the firewall never lock the admin out: they are syntax-checked, a timer on
//!   the host arms their revert, a fresh login (a second connection, `sudo -n true`) is tested
//!   while the first session stays open, and only then is the change confirmed; a failed login
//!   reverts it at once.
//! - Kernel-level settings are rendered only for hosts that own their kernel; what is left out is
//!   reported ([`SshHostProvider::host_reports`]), never silently skipped.
//!
//! - Images reach hosts without a registry over the same connection ([`SshHostProvider::send_image`]).
//!
//! It knows nothing of clouds: it finds hosts' addresses in the world other providers observed.

mod agents;
mod apply;
mod connections;
mod facts;
mod images;
mod manifest;
mod payload;
mod pull;
mod scripts;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use hermes_core::seams::{ExecOutput, HostEndpoint, Provider, ProviderError, StepContext};
use hermes_core::{Address, Kind, ObservedResource, Resource, Scope};
use hermes_remote::{HostKeys, PinnedHostKeys, RoundTrips, SshConfig, SshConnector};
use hermes_render::Phase;

use crate::connections::Inner;

pub use images::{HostImage, IMAGE_CHUNK, ImageSource, ImageTransfer};

/// Default number of hosts observed at once.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// Default time after which a host reverts an sshd or firewall change nobody confirmed.
pub const DEFAULT_REVERT_AFTER: Duration = Duration::from_mins(2);

/// What the state remembers of how to reach each host, by host name.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    /// Host keys pinned when the hosts were created (`ssh-ed25519 AAAA...`).
    pub host_keys: BTreeMap<String, String>,
    /// The port each host's sshd was last configured with; a host not listed listens on
    /// [`hermes_core::resource::FRESH_HOST_SSH_PORT`].
    pub ssh_ports: BTreeMap<String, u16>,
}

impl KnownHosts {
    /// What `state` remembers.
    pub fn from_state(state: &hermes_core::seams::State) -> Self {
        Self {
            host_keys: state.host_keys.clone(),
            ssh_ports: state.ssh_ports.clone(),
        }
    }
}

/// How the provider reaches hosts and what it adds to the stack's settings.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// The admin user on every host.
    pub admin_user: String,
    /// The stack's SSH port: where `host-hardening` moves sshd. Until it has, a host is reached
    /// on the port the state remembers for it (see [`KnownHosts`]).
    pub port: u16,
    /// Public keys allowed to log in besides the stack's (hermes-infra's own key on local
    /// stacks), so that hardening never removes the key the tool logs in with.
    pub extra_keys: Vec<String>,
    /// Hosts observed at once.
    pub concurrency: usize,
    /// When an unconfirmed sshd or firewall change is reverted by the host itself.
    pub revert_after: Duration,
    /// The egress proxy image's reference: this machine's tag that `image push` sends to hosts
    /// with agents, or where hosts pull it from the registry.
    pub egress_image: String,
    /// The registry hosts pull agent images from (none: images go over SSH).
    pub registry: Option<RegistryAccess>,
}

/// How hosts reach the stack's registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAccess {
    /// `host[:port]`.
    pub server: String,
    /// The login's user (none: the registry needs no login).
    pub username: Option<String>,
    /// The login's password, as a reference.
    pub password: Option<hermes_core::SecretRef>,
    /// The CA to trust for the registry's certificate, as a reference.
    pub ca: Option<hermes_core::SecretRef>,
}

/// What the provider did on one host during this run, for the CLI's report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostReport {
    /// SSH connections opened (one per run, one more for each fresh-login test).
    pub connections: u64,
    /// Scripts run (exec round trips after authentication).
    pub exec_round_trips: u64,
    /// Files changed, by phase.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub changed: BTreeMap<String, Vec<String>>,
    /// Settings left out on this host, with the reason, by phase.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub not_applicable: BTreeMap<String, Vec<String>>,
}

/// Host hardening and the Docker engine, over SSH.
#[derive(Clone)]
pub struct SshHostProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SshHostProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshHostProvider")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

const KINDS: [Kind; 4] = [
    Kind::HostHardening,
    Kind::DockerEngine,
    Kind::ReverseProxy,
    Kind::Agent,
];

fn phase_of(kind: Kind) -> Option<Phase> {
    match kind {
        Kind::HostHardening => Some(Phase::HostHardening),
        Kind::DockerEngine => Some(Phase::DockerEngine),
        Kind::ReverseProxy => Some(Phase::ReverseProxy),
        _ => None,
    }
}

impl SshHostProvider {
    /// A provider connecting with `ssh`, checking host keys against those `known` from the state
    /// and connecting to the ports it remembers. Keys of hosts created in this run are pinned
    /// from what their provider read. Agents' images come from `images` when their host lacks
    /// them (without a source, an agent on such a host fails, naming `image push`).
    pub fn new(
        ssh: SshConfig,
        known: KnownHosts,
        settings: SshSettings,
        images: Option<Arc<dyn ImageSource>>,
    ) -> Self {
        let host_keys = Arc::new(PinnedHostKeys::new(known.host_keys));
        let connector = SshConnector::new(ssh, Arc::clone(&host_keys) as Arc<dyn HostKeys>);
        Self {
            inner: Arc::new(Inner {
                connector,
                host_keys,
                settings,
                ports: Mutex::new(known.ssh_ports),
                fresh: Mutex::default(),
                slots: Mutex::default(),
                reports: Mutex::default(),
                images,
            }),
        }
    }

    /// What was done on each host so far, with the round trips counted by the connector.
    pub fn host_reports(&self) -> BTreeMap<String, HostReport> {
        let mut reports = self
            .inner
            .reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for (
            host,
            RoundTrips {
                connections,
                exec_channels,
            },
        ) in self.inner.connector.round_trips()
        {
            let report = reports.entry(host).or_default();
            report.connections = connections;
            report.exec_round_trips = exec_channels;
        }
        reports
    }
}

impl SshHostProvider {
    /// Runs `script` as root on `host` (found in `world`, as observed by the hosts' provider)
    /// over the run's connection, for commands beyond apply (`audit`). `step` names the work in
    /// messages and timeouts. A non-zero exit is in the output, not an error.
    pub async fn run_as_root(
        &self,
        host: &str,
        world: &BTreeMap<Address, ObservedResource>,
        step: &str,
        script: &str,
    ) -> Result<ExecOutput, ProviderError> {
        let remote = self.inner.remote(host, world).await?;
        match hermes_core::seams::Remote::run(remote.as_ref(), step, &scripts::as_root(script), &[])
            .await
        {
            Ok(output) => Ok(output),
            Err(e) => {
                self.inner.drop_remote(host).await;
                Err(ProviderError::Transient(e.to_string()))
            }
        }
    }

    /// Where `host` is reached (address, port, user), from `world`.
    pub fn endpoint(
        &self,
        host: &str,
        world: &BTreeMap<Address, ObservedResource>,
    ) -> Result<HostEndpoint, ProviderError> {
        self.inner.endpoint(host, world)
    }
}

/// Every host in the world: whether its setup can be read (running, with an address), by name.
fn hosts_in(world: &BTreeMap<Address, ObservedResource>) -> Vec<(String, bool)> {
    world
        .values()
        .filter(|o| o.address.kind == Kind::Host)
        .map(|o| {
            let running = o.attrs.get("state").and_then(|v| v.as_str()) == Some("running")
                && o.attrs.contains_key("address");
            (o.address.name.clone(), running)
        })
        .collect()
}

#[async_trait]
impl Provider for SshHostProvider {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn kinds(&self) -> &[Kind] {
        &KINDS
    }

    async fn observe(
        &self,
        _scope: &Scope,
        world: &BTreeMap<Address, ObservedResource>,
    ) -> Result<Vec<ObservedResource>, ProviderError> {
        let hosts = hosts_in(world);
        let world = Arc::new(world.clone());
        let bound = Arc::new(tokio::sync::Semaphore::new(
            self.inner.settings.concurrency.max(1),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        let mut found = Vec::new();
        for (host, running) in hosts {
            if !running {
                found.push(facts::unreadable(&host, "the host is powered off"));
                continue;
            }
            let inner = Arc::clone(&self.inner);
            let world = Arc::clone(&world);
            let bound = Arc::clone(&bound);
            tasks.spawn(async move {
                let _permit = bound.acquire_owned().await;
                // A host that cannot be read is reported, not fatal: the plan shows it (and an
                // apply fails at its step, naming why), and the others are still planned;
                // deleting the host does not need its setup to answer.
                let found = match inner.read_facts(&host, &world).await {
                    Ok(facts) => Phase::ALL
                        .into_iter()
                        .filter_map(|phase| facts.observed(&host, phase))
                        .chain(facts.agents(&host))
                        .collect::<Vec<_>>(),
                    Err(e) => {
                        // The reason goes to the log: it varies from one try to the next
                        // (timings), and the plan must compare equal when the world did not move.
                        tracing::warn!(%host, error = %e, "the host's setup cannot be read");
                        vec![facts::unreadable(
                            &host,
                            "cannot be read over SSH (the reason is logged above)",
                        )]
                    }
                };
                Ok::<_, ProviderError>(found)
            });
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(resources)) => found.extend(resources),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(ProviderError::Other(format!(
                        "observing a host stopped unexpectedly ({e}); this is a bug"
                    )));
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        found.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(found)
    }

    async fn create(
        &self,
        desired: &Resource,
        ctx: &StepContext,
    ) -> Result<ObservedResource, ProviderError> {
        if desired.address.kind == Kind::Agent {
            return agents::apply(&self.inner, desired, ctx).await;
        }
        apply::phase(&self.inner, desired, ctx).await
    }

    async fn update(
        &self,
        desired: &Resource,
        _observed: &ObservedResource,
        ctx: &StepContext,
    ) -> Result<ObservedResource, ProviderError> {
        self.create(desired, ctx).await
    }

    /// An agent leaving the stack is removed from its host (its data kept). Host-level
    /// resources leave the stack only with their host, which is deleted (or replaced) in the
    /// same run: nothing is done on the host, and an unreachable host does not hold up its own
    /// deletion.
    async fn delete(
        &self,
        observed: &ObservedResource,
        ctx: &StepContext,
    ) -> Result<(), ProviderError> {
        if observed.address.kind == Kind::Agent {
            return agents::remove(&self.inner, observed, ctx).await;
        }
        tracing::debug!(address = %observed.address, "host-level resource forgotten with its host");
        Ok(())
    }
}
