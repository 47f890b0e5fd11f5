//! An agent's deployment, snapshotted: its `config.yaml` (no secret), its `.env` (every secret,
//! quoted), the `docker run` arguments of its gateway (no secret), and its egress proxy.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;

use hermes_core::{Attrs, Secret};
use hermes_render::{
    AgentSpec, Placement, RenderError, agent_config, agent_env_file, agent_run_args,
    egress_proxy_files,
};
use serde_json::json;

const CANARY: &str = "canary-7f3c1d0e9b";

fn spec(extra: serde_json::Value) -> AgentSpec {
    let mut attrs: Attrs = serde_json::from_value(json!({
        "host": "web-1",
        "image": "hermes-agent:0.19.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "model": {"provider": "openai", "model": "gpt-4.1", "api-key": "env:OPENAI_API_KEY"},
        "fallback-model": {"provider": "custom", "model": "llama", "base-url": "http://llm.internal:8000/v1"},
        "limits": {"memory": "2g", "cpus": 1.5, "pids": 256},
        "egress": ["api.openai.com", "*.example.com", "llm.internal"],
        "dashboard": {"enabled": false, "expose": false},
        "hostname": "acme.agents.example.com",
        "messaging": {"telegram": {"bot-token": "env:TG_TOKEN", "allowed-users": ["111", "222"], "home-channel": "-100"}},
        "env": {"TZ": "Europe/Berlin"},
        "secrets": {"CRM_TOKEN": "file:crm.txt"}
    }))
    .unwrap();
    if let serde_json::Value::Object(more) = extra {
        attrs.extend(more);
    }
    AgentSpec::from_attrs("acme", &attrs).unwrap()
}

fn secrets(spec: &AgentSpec) -> BTreeMap<String, Secret> {
    spec.secret_refs()
        .keys()
        .map(|var| (var.clone(), Secret::new(format!("{CANARY}-{var}"))))
        .collect()
}

fn placement() -> Placement {
    Placement {
        container: "hermes-acme".to_owned(),
        image: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned(),
        network: "hermes-acme".to_owned(),
        data_dir: "/srv/hermes/acme/data".to_owned(),
        user: "10003:10003".to_owned(),
        egress_proxy: "hermes-acme-egress:8888".to_owned(),
        labels: BTreeMap::from([
            ("hermes-infra/stack".to_owned(), "shop".to_owned()),
            ("hermes-infra/address".to_owned(), "agent.acme".to_owned()),
        ]),
    }
}

#[test]
fn the_configuration_names_keys_by_variable_only() {
    let spec = spec(json!({}));
    let config = agent_config("acme", &spec).unwrap();
    assert!(!config.contains(CANARY));
    insta::assert_snapshot!("agent-config", config);
}

#[test]
fn a_custom_endpoint_without_a_key_gets_none() {
    let spec = spec(json!({
        "model": {"provider": "custom", "model": "fake-gpt", "base-url": "http://fake-llm.hermes.test:8080/v1"}
    }));
    let config = agent_config("acme", &spec).unwrap();
    assert!(config.contains("  api_key: \"none\"\n"), "{config}");
    assert!(config.contains("  provider: custom\n"), "{config}");
}

#[test]
fn the_env_file_holds_every_secret_and_the_api_key() {
    let spec = spec(json!({}));
    let env = agent_env_file("acme", &spec, &secrets(&spec)).unwrap();
    insta::assert_snapshot!("agent-env", env.expose());
    assert_eq!(format!("{env}"), "****", "the file's text is a secret");
}

#[test]
fn a_secret_that_cannot_be_quoted_is_refused_without_showing_it() {
    let spec = spec(json!({}));
    let mut values = secrets(&spec);
    values.insert(
        "CRM_TOKEN".to_owned(),
        Secret::new(format!("{CANARY}\nINJECTED=1")),
    );
    let err = agent_env_file("acme", &spec, &values).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RenderError::Agent { .. }));
    assert!(text.contains("`CRM_TOKEN`"), "{text}");
    assert!(!text.contains(CANARY), "{text}");
}

