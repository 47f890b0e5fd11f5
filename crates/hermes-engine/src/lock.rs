//! Taking the state lock, waiting for it when asked.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use hermes_core::Scope;
use hermes_core::seams::{LockAttempt, LockInfo};

use crate::engine::Engine;
use crate::error::{EngineError, LockHeld};
use crate::event::Event;

/// While waiting, a [`Event::LockWaiting`] goes out at least this often.
const WAITING_EVERY: Duration = Duration::from_secs(10);

/// How an attempt to take the lock ended (refusals are errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The lock is ours.
    Yes,
    /// The run was cancelled while waiting; nothing is held.
    Cancelled,
}

impl Engine {
    /// Takes the lock for `scope` described by `info`, trying again every poll interval until
    /// `wait` has passed.
    pub(crate) async fn take_lock(
        &self,
        scope: &Scope,
        info: &LockInfo,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<Taken, EngineError> {
        let deadline = Instant::now() + wait;
        let mut last_event: Option<(String, Instant)> = None;
        loop {
            if cancel.is_cancelled() {
                return Ok(Taken::Cancelled);
            }
            let attempt =
                self.store
                    .try_lock(scope, info)
                    .await
                    .map_err(|source| EngineError::State {
                        doing: format!("take the lock on {}", self.store.describe(scope)),
                        source,
                    })?;
            let other = match attempt {
                LockAttempt::Acquired => {
                    tracing::debug!(%scope, lock = %info.id, "lock taken");
                    return Ok(Taken::Yes);
                }
                LockAttempt::HeldBy(other) => other,
            };
            let now = Instant::now();
            let age = Duration::from_secs(unix_now().saturating_sub(other.created_unix));
            if now >= deadline {
                return Err(EngineError::Locked(Box::new(LockHeld {
                    scope: scope.clone(),
                    backend: self.store.describe(scope),
                    holder: other.holder,
                    operation: other.operation,
                    age,
                    ttl: Duration::from_secs(other.ttl_secs),
                    plan_hash: other.plan_hash,
                    waited: wait,
                })));
            }
            let due = match &last_event {
                None => true,
                Some((id, at)) => *id != other.id || now - *at >= WAITING_EVERY,
            };
            if due {
                tracing::debug!(%scope, holder = %other.holder, "waiting for the lock");
                self.reporter.event(&Event::LockWaiting {
                    holder: other.holder.clone(),
                    operation: other.operation.clone(),
                    age,
                });
                last_event = Some((other.id.clone(), now));
            }
            let pause = self.lock_poll.min(deadline - now);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = cancel.cancelled() => return Ok(Taken::Cancelled),
            }
        }
    }

    /// The lock this engine takes for a run.
    pub(crate) fn lock_info(&self, holder: &str, operation: &str, plan_hash: &str) -> LockInfo {
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            holder: holder.to_owned(),
            operation: operation.to_owned(),
            created_unix: unix_now(),
            ttl_secs: self.lock_ttl.as_secs(),
            plan_hash: Some(plan_hash.to_owned()),
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
