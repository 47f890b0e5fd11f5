//! Images to hosts without a registry: which of a set of images a host has (one round trip),
//! and sending each it lacks as a compressed `docker save` stream from an [`ImageSource`] over
//! the run's SSH connection, in chunks of [`IMAGE_CHUNK`] (one exec round trip each; memory
//! bounded by one chunk), into a root-only file that `docker load` reads and that is removed
//! afterwards.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use tokio::io::AsyncReadExt as _;

use hermes_core::seams::{ProviderError, Remote as _};
use hermes_core::{Address, ObservedResource};

use crate::SshHostProvider;
use crate::apply::tail;
use crate::connections::Inner;
use crate::scripts::{as_root, quote};

/// Where images come from when a host lacks one: this machine's engine, which has the image
/// and can save it compressed.
#[async_trait::async_trait]
pub trait ImageSource: Send + Sync {
    /// The id (`sha256:...`) that `reference` names here.
    async fn id(&self, reference: &str) -> Result<String, ProviderError>;
    /// A gzip-compressed `docker save` of `reference` (an id, as [`ImageSource::id`] gave it),
    /// made once per run.
    async fn archive(&self, reference: &str) -> Result<std::path::PathBuf, ProviderError>;
}

/// Bytes sent per exec round trip when an image goes to a host.
pub const IMAGE_CHUNK: usize = 16 << 20;
/// Where a transfer waits on the host until `docker load` reads it (root only).
const INCOMING: &str = "/var/lib/hermes-infra/incoming";

/// What sending one image to one host took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImageTransfer {
    /// Compressed bytes sent.
    pub bytes: u64,
    /// Exec round trips that carried them.
    pub chunks: u64,
}

/// `sha256:<64 hex>`, the only form of image id accepted (it lands in scripts).
pub(crate) fn checked_id(id: &str) -> Result<&str, ProviderError> {
    let hex = id.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(ProviderError::Other(format!(
            "`{id}` is not an image id (sha256:<64 hex digits>)"
        )))
    }
}

