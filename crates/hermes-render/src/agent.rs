//! One agent's deployment on its host: `config.yaml` (no secret), the 0600 `.env` (every
//! secret), the `docker run` arguments of the gateway container (no secret), and its egress
//! proxy's configuration, from the desired `agent` attributes the planner writes.
//!
//! The container follows `shared/reference/hermes-agent.md` §10 and the CIS Docker Benchmark
//! section 5 (`hardening.md` §5): image by reference the caller pins, read-only root, tmpfs
//! `/run` and `/tmp`, every capability dropped (the gateway runs as a UID of its agent's own, so
//! nothing needs one back), no new privileges, memory without swap, CPU and process limits, a health check
//! on `/health`, a restart policy, a stop grace for draining, an internal network whose only
//! way out is the egress proxy, and no published port.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use hermes_core::Secret;

use crate::RenderError;
use crate::templates::{AGENT, render_from};

/// The user and group the image's files belong to (the upstream image's `hermes` user). No
/// deployed agent runs as it: each has a UID of its own (see [`Placement::user`]).
pub const HERMES_UID: u32 = 10_000;
/// The port of the gateway's OpenAI-compatible API inside the container.
pub const API_PORT: u16 = 8642;
/// Where the agent's data directory is mounted in the container (its `HERMES_HOME`).
pub const DATA_MOUNT: &str = "/opt/data";
/// The egress proxy's port on the agent's network.
pub const EGRESS_PROXY_PORT: u16 = 8888;
/// The environment variable holding the main model's key (referenced from `config.yaml`).
pub const MODEL_KEY_VAR: &str = "MODEL_API_KEY";
/// The environment variable holding the fallback model's key.
pub const FALLBACK_KEY_VAR: &str = "FALLBACK_MODEL_API_KEY";
/// The environment variable holding the key clients present to the agent's API.
pub const API_KEY_VAR: &str = "API_SERVER_KEY";
/// The dashboard's port, on the container's loopback only.
pub const DASHBOARD_PORT: u16 = 9119;
/// How long `docker stop` waits for the gateway to drain before killing it.
pub const STOP_GRACE_SECONDS: u32 = 60;

/// The desired `agent` attributes, as the planner writes them (secrets as references).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AgentSpec {
    /// The host it runs on.
    pub host: String,
    /// The image reference.
    pub image: String,
    /// The main model.
    pub model: ModelSpec,
    /// The model tried when the main one fails.
    #[serde(default)]
    pub fallback_model: Option<ModelSpec>,
    /// Container limits.
    pub limits: LimitsSpec,
    /// Hostnames the egress proxy lets through (a leading `*.` allows subdomains).
    #[serde(default)]
    pub egress: Vec<String>,
    /// The hostname the reverse proxy serves it at.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Messaging bridges.
    #[serde(default)]
    pub messaging: MessagingSpec,
    /// Environment variables that are not secrets.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Secret environment variables, as references.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// The web dashboard.
    #[serde(default)]
    pub dashboard: DashboardSpec,
}

/// The web dashboard of an agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DashboardSpec {
    /// Run it, on the container's loopback (`hermes-infra tunnel` reaches it).
    #[serde(default)]
    pub enabled: bool,
    /// Serve it through the reverse proxy.
    #[serde(default)]
    pub expose: bool,
}

/// A model block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ModelSpec {
    /// `openai`, `anthropic`, `openrouter`, `nous`, `bedrock` or `custom`.
    pub provider: String,
    /// The model id.
    pub model: String,
    /// The endpoint, when not the provider's own.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The key, as a secret reference.
    #[serde(default)]
    pub api_key: Option<String>,
}

/// Container limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LimitsSpec {
    /// Memory, such as `2g` (swap is not allowed on top).
    pub memory: String,
    /// CPUs, such as `1.5`.
    pub cpus: f64,
    /// Processes.
    pub pids: u32,
}

/// Messaging bridges (tokens as secret references).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MessagingSpec {
    /// Telegram.
    #[serde(default)]
    pub telegram: Option<BotSpec>,
    /// Slack.
    #[serde(default)]
    pub slack: Option<BotSpec>,
    /// Discord.
    #[serde(default)]
    pub discord: Option<BotSpec>,
}

