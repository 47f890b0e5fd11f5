//! Semantic rules that types alone cannot say: references between tables, uniqueness,
//! combinations that only make sense together, and safety rules (no exposed dashboard without
//! auth, no cloud SSH open to the world by accident). Each problem names its key path; the
//! loader turns that into file:line:column.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::diagnostic::did_you_mean;
use crate::model::LoadedStack;
use crate::wire::{
    Agent, InboundRule, Model, ModelProvider, PortRange, Provider, Registry, StackFile, TlsMode,
};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted key path into the stack file (`agents.acme.limits.memory`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(Vec<Seg>);

impl KeyPath {
    fn of(keys: &[&str]) -> Self {
        Self(keys.iter().map(|k| Seg::Key((*k).to_owned())).collect())
    }

    fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_owned()));
        p
    }

    fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    pub(crate) fn segments(&self) -> &[Seg] {
        &self.0
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) path: KeyPath,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: KeyPath, message: impl Into<String>, help: Option<String>) {
        self.0.push(Problem {
            path,
            message: message.into(),
            help,
        });
    }
}

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

/// Checks every rule; an empty result means the stack is valid.
pub(crate) fn stack(file: &StackFile, loaded: &LoadedStack) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    if file.version != 1 {
        p.add(
            KeyPath::of(&["version"]),
            format!(
                "unsupported format version {}; this hermes-infra reads version 1",
                file.version
            ),
            Some("write `version = 1`".to_owned()),
        );
    }
    environments(file, &mut p);
    provider(file, &mut p);
    hosts(file, loaded, &mut p);
    ssh(file, &mut p);
    hardening(file, &mut p);
    platform(file, loaded, &mut p);
    let mut hostnames: BTreeMap<String, String> = BTreeMap::new();
    for (name, agent) in &file.agents {
        agent_rules(file, loaded, name.as_str(), agent, &mut hostnames, &mut p);
    }
    p.0
}

fn environments(file: &StackFile, p: &mut Problems) {
    let mut seen = BTreeSet::new();
    for (i, env) in file.environments.iter().enumerate() {
        if !seen.insert(env.as_str()) {
            p.add(
                KeyPath::of(&["environments"]).index(i),
                format!("environment `{env}` is declared twice"),
                None,
            );
        }
    }
    if let Some(default) = &file.default_env
        && !file.environments.contains(default)
    {
        p.add(
            KeyPath::of(&["default-env"]),
            format!("default environment `{default}` is not declared in `environments`"),
            Some(format!("add \"{default}\" to `environments`")),
        );
    }
    if file.require_env && file.environments.is_empty() {
        p.add(
            KeyPath::of(&["require-env"]),
            "`require-env = true` but no environments are declared",
            Some("declare them: environments = [\"staging\", \"prod\"]".to_owned()),
        );
    }
}

const HETZNER_LOCATIONS: [&str; 6] = ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"];
const LOCAL_SIZES: [&str; 3] = ["small", "medium", "large"];

