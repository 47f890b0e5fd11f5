//! The real Hermes Agent, built by `hermes-infra image build` from Debian packages and PyPI, runs
//! as hermes-infra renders it (its `config.yaml`, its 0600 `.env`, its `docker run` arguments,
//! its egress proxy) on a testbed: the agent alone on an internal network, its egress proxy on
//! that network and on the egress network, where the fake LLM and the forbidden server live.
//!
//! It shows: the gateway becomes healthy; no key gets 401; its key gets the fake LLM's answer,
//! which reached the fake LLM through the proxy as a streaming completion; from inside the agent
//! the fake LLM answers through the proxy, the forbidden server gets the proxy's 403, and both
//! are unreachable directly; the forbidden server saw nothing; the key is nowhere in `docker
//! inspect`; the data directory's state is owned by UID 10000; and the CIS Docker section 5
//! checks find nothing to warn about.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{PermissionsExt as _, chown};
use std::path::Path;
use std::time::{Duration, Instant};

use hermes_audit::{AuditContext, Status, cis_container_checks};
use hermes_core::{Kind, Secret};
use hermes_render::{AgentSpec, EGRESS_PROXY_PORT, HERMES_UID, Placement};
use hermes_testbed::{FakeLlmOptions, NetworkOptions, StackDir, Testbed, http, run_binary};
use serde_json::{Value, json};

const BUILD_TIMEOUT: Duration = Duration::from_mins(20);
const DOCKER_TIMEOUT: Duration = Duration::from_mins(3);
/// How long the gateway may take to report healthy (about 10 s here; the health check's start
/// period is 60 s).
const HEALTHY_WITHIN: Duration = Duration::from_mins(3);
const ANSWER: &str = "Hello from the fake LLM, through the egress proxy.";

const STACK: &str = r#"version = 1
name = "{{stack}}"
environments = ["dev"]
[provider.local]
[hosts.h]
[agents.acme]
host = "h"
hostname = "acme.hermes.localhost"
model = { provider = "custom", model = "fake-gpt", base-url = "http://fake-llm.hermes.test:8080/v1" }
limits = { memory = "1g", cpus = 1.0, pids = 256 }
env = { TZ = "Europe/Berlin" }
"#;

/// `docker ARGS` to its end, bounded; trimmed standard output, or the failure.
async fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        DOCKER_TIMEOUT,
        tokio::process::Command::new("docker")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    anyhow::ensure!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `docker exec` in the agent: exit code and standard output.
