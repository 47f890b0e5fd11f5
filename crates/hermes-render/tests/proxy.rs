//! The reverse proxy's files, snapshotted: one TLS server per agent hostname forwarding to that
//! agent's upstream only, unknown names refused at the handshake, the stack's sources allowed,
//! and the certificate script of the host's local CA.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::fmt::Write as _;

use hermes_core::Attrs;
use hermes_render::{ProxySpec, Reload, proxy_files};
use serde_json::json;

fn spec(extra: serde_json::Value) -> ProxySpec {
    let mut attrs: Attrs = serde_json::from_value(json!({
        "tls": "self-signed",
        "listen": "public",
        "port": 443,
        "allow-from": ["203.0.113.0/24"],
        "routes": [
            {"agent": "acme", "hostname": "acme.agents.example.com"},
            {"agent": "big-co", "hostname": "big.agents.example.com"}
        ],
        "templates": "sha256:ignored"
    }))
    .unwrap();
    if let serde_json::Value::Object(more) = extra {
        attrs.extend(more);
    }
    ProxySpec::from_attrs(&attrs).unwrap()
}

#[test]
fn each_hostname_forwards_to_its_agent_only() {
    let rendered = proxy_files(&spec(json!({}))).unwrap();
    let mut text = String::new();
    for file in &rendered.files {
        let _ = writeln!(
            text,
            "==> {} (mode {:o}, reload {})\n{}",
            file.path,
            file.mode,
            file.reload.as_str(),
            file.content
        );
    }
    let conf = &rendered.files[0];
    assert_eq!(conf.reload, Reload::Nginx);
    assert!(conf.content.contains("ssl_reject_handshake on;"));
    assert!(
        conf.content
            .contains("proxy_pass http://hermes_agent_big_co;")
    );
    insta::assert_snapshot!("proxy", text);
}

#[test]
fn what_is_not_built_is_refused_by_name() {
    for (key, value) in [("tls", "acme"), ("tls", "off"), ("listen", "private")] {
        let err = proxy_files(&spec(json!({ key: value })))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not built yet"), "{err}");
    }
    let bad = spec(json!({"routes": [{"agent": "a", "hostname": "x; rm -rf /"}]}));
    assert!(proxy_files(&bad).is_err());
}
