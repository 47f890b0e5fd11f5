//! The planner's rules, one by one, on hand-made resources.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use hermes_core::{Address, Kind, ObservedResource, Resource, Scope};
use hermes_plan::{Action, Desired, plan};

fn desired(resources: Vec<Resource>) -> Desired {
    Desired {
        scope: Scope::new("shop", "prod"),
        stack_digest: "sha256:stack".into(),
        resources,
    }
}

fn host(name: &str, size: &str) -> Resource {
    Resource::new(Address::new(Kind::Host, name))
        .fixed_attr("size", size)
        .attr("role", "agents")
}

fn agent(name: &str, on: &str, memory: &str) -> Resource {
    Resource::new(Address::new(Kind::Agent, name))
        .fixed_attr("host", on)
        .attr("memory", memory)
        .after(Address::new(Kind::Host, on))
}

fn seen(r: &Resource) -> ObservedResource {
    let mut o = ObservedResource::new(r.address.clone(), format!("id-{}", r.address.name));
    o.attrs = r.attrs.clone();
    o
}

fn actions(p: &hermes_plan::Plan) -> Vec<(String, Action)> {
    p.changes
        .iter()
        .map(|c| (c.address.to_string(), c.action))
        .collect()
}

#[test]
fn nothing_observed_means_everything_is_created_in_creation_order() {
    let p = plan(
        &desired(vec![agent("a", "h1", "1g"), host("h1", "small")]),
        &[],
    );
    assert_eq!(
        actions(&p),
        [
            ("host.h1".into(), Action::Create),
            ("agent.a".into(), Action::Create)
        ]
    );
    assert_eq!(p.summary.create, 2);
    assert!(p.changes.iter().all(|c| c.reason == "new in the stack"));
}

#[test]
fn everything_as_wanted_means_an_empty_plan() {
    let d = vec![host("h1", "small"), agent("a", "h1", "1g")];
    let observed: Vec<_> = d.iter().map(seen).collect();
    let p = plan(&desired(d), &observed);
    assert!(p.is_empty());
    assert_eq!(p.summary.unchanged, 2);
}

#[test]
fn a_changed_mutable_attribute_is_an_update_with_its_reason_and_diff() {
    let observed = vec![seen(&host("h1", "small")), seen(&agent("a", "h1", "1g"))];
    let p = plan(
        &desired(vec![host("h1", "small"), agent("a", "h1", "2g")]),
        &observed,
    );
    assert_eq!(actions(&p), [("agent.a".into(), Action::Update)]);
    let c = &p.changes[0];
    assert_eq!(c.reason, "`memory` changed");
    assert_eq!(c.diffs[0].before, Some("1g".into()));
    assert_eq!(c.diffs[0].after, Some("2g".into()));
    assert!(!c.diffs[0].forces_replacement);
}

#[test]
fn a_changed_fixed_attribute_replaces_and_takes_dependents_along() {
    let observed = vec![
        seen(&host("h1", "small")),
        seen(&agent("a", "h1", "1g")),
        seen(&agent("b", "h1", "1g")),
    ];
    let p = plan(
        &desired(vec![
            host("h1", "large"),
            agent("a", "h1", "1g"),
            agent("b", "h1", "4g"),
        ]),
        &observed,
    );
    assert_eq!(
        actions(&p),
        [
            ("host.h1".into(), Action::Replace),
            ("agent.a".into(), Action::Replace),
            ("agent.b".into(), Action::Replace)
        ]
    );
    assert_eq!(p.changes[0].reason, "`size` cannot change in place");
    assert!(p.changes[0].diffs[0].forces_replacement);
    assert!(
        p.changes[1]
            .reason
            .contains("replaced together with `host.h1`"),
        "{}",
        p.changes[1].reason
    );
    // b also had its own change: the diff is kept so the operator sees it.
    assert_eq!(p.changes[2].diffs.len(), 1);
    assert_eq!(p.summary.replace, 3);
    assert_eq!(p.summary.unchanged, 0);
}

