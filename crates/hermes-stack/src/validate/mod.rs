//! Semantic rules that types alone cannot say: references between tables, uniqueness,
//! combinations that only make sense together, and safety rules (no exposed dashboard without
//! auth, no cloud SSH open to the world by accident). Each problem names its key path; the
//! loader turns that into `file:line:column`.

mod agents;
mod hardening;
mod hosts;
mod models;
mod platform;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::diagnostic::did_you_mean;
use crate::model::LoadedStack;
use crate::wire::StackFile;

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
    pub(crate) fn of(keys: &[&str]) -> Self {
        Self(keys.iter().map(|k| Seg::Key((*k).to_owned())).collect())
    }

    pub(crate) fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_owned()));
        p
    }

    pub(crate) fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    pub(crate) fn segments(&self) -> &[Seg] {
        &self.0
    }

    /// The last key of the path, if it ends in a key.
    pub(crate) fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// The path without its last step.
    pub(crate) fn parent(&self) -> Self {
        let mut p = self.clone();
        p.0.pop();
        p
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
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
    /// The offending value.
    pub(crate) path: KeyPath,
    /// Point at the key of `path` rather than at its value.
    pub(crate) on_key: bool,
    /// Where to point when nothing along `path` is written in the file (the rule's cause).
    pub(crate) fallback: Option<KeyPath>,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: KeyPath, message: impl Into<String>, help: Option<String>) {
        self.0.push(Problem {
            path,
            on_key: false,
            fallback: None,
            message: message.into(),
            help,
        });
    }

    /// A problem with the key itself (its name), not with its value.
    fn add_on_key(&mut self, path: KeyPath, message: impl Into<String>, help: Option<String>) {
        self.add(path, message, help);
        if let Some(last) = self.0.last_mut() {
            last.on_key = true;
        }
    }

    /// A problem with something missing at `path`; when `path` is not written at all, point
    /// at `fallback`, which caused the rule to apply.
    fn add_or(
        &mut self,
        path: KeyPath,
        fallback: KeyPath,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        self.add(path, message, help);
        if let Some(last) = self.0.last_mut() {
            last.fallback = Some(fallback);
        }
    }
}

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
    hosts::provider(file, &mut p);
    hosts::hosts(file, loaded, &mut p);
    hosts::ssh(file, &mut p);
    hardening::hardening(file, &mut p);
    platform::platform(file, loaded, &mut p);
    let mut hostnames: BTreeMap<String, String> = BTreeMap::new();
    for (name, agent) in &file.agents {
        agents::agent(file, loaded, name.as_str(), agent, &mut hostnames, &mut p);
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
                Some(format!("remove the second \"{env}\"")),
            );
        }
    }
    if let Some(default) = &file.default_env
        && !file.environments.contains(default)
    {
        let declared = file.environments.iter().map(crate::values::Name::as_str);
        p.add(
            KeyPath::of(&["default-env"]),
            format!("default environment `{default}` is not declared in `environments`"),
            Some(match did_you_mean(default.as_str(), declared) {
                Some(m) => format!("did you mean `{m}`? Or add \"{default}\" to `environments`"),
                None => format!("add \"{default}\" to `environments`"),
            }),
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

/// Reports `host` when no host of that name exists after `count` expansion.
fn unknown_host(loaded: &LoadedStack, host: &str, path: KeyPath, p: &mut Problems) {
    if loaded.host(host).is_some() {
        return;
    }
    let names: Vec<&str> = loaded.hosts.iter().map(|h| h.name.as_str()).collect();
    if let Some(help) = beyond_count(loaded, host) {
        p.add(path, format!("unknown host `{host}`"), Some(help));
        return;
    }
    p.add(
        path,
        format!("unknown host `{host}`"),
        Some(match did_you_mean(host, names.iter().copied()) {
            Some(m) => format!("did you mean `{m}`? Hosts: {}", names.join(", ")),
            None if names.is_empty() => "declare it under [hosts]".to_owned(),
            None => format!(
                "hosts are: {} (a group with `count = N` is named `<group>-1` ... `<group>-N`)",
                names.join(", ")
            ),
        }),
    );
}

/// For `agents-3` when `[hosts.agents]` has `count = 2` (in this environment).
fn beyond_count(loaded: &LoadedStack, host: &str) -> Option<String> {
    let (group, n) = host.rsplit_once('-')?;
    let n: u32 = n.parse().ok()?;
    let (_, spec) = loaded
        .file
        .hosts
        .iter()
        .find(|(name, _)| name.as_str() == group)?;
    let count = spec.count?;
    (n > count).then(|| {
        format!(
            "`hosts.{group}` has count = {count} in environment `{}`, so its hosts are \
             `{group}-1` ... `{group}-{count}`; raise `count` or pick one of them",
            loaded.env
        )
    })
}
