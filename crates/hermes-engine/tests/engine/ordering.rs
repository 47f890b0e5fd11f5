//! Steps run in dependency order: creations after what they depend on, destructions before what
//! they depend on, replacements destroyed in the destroy phase and created in the create phase,
//! and never more steps at once than the concurrency bound.

use std::sync::Arc;
use std::time::Duration;

use hermes_core::Kind;
use hermes_engine::{ApplyOptions, Engine, StepAction};
use hermes_plan::Plan;

use crate::support::{Harness, addr, agent, existing, host_chain, options};

/// How long each step takes in ordering tests: long enough for steps to overlap.
const STEP: Duration = Duration::from_millis(5);

#[tokio::test]
async fn creations_follow_dependencies_host_hardening_docker_agent() {
    let h = Harness::new(Vec::new());
    let mut wanted = host_chain("h1");
    wanted.extend(host_chain("h2"));
    wanted.push(agent("a1", "h1"));
    wanted.push(agent("a2", "h2"));
    h.slow(&wanted, STEP);
    let plan = h.plan(wanted);

    let report = h.engine().apply(&plan, options()).await.unwrap();

    assert!(report.is_success(), "{report:#?}");
    assert_eq!(report.done.len(), 8);
    for host in ["h1", "h2"] {
        let chain = [
            addr(Kind::Host, host),
            addr(Kind::HostHardening, host),
            addr(Kind::DockerEngine, host),
        ];
        h.journal
            .assert_before(("create", &chain[0]), ("create", &chain[1]));
        h.journal
            .assert_before(("create", &chain[1]), ("create", &chain[2]));
    }
    h.journal.assert_before(
        ("create", &addr(Kind::DockerEngine, "h1")),
        ("create", &addr(Kind::Agent, "a1")),
    );
    h.journal.assert_before(
        ("create", &addr(Kind::DockerEngine, "h2")),
        ("create", &addr(Kind::Agent, "a2")),
    );
    // Each step goes to the provider of its kind, and sees what earlier steps created: the
    // agent finds its host in the world.
    let agent_call = h.journal.call("create", &addr(Kind::Agent, "a1"));
    assert_eq!(agent_call.provider, "ssh");
    assert_eq!(
        h.journal.call("create", &addr(Kind::Host, "h1")).provider,
        "cloud"
    );
    assert!(agent_call.world.contains(&addr(Kind::Host, "h1")));
    // The state records the plan that was applied.
    let state = h.store.state();
    assert_eq!(state.serial, 1);
    assert_eq!(state.last_plan_hash, Some(plan.hash()));
    assert_eq!(report.state_serial, Some(1));
    h.assert_unlocked();
}

#[tokio::test]
async fn deletions_run_in_reverse_order() {
    let mut before = host_chain("h1");
    before.push(agent("a1", "h1"));
    let mut world = existing(&before);
    world.push(hermes_core::ObservedResource::new(
        addr(Kind::SshKey, "admin"),
        "key-1",
    ));
    let h = Harness::new(world);
    h.slow(&before, STEP);
    let plan = h.plan(Vec::new());

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

    assert!(report.is_success(), "{report:#?}");
    assert!(report.done.iter().all(|d| d.action == StepAction::Delete));
    let agent = addr(Kind::Agent, "a1");
    let hardening = addr(Kind::HostHardening, "h1");
    let docker = addr(Kind::DockerEngine, "h1");
    let host = addr(Kind::Host, "h1");
    let key = addr(Kind::SshKey, "admin");
    h.journal
        .assert_before(("delete", &agent), ("delete", &docker));
    h.journal
        .assert_before(("delete", &agent), ("delete", &hardening));
    h.journal
        .assert_before(("delete", &docker), ("delete", &host));
    h.journal
        .assert_before(("delete", &hardening), ("delete", &host));
    h.journal.assert_before(("delete", &host), ("delete", &key));
    assert!(h.world().is_empty());
}

