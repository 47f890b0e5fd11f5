//! `hermes-infra image push` without a registry, through the real binary against a real local
//! host with Docker: the built Hermes Agent image and the egress proxy image reach the host over
//! SSH in bounded chunks and load there under their ids and tags; the transfer file is gone
//! afterwards; a second push asks the host and sends nothing.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod hardening;

use std::time::{Duration, Instant};

use hardening::{Stack, docker};

const BUILD_TIMEOUT: Duration = Duration::from_mins(20);
const PUSH_TIMEOUT: Duration = Duration::from_mins(15);

const BODY: &str = r#"environments = ["dev"]
[provider.local]
host-kind = "container"
[hosts.h]
[agents.acme]
host = "h"
model = { provider = "custom", model = "fake-gpt", base-url = "http://fake-llm.hermes.test:8080/v1" }
"#;

#[test]
fn images_reach_the_host_once_over_ssh() {
    let stack = Stack::new("image-push", BODY);
    stack.apply(&["--target", "docker-engine"]).ok();
    let path = stack.path();
    let build = hermes_testbed::run_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_hermes-infra")),
        &["image", "build", path.to_str().unwrap(), "--output", "json"],
        &[],
        BUILD_TIMEOUT,
    )
    .unwrap();
    assert!(build.status.success(), "{build:?}");
    let build: serde_json::Value = serde_json::from_slice(&build.stdout).unwrap();
    let agent_id = build["agent"]["id"].as_str().unwrap().to_owned();

    let push = |label: &str| {
        let started = Instant::now();
        let out = hermes_testbed::run_binary(
            std::path::Path::new(env!("CARGO_BIN_EXE_hermes-infra")),
            &["image", "push", path.to_str().unwrap(), "--output", "json"],
            &[],
            PUSH_TIMEOUT,
        )
        .unwrap();
        assert!(out.status.success(), "{out:?}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        eprintln!(
            "{label}: {:.1}s; {}",
            started.elapsed().as_secs_f64(),
            report["hosts"]["h"]
        );
        report["hosts"]["h"]["images"].as_array().unwrap().clone()
    };

    let first = push("first push");
    assert_eq!(first.len(), 2, "{first:?}");
    for image in &first {
        assert_eq!(image["sent"], true, "{image}");
        let bytes = image["bytes"].as_u64().unwrap();
        let chunks = image["chunks"].as_u64().unwrap();
        assert!(bytes > 0);
        assert_eq!(
            chunks,
            bytes.div_ceil(16 << 20),
            "16 MiB a round trip: {image}"
        );
    }
    assert_eq!(first[0]["tag"], "hermes-agent:0.19.0");
    assert_eq!(first[0]["id"], agent_id.as_str());

    // On the host: the image under its id and tag, and no transfer file left.
    let on_host = stack
        .on(
            "h",
            "sudo docker image inspect --format '{{.Id}}' hermes-agent:0.19.0; \
             sudo find /var/lib/hermes-infra/incoming -type f | wc -l",
        )
        .ok();
    let lines: Vec<&str> = on_host.stdout.lines().collect();
    assert_eq!(lines, [agent_id.as_str(), "0"], "{on_host:?}");

    let second = push("second push");
    for image in &second {
        assert_eq!(image["sent"], false, "{image}");
        assert_eq!(image["bytes"], 0, "{image}");
    }
    // The image this machine built is the one the host has (the host's engine is its own).
    assert!(!docker(&["image", "inspect", "--format", "{{.Id}}", &agent_id]).is_empty());
}
