//! The reverse proxy's files, snapshotted: one TLS server per agent hostname forwarding to that
//! agent's upstream only, unknown names refused at the handshake, the stack's sources allowed,
//! the certificate script of the host's local CA, and with ACME: port 80 for the challenges,
//! certbot's script and its trust of a private directory's CA.
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

fn listing(rendered: &hermes_render::Rendered) -> String {
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
    text
}

#[test]
fn each_hostname_forwards_to_its_agent_only() {
    let rendered = proxy_files(&spec(json!({})), None).unwrap();
    let text = listing(&rendered);
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
    for (key, value) in [("tls", "off"), ("listen", "private")] {
        let err = proxy_files(&spec(json!({ key: value })), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not built yet"), "{err}");
    }
    let bad = spec(json!({"routes": [{"agent": "a", "hostname": "x; rm -rf /"}]}));
    assert!(proxy_files(&bad, None).is_err());
}

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

#[test]
fn with_acme_port_80_serves_challenges_and_certbot_trusts_a_private_directory() {
    let acme = spec(json!({
        "tls": "acme",
        "acme-email": "ops@example.com",
        "acme-directory": "https://ca.internal:14000/dir",
        "acme-ca": "file:ca.pem"
    }));
    assert_eq!(acme.extra_packages(), ["certbot"]);
    let rendered = proxy_files(&acme, Some(CA)).unwrap();
    let text = listing(&rendered);
    assert!(
        text.contains(
            "    listen 80;\n    server_name acme.agents.example.com big.agents.example.com;"
        ),
        "{text}"
    );
    assert!(
        text.contains("--server 'https://ca.internal:14000/dir'"),
        "{text}"
    );
    assert!(text.contains("Environment=REQUESTS_CA_BUNDLE="), "{text}");
    insta::assert_snapshot!("proxy-acme", text);

    // Let's Encrypt by default, and no drop-in without a CA of its own.
    let public = spec(json!({"tls": "acme", "acme-email": "ops@example.com"}));
    let text = listing(&proxy_files(&public, None).unwrap());
    assert!(text.contains(hermes_render::LETS_ENCRYPT), "{text}");
    assert!(!text.contains("REQUESTS_CA_BUNDLE"), "{text}");

    // Nothing that could break out of the script's quotes, and a CA that is one.
    for bad in [
        json!({"tls": "acme", "acme-email": "o'ps@example.com"}),
        json!({"tls": "acme"}),
        json!({"tls": "acme", "acme-email": "ops@example.com", "acme-directory": "http://x/dir"}),
    ] {
        assert!(proxy_files(&spec(bad.clone()), None).is_err(), "{bad}");
    }
    assert!(proxy_files(&acme, Some("not a certificate")).is_err());
}
