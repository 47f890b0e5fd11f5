//! The image each agent runs is recorded in the state's image history (where `rollback` finds
//! the one before): from what hosts report and what agent steps deployed, saved even when
//! another step fails, forgotten with the agent.

use hermes_core::resource::IMAGE_ID_ATTR;
use hermes_core::{Kind, Resource};

use crate::support::{Harness, addr, agent, host_chain, options};

/// Host `h1` with agent `a` running image `id` (as its step reports it).
fn stack_running(id: &str) -> Vec<Resource> {
    let mut stack = host_chain("h1");
    stack.push(agent("a", "h1").attr(IMAGE_ID_ATTR, id));
    stack
}

fn history(h: &Harness) -> Vec<String> {
    h.store
        .state()
        .image_history
        .get("a")
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn each_new_image_goes_on_the_agents_history() {
    let h = Harness::new(Vec::new());
    for id in ["sha256:1", "sha256:2"] {
        let report = h
            .engine()
            .apply(&h.plan(stack_running(id)), options())
            .await
            .unwrap();
        assert!(report.is_success(), "{report:#?}");
    }
    assert_eq!(history(&h), ["sha256:1", "sha256:2"]);
    assert_eq!(h.store.state().previous_image("a"), Some("sha256:1"));
}

#[tokio::test]
async fn an_upgrade_is_recorded_even_when_another_step_fails() {
    let h = Harness::new(Vec::new());
    let first = h
        .engine()
        .apply(&h.plan(stack_running("sha256:1")), options())
        .await
        .unwrap();
    let mut wanted = stack_running("sha256:2");
    wanted[2] = wanted[2].clone().attr("source", "changed");
    wanted.push(agent("b", "h1"));
    h.ssh.fail(addr(Kind::Agent, "b"));
    let report = h.engine().apply(&h.plan(wanted), options()).await.unwrap();
    assert!(!report.is_success());
    assert_eq!(history(&h), ["sha256:1", "sha256:2"]);
    assert_eq!(
        h.store.state().last_plan_hash,
        Some(first.plan_hash),
        "a failed run must not look applied"
    );
}

#[tokio::test]
async fn a_deleted_agent_takes_its_history_along() {
    let h = Harness::new(Vec::new());
    h.engine()
        .apply(&h.plan(stack_running("sha256:1")), options())
        .await
        .unwrap();
    let mut opts = options();
    opts.allow_destroy = true;
    let report = h
        .engine()
        .apply(&h.plan(host_chain("h1")), opts)
        .await
        .unwrap();
    assert!(report.is_success(), "{report:#?}");
    assert!(h.store.state().image_history.is_empty());
}
