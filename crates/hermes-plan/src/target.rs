//! `--target`: narrowing a plan to some resources (by address or by kind) and what they need,
//! as Terraform's `-target` does. Useful to bring up hosts first, or to act on one agent.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use hermes_core::{Address, Kind};

use crate::model::{Plan, Summary};

/// What `--target` names: one resource (`host.web-1`) or every resource of a kind (`host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One resource.
    Address(Address),
    /// Every resource of a kind.
    Kind(Kind),
}

impl Target {
    fn matches(&self, address: &Address) -> bool {
        match self {
            Target::Address(a) => a == address,
            Target::Kind(k) => address.kind == *k,
        }
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains('.') {
            return s.parse().map(Target::Address);
        }
        s.parse().map(Target::Kind).map_err(|_| {
            let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            format!(
                "`{s}` is neither an address (`host.web-1`) nor a kind ({})",
                kinds.join(", ")
            )
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Address(a) => a.fmt(f),
            Target::Kind(k) => k.fmt(f),
        }
    }
}

impl Plan {
    /// The part of this plan that changes what `targets` name, plus every change those depend on
    /// (transitively). The observed digest is kept: a targeted plan still refuses to apply to a
    /// world that moved. An empty `targets` keeps everything.
    #[must_use]
    pub fn targeting(&self, targets: &[Target]) -> Plan {
        if targets.is_empty() {
            return self.clone();
        }
        let mut keep: BTreeSet<&Address> = self
            .changes
            .iter()
            .map(|c| &c.address)
            .filter(|a| targets.iter().any(|t| t.matches(a)))
            .collect();
        loop {
            let needed: Vec<&Address> = self
                .changes
                .iter()
                .filter(|c| keep.contains(&c.address))
                .filter_map(|c| c.desired.as_ref())
                .flat_map(|d| d.depends_on.iter())
                .filter(|d| !keep.contains(d) && self.changes.iter().any(|c| &c.address == *d))
                .collect();
            if needed.is_empty() {
                break;
            }
            keep.extend(needed);
        }
        let changes: Vec<_> = self
            .changes
            .iter()
            .filter(|c| keep.contains(&c.address))
            .cloned()
            .collect();
        let summary = Summary::of(&changes, self.summary.unchanged);
        Plan {
            changes,
            summary,
            ..self.clone()
        }
    }
}
