//! The images an agent runs from, built on this machine's Docker engine from Debian packages:
//! the Hermes Agent image (Debian 12, Python's virtual environment from Debian, Hermes Agent
//! from PyPI) and the egress proxy image (Debian's tinyproxy).

use std::borrow::Cow;

use super::{EmbeddedFile, ImageRecipe};

/// Where the agent recipe puts its install step; it runs there by chroot during the build.
pub const AGENT_INSTALL_PATH: &str = "/usr/lib/hermes-infra/install-agent";

/// Debian packages of the agent image: Python and its venv, CA certificates for the model
/// APIs, curl for the health check, tini as PID 1 (reaps the tools' children, forwards signals).
pub const AGENT_PACKAGES: &[&str] = &["python3", "python3-venv", "ca-certificates", "curl", "tini"];

const AGENT_HOOKS: &[&str] = &[
    // pip needs the network for this one step: this machine's DNS and CA bundle (a proxy that
    // inspects TLS may sit between it and PyPI), both gone from the image afterwards.
    r#"cp /etc/resolv.conf "$1/etc/resolv.conf" && cp /etc/ssl/certs/ca-certificates.crt "$1/tmp/hermes-build-ca.pem""#,
    r#"chroot "$1" /usr/lib/hermes-infra/install-agent"#,
    r#"rm -f "$1/tmp/hermes-build-ca.pem" && : > "$1/etc/resolv.conf""#,
];

const AGENT_CHANGES: &[&str] = &[
    // The upstream image's user, from the first instruction on: the gateway needs no
    // capability, so every one is dropped.
    "USER 10000:10000",
    "WORKDIR /opt/data",
    "ENV HERMES_HOME=/opt/data",
    "ENV PATH=/opt/hermes/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV PYTHONDONTWRITEBYTECODE=1",
    "ENV PYTHONUNBUFFERED=1",
    "ENV HERMES_DISABLE_LAZY_INSTALLS=1",
    r#"ENTRYPOINT ["/usr/bin/tini", "--", "/opt/hermes/bin/hermes"]"#,
    r#"CMD ["gateway", "run"]"#,
    "EXPOSE 8642/tcp",
];

const EGRESS_PACKAGES: &[&str] = &["tinyproxy", "ca-certificates"];

const EGRESS_CHANGES: &[&str] = &[
    "USER tinyproxy",
    r#"CMD ["/usr/bin/tinyproxy", "-d", "-c", "/etc/tinyproxy/tinyproxy.conf"]"#,
    "EXPOSE 8888/tcp",
];

impl ImageRecipe {
    /// The Hermes Agent image: `install_script` (rendered by `hermes-render` for one Hermes
    /// version) runs in the root filesystem and installs it; tagged
    /// `hermes-agent:debian12-<digest>`, so another version or template is another image.
    pub fn agent(install_script: String) -> Self {
        Self::bookworm(
            "hermes-agent",
            "hermes-agent",
            AGENT_PACKAGES,
            &[],
            AGENT_HOOKS,
            AGENT_CHANGES,
        )
        .with_file(EmbeddedFile {
            path: AGENT_INSTALL_PATH,
            mode: 0o755,
            content: Cow::Owned(install_script),
        })
    }

    /// The egress proxy image: Debian's tinyproxy, run as its own unprivileged user with the
    /// configuration mounted at `/etc/tinyproxy`; tagged `hermes-infra/egress-proxy:debian12-<digest>`.
    pub fn egress_proxy() -> Self {
        Self::bookworm(
            "egress-proxy",
            "hermes-infra/egress-proxy",
            EGRESS_PACKAGES,
            &[],
            &[],
            EGRESS_CHANGES,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_install_step_is_part_of_the_agent_images_digest() {
        let a = ImageRecipe::agent("install 0.19.0".to_owned());
        let b = ImageRecipe::agent("install 0.20.0".to_owned());
        assert_ne!(a.tag(), b.tag());
        assert!(a.tag().starts_with("hermes-agent:debian12-"), "{}", a.tag());
        assert!(a.canonical().contains(AGENT_INSTALL_PATH));
        assert!(a.import_changes().contains(&"USER 10000:10000".to_owned()));
    }

    #[test]
    fn the_build_machines_network_settings_do_not_stay_in_the_image() {
        let hooks = AGENT_HOOKS.join("\n");
        assert!(hooks.contains(r#"rm -f "$1/tmp/hermes-build-ca.pem""#));
        assert!(hooks.contains(r#": > "$1/etc/resolv.conf""#));
    }
}