fn size_problem(provider: &Provider, size: &str) -> Option<(String, Option<String>)> {
    match provider {
        Provider::Local(_) if !LOCAL_SIZES.contains(&size) => Some((
            format!("`{size}` is not a local host size"),
            Some(match did_you_mean(size, LOCAL_SIZES) {
                Some(m) => format!("did you mean `{m}`? Sizes: small, medium, large"),
                None => "use `small`, `medium` or `large`".to_owned(),
            }),
        )),
        Provider::Hetzner(_) => {
            let family = size.trim_end_matches(|c: char| c.is_ascii_digit());
            let ok = ["cx", "cpx", "cax", "ccx"].contains(&family) && family.len() < size.len();
            (!ok).then(|| {
                (
                    format!("`{size}` is not a Hetzner server type"),
                    Some("use a type such as `cx22`, `cpx22`, `cax21` or `ccx13`".to_owned()),
                )
            })
        }
        Provider::Aws(_) => {
            let ok = size.split_once('.').is_some_and(|(f, s)| {
                !f.is_empty()
                    && !s.is_empty()
                    && f.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
            (!ok).then(|| {
                (
                    format!("`{size}` is not an EC2 instance type"),
                    Some("use a type such as `t3.medium`".to_owned()),
                )
            })
        }
        Provider::Local(_) => None,
    }
}

fn provider(file: &StackFile, p: &mut Problems) {
    match &file.provider {
        Provider::Local(local) => {
            if let Some(size) = &local.size
                && let Some((m, h)) = size_problem(&file.provider, size)
            {
                p.add(KeyPath::of(&["provider", "local", "size"]), m, h);
            }
        }
        Provider::Hetzner(h) => {
            if !HETZNER_LOCATIONS.contains(&h.location.as_str()) {
                p.add(
                    KeyPath::of(&["provider", "hetzner", "location"]),
                    format!("`{}` is not a Hetzner location", h.location),
                    Some(match did_you_mean(&h.location, HETZNER_LOCATIONS) {
                        Some(m) => format!("did you mean `{m}`?"),
                        None => format!("use one of: {}", HETZNER_LOCATIONS.join(", ")),
                    }),
                );
            }
            if let Some((m, help)) = size_problem(&file.provider, &h.server_type) {
                p.add(
                    KeyPath::of(&["provider", "hetzner", "server-type"]),
                    m,
                    help,
                );
            }
        }
        Provider::Aws(a) => {
            if !is_aws_region(&a.region) {
                p.add(
                    KeyPath::of(&["provider", "aws", "region"]),
                    format!("`{}` is not an AWS region", a.region),
                    Some("use a region such as `eu-central-1`".to_owned()),
                );
            }
            if let Some((m, help)) = size_problem(&file.provider, &a.instance_type) {
                p.add(KeyPath::of(&["provider", "aws", "instance-type"]), m, help);
            }
            match (&a.ami, &a.image_name) {
                (None, None) => p.add(
                    KeyPath::of(&["provider", "aws"]),
                    "the AWS provider needs an image",
                    Some(
                        "add `ami = \"ami-...\"` or `image-name = \"debian-12-amd64-*\"`"
                            .to_owned(),
                    ),
                ),
                (Some(_), Some(_)) => p.add(
                    KeyPath::of(&["provider", "aws", "image-name"]),
                    "give `ami` or `image-name`, not both",
                    None,
                ),
                (Some(ami), None) if !ami.starts_with("ami-") => p.add(
                    KeyPath::of(&["provider", "aws", "ami"]),
                    format!("`{ami}` is not an AMI id"),
                    Some("AMI ids look like `ami-0123456789abcdef0`".to_owned()),
                ),
                _ => {}
            }
        }
    }
}

fn is_aws_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|s| s.chars().all(|c| c.is_ascii_digit()))
}

fn hosts(file: &StackFile, loaded: &LoadedStack, p: &mut Problems) {
    if file.hosts.is_empty() && !file.agents.is_empty() {
        p.add(
            KeyPath::of(&["agents"]),
            "agents are declared but there are no hosts to run them",
            Some("add a host: [hosts.main]".to_owned()),
        );
    }
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for host in &loaded.hosts {
        if let Some(first) = owner.insert(&host.name, &host.group) {
            p.add(
                KeyPath::of(&["hosts", &host.group]),
                format!("host name `{}` is used twice (by `hosts.{first}` and `hosts.{}`)", host.name, host.group),
                Some("hosts with `count = N` are named `<name>-1` ... `<name>-N`; rename one of them".to_owned()),
            );
        }
    }
    for (name, group) in &file.hosts {
        let path = KeyPath::of(&["hosts", name.as_str()]);
        if let Some(count) = group.count
            && !(1..=500).contains(&count)
        {
            p.add(
                path.key("count"),
                format!("count {count} is out of range"),
                Some("use 1 to 500 hosts per group".to_owned()),
            );
        }
        if let Some(size) = &group.size
            && let Some((m, h)) = size_problem(&file.provider, size)
        {
            p.add(path.key("size"), m, h);
        }
        match (&file.provider, group.kind, &group.location) {
            (Provider::Local(_), _, Some(_)) => p.add(
                path.key("location"),
                "local hosts have no location",
                Some("remove `location`".to_owned()),
            ),
            (Provider::Hetzner(_) | Provider::Aws(_), Some(_), _) => p.add(
                path.key("kind"),
                "`kind` (container or vm) is for local hosts only",
                Some("remove `kind`".to_owned()),
            ),
            (Provider::Hetzner(_), _, Some(l)) if !HETZNER_LOCATIONS.contains(&l.as_str()) => {
                p.add(
                    path.key("location"),
                    format!("`{l}` is not a Hetzner location"),
                    Some(format!("use one of: {}", HETZNER_LOCATIONS.join(", "))),
                );
            }
            _ => {}
        }
        for key in group.labels.keys() {
            if key.starts_with("hermes-infra/") {
                p.add(
                    path.key("labels").key(key),
                    format!("label `{key}` is reserved for ownership labels"),
                    Some("choose a key without the `hermes-infra/` prefix".to_owned()),
                );
            }
        }
    }
}

