//! The host-hardening phase: admin access, sshd, nftables firewall, fail2ban, unattended
//! upgrades and sysctl settings, from the desired `host-hardening` attributes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sysctl::{BUILTIN, SysctlLevel, sysctl_level};
use crate::templates::render;
use crate::{HostFacts, ManagedFile, Phase, Reload, RenderError, Rendered};

/// Key exchange for Debian 12 (OpenSSH 9.2): the post-quantum hybrid (both names Debian's
/// build accepts) for OpenSSH clients, then curve25519 for libssh2, hermes-infra's own client,
/// which has neither sntrup nor ML-KEM. ssh-audit warns once (curve25519 is not post-quantum
/// safe) and fails nothing.
const KEX: &str = "sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256";
/// Ciphers: authenticated or counter mode only.
const CIPHERS: &str = "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr";
/// MACs: encrypt-then-MAC only.
const MACS: &str =
    "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com";
/// Host key algorithms: hosts present their Ed25519 key only (the one pinned in the state);
/// the template lists the accepted user key algorithms itself.
const HOST_KEY_ALGORITHMS: &str = "ssh-ed25519";
/// Kernel modules that hosts owning their kernel never load (hardening.md §1).
const BLACKLISTED_MODULES: &[&str] = &[
    "cramfs",
    "freevxfs",
    "jffs2",
    "hfs",
    "hfsplus",
    "udf",
    "dccp",
    "rds",
    "sctp",
    "tipc",
    "usb-storage",
    "firewire-core",
];
/// The group whose members may log in over SSH (`AllowGroups`).
pub const ADMIN_GROUP: &str = "hermes-ssh";

/// The desired `host-hardening` attributes, as the planner writes them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HardeningSpec {
    /// The admin user.
    pub admin_user: String,
    /// SSH port.
    pub ssh_port: u16,
    /// Sources allowed to reach SSH.
    #[serde(default)]
    pub ssh_allow_from: Vec<String>,
    /// Public keys of the admin user.
    #[serde(default)]
    pub authorized_keys: Vec<String>,
    /// fail2ban settings.
    pub fail2ban: Fail2banSpec,
    /// Automatic updates.
    pub unattended_upgrades: UnattendedSpec,
    /// Extra sysctl settings.
    #[serde(default)]
    pub sysctl: BTreeMap<String, Value>,
    /// Extra inbound rules.
    #[serde(default)]
    pub inbound: Vec<InboundSpec>,
    /// The reverse proxy's port and sources, when the host has a proxy.
    #[serde(default)]
    pub proxy: Option<ProxySpec>,
}

/// fail2ban settings (read in the stack's kebab-case, given to templates in snake case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "kebab-case"))]
pub struct Fail2banSpec {
    enabled: bool,
    max_retry: u32,
    find_time: String,
    ban_time: String,
    recidive: bool,
    #[serde(default)]
    ignore: Vec<String>,
}

/// Automatic update settings (read in kebab-case, given to templates in snake case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "kebab-case"))]
pub struct UnattendedSpec {
    enabled: bool,
    reboot: bool,
    reboot_window: String,
}

/// An extra inbound rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct InboundSpec {
    port: Value,
    #[serde(default = "tcp")]
    protocol: String,
    #[serde(default)]
    from: Vec<String>,
}

/// The reverse proxy's opening.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProxySpec {
    port: u16,
    #[serde(default)]
    from: Vec<String>,
    listen: String,
    /// Certificates over ACME: port 80 opens to anyone for HTTP-01 challenges.
    #[serde(default)]
    acme: bool,
}

fn tcp() -> String {
    "tcp".to_owned()
}

impl HardeningSpec {
    /// Reads the desired attributes of a `host-hardening` resource.
    pub fn from_attrs(attrs: &hermes_core::Attrs) -> Result<Self, RenderError> {
        let object: serde_json::Map<String, Value> =
            attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        serde_json::from_value(Value::Object(object)).map_err(|e| RenderError::Spec {
            phase: Phase::HostHardening,
            message: e.to_string(),
        })
    }
}

/// A firewall rule as the template sees it.
#[derive(Debug, Serialize)]
struct RuleContext {
    proto: String,
    ports: String,
    from_v4: Vec<String>,
    from_v6: Vec<String>,
}

#[derive(Debug, Serialize)]
struct SysctlEntry {
    key: String,
    value: String,
}