/// One messaging bridge.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BotSpec {
    /// The bot token (a reference).
    pub bot_token: String,
    /// Slack's app token for socket mode (a reference).
    #[serde(default)]
    pub app_token: Option<String>,
    /// User ids allowed to talk to the agent (none: nobody).
    #[serde(default)]
    pub allowed_users: Vec<String>,
    /// Telegram's chat for notifications.
    #[serde(default)]
    pub home_channel: Option<String>,
}

impl AgentSpec {
    /// Reads the desired attributes of agent `name`.
    pub fn from_attrs(name: &str, attrs: &hermes_core::Attrs) -> Result<Self, RenderError> {
        let object: serde_json::Map<String, serde_json::Value> =
            attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| spec_error(name, format!("its attributes cannot be read: {e}")))
    }

    /// Every secret the agent needs, by the `.env` variable it goes to: model keys, messaging
    /// tokens and the stack's own secrets (the API key is generated, not listed here).
    pub fn secret_refs(&self) -> BTreeMap<String, String> {
        let mut refs = BTreeMap::new();
        if let Some(key) = &self.model.api_key {
            refs.insert(MODEL_KEY_VAR.to_owned(), key.clone());
        }
        if let Some(key) = self
            .fallback_model
            .as_ref()
            .and_then(|m| m.api_key.as_ref())
        {
            refs.insert(FALLBACK_KEY_VAR.to_owned(), key.clone());
        }
        let bots = [
            ("TELEGRAM", &self.messaging.telegram),
            ("SLACK", &self.messaging.slack),
            ("DISCORD", &self.messaging.discord),
        ];
        for (prefix, bot) in bots {
            if let Some(bot) = bot {
                refs.insert(format!("{prefix}_BOT_TOKEN"), bot.bot_token.clone());
                if let Some(app) = &bot.app_token {
                    refs.insert(format!("{prefix}_APP_TOKEN"), app.clone());
                }
            }
        }
        refs.extend(self.secrets.clone());
        refs
    }
}

pub(crate) fn spec_error(agent: &str, message: impl Into<String>) -> RenderError {
    RenderError::Agent {
        agent: agent.to_owned(),
        message: message.into(),
    }
}

/// A model as `config.yaml` names it.
#[derive(Debug, Serialize)]
struct ModelContext {
    provider: &'static str,
    model: String,
    base_url: Option<String>,
    api_key: Option<String>,
}

fn model_context(
    agent: &str,
    model: &ModelSpec,
    key_var: &str,
) -> Result<ModelContext, RenderError> {
    let (provider, default_url) = match model.provider.as_str() {
        // OpenAI is reached as an OpenAI-compatible endpoint at its own address.
        "openai" => ("custom", Some("https://api.openai.com/v1")),
        "custom" => ("custom", None),
        "anthropic" => ("anthropic", None),
        "openrouter" => ("openrouter", None),
        "nous" => ("nous", None),
        "bedrock" => ("bedrock", None),
        other => {
            return Err(spec_error(
                agent,
                format!("model provider `{other}` is not one hermes-infra knows"),
            ));
        }
    };
    let base_url = model
        .base_url
        .clone()
        .or_else(|| default_url.map(str::to_owned));
    if provider == "custom" && base_url.is_none() {
        return Err(spec_error(agent, "a `custom` model needs a `base-url`"));
    }
    let api_key = match (&model.api_key, provider) {
        (Some(_), _) => Some(format!("${{{key_var}}}")),
        // An OpenAI-compatible endpoint without a key (a local model server) still wants one.
        (None, "custom") => Some("none".to_owned()),
        (None, _) => None,
    };
    Ok(ModelContext {
        provider,
        model: model.model.clone(),
        base_url,
        api_key,
    })
}

