//! The "forbidden" server (`assets/forbidden.py`): answers anything on its ports with 200
//! `FORBIDDEN-REACHED` and counts hits, so tests can prove agents never reach it. The test reads
//! the count from this machine with `GET /__hits` on the container's address.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, ensure};
use serde::Deserialize;

use crate::container::{self, ContainerGuard, Service};
use crate::{TestNetwork, Testbed, http};

/// The server's script.
pub const SCRIPT: &str = include_str!("../assets/forbidden.py");
/// The body of every answer but `/__hits`.
pub const BODY: &str = "FORBIDDEN-REACHED\n";
/// The default DNS name on the network.
pub const DEFAULT_ALIAS: &str = "forbidden.hermes.test";

/// Where the forbidden server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForbiddenOptions {
    /// DNS name on the network (`--network-alias`).
    pub alias: String,
    /// Ports it listens on (plain HTTP on each; a TLS handshake counts as a hit too). The
    /// first one answers `/__hits`.
    pub ports: Vec<u16>,
}

impl Default for ForbiddenOptions {
    fn default() -> Self {
        Self {
            alias: DEFAULT_ALIAS.to_owned(),
            ports: vec![80, 443, 8080],
        }
    }
}

/// What the forbidden server saw.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Hits {
    /// Requests (or unparsable request lines) other than `GET /__hits`.
    pub hits: u64,
    /// TCP connections accepted, the test's own `/__hits` queries included.
    pub connections: u64,
    /// The last 1000 hits.
    pub requests: Vec<Hit>,
}

/// One hit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Hit {
    /// The request line as received (at most 200 bytes).
    pub request_line: String,
    /// Its `Host` header.
    pub host: Option<String>,
    /// The client's address.
    pub client: String,
    /// The port it came in on.
    pub port: u16,
    /// When (UNIX seconds).
    pub time: f64,
}

/// A running forbidden server; its container is removed by [`Forbidden::stop`] or when dropped.
#[derive(Debug)]
pub struct Forbidden {
    container: ContainerGuard,
    ip: IpAddr,
    options: ForbiddenOptions,
}

impl Forbidden {
    /// Starts it on `network` and waits until it answers.
    pub async fn start(
        testbed: &Testbed,
        network: &TestNetwork,
        options: ForbiddenOptions,
    ) -> anyhow::Result<Self> {
        let first = *options
            .ports
            .first()
            .context("a forbidden server needs a port")?;
        let ports = options
            .ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let started = container::start(
            testbed,
            network,
            Service {
                role: "forbidden",
                alias: &options.alias,
                script: SCRIPT,
                env: vec![("FORBIDDEN_PORTS".to_owned(), ports)],
                ready: (first, "/__hits"),
            },
        )
        .await
        .context("starting the forbidden server")?;
        Ok(Self {
            container: started.container,
            ip: started.ip,
            options,
        })
    }

    /// The container's full id.
    pub fn container_id(&self) -> &str {
        self.container.id()
    }

    /// Its address on the network.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Its DNS name on the network.
    pub fn alias(&self) -> &str {
        &self.options.alias
    }

    /// The ports it listens on.
    pub fn ports(&self) -> &[u16] {
        &self.options.ports
    }

    /// `ip:<first port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.options.ports.first().copied().unwrap_or(80))
    }

    /// What it has seen so far.
    pub async fn hits(&self) -> anyhow::Result<Hits> {
        let response = http::get(self.addr(), "/__hits").await?;
        ensure!(response.status == 200, "GET /__hits: {}", response.status);
        response.json()
    }

    /// Stops and removes it now.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.container.remove().await
    }
}
