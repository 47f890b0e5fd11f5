//! The loaded stack: the merged file for one environment, with host groups expanded into
//! individual hosts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::wire::{HostKind, Provider, StackFile};

/// A stack file loaded and validated for one environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadedStack {
    /// The file it came from.
    pub path: PathBuf,
    /// Digest of the file's bytes (saved plans record it).
    pub source_digest: String,
    /// The environment.
    pub env: String,
    /// The file with the environment's overlay merged in.
    pub file: StackFile,
    /// Every host, after `count` expansion, in name order.
    pub hosts: Vec<HostSpec>,
}

/// One host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSpec {
    /// Its name (`web-2`).
    pub name: String,
    /// The `[hosts.<group>]` table it comes from (`web`).
    pub group: String,
    /// Its role label.
    pub role: String,
    /// Machine size (server type, instance type or local size), defaults applied.
    pub size: String,
    /// Location or zone, when the provider has one.
    pub location: Option<String>,
    /// Local hosts: container or VM.
    pub kind: Option<HostKind>,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
}

impl LoadedStack {
    /// The stack's name.
    pub fn name(&self) -> &str {
        self.file.name.as_str()
    }

    /// The ownership scope of this stack and environment.
    pub fn scope(&self) -> hermes_core::Scope {
        hermes_core::Scope::new(self.name(), &self.env)
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&HostSpec> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

/// Default local host size.
pub const LOCAL_DEFAULT_SIZE: &str = "small";

/// Expands host groups. Duplicate names are kept (validation reports them).
pub(crate) fn expand(file: &StackFile, env: String) -> LoadedStack {
    let (default_size, default_location, default_kind) = match &file.provider {
        Provider::Local(p) => (
            p.size
                .clone()
                .unwrap_or_else(|| LOCAL_DEFAULT_SIZE.to_owned()),
            None,
            Some(p.host_kind),
        ),
        Provider::Hetzner(p) => (p.server_type.clone(), Some(p.location.clone()), None),
        Provider::Aws(p) => (p.instance_type.clone(), None, None),
    };
    let mut hosts = Vec::new();
    for (group, spec) in &file.hosts {
        let names: Vec<String> = match spec.count {
            None => vec![group.to_string()],
            Some(n) => (1..=n.min(1000)).map(|i| format!("{group}-{i}")).collect(),
        };
        for name in names {
            hosts.push(HostSpec {
                name,
                group: group.to_string(),
                role: spec
                    .role
                    .as_ref()
                    .map_or_else(|| "agents".to_owned(), ToString::to_string),
                size: spec.size.clone().unwrap_or_else(|| default_size.clone()),
                location: spec.location.clone().or_else(|| default_location.clone()),
                kind: default_kind.map(|k| spec.kind.unwrap_or(k)),
                labels: spec.labels.clone(),
            });
        }
    }
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    LoadedStack {
        path: PathBuf::new(),
        source_digest: String::new(),
        env,
        file: file.clone(),
        hosts,
    }
}
