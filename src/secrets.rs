//! Resolves secret references at apply time: `env:` from this process's environment, `file:`
//! from a file (relative paths from the stack file's folder), `cmd:` from a command's output.
//! Values are wrapped in `Secret` at once and never logged; only references are.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use hermes_core::seams::{SecretError, SecretSource};
use hermes_core::{Secret, SecretRef};

/// Secret resolution for the CLI.
#[derive(Debug, Clone)]
pub(crate) struct LocalSecrets {
    /// Folder that relative `file:` paths start from.
    pub(crate) base: PathBuf,
    /// How long a `cmd:` may run.
    pub(crate) cmd_timeout: Duration,
}

fn fail(reference: &SecretRef, reason: impl Into<String>) -> SecretError {
    SecretError {
        reference: reference.clone(),
        reason: reason.into(),
    }
}

#[async_trait]
impl SecretSource for LocalSecrets {
    async fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
        tracing::debug!(secret = %reference, "resolving secret reference");
        match reference {
            SecretRef::Env(name) => std::env::var(name).map(Secret::new).map_err(|_| {
                fail(
                    reference,
                    format!("environment variable `{name}` is not set"),
                )
            }),
            SecretRef::File(path) => {
                let path = self.base.join(path);
                let text = tokio::fs::read_to_string(&path).await.map_err(|e| {
                    fail(reference, format!("cannot read `{}`: {e}", path.display()))
                })?;
                Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
            }
            SecretRef::Cmd(command) => {
                let mut cmd = tokio::process::Command::new("sh");
                cmd.arg("-c")
                    .arg(command)
                    .kill_on_drop(true)
                    .stdin(std::process::Stdio::null());
                let output = tokio::time::timeout(self.cmd_timeout, cmd.output())
                    .await
                    .map_err(|_| {
                        fail(
                            reference,
                            format!("the command did not finish within {:?}", self.cmd_timeout),
                        )
                    })?
                    .map_err(|e| fail(reference, format!("cannot run the command: {e}")))?;
                if !output.status.success() {
                    return Err(fail(
                        reference,
                        format!("the command exited with {}", output.status),
                    ));
                }
                let text = String::from_utf8(output.stdout)
                    .map_err(|_| fail(reference, "the command's output is not UTF-8"))?;
                Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
            }
            SecretRef::AwsSm(_) => Err(fail(
                reference,
                "AWS Secrets Manager references are not supported by this build yet; use env:, file: or cmd:",
            )),
        }
    }
}
