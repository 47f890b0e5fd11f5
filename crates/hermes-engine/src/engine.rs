//! The [`Engine`]: the seams it drives and its settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hermes_core::Kind;
use hermes_core::seams::{Provider, SecretSource, StateStore};

use crate::event::Reporter;

/// Default number of steps running at once.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// Default time to live of the state lock: after it, a lock left by a dead run is taken over.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_mins(15);
/// Default interval between attempts to take a lock held by another run.
pub const DEFAULT_LOCK_POLL: Duration = Duration::from_secs(1);

/// Runs plans through providers, a state store, a reporter and a secret source.
///
/// ```no_run
/// # async fn demo(
/// #     providers: Vec<std::sync::Arc<dyn hermes_core::seams::Provider>>,
/// #     store: std::sync::Arc<dyn hermes_core::seams::StateStore>,
/// #     secrets: std::sync::Arc<dyn hermes_core::seams::SecretSource>,
/// #     plan: hermes_plan::Plan,
/// # ) -> Result<(), hermes_engine::EngineError> {
/// use std::sync::Arc;
/// use hermes_engine::{ApplyOptions, Engine, NoReporter};
///
/// let engine = Engine::new(providers, store, Arc::new(NoReporter), secrets).with_concurrency(8);
/// let options = ApplyOptions {
///     holder: "alice@laptop (pid 42)".into(),
///     actor: hermes_core::Actor::lossy("alice@laptop"),
///     ..ApplyOptions::default()
/// };
/// let report = engine.apply(&plan, options).await?;
/// assert!(report.is_success());
/// # Ok(()) }
/// ```
pub struct Engine {
    pub(crate) providers: Vec<Arc<dyn Provider>>,
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) reporter: Arc<dyn Reporter>,
    pub(crate) secrets: Arc<dyn SecretSource>,
    pub(crate) concurrency: usize,
    pub(crate) lock_ttl: Duration,
    pub(crate) lock_poll: Duration,
}

impl Engine {
    /// An engine with default settings. Providers are asked to observe in this order; a kind is
    /// handled by the first provider that lists it.
    pub fn new(
        providers: Vec<Arc<dyn Provider>>,
        store: Arc<dyn StateStore>,
        reporter: Arc<dyn Reporter>,
        secrets: Arc<dyn SecretSource>,
    ) -> Self {
        Self {
            providers,
            store,
            reporter,
            secrets,
            concurrency: DEFAULT_CONCURRENCY,
            lock_ttl: DEFAULT_LOCK_TTL,
            lock_poll: DEFAULT_LOCK_POLL,
        }
    }

    /// At most `steps` steps run at once (at least one).
    #[must_use]
    pub fn with_concurrency(mut self, steps: usize) -> Self {
        self.concurrency = steps.max(1);
        self
    }

    /// The time to live written into the locks this engine takes.
    #[must_use]
    pub fn with_lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// How often to try again for a lock held by another run (at least every millisecond).
    #[must_use]
    pub fn with_lock_poll(mut self, every: Duration) -> Self {
        self.lock_poll = every.max(Duration::from_millis(1));
        self
    }

    /// The provider that handles `kind`: the first one listing it.
    pub(crate) fn provider_for(&self, kind: Kind) -> Option<&Arc<dyn Provider>> {
        self.providers.iter().find(|p| p.kinds().contains(&kind))
    }

    /// Every kind some provider handles, in creation order.
    pub(crate) fn handled_kinds(&self) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| self.provider_for(*k).is_some())
            .collect()
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let providers: Vec<&str> = self.providers.iter().map(|p| p.name()).collect();
        f.debug_struct("Engine")
            .field("providers", &providers)
            .field("concurrency", &self.concurrency)
            .field("lock_ttl", &self.lock_ttl)
            .field("lock_poll", &self.lock_poll)
            .finish_non_exhaustive()
    }
}
