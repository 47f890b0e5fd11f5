//! Why an apply or an observation stopped. Every message names the object and the fix.

use std::fmt;
use std::time::Duration;

use hermes_core::seams::{ProviderError, StateError};
use hermes_core::{Address, Kind, Scope};
use hermes_plan::Action;

use crate::report::{ApplyReport, StepAction};

/// An engine failure. Refusals (`DestroyNotAllowed`, `NoProvider`, `InvalidPlan`,
/// `UnsupportedPlanFormat`) happen before the lock is taken or anything is called; `Locked` before
/// anything is called; `WorldMoved` and `Observe` before any step runs. A step failure is not an
/// error: it is reported in [`ApplyReport::failed`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The plan was saved by a version of `hermes-infra` with another plan format.
    #[error(
        "the plan has format {found}, but this hermes-infra applies format {expected}; make a new \
         plan with this version"
    )]
    UnsupportedPlanFormat {
        /// The plan's format.
        found: u32,
        /// The format this engine applies.
        expected: u32,
    },
    /// The plan destroys resources and `allow_destroy` was not given.
    #[error("{}", destroy_message(.scope, .destructive))]
    DestroyNotAllowed {
        /// The stack and environment.
        scope: Scope,
        /// Each destroyed resource with its plan action (`replace` or `delete`).
        destructive: Vec<(Address, Action)>,
    },
    /// A change concerns a kind that no configured provider manages.
    #[error(
        "nothing in this run can apply `{address}`: no configured provider manages `{kind}` \
         resources (they manage {}); nothing was changed",
        kinds_list(.handled)
    )]
    NoProvider {
        /// The resource.
        address: Address,
        /// Its kind.
        kind: Kind,
        /// The kinds the configured providers do handle.
        handled: Vec<Kind>,
    },
    /// The plan is inconsistent (a dependency cycle, a change without the resource it needs).
    #[error("the plan cannot be applied: {reason}; make a new plan")]
    InvalidPlan {
        /// What is wrong, naming the resources.
        reason: String,
    },
    /// The state lock is held by another run.
    #[error("{0}")]
    Locked(Box<LockHeld>),
    /// The world no longer matches what the plan was made from.
    #[error(
        "what the plan saw has changed since it was made (in {scope}: planned against \
         {planned}, found {found}); make a new plan"
    )]
    WorldMoved {
        /// The stack and environment.
        scope: Scope,
        /// The observed digest recorded in the plan.
        planned: String,
        /// The digest of what is observed now.
        found: String,
    },
    /// A provider could not list what exists.
    #[error("provider `{provider}` could not observe {scope}: {source}")]
    Observe {
        /// The provider.
        provider: String,
        /// The stack and environment.
        scope: Scope,
        /// What the provider said.
        #[source]
        source: ProviderError,
    },
    /// A provider reported something it does not manage.
    #[error(
        "provider `{provider}` reported `{address}`, whose kind it does not manage; this is a \
         bug in that provider, please report it"
    )]
    ForeignObservation {
        /// The provider.
        provider: String,
        /// What it reported.
        address: Address,
    },
    /// The state backend failed while taking the lock.
    #[error("could not {doing}: {source}")]
    State {
        /// What the engine was doing (`take the lock on shop/prod`, ...).
        doing: String,
        /// The backend's error.
        #[source]
        source: StateError,
    },
    /// Every step succeeded but the state could not be saved; the report says what was done.
    #[error(
        "the plan was applied but the state of {scope} could not be saved: {source}; the world \
         is as planned, run `plan` to confirm"
    )]
    StateNotSaved {
        /// The stack and environment.
        scope: Scope,
        /// What was done.
        report: Box<ApplyReport>,
        /// The backend's error.
        #[source]
        source: StateError,
    },
    /// The run ended but its lock could not be released; the report says what was done.
    #[error(
        "the run ended but its lock on {scope} could not be released: {source}; the lock expires \
         {} after it was taken",
        humantime::format_duration(*.ttl)
    )]
    LockNotReleased {
        /// The stack and environment.
        scope: Scope,
        /// What was done.
        report: Box<ApplyReport>,
        /// The lock's time to live.
        ttl: Duration,
        /// The backend's error.
        #[source]
        source: StateError,
    },
}

