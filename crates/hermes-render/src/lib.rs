//! Pure rendering of the files `hermes-infra` manages on a host: from a phase's desired
//! attributes and the host's facts to files (path, mode, content), and from an agent's desired
//! attributes to its configuration, `.env`, container arguments and egress proxy, through tera
//! templates that are embedded at build time from the repository's `templates/`.
//!
//! No I/O happens here: the SSH host provider ships what this crate renders, and the planner
//! records [`templates_digest`] so that a new version of the templates shows as a change.

mod agent;
mod agent_image;
mod docker;
mod egress;
mod hardening;
mod proxy;
mod sysctl;
mod templates;

use serde::Serialize;

pub use agent::{
    API_KEY_VAR, API_PORT, AgentSpec, BotSpec, DASHBOARD_PORT, DATA_MOUNT, DashboardSpec,
    EGRESS_PROXY_PORT, FALLBACK_KEY_VAR, HERMES_UID, LimitsSpec, MODEL_KEY_VAR, MessagingSpec,
    ModelSpec, Placement, STOP_GRACE_SECONDS, agent_config, agent_env_file, agent_run_args,
    api_key_line,
};
pub use agent_image::agent_image_install_script;
pub use docker::docker_files;
pub use egress::{EgressFiles, egress_health_command, egress_proxy_files};
pub use hardening::{ADMIN_GROUP, HardeningSpec, hardening_files};
pub use proxy::{ACME_SCRIPT, LETS_ENCRYPT, ProxySpec, Route, proxy_files};
pub use sysctl::{SysctlLevel, sysctl_level};

/// A phase of host setup: one idempotent script per phase and host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Admin user, sshd, firewall, fail2ban, upgrades, sysctl.
    HostHardening,
    /// The Docker engine and its daemon settings.
    DockerEngine,
    /// nginx with one TLS server per agent hostname, and a local CA's certificates.
    ReverseProxy,
}

impl Phase {
    /// Every phase, in the order they run.
    pub const ALL: [Phase; 3] = [
        Phase::HostHardening,
        Phase::DockerEngine,
        Phase::ReverseProxy,
    ];

    /// The phase's name (also its manifest's name on the host).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::HostHardening => "host-hardening",
            Phase::DockerEngine => "docker-engine",
            Phase::ReverseProxy => "reverse-proxy",
        }
    }

    /// The Debian packages the phase installs.
    pub fn packages(self) -> &'static [&'static str] {
        match self {
            Phase::HostHardening => &[
                "nftables",
                "fail2ban",
                "python3-systemd",
                "unattended-upgrades",
                "apt-listchanges",
                "needrestart",
                "libpam-tmpdir",
                // Password strength rules for any account that gets a password (pam-auth-update
                // enables it), and package file integrity checks.
                "libpam-pwquality",
                "debsums",
            ],
            // AppArmor's parser: Debian kernels enable AppArmor, and without it every
            // `docker run` fails on a VM or cloud host (container hosts do not need it).
            Phase::DockerEngine => &["docker.io", "apparmor"],
            Phase::ReverseProxy => &["nginx"],
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What must happen on the host when a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reload {
    /// Nothing: the file is read when used.
    None,
    /// `sshd -t`, then reload sshd (lockout-protected).
    Sshd,
    /// `nft -c`, then load the ruleset (lockout-protected).
    Firewall,
    /// `fail2ban-client -t`, then restart fail2ban.
    Fail2ban,
    /// Apply the sysctl file.
    Sysctl,
    /// `visudo -c` before it is put in place.
    Sudoers,
    /// Restart dockerd (running containers survive: live restore).
    Docker,
    /// `systemctl daemon-reload` (a unit drop-in).
    SystemdUnit,
    /// Apply the sed script to `/etc/login.defs` (which has no drop-in directory) and exempt
    /// the key-only admin from password ageing.
    LoginDefs,
    /// Run the certificate script (before packages: nginx starts with its certificates).
    Certificates,
    /// `nginx -t`, then reload nginx.
    Nginx,
}

impl Reload {
    /// The name the phase scripts know it by.
    pub fn as_str(self) -> &'static str {
        match self {
            Reload::None => "none",
            Reload::Sshd => "sshd",
            Reload::Firewall => "firewall",
            Reload::Fail2ban => "fail2ban",
            Reload::Sysctl => "sysctl",
            Reload::Sudoers => "sudoers",
            Reload::Docker => "docker",
            Reload::SystemdUnit => "systemd-unit",
            Reload::LoginDefs => "login-defs",
            Reload::Certificates => "certificates",
            Reload::Nginx => "nginx",
        }
    }
}

/// One file to put on a host, owned by root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedFile {
    /// Absolute path on the host.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// What changes when the file changed.
    pub reload: Reload,
    /// The content.
    pub content: String,
}

impl ManagedFile {
    /// `sha256:<hex>` of the content (what the host's manifest records).
    pub fn digest(&self) -> String {
        hermes_core::digest::sha256(self.content.as_bytes())
    }
}

/// The files of one phase for one host, and the settings left out on it, each with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// The phase.
    pub phase: Phase,
    /// Files, sorted by path.
    pub files: Vec<ManagedFile>,
    /// Settings that do not apply to this host (kernel-level settings on a host that shares
    /// its kernel), each as `what: why`. Reported, never silently skipped.
    pub not_applicable: Vec<String>,
}

/// What the renderer needs to know about a host (read by its facts script).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostFacts {
    /// The host owns its kernel (a VM or a cloud server); `false` for a container sharing the
    /// kernel of the machine it runs on.
    pub kernel_own: bool,
    /// The address the admin connection comes from, as the host sees it. Allowed through the
    /// firewall when the stack lists no SSH sources (local stacks only: validation requires
    /// `ssh.allow-from` for cloud hosts).
    pub admin_source: Option<std::net::IpAddr>,
}

/// A failure to render; names the template or the value and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The desired attributes do not have the expected shape (a bug, or a plan from another
    /// version of hermes-infra).
    #[error("the desired `{phase}` attributes cannot be read: {message}; make a new plan")]
    Spec {
        /// The phase.
        phase: Phase,
        /// What is wrong.
        message: String,
    },
    /// An agent's attributes or secrets cannot be rendered (never shows a secret value).
    #[error("agent `{agent}`: {message}")]
    Agent {
        /// The agent.
        agent: String,
        /// What is wrong, and what to do.
        message: String,
    },
    /// A template failed to render.
    #[error("template `{template}` failed: {message}")]
    Template {
        /// The template's name.
        template: String,
        /// Tera's message, with its causes.
        message: String,
    },
}

/// Digest of everything that decides a phase's files besides the stack: the templates and the
/// built-in settings. Recorded in the plan and in the host's manifest, so that a new version of
/// `hermes-infra` that renders differently shows as a change.
pub fn templates_digest(phase: Phase) -> String {
    let mut parts: Vec<(&str, &str)> = templates::of_phase(phase).to_vec();
    let builtin = sysctl::builtin_text();
    if phase == Phase::HostHardening {
        parts.push(("builtin-sysctl", builtin.as_str()));
    }
    hermes_core::digest::of_json(&(phase, parts, Phase::packages(phase)))
}