/// The agent's `config.yaml` (mode 0640 in its data directory). It holds no secret.
pub fn agent_config(name: &str, spec: &AgentSpec) -> Result<String, RenderError> {
    let mut context = tera::Context::new();
    context.insert("agent", name);
    context.insert("model", &model_context(name, &spec.model, MODEL_KEY_VAR)?);
    let fallback = spec
        .fallback_model
        .as_ref()
        .map(|m| model_context(name, m, FALLBACK_KEY_VAR))
        .transpose()?;
    context.insert("fallback", &fallback);
    render_from(AGENT, "config.yaml.tera", &context)
}

/// The agent's `.env` (mode 0600 in its data directory, read by Hermes only): the API server's
/// settings, the resolved `secrets` (by variable, see [`AgentSpec::secret_refs`]) and the
/// messaging allowlists. The API key is not in it: it is made and kept on the host, which adds
/// its line ([`api_key_line`]). A value with a line break, or one that cannot be quoted, is
/// refused, and the error does not show it.
pub fn agent_env_file(
    name: &str,
    spec: &AgentSpec,
    secrets: &BTreeMap<String, Secret>,
) -> Result<Secret, RenderError> {
    let mut text = format!(
        "# Agent `{name}`: written by hermes-infra, mode 0600, read by Hermes Agent only.\n"
    );
    let mut line = |var: &str, value: &str| -> Result<(), RenderError> {
        let quoted = quote_env_value(value).ok_or_else(|| {
            spec_error(
                name,
                format!(
                    "the value of `{var}` cannot be written to the agent's .env (a line break, \
                     a NUL, or both quote kinds with `${{`); the value is not shown"
                ),
            )
        })?;
        let _ = writeln!(text, "{var}={quoted}");
        Ok(())
    };
    line("API_SERVER_ENABLED", "true")?;
    // The container's own address: the reverse proxy and the health check reach it there; the
    // network is internal and nothing is published.
    line("API_SERVER_HOST", "0.0.0.0")?;
    line("API_SERVER_PORT", &API_PORT.to_string())?;
    line("API_SERVER_MODEL_NAME", name)?;
    let bots = [
        ("TELEGRAM", &spec.messaging.telegram),
        ("SLACK", &spec.messaging.slack),
        ("DISCORD", &spec.messaging.discord),
    ];
    for (prefix, bot) in bots {
        if let Some(bot) = bot {
            line(
                &format!("{prefix}_ALLOWED_USERS"),
                &bot.allowed_users.join(","),
            )?;
            if let Some(home) = &bot.home_channel {
                line(&format!("{prefix}_HOME_CHANNEL"), home)?;
            }
        }
    }
    for (var, reference) in spec.secret_refs() {
        let value = secrets.get(&var).ok_or_else(|| {
            spec_error(
                name,
                format!("the secret `{reference}` for `{var}` was not resolved"),
            )
        })?;
        line(&var, value.expose())?;
    }
    Ok(Secret::new(text))
}

/// The `.env` line of the agent's API key (64 hex digits, as the host makes them).
pub fn api_key_line(api_key: &Secret) -> Secret {
    Secret::new(format!("{API_KEY_VAR}='{}'\n", api_key.expose()))
}

