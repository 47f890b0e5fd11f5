//! What the engine refuses before doing anything: destruction without `--allow-destroy` and
//! changes no provider handles (before the lock is even taken), and a world that moved since the
//! plan was made (after observing, before any step; the lock is released).

use std::sync::Arc;

use hermes_core::seams::Provider;
use hermes_core::{Kind, ObservedResource};
use hermes_engine::{ApplyOptions, EngineError};

use crate::support::{Harness, addr, agent, existing, host_chain, options};

#[tokio::test]
async fn destruction_is_refused_without_allow_destroy_and_nothing_is_touched() {
    let mut before = host_chain("h1");
    before.push(agent("a1", "h1"));
    let h = Harness::new(existing(&before));
    let mut after = host_chain("h1");
    after[2] = after[2].clone().fixed_attr("source", "upstream");
    let plan = h.plan(after);

    let err = h.engine().apply(&plan, options()).await.unwrap_err();

    assert!(
        matches!(err, EngineError::DestroyNotAllowed { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the plan for shop/prod destroys 2 resources: `docker-engine.h1` (replace), `agent.a1` \
         (delete); nothing was changed. Review the plan, then apply it with --allow-destroy"
    );
    h.assert_nothing_changed();
    assert!(h.journal.observes().is_empty());
    assert_eq!(h.store.attempts(), 0, "the lock was never taken");
    assert!(h.reporter.events().is_empty());
}

#[tokio::test]
async fn a_change_no_provider_handles_is_refused_before_anything_happens() {
    let h = Harness::new(Vec::new());
    let mut wanted = host_chain("h1");
    wanted.push(agent("a1", "h1"));
    let plan = h.plan(wanted);
    let cloud: Arc<dyn Provider> = h.cloud.clone();

    let err = h
        .engine_with(vec![cloud])
        .apply(&plan, options())
        .await
        .unwrap_err();

    let message = err.to_string();
    assert!(
        message.starts_with("nothing in this run can apply `host-hardening.h1`: no configured provider manages `host-hardening`"),
        "{message}"
    );
    assert!(
        message.contains("`ssh-key`"),
        "lists what is handled: {message}"
    );
    h.assert_nothing_changed();
    assert_eq!(h.store.attempts(), 0);
}

#[tokio::test]
async fn a_plan_made_before_the_world_moved_is_refused_and_the_lock_released() {
    let h = Harness::new(existing(&host_chain("h1")));
    let mut wanted = host_chain("h1");
    wanted.push(agent("a1", "h1"));
    let plan = h.plan(wanted);
    // Someone else creates a host after the plan was made.
    h.cloud
        .put(ObservedResource::new(addr(Kind::Host, "intruder"), "x"));

    let err = h.engine().apply(&plan, options()).await.unwrap_err();

    assert!(matches!(err, EngineError::WorldMoved { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("what the plan saw has changed since it was made"),
        "{err}"
    );
    assert!(err.to_string().ends_with("; make a new plan"), "{err}");
    assert_eq!(h.journal.observes().len(), 2, "it looked");
    h.assert_nothing_changed();
    assert_eq!(h.store.attempts(), 1);
    h.assert_unlocked();
}

#[tokio::test]
async fn a_plan_in_another_format_is_refused() {
    let h = Harness::new(Vec::new());
    let mut plan = h.plan(host_chain("h1"));
    plan.format += 1;

    let err = h
        .engine()
        .apply(
            &plan,
            ApplyOptions {
                allow_destroy: true,
                ..options()
            },
        )
        .await
        .unwrap_err();

    assert!(
        err.to_string()
            .contains("make a new plan with this version"),
        "{err}"
    );
    assert_eq!(h.store.attempts(), 0);
}

#[tokio::test]
async fn an_observation_failure_stops_the_run_and_releases_the_lock() {
    let h = Harness::new(Vec::new());
    let plan = h.plan(host_chain("h1"));
    h.ssh.fail_observe(hermes_core::seams::ProviderError::Auth(
        "the admin key was refused".to_owned(),
    ));

    let err = h.engine().apply(&plan, options()).await.unwrap_err();

    assert_eq!(
        err.to_string(),
        "provider `ssh` could not observe shop/prod: not authorized: the admin key was refused"
    );
    h.assert_nothing_changed();
    h.assert_unlocked();
}
