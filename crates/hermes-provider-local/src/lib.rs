//! The local provider, `hermes-infra`'s embedded default: hosts are containers on this machine's
//! Docker engine, found by their ownership labels alone (no state is needed to find them).
//!
//! This release observes local hosts; creating, powering and deleting them arrives with the
//! local-provider work (host image, systemd hosts, VM hosts). Until then `create`, `update` and
//! `delete` refuse with a message saying so, and nothing is changed. It talks to Docker only
//! through the `docker` command line (honouring `DOCKER_HOST`), with a timeout on every call.

mod docker;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use hermes_core::seams::{Provider, ProviderError, StepContext};
use hermes_core::{Address, Kind, ObservedResource, Resource, Scope, labels};

pub use docker::Docker;

/// Label key: a local host's size.
pub const SIZE_LABEL: &str = "hermes-infra/size";
/// Label key: a local host's kind (container or vm).
pub const KIND_LABEL: &str = "hermes-infra/kind";

/// Hosts on this machine's Docker engine.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    docker: Docker,
}

impl LocalProvider {
    /// A provider using the `docker` command found on `PATH`, with `timeout` per call.
    pub fn new(timeout: Duration) -> Self {
        Self {
            docker: Docker::new("docker", timeout),
        }
    }

    /// A provider using a specific Docker client.
    pub fn with_docker(docker: Docker) -> Self {
        Self { docker }
    }
}

const KINDS: [Kind; 1] = [Kind::Host];

fn not_yet(address: &Address) -> ProviderError {
    ProviderError::Other(format!(
        "`{address}`: this build of hermes-infra can observe local hosts but not yet create, change \
         or delete them; nothing was changed"
    ))
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn kinds(&self) -> &[Kind] {
        &KINDS
    }

    async fn observe(
        &self,
        scope: &Scope,
        _world: &BTreeMap<Address, ObservedResource>,
    ) -> Result<Vec<ObservedResource>, ProviderError> {
        let containers = self.docker.owned_containers(scope).await?;
        let mut hosts = Vec::new();
        for c in containers {
            let Some(address) = c
                .labels
                .get(labels::ADDRESS)
                .and_then(|a| a.parse::<Address>().ok())
            else {
                continue;
            };
            if address.kind != Kind::Host {
                continue;
            }
            let mut host = ObservedResource::new(address, c.id.clone())
                .attr("provider", "local")
                .attr("state", c.state.as_str());
            for (label, attr) in [
                (SIZE_LABEL, "size"),
                (KIND_LABEL, "kind"),
                (labels::ROLE, "role"),
            ] {
                if let Some(v) = c.labels.get(label) {
                    host = host.attr(attr, v.as_str());
                }
            }
            hosts.push(host);
        }
        hosts.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(hosts)
    }

    async fn create(
        &self,
        desired: &Resource,
        _ctx: &StepContext,
    ) -> Result<ObservedResource, ProviderError> {
        Err(not_yet(&desired.address))
    }

    async fn update(
        &self,
        desired: &Resource,
        _observed: &ObservedResource,
        _ctx: &StepContext,
    ) -> Result<ObservedResource, ProviderError> {
        Err(not_yet(&desired.address))
    }

    async fn delete(
        &self,
        observed: &ObservedResource,
        _ctx: &StepContext,
    ) -> Result<(), ProviderError> {
        Err(not_yet(&observed.address))
    }
}
