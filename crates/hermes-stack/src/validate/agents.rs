//! Agents: host, proxy hostname, limits, dashboard, environment and messaging.

use std::collections::BTreeMap;

use super::models::model;
use super::{KeyPath, Problems, unknown_host};
use crate::model::LoadedStack;
use crate::wire::{Agent, StackFile, TlsMode};

/// Environment variables that `hermes-infra` sets itself; a stack may not override them.
const RESERVED_ENV: [&str; 8] = [
    "API_SERVER_KEY",
    "API_SERVER_ENABLED",
    "API_SERVER_HOST",
    "API_SERVER_PORT",
    "HERMES_HOME",
    "HERMES_UID",
    "HERMES_GID",
    "HTTPS_PROXY",
];

/// Name endings of variables that hold secrets.
const SECRET_NAMES: [&str; 6] = [
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIALS",
];

/// Value prefixes of well-known credentials (`OpenAI`, Anthropic, Slack, `GitHub`, `GitLab`, AWS).
const SECRET_PREFIXES: [&str; 9] = [
    "sk-",
    "xoxb-",
    "xoxp-",
    "xapp-",
    "ghp_",
    "github_pat_",
    "glpat-",
    "AKIA",
    "ASIA",
];

pub(super) fn agent(
    file: &StackFile,
    loaded: &LoadedStack,
    name: &str,
    agent: &Agent,
    hostnames: &mut BTreeMap<String, String>,
    p: &mut Problems,
) {
    let path = KeyPath::of(&["agents", name]);
    unknown_host(loaded, &agent.host, path.key("host"), p);
    hostname(file, name, agent, hostnames, p);
    model(file, &agent.model, &path.key("model"), p);
    if let Some(fallback) = &agent.fallback_model {
        model(file, fallback, &path.key("fallback-model"), p);
    }
    limits(agent, &path.key("limits"), p);
    dashboard(name, agent, &path.key("dashboard"), p);
    env_vars(name, agent, &path, p);
    messaging(agent, &path.key("messaging"), p);
}

fn hostname(
    file: &StackFile,
    name: &str,
    agent: &Agent,
    hostnames: &mut BTreeMap<String, String>,
    p: &mut Problems,
) {
    let Some(hostname) = &agent.hostname else {
        return;
    };
    let path = KeyPath::of(&["agents", name, "hostname"]);
    if hostname.is_wildcard() {
        let domain = hostname.as_str().trim_start_matches("*.");
        let single = if domain.starts_with(&format!("{name}.")) {
            domain.to_owned()
        } else {
            format!("{name}.{domain}")
        };
        p.add(
            path.clone(),
            "a proxy hostname cannot be a wildcard",
            Some(format!(
                "give each agent one name of its own, such as `{single}`"
            )),
        );
    }
    let lower = hostname.as_str().to_ascii_lowercase();
    if let Some(other) = hostnames.insert(lower, name.to_owned()) {
        p.add(
            path.clone(),
            format!("hostname `{hostname}` is already claimed by agent `{other}`"),
            Some(format!(
                "each agent needs its own hostname on the proxy, such as `{name}.{}`",
                hostname
                    .as_str()
                    .split_once('.')
                    .map_or("example.com", |(_, d)| d)
            )),
        );
    }
    if file.proxy.tls == TlsMode::Acme
        && file.proxy.acme_directory.is_none()
        && hostname.as_str().ends_with(".localhost")
    {
        p.add(
            path,
            "ACME (Let's Encrypt) cannot issue certificates for `.localhost` names",
            Some(
                "use a public DNS name, tls = \"self-signed\", or a private `acme-directory`"
                    .to_owned(),
            ),
        );
    }
}