#[test]
fn resources_no_longer_in_the_stack_are_deleted_and_listed_first() {
    let observed = vec![
        seen(&host("h1", "small")),
        seen(&host("old", "small")),
        seen(&agent("gone", "old", "1g")),
    ];
    let p = plan(
        &desired(vec![host("h1", "small"), agent("new", "h1", "1g")]),
        &observed,
    );
    assert_eq!(
        actions(&p),
        [
            ("host.old".into(), Action::Delete),
            ("agent.gone".into(), Action::Delete),
            ("agent.new".into(), Action::Create)
        ]
    );
    assert_eq!(p.destructive().count(), 2);
    assert_eq!(p.changes[0].reason, "no longer in the stack");
}

#[test]
fn attributes_a_provider_cannot_read_are_not_compared() {
    let mut o = seen(&agent("a", "h1", "1g"));
    o.attrs.remove("memory");
    let p = plan(&desired(vec![agent("a", "h1", "8g")]), &[o]);
    assert!(p.is_empty(), "{:?}", actions(&p));
}

#[test]
fn drift_is_repaired_by_an_update() {
    let mut o = seen(&host("h1", "small"));
    o.drift.insert(
        "/etc/ssh/sshd_config.d/00-hermes.conf".into(),
        "edited on the host".into(),
    );
    let p = plan(&desired(vec![host("h1", "small")]), &[o]);
    assert_eq!(actions(&p), [("host.h1".into(), Action::Update)]);
    assert_eq!(
        p.changes[0].reason,
        "drift: /etc/ssh/sshd_config.d/00-hermes.conf (edited on the host)"
    );
}

#[test]
fn plans_are_deterministic_and_observation_order_does_not_matter() {
    let d = desired(vec![
        host("h1", "small"),
        host("h2", "small"),
        agent("a", "h1", "2g"),
    ]);
    let o1 = vec![seen(&host("h1", "small")), seen(&agent("a", "h1", "1g"))];
    let o2 = vec![o1[1].clone(), o1[0].clone()];
    let (p1, p2) = (plan(&d, &o1), plan(&d, &o2));
    assert_eq!(p1, p2);
    assert_eq!(p1.hash(), p2.hash());
    assert_ne!(p1.hash(), plan(&d, &[]).hash());
}

#[test]
fn a_saved_plan_round_trips_through_json() {
    let p = plan(
        &desired(vec![host("h1", "small"), agent("a", "h1", "1g")]),
        &[seen(&host("h1", "medium"))],
    );
    let text = serde_json::to_string_pretty(&p).unwrap();
    let back: hermes_plan::Plan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.hash(), p.hash());
}

#[test]
fn targeting_keeps_what_is_named_and_what_it_needs() {
    let hardening = Resource::new(Address::new(Kind::HostHardening, "h1"))
        .attr("x", 1)
        .after(Address::new(Kind::Host, "h1"));
    let p = plan(
        &desired(vec![
            host("h1", "small"),
            hardening,
            agent("a", "h1", "1g"),
            host("h2", "small"),
        ]),
        &[],
    );
    let hosts = p.targeting(&["host".parse().unwrap()]);
    assert_eq!(
        actions(&hosts),
        [
            ("host.h1".into(), Action::Create),
            ("host.h2".into(), Action::Create)
        ]
    );
    assert_eq!(hosts.summary.create, 2);
    assert_eq!(hosts.observed_digest, p.observed_digest);
    let one_agent = p.targeting(&["agent.a".parse().unwrap()]);
    assert_eq!(
        actions(&one_agent),
        [
            ("host.h1".into(), Action::Create),
            ("agent.a".into(), Action::Create)
        ]
    );
    assert_eq!(p.targeting(&[]), p);
    assert!(
        "castle"
            .parse::<hermes_plan::Target>()
            .unwrap_err()
            .contains("neither an address")
    );
}