impl EngineError {
    /// The report of what was done, for errors raised after steps ran.
    pub fn report(&self) -> Option<&ApplyReport> {
        match self {
            EngineError::StateNotSaved { report, .. }
            | EngineError::LockNotReleased { report, .. } => Some(report),
            _ => None,
        }
    }
}

/// Who holds the lock that stopped a run, and how to get past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHeld {
    /// The stack and environment.
    pub scope: Scope,
    /// Where the state lives.
    pub backend: String,
    /// Who holds the lock (`user@machine (pid N)`).
    pub holder: String,
    /// What they are doing (`apply`, ...).
    pub operation: String,
    /// How long ago they took it.
    pub age: Duration,
    /// Their lock's time to live: after it, the lock is taken over.
    pub ttl: Duration,
    /// The plan they are applying, when known.
    pub plan_hash: Option<String>,
    /// How long this run was allowed to wait (`--lock-wait`); it waited that long.
    pub waited: Duration,
}

impl fmt::Display for LockHeld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: Duration| humantime::format_duration(rounded(d));
        write!(
            f,
            "the state of {} ({}) is locked by {} for `{}`",
            self.scope, self.backend, self.holder, self.operation
        )?;
        if let Some(hash) = &self.plan_hash {
            write!(f, " (plan {})", short_hash(hash))?;
        }
        write!(f, ", taken {} ago", secs(self.age))?;
        if self.waited.is_zero() {
            f.write_str("; wait for it with --lock-wait 5m")?;
        } else {
            write!(
                f,
                "; still held after waiting {}, wait longer with a larger --lock-wait",
                secs(self.waited)
            )?;
        }
        let left = self.ttl.saturating_sub(self.age);
        if left.is_zero() {
            f.write_str(", or run again: that lock has expired and will be taken over")
        } else {
            write!(
                f,
                ", or, if that run died, the lock expires in {} ({} after it was taken)",
                secs(left),
                secs(self.ttl)
            )
        }
    }
}

/// Whole seconds, or whole milliseconds below a second: `3m 12s`, `250ms`.
fn rounded(d: Duration) -> Duration {
    if d < Duration::from_secs(1) {
        Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    } else {
        Duration::from_secs(d.as_secs())
    }
}

/// `sha256:0123456789ab` from a full digest.
fn short_hash(hash: &str) -> &str {
    hash.char_indices()
        .nth(19)
        .map_or(hash, |(i, _)| &hash[..i])
}

fn destroy_message(scope: &Scope, destructive: &[(Address, Action)]) -> String {
    let list: Vec<String> = destructive
        .iter()
        .map(|(address, action)| format!("`{address}` ({})", action_name(*action)))
        .collect();
    let what = if destructive.len() == 1 {
        "resource"
    } else {
        "resources"
    };
    format!(
        "the plan for {scope} destroys {} {what}: {}; nothing was changed. Review the plan, then \
         apply it with --allow-destroy",
        destructive.len(),
        list.join(", ")
    )
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Replace => "replace",
        Action::Delete => "delete",
        Action::Create => "create",
        Action::Update => "update",
    }
}

fn kinds_list(kinds: &[Kind]) -> String {
    if kinds.is_empty() {
        return "nothing (no provider is configured)".to_owned();
    }
    kinds
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A provider's error, wrapped with the resource, the step and the provider.
#[derive(Debug, thiserror::Error)]
#[error("{action} of `{address}` failed in provider `{provider}`: {source}")]
pub(crate) struct StepError {
    pub(crate) address: Address,
    pub(crate) action: StepAction,
    pub(crate) provider: String,
    #[source]
    pub(crate) source: ProviderError,
}
