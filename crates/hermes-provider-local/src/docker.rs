//! A thin, bounded client over the `docker` command line.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;

use hermes_core::seams::ProviderError;
use hermes_core::{Scope, labels};

/// Runs `docker` commands with a timeout.
#[derive(Debug, Clone)]
pub struct Docker {
    program: String,
    timeout: Duration,
}

/// The parts of `docker inspect` the provider reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Full container id.
    pub id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `running`, `exited`, `created`, ...
    pub state: String,
    /// IP address on each attached network, by network name.
    pub addresses: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    config: InspectConfig,
    state: InspectState,
    #[serde(default)]
    network_settings: Option<InspectNetworkSettings>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectNetworkSettings {
    #[serde(default)]
    networks: Option<BTreeMap<String, InspectEndpoint>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectEndpoint {
    #[serde(rename = "IPAddress", default)]
    ip_address: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectState {
    status: String,
}

impl Docker {
    /// A client running `program` (normally `docker`).
    pub fn new(program: impl Into<String>, timeout: Duration) -> Self {
        Self {
            program: program.into(),
            timeout,
        }
    }

    /// Runs `docker ARGS` and returns its standard output.
    pub async fn run<I, S>(&self, args: I) -> Result<String, ProviderError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> =
            args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let shown = args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        tracing::debug!(command = %format!("{} {shown}", self.program), "docker");
        let mut cmd = Command::new(&self.program);
        cmd.args(&args)
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        let output = tokio::time::timeout(self.timeout, cmd.output())
            .await
            .map_err(|_| {
                ProviderError::Transient(format!(
                    "`docker {shown}` did not answer within {:?}",
                    self.timeout
                ))
            })?
            .map_err(|e| {
                ProviderError::Other(format!(
                    "cannot run `{}`: {e}; is Docker installed?",
                    self.program
                ))
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(ProviderError::Other(format!(
                "`docker {shown}` failed: {}",
                stderr.trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Every container (running or not) carrying `scope`'s stack and environment labels.
    pub async fn owned_containers(&self, scope: &Scope) -> Result<Vec<Container>, ProviderError> {
        let ids = self
            .run([
                "ps",
                "-a",
                "-q",
                "--no-trunc",
                "--filter",
                &format!("label={}={}", labels::STACK, scope.stack),
                "--filter",
                &format!("label={}={}", labels::ENV, scope.env),
            ])
            .await?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["inspect"];
        args.extend(ids);
        let json = self.run(args).await?;
        let parsed: Vec<Inspect> = serde_json::from_str(&json).map_err(|e| {
            ProviderError::Other(format!("cannot read `docker inspect` output: {e}"))
        })?;
        Ok(parsed
            .into_iter()
            .map(|i| Container {
                id: i.id,
                labels: i.config.labels.unwrap_or_default(),
                state: i.state.status,
                addresses: i
                    .network_settings
                    .and_then(|n| n.networks)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(_, e)| !e.ip_address.is_empty())
                    .map(|(name, e)| (name, e.ip_address))
                    .collect(),
            })
            .filter(|c| labels::is_owned_by(&c.labels, scope))
            .collect())
    }
}
