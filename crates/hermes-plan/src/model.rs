//! The plan as data.

use serde::{Deserialize, Serialize};

use hermes_core::{Address, ObservedResource, Resource, Scope};

/// Version of the saved-plan format.
pub const PLAN_FORMAT: u32 = 1;

/// What the stack wants, for one scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    /// Stack and environment.
    pub scope: Scope,
    /// Digest of the stack file's bytes.
    pub stack_digest: String,
    /// Every resource, in address order.
    pub resources: Vec<Resource>,
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Destroy and create again (data on it is lost).
    Replace,
    /// Destroy.
    Delete,
    /// Create.
    Create,
    /// Change in place.
    Update,
}

impl Action {
    /// The action's name, as in the JSON form: `replace`, `delete`, `create`, `update`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Create => "create",
            Action::Update => "update",
        }
    }

    /// Whether the change destroys something (and so needs `--allow-destroy`).
    pub fn is_destructive(self) -> bool {
        matches!(self, Action::Replace | Action::Delete)
    }
}

/// One attribute that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttrDiff {
    /// Attribute name.
    pub key: String,
    /// What was observed (absent: not there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// What is wanted (absent: removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
    /// The attribute cannot change in place.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forces_replacement: bool,
}

/// One change, with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The resource.
    pub address: Address,
    /// What happens to it.
    pub action: Action,
    /// Why, in one line.
    pub reason: String,
    /// Attribute differences (for updates and replacements).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<AttrDiff>,
    /// The wanted resource (absent for deletions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<Resource>,
    /// The existing resource (absent for creations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedResource>,
}

/// How many changes of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Creations.
    pub create: usize,
    /// In-place updates.
    pub update: usize,
    /// Replacements.
    pub replace: usize,
    /// Deletions.
    pub delete: usize,
    /// Resources already as wanted.
    pub unchanged: usize,
}

impl Summary {
    /// The counts of `changes`, with `unchanged` resources as wanted.
    pub fn of(changes: &[Change], unchanged: usize) -> Self {
        let mut summary = Summary {
            unchanged,
            ..Summary::default()
        };
        for c in changes {
            match c.action {
                Action::Create => summary.create += 1,
                Action::Update => summary.update += 1,
                Action::Replace => summary.replace += 1,
                Action::Delete => summary.delete += 1,
            }
        }
        summary
    }
}

/// An ordered set of changes that brings the observed world to the desired one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Saved-plan format version.
    pub format: u32,
    /// Stack and environment.
    pub scope: Scope,
    /// Digest of the stack file the plan was made from.
    pub stack_digest: String,
    /// Digest of the desired resources.
    pub desired_digest: String,
    /// Digest of what was observed; `apply PLAN` refuses when the world no longer matches it.
    pub observed_digest: String,
    /// Changes: replacements and deletions first, then creations and updates; within each group
    /// in creation order (cloud objects, hosts, host setup, workloads).
    pub changes: Vec<Change>,
    /// Counts.
    pub summary: Summary,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes that destroy something.
    pub fn destructive(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.action.is_destructive())
    }

    /// Digest of the whole plan, recorded in the lock, the state and the hosts' audit logs.
    pub fn hash(&self) -> String {
        hermes_core::digest::of_json(self)
    }
}
