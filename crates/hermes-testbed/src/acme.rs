//! The ACME server (`assets/acme.py`): Pebble, Let's Encrypt's test server, from Debian's
//! packages, with its DNS stand-in, on a test network. Tests point a stack's `acme-directory`
//! at it, trust its listener's CA (`acme-ca`), tell it where each hostname lives
//! ([`AcmeServer::add_host`]: HTTP-01 challenges are fetched from port 80 there) and check the
//! certificates served against [`AcmeServer::issuer`].

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, ensure};

use crate::container::{self, ContainerGuard, Service};
use crate::{TestNetwork, Testbed, http};

/// The server's script, after the TLS helper it uses.
pub const SCRIPT: &str = concat!(
    include_str!("../assets/tls.py"),
    include_str!("../assets/acme.py")
);
/// Its DNS name on the network.
pub const ALIAS: &str = "acme.hermes.test";
/// The port of its helper (readiness, CAs, DNS records).
const HELPER_PORT: u16 = 8080;

/// A running ACME server; its container is removed by [`AcmeServer::stop`] or when dropped.
#[derive(Debug)]
pub struct AcmeServer {
    container: ContainerGuard,
    ip: IpAddr,
}

impl AcmeServer {
    /// Starts it on `network` and waits until its directory answers.
    pub async fn start(testbed: &Testbed, network: &TestNetwork) -> anyhow::Result<Self> {
        let started = container::start(
            testbed,
            network,
            Service {
                role: "acme",
                alias: ALIAS,
                script: SCRIPT,
                env: vec![("ACME_ALIAS".to_owned(), ALIAS.to_owned())],
                ready: (HELPER_PORT, "/ready"),
            },
        )
        .await
        .context("starting the ACME server (Pebble)")?;
        Ok(Self {
            container: started.container,
            ip: started.ip,
        })
    }

    /// Its ACME directory, as hosts on the network reach it.
    pub fn directory(&self) -> String {
        format!("https://{ALIAS}:14000/dir")
    }

    /// Its address on the network.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    fn helper(&self) -> SocketAddr {
        SocketAddr::new(self.ip, HELPER_PORT)
    }

    async fn pem(&self, path: &str) -> anyhow::Result<String> {
        let response = http::get(self.helper(), path).await?;
        ensure!(
            response.status == 200,
            "GET {path}: {} {}",
            response.status,
            response.text()
        );
        Ok(response.text())
    }

    /// The CA of its HTTPS listener (PEM): what an ACME client must trust to reach it.
    pub async fn listener_ca(&self) -> anyhow::Result<String> {
        self.pem("/listener-ca").await
    }

    /// The root it issues certificates under (PEM; made anew each time it starts).
    pub async fn issuer(&self) -> anyhow::Result<String> {
        self.pem("/issuer").await
    }

    /// Makes `hostname` resolve to `ip` for the server (where it fetches HTTP-01 challenges).
    pub async fn add_host(&self, hostname: &str, ip: IpAddr) -> anyhow::Result<()> {
        let response = http::post_json(
            self.helper(),
            "/add-a",
            &serde_json::json!({"host": hostname, "addresses": [ip.to_string()]}),
        )
        .await?;
        ensure!(
            response.status == 200,
            "adding {hostname} -> {ip}: {} {}",
            response.status,
            response.text()
        );
        Ok(())
    }

    /// Stops and removes it now.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.container.remove().await
    }
}
