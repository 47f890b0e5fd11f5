//! [`Engine::apply`]: refusals, lock, world check, steps, state, unlock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use hermes_core::Actor;
use hermes_core::seams::LockInfo;
use hermes_plan::{PLAN_FORMAT, Plan};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::event::Event;
use crate::lock::Taken;
use crate::observe::observed_digest;
use crate::report::{ApplyReport, StepAction};
use crate::run::Run;
use crate::schedule::{Schedule, schedule};

/// How to apply a plan.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Allow replacements and deletions (`--allow-destroy`).
    pub allow_destroy: bool,
    /// How long to wait for a lock held by another run (`--lock-wait`); zero fails at once.
    pub lock_wait: Duration,
    /// Who is running, recorded in the lock (`user@machine (pid N)`).
    pub holder: String,
    /// Who is running, as hosts record it in their audit logs (`user@machine`, no process id).
    pub actor: Actor,
    /// What is being done, recorded in the lock (`apply`, `kill`, ...).
    pub operation: String,
    /// Fire to stop (Ctrl-C): no new step starts, running steps finish, the lock is released and
    /// the report comes back with `interrupted`. Fire this rather than dropping the future, which
    /// would leave the lock to expire.
    pub cancel: CancellationToken,
}

impl Engine {
    /// Applies `plan`.
    ///
    /// In order: refuses destructive changes unless `allow_destroy`, changes no provider handles
    /// and inconsistent plans (before the lock is taken or anything is called); takes the lock,
    /// waiting up to `lock_wait`; observes again and refuses if the world differs from what the
    /// plan saw; runs the destroy phase, then the create phase; saves the state with this plan's
    /// hash if every step succeeded; releases the lock whatever happened.
    ///
    /// A failed step or a cancellation is not an error: the report lists what was done, what
    /// failed and what did not start (check [`ApplyReport::is_success`]). Errors raised after steps
    /// ran ([`EngineError::StateNotSaved`], [`EngineError::LockNotReleased`]) carry the report too
    /// ([`EngineError::report`]). When the lock cannot be released after another error, that
    /// error is returned and the release failure is logged (the lock then expires with its TTL).
    pub async fn apply(
        &self,
        plan: &Plan,
        options: ApplyOptions,
    ) -> Result<ApplyReport, EngineError> {
        let scope = &plan.scope;
        if plan.format != PLAN_FORMAT {
            return Err(EngineError::UnsupportedPlanFormat {
                found: plan.format,
                expected: PLAN_FORMAT,
            });
        }
        let destructive: Vec<_> = plan
            .destructive()
            .map(|c| (c.address.clone(), c.action))
            .collect();
        if !options.allow_destroy && !destructive.is_empty() {
            return Err(EngineError::DestroyNotAllowed {
                scope: scope.clone(),
                destructive,
            });
        }
        if let Some(change) = plan
            .changes
            .iter()
            .find(|c| self.provider_for(c.address.kind).is_none())
        {
            return Err(EngineError::NoProvider {
                address: change.address.clone(),
                kind: change.address.kind,
                handled: self.handled_kinds(),
            });
        }
        let schedule = schedule(plan)?;
        let plan_hash = plan.hash();
        let report = ApplyReport::new(plan_hash.clone());
        let lock = self.lock_info(&options.holder, &options.operation, &plan_hash);

        let taken = self
            .take_lock(scope, &lock, options.lock_wait, &options.cancel)
            .await?;
        if taken == Taken::Cancelled {
            return Ok(self.cancelled_before_steps(report, &schedule));
        }
        self.reporter.event(&Event::LockAcquired);

        let outcome = self
            .apply_locked(plan, &schedule, &options, &lock, report)
            .await;
        let released = self.store.unlock(scope, &lock.id).await;
        match (outcome, released) {
            (outcome, Ok(())) => {
                tracing::debug!(%scope, "lock released");
                outcome
            }
            (Ok(report), Err(source)) => Err(EngineError::LockNotReleased {
                scope: scope.clone(),
                report: Box::new(report),
                ttl: self.lock_ttl,
                source,
            }),
            (Err(error), Err(source)) => {
                tracing::error!(%scope, error = %source, "the lock could not be released; it will expire");
                Err(error)
            }
        }
    }

    /// The part of an apply that runs under the lock.
    async fn apply_locked(
        &self,
        plan: &Plan,
        schedule: &Schedule,
        options: &ApplyOptions,
        lock: &LockInfo,
        report: ApplyReport,
    ) -> Result<ApplyReport, EngineError> {
        let scope = &plan.scope;
        let cancel = &options.cancel;
        let observed = tokio::select! {
            observed = self.observe(scope) => observed?,
            () = cancel.cancelled() => return Ok(self.cancelled_before_steps(report, schedule)),
        };
        let found = observed_digest(&observed);
        if found != plan.observed_digest {
            return Err(EngineError::WorldMoved {
                scope: scope.clone(),
                planned: plan.observed_digest.clone(),
                found,
            });
        }
        let world: BTreeMap<_, _> = observed
            .into_iter()
            .map(|o| (o.address.clone(), o))
            .collect();

        let mut run = Run::new(
            self,
            scope,
            cancel,
            (&lock.holder, &options.actor),
            world,
            report,
            schedule.len(),
        );
        run.phase(&schedule.destroy).await;
        run.phase(&schedule.create).await;
        let (mut report, world) = run.finish();
        let pins = host_key_pins(&report, &world);
        let ports = ssh_ports(&report, &world);
        let images = agent_images(&report, &world);
        let success = report.is_success();
        let saved = async {
            let mut state = self.store.load(scope).await?;
            let before = state.clone();
            for (host, key) in pins {
                match key {
                    Some(key) => state.host_keys.insert(host, key),
                    None => state.host_keys.remove(&host),
                };
            }
            for (host, port) in ports {
                match port {
                    Some(port) => state.ssh_ports.insert(host, port),
                    None => state.ssh_ports.remove(&host),
                };
            }
            for (agent, id) in images {
                match id {
                    Some(id) => state.record_image(&agent, &id),
                    None => state.image_history.remove(&agent).is_some(),
                };
            }
            if success {
                state.last_plan_hash = Some(report.plan_hash.clone());
            } else if state == before {
                tracing::info!(%scope, "not every step succeeded; the state is left as it was");
                return Ok(None);
            } else {
                tracing::info!(
                    %scope,
                    "not every step succeeded; only how to reach hosts (host keys, SSH ports) and the images agents run are saved"
                );
            }
            state.serial += 1;
            self.store.save(scope, &state, &lock.id).await?;
            Ok(Some(state.serial))
        };
        match saved.await {
            Ok(serial) => {
                report.state_serial = serial;
                Ok(report)
            }
            Err(source) => Err(EngineError::StateNotSaved {
                scope: scope.clone(),
                report: Box::new(report),
                source,
            }),
        }
    }

