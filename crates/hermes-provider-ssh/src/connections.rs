//! The run's connections: one SSH connection and the latest facts per host, opened on first
//! use from the address the hosts' provider observed, with the host key pinned.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use hermes_core::resource::{FRESH_HOST_SSH_PORT, HOST_KEY_ATTR};
use hermes_core::seams::{HostEndpoint, ProviderError};
use hermes_core::{Address, Kind, ObservedResource};
use hermes_remote::{HostKeys, PinnedHostKeys, SshConnector, SshRemote};

use crate::facts::Facts;
use crate::{HostReport, SshSettings, apply, scripts};

/// One host's connection and latest facts.
#[derive(Default)]
pub(crate) struct Slot {
    remote: tokio::sync::Mutex<Option<Arc<SshRemote>>>,
    facts: Mutex<Option<Facts>>,
    /// Held while images go to the host.
    pub(crate) images: tokio::sync::Mutex<()>,
}

/// The provider's state for one run, shared with its tasks.
pub(crate) struct Inner {
    pub(crate) connector: SshConnector,
    pub(crate) host_keys: Arc<PinnedHostKeys>,
    pub(crate) settings: SshSettings,
    /// The port each host's sshd listens on now, where it is not the fresh port: from the
    /// state, then as this run moves them.
    pub(crate) ports: Mutex<BTreeMap<String, u16>>,
    /// Hosts created (or replaced) in this run whose predecessor's connection, facts and port
    /// were already forgotten.
    pub(crate) fresh: Mutex<BTreeSet<String>>,
    pub(crate) slots: Mutex<BTreeMap<String, Arc<Slot>>>,
    pub(crate) reports: Mutex<BTreeMap<String, HostReport>>,
    /// Where agent images come from when a host lacks them (none: `image push` first).
    pub(crate) images: Option<Arc<dyn crate::ImageSource>>,
}

impl Inner {
    pub(crate) fn slot(&self, host: &str) -> Arc<Slot> {
        Arc::clone(
            self.slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(host.to_owned())
                .or_default(),
        )
    }

    pub(crate) fn report(&self, host: &str, update: impl FnOnce(&mut HostReport)) {
        update(
            self.reports
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(host.to_owned())
                .or_default(),
        );
    }

    /// The port `host`'s sshd listens on now.
    pub(crate) fn port(&self, host: &str) -> u16 {
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(host)
            .copied()
            .unwrap_or(FRESH_HOST_SSH_PORT)
    }

    /// Records that `host`'s sshd now listens on `port` (a confirmed change).
    pub(crate) fn moved(&self, host: &str, port: u16) {
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(host.to_owned(), port);
    }

    /// Where `host` is, from what the host's provider observed, on the port its sshd listens on
    /// now.
    pub(crate) fn endpoint(
        &self,
        host: &str,
        world: &BTreeMap<Address, ObservedResource>,
    ) -> Result<HostEndpoint, ProviderError> {
        let found = world.get(&Address::new(Kind::Host, host)).ok_or_else(|| {
            ProviderError::Other(format!(
                "host `{host}` does not exist (yet); its host-level resources wait for it"
            ))
        })?;
        let attr = |k: &str| found.attrs.get(k).and_then(|v| v.as_str());
        if let Some(state) = attr("state")
            && state != "running"
        {
            return Err(ProviderError::Other(format!(
                "host `{host}` is {state}; power it on (`hermes-infra power on STACK {host}`) and try again"
            )));
        }
        let address = attr("address").ok_or_else(|| {
            ProviderError::Other(format!("host `{host}` has no address to connect to"))
        })?;
        // A host created (or replaced) in this run: pin the key its provider read through a
        // trusted channel, so the first connection is already checked against the new host.
        if let Some(key) = attr(HOST_KEY_ATTR) {
            let _ = self.host_keys.pin(host, key);
        }
        Ok(HostEndpoint {
            host: host.to_owned(),
            address: address.to_owned(),
            port: self.port(host),
            user: self.settings.admin_user.clone(),
        })
    }

