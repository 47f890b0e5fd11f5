//! The example stacks planned against an empty world: the text form is snapshotted, and the
//! plans hold secret references, never values.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::Path;

fn load(name: &str, env: &str) -> hermes_stack::LoadedStack {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../stacks")
        .join(name);
    hermes_stack::load(&path, Some(env)).unwrap()
}

#[test]
fn example_stacks_plan_from_nothing() {
    for (file, env) in [
        ("local.toml", "dev"),
        ("hetzner-solo.toml", "prod"),
        ("aws-bedrock.toml", "staging"),
        ("aws-bedrock.toml", "prod"),
        ("multi-tenant.toml", "prod"),
    ] {
        let stack = load(file, env);
        let desired = hermes_plan::desired(&stack);
        let plan = hermes_plan::plan(&desired, &[]);
        assert_eq!(plan.summary.create, desired.resources.len());
        let text = hermes_plan::text::render(&plan, false);
        // The templates' digest (and so the plan's hash) moves with every template edit; the
        // rendered files have snapshot tests of their own in hermes-render.
        insta::with_settings!({filters => vec![
            (r#"templates = "sha256:[0-9a-f]{64}""#, r#"templates = "[digest of the templates]""#),
            (r"\(plan [0-9a-f]{12}\)", "(plan [hash])"),
        ]}, {
            insta::assert_snapshot!(format!("{file}-{env}"), text);
        });
    }
}

#[test]
fn every_dependency_points_at_a_resource_of_the_plan() {
    let stack = load("multi-tenant.toml", "prod");
    let desired = hermes_plan::desired(&stack);
    let addresses: Vec<_> = desired.resources.iter().map(|r| &r.address).collect();
    for r in &desired.resources {
        for d in &r.depends_on {
            assert!(
                addresses.contains(&d),
                "{} depends on missing {d}",
                r.address
            );
        }
    }
}

#[test]
fn plans_carry_secret_references_not_values() {
    let stack = load("hetzner-solo.toml", "prod");
    let plan = hermes_plan::plan(&hermes_plan::desired(&stack), &[]);
    let json = serde_json::to_string(&plan).unwrap();
    assert!(json.contains("env:TELEGRAM_BOT_TOKEN"));
    assert!(json.contains("env:OPENAI_API_KEY"));
}

#[test]
fn agents_reach_their_model_and_messaging_hosts_by_default() {
    let stack = load("hetzner-solo.toml", "prod");
    let desired = hermes_plan::desired(&stack);
    let agent = desired
        .resources
        .iter()
        .find(|r| r.address.to_string() == "agent.me")
        .unwrap();
    assert_eq!(
        agent.attrs["egress"],
        serde_json::json!(["api.anthropic.com", "api.openai.com", "api.telegram.org"])
    );
}

#[test]
fn a_local_vm_host_forwards_the_fresh_and_the_stack_ssh_port_and_a_container_forwards_none() {
    let source = r#"version = 1
name = "vms"
[provider.local]
[ssh]
port = 2222
[hosts.v]
kind = "vm"
[hosts.c]
"#;
    let stack = hermes_stack::load_str(Path::new("vms.toml"), source, None).unwrap();
    let desired = hermes_plan::desired(&stack);
    let host = |name: &str| {
        desired
            .resources
            .iter()
            .find(|r| r.address.to_string() == format!("host.{name}"))
            .unwrap_or_else(|| panic!("no host {name}: {:?}", desired.resources))
    };
    assert_eq!(host("v").attrs["forward-ports"], "22 2222");
    assert!(
        host("v").replace_on_change.contains("forward-ports"),
        "a VM's forwards are set at its creation"
    );
    assert!(!host("c").attrs.contains_key("forward-ports"));
}