impl Inner {
    /// Runs `script` as root on `host` with `payload` after it, over the run's connection; a
    /// failed exit is an error naming the host and `step`.
    pub(crate) async fn run_root_checked(
        &self,
        host: &str,
        world: &BTreeMap<Address, ObservedResource>,
        step: &str,
        script: &str,
        payload: &[u8],
    ) -> Result<String, ProviderError> {
        let remote = self.remote(host, world).await?;
        let output = match remote.run(step, &as_root(script), payload).await {
            Ok(output) => output,
            Err(e) => {
                self.drop_remote(host).await;
                return Err(ProviderError::Transient(e.to_string()));
            }
        };
        if output.status != 0 {
            return Err(ProviderError::Other(format!(
                "host `{host}`, step `{step}`: {}",
                tail(&output.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Which of `ids` (`sha256:...` image ids) `host`'s Docker engine has, in order; one round
    /// trip.
    pub(crate) async fn images_present(
        &self,
        host: &str,
        world: &BTreeMap<Address, ObservedResource>,
        ids: &[String],
    ) -> Result<Vec<bool>, ProviderError> {
        let mut script = String::from("set -u\n");
        for id in ids {
            checked_id(id)?;
            let _ = writeln!(
                script,
                "if docker image inspect {id} >/dev/null 2>&1; then echo yes; else echo no; fi"
            );
        }
        let out = self
            .run_root_checked(host, world, "image-check", &script, &[])
            .await?;
        let present: Vec<bool> = out.lines().map(|l| l.trim() == "yes").collect();
        if present.len() == ids.len() {
            Ok(present)
        } else {
            Err(ProviderError::Other(format!(
                "host `{host}`, step `image-check`: unexpected answer {out:?}"
            )))
        }
    }

    /// Sends `archive` (a gzip-compressed `docker save` of image `id`) to `host`, loads it into
    /// its Docker engine, checks that `id` is there, and tags it `tags`. The transfer file is
    /// root-only and removed afterwards, also when the load fails.
    pub(crate) async fn send_image(
        &self,
        host: &str,
        world: &BTreeMap<Address, ObservedResource>,
        archive: &Path,
        id: &str,
        tags: &[String],
    ) -> Result<ImageTransfer, ProviderError> {
        let hex = checked_id(id)?;
        let part = format!("{INCOMING}/{hex}.tar.gz");
        let read_failed = |e: std::io::Error| {
            ProviderError::Other(format!("cannot read {}: {e}", archive.display()))
        };
        let mut file = tokio::fs::File::open(archive).await.map_err(read_failed)?;
        self.run_root_checked(
            host,
            world,
            "image-send",
            &format!("set -eu\numask 077\nmkdir -p {INCOMING}\n: > {part}\n"),
            &[],
        )
        .await?;
        let mut transfer = ImageTransfer::default();
        let mut chunk = vec![0u8; IMAGE_CHUNK];
        loop {
            let mut filled = 0;
            while filled < IMAGE_CHUNK {
                let n = file.read(&mut chunk[filled..]).await.map_err(read_failed)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            self.run_root_checked(
                host,
                world,
                "image-send",
                &format!("set -eu\ncat >> {part}\n"),
                &chunk[..filled],
            )
            .await?;
            transfer.bytes += filled as u64;
            transfer.chunks += 1;
        }
        let mut load = format!(
            "set -eu\ntrap 'rm -f {part}' EXIT\n\
             test \"$(stat -c %s {part})\" = {size}\n\
             gzip -t {part}\n\
             gzip -dc {part} | docker load -q >/dev/null\n\
             docker image inspect {id} >/dev/null\n",
            size = transfer.bytes
        );
        for tag in tags {
            let _ = writeln!(load, "docker tag {id} {}", quote(tag));
        }
        self.run_root_checked(host, world, "image-load", &load, &[])
            .await?;
        Ok(transfer)
    }
}

impl Inner {
    /// Makes sure `host` has the images `references` name here (asked in one round trip),
    /// sending those it lacks from `source`; a reference may be an image id. One transfer per host at a time: agents deployed
    /// at once on one host send each image once.
    pub(crate) async fn ensure_images(
        &self,
        host: &str,
        world: &BTreeMap<Address, ObservedResource>,
        source: &dyn ImageSource,
        references: &[String],
    ) -> Result<Vec<HostImage>, ProviderError> {
        let slot = self.slot(host);
        let _one_at_a_time = slot.images.lock().await;
        let mut ids = Vec::new();
        for reference in references {
            // An image named by its id (a rollback) is that id everywhere.
            let id = if checked_id(reference).is_ok() {
                reference.clone()
            } else {
                source.id(reference).await?
            };
            ids.push(id);
        }
        let present = self.images_present(host, world, &ids).await?;
        let mut images = Vec::new();
        for ((reference, id), have) in references.iter().zip(ids).zip(present) {
            let sent = if have {
                None
            } else {
                let archive = source.archive(&id).await?;
                // The host's tag follows this machine's; a pin (an id, `name@digest`) is none.
                let tags: &[String] = if *reference == id || reference.contains('@') {
                    &[]
                } else {
                    std::slice::from_ref(reference)
                };
                Some(self.send_image(host, world, &archive, &id, tags).await?)
            };
            images.push(HostImage {
                reference: reference.clone(),
                id,
                sent,
            });
        }
        Ok(images)
    }
}

/// One image on one host after [`SshHostProvider::ensure_images`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostImage {
    /// The reference (tag) it was asked for, and now carries on the host.
    pub reference: String,
    /// Its id.
    pub id: String,
    /// What sending it took; `None` when the host had it.
    pub sent: Option<ImageTransfer>,
}

impl SshHostProvider {
    /// Makes sure `host` has the images `references` name on this machine (one round trip to
    /// ask), sending those it lacks from `source`.
    pub async fn ensure_images(
        &self,
        host: &str,
        world: &BTreeMap<Address, ObservedResource>,
        source: &dyn ImageSource,
        references: &[String],
    ) -> Result<Vec<HostImage>, ProviderError> {
        self.inner
            .ensure_images(host, world, source, references)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_image_ids_reach_the_scripts() {
        let id = format!("sha256:{}", "a".repeat(64));
        assert!(checked_id(&id).is_ok());
        for bad in [
            "hermes-agent:0.19.0",
            "sha256:abc",
            &format!("sha256:{}; rm -rf /", "a".repeat(64)),
        ] {
            assert!(checked_id(bad).is_err(), "{bad}");
        }
    }
}
