//! Observation asks every provider in order, each seeing what the earlier ones found, and gives
//! the digest the planner records, so a plan made from it applies.

use std::sync::Arc;

use hermes_core::seams::Provider;
use hermes_core::{Kind, ObservedResource};
use hermes_engine::{EngineError, Event, observed_digest};

use crate::support::{Harness, addr, agent, existing, host_chain, options, scope};

#[tokio::test]
async fn later_providers_see_what_earlier_ones_found() {
    let mut before = host_chain("h1");
    before.push(agent("a1", "h1"));
    let h = Harness::new(existing(&before));

    let observed = h.engine().observe(&scope()).await.unwrap();

    assert_eq!(observed.len(), 4);
    let calls = h.journal.observes();
    let names: Vec<&str> = calls.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["cloud", "ssh"]);
    assert!(calls[0].1.is_empty());
    assert_eq!(
        calls[1].1.iter().cloned().collect::<Vec<_>>(),
        [addr(Kind::Host, "h1")]
    );
    assert_eq!(h.reporter.events(), [Event::Observing]);
}

#[tokio::test]
async fn the_observed_digest_is_the_one_the_planner_records() {
    let h = Harness::new(existing(&host_chain("h1")));
    let plan = h.plan(host_chain("h1"));

    let observed = h.engine().observe(&scope()).await.unwrap();

    assert_eq!(observed_digest(&observed), plan.observed_digest);
    // And so a plan made from it applies (a no-op here, recorded in the state).
    let report = h.engine().apply(&plan, options()).await.unwrap();
    assert!(report.is_success() && report.done.is_empty());
    assert_eq!(h.store.state().last_plan_hash, Some(plan.hash()));
}

#[tokio::test]
async fn a_provider_reporting_kinds_it_does_not_manage_is_refused() {
    let h = Harness::new(Vec::new());
    h.cloud
        .put(ObservedResource::new(addr(Kind::Agent, "stray"), "c1"));
    let cloud: Arc<dyn Provider> = h.cloud.clone();

    let err = h
        .engine_with(vec![cloud])
        .observe(&scope())
        .await
        .unwrap_err();

    assert!(
        matches!(err, EngineError::ForeignObservation { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("`agent.stray`"), "{err}");
}