async fn in_agent(container: &str, command: &[&str]) -> (i32, String) {
    let mut args = vec!["exec", container];
    args.extend(command);
    let out = tokio::time::timeout(
        DOCKER_TIMEOUT,
        tokio::process::Command::new("docker")
            .args(&args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

/// The agent's spec as the planner writes it for the stack.
fn planned_spec(dir: &StackDir) -> AgentSpec {
    let stack = hermes_stack::load(&dir.stack_path(), Some("dev")).unwrap();
    let desired = hermes_plan::desired(&stack);
    let agent = desired
        .resources
        .iter()
        .find(|r| r.address.kind == Kind::Agent)
        .unwrap();
    AgentSpec::from_attrs("acme", &agent.attrs).unwrap()
}

/// The agent's own UID, as a host allocates one: in no passwd of the image or of this machine,
/// and not the image's user ([`HERMES_UID`]).
const AGENT_UID: u32 = 10_007;

fn write_owned(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    chown(path, Some(AGENT_UID), Some(AGENT_UID)).unwrap();
}

async fn container_ip(container: &str, network: &str) -> IpAddr {
    docker(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        container,
    ])
    .await
    .unwrap()
    .parse()
    .unwrap()
}

async fn wait_healthy(container: &str) {
    let started = Instant::now();
    loop {
        let status = docker(&["inspect", "-f", "{{.State.Health.Status}}", container])
            .await
            .unwrap();
        if status == "healthy" {
            return;
        }
        if started.elapsed() > HEALTHY_WITHIN {
            let logs = docker(&["logs", "--tail", "40", container])
                .await
                .unwrap_or_default();
            panic!("not healthy within {HEALTHY_WITHIN:?} ({status}); logs:\n{logs}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn chat(addr: SocketAddr, key: Option<&str>) -> http::Response {
    let body = serde_json::to_vec(&json!({
        "model": "acme",
        "messages": [{"role": "user", "content": "Say hello."}],
    }))
    .unwrap();
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    http::request(
        addr,
        "POST",
        "/v1/chat/completions",
        &headers,
        Some(&body),
        Duration::from_mins(2),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_agent_answers_its_key_through_its_egress_proxy_only() {
    // The image, through the real binary.
    let dir = StackDir::new("agent-image").unwrap();
    dir.write_stack(STACK).unwrap();
    let stack_path = dir.stack_path();
    let built = run_binary(
        Path::new(env!("CARGO_BIN_EXE_hermes-infra")),
        &[
            "image",
            "build",
            stack_path.to_str().unwrap(),
            "--output",
            "json",
        ],
        &[],
        BUILD_TIMEOUT,
    )
    .unwrap();
    assert!(built.status.success(), "{built:?}");
    let built: Value = serde_json::from_slice(&built.stdout).unwrap();
    let image_id = built["agent"]["id"].as_str().unwrap().to_owned();
    let egress_image = built["egress-proxy"]["tag"].as_str().unwrap().to_owned();
    assert!(image_id.starts_with("sha256:"), "{built}");
    assert_eq!(built["agent"]["tag"], "hermes-agent:0.19.0");

    // The testbed: an internal network for the agent, an egress network for the world.
    let testbed = Testbed::new();
    let agent_net = testbed
        .network(NetworkOptions {
            internal: true,
            ..NetworkOptions::default()
        })
        .await
        .unwrap();
    let egress_net = testbed.network(NetworkOptions::default()).await.unwrap();
    let llm = testbed
        .fake_llm(
            &egress_net,
            FakeLlmOptions {
                answer: ANSWER.to_owned(),
                ..FakeLlmOptions::default()
            },
        )
        .await
        .unwrap();
    let forbidden = testbed
        .forbidden(&egress_net, hermes_testbed::ForbiddenOptions::default())
        .await
        .unwrap();

    // What hermes-infra renders for the agent, from the planner's attributes.
    let spec = planned_spec(&dir);
    assert_eq!(spec.egress, ["fake-llm.hermes.test"]);
    let api_key = Secret::new(random_key());
    let data = tempfile::tempdir().unwrap();
    let home = data.path().join("data");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown(&home, Some(AGENT_UID), Some(AGENT_UID)).unwrap();
    write_owned(
        &home.join("config.yaml"),
        &hermes_render::agent_config("acme", &spec).unwrap(),
        0o640,
    );
    let env_file = hermes_render::agent_env_file("acme", &spec, &BTreeMap::new()).unwrap();
    let key_line = hermes_render::api_key_line(&api_key);
    write_owned(
        &home.join(".env"),
        &format!("{}{}", env_file.expose(), key_line.expose()),
        0o600,
    );

    // The egress proxy: on both networks, its configuration mounted read-only.
    let egress_files = hermes_render::egress_proxy_files("acme", &spec).unwrap();
    let proxy_conf = data.path().join("egress");
    std::fs::create_dir(&proxy_conf).unwrap();
    std::fs::write(proxy_conf.join("tinyproxy.conf"), &egress_files.config).unwrap();
    std::fs::write(proxy_conf.join("filter"), &egress_files.filter).unwrap();
    for f in ["tinyproxy.conf", "filter"] {
        std::fs::set_permissions(proxy_conf.join(f), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }
    let proxy_name = testbed.unique_name("egress");
    let mut proxy_args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        format!("--name={proxy_name}"),
        "--pull=never".into(),
        "--read-only".into(),
        "--cap-drop=ALL".into(),
        "--security-opt=no-new-privileges".into(),
        format!("--network={}", egress_net.name()),
        format!(
            "--mount=type=bind,src={},dst=/etc/tinyproxy,readonly",
            proxy_conf.display()
        ),
        format!("--health-cmd={}", hermes_render::egress_health_command()),
        "--health-interval=2s".into(),
    ];
    proxy_args.extend(testbed.label_args(Some("egress-proxy")));
    proxy_args.push(egress_image);
    let refs: Vec<&str> = proxy_args.iter().map(String::as_str).collect();
    docker(&refs).await.unwrap();
    // Its health check: tinyproxy's own 403 for a name nothing allows.
    wait_healthy(&proxy_name).await;
    docker(&[
        "network",
        "connect",
        "--alias=egress",
        agent_net.name(),
        &proxy_name,
    ])
    .await
    .unwrap();

    // The agent, with exactly the arguments hermes-infra renders (plus the testbed's labels).
    let agent_name = testbed.unique_name("agent");
    let mut labels = BTreeMap::new();
    for label in testbed.label_args(Some("agent")) {
        let (k, v) = label
            .trim_start_matches("--label=")
            .split_once('=')
            .unwrap();
        labels.insert(k.to_owned(), v.to_owned());
    }
    let placement = Placement {
        container: agent_name.clone(),
        image: image_id.clone(),
        network: agent_net.name().to_owned(),
        data_dir: home.display().to_string(),
        user: format!("{AGENT_UID}:{AGENT_UID}"),
        egress_proxy: format!("egress:{EGRESS_PROXY_PORT}"),
        labels,
    };
    let run_args = hermes_render::agent_run_args(&spec, &placement);
    let refs: Vec<&str> = run_args.iter().map(String::as_str).collect();
    docker(&refs).await.unwrap();
    let started = Instant::now();
    wait_healthy(&agent_name).await;
    eprintln!("healthy {:?} after start", started.elapsed());

    let ip = container_ip(&agent_name, agent_net.name()).await;
    let api = SocketAddr::new(ip, hermes_render::API_PORT);
    let health: Value = http::get(api, "/health").await.unwrap().json().unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["version"], "0.19.0", "{health}");

    // Only the agent's key opens its API.
    assert_eq!(chat(api, None).await.status, 401);
    assert_eq!(chat(api, Some(&"0".repeat(64))).await.status, 401);
    let answered = chat(api, Some(api_key.expose())).await;
    assert_eq!(answered.status, 200, "{}", answered.text());
    let answer: Value = answered.json().unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"], ANSWER,
        "{answer}"
    );
    let requests = llm.requests().await.unwrap();
    assert!(
        requests
            .iter()
            .any(hermes_testbed::RecordedRequest::is_streaming_completion),
        "{requests:#?}"
    );

    // From inside the agent: the allowed host through the proxy; nothing else, nothing direct.
    let curl = |url: String, direct: bool| {
        let mut command = vec![
            "curl".to_owned(),
            "-s".to_owned(),
            "-o".to_owned(),
            "/dev/null".to_owned(),
            "-w".to_owned(),
            "%{http_code}".to_owned(),
            "--max-time".to_owned(),
            "5".to_owned(),
        ];
        if direct {
            command.extend(["--noproxy".to_owned(), "*".to_owned()]);
        }
        command.push(url);
        command
    };
    let run = |command: Vec<String>| {
        let agent = agent_name.clone();
        async move {
            let refs: Vec<&str> = command.iter().map(String::as_str).collect();
            in_agent(&agent, &refs).await
        }
    };
    let allowed = run(curl(format!("{}/models", llm.base_url()), false)).await;
    assert_eq!(
        allowed,
        (0, "200".to_owned()),
        "allowed host through the proxy"
    );
    // The allowed host on another port, and a CONNECT to its plain-HTTP port: refused too
    // (the filter matches whole URLs: plain HTTP only to the model's own endpoint).
    let llm_host = &spec.egress[0];
    let other_port = run(curl(format!("http://{llm_host}:8081/"), false)).await;
    assert_eq!(other_port.1, "403", "another port: {other_port:?}");
    let tunnel = run([
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "--max-time",
        "5",
        "--proxytunnel",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([format!("http://{llm_host}:8080/")])
    .collect())
    .await;
    assert_eq!(tunnel.1, "403", "CONNECT to the HTTP port: {tunnel:?}");
    let refused = run(curl(format!("http://{}:8080/", forbidden.alias()), false)).await;
    assert_eq!(
        refused.1, "403",
        "the proxy refuses other hosts: {refused:?}"
    );
    let direct_llm = run(curl(format!("{}/models", llm.base_url_by_ip()), true)).await;
    assert_ne!(
        direct_llm.0, 0,
        "no route out but the proxy: {direct_llm:?}"
    );
    let direct_forbidden = run(curl(format!("http://{}:8080/", forbidden.ip()), true)).await;
    assert_ne!(direct_forbidden.0, 0, "{direct_forbidden:?}");
    let hits = forbidden.hits().await.unwrap();
    assert_eq!(hits.hits, 0, "the forbidden server was reached: {hits:#?}");

    // No secret in what Docker shows; the state belongs to the agent's user.
    let inspect = docker(&["inspect", &agent_name]).await.unwrap();
    assert!(
        !inspect.contains(api_key.expose()),
        "the key is in docker inspect"
    );
    let state_owner = std::fs::metadata(home.join("state.db"))
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap();
    assert_eq!(state_owner, AGENT_UID);
    assert_ne!(AGENT_UID, HERMES_UID);

    // CIS Docker section 5: nothing to warn about.
    let inspect: Value = serde_json::from_str(&inspect).unwrap();
    let (code, processes) = in_agent(
        &agent_name,
        &["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo"],
    )
    .await;
    assert_eq!(code, 0);
    let context = AuditContext {
        apparmor_enabled: std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.trim() == "Y"),
        processes: Some(processes.lines().map(str::to_owned).collect()),
    };
    let findings = cis_container_checks(&inspect[0], &context);
    let warned: Vec<_> = findings
        .iter()
        .filter(|f| f.status == Status::Warn)
        .collect();
    assert!(warned.is_empty(), "CIS Docker warnings: {warned:#?}");
    for f in &findings {
        eprintln!("CIS {} {}: {:?}", f.id, f.title, f.status);
    }
}

/// 32 random bytes from the OS, in hex (the test's own key; hermes-infra generates real ones).
fn random_key() -> String {
    use std::fmt::Write as _;
    use std::io::Read as _;
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .unwrap();
    buf.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}
