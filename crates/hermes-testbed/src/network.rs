//! Testbed networks: Docker bridge networks labelled with the run, removed by id.

use std::net::IpAddr;

use anyhow::{Context as _, ensure};
use serde::Deserialize;

use crate::Testbed;
use crate::cleanup::remove_network;

/// How to create a [`TestNetwork`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkOptions {
    /// `--internal`: no route out of the network (this machine still reaches its containers).
    pub internal: bool,
    /// `--subnet` (e.g. `10.77.0.0/24`); Docker picks one when `None`.
    pub subnet: Option<String>,
}

/// A Docker bridge network of one testbed run; removed (by id) by [`TestNetwork::remove`] or
/// when dropped, after detaching any container still on it. A handle from
/// [`TestNetwork::existing`] (a network someone else made) removes nothing.
#[derive(Debug)]
pub struct TestNetwork {
    id: String,
    name: String,
    bridge: String,
    gateway: Option<IpAddr>,
    internal: bool,
    program: String,
    armed: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    name: String,
    #[serde(rename = "IPAM")]
    ipam: Ipam,
    #[serde(default)]
    options: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    internal: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Ipam {
    #[serde(default)]
    config: Option<Vec<IpamConfig>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpamConfig {
    #[serde(default)]
    gateway: Option<String>,
}

impl TestNetwork {
    /// Creates a bridge network named [`Testbed::unique_name`]`("net")`, labelled with the run.
    pub async fn create(testbed: &Testbed, options: NetworkOptions) -> anyhow::Result<Self> {
        let name = testbed.unique_name("net");
        let mut args = vec![
            "network".to_owned(),
            "create".to_owned(),
            "--driver=bridge".to_owned(),
        ];
        args.extend(testbed.label_args(None));
        if options.internal {
            args.push("--internal".to_owned());
        }
        if let Some(subnet) = &options.subnet {
            args.push(format!("--subnet={subnet}"));
        }
        args.push(name);
        let id = testbed.docker().run(&args).await?.trim().to_owned();
        ensure!(!id.is_empty(), "`docker network create` printed no id");
        let mut network = match Self::inspect(testbed, &id).await {
            Ok(network) => network,
            Err(e) => {
                // Not handed out yet: remove it here (the testbed's drop would otherwise).
                if let Err(removal) = remove_network(testbed.program(), &id) {
                    tracing::warn!("cannot remove testbed network {id}: {removal:#}");
                }
                return Err(e);
            }
        };
        network.armed = true;
        tracing::debug!(network = %network.name, bridge = %network.bridge, "testbed network");
        Ok(network)
    }

    /// A network this testbed did **not** create, found by `name` (or id) on the engine, for
    /// example the `hermes-<stack>-<env>` network that `hermes-infra`'s local provider made for a
    /// stack, so that a [`crate::Latency`] can be added to it. This handle never removes it
    /// (dropping it leaves the network, [`TestNetwork::remove`] refuses): whoever made it
    /// removes it. Its bridge, gateway and `--internal` are read from the engine.
    pub async fn existing(testbed: &Testbed, name: &str) -> anyhow::Result<Self> {
        let network = Self::inspect(testbed, name).await?;
        tracing::debug!(network = %network.name, bridge = %network.bridge, "existing network");
        Ok(network)
    }

    /// Reads network `id_or_name` from the engine into a handle that removes nothing.
    async fn inspect(testbed: &Testbed, id_or_name: &str) -> anyhow::Result<Self> {
        let json = testbed
            .docker()
            .run(["network", "inspect", "--format", "{{json .}}", id_or_name])
            .await?;
        let inspect: Inspect = serde_json::from_str(&json).context("reading network inspect")?;
        let bridge = inspect
            .options
            .as_ref()
            .and_then(|o| o.get("com.docker.network.bridge.name"))
            .cloned()
            .unwrap_or_else(|| format!("br-{}", &inspect.id[..12.min(inspect.id.len())]));
        let gateway = inspect
            .ipam
            .config
            .unwrap_or_default()
            .iter()
            .find_map(|c| c.gateway.as_deref()?.parse().ok());
        Ok(Self {
            id: inspect.id,
            name: inspect.name,
            bridge,
            gateway,
            internal: inspect.internal,
            program: testbed.program().to_owned(),
            armed: false,
        })
    }

    /// Full network id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Network name (give it to `docker run --network`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bridge interface on this machine (`br-<first 12 hex of the id>`).
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// This machine's address on the network (the bridge's), when Docker reports one.
    pub fn gateway(&self) -> Option<IpAddr> {
        self.gateway
    }

    /// Whether it was created `--internal`.
    pub fn is_internal(&self) -> bool {
        self.internal
    }

    /// Removes the network now (detaching any container left on it). Refused for a network
    /// found by [`TestNetwork::existing`]: this testbed did not create it.
    pub async fn remove(mut self) -> anyhow::Result<()> {
        ensure!(
            self.armed,
            "network {} was not created by this testbed: not removing it",
            self.name
        );
        self.armed = false;
        let (program, id) = (self.program.clone(), self.id.clone());
        tokio::task::spawn_blocking(move || remove_network(&program, &id))
            .await
            .context("network removal thread")?
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        if self.armed
            && !crate::testbed::keep()
            && let Err(e) = remove_network(&self.program, &self.id)
        {
            tracing::warn!(network = %self.name, "cannot remove testbed network: {e:#}");
        }
    }
}