fn ssh(file: &StackFile, p: &mut Problems) {
    let cloud = !matches!(file.provider, Provider::Local(_));
    if cloud && file.ssh.allow_from.is_empty() {
        p.add(
            KeyPath::of(&["ssh"]),
            format!("`ssh.allow-from` is required for {} hosts: SSH is not opened to the world by default", file.provider.name()),
            Some("list your addresses: allow-from = [\"203.0.113.7/32\"] (or [\"0.0.0.0/0\", \"::/0\"] to allow everyone)".to_owned()),
        );
    }
    if cloud && file.ssh.authorized_keys.is_empty() {
        p.add(
            KeyPath::of(&["ssh"]),
            "`ssh.authorized-keys` is required for cloud hosts",
            Some(
                "add your public key: authorized-keys = [\"ssh-ed25519 AAAA... you@laptop\"]"
                    .to_owned(),
            ),
        );
    }
    if file.ssh.port == 0 {
        p.add(
            KeyPath::of(&["ssh", "port"]),
            "port 0 is not a port",
            Some("use 22 or another port from 1 to 65535".to_owned()),
        );
    }
}

fn hardening(file: &StackFile, p: &mut Problems) {
    let base = KeyPath::of(&["hardening"]);
    for (key, value) in &file.hardening.sysctl {
        let path = base.key("sysctl").key(key);
        let well_formed = key.split('.').count() >= 2
            && key.split('.').all(|s| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
        if !well_formed {
            p.add(
                path.clone(),
                format!("`{key}` is not a sysctl key"),
                Some("sysctl keys look like `net.ipv4.tcp_syncookies`".to_owned()),
            );
        }
        if key == "net.ipv4.ip_forward" && value.to_string().trim() == "0" {
            p.add(
                path,
                "`net.ipv4.ip_forward = 0` would cut every container off the network",
                Some("Docker needs forwarding; remove this setting".to_owned()),
            );
        }
    }
    if file.hardening.fail2ban.max_retry == 0 {
        p.add(
            base.key("fail2ban").key("max-retry"),
            "max-retry 0 would ban on the first attempt, including your own typos",
            Some("use 3 to 10".to_owned()),
        );
    }
    for (i, rule) in file.hardening.inbound.iter().enumerate() {
        inbound_rule(file, rule, base.key("inbound").index(i), p);
    }
}

fn inbound_rule(file: &StackFile, rule: &InboundRule, path: KeyPath, p: &mut Problems) {
    let range = match &rule.port {
        PortRange::One(n) => Some((*n, *n)),
        PortRange::Range(s) => s
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?))),
    };
    match range {
        Some((a, b)) if a == 0 || a > b => p.add(
            path.key("port"),
            "the port range is empty or starts at 0",
            Some("write `\"8000-8010\"` with first <= last".to_owned()),
        ),
        None => p.add(
            path.key("port"),
            "not a port or a port range",
            Some("write a number or `\"8000-8010\"`".to_owned()),
        ),
        Some((a, b)) if a <= file.ssh.port && file.ssh.port <= b => {
            p.add(
                path.key("port"),
                "SSH access is set by `ssh.allow-from`, not by inbound rules",
                Some("remove this rule and list the sources in `ssh.allow-from`".to_owned()),
            );
        }
        Some(_) => {}
    }
    if rule.from.is_empty() {
        p.add(
            path.key("from"),
            "an inbound rule needs at least one source",
            Some("write from = [\"0.0.0.0/0\", \"::/0\"] for everyone".to_owned()),
        );
    }
}

