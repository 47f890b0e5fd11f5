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

    /// `docker save IMAGE`, gzip-compressed into `dest` (level 1: the transfer, not the
    /// compression, is what costs), bounded by this client's timeout; returns the compressed
    /// size. Memory stays bounded by one read buffer.
    pub async fn save_compressed(
        &self,
        image: &str,
        dest: &std::path::Path,
    ) -> Result<u64, ProviderError> {
        use std::io::Write as _;
        use tokio::io::AsyncReadExt as _;

        let failed = |what: String| ProviderError::Other(format!("`docker save {image}`: {what}"));
        let mut child = Command::new(&self.program)
            .args(["save", image])
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot run `{}`: {e}", self.program)))?;
        let file = std::fs::File::create(dest)
            .map_err(|e| failed(format!("cannot write {}: {e}", dest.display())))?;
        let mut gzip = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::fast(),
        );
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| failed("no output".into()))?;
        let copy = async {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = stdout.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                gzip.write_all(&buf[..n])?;
            }
            child.wait_with_output().await
        };
        let output = tokio::time::timeout(self.timeout, copy)
            .await
            .map_err(|_| failed(format!("did not finish within {:?}", self.timeout)))?
            .map_err(|e| failed(e.to_string()))?;
        if !output.status.success() {
            return Err(failed(
                String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            ));
        }
        let file = gzip
            .finish()
            .and_then(|w| w.into_inner().map_err(std::io::IntoInnerError::into_error))
            .map_err(|e| failed(format!("cannot write {}: {e}", dest.display())))?;
        file.sync_all()
            .and_then(|()| file.metadata())
            .map(|m| m.len())
            .map_err(|e| failed(format!("cannot write {}: {e}", dest.display())))
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
