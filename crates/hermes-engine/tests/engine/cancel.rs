//! Ctrl-C (the cancellation token): no new step starts, running steps finish, the lock is
//! released, and the report says the run was interrupted and what never started.

use std::time::Duration;

use hermes_core::Kind;
use hermes_core::seams::State;
use hermes_engine::{ApplyOptions, Event, StepAction, StepRef};

use crate::support::{FakeStore, Harness, PATIENCE, addr, host_chain, options};

#[tokio::test]
async fn cancelling_lets_the_running_step_finish_and_starts_nothing_new() {
    let mut h = Harness::new(Vec::new());
    h.concurrency = 1;
    let mut wanted = host_chain("h1");
    wanted.extend(host_chain("h2"));
    let plan = h.plan(wanted);
    let gate = h.cloud.gate(addr(Kind::Host, "h1"));
    let options = options();
    let cancel = options.cancel.clone();
    let engine = h.engine();

    let (report, ()) = tokio::join!(engine.apply(&plan, options), async {
        gate.entered().await;
        cancel.cancel();
        // Give the engine a moment in which it could (wrongly) start another step.
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.release();
    });
    let report = report.unwrap();

    assert!(report.interrupted);
    assert!(report.failed.is_empty());
    assert_eq!(
        report.done.len(),
        1,
        "the running step finished: {report:#?}"
    );
    assert_eq!(report.done[0].address, addr(Kind::Host, "h1"));
    assert_eq!(report.not_started.len(), 5);
    assert!(report.not_started.contains(&StepRef {
        address: addr(Kind::Host, "h2"),
        action: StepAction::Create,
    }));
    let calls = h.journal.calls();
    assert_eq!(calls.len(), 1, "nothing new started: {calls:#?}");
    let events = h.reporter.events();
    let cancelled = events
        .iter()
        .position(|e| *e == Event::Cancelled { not_started: 5 })
        .expect("a Cancelled event");
    let finished = events
        .iter()
        .position(|e| matches!(e, Event::StepFinished { .. }))
        .expect("the running step's StepFinished");
    assert!(
        cancelled < finished,
        "cancellation is reported while the step runs"
    );
    h.assert_unlocked();
    assert_eq!(h.store.state(), State::default());
}

#[tokio::test]
async fn cancelling_while_waiting_for_the_lock_leaves_at_once_touching_nothing() {
    let h = Harness::with_store(
        Vec::new(),
        FakeStore::locked_by("alice@laptop (pid 42)", "apply", Duration::from_secs(5)),
    );
    let plan = h.plan(host_chain("h1"));
    let options = ApplyOptions {
        lock_wait: Duration::from_mins(1),
        ..options()
    };
    let cancel = options.cancel.clone();
    let engine = h.engine();

    let (report, ()) = tokio::time::timeout(PATIENCE, async {
        tokio::join!(engine.apply(&plan, options), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            cancel.cancel();
        })
    })
    .await
    .expect("cancelling ends the wait");
    let report = report.unwrap();

    assert!(report.interrupted);
    assert!(report.done.is_empty());
    assert_eq!(report.not_started.len(), 3);
    h.assert_nothing_changed();
    assert!(h.journal.observes().is_empty());
    assert_eq!(
        h.store.lock().map(|l| l.holder),
        Some("alice@laptop (pid 42)".to_owned())
    );
    assert!(
        h.reporter
            .events()
            .contains(&Event::Cancelled { not_started: 3 })
    );
}

#[tokio::test]
async fn a_run_cancelled_before_it_starts_takes_no_lock() {
    let h = Harness::new(Vec::new());
    let plan = h.plan(host_chain("h1"));
    let options = options();
    options.cancel.cancel();

    let report = h.engine().apply(&plan, options).await.unwrap();

    assert!(report.interrupted);
    assert_eq!(report.not_started.len(), 3);
    assert_eq!(h.store.attempts(), 0);
    h.assert_nothing_changed();
}
