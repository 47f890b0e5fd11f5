//! Images through a registry, through the real binary: `image push` logs in to a generic
//! registry (Debian's `docker-registry` with TLS from a CA of its own and basic auth, on the
//! hosts' network) and pushes the agent and egress proxy images, printing their digests;
//! `apply` has the host trust the registry's CA, log in and pull them (nothing goes over SSH),
//! and the agent becomes healthy on the pulled image; pinning the pushed digest changes nothing
//! that runs. The password appears in no output, process list or state.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod agents;
mod hardening;

use std::path::PathBuf;

use agents::addresses;
use hardening::{SHORT_TIMEOUT, Stack};
use hermes_testbed::{Registry, Testbed};
use serde_json::Value;

const PASSWORD: &str = "canary-registry-4f1d8e2a";

fn body(registry: &str, image: &str) -> String {
    format!(
        r#"environments = ["dev"]
[provider.local]
host-kind = "container"
[hosts.h]
{registry}{image}[agents.shop]
host = "h"
model = {{ provider = "custom", model = "fake-gpt", base-url = "http://fake-llm.hermes.test:8080/v1" }}
limits = {{ memory = "1g", cpus = 1.0, pids = 256 }}
"#
    )
}

/// This machine's Docker engine trusts the registry's CA while the test runs
/// (`/etc/docker/certs.d/<server>/`, removed on drop).
struct TrustedHere(PathBuf);

impl TrustedHere {
    fn new(server: &str, ca: &str) -> Self {
        let dir = PathBuf::from("/etc/docker/certs.d").join(server);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.crt"), ca).unwrap();
        Self(dir)
    }
}

impl Drop for TrustedHere {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn images_go_through_the_registry_and_hosts_pull_them_by_digest() {
    let stack = Stack::new("registry-push", &body("", ""));
    stack.apply(&["--target", "docker-engine"]).ok();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let testbed = Testbed::new();
    let registry = runtime.block_on(async {
        let network = agents::network_of(&testbed, &stack).await;
        Registry::start(&testbed, &network, PASSWORD).await.unwrap()
    });
    let server = registry.server();
    let ca = runtime.block_on(registry.ca()).unwrap();
    let _trusted = TrustedHere::new(&server, &ca);
    stack.dir.write("registry-ca.pem", &ca).unwrap();
    stack
        .dir
        .write("registry-password.txt", &format!("{PASSWORD}\n"))
        .unwrap();
    let with_registry = format!(
        "[registry.generic]\nserver = \"{server}\"\nrepository = \"team/hermes-agent\"\n\
         username = \"{}\"\npassword = \"file:registry-password.txt\"\nca = \"file:registry-ca.pem\"\n",
        hermes_testbed::registry::USER
    );
    stack.write(&body(&with_registry, ""));

    let path = stack.path();
    let pushed = hermes_testbed::run_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_hermes-infra")),
        &["image", "push", path.to_str().unwrap(), "--output", "json"],
        &[("NO_COLOR", "1")],
        std::time::Duration::from_mins(20),
    )
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&pushed.stdout),
        String::from_utf8_lossy(&pushed.stderr)
    );
    assert!(pushed.status.success(), "{text}");
    assert!(!text.contains(PASSWORD), "the password was shown");
    let report: Value = serde_json::from_slice(&pushed.stdout).unwrap();
    let images = report["images"].as_array().unwrap();
    assert_eq!(
        images[0]["reference"],
        format!("{server}/team/hermes-agent:0.19.0"),
        "{report}"
    );
    let digest = images[0]["digest"].as_str().unwrap().to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{report}"
    );
    assert!(
        images[1]["reference"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{server}/team/hermes-agent-egress-proxy:")),
        "{report}"
    );

    let applied = stack.apply(&[]);
    assert!(!applied.stdout.contains(PASSWORD) && !applied.stderr.contains(PASSWORD));
    let applied = applied.ok().json();
    assert_eq!(addresses(&applied, "done"), ["agent.shop"], "{applied}");
    assert!(
        applied["hosts"]["h"]["changed"].get("images").is_none(),
        "nothing went over SSH: {applied}"
    );
    let status = stack
        .run("status", &["--output", "json"], SHORT_TIMEOUT)
        .ok()
        .json();
    assert_eq!(status["agents"][0]["health"], "healthy", "{status}");
    let on_host = stack
        .on(
            "h",
            "id=$(sudo docker container inspect -f '{{.Image}}' hermes-agent-shop); \
             sudo docker image inspect -f '{{json .RepoDigests}}' \"$id\"; \
             sudo stat -c '%a' /etc/hermes-infra/registry /etc/hermes-infra/registry/config.json; \
             ps auxww",
        )
        .ok();
    assert!(
        on_host
            .stdout
            .contains(&format!("{server}/team/hermes-agent@{digest}")),
        "{on_host:?}"
    );
    assert!(on_host.stdout.contains("\n700\n600\n"), "{on_host:?}");
    assert!(
        !on_host.stdout.contains(PASSWORD),
        "the password is in a process list"
    );
    let state = std::fs::read_to_string(stack.state_path()).unwrap();
    assert!(!state.contains(PASSWORD));

    // Pinning the pushed digest (as a promotion would) names what already runs.
    let container = || {
        stack
            .on(
                "h",
                "sudo docker container inspect -f '{{.Id}}' hermes-agent-shop",
            )
            .ok()
            .stdout
    };
    let before = container();
    stack.write(&body(
        &with_registry,
        &format!("[image]\ndigest = \"{digest}\"\n"),
    ));
    let pinned = stack.apply(&[]).ok().json();
    assert_eq!(addresses(&pinned, "done"), ["agent.shop"], "{pinned}");
    assert_eq!(container(), before, "the same image: the container stays");
    let plan = stack.run("plan", &["--detailed-exitcode"], SHORT_TIMEOUT);
    assert_eq!(plan.code, 0, "{plan:?}");
    drop(registry);
}
