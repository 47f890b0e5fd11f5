//! The committed JSON Schema (`stacks/stack.schema.json`, what editors point at) is exactly what
//! the format's types produce. Regenerate it with
//! `HERMES_INFRA_UPDATE_SCHEMA=1 cargo test -p hermes-stack --test schema`.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::Path;

#[test]
fn committed_schema_matches_the_format() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stacks/stack.schema.json");
    let fresh = serde_json::to_string_pretty(&hermes_stack::json_schema()).unwrap() + "\n";
    if std::env::var_os("HERMES_INFRA_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "stacks/stack.schema.json is out of date; run HERMES_INFRA_UPDATE_SCHEMA=1 cargo test -p hermes-stack --test schema"
    );
}

#[test]
fn the_schema_describes_every_top_level_key_and_refuses_others() {
    let schema = hermes_stack::json_schema();
    let props = schema["properties"].as_object().unwrap();
    for key in [
        "version",
        "name",
        "environments",
        "provider",
        "ssh",
        "hosts",
        "hardening",
        "image",
        "registry",
        "aws",
        "bedrock",
        "proxy",
        "state",
        "agents",
        "overlay",
    ] {
        assert!(props.contains_key(key), "schema lacks `{key}`");
    }
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    assert_eq!(schema["required"], serde_json::json!(["version", "name"]));
}