fn limits(agent: &Agent, path: &KeyPath, p: &mut Problems) {
    let limits = &agent.limits;
    if limits.memory.bytes() < 512 << 20 {
        p.add(
            path.key("memory"),
            format!("`{}` is too little memory for the agent", limits.memory),
            Some("give at least `512m` (`1g` or more recommended)".to_owned()),
        );
    }
    if !(limits.cpus > 0.0 && limits.cpus <= 64.0) {
        p.add(
            path.key("cpus"),
            format!("cpus = {} is out of range", limits.cpus),
            Some("use a number above 0 and at most 64, such as 1.5".to_owned()),
        );
    }
    if !(32..=65_536).contains(&limits.pids) {
        p.add(
            path.key("pids"),
            format!("pids = {} is out of range", limits.pids),
            Some("use 32 to 65536; 256 suits most agents".to_owned()),
        );
    }
}

fn dashboard(name: &str, agent: &Agent, path: &KeyPath, p: &mut Problems) {
    let d = &agent.dashboard;
    if !d.expose {
        return;
    }
    if !d.enabled {
        p.add(
            path.key("expose"),
            "`expose = true` on a dashboard that is not enabled",
            Some("add `enabled = true` or remove `expose`".to_owned()),
        );
    }
    if d.auth.is_none() {
        p.add(
            path.key("expose"),
            "the dashboard would be exposed without authentication; it holds API keys and a shell",
            Some(format!(
                "add [agents.{name}.dashboard.auth] with `username` and `password = \"env:...\"`, \
                 or remove `expose` and reach it with `hermes-infra tunnel`"
            )),
        );
    }
    if agent.hostname.is_none() {
        p.add(
            path.key("expose"),
            "an exposed dashboard needs the agent's `hostname` (it is served at `dashboard.<hostname>`)",
            Some(format!("add `hostname = \"{name}.example.com\"` to [agents.{name}]")),
        );
    }
    if d.enabled && d.auth.is_some() && agent.hostname.is_some() {
        p.add(
            path.key("expose"),
            "this version of hermes-infra does not serve dashboards through the reverse proxy",
            Some(format!(
                "remove `expose` and open the dashboard with `hermes-infra tunnel STACK {name}` \
                 (over SSH, on this machine only)"
            )),
        );
    }
}

fn env_vars(name: &str, agent: &Agent, path: &KeyPath, p: &mut Problems) {
    for (key, value) in &agent.env {
        let k = key.as_str();
        let env = path.key("env").key(k);
        if RESERVED_ENV.contains(&k) {
            p.add_on_key(
                env,
                format!("`{k}` is set by hermes-infra itself"),
                Some(format!("remove `{k}` from [agents.{name}.env]")),
            );
        } else if SECRET_NAMES.iter().any(|s| k.ends_with(s))
            || SECRET_PREFIXES.iter().any(|s| value.starts_with(s))
        {
            p.add(
                env,
                format!(
                    "`{k}` looks like a secret, and `env` values are not secret (the value \
                     written here is not shown)"
                ),
                Some(format!(
                    "move it to [agents.{name}.secrets] as a reference: {k} = \"env:{k}\""
                )),
            );
        }
    }
    for key in agent.secrets.keys() {
        if RESERVED_ENV.contains(&key.as_str()) {
            p.add_on_key(
                path.key("secrets").key(key.as_str()),
                format!("`{key}` is set by hermes-infra itself"),
                Some(format!("remove `{key}` from [agents.{name}.secrets]")),
            );
        }
    }
}

fn messaging(agent: &Agent, path: &KeyPath, p: &mut Problems) {
    let Some(telegram) = &agent.messaging.telegram else {
        return;
    };
    for (i, user) in telegram.allowed_users.iter().enumerate() {
        if user.parse::<u64>().is_err() {
            p.add(
                path.key("telegram").key("allowed-users").index(i),
                format!("`{user}` is not a Telegram user id"),
                Some(
                    "Telegram allows users by numeric id, not by @name; ask @userinfobot for \
                     yours and write it in quotes, such as \"123456789\""
                        .to_owned(),
                ),
            );
        }
    }
}
