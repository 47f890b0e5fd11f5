//! Agents: one Hermes Agent container per customer or profile.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{EnvName, Hostname, ImageRef, Size, Url};
use hermes_core::SecretRef;

/// One agent: its host, model, messaging, limits, egress and exposure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Agent {
    /// The host it runs on (a host name, after `count` expansion: `web-2`).
    pub host: String,
    /// Image override for this agent (pinned by digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    /// Hostname on the reverse proxy that forwards to this agent's API (and only this agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Hostname>,
    /// The model the agent talks to.
    pub model: Model,
    /// A model to fall back to when the main one fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_model: Option<Model>,
    /// Messaging bridges.
    #[serde(default)]
    pub messaging: Messaging,
    /// Resource limits of the container.
    #[serde(default)]
    pub limits: Limits,
    /// Outbound hostnames allowed through the agent's egress proxy. The model's and the enabled
    /// messaging services' hosts are added automatically.
    #[serde(default)]
    pub egress: Egress,
    /// The web dashboard (off by default).
    #[serde(default)]
    pub dashboard: Dashboard,
    /// Extra environment variables that are not secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<EnvName, String>,
    /// Extra secret environment variables (references), written to the agent's 0600 env file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<EnvName, SecretRef>,
}

/// Which API a model is reached through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
// Vendor names as vendors write them: these doc comments are the JSON schema's descriptions.
#[allow(clippy::doc_markdown)]
pub enum ModelProvider {
    /// OpenAI (`api.openai.com`).
    Openai,
    /// Anthropic (`api.anthropic.com`).
    Anthropic,
    /// OpenRouter (`openrouter.ai`).
    Openrouter,
    /// Nous Portal.
    Nous,
    /// Amazon Bedrock, through the host's IAM role or scoped key (see `[bedrock]`).
    Bedrock,
    /// Any OpenAI-compatible endpoint at `base-url`.
    Custom,
}

impl ModelProvider {
    /// The API host of a provider with a fixed endpoint.
    pub fn default_host(self) -> Option<&'static str> {
        match self {
            ModelProvider::Openai => Some("api.openai.com"),
            ModelProvider::Anthropic => Some("api.anthropic.com"),
            ModelProvider::Openrouter => Some("openrouter.ai"),
            ModelProvider::Nous => Some("inference-api.nousresearch.com"),
            ModelProvider::Bedrock | ModelProvider::Custom => None,
        }
    }
}

/// A model block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Model {
    /// The provider.
    pub provider: ModelProvider,
    /// Model id, such as `gpt-4.1` or `anthropic.claude-sonnet-4-20250514-v1:0`.
    pub model: String,
    /// Endpoint (required for `custom`; optional override for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<Url>,
    /// API key (a secret reference). Not used with `bedrock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretRef>,
}

/// Messaging bridges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Messaging {
    /// Telegram (long polling: no inbound port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram: Option<Telegram>,
    /// Slack (socket mode: no inbound port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<Slack>,
    /// Discord.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discord: Option<Discord>,
}

/// Telegram bot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Telegram {
    /// Bot token (a secret reference).
    pub bot_token: SecretRef,
    /// Telegram user ids allowed to talk to the agent. Empty means nobody.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_users: Vec<String>,
    /// Chat id for notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_channel: Option<String>,
}

/// Slack app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Slack {
    /// Bot token, `xoxb-` (a secret reference).
    pub bot_token: SecretRef,
    /// App token for socket mode, `xapp-` (a secret reference).
    pub app_token: SecretRef,
    /// Slack user ids allowed to talk to the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_users: Vec<String>,
}

/// Discord bot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Discord {
    /// Bot token (a secret reference).
    pub bot_token: SecretRef,
    /// Discord user ids allowed to talk to the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_users: Vec<String>,
}

/// Container limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Limits {
    /// Memory limit, such as `2g`.
    #[serde(default = "default_memory")]
    pub memory: Size,
    /// CPU limit, such as `1.5`.
    #[serde(default = "default_cpus")]
    pub cpus: f64,
    /// Process limit.
    #[serde(default = "default_pids")]
    pub pids: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: default_memory(),
            cpus: default_cpus(),
            pids: default_pids(),
        }
    }
}

/// Egress allowlist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Egress {
    /// Hostnames (a leading `*.` allows subdomains). Everything else is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Hostname>,
}

/// The dashboard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Dashboard {
    /// Run the dashboard (on the container's loopback; reach it with `hermes-infra tunnel`).
    #[serde(default)]
    pub enabled: bool,
    /// Also serve it through the reverse proxy at `dashboard.<hostname>`; requires `auth`.
    #[serde(default)]
    pub expose: bool,
    /// Login for an exposed dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<DashboardAuth>,
}

/// Dashboard basic auth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DashboardAuth {
    /// User name.
    pub username: String,
    /// Password (a secret reference).
    pub password: SecretRef,
}

fn default_memory() -> Size {
    Size::try_from("2g".to_owned()).unwrap_or_else(|_| unreachable!())
}
fn default_cpus() -> f64 {
    1.0
}
fn default_pids() -> u32 {
    256
}
