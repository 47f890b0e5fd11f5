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

/// The nginx configuration of `spec_`, self-signed or with ACME.
fn conf(spec_: &ProxySpec) -> String {
    let ca = spec_.acme().then_some(CA);
    let rendered = proxy_files(spec_, ca).unwrap();
    rendered.files[0].content.clone()
}

/// Both kinds of configuration: self-signed (TLS only) and ACME (port 80 as well).
fn confs() -> [String; 2] {
    let acme = spec(json!({"tls": "acme", "acme-email": "ops@example.com"}));
    [conf(&spec(json!({}))), conf(&acme)]
}

/// The top-level blocks of `conf` that open with `head` (such as `server`), each from its
/// opening line to its closing brace, comments left out.
fn blocks<'a>(conf: &'a str, head: &str) -> Vec<Vec<&'a str>> {
    let mut found = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    let mut depth = 0_i32;
    for line in conf.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if depth == 0 && line.starts_with(head) && line.ends_with('{') {
            current = Some(Vec::new());
        }
        depth += i32::try_from(line.matches('{').count()).unwrap();
        depth -= i32::try_from(line.matches('}').count()).unwrap();
        if let Some(lines) = current.as_mut() {
            lines.push(line);
            if depth == 0 {
                found.extend(current.take());
            }
        }
    }
    found
}

/// The arguments of every `name` directive in `block` (at any depth), without the semicolon.
fn directives<'a>(block: &[&'a str], name: &str) -> Vec<&'a str> {
    block
        .iter()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|args| args.trim_end_matches(';'))
        .collect()
}

/// The hostname a server answers for, or none for a default server.
fn server_name<'a>(server: &[&'a str]) -> Option<&'a str> {
    directives(server, "server_name").first().copied()
}

fn is_tls(server: &[&str]) -> bool {
    directives(server, "listen")
        .iter()
        .any(|l| l.contains(" ssl"))
}

fn is_default(server: &[&str]) -> bool {
    directives(server, "listen")
        .iter()
        .any(|l| l.ends_with("default_server"))
}

const HOSTNAMES: [&str; 2] = ["acme.agents.example.com", "big.agents.example.com"];

#[test]
fn every_server_hides_the_nginx_version() {
    for conf in confs() {
        let servers = blocks(&conf, "server");
        assert!(servers.len() >= 3, "{conf}");
        for server in servers {
            assert_eq!(directives(&server, "server_tokens"), ["off"], "{server:#?}");
        }
    }
}

#[test]
fn a_request_for_another_name_than_its_tls_session_answers_421() {
    for conf in confs() {
        for server in blocks(&conf, "server") {
            if is_default(&server) {
                // No name of ours: 421 to everything (TLS ones refuse the handshake before).
                assert_eq!(server_name(&server), None, "{server:#?}");
                assert_eq!(directives(&server, "return"), ["421"], "{server:#?}");
                if is_tls(&server) {
                    assert_eq!(
                        directives(&server, "ssl_reject_handshake"),
                        ["on"],
                        "{server:#?}"
                    );
                }
            } else if is_tls(&server) {
                // The server was chosen by the Host header: its SNI must be that name (any
                // case), checked at server level, before any location.
                let name = server_name(&server).unwrap();
                let regex = format!("^{}$", name.replace('.', "\\."));
                let check = [
                    format!("if ($ssl_server_name !~* \"{regex}\") {{"),
                    "return 421;".to_owned(),
                    "}".to_owned(),
                ];
                let at = server.windows(3).position(|w| w == check);
                let location = server.iter().position(|l| l.starts_with("location"));
                assert!(at.is_some() && at < location, "{check:?} in {server:#?}");
                assert!(HOSTNAMES.contains(&name), "{name}");
            } else {
                // Plain HTTP for ACME: only our hostnames, redirected or challenged.
                let names = server_name(&server).unwrap();
                assert_eq!(names, HOSTNAMES.join(" "), "{server:#?}");
            }
        }
        // One default server on each port nginx listens on.
        let mut ports: Vec<&str> = blocks(&conf, "server")
            .iter()
            .filter(|s| is_default(s))
            .map(|s| directives(s, "listen")[0].split(' ').next().unwrap())
            .collect();
        ports.sort_unstable();
        let expected: &[&str] = if conf.contains("listen 80") {
            &["443", "80"]
        } else {
            &["443"]
        };
        assert_eq!(ports, expected, "{conf}");
    }
}