    /// The report of a run cancelled before any step started.
    fn cancelled_before_steps(&self, mut report: ApplyReport, schedule: &Schedule) -> ApplyReport {
        report.interrupted = true;
        report.not_started = schedule
            .steps()
            .map(crate::schedule::Step::to_ref)
            .collect();
        self.reporter.event(&Event::Cancelled {
            not_started: report.not_started.len(),
        });
        report
    }
}

/// Host key pins to record: the key of every host this run created (or replaced), read from
/// what its provider reported, and removal of the pin of every host it deleted. Pins are saved
/// even when other steps failed: losing one would mean trusting the host's key blindly at the
/// next contact.
fn host_key_pins(
    report: &ApplyReport,
    world: &BTreeMap<hermes_core::Address, hermes_core::ObservedResource>,
) -> Vec<(String, Option<String>)> {
    let mut pins = Vec::new();
    for done in report
        .done
        .iter()
        .filter(|d| d.address.kind == hermes_core::Kind::Host)
    {
        match done.action {
            StepAction::Create | StepAction::ReplaceCreate => {
                let key = world
                    .get(&done.address)
                    .and_then(|o| o.attrs.get(hermes_core::resource::HOST_KEY_ATTR))
                    .and_then(|v| v.as_str());
                if let Some(key) = key {
                    pins.push((done.address.name.clone(), Some(key.to_owned())));
                }
            }
            StepAction::Delete => pins.push((done.address.name.clone(), None)),
            StepAction::Update | StepAction::ReplaceDestroy => {}
        }
    }
    pins
}

/// The image each agent runs (`Some`), as its host reported it at the start of the run or its
/// step of this run did, and `None` for each agent this run deleted (its history goes with it).
/// Saved even when other steps failed: an agent upgraded in a failed run can be rolled back.
fn agent_images(
    report: &ApplyReport,
    world: &BTreeMap<hermes_core::Address, hermes_core::ObservedResource>,
) -> Vec<(String, Option<String>)> {
    use hermes_core::Kind;
    let mut images: Vec<(String, Option<String>)> = world
        .values()
        .filter(|o| o.address.kind == Kind::Agent)
        .filter_map(|o| {
            let id = o
                .attrs
                .get(hermes_core::resource::IMAGE_ID_ATTR)?
                .as_str()?;
            Some((o.address.name.clone(), Some(id.to_owned())))
        })
        .collect();
    images.extend(
        report
            .done
            .iter()
            .filter(|d| d.address.kind == Kind::Agent && d.action == StepAction::Delete)
            .map(|d| (d.address.name.clone(), None)),
    );
    images
}

/// The SSH ports to remember (`Some`) or forget (`None`): the port each host's `host-hardening`
/// configured, as its manifest says (read at the start of the run or written by a step of it),
/// and none for a host deleted or replaced (a new host listens on the fresh port).
fn ssh_ports(
    report: &ApplyReport,
    world: &BTreeMap<hermes_core::Address, hermes_core::ObservedResource>,
) -> Vec<(String, Option<u16>)> {
    use hermes_core::Kind;
    let gone: BTreeSet<&str> = report
        .done
        .iter()
        .filter(|d| {
            d.address.kind == Kind::Host
                && matches!(d.action, StepAction::Delete | StepAction::ReplaceDestroy)
        })
        .map(|d| d.address.name.as_str())
        .collect();
    let hardened: BTreeSet<&str> = report
        .done
        .iter()
        .filter(|d| d.address.kind == Kind::HostHardening)
        .map(|d| d.address.name.as_str())
        .collect();
    let mut ports: Vec<(String, Option<u16>)> =
        gone.iter().map(|host| ((*host).to_owned(), None)).collect();
    // A host replaced in this run and not hardened since listens on the fresh port, whatever
    // its predecessor's manifest said.
    for observed in world.values().filter(|o| {
        let host = o.address.name.as_str();
        o.address.kind == Kind::HostHardening && (!gone.contains(host) || hardened.contains(host))
    }) {
        let port = observed
            .attrs
            .get(hermes_core::resource::SSH_PORT_ATTR)
            .and_then(serde_json::Value::as_u64)
            .and_then(|p| u16::try_from(p).ok());
        if let Some(port) = port {
            ports.push((observed.address.name.clone(), Some(port)));
        }
    }
    ports
}
