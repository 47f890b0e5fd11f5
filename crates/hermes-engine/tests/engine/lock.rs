//! The state lock: held by another run, the engine says who holds it, since when, and how to get
//! past it; with `--lock-wait` it waits, reporting that it does, and goes on once it is free.

use std::time::Duration;

use hermes_engine::{ApplyOptions, EngineError, Event};

use crate::support::{FakeStore, Harness, host_chain, options};

fn held_by_alice() -> Harness {
    Harness::with_store(
        Vec::new(),
        FakeStore::locked_by("alice@laptop (pid 42)", "apply", Duration::from_secs(192)),
    )
}

#[tokio::test]
async fn a_lock_held_by_another_run_is_refused_at_once_naming_holder_and_age() {
    let h = held_by_alice();
    let plan = h.plan(host_chain("h1"));

    let err = h.engine().apply(&plan, options()).await.unwrap_err();

    let EngineError::Locked(held) = &err else {
        panic!("expected Locked, got {err}");
    };
    assert_eq!(held.holder, "alice@laptop (pid 42)");
    assert_eq!(held.operation, "apply");
    assert!((192..=193).contains(&held.age.as_secs()), "{:?}", held.age);
    assert_eq!(
        held.plan_hash.as_deref(),
        Some(&*format!("sha256:{}", "ab".repeat(32)))
    );
    let message = err.to_string();
    assert!(
        message.starts_with(
            "the state of shop/prod (fake store for shop/prod) is locked by alice@laptop (pid 42) \
             for `apply` (plan sha256:abababababab), taken 3m 1"
        ),
        "{message}"
    );
    assert!(
        message.contains("wait for it with --lock-wait 5m"),
        "{message}"
    );
    assert!(message.contains("the lock expires in 11m 4"), "{message}");
    assert!(message.contains("(15m after it was taken)"), "{message}");
    h.assert_nothing_changed();
    assert!(h.journal.observes().is_empty());
    assert!(
        !h.reporter
            .events()
            .iter()
            .any(|e| matches!(e, Event::LockWaiting { .. })),
        "no waiting without --lock-wait"
    );
    assert_eq!(h.store.lock().map(|l| l.id), Some("other-run".to_owned()));
}

#[tokio::test]
async fn with_lock_wait_the_run_goes_on_once_the_other_run_releases_the_lock() {
    let h = held_by_alice();
    let plan = h.plan(host_chain("h1"));
    let options = ApplyOptions {
        lock_wait: Duration::from_secs(5),
        ..options()
    };
    let engine = h.engine();

    let (report, ()) = tokio::join!(engine.apply(&plan, options), async {
        tokio::time::sleep(Duration::from_millis(40)).await;
        h.store.release_other();
    });

    let report = report.unwrap();
    assert!(report.is_success(), "{report:#?}");
    let events = h.reporter.events();
    let Some(Event::LockWaiting {
        holder,
        operation,
        age,
    }) = events.first()
    else {
        panic!("the first event says the run waits: {events:#?}");
    };
    assert_eq!(
        (holder.as_str(), operation.as_str()),
        ("alice@laptop (pid 42)", "apply")
    );
    assert!(age.as_secs() >= 192);
    let acquired = events.iter().position(|e| *e == Event::LockAcquired);
    assert!(acquired.is_some(), "{events:#?}");
    assert!(h.store.attempts() > 2, "the engine polled");
    h.assert_unlocked();
}

#[tokio::test]
async fn with_lock_wait_the_run_gives_up_when_the_wait_is_over() {
    let h = held_by_alice();
    let plan = h.plan(host_chain("h1"));
    let options = ApplyOptions {
        lock_wait: Duration::from_millis(40),
        ..options()
    };

    let started = std::time::Instant::now();
    let err = h.engine().apply(&plan, options).await.unwrap_err();

    assert!(started.elapsed() >= Duration::from_millis(40));
    assert!(started.elapsed() < Duration::from_secs(2));
    let EngineError::Locked(held) = &err else {
        panic!("expected Locked, got {err}");
    };
    assert!(held.waited >= Duration::from_millis(40));
    assert!(
        err.to_string().contains("still held after waiting 4"),
        "{err}"
    );
    let waiting = h.reporter.events();
    assert_eq!(
        waiting
            .iter()
            .filter(|e| matches!(e, Event::LockWaiting { .. }))
            .count(),
        1,
        "one event per holder (and per 10 s), not one per poll: {waiting:#?}"
    );
    h.assert_nothing_changed();
}

#[tokio::test]
async fn the_lock_records_holder_operation_plan_and_ttl_and_is_released() {
    let h = Harness::new(Vec::new());
    let plan = h.plan(host_chain("h1"));

    h.engine().apply(&plan, options()).await.unwrap();

    let taken = h.store.taken();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].holder, "test@here (pid 1)");
    assert_eq!(taken[0].operation, "apply");
    assert_eq!(taken[0].plan_hash, Some(plan.hash()));
    assert_eq!(taken[0].ttl_secs, 15 * 60);
    h.assert_unlocked();
}
