//! What an apply did: [`ApplyReport`] and its parts.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

use hermes_core::Address;
use hermes_plan::Action;

/// What one step does. A [`Action::Replace`] change runs as two steps: its destroy half in the
/// destroy phase and its create half in the create phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepAction {
    /// Create a resource.
    Create,
    /// Change a resource in place.
    Update,
    /// Delete a resource.
    Delete,
    /// Delete a resource that is then created again.
    ReplaceDestroy,
    /// Create again a resource that was just deleted.
    ReplaceCreate,
}

impl StepAction {
    /// The plan action this step belongs to.
    pub fn plan_action(self) -> Action {
        match self {
            StepAction::Create => Action::Create,
            StepAction::Update => Action::Update,
            StepAction::Delete => Action::Delete,
            StepAction::ReplaceDestroy | StepAction::ReplaceCreate => Action::Replace,
        }
    }

    /// Whether the step removes the resource (and so runs in the destroy phase).
    pub fn destroys(self) -> bool {
        matches!(self, StepAction::Delete | StepAction::ReplaceDestroy)
    }

    /// The step's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            StepAction::Create => "create",
            StepAction::Update => "update",
            StepAction::Delete => "delete",
            StepAction::ReplaceDestroy => "replace (destroy)",
            StepAction::ReplaceCreate => "replace (create)",
        }
    }
}

impl fmt::Display for StepAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step, named by its resource and what it does to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct StepRef {
    /// The resource.
    pub address: Address,
    /// What the step does.
    pub action: StepAction,
}

impl fmt::Display for StepRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.address, self.action)
    }
}

/// A step that succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DoneStep {
    /// The resource.
    pub address: Address,
    /// What was done.
    pub action: StepAction,
    /// How long it took.
    #[serde(rename = "elapsed_ms", serialize_with = "serde_ms")]
    pub elapsed: Duration,
}

/// A step that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedStep {
    /// The resource.
    pub address: Address,
    /// What was tried.
    pub action: StepAction,
    /// The provider that ran it.
    pub provider: String,
    /// What went wrong, naming the resource, the action and the provider.
    pub error: String,
}

/// What an apply did. It never holds a secret value.
///
/// A run that stopped early (a failed step, or cancellation) is still reported here: `done` says
/// what changed in the world, `failed` what went wrong, `not_started` what was left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Hash of the plan applied (as recorded in the lock and, on success, in the state).
    pub plan_hash: String,
    /// Steps that succeeded, in the order they finished.
    pub done: Vec<DoneStep>,
    /// Steps that failed, in the order they finished.
    pub failed: Vec<FailedStep>,
    /// Steps that never started, in schedule order.
    pub not_started: Vec<StepRef>,
    /// The run was cancelled (Ctrl-C) before every step could start.
    pub interrupted: bool,
    /// The serial of the state saved after the run. The state is saved, with
    /// `last_plan_hash` set to this plan, only when every step succeeded; otherwise it is left as
    /// it was (`None` here), so it never claims a plan that was only partly applied.
    pub state_serial: Option<u64>,
}

impl ApplyReport {
    /// A report of a run in which nothing has happened yet.
    pub fn new(plan_hash: String) -> Self {
        Self {
            plan_hash,
            done: Vec::new(),
            failed: Vec::new(),
            not_started: Vec::new(),
            interrupted: false,
            state_serial: None,
        }
    }

    /// Whether every step ran and succeeded.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && !self.interrupted && self.not_started.is_empty()
    }
}

/// Serializes a duration as whole milliseconds.
pub(crate) fn serde_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Serializes a duration as whole seconds.
pub(crate) fn serde_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}