#[tokio::test]
async fn replacement_destroys_in_the_destroy_phase_then_creates_in_the_create_phase() {
    let mut before = host_chain("h1");
    before.push(agent("a1", "h1"));
    let h = Harness::new(existing(&before));
    h.slow(&before, STEP);
    let mut after = before.clone();
    after[0] = after[0].clone().fixed_attr("size", "large");
    let plan = h.plan(after);
    assert_eq!(
        plan.summary.replace, 4,
        "the host takes its setup and agent along"
    );

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

    assert!(report.is_success(), "{report:#?}");
    let calls = h.journal.calls();
    let last_delete = calls
        .iter()
        .filter(|c| c.op == "delete")
        .map(|c| c.ended)
        .max();
    let first_create = calls
        .iter()
        .filter(|c| c.op == "create")
        .map(|c| c.began)
        .min();
    assert!(last_delete < first_create, "{calls:#?}");
    let chain: Vec<_> = before.iter().map(|r| r.address.clone()).collect();
    for pair in chain.windows(2) {
        h.journal
            .assert_before(("delete", &pair[1]), ("delete", &pair[0]));
        h.journal
            .assert_before(("create", &pair[0]), ("create", &pair[1]));
    }
    let destroyed = report
        .done
        .iter()
        .filter(|d| d.action == StepAction::ReplaceDestroy);
    let created = report
        .done
        .iter()
        .filter(|d| d.action == StepAction::ReplaceCreate);
    assert_eq!((destroyed.count(), created.count()), (4, 4));
    // The agent created in the create phase was given a world without the destroyed one.
    let agent_create = h.journal.call("create", &addr(Kind::Agent, "a1"));
    assert!(!agent_create.world.contains(&addr(Kind::Agent, "a1")));
    assert!(agent_create.world.contains(&addr(Kind::Host, "h1")));
}

#[tokio::test]
async fn an_agent_moving_off_a_deleted_host_is_destroyed_before_the_host() {
    let old = vec![
        hermes_core::Resource::new(addr(Kind::Host, "h1")),
        hermes_core::Resource::new(addr(Kind::Host, "h2")),
        hermes_core::Resource::new(addr(Kind::Agent, "a1"))
            .fixed_attr("host", "h2")
            .after(addr(Kind::Host, "h2")),
    ];
    let h = Harness::new(existing(&old));
    h.slow(&old, STEP);
    let plan = h.plan(vec![
        old[0].clone(),
        hermes_core::Resource::new(addr(Kind::Agent, "a1"))
            .fixed_attr("host", "h1")
            .after(addr(Kind::Host, "h1")),
    ]);

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

    assert!(report.is_success(), "{report:#?}");
    // The deleted host's dependencies are unknown, so layers order it after the agent.
    h.journal.assert_before(
        ("delete", &addr(Kind::Agent, "a1")),
        ("delete", &addr(Kind::Host, "h2")),
    );
    h.journal.assert_before(
        ("delete", &addr(Kind::Host, "h2")),
        ("create", &addr(Kind::Agent, "a1")),
    );
}

fn six_hosts(h: &Harness) -> Plan {
    let hosts: Vec<_> = (1..=6)
        .map(|i| hermes_core::Resource::new(addr(Kind::Host, &format!("h{i}"))))
        .collect();
    for host in &hosts {
        h.cloud
            .delay(host.address.clone(), Duration::from_millis(15));
    }
    h.plan(hosts)
}

#[tokio::test]
async fn no_more_steps_run_at_once_than_the_concurrency_bound() {
    let mut h = Harness::new(Vec::new());
    h.concurrency = 2;
    let plan = six_hosts(&h);

    let report = h.engine().apply(&plan, options()).await.unwrap();

    assert_eq!(report.done.len(), 6);
    assert_eq!(h.cloud.max_in_flight(), 2, "bounded at 2, and using both");
}

#[tokio::test]
async fn independent_steps_run_concurrently_by_default() {
    let h = Harness::new(Vec::new());
    let plan = six_hosts(&h);

    h.engine().apply(&plan, options()).await.unwrap();

    assert_eq!(h.cloud.max_in_flight(), 6);
}

#[tokio::test]
async fn apply_can_run_on_a_spawned_task() {
    let h = Harness::new(Vec::new());
    let engine: Arc<Engine> = Arc::new(h.engine());
    let plan = h.plan(host_chain("h1"));

    let report = tokio::spawn(async move { engine.apply(&plan, options()).await })
        .await
        .unwrap()
        .unwrap();

    assert!(report.is_success());
}
