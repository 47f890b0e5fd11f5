//! Pushing images to a generic registry through this machine's Docker engine: a login kept in a
//! throw-away client configuration (the password goes on standard input, never in arguments,
//! and is gone with the directory), `docker tag`, `docker push`, and the digest the registry
//! answered. The engine must trust the registry's certificate (a public CA, or
//! `/etc/docker/certs.d/<server>/ca.crt` on this machine).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use hermes_core::Secret;

/// Bound on one `docker` call (pushing a 500 MB image included).
const DOCKER_TIMEOUT: Duration = Duration::from_mins(20);

/// A logged-in session with one registry.
pub(crate) struct RegistrySession {
    server: String,
    config: tempfile::TempDir,
}

impl RegistrySession {
    /// Logs in to `server` as `login` (user, password) when given.
    pub(crate) async fn open(server: &str, login: Option<(&str, &Secret)>) -> anyhow::Result<Self> {
        let config = tempfile::Builder::new()
            .prefix("hermes-infra-registry-")
            .tempdir()
            .context("cannot make a scratch directory for the registry login")?;
        let session = Self {
            server: server.to_owned(),
            config,
        };
        if let Some((user, password)) = login {
            let mut child = session
                .docker(&["login", server, "--username", user, "--password-stdin"])
                .stdin(Stdio::piped())
                .spawn()
                .context("cannot run `docker`")?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(password.expose().as_bytes())
                    .await
                    .context("cannot hand the password to `docker login`")?;
            }
            let output = tokio::time::timeout(DOCKER_TIMEOUT, child.wait_with_output())
                .await
                .context("`docker login` did not answer in time")??;
            if !output.status.success() {
                bail!(
                    "`docker login {server}` failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
        }
        Ok(session)
    }

    fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("--config")
            .arg(self.config.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = tokio::time::timeout(DOCKER_TIMEOUT, self.docker(args).output())
            .await
            .with_context(|| format!("`docker {}` did not answer in time", args.join(" ")))?
            .context("cannot run `docker`")?;
        if !output.status.success() {
            bail!(
                "`docker {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Tags `local` as `remote` (`server/repository:tag`) and pushes it; returns the digest the
    /// registry answered (`sha256:...`).
    pub(crate) async fn push(&self, local: &str, remote: &str) -> anyhow::Result<String> {
        if !remote.starts_with(&format!("{}/", self.server)) {
            bail!("`{remote}` is not in registry `{}`", self.server);
        }
        self.run(&["tag", local, remote]).await?;
        let out = self.run(&["push", remote]).await?;
        digest_of(&out).with_context(|| format!("`docker push {remote}` printed no digest: {out}"))
    }
}

/// The digest in `docker push`'s last line (`TAG: digest: sha256:... size: N`).
fn digest_of(output: &str) -> Option<String> {
    output
        .lines()
        .rev()
        .find_map(|line| line.split("digest: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .filter(|d| d.starts_with("sha256:") && d.len() == 71)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_comes_from_the_last_line() {
        let hex = "a".repeat(64);
        let out = format!(
            "The push refers to repository [10.0.0.5:5000/team/hermes-agent]\n\
             5f70bf18a086: Pushed\n0.19.0: digest: sha256:{hex} size: 1573\n"
        );
        assert_eq!(digest_of(&out), Some(format!("sha256:{hex}")));
        assert_eq!(digest_of("nothing"), None);
    }
}
