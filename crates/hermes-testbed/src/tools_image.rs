//! The testbed's tools image: Debian 12 (bookworm, minbase) with `python3`, `iproute2`, `curl`,
//! `ca-certificates`, Pebble with `openssl` for the ACME server, and `docker-registry` with
//! `htpasswd` for the image registry, built from Debian packages like the product's own images
//! ([`ImageRecipe::bookworm`]). Its tag is content-addressed, so it is built once per recipe and
//! then reused. The testbed's servers are Python scripts passed at `docker run` time, so changing
//! a script never rebuilds the image.

use anyhow::Context as _;
use hermes_provider_local::Docker;
use hermes_provider_local::image::ImageRecipe;

/// Packages of the tools image (their dependencies come too).
pub const PACKAGES: &[&str] = &[
    "python3",
    "iproute2",
    "curl",
    "ca-certificates",
    "pebble",
    "openssl",
    "docker-registry",
    "apache2-utils",
];

const CHANGES: &[&str] = &["ENV PYTHONUNBUFFERED=1", "ENV PYTHONDONTWRITEBYTECODE=1"];

/// The recipe: `hermes-infra/testbed-tools:debian12-<12 hex>`.
pub fn recipe() -> ImageRecipe {
    ImageRecipe::bookworm(
        "testbed-tools",
        "hermes-infra/testbed-tools",
        PACKAGES,
        &[],
        &[],
        CHANGES,
    )
}

/// The tools image's reference, building it first when the engine lacks it: through the local
/// apt cache when this machine reaches it (faster, and shared with the host image), else
/// straight from Debian's archive. Progress lines go to `tracing` (info).
pub async fn ensure(docker: &Docker) -> anyhow::Result<String> {
    let progress = |line: &str| tracing::info!(target: "hermes_testbed::image", "{line}");
    recipe()
        .ensure_through_cache(docker, &progress)
        .await
        .context("building the testbed tools image (through the apt cache when reachable)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_content_addressed_and_named() {
        let tag = recipe().tag();
        assert!(
            tag.starts_with("hermes-infra/testbed-tools:debian12-"),
            "{tag}"
        );
        assert_eq!(tag, recipe().tag());
        for p in PACKAGES {
            assert!(
                recipe().canonical().contains(&format!("package={p}\n")),
                "{p}"
            );
        }
    }
}
