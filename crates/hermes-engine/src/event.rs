//! Progress events and the [`Reporter`] that receives them.

use std::time::Duration;

use serde::Serialize;

use hermes_core::Address;

use crate::report::{StepAction, serde_ms, serde_secs};

/// Receives progress events while the engine works. The CLI renders them (text or one JSON line
/// each); tests record them. Called from the engine's task, so it must be quick and must not block.
pub trait Reporter: Send + Sync {
    /// One thing happened.
    fn event(&self, event: &Event);
}

/// A [`Reporter`] that drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReporter;

impl Reporter for NoReporter {
    fn event(&self, _event: &Event) {}
}

/// Something the engine did or is waiting for. Serialized with an `event` tag
/// (`{"event":"step-started","address":"host.web-1","action":"create"}`). Never carries a secret
/// value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Event {
    /// The state lock is held by another run and this run is waiting for it. Sent on the first
    /// refusal, whenever the holder changes, and every 10 seconds while waiting.
    LockWaiting {
        /// Who holds the lock (`user@machine (pid N)`).
        holder: String,
        /// What they are doing (`apply`, ...).
        operation: String,
        /// How long ago they took it.
        #[serde(rename = "age_secs", serialize_with = "serde_secs")]
        age: Duration,
    },
    /// The state lock is ours.
    LockAcquired,
    /// Providers are being asked what exists.
    Observing,
    /// A step started.
    StepStarted {
        /// The resource.
        address: Address,
        /// What the step does to it.
        action: StepAction,
    },
    /// A step finished successfully.
    StepFinished {
        /// The resource.
        address: Address,
        /// What the step did to it.
        action: StepAction,
        /// How long it took.
        #[serde(rename = "elapsed_ms", serialize_with = "serde_ms")]
        elapsed: Duration,
    },
    /// A step failed; no new step will start.
    StepFailed {
        /// The resource.
        address: Address,
        /// What the step tried to do.
        action: StepAction,
        /// What went wrong (names the resource, the action and the provider).
        error: String,
    },
    /// The run was asked to stop: no new step starts, running steps finish.
    Cancelled {
        /// How many steps will not start.
        not_started: usize,
    },
}
