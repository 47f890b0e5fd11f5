//! Running the steps of one phase: dependency order, bounded concurrency, stop on failure or
//! cancellation while letting running steps finish.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tracing::instrument::WithSubscriber as _;

use hermes_core::seams::{Provider, ProviderError, StepContext};
use hermes_core::{Actor, Address, ObservedResource, Scope};

use crate::engine::Engine;
use crate::error::StepError;
use crate::event::Event;
use crate::report::{ApplyReport, DoneStep, FailedStep, StepAction};
use crate::schedule::Step;

/// What a successful step did to the world.
enum Effect {
    /// The resource now exists like this.
    Put(ObservedResource),
    /// The resource is gone.
    Gone,
}

/// How a step ended, and how long it took.
type Outcome = (Result<Effect, ProviderError>, Duration);

/// One apply's progress through its phases.
pub(crate) struct Run<'a> {
    engine: &'a Engine,
    scope: &'a Scope,
    cancel: &'a CancellationToken,
    /// Who is applying, as the lock records it.
    holder: String,
    /// Who is applying, as providers that keep an audit trail record it.
    actor: Actor,
    /// Everything observed, updated with the results of finished steps.
    world: Arc<BTreeMap<Address, ObservedResource>>,
    report: ApplyReport,
    /// Steps in every phase.
    total: usize,
    /// Steps started so far, in every phase.
    started: usize,
    /// A step failed or the run was cancelled: no new step starts.
    stopped: bool,
}

impl<'a> Run<'a> {
    pub(crate) fn new(
        engine: &'a Engine,
        scope: &'a Scope,
        cancel: &'a CancellationToken,
        (holder, actor): (&str, &Actor),
        world: BTreeMap<Address, ObservedResource>,
        report: ApplyReport,
        total: usize,
    ) -> Self {
        Self {
            engine,
            scope,
            cancel,
            holder: holder.to_owned(),
            actor: actor.clone(),
            world: Arc::new(world),
            report,
            total,
            started: 0,
            stopped: false,
        }
    }

    /// The report, and the world as the finished steps left it.
    pub(crate) fn finish(self) -> (ApplyReport, Arc<BTreeMap<Address, ObservedResource>>) {
        (self.report, self.world)
    }

    /// Runs `steps` (one phase). Once stopped, nothing more starts, in this phase or later ones;
    /// steps left are recorded as not started.
    pub(crate) async fn phase(&mut self, steps: &[Step]) {
        let cancel = self.cancel;
        let mut waiting: Vec<usize> = steps.iter().map(|s| s.after.len()).collect();
        let mut ready: BTreeSet<usize> = (0..steps.len()).filter(|&i| waiting[i] == 0).collect();
        let mut started = vec![false; steps.len()];
        let mut tasks: JoinSet<Outcome> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, usize> = HashMap::new();
        loop {
            if self.may_cancel() && cancel.is_cancelled() {
                self.cancelled();
            }
            while !self.stopped && tasks.len() < self.engine.concurrency {
                let Some(i) = ready.pop_first() else { break };
                started[i] = true;
                self.started += 1;
                let handle = tasks.spawn(self.start(&steps[i]));
                running.insert(handle.id(), i);
            }
            if tasks.is_empty() {
                break;
            }
            let may_cancel = self.may_cancel();
            let joined = tokio::select! {
                biased;
                () = cancel.cancelled(), if may_cancel => {
                    self.cancelled();
                    continue;
                }
                joined = tasks.join_next_with_id() => joined,
            };
            let (id, outcome) = match joined {
                Some(Ok((id, outcome))) => (id, outcome),
                Some(Err(error)) => {
                    let message = format!("the step stopped unexpectedly ({error}); this is a bug");
                    (
                        error.id(),
                        (Err(ProviderError::Other(message)), Duration::ZERO),
                    )
                }
                None => break,
            };
            let Some(i) = running.remove(&id) else {
                continue;
            };
            if self.finished(&steps[i], outcome) {
                for (j, step) in steps.iter().enumerate() {
                    if step.after.contains(&i) {
                        waiting[j] -= 1;
                        if waiting[j] == 0 {
                            ready.insert(j);
                        }
                    }
                }
            }
        }
        let left = steps.iter().zip(&started).filter(|(_, s)| !**s);
        self.report
            .not_started
            .extend(left.map(|(step, _)| step.to_ref()));
    }

    /// Whether a cancellation would still change anything: some step has yet to start.
    fn may_cancel(&self) -> bool {
        !self.stopped && self.started < self.total
    }

