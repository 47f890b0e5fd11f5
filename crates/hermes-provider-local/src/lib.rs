//! The local provider, `hermes-infra`'s embedded default: hosts are containers on this machine's
//! Docker engine, found by their ownership labels alone (no state is needed to find them).
//!
//! A host is a systemd container built from Debian packages ([`image`]), on a Docker network of
//! its own per stack and environment, with its admin user and public keys injected at creation
//! the way cloud-init does; packages for hosts come through a shared apt cache ([`apt_cache`]).
//! Its SSH host key is read through the Docker engine (a trusted channel, like a cloud console)
//! so that it is pinned before the first SSH connection. A host of kind `vm` is a QEMU machine
//! booting Debian's cloud kernel, run from a container of its own (see [`vm`] and `HOSTS.md`).
//! It talks to Docker only through the `docker` command line (honouring `DOCKER_HOST`), with a
//! timeout on every call.

pub mod apt_cache;
mod docker;
pub mod host;
pub mod image;
pub mod vm;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use hermes_core::resource::{HOST_KEY_ATTR, VM_FORWARD_ATTR};
use hermes_core::seams::{Provider, ProviderError, StepContext};
use hermes_core::{Address, Kind, ObservedResource, Resource, Scope, labels};

use crate::host::{Names, host_labels, host_name, size_limits};
use crate::image::{HostContainer, UserData};

pub use docker::Docker;

/// Label key: a local host's size.
pub const SIZE_LABEL: &str = "hermes-infra/size";
/// Label key: a local host's kind (container or vm).
pub const KIND_LABEL: &str = "hermes-infra/kind";
/// Label key: the ports a local VM host forwards to its guest (`22 2222`).
pub const FORWARD_LABEL: &str = "hermes-infra/forward-ports";

/// What [`LocalProvider::prepare_launch`] gives every new host.
pub(crate) struct Launch {
    pub(crate) limits: host::SizeLimits,
    pub(crate) network: String,
    pub(crate) container: String,
    pub(crate) user_data: UserData,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) machine_cpus: u32,
}

/// Progress messages for the operator (image builds take a minute the first time).
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// The admin account every local host gets at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// User name.
    pub user: String,
    /// OpenSSH public key lines allowed to log in.
    pub public_keys: Vec<String>,
}

