//! The image registry (`assets/registry.py`): Debian's `docker-registry` with TLS from a CA of
//! its own and one user (basic auth), on a test network. Tests name it by its address
//! ([`Registry::server`]), so that this machine and the hosts reach it alike, and trust its
//! CA ([`Registry::ca`]).

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, ensure};

use crate::container::{self, ContainerGuard, Service};
use crate::{TestNetwork, Testbed, http};

/// The server's script, after the TLS helper it uses.
pub const SCRIPT: &str = concat!(
    include_str!("../assets/tls.py"),
    include_str!("../assets/registry.py")
);
/// Its DNS name on the network.
pub const ALIAS: &str = "registry.hermes.test";
/// Its one user.
pub const USER: &str = "hermes";
/// The registry's port (HTTPS).
pub const PORT: u16 = 5000;
const HELPER_PORT: u16 = 8080;

/// A running registry; its container is removed by [`Registry::stop`] or when dropped.
#[derive(Debug)]
pub struct Registry {
    container: ContainerGuard,
    ip: IpAddr,
}

impl Registry {
    /// Starts it on `network` with [`USER`] and `password`, and waits until it answers.
    pub async fn start(
        testbed: &Testbed,
        network: &TestNetwork,
        password: &str,
    ) -> anyhow::Result<Self> {
        let started = container::start(
            testbed,
            network,
            Service {
                role: "registry",
                alias: ALIAS,
                script: SCRIPT,
                env: vec![
                    ("REGISTRY_ALIAS".to_owned(), ALIAS.to_owned()),
                    ("REGISTRY_USER".to_owned(), USER.to_owned()),
                    ("REGISTRY_PASSWORD".to_owned(), password.to_owned()),
                ],
                ready: (HELPER_PORT, "/ready"),
            },
        )
        .await
        .context("starting the image registry")?;
        Ok(Self {
            container: started.container,
            ip: started.ip,
        })
    }

    /// `address:port`, as a stack's `[registry.generic] server` names it.
    pub fn server(&self) -> String {
        format!("{}:{PORT}", self.ip)
    }

    /// The CA that signed its certificate (PEM).
    pub async fn ca(&self) -> anyhow::Result<String> {
        let response = http::get(SocketAddr::new(self.ip, HELPER_PORT), "/ca").await?;
        ensure!(response.status == 200, "GET /ca: {}", response.status);
        Ok(response.text())
    }

    /// Stops and removes it now.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.container.remove().await
    }
}