/// `value` quoted for a dotenv file: single quotes (taken literally) when it has none, double
/// quotes with `\` and `"` escaped otherwise; `None` when it cannot be written safely.
fn quote_env_value(value: &str) -> Option<String> {
    if value.contains(['\n', '\r', '\0']) {
        return None;
    }
    if !value.contains('\'') {
        return Some(format!("'{value}'"));
    }
    if value.contains("${") {
        return None;
    }
    Some(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// Where an agent's container runs on its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The container's name.
    pub container: String,
    /// The image to run: an id (`sha256:...`), pinned, or a word the host replaces with one.
    pub image: String,
    /// The agent's own internal network.
    pub network: String,
    /// The data directory on the host, mounted at [`DATA_MOUNT`].
    pub data_dir: String,
    /// The agent's own `UID:GID` (each agent has one of its own, never [`HERMES_UID`], which
    /// the image's files belong to), or a word the host replaces with it.
    pub user: String,
    /// The egress proxy's address on the agent's network (`name:port`).
    pub egress_proxy: String,
    /// Ownership labels.
    pub labels: BTreeMap<String, String>,
}

/// The arguments after `docker` that start the gateway container: `run -d ... IMAGE gateway
/// run`. None of them is a secret: the secrets are in the `.env` in the data directory, which
/// Hermes reads itself, so they appear neither in `docker inspect` nor in the host's process
/// list.
pub fn agent_run_args(spec: &AgentSpec, placement: &Placement) -> Vec<String> {
    let proxy = format!("http://{}", placement.egress_proxy);
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        format!("--name={}", placement.container),
        "--pull=never".into(),
        format!("--user={}", placement.user),
        "--read-only".into(),
        "--tmpfs=/run:rw,noexec,nosuid,nodev,size=16m".into(),
        "--tmpfs=/tmp:rw,noexec,nosuid,nodev,size=256m".into(),
        "--cap-drop=ALL".into(),
        "--security-opt=no-new-privileges".into(),
        format!("--memory={}", spec.limits.memory),
        format!("--memory-swap={}", spec.limits.memory),
        format!("--cpus={}", spec.limits.cpus),
        format!("--pids-limit={}", spec.limits.pids),
        format!("--health-cmd={}", health_command(spec)),
        "--health-interval=10s".into(),
        "--health-timeout=5s".into(),
        "--health-retries=3".into(),
        "--health-start-period=60s".into(),
        // A crash restarts the gateway; `docker stop` (and the exit code 1 of a clean SIGTERM
        // shutdown) stays stopped.
        "--restart=unless-stopped".into(),
        format!("--stop-timeout={STOP_GRACE_SECONDS}"),
        format!("--network={}", placement.network),
        format!(
            "--mount=type=bind,src={},dst={DATA_MOUNT}",
            placement.data_dir
        ),
    ];
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        args.push(format!("--env={var}={proxy}"));
    }
    for var in ["NO_PROXY", "no_proxy"] {
        args.push(format!("--env={var}=localhost,127.0.0.1"));
    }
    // The agent's UID has no passwd entry in the image: its home is its data.
    args.push(format!("--env=HOME={DATA_MOUNT}"));
    for (key, value) in &spec.env {
        args.push(format!("--env={key}={value}"));
    }
    for (key, value) in &placement.labels {
        args.push(format!("--label={key}={value}"));
    }
    if spec.dashboard.enabled {
        // tini stays PID 1 and signals the whole group on stop; the dashboard is restarted
        // if it ends, and the gateway replaces the shell.
        args.push("--entrypoint=/usr/bin/tini".to_owned());
        args.push(placement.image.clone());
        args.extend(["-g", "--", "/bin/sh", "-c"].map(str::to_owned));
        args.push(format!(
            "while :; do hermes dashboard --host 127.0.0.1 --port {DASHBOARD_PORT} --no-open \
             --skip-build; \
             sleep 5; done & exec hermes gateway run"
        ));
    } else {
        args.push(placement.image.clone());
        args.extend(["gateway".to_owned(), "run".to_owned()]);
    }
    args
}

/// The container's health check: the gateway's `/health`, and the dashboard's `/api/status`
/// when it runs.
fn health_command(spec: &AgentSpec) -> String {
    let mut command = format!("curl -fsS --noproxy '*' http://127.0.0.1:{API_PORT}/health");
    if spec.dashboard.enabled {
        let _ = write!(
            command,
            " && curl -fsS --noproxy '*' http://127.0.0.1:{DASHBOARD_PORT}/api/status"
        );
    }
    command
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn env_values_are_quoted_or_refused() {
        assert_eq!(quote_env_value("abc").unwrap(), "'abc'");
        assert_eq!(quote_env_value("a\"b$c").unwrap(), "'a\"b$c'");
        assert_eq!(quote_env_value("it's").unwrap(), "\"it's\"");
        assert_eq!(
            quote_env_value("it's \\ \"x\"").unwrap(),
            r#""it's \\ \"x\"""#
        );
        assert!(quote_env_value("a\nb").is_none());
        assert!(quote_env_value("a\rb").is_none());
        assert!(quote_env_value("it's ${HOME}").is_none());
    }
}