    /// Ctrl-C: no new step starts; running steps finish.
    fn cancelled(&mut self) {
        self.stopped = true;
        self.report.interrupted = true;
        let not_started = self.total - self.started;
        tracing::info!(
            not_started,
            "cancelled: running steps finish, no new step starts"
        );
        self.engine
            .reporter
            .event(&Event::Cancelled { not_started });
    }

    /// Reports the step as started and returns the task that runs it.
    fn start(&self, step: &Step) -> impl Future<Output = Outcome> + Send + 'static {
        let provider = self.engine.provider_for(step.address.kind).cloned();
        let ctx = StepContext {
            scope: self.scope.clone(),
            secrets: Arc::clone(&self.engine.secrets),
            world: Arc::clone(&self.world),
            plan_hash: self.report.plan_hash.clone(),
            holder: self.holder.clone(),
            actor: self.actor.clone(),
        };
        self.engine.reporter.event(&Event::StepStarted {
            address: step.address.clone(),
            action: step.action,
        });
        let span = tracing::debug_span!("step", address = %step.address, action = %step.action);
        let step = step.clone();
        async move {
            tracing::debug!(world = ctx.world.len(), "step started");
            let began = Instant::now();
            let result = match provider {
                Some(provider) => execute(provider.as_ref(), &step, &ctx).await,
                None => Err(ProviderError::Other(format!(
                    "no provider handles kind `{}`",
                    step.address.kind
                ))),
            };
            (result, began.elapsed())
        }
        .instrument(span)
        .with_current_subscriber()
    }

    /// Records how a step ended; whether it succeeded.
    fn finished(&mut self, step: &Step, (result, elapsed): Outcome) -> bool {
        let address = step.address.clone();
        let action = step.action;
        match result {
            Ok(effect) => {
                let world = Arc::make_mut(&mut self.world);
                match effect {
                    Effect::Put(observed) => world.insert(address.clone(), observed),
                    Effect::Gone => world.remove(&address),
                };
                tracing::debug!(%address, %action, elapsed_ms = elapsed.as_millis(), "step finished");
                self.engine.reporter.event(&Event::StepFinished {
                    address: address.clone(),
                    action,
                    elapsed,
                });
                self.report.done.push(DoneStep {
                    address,
                    action,
                    elapsed,
                });
                true
            }
            Err(source) => {
                let provider = self
                    .engine
                    .provider_for(address.kind)
                    .map_or("none", |p| p.name())
                    .to_owned();
                let error = StepError {
                    address: address.clone(),
                    action,
                    provider: provider.clone(),
                    source,
                }
                .to_string();
                tracing::warn!(%address, %action, %error, "step failed; no new step starts");
                self.stopped = true;
                self.engine.reporter.event(&Event::StepFailed {
                    address: address.clone(),
                    action,
                    error: error.clone(),
                });
                self.report.failed.push(FailedStep {
                    address,
                    action,
                    provider,
                    error,
                });
                false
            }
        }
    }
}

/// Calls the provider for one step.
async fn execute(
    provider: &dyn Provider,
    step: &Step,
    ctx: &StepContext,
) -> Result<Effect, ProviderError> {
    let change = &step.change;
    let missing = |what: &str| {
        ProviderError::Other(format!(
            "the change to `{}` has no {what} resource",
            step.address
        ))
    };
    let desired = change.desired.as_ref();
    let observed = ctx.world.get(&step.address).or(change.observed.as_ref());
    match step.action {
        StepAction::Create | StepAction::ReplaceCreate => {
            let desired = desired.ok_or_else(|| missing("desired"))?;
            provider.create(desired, ctx).await.map(Effect::Put)
        }
        StepAction::Update => {
            let desired = desired.ok_or_else(|| missing("desired"))?;
            let observed = observed.ok_or_else(|| missing("observed"))?;
            provider
                .update(desired, observed, ctx)
                .await
                .map(Effect::Put)
        }
        StepAction::Delete | StepAction::ReplaceDestroy => {
            let observed = observed.ok_or_else(|| missing("observed"))?;
            match provider.delete(observed, ctx).await {
                Ok(()) => Ok(Effect::Gone),
                // Already gone: what the step wanted is true.
                Err(ProviderError::NotFound(what)) => {
                    tracing::debug!(%what, "already gone");
                    Ok(Effect::Gone)
                }
                Err(e) => Err(e),
            }
        }
    }
}