#[test]
fn the_container_is_locked_down_and_its_arguments_hold_no_secret() {
    let spec = spec(json!({}));
    let args = agent_run_args(&spec, &placement());
    let joined = args.join("\n");
    assert!(!joined.contains(CANARY));
    assert!(!joined.contains("env:"), "no secret reference either");
    for flag in [
        "--read-only",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--user=10003:10003",
        "--env=HOME=/opt/data",
        "--memory=2g",
        "--memory-swap=2g",
        "--cpus=1.5",
        "--pids-limit=256",
        "--network=hermes-acme",
        "--restart=unless-stopped",
    ] {
        assert!(args.contains(&flag.to_owned()), "{flag}");
    }
    assert!(
        !args.iter().any(|a| a.starts_with("--publish") || a == "-p"),
        "nothing is published"
    );
    assert!(!args.iter().any(|a| a.starts_with("--cap-add")));
    insta::assert_snapshot!("agent-run-args", joined);
}

#[test]
fn a_dashboard_runs_beside_the_gateway_on_loopback_and_is_part_of_its_health() {
    let spec = spec(json!({"dashboard": {"enabled": true, "expose": false}}));
    let args = agent_run_args(&spec, &placement());
    let image = args.iter().position(|a| a.starts_with("sha256:")).unwrap();
    assert_eq!(args[image - 1], "--entrypoint=/usr/bin/tini");
    assert_eq!(args[image + 1..image + 5], ["-g", "--", "/bin/sh", "-c"]);
    let script = &args[image + 5];
    assert!(
        script.contains("hermes dashboard --host 127.0.0.1 --port 9119 --no-open --skip-build"),
        "{script}"
    );
    assert!(script.ends_with("& exec hermes gateway run"), "{script}");
    let health = args
        .iter()
        .find(|a| a.starts_with("--health-cmd="))
        .unwrap();
    assert!(health.contains("http://127.0.0.1:8642/health"), "{health}");
    assert!(
        health.contains("http://127.0.0.1:9119/api/status"),
        "{health}"
    );
    assert!(
        !args.iter().any(|a| a.starts_with("--publish") || a == "-p"),
        "nothing is published"
    );
}

#[test]
fn the_egress_proxy_allows_the_listed_hosts_only() {
    let files = egress_proxy_files("acme", &spec(json!({}))).unwrap();
    assert!(files.config.contains("FilterDefaultDeny Yes"));
    insta::assert_snapshot!(
        "egress-proxy",
        format!("{}\n==> filter\n{}", files.config, files.filter)
    );
    let bad = spec(json!({"egress": ["evil.com|.*"]}));
    assert!(egress_proxy_files("acme", &bad).is_err());
}

#[test]
fn the_egress_proxy_limits_ports_as_well_as_names() {
    let files = egress_proxy_files(
        "acme",
        &spec(json!({
            "model": {"provider": "custom", "model": "m", "base-url": "https://llm.example.net:8443/v1"},
            "fallback-model": {"provider": "custom", "model": "l", "base-url": "http://llm.internal:8000/v1"},
            "egress": ["api.openai.com", "llm.example.net", "llm.internal"],
        })),
    )
    .unwrap();
    let filter: Vec<&str> = files.filter.lines().collect();
    assert!(files.config.contains("FilterURLs On"), "{}", files.config);
    // HTTPS: every allowed name on 443, and the model's own port for the model alone.
    assert!(filter.contains(&"^api\\.openai\\.com:443$"), "{filter:?}");
    assert!(filter.contains(&"^llm\\.example\\.net:8443$"), "{filter:?}");
    let connect: Vec<&str> = files
        .config
        .lines()
        .filter(|l| l.starts_with("ConnectPort"))
        .collect();
    assert_eq!(connect, ["ConnectPort 443", "ConnectPort 8443"]);
    // Plain HTTP: only to the plain-HTTP model endpoint, on its port.
    let http: Vec<&&str> = filter.iter().filter(|l| l.contains("http://")).collect();
    assert_eq!(http, [&"^http://llm\\.internal:8000(/|$)"]);
    // Every pattern is anchored at both ends or at a path boundary.
    assert!(
        filter
            .iter()
            .all(|l| l.starts_with('^') && (l.ends_with('$') || l.ends_with("(/|$)"))),
        "{filter:?}"
    );
}

#[test]
fn the_egress_proxys_health_check_leaves_nothing_out() {
    let health = hermes_render::egress_health_command();
    assert!(health.contains("/dev/tcp/127.0.0.1/8888"), "{health}");
    assert!(health.contains(".invalid/"), "{health}");
    assert!(health.contains("403"), "{health}");
}