fn platform(file: &StackFile, loaded: &LoadedStack, p: &mut Problems) {
    if let Some(upstream) = &file.image.upstream
        && !upstream.is_pinned()
    {
        p.add(
            KeyPath::of(&["image", "upstream"]),
            format!("upstream image `{upstream}` is not pinned by digest"),
            Some("append `@sha256:<digest>` so that every host runs the same bytes".to_owned()),
        );
    }
    if let Some(Registry::Ecr(_)) = &file.registry
        && file.aws.is_none()
    {
        p.add(
            KeyPath::of(&["registry", "ecr"]),
            "an ECR registry needs the AWS account",
            Some("add [aws] with `region = \"eu-central-1\"`".to_owned()),
        );
    }
    if let Some(bedrock) = &file.bedrock {
        let path = KeyPath::of(&["bedrock"]);
        if bedrock.models.is_empty() {
            p.add(
                path.key("models"),
                "no Bedrock models are allowed",
                Some("list the model ids the agents use".to_owned()),
            );
        }
        if !is_aws_region(&bedrock.region) {
            p.add(
                path.key("region"),
                format!("`{}` is not an AWS region", bedrock.region),
                None,
            );
        }
        for (i, host) in bedrock.hosts.iter().enumerate() {
            unknown_host(loaded, host, path.key("hosts").index(i), p);
        }
    }
    let proxy = KeyPath::of(&["proxy"]);
    match file.proxy.tls {
        TlsMode::Acme if matches!(file.provider, Provider::Local(_)) => {
            p.add(
                proxy.key("tls"),
                "ACME cannot issue certificates for local hosts",
                Some("use tls = \"self-signed\" on local stacks".to_owned()),
            );
        }
        TlsMode::Acme if file.proxy.acme_email.is_none() => {
            p.add(
                proxy,
                "ACME needs a contact address",
                Some("add `acme-email = \"ops@example.com\"`".to_owned()),
            );
        }
        TlsMode::Off if file.proxy.listen == crate::wire::ProxyListen::Public => {
            p.add(
                proxy.key("tls"),
                "plain HTTP on public addresses would send API keys in clear text",
                Some("use TLS, or `listen = \"private\"` for a private network".to_owned()),
            );
        }
        _ => {}
    }
}

fn unknown_host(loaded: &LoadedStack, host: &str, path: KeyPath, p: &mut Problems) {
    if loaded.host(host).is_none() {
        let names: Vec<&str> = loaded.hosts.iter().map(|h| h.name.as_str()).collect();
        p.add(
            path,
            format!("unknown host `{host}`"),
            Some(match did_you_mean(host, names.iter().copied()) {
                Some(m) => format!("did you mean `{m}`?"),
                None if names.is_empty() => "declare it under [hosts]".to_owned(),
                None => format!("hosts: {}", names.join(", ")),
            }),
        );
    }
}

