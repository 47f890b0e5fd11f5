//! Agent images from this machine's Docker engine, for hosts that lack them: their ids, and a
//! compressed `docker save` of each, made once per run in a scratch directory removed with it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use hermes_core::seams::ProviderError;
use hermes_provider_local::Docker;
use hermes_provider_ssh::ImageSource;

use crate::output::Printer;

/// Bound on one `docker` call (saving a 500 MB image included).
const DOCKER_TIMEOUT: Duration = Duration::from_mins(10);

/// The images of this machine's Docker engine.
pub(crate) struct LocalImages {
    docker: Docker,
    printer: Printer,
    /// The scratch directory and the archives made so far, by reference.
    archives: tokio::sync::Mutex<(Option<tempfile::TempDir>, BTreeMap<String, PathBuf>)>,
}

impl LocalImages {
    pub(crate) fn new(printer: Printer) -> Self {
        Self {
            docker: Docker::new("docker", DOCKER_TIMEOUT),
            printer,
            archives: tokio::sync::Mutex::default(),
        }
    }
}

#[async_trait]
impl ImageSource for LocalImages {
    async fn id(&self, reference: &str) -> Result<String, ProviderError> {
        let inspect = |name: &str| {
            let name = name.to_owned();
            async move {
                self.docker
                    .run(["image", "inspect", "--format", "{{.Id}}", name.as_str()])
                    .await
                    .map(|out| out.trim().to_owned())
            }
        };
        if let Ok(id) = inspect(reference).await {
            return Ok(id);
        }
        // A digest pin on an image that never went through a registry (built here, sent over
        // SSH) names the image's id.
        if let Some((_, digest)) = reference.split_once('@')
            && let Ok(id) = inspect(digest).await
        {
            return Ok(id);
        }
        Err(ProviderError::Other(format!(
            "`{reference}` is not on this machine's Docker engine; `hermes-infra image build \
             STACK` makes the stack's own image, and an upstream image must be pulled or loaded \
             here first{}",
            if reference.contains('@') {
                " (a digest pin names an image id as `image build` prints it)"
            } else {
                ""
            }
        )))
    }

    async fn archive(&self, reference: &str) -> Result<PathBuf, ProviderError> {
        let mut guard = self.archives.lock().await;
        let (scratch, made) = &mut *guard;
        if let Some(path) = made.get(reference) {
            return Ok(path.clone());
        }
        if scratch.is_none() {
            *scratch = Some(
                tempfile::Builder::new()
                    .prefix("hermes-infra-images-")
                    .tempdir()
                    .map_err(|e| {
                        ProviderError::Other(format!("cannot make a scratch directory: {e}"))
                    })?,
            );
        }
        let dir = scratch
            .as_ref()
            .map_or(std::path::Path::new("."), tempfile::TempDir::path);
        let path = dir.join(format!("{}.tar.gz", made.len()));
        let started = Instant::now();
        let bytes = self.docker.save_compressed(reference, &path).await?;
        self.printer.err(&format!(
            "  image: {reference} compressed to {bytes} bytes in {:.1}s\n",
            started.elapsed().as_secs_f64()
        ));
        made.insert(reference.to_owned(), path.clone());
        Ok(path)
    }
}