    /// Forgets, once, what this run knew of `host` before its provider created (or replaced) it
    /// in this run: the connection, facts and port were its predecessor's, and a new host's
    /// sshd listens on the fresh port.
    async fn forget_predecessor(&self, host: &str, world: &BTreeMap<Address, ObservedResource>) {
        let created = world
            .get(&Address::new(Kind::Host, host))
            .is_some_and(|o| o.attrs.contains_key(HOST_KEY_ATTR));
        let first = created
            && self
                .fresh
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(host.to_owned());
        if first {
            self.ports
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(host);
            let slot = self.slot(host);
            *slot.remote.lock().await = None;
            *slot.facts.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// The run's connection to `host`, opened on first use.
    pub(crate) async fn remote(
        &self,
        host: &str,
        world: &BTreeMap<Address, ObservedResource>,
    ) -> Result<Arc<SshRemote>, ProviderError> {
        self.forget_predecessor(host, world).await;
        let slot = self.slot(host);
        let mut remote = slot.remote.lock().await;
        if let Some(open) = remote.as_ref() {
            return Ok(Arc::clone(open));
        }
        let endpoint = self.endpoint(host, world)?;
        let opened = match self.connector.open(&endpoint).await {
            Ok(opened) => opened,
            // A run stopped between moving sshd to the stack's port and saving the state leaves
            // the host on the stack's port: try it before giving up.
            Err(first) if endpoint.port != self.settings.port => {
                let moved = HostEndpoint {
                    port: self.settings.port,
                    ..endpoint
                };
                let opened = self.connector.open(&moved).await.map_err(|second| {
                    ProviderError::Transient(format!(
                        "{first}; nor on the stack's SSH port {}: {}",
                        moved.port, second.message
                    ))
                })?;
                self.moved(host, moved.port);
                opened
            }
            Err(e) => return Err(ProviderError::Transient(e.to_string())),
        };
        let opened = Arc::new(opened);
        *remote = Some(Arc::clone(&opened));
        Ok(opened)
    }

    /// Forgets the connection to `host` after a failure, so the next step opens a new one.
    pub(crate) async fn drop_remote(&self, host: &str) {
        *self.slot(host).remote.lock().await = None;
    }

    /// Runs the facts script on `host` and keeps the result.
    pub(crate) async fn read_facts(
        &self,
        host: &str,
        world: &BTreeMap<Address, ObservedResource>,
    ) -> Result<Facts, ProviderError> {
        let remote = self.remote(host, world).await?;
        let output = hermes_core::seams::Remote::run(
            remote.as_ref(),
            "facts",
            &scripts::as_root(scripts::FACTS),
            &[],
        )
        .await;
        let output = match output {
            Ok(output) => output,
            Err(e) => {
                self.drop_remote(host).await;
                return Err(ProviderError::Transient(e.to_string()));
            }
        };
        if output.status != 0 {
            return Err(ProviderError::Other(format!(
                "host `{host}`, step `facts`: the facts script exited with {}: {} (the admin user \
                 needs passwordless sudo)",
                output.status,
                apply::tail(&output.stderr)
            )));
        }
        let facts = Facts::parse(&output.stdout)
            .map_err(|e| ProviderError::Other(format!("host `{host}`, step `facts`: {e}")))?;
        *self
            .slot(host)
            .facts
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(facts.clone());
        Ok(facts)
    }

    /// The facts of `host` read in this run, or read now.
    pub(crate) async fn facts(
        &self,
        host: &str,
        world: &BTreeMap<Address, ObservedResource>,
    ) -> Result<Facts, ProviderError> {
        self.forget_predecessor(host, world).await;
        let known = self
            .slot(host)
            .facts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match known {
            Some(facts) => Ok(facts),
            None => self.read_facts(host, world).await,
        }
    }
}
