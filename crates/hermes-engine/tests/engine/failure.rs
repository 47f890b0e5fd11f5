//! A failed step stops the run: nothing new starts, running steps finish, the report says what
//! was done, what failed and what never started, the lock is released, and the state does not
//! record the plan (it is left exactly as it was).

use std::collections::BTreeSet;
use std::time::Duration;

use hermes_core::Kind;
use hermes_core::seams::State;
use hermes_engine::{ApplyOptions, Event, StepAction, StepRef};

use crate::support::{Harness, addr, agent, existing, host_chain, options};

fn step(kind: Kind, name: &str, action: StepAction) -> StepRef {
    StepRef {
        address: addr(kind, name),
        action,
    }
}

#[tokio::test]
async fn a_failed_step_stops_its_dependents_and_everything_not_yet_started() {
    let h = Harness::new(Vec::new());
    let mut wanted = host_chain("h1");
    wanted.push(agent("a1", "h1"));
    wanted.extend(host_chain("h2"));
    let plan = h.plan(wanted);
    h.ssh.fail(addr(Kind::HostHardening, "h1"));
    // h2 is still being created when h1's hardening fails.
    h.cloud
        .delay(addr(Kind::Host, "h2"), Duration::from_millis(60));

    let report = h.engine().apply(&plan, options()).await.unwrap();

    assert!(!report.is_success());
    assert!(!report.interrupted);
    assert_eq!(report.failed.len(), 1, "{report:#?}");
    let failed = &report.failed[0];
    assert_eq!(failed.address, addr(Kind::HostHardening, "h1"));
    assert_eq!(failed.action, StepAction::Create);
    assert_eq!(failed.provider, "ssh");
    assert_eq!(
        failed.error,
        "create of `host-hardening.h1` failed in provider `ssh`: the fake refuses to create \
         `host-hardening.h1`"
    );
    let done: BTreeSet<_> = report.done.iter().map(|d| d.address.clone()).collect();
    assert_eq!(
        done,
        BTreeSet::from([addr(Kind::Host, "h1"), addr(Kind::Host, "h2")]),
        "the running h2 finished"
    );
    let not_started: BTreeSet<_> = report.not_started.iter().cloned().collect();
    assert_eq!(
        not_started,
        BTreeSet::from([
            step(Kind::DockerEngine, "h1", StepAction::Create),
            step(Kind::Agent, "a1", StepAction::Create),
            step(Kind::HostHardening, "h2", StepAction::Create),
            step(Kind::DockerEngine, "h2", StepAction::Create),
        ])
    );
    // No call began after the failure was known.
    let failure_end = h.journal.call("create", &failed.address).ended;
    assert!(h.journal.calls().iter().all(|c| c.began < failure_end));
    assert!(h.reporter.events().iter().any(|e| matches!(
        e,
        Event::StepFailed { address, .. } if *address == failed.address
    )));
    h.assert_unlocked();
    assert_eq!(
        h.store.state(),
        State::default(),
        "the state claims nothing"
    );
    assert_eq!(h.store.saves(), 0);
    assert_eq!(report.state_serial, None);
}

#[tokio::test]
async fn a_failed_destruction_keeps_the_create_phase_from_starting() {
    let before = host_chain("h1");
    let h = Harness::new(existing(&before));
    let mut after = before.clone();
    after[0] = after[0].clone().fixed_attr("size", "large");
    let plan = h.plan(after);
    h.ssh.fail(addr(Kind::HostHardening, "h1"));

    let report = h
        .engine()
        .apply(
            &plan,
            ApplyOptions {
                allow_destroy: true,
                ..options()
            },
        )
        .await
        .unwrap();

    assert_eq!(
        report
            .done
            .iter()
            .map(|d| d.address.clone())
            .collect::<Vec<_>>(),
        [addr(Kind::DockerEngine, "h1")]
    );
    assert_eq!(report.failed[0].action, StepAction::ReplaceDestroy);
    assert!(h.journal.calls().iter().all(|c| c.op == "delete"));
    assert!(
        report
            .not_started
            .contains(&step(Kind::Host, "h1", StepAction::ReplaceDestroy))
    );
    for kind in [Kind::Host, Kind::HostHardening, Kind::DockerEngine] {
        assert!(
            report
                .not_started
                .contains(&step(kind, "h1", StepAction::ReplaceCreate))
        );
    }
    h.assert_unlocked();
}

#[tokio::test]
async fn an_unsaved_state_is_an_error_that_still_says_what_was_done() {
    let h = Harness::new(Vec::new());
    let plan = h.plan(host_chain("h1"));
    h.store.fail_saves();

    let err = h.engine().apply(&plan, options()).await.unwrap_err();

    let message = err.to_string();
    assert!(message.contains("could not be saved"), "{message}");
    assert!(message.contains("the disk is full"), "{message}");
    let report = err.report().expect("the report travels with the error");
    assert_eq!(report.done.len(), 3);
    h.assert_unlocked();
}
