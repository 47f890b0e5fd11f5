//! The stack file format, version 1, exactly as written in TOML: every table refuses unknown
//! keys, keys are kebab-case, and secrets are references only. Defaults live here so that the
//! JSON schema documents them.

mod agent;
mod hosts;
mod platform;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use agent::{
    Agent, Dashboard, DashboardAuth, Discord, Egress, Limits, Messaging, Model, ModelProvider,
    Slack, Telegram,
};
pub use hosts::{
    AwsProvider, Fail2ban, Hardening, HetznerProvider, HostGroup, HostKind, InboundRule,
    LocalProvider, PortRange, Protocol, Provider, Ssh, SysctlValue, UnattendedUpgrades,
};
pub use platform::{
    AwsAccount, Bedrock, EcrRegistry, GenericRegistry, Image, LocalState, Proxy, ProxyListen,
    Registry, S3State, State, TlsMode,
};

use crate::values::Name;

/// A stack file: one system, its hosts and its agents, with per-environment overlays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "hermes-infra stack file, format version 1")]
pub struct StackFile {
    /// Format version of this file; this release reads version 1.
    pub version: u32,
    /// The stack's name; part of every ownership label, so renaming a stack orphans its hosts.
    pub name: Name,
    /// What this stack is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The environments this stack can be applied to. Empty: one environment called `default`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<Name>,
    /// Refuse to run unless `--env` names the environment explicitly.
    #[serde(default)]
    pub require_env: bool,
    /// The environment used when `--env` is not given (default: the first declared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_env: Option<Name>,
    /// Where hosts come from. Default: `local` (containers on this machine's Docker engine).
    #[serde(default)]
    pub provider: Provider,
    /// How the operator reaches hosts over SSH.
    #[serde(default)]
    pub ssh: Ssh,
    /// Hosts by name. A group with `count = N` expands to `<name>-1` ... `<name>-N`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<Name, HostGroup>,
    /// Host hardening options.
    #[serde(default)]
    pub hardening: Hardening,
    /// The Hermes Agent image every agent runs unless it overrides it.
    #[serde(default)]
    pub image: Image,
    /// Where images are pushed. Absent: no registry, images travel to hosts over SSH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<Registry>,
    /// The AWS account used for ECR and IAM (also when hosts are elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsAccount>,
    /// Amazon Bedrock access for agents: which models, from which hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock: Option<Bedrock>,
    /// The TLS reverse proxy in front of the agents' APIs.
    #[serde(default)]
    pub proxy: Proxy,
    /// Where the small state (pinned host keys, deployed digests, lock) is kept.
    #[serde(default)]
    pub state: State,
    /// Agents by name, one per customer or profile.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub agents: BTreeMap<Name, Agent>,
    /// Per-environment overlays: any part of this file, merged on top of it for that environment
    /// (tables merge key by key; values and arrays replace).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, serde_json::Map<String, serde_json::Value>>")]
    pub overlay: BTreeMap<String, toml::Table>,
}