/// Hosts on this machine's Docker engine.
#[derive(Clone)]
pub struct LocalProvider {
    docker: Docker,
    admin: Admin,
    progress: Progress,
    boot_timeout: Duration,
    /// Serializes network creation: hosts are created concurrently, and Docker accepts two
    /// networks of one name. (Other processes are kept out by the state lock.)
    network_lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider")
            .field("docker", &self.docker)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl LocalProvider {
    /// A provider using the `docker` command found on `PATH`, with `timeout` per call.
    pub fn new(timeout: Duration, admin: Admin, progress: Progress) -> Self {
        Self::with_docker(Docker::new("docker", timeout), admin, progress)
    }

    /// A provider using a specific Docker client.
    pub fn with_docker(docker: Docker, admin: Admin, progress: Progress) -> Self {
        Self {
            docker,
            admin,
            progress,
            boot_timeout: Duration::from_mins(2),
            network_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Powers host `host` of `scope` off (`on = false`: a clean systemd halt) or on.
    pub async fn power(&self, scope: &Scope, host: &str, on: bool) -> Result<(), ProviderError> {
        let name = Names::new(scope).container(host);
        let id = self
            .host_id(scope, host)
            .await?
            .ok_or_else(|| ProviderError::NotFound(name.clone()))?;
        self.docker
            .run([if on { "start" } else { "stop" }, id.as_str()])
            .await?;
        Ok(())
    }

    /// The container id of host `host` of `scope`, found by its ownership labels.
    pub async fn host_id(
        &self,
        scope: &Scope,
        host: &str,
    ) -> Result<Option<String>, ProviderError> {
        let address = Address::new(Kind::Host, host).to_string();
        Ok(self
            .docker
            .owned_containers(scope)
            .await?
            .into_iter()
            .find(|c| c.labels.get(labels::ADDRESS) == Some(&address))
            .map(|c| c.id))
    }

    /// The host's SSH host public key, read through the Docker engine.
    /// For a VM host, the key its guest reported on its serial console ([`vm::read_host_key`]).
    pub async fn read_host_key(&self, id: &str) -> Result<String, ProviderError> {
        let kind = self
            .docker
            .run([
                "inspect",
                "--format",
                &format!("{{{{index .Config.Labels \"{KIND_LABEL}\"}}}}"),
                id,
            ])
            .await?;
        if kind.trim() == "vm" {
            return vm::read_host_key(&self.docker, id).await;
        }
        let key = self
            .docker
            .run(["exec", id, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
            .await?;
        let mut parts = key.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some(kind), Some(blob)) => Ok(format!("{kind} {blob}")),
            _ => Err(ProviderError::Other(format!(
                "container {id} has no readable SSH host key"
            ))),
        }
    }

    async fn ensure_network(&self, scope: &Scope) -> Result<String, ProviderError> {
        let _one_at_a_time = self.network_lock.lock().await;
        let network = Names::new(scope).network();
        let found = self
            .docker
            .run([
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("name=^{network}$"),
            ])
            .await?;
        if found.trim().is_empty() {
            let mut args = vec!["network".to_owned(), "create".to_owned()];
            for (k, v) in [(labels::STACK, &scope.stack), (labels::ENV, &scope.env)] {
                args.push(format!("--label={k}={v}"));
            }
            args.push(network.clone());
            self.docker.run(args).await?;
        }
        Ok(network)
    }

    /// Removes the stack's network once no container but the shared apt cache is attached.
    /// Hosts are deleted concurrently: the check and the removal happen under the network lock,
    /// and a network already gone (or a cache already detached) is not an error.
    async fn remove_network_if_unused(&self, scope: &Scope) -> Result<(), ProviderError> {
        let _one_at_a_time = self.network_lock.lock().await;
        let network = Names::new(scope).network();
        let attached = match self
            .docker
            .run([
                "ps",
                "-a",
                "--format",
                "{{.Names}}",
                "--filter",
                &format!("network={network}"),
            ])
            .await
        {
            Ok(names) => names,
            Err(e) if is_gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        if attached
            .split_whitespace()
            .all(|name| name == apt_cache::CONTAINER_NAME)
        {
            for result in [
                apt_cache::detach(&self.docker, &network).await,
                self.docker
                    .run(["network", "rm", &network])
                    .await
                    .map(|_| ()),
            ] {
                match result {
                    Err(e) if !is_gone(&e) => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// What every new host needs, whatever its kind: its size's limits, the stack's network
    /// (created if needed) with the apt cache on it, its container name, user data and labels.
    pub(crate) async fn prepare_launch(
        &self,
        host: &str,
        desired: &Resource,
        ctx: &StepContext,
    ) -> Result<Launch, ProviderError> {
        let size = desired
            .attrs
            .get("size")
            .and_then(|v| v.as_str())
            .unwrap_or("small");
        let limits = size_limits(size).ok_or_else(|| {
            ProviderError::Other(format!(
                "`{}`: `{size}` is not a local host size",
                desired.address
            ))
        })?;
        let progress = |m: &str| (self.progress)(m);
        let network = self.ensure_network(&ctx.scope).await?;
        let cache = apt_cache::ensure(&self.docker, Some(&network), &progress).await?;
        let container = Names::new(&ctx.scope).container(host);
        let instance = desired
            .spec_digest()
            .trim_start_matches("sha256:")
            .get(..12)
            .unwrap_or("0")
            .to_owned();
        let user_data = UserData::new(format!("{container}-{instance}"))
            .with_hostname(host)
            .with_admin(&self.admin.user, self.admin.public_keys.clone())
            .with_apt_proxy(cache.url.clone());
        let machine_cpus =
            std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1));
        Ok(Launch {
            limits,
            network,
            container,
            user_data,
            labels: host_labels(&ctx.scope, desired),
            machine_cpus,
        })
    }

    /// What a host just created (container `id`) looks like, with the host `key` read from it.
    pub(crate) async fn created(
        &self,
        scope: &Scope,
        id: &str,
        address: &Address,
        network: &str,
        key: String,
    ) -> Result<ObservedResource, ProviderError> {
        let found = self
            .docker
            .owned_containers(scope)
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| {
                ProviderError::Other(format!("`{address}` vanished right after it was created"))
            })?;
        Ok(Self::observed(&found, address.clone(), network).attr(HOST_KEY_ATTR, key))
    }

    /// Waits until the host's first boot finished and its SSH host key exists.
    async fn wait_for_boot(&self, id: &str, address: &Address) -> Result<String, ProviderError> {
        let deadline = Instant::now() + self.boot_timeout;
        loop {
            let ready = self
                .docker
                .run([
                    "exec",
                    id,
                    "sh",
                    "-c",
                    "systemctl is-active --quiet ssh && test -s /etc/ssh/ssh_host_ed25519_key.pub",
                ])
                .await;
            if ready.is_ok() {
                return self.read_host_key(id).await;
            }
            if Instant::now() > deadline {
                return Err(ProviderError::Transient(format!(
                    "`{address}` did not finish booting (sshd up, host key written) within {:?}; see `docker logs {id}`",
                    self.boot_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn observed(c: &docker::Container, address: Address, network: &str) -> ObservedResource {
        // Docker's `exited` and `created` are a powered-off machine.
        let state = if c.state == "running" {
            "running"
        } else {
            "off"
        };
        let mut host = ObservedResource::new(address, c.id.clone())
            .attr("provider", "local")
            .attr("state", state);
        for (label, attr) in [
            (SIZE_LABEL, "size"),
            (KIND_LABEL, "kind"),
            (labels::ROLE, "role"),
            (FORWARD_LABEL, VM_FORWARD_ATTR),
        ] {
            if let Some(v) = c.labels.get(label) {
                host = host.attr(attr, v.as_str());
            }
        }
        // Containers share this machine's kernel; a VM has its own. Kernel-level hardening
        // (kernel.*, vm.*, fs.* sysctls, module blacklists) applies only where the host owns it.
        let kernel = if c.labels.get(KIND_LABEL).map(String::as_str) == Some("vm") {
            "own"
        } else {
            "shared"
        };
        host = host.attr("kernel", kernel);
        if let Some(ip) = c.addresses.get(network) {
            host = host.attr("address", ip.as_str());
        }
        host
    }
}

const KINDS: [Kind; 1] = [Kind::Host];

/// Whether a Docker error says the object is already gone (or already detached).
fn is_gone(e: &ProviderError) -> bool {
    let m = e.to_string();
    [
        "No such container",
        "not found",
        "is not connected",
        "No such network",
    ]
    .iter()
    .any(|s| m.contains(s))
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
        let network = Names::new(scope).network();
        let mut hosts = Vec::new();
        for c in self.docker.owned_containers(scope).await? {
            let Some(address) = c
                .labels
                .get(labels::ADDRESS)
                .and_then(|a| a.parse::<Address>().ok())
            else {
                continue;
            };
            if address.kind == Kind::Host {
                hosts.push(Self::observed(&c, address, &network));
            }
        }
        hosts.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(hosts)
    }

    async fn create(
        &self,
        desired: &Resource,
        ctx: &StepContext,
    ) -> Result<ObservedResource, ProviderError> {
        let host = host_name(&desired.address)?;
        if desired.attrs.get("kind").and_then(|v| v.as_str()) == Some("vm") {
            return vm::create(self, desired, ctx).await;
        }
        let progress = |m: &str| (self.progress)(m);
        let image = image::ensure_host(&self.docker, &progress).await?;
        let Launch {
            limits,
            network,
            container,
            user_data,
            labels,
            machine_cpus,
        } = self.prepare_launch(host, desired, ctx).await?;
        let cpus = limits.cpus.min(machine_cpus).to_string();
        let memory = format!("{}g", limits.memory_gib);
        let args = image::host_run_args(&HostContainer {
            name: &container,
            image: &image,
            network: Some(&network),
            labels: &labels,
            user_data: &user_data,
            memory: Some(&memory),
            cpus: Some(&cpus),
        })?;
        let id = self.docker.run(args).await?.trim().to_owned();
        let key = match self.wait_for_boot(&id, &desired.address).await {
            Ok(key) => key,
            Err(e) => {
                // A host that never booted is not kept: the next apply creates it afresh
                // instead of finding a broken host that looks created. Its last console lines
                // go into the error, as the container (and its logs) are removed.
                let console = self
                    .docker
                    .run(["logs", "--tail", "15", id.as_str()])
                    .await
                    .unwrap_or_default();
                let removed = self.docker.run(["rm", "-f", "-v", id.as_str()]).await;
                let instances = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
                    .ok()
                    .and_then(|v| v.trim().parse::<u32>().ok());
                let hint = match instances {
                    Some(n) if n < 1024 => format!(
                        " (with many hosts, the likely cause is this machine's inotify limit: \
                         fs.inotify.max_user_instances is {n}, about 8 per hardened host; raise \
                         it with `sysctl -w fs.inotify.max_user_instances=1024`)"
                    ),
                    _ => String::new(),
                };
                return Err(match removed {
                    Ok(_) => ProviderError::Transient(format!(
                        "{e}; the container was removed{hint}. Its last console lines:\n{}",
                        console.trim_end()
                    )),
                    Err(rm) => ProviderError::Other(format!(
                        "{e}; removing the container {id} failed too ({rm}): remove it with `docker rm -f -v {id}`"
                    )),
                });
            }
        };
        self.created(&ctx.scope, &id, &desired.address, &network, key)
            .await
    }

    async fn update(
        &self,
        desired: &Resource,
        _observed: &ObservedResource,
        _ctx: &StepContext,
    ) -> Result<ObservedResource, ProviderError> {
        Err(ProviderError::Other(format!(
            "`{}`: local hosts cannot change in place; every attribute of a local host is fixed, so \
             a change should have been planned as a replacement (make a new plan)",
            desired.address
        )))
    }

    async fn delete(
        &self,
        observed: &ObservedResource,
        ctx: &StepContext,
    ) -> Result<(), ProviderError> {
        match self
            .docker
            .run(["rm", "-f", "-v", observed.id.as_str()])
            .await
        {
            Err(e) if !is_gone(&e) => return Err(e),
            _ => {}
        }
        self.remove_network_if_unused(&ctx.scope).await
    }
}