/// Splits sources into IPv4 and IPv6 networks; a bare address is a single-address network.
fn split(sources: &[String]) -> Result<(Vec<String>, Vec<String>), RenderError> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for source in sources {
        let net: IpNet = source
            .parse()
            .or_else(|_| source.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| RenderError::Spec {
                phase: Phase::HostHardening,
                message: format!("`{source}` is not an address or network"),
            })?;
        match net {
            IpNet::V4(n) => v4.push(n.trunc().to_string()),
            IpNet::V6(n) => v6.push(n.trunc().to_string()),
        }
    }
    Ok((v4, v6))
}

fn ports_text(port: &Value) -> Result<String, RenderError> {
    let text = match port {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let valid = text
        .split('-')
        .all(|p| !p.is_empty() && p.parse::<u16>().is_ok())
        && text.split('-').count() <= 2;
    if valid {
        Ok(text)
    } else {
        Err(RenderError::Spec {
            phase: Phase::HostHardening,
            message: format!("`{text}` is not a port or port range"),
        })
    }
}

/// The sysctl settings for a host: the built-in ones and the stack's, the stack's winning;
/// kernel-level ones only on a host that owns its kernel, the rest listed as not applicable.
fn sysctl_entries(
    spec: &HardeningSpec,
    facts: &HostFacts,
    not_applicable: &mut Vec<String>,
) -> Vec<SysctlEntry> {
    let mut wanted: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let stack = spec.sysctl.iter().map(|(k, v)| {
        let value = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        (k.clone(), value)
    });
    let builtin = BUILTIN
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    for (key, value) in builtin.chain(stack) {
        if !wanted.contains_key(&key) {
            order.push(key.clone());
        }
        wanted.insert(key, value);
    }
    let mut skipped = Vec::new();
    let mut entries = Vec::new();
    for key in order {
        let value = wanted.remove(&key).unwrap_or_default();
        if facts.kernel_own || sysctl_level(&key) == SysctlLevel::Namespace {
            entries.push(SysctlEntry { key, value });
        } else {
            skipped.push(key);
        }
    }
    if !skipped.is_empty() {
        not_applicable.push(format!(
            "sysctl {}: kernel-level settings; this host shares the kernel of the machine it runs \
             on (a container), so setting them would change that machine and every host on it",
            skipped.join(", ")
        ));
    }
    entries
}

/// The files of the host-hardening phase for one host. `extra_keys` are public keys allowed
/// besides the stack's (hermes-infra's own key on local stacks).
pub fn hardening_files(
    spec: &HardeningSpec,
    facts: &HostFacts,
    extra_keys: &[String],
) -> Result<Rendered, RenderError> {
    let mut not_applicable = Vec::new();
    let mut allow = spec.ssh_allow_from.clone();
    let mut fail2ban = spec.fail2ban.clone();
    // No SSH sources in the stack (local stacks only): the machine hermes-infra runs on, as
    // the host sees it, may connect and is never banned.
    if allow.is_empty()
        && let Some(source) = facts.admin_source
    {
        let own = IpNet::from(source).to_string();
        allow.push(own.clone());
        if !fail2ban.ignore.contains(&own) {
            fail2ban.ignore.push(own);
        }
    }
    let (ssh_allow_v4, ssh_allow_v6) = split(&allow)?;
    let mut inbound = Vec::new();
    for rule in &spec.inbound {
        let (from_v4, from_v6) = split(&rule.from)?;
        inbound.push(RuleContext {
            proto: rule.protocol.clone(),
            ports: ports_text(&rule.port)?,
            from_v4,
            from_v6,
        });
    }
    if let Some(proxy) = &spec.proxy
        && proxy.listen != "loopback"
    {
        let (from_v4, from_v6) = split(&proxy.from)?;
        inbound.push(RuleContext {
            proto: "tcp".to_owned(),
            ports: proxy.port.to_string(),
            from_v4,
            from_v6,
        });
        if proxy.acme {
            inbound.push(RuleContext {
                proto: "tcp".to_owned(),
                ports: "80".to_owned(),
                from_v4: Vec::new(),
                from_v6: Vec::new(),
            });
        }
    }
    let mut keys: Vec<String> = spec.authorized_keys.clone();
    for key in extra_keys {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    let sysctl = sysctl_entries(spec, facts, &mut not_applicable);

    let mut context = tera::Context::new();
    context.insert("admin_user", &spec.admin_user);
    context.insert("admin_group", ADMIN_GROUP);
    context.insert("ssh_port", &spec.ssh_port);
    context.insert("authorized_keys", &keys);
    context.insert("ssh_allow_v4", &ssh_allow_v4);
    context.insert("ssh_allow_v6", &ssh_allow_v6);
    context.insert("kex", KEX);
    context.insert("ciphers", CIPHERS);
    context.insert("macs", MACS);
    context.insert("host_key_algorithms", HOST_KEY_ALGORITHMS);
    context.insert("inbound", &inbound);
    context.insert("fail2ban", &fail2ban);
    context.insert("unattended", &spec.unattended_upgrades);
    context.insert("sysctl", &sysctl);
    context.insert("kernel_own", &facts.kernel_own);
    context.insert("modules", BLACKLISTED_MODULES);

    let admin = &spec.admin_user;
    let table: [(&str, String, u32, Reload); 15] = [
        (
            "sshd.conf.tera",
            "/etc/ssh/sshd_config.d/00-hermes.conf".to_owned(),
            0o600,
            Reload::Sshd,
        ),
        (
            "authorized_keys.tera",
            format!("/etc/ssh/authorized_keys/{admin}"),
            0o644,
            Reload::Sshd,
        ),
        (
            "sudoers.tera",
            "/etc/sudoers.d/90-hermes-admin".to_owned(),
            0o440,
            Reload::Sudoers,
        ),
        (
            "nftables.conf.tera",
            "/etc/nftables.conf".to_owned(),
            0o700,
            Reload::Firewall,
        ),
        (
            "nftables-service.conf.tera",
            "/etc/systemd/system/nftables.service.d/10-hermes.conf".to_owned(),
            0o644,
            Reload::SystemdUnit,
        ),
        (
            "login.defs.sed.tera",
            "/etc/hermes-infra/login.defs.sed".to_owned(),
            0o644,
            Reload::LoginDefs,
        ),
        // A legal notice before login (local consoles and, for tools that show it, the network).
        ("issue.tera", "/etc/issue".to_owned(), 0o644, Reload::None),
        (
            "issue.tera",
            "/etc/issue.net".to_owned(),
            0o644,
            Reload::None,
        ),
        (
            "tmout.sh.tera",
            "/etc/profile.d/90-hermes-tmout.sh".to_owned(),
            0o644,
            Reload::None,
        ),
        (
            "core-limits.conf.tera",
            "/etc/security/limits.d/90-hermes-core.conf".to_owned(),
            0o644,
            Reload::None,
        ),
        (
            "coredump.conf.tera",
            "/etc/systemd/coredump.conf.d/90-hermes.conf".to_owned(),
            0o644,
            Reload::None,
        ),
        (
            "fail2ban.local.tera",
            "/etc/fail2ban/jail.d/00-hermes.local".to_owned(),
            0o644,
            Reload::Fail2ban,
        ),
        (
            "unattended-upgrades.conf.tera",
            "/etc/apt/apt.conf.d/52hermes-unattended".to_owned(),
            0o644,
            Reload::None,
        ),
        (
            "auto-upgrades.conf.tera",
            "/etc/apt/apt.conf.d/20auto-upgrades".to_owned(),
            0o644,
            Reload::None,
        ),
        (
            "sysctl.conf.tera",
            "/etc/sysctl.d/90-hermes.conf".to_owned(),
            0o644,
            Reload::Sysctl,
        ),
    ];
    let mut files = Vec::new();
    for (template, path, mode, reload) in table {
        files.push(ManagedFile {
            path,
            mode,
            reload,
            content: render(Phase::HostHardening, template, &context)?,
        });
    }
    if facts.kernel_own {
        files.push(ManagedFile {
            path: "/etc/modprobe.d/hermes-blacklist.conf".to_owned(),
            mode: 0o644,
            reload: Reload::None,
            content: render(Phase::HostHardening, "modprobe.conf.tera", &context)?,
        });
    } else {
        not_applicable.push(format!(
            "module blacklist ({}): modules belong to the kernel this host shares with the \
             machine it runs on",
            BLACKLISTED_MODULES.join(", ")
        ));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Rendered {
        phase: Phase::HostHardening,
        files,
        not_applicable,
    })
}
