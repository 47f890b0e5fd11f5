//! The engine of `hermes-infra`: it runs a [`Plan`](hermes_plan::Plan) through the seam traits
//! and reports what happened.
//!
//! What it does:
//!
//! - [`Engine::observe`] asks every provider, in order, for what exists in a scope; each later
//!   provider sees what the earlier ones found (an SSH-based provider needs the host addresses a
//!   cloud provider observed).
//! - [`Engine::apply`] refuses destructive plans without `allow_destroy` and plans naming kinds no
//!   provider handles, before touching anything; takes the state lock (waiting for it when asked);
//!   re-observes and refuses when the world moved since the plan was made; runs the steps in
//!   dependency order with bounded concurrency (destroy phase, then create phase); records the
//!   plan hash in the state when every step succeeded; and always releases the lock.
//! - A failed step or a fired [`CancellationToken`](tokio_util::sync::CancellationToken) stops new
//!   steps from starting while running steps finish; the [`ApplyReport`] lists what was done, what
//!   failed and what never started.
//!
//! What it does not do: it never names a cloud, a container runtime or an SSH library (providers
//! do that behind [`hermes_core::seams::Provider`]); it never prints (progress goes to a
//! [`Reporter`], diagnostics to `tracing`); it knows no command-line parsing; it never retries a
//! provider call (providers own their retry policy); and it never sees secret values: steps
//! resolve secret references through [`hermes_core::seams::SecretSource`] themselves, and nothing
//! the engine reports, logs or saves carries a value.

mod apply;
mod engine;
mod error;
mod event;
mod lock;
mod observe;
mod report;
mod run;
mod schedule;

pub use apply::ApplyOptions;
pub use engine::{DEFAULT_CONCURRENCY, DEFAULT_LOCK_POLL, DEFAULT_LOCK_TTL, Engine};
pub use error::{EngineError, LockHeld};
pub use event::{Event, NoReporter, Reporter};
pub use observe::observed_digest;
pub use report::{ApplyReport, DoneStep, FailedStep, StepAction, StepRef};
