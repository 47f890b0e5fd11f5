//! Provider, SSH access, hosts and hardening.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{Cidr, DurationText, Name, SshPublicKey, TimeOfDay, UnixUser};
use hermes_core::SecretRef;

/// Where hosts come from. Exactly one of the tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Provider {
    /// Hosts are containers (or QEMU VMs) on this machine: no cloud account needed.
    Local(LocalProvider),
    /// Hetzner Cloud servers.
    Hetzner(HetznerProvider),
    /// AWS EC2 instances.
    Aws(AwsProvider),
}

impl Default for Provider {
    fn default() -> Self {
        Provider::Local(LocalProvider::default())
    }
}

impl Provider {
    /// `local`, `hetzner` or `aws`.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Local(_) => "local",
            Provider::Hetzner(_) => "hetzner",
            Provider::Aws(_) => "aws",
        }
    }
}

/// What a local host is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HostKind {
    /// A systemd container sharing this machine's kernel (fast; kernel settings are skipped).
    #[default]
    Container,
    /// A QEMU virtual machine with its own kernel (slow without KVM; for kernel-level checks).
    Vm,
}

/// The local provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LocalProvider {
    /// Default kind of host.
    #[serde(default)]
    pub host_kind: HostKind,
    /// Default size: `small` (1 CPU, 1 GiB), `medium` (2 CPUs, 2 GiB) or `large` (2 CPUs, 4 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// The Hetzner Cloud provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HetznerProvider {
    /// Location: `fsn1`, `nbg1`, `hel1`, `ash`, `hil` or `sin`.
    pub location: String,
    /// Default server type, such as `cpx22`.
    pub server_type: String,
    /// OS image name.
    #[serde(default = "default_image")]
    pub image: String,
    /// API token (a secret reference).
    #[serde(default = "default_hcloud_token")]
    pub token: SecretRef,
    /// Put hosts behind a Hetzner Cloud Firewall that mirrors the host firewall's inbound rules.
    #[serde(default = "yes")]
    pub cloud_firewall: bool,
}

/// The AWS EC2 provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AwsProvider {
    /// Region, such as `eu-central-1`.
    pub region: String,
    /// Default instance type, such as `t3.medium`.
    pub instance_type: String,
    /// AMI id (`ami-...`). Give this or `image-name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami: Option<String>,
    /// AMI name pattern, resolved to the newest match (`debian-12-amd64-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// Subnet to launch into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    /// VPC of the security group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// Root volume size in GiB.
    #[serde(default = "default_root_volume")]
    pub root_volume_gb: u32,
    /// Give hosts a public IPv4 address.
    #[serde(default = "yes")]
    pub public_ip: bool,
}

/// SSH access for the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Ssh {
    /// Admin user created on every host (key login and sudo; root login is always off).
    #[serde(default = "default_admin")]
    pub admin_user: UnixUser,
    /// SSH port. New hosts start with sshd on 22; host hardening moves it here (a fresh login
    /// on the new port is tested before the change is kept) and the state remembers where each
    /// host listens.
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// Public keys allowed to log in as the admin user. Empty on a local stack: `hermes-infra`
    /// uses a key of its own, kept beside the state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorized_keys: Vec<SshPublicKey>,
    /// Source addresses allowed to reach SSH. Required for cloud hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_from: Vec<Cidr>,
}

impl Default for Ssh {
    fn default() -> Self {
        Self {
            admin_user: default_admin(),
            port: 22,
            authorized_keys: Vec::new(),
            allow_from: Vec::new(),
        }
    }
}

/// One host, or a group of `count` hosts with the same settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HostGroup {
    /// Number of hosts; with a count the hosts are named `<name>-1` ... `<name>-N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Role label (`agents` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Name>,
    /// Machine size: a Hetzner server type, an EC2 instance type, or a local size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Hetzner location or AWS availability zone, overriding the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Local hosts only: container or VM, overriding the provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<HostKind>,
    /// Extra labels (tags) on the host.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Host hardening.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Hardening {
    /// fail2ban with the sshd and recidive jails.
    #[serde(default)]
    pub fail2ban: Fail2ban,
    /// Automatic security updates.
    #[serde(default)]
    pub unattended_upgrades: UnattendedUpgrades,
    /// Extra sysctl settings, applied after the built-in hardened set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, SysctlValue>,
    /// Extra inbound firewall rules (everything not allowed is dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound: Vec<InboundRule>,
}

/// A sysctl value: a number or a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SysctlValue {
    /// A number, such as `1`.
    Number(i64),
    /// A string, such as `"4096 87380 6291456"`.
    Text(String),
}

impl std::fmt::Display for SysctlValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SysctlValue::Number(n) => write!(f, "{n}"),
            SysctlValue::Text(s) => f.write_str(s),
        }
    }
}

/// fail2ban settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Fail2ban {
    /// Run fail2ban.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Failures before a ban.
    #[serde(default = "default_max_retry")]
    pub max_retry: u32,
    /// Window in which failures are counted.
    #[serde(default = "default_find_time")]
    pub find_time: DurationText,
    /// Length of a ban.
    #[serde(default = "default_ban_time")]
    pub ban_time: DurationText,
    /// Also ban repeat offenders for a week (the recidive jail).
    #[serde(default = "yes")]
    pub recidive: bool,
    /// Addresses never banned (the operator's, CI's). On a local stack without
    /// `ssh.allow-from`, the address hermes-infra connects from is added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<Cidr>,
}

impl Default for Fail2ban {
    fn default() -> Self {
        Self {
            enabled: true,
            max_retry: default_max_retry(),
            find_time: default_find_time(),
            ban_time: default_ban_time(),
            recidive: true,
            ignore: Vec::new(),
        }
    }
}

/// Automatic security updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UnattendedUpgrades {
    /// Install security updates automatically.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Reboot automatically when an update needs it.
    #[serde(default = "yes")]
    pub reboot: bool,
    /// When reboots may happen (host local time).
    #[serde(default = "default_reboot_window")]
    pub reboot_window: TimeOfDay,
}

impl Default for UnattendedUpgrades {
    fn default() -> Self {
        Self {
            enabled: true,
            reboot: true,
            reboot_window: default_reboot_window(),
        }
    }
}

/// Transport protocol of a firewall rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// A port or an inclusive range `"8000-8010"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortRange {
    /// One port.
    One(u16),
    /// A range, written `"FIRST-LAST"`.
    Range(String),
}

/// An extra inbound firewall rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InboundRule {
    /// Port or range.
    pub port: PortRange,
    /// Protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// Allowed sources.
    pub from: Vec<Cidr>,
    /// Why the rule exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_image() -> String {
    "debian-12".to_owned()
}
fn default_hcloud_token() -> SecretRef {
    SecretRef::Env("HCLOUD_TOKEN".to_owned())
}
fn default_root_volume() -> u32 {
    20
}
fn default_admin() -> UnixUser {
    UnixUser::try_from("hermes-admin".to_owned()).unwrap_or_else(|_| unreachable!())
}
fn default_ssh_port() -> u16 {
    22
}
fn default_max_retry() -> u32 {
    3
}
fn default_find_time() -> DurationText {
    DurationText::try_from("10m".to_owned()).unwrap_or_else(|_| unreachable!())
}
fn default_ban_time() -> DurationText {
    DurationText::try_from("1h".to_owned()).unwrap_or_else(|_| unreachable!())
}
fn default_reboot_window() -> TimeOfDay {
    TimeOfDay::try_from("03:30".to_owned()).unwrap_or_else(|_| unreachable!())
}
