//! The package cache for local hosts: `apt-cacher-ng` (Debian's package) in a container built
//! like the host image, so that hosts install Docker, nftables, fail2ban, ... from Debian's
//! packages exactly as a cloud host does, without each test paying for the download.
//!
//! One cache serves every local host on this engine: the container `hermes-infra-apt-cache` on
//! the default bridge (its way out to Debian's archive), with its cache in the named volume
//! `hermes-infra-apt-cache` (kept across runs and image rebuilds), and attached to each hosts'
//! network on demand. Hosts keep their ordinary `http://deb.debian.org/...` sources and get
//! `Acquire::http::Proxy` through their user data ([`crate::image::UserData::apt_proxy`]), the
//! way a cloud host behind a site proxy is configured. The cache serves Debian's archives only
//! (see `assets/apt-cache/acng.conf`): it is not a way out to anything else.

use std::time::{Duration, Instant};

use serde::Deserialize;

use hermes_core::seams::ProviderError;

use crate::docker::Docker;
use crate::image::ImageRecipe;

/// The cache container's name (one per engine).
pub const CONTAINER_NAME: &str = "hermes-infra-apt-cache";
/// The named volume holding the cached packages.
pub const VOLUME_NAME: &str = "hermes-infra-apt-cache";
/// The port `apt-cacher-ng` listens on.
pub const PORT: u16 = 3142;
/// Label key on the cache container and volume.
pub const COMPONENT_LABEL: &str = "hermes-infra/component";
/// Label value on the cache container and volume.
pub const COMPONENT: &str = "apt-cache";
/// How long a started cache may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running cache, as seen from one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptCache {
    /// The container's full id.
    pub container_id: String,
    /// The image it runs.
    pub image: String,
    /// Its IP address on the network asked for (or the default bridge).
    pub address: String,
    /// `http://<address>:3142`, for [`crate::image::UserData::with_apt_proxy`].
    pub url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    config: InspectConfig,
    state: InspectState,
    network_settings: InspectNetworks,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    image: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectState {
    running: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectNetworks {
    #[serde(default)]
    networks: Option<std::collections::BTreeMap<String, InspectEndpoint>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectEndpoint {
    #[serde(rename = "IPAddress")]
    ip_address: String,
}

/// Makes sure the cache runs (building its image, creating its volume and container, starting
/// it, replacing a container left from an older image) and is attached to `network`; returns
/// where hosts on `network` reach it (`None`: the default bridge). Idempotent; concurrent callers
/// in this and other processes are serialised.
pub async fn ensure(
    docker: &Docker,
    network: Option<&str>,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<AptCache, ProviderError> {
    if let Some(n) = network {
        check_name(n)?;
    }
    let image = ImageRecipe::apt_cache().ensure(docker, progress).await?;
    let lock_path = std::env::temp_dir().join("hermes-infra-apt-cache.lock");
    let _lock = crate::image::build_lock(&lock_path, "starting the apt cache", progress).await?;

    let volumes = docker
        .run([
            "volume",
            "ls",
            "--quiet",
            "--filter",
            &format!("name=^{VOLUME_NAME}$"),
        ])
        .await?;
    if volumes.trim().is_empty() {
        docker
            .run([
                "volume",
                "create",
                "--label",
                &format!("{COMPONENT_LABEL}={COMPONENT}"),
                VOLUME_NAME,
            ])
            .await?;
    }

    let mut current = inspect(docker).await?;
    if let Some(c) = &current
        && c.config.image != image
    {
        progress(&format!(
            "replacing the apt cache container (image {} -> {image}); the cache volume stays",
            c.config.image
        ));
        docker.run(["rm", "--force", c.id.as_str()]).await?;
        current = None;
    }
    match &current {
        None => {
            progress("starting the apt cache (apt-cacher-ng) for local hosts");
            docker
                .run([
                    "run",
                    "-d",
                    "--pull=never",
                    &format!("--name={CONTAINER_NAME}"),
                    &format!("--label={COMPONENT_LABEL}={COMPONENT}"),
                    "--restart=unless-stopped",
                    &format!("--mount=type=volume,src={VOLUME_NAME},dst=/var/cache/apt-cacher-ng"),
                    &image,
                ])
                .await?;
        }
        Some(c) if !c.state.running => {
            docker.run(["start", c.id.as_str()]).await?;
        }
        Some(_) => {}
    }
    let Some(mut running) = inspect(docker).await? else {
        return Err(ProviderError::Other(format!(
            "the apt cache container `{CONTAINER_NAME}` vanished right after it was started"
        )));
    };
    let net = network.unwrap_or("bridge");
    let attached = running
        .network_settings
        .networks
        .as_ref()
        .is_some_and(|n| n.contains_key(net));
    if !attached {
        docker
            .run(["network", "connect", net, running.id.as_str()])
            .await?;
        running = inspect(docker).await?.ok_or_else(|| {
            ProviderError::Other(format!(
                "the apt cache container `{CONTAINER_NAME}` vanished"
            ))
        })?;
    }
    let address = running
        .network_settings
        .networks
        .as_ref()
        .and_then(|n| n.get(net))
        .map(|e| e.ip_address.clone())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            ProviderError::Other(format!(
                "the apt cache container has no address on network `{net}`"
            ))
        })?;
    wait_ready(docker, &running.id).await?;
    Ok(AptCache {
        container_id: running.id,
        image,
        url: format!("http://{address}:{PORT}"),
        address,
    })
}

/// Detaches the cache from `network` (a network cannot be removed while the cache is on it).
/// Does nothing when the cache does not exist or is not attached.
pub async fn detach(docker: &Docker, network: &str) -> Result<(), ProviderError> {
    check_name(network)?;
    let Some(c) = inspect(docker).await? else {
        return Ok(());
    };
    if c.network_settings
        .networks
        .as_ref()
        .is_some_and(|n| n.contains_key(network))
    {
        docker
            .run(["network", "disconnect", "--force", network, c.id.as_str()])
            .await?;
    }
    Ok(())
}

async fn inspect(docker: &Docker) -> Result<Option<Inspect>, ProviderError> {
    let ids = docker
        .run([
            "ps",
            "--all",
            "--quiet",
            "--no-trunc",
            "--filter",
            &format!("name=^{CONTAINER_NAME}$"),
        ])
        .await?;
    let Some(id) = ids.split_whitespace().next() else {
        return Ok(None);
    };
    let json = docker.run(["container", "inspect", id]).await?;
    let mut parsed: Vec<Inspect> = serde_json::from_str(&json).map_err(|e| {
        ProviderError::Other(format!(
            "cannot read `docker container inspect` output: {e}"
        ))
    })?;
    Ok(parsed.pop())
}

/// Polls, inside the container (so it works whatever `DOCKER_HOST` points at), until the port
/// accepts a connection.
async fn wait_ready(docker: &Docker, id: &str) -> Result<(), ProviderError> {
    let started = Instant::now();
    let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{PORT}");
    loop {
        let Err(last) = docker.run(["exec", id, "bash", "-c", probe.as_str()]).await else {
            return Ok(());
        };
        if started.elapsed() > READY_TIMEOUT {
            return Err(ProviderError::Transient(format!(
                "the apt cache did not accept connections within {}s: {last}",
                READY_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn check_name(network: &str) -> Result<(), ProviderError> {
    if !network.is_empty()
        && network
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        Ok(())
    } else {
        Err(ProviderError::Other(format!(
            "`{network}` is not a Docker network name"
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn network_names_are_checked() {
        assert!(check_name("hermes-testbed_1.x").is_ok());
        for bad in ["", "a b", "a\"b", "{{.Id}}"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_inspect_output() {
        let json = r#"[{"Id":"abc","Config":{"Image":"hermes-infra/apt-cache:debian12-x"},
            "State":{"Running":true},
            "NetworkSettings":{"Networks":{"bridge":{"IPAddress":"172.17.0.2"}}}}]"#;
        let parsed: Vec<Inspect> = serde_json::from_str(json).unwrap();
        assert_eq!(parsed[0].id, "abc");
        assert!(parsed[0].state.running);
        assert_eq!(
            parsed[0].network_settings.networks.as_ref().unwrap()["bridge"].ip_address,
            "172.17.0.2"
        );
    }
}