fn agent_rules(
    file: &StackFile,
    loaded: &LoadedStack,
    name: &str,
    agent: &Agent,
    hostnames: &mut BTreeMap<String, String>,
    p: &mut Problems,
) {
    let path = KeyPath::of(&["agents", name]);
    unknown_host(loaded, &agent.host, path.key("host"), p);
    if let Some(hostname) = &agent.hostname {
        let lower = hostname.as_str().to_ascii_lowercase();
        if hostname.is_wildcard() {
            p.add(
                path.key("hostname"),
                "a proxy hostname cannot be a wildcard",
                Some("give each agent its own hostname".to_owned()),
            );
        }
        if let Some(other) = hostnames.insert(lower, name.to_owned()) {
            p.add(
                path.key("hostname"),
                format!("hostname `{hostname}` is already claimed by agent `{other}`"),
                Some("each agent needs its own hostname on the proxy".to_owned()),
            );
        }
        if file.proxy.tls == TlsMode::Acme && hostname.as_str().ends_with(".localhost") {
            p.add(
                path.key("hostname"),
                "ACME cannot issue certificates for `.localhost` names",
                None,
            );
        }
    }
    model_rules(file, &agent.model, path.key("model"), p);
    if let Some(fallback) = &agent.fallback_model {
        model_rules(file, fallback, path.key("fallback-model"), p);
    }
    let limits = path.key("limits");
    if agent.limits.memory.bytes() < 512 << 20 {
        p.add(
            limits.key("memory"),
            format!("{} is too little memory for the agent", agent.limits.memory),
            Some("give at least `512m` (1g or more recommended)".to_owned()),
        );
    }
    if !(agent.limits.cpus > 0.0 && agent.limits.cpus <= 64.0) {
        p.add(
            limits.key("cpus"),
            format!("cpus = {} is out of range", agent.limits.cpus),
            Some("use a number above 0 and at most 64, such as 1.5".to_owned()),
        );
    }
    if !(32..=65_536).contains(&agent.limits.pids) {
        p.add(
            limits.key("pids"),
            format!("pids = {} is out of range", agent.limits.pids),
            Some("use 32 to 65536; 256 suits most agents".to_owned()),
        );
    }
    let dashboard = path.key("dashboard");
    if agent.dashboard.expose && !agent.dashboard.enabled {
        p.add(
            dashboard.key("expose"),
            "`expose = true` on a dashboard that is not enabled",
            Some("add `enabled = true` or remove `expose`".to_owned()),
        );
    }
    if agent.dashboard.expose && agent.dashboard.auth.is_none() {
        p.add(
            dashboard.key("expose"),
            "the dashboard would be exposed without authentication; it holds API keys and a shell",
            Some("add [agents.<name>.dashboard.auth] with `username` and `password = \"env:...\"`, or reach it with `hermes-infra tunnel`".to_owned()),
        );
    }
    if agent.dashboard.expose && agent.hostname.is_none() {
        p.add(
            dashboard.key("expose"),
            "an exposed dashboard needs the agent's `hostname`",
            None,
        );
    }
    for key in agent.env.keys() {
        let k = key.as_str();
        if RESERVED_ENV.contains(&k) {
            p.add(
                path.key("env").key(k),
                format!("`{k}` is set by hermes-infra itself"),
                Some("remove it".to_owned()),
            );
        } else if ["KEY", "TOKEN", "SECRET", "PASSWORD"]
            .iter()
            .any(|s| k.ends_with(s))
        {
            p.add(
                path.key("env").key(k),
                format!("`{k}` looks like a secret, and `env` values are not secret"),
                Some(format!(
                    "move it to [agents.{name}.secrets] as a reference: {k} = \"env:{k}\""
                )),
            );
        }
    }
    for key in agent.secrets.keys() {
        if RESERVED_ENV.contains(&key.as_str()) {
            p.add(
                path.key("secrets").key(key.as_str()),
                format!("`{key}` is set by hermes-infra itself"),
                Some("remove it".to_owned()),
            );
        }
    }
    if let Some(m) = &agent.messaging.telegram {
        for (i, user) in m.allowed_users.iter().enumerate() {
            if user.parse::<u64>().is_err() {
                p.add(
                    path.key("messaging")
                        .key("telegram")
                        .key("allowed-users")
                        .index(i),
                    format!("`{user}` is not a Telegram user id"),
                    Some("Telegram user ids are numbers; ask @userinfobot for yours".to_owned()),
                );
            }
        }
    }
}

fn model_rules(file: &StackFile, model: &Model, path: KeyPath, p: &mut Problems) {
    match model.provider {
        ModelProvider::Custom if model.base_url.is_none() => {
            p.add(
                path.clone(),
                "a `custom` model needs `base-url`",
                Some("add `base-url = \"https://llm.example.com/v1\"`".to_owned()),
            );
        }
        ModelProvider::Openai
        | ModelProvider::Anthropic
        | ModelProvider::Openrouter
        | ModelProvider::Nous
            if model.api_key.is_none() =>
        {
            p.add(
                path.clone(),
                format!(
                    "a `{}` model needs `api-key`",
                    serde_provider(model.provider)
                ),
                Some("add `api-key = \"env:...\"`".to_owned()),
            );
        }
        ModelProvider::Bedrock => {
            if model.api_key.is_some() {
                p.add(
                    path.key("api-key"),
                    "Bedrock models use the host's IAM role or scoped key, not an API key",
                    Some("remove `api-key`".to_owned()),
                );
            }
            match &file.bedrock {
                None => p.add(
                    path.clone(),
                    "a `bedrock` model needs the [bedrock] table",
                    Some(format!(
                        "add [bedrock] with `region` and `models = [\"{}\"]`",
                        model.model
                    )),
                ),
                Some(b) if !b.models.contains(&model.model) => p.add(
                    path.key("model"),
                    format!(
                        "model `{}` is not in `bedrock.models`, so the IAM policy would refuse it",
                        model.model
                    ),
                    did_you_mean(&model.model, b.models.iter().map(String::as_str))
                        .map(|m| format!("did you mean `{m}`?"))
                        .or_else(|| Some("add it to `bedrock.models`".to_owned())),
                ),
                Some(_) => {}
            }
        }
        _ => {}
    }
    if model.model.trim().is_empty() {
        p.add(path.key("model"), "the model id is empty", None);
    }
}

fn serde_provider(p: ModelProvider) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