#[test]
fn responses_carry_exactly_one_strict_transport_security_header() {
    for conf in confs() {
        let agents: Vec<_> = blocks(&conf, "server")
            .into_iter()
            .filter(|s| server_name(s).is_some() && is_tls(s))
            .collect();
        assert_eq!(agents.len(), HOSTNAMES.len(), "{conf}");
        for server in agents {
            // Ours, on every answer (errors too) ...
            let hsts: Vec<_> = directives(&server, "add_header")
                .into_iter()
                .filter(|h| h.starts_with("Strict-Transport-Security "))
                .collect();
            assert_eq!(
                hsts,
                [r#"Strict-Transport-Security "max-age=31536000" always"#],
                "{server:#?}"
            );
            // ... and never the gateway's beside it; no location adds headers of its own (which
            // would drop the server's).
            assert_eq!(
                directives(&server, "proxy_hide_header"),
                ["Strict-Transport-Security"],
                "{server:#?}"
            );
            assert_eq!(directives(&server, "add_header").len(), 1, "{server:#?}");
        }
        assert_eq!(conf.matches("Strict-Transport-Security \"").count(), 2);
    }
}

#[test]
fn tls_1_2_offers_ecdhe_with_aead_ciphers_only() {
    for conf in confs() {
        for server in blocks(&conf, "server").into_iter().filter(|s| is_tls(s)) {
            assert_eq!(
                directives(&server, "ssl_protocols"),
                ["TLSv1.2 TLSv1.3"],
                "{server:#?}"
            );
            let ciphers = directives(&server, "ssl_ciphers");
            assert_eq!(ciphers.len(), 1, "{server:#?}");
            let suites: Vec<&str> = ciphers[0].split(':').collect();
            assert_eq!(suites.len(), 6, "{suites:?}");
            for suite in suites {
                assert!(suite.starts_with("ECDHE-"), "{suite}: no ECDHE");
                assert!(
                    suite.contains("-GCM-") || suite.contains("-CHACHA20-POLY1305"),
                    "{suite}: no AEAD"
                );
                for weak in ["CBC", "CCM", "ARIA", "CAMELLIA", "DHE-", "!", "+", "ALL"] {
                    assert!(
                        !suite.trim_start_matches("ECDHE-").contains(weak),
                        "{suite}: {weak}"
                    );
                }
                assert!(!suite.ends_with("-SHA"), "{suite}: SHA-1");
            }
            // TLS 1.3 keeps OpenSSL's suites.
            assert!(directives(&server, "ssl_conf_command").is_empty());
        }
    }
}

#[test]
fn each_hostname_has_a_rate_limit_of_its_own_per_client_address() {
    for conf in confs() {
        let zones = directives(&conf.lines().collect::<Vec<_>>(), "limit_req_zone");
        let expected: Vec<String> = HOSTNAMES
            .iter()
            .map(|h| format!("$binary_remote_addr zone=hermes_{h}:1m rate=10r/s"))
            .collect();
        assert_eq!(zones, expected);
        for server in blocks(&conf, "server") {
            let Some(name) = server_name(&server).filter(|_| is_tls(&server)) else {
                assert!(directives(&server, "limit_req").is_empty(), "{server:#?}");
                continue;
            };
            assert_eq!(
                directives(&server, "limit_req"),
                [format!("zone=hermes_{name} burst=20 nodelay")],
                "{server:#?}"
            );
            assert_eq!(directives(&server, "limit_req_status"), ["429"]);
        }
    }
}
