//! Agents deployed by `apply` on a real local host, through the real binary, from the image
//! `image build` made and `image push` sent over SSH (once: a second push sends nothing):
//! each gateway healthy behind its egress proxy on its own internal network; the host's TLS
//! reverse proxy (a local CA) forwarding each hostname to its agent only, which answers its own
//! key (made and kept on the host) with the fake LLM's answer and nothing else; a canary secret
//! only in the agent's 0600 `.env`; a second apply changes nothing; an upgrade that cannot
//! become healthy is refused while the agent keeps serving; an agent taken out of the stack
//! loses its container and keeps its data.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod agents;
mod hardening;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use agents::{Proxy, addresses};
use hardening::{APPLY_TIMEOUT, SHORT_TIMEOUT, Stack};
use hermes_testbed::{DerivedImage, ForbiddenOptions, Testbed};
use serde_json::Value;

const BUILD_TIMEOUT: Duration = Duration::from_mins(20);
/// An audit runs Lynis on the host besides the agents' checks.
const AUDIT_TIMEOUT: Duration = Duration::from_mins(10);
const CANARY: &str = "canary-crm-5b1e0c7d";
const ANSWER: &str = "Hello from the fake LLM, to the deployed agent.";
const ACME: &str = "acme.hermes.localhost";
const GLOBEX: &str = "globex.hermes.localhost";

/// The stack: host `h`, agent acme (with `acme_env` as its environment), and globex when
/// `with_globex`; `image` is the body of its `[image]` table (empty: the image `image build`
/// makes, tagged with the Hermes version).
fn body(image: &str, with_globex: bool, acme_env: &str) -> String {
    let model = r#"{ provider = "custom", model = "fake-gpt", base-url = "http://fake-llm.hermes.test:8080/v1" }"#;
    let globex = if with_globex {
        format!("[agents.globex]\nhost = \"h\"\nhostname = \"{GLOBEX}\"\nmodel = {model}\n")
    } else {
        String::new()
    };
    let image = if image.is_empty() {
        String::new()
    } else {
        format!("[image]\n{image}\n")
    };
    format!(
        r#"environments = ["dev"]
[provider.local]
host-kind = "container"
[hosts.h]
[proxy]
tls = "self-signed"
{image}[agents.acme]
host = "h"
hostname = "{ACME}"
model = {model}
limits = {{ memory = "1g", cpus = 1.0, pids = 256 }}
dashboard = {{ enabled = true }}
secrets = {{ CRM_TOKEN = "file:crm.txt" }}
env = {{ {acme_env} }}
{globex}"#
    )
}

/// `hermes-infra tunnel STACK AGENT` running on a free local port (stopped on drop).
struct Tunnel {
    child: std::process::Child,
    port: u16,
}

impl Tunnel {
    fn open(stack: &Stack, agent: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_hermes-infra"))
            .args(["tunnel", stack.path().to_str().unwrap(), agent, "--port"])
            .arg(port.to_string())
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self { child, port }
    }

    /// `GET path` through the tunnel: the HTTP status and the body. Tries 30 times, a second
    /// apart, while the tunnel starts.
    fn get(&self, path: &str) -> (String, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let mut last = String::new();
        for _ in 0..30 {
            let out = Command::new("curl")
                .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", &url])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if let Some((body, status)) = text.rsplit_once('\n')
                && status != "000"
            {
                return (status.to_owned(), body.to_owned());
            }
            last = text;
            std::thread::sleep(Duration::from_secs(1));
        }
        panic!("the tunnel never answered {url}: {last}");
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary(args: &[&str], timeout: Duration) -> Value {
    let out = hermes_testbed::run_binary(
        Path::new(env!("CARGO_BIN_EXE_hermes-infra")),
        args,
        &[],
        timeout,
    )
    .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn applied_agents_answer_their_own_key_through_the_proxy_and_a_failed_upgrade_keeps_serving() {
    let stack = Stack::new("agent-deploy", &body("", true, ""));
    stack.dir.write("crm.txt", &format!("{CANARY}\n")).unwrap();
    stack.apply(&["--target", "docker-engine"]).ok();

    // The model and a server the agents must never reach, on the hosts' network.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let testbed = Testbed::new();
    let (_llm, forbidden) = runtime.block_on(async {
        let network = agents::network_of(&testbed, &stack).await;
        let llm = agents::fake_llm(&testbed, &network, ANSWER).await;
        let forbidden = testbed
            .forbidden(&network, ForbiddenOptions::default())
            .await
            .unwrap();
        (llm, forbidden)
    });

    // The images: built here, sent once.
    let path = stack.path();
    let path = path.to_str().unwrap();
    let built = binary(&["image", "build", path, "--output", "json"], BUILD_TIMEOUT);
    let agent_id = built["agent"]["id"].as_str().unwrap().to_owned();
    let push = |label: &str| {
        let started = Instant::now();
        let report = binary(&["image", "push", path, "--output", "json"], BUILD_TIMEOUT);
        eprintln!(
            "{label}: {:.1}s; {}",
            started.elapsed().as_secs_f64(),
            report
        );
        report["hosts"]["h"]["images"].as_array().unwrap().clone()
    };
    let first = push("first push");
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[0]["id"], agent_id.as_str());
    for image in &first {
        let sent = &image["sent"];
        let bytes = sent["bytes"].as_u64().unwrap_or_default();
        assert!(bytes > 0, "sent: {image}");
        assert_eq!(
            sent["chunks"].as_u64().unwrap(),
            bytes.div_ceil(16 << 20),
            "16 MiB a round trip: {image}"
        );
    }
    let on_host = stack
        .on(
            "h",
            "sudo docker image inspect --format '{{.Id}}' hermes-agent:0.19.0; \
             sudo find /var/lib/hermes-infra/incoming -type f | wc -l",
        )
        .ok();
    assert_eq!(
        on_host.stdout.trim(),
        format!("{agent_id}\n0"),
        "{on_host:?}"
    );
    for image in &push("second push") {
        assert!(image["sent"].is_null(), "nothing sent: {image}");
    }

    // The agents and the proxy.
    let applied = stack.apply(&[]);
    assert!(!applied.stdout.contains(CANARY) && !applied.stderr.contains(CANARY));
    let applied = applied.ok().json();
    assert_eq!(
        addresses(&applied, "done"),
        ["agent.acme", "agent.globex", "reverse-proxy.h"],
        "{applied}"
    );
    let plan = stack.run("plan", &["--detailed-exitcode"], SHORT_TIMEOUT);
    assert_eq!(plan.code, 0, "{plan:?}");
    let status = stack
        .run("status", &["--output", "json"], SHORT_TIMEOUT)
        .ok()
        .json();
    for agent in status["agents"].as_array().unwrap() {
        assert_eq!(agent["health"], "healthy", "{status}");
    }

    // `audit`: each agent container passes CIS Docker section 5 with no warning.
    let audited = hardening::audit(&stack, "h", "shared", AUDIT_TIMEOUT);
    let agents = audited["hosts"]["h"]["agents"].as_object().unwrap();
    assert_eq!(
        agents.keys().collect::<Vec<_>>(),
        ["acme", "globex"],
        "{audited:#}"
    );
    for (agent, checks) in agents {
        assert_eq!(
            checks["warnings"],
            serde_json::json!([]),
            "{agent}: {checks:#}"
        );
        assert!(
            checks["checks"].as_u64().unwrap() >= 25,
            "{agent}: {checks:#}"
        );
        // Only AppArmor's check may not apply (this machine's kernel has it off); the
        // process list (5.7) was read.
        for skipped in checks["not_applicable"].as_array().unwrap() {
            assert!(
                skipped.as_str().unwrap().starts_with("5.2:"),
                "{agent}: {checks:#}"
            );
        }
        eprintln!(
            "audit {agent}: {} CIS checks, 0 warnings, not applicable: {}",
            checks["checks"], checks["not_applicable"]
        );
    }

    // `audit`'s tenant boundary: a UID per agent owning its 0700 data, nothing on the host or
    // of the neighbour answering from inside an agent (its own egress proxy does), and the
    // proxy's TLS settings for each hostname (old protocols, CBC and non-ECDHE suites refused,
    // one HSTS header, no version, 421 for a foreign Host).
    let tenancy = &audited["hosts"]["h"]["tenancy"];
    assert_eq!(tenancy["problems"], serde_json::json!([]), "{tenancy:#}");
    let users = tenancy["users"].as_object().unwrap();
    assert_eq!(users.keys().collect::<Vec<_>>(), ["acme", "globex"]);
    assert_ne!(
        users["acme"]["uids"], users["globex"]["uids"],
        "{tenancy:#}"
    );
    assert!(tenancy["probes"].as_u64().unwrap() >= 10, "{tenancy:#}");
    assert!(tenancy["tls_checks"].as_u64().unwrap() >= 16, "{tenancy:#}");
    eprintln!(
        "audit tenancy: {} probes from inside the agents, {} proxy checks, no problem",
        tenancy["probes"], tenancy["tls_checks"]
    );

    // Through the proxy from this machine: each hostname answers its own agent's key only.
    let key_of = |agent: &str| agents::api_key(&stack, "h", agent);
    let (acme_key, globex_key) = (key_of("acme"), key_of("globex"));
    assert_eq!(acme_key.len(), 64);
    assert_ne!(acme_key, globex_key);
    let proxy = Proxy::of(&stack, "h");
    let (code, status, answer) = proxy.chat(ACME, Some(&acme_key));
    assert_eq!((code, status.as_str()), (0, "200"), "{answer}");
    assert!(answer.contains(ANSWER), "{answer}");
    assert_eq!(proxy.chat(GLOBEX, Some(&globex_key)).1, "200");
    assert_eq!(proxy.chat(ACME, None).1, "401", "no key");
    assert_eq!(
        proxy.chat(GLOBEX, Some(&acme_key)).1,
        "401",
        "acme's key on globex"
    );
    let (refused, _, _) = proxy.chat("other.hermes.localhost", Some(&acme_key));
    assert_eq!(
        refused, 35,
        "an unknown name is refused at the TLS handshake"
    );

    // acme's dashboard: on its container's loopback only (nothing listens on the host, its
    // address answers nothing), reached from this machine through `tunnel`.
    let exposed = stack
        .on(
            "h",
            "sudo ss -ltnH | grep -c ':9119 ' || true; \
             ip=$(sudo docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' hermes-agent-acme); \
             curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://$ip:9119/api/status || true",
        )
        .ok();
    assert_eq!(exposed.stdout.trim(), "0\n000", "{exposed:?}");
    let tunnel = Tunnel::open(&stack, "acme");
    let (status, answer) = tunnel.get("/api/status");
    assert_eq!(status, "200", "{answer}");
    assert!(answer.contains("\"version\":\"0.19.0\""), "{answer}");
    let (page, _) = tunnel.get("/");
    assert_eq!(page, "200", "the web UI");
    drop(tunnel);
    let no_dashboard = stack.run("tunnel", &["globex", "--port", "0"], SHORT_TIMEOUT);
    assert_eq!(no_dashboard.code, 1, "{no_dashboard:?}");
    assert!(
        no_dashboard.stderr.contains("runs no dashboard"),
        "{no_dashboard:?}"
    );

    // From inside an agent: the model through the proxy, nothing else, nothing direct.
    let probe = |url: &str, direct: bool| {
        let noproxy = if direct { "--noproxy '*'" } else { "" };
        stack
            .on(
                "h",
                &format!(
                    "sudo docker exec hermes-agent-acme curl -s -o /dev/null -w '%{{http_code}}' \
                     --max-time 5 {noproxy} {url} || true"
                ),
            )
            .ok()
            .stdout
            .trim()
            .to_owned()
    };
    assert_eq!(
        probe("http://fake-llm.hermes.test:8080/v1/models", false),
        "200"
    );
    assert_eq!(probe("http://forbidden.hermes.test:8080/", false), "403");
    assert_eq!(
        probe(&format!("http://{}:8080/", forbidden.ip()), true),
        "000"
    );
    let hits = runtime.block_on(forbidden.hits()).unwrap();
    assert_eq!(hits.hits, 0, "{hits:#?}");

    // The canary is in the agent's 0600 .env and nowhere Docker, the process list, the
    // manifest or the state shows.
    let acme_uid = stack
        .on(
            "h",
            "sudo awk '$1 == \"acme\" { print $2 }' /etc/hermes-infra/agents/uids",
        )
        .ok()
        .stdout
        .trim()
        .to_owned();
    assert!(acme_uid.parse::<u32>().unwrap() > 10_000, "{acme_uid}");
    let env_file = stack
        .on(
            "h",
            "sudo stat -c '%a %u' /srv/hermes/acme/data/.env; \
             sudo grep -c CRM_TOKEN /srv/hermes/acme/data/.env",
        )
        .ok();
    assert_eq!(
        env_file.stdout.trim(),
        format!("600 {acme_uid}\n1"),
        "{env_file:?}"
    );
    let shown = stack
        .on(
            "h",
            "sudo docker container inspect hermes-agent-acme hermes-egress-acme; ps auxww; \
             sudo cat /etc/hermes-infra/agents/acme.json; sudo docker logs hermes-agent-acme 2>&1",
        )
        .ok();
    assert!(!shown.stdout.contains(CANARY), "the canary leaked");
    assert!(
        shown.stdout.contains("file:crm.txt"),
        "the reference is recorded"
    );
    let state = std::fs::read_to_string(stack.state_path()).unwrap();
    assert!(!state.contains(CANARY) && !state.contains(&acme_key));

    // A second apply changes nothing, and the keys stay.
    let second = stack.apply(&[]).ok().json();
    assert!(addresses(&second, "done").is_empty(), "{second}");
    assert_eq!(key_of("acme"), acme_key);

    // The agent verbs: its log, a command in its container (as its user), a new key.
    let uid = stack
        .run("exec", &["acme", "--", "id", "-u"], SHORT_TIMEOUT)
        .ok();
    assert_eq!(uid.stdout.trim(), acme_uid, "its own user: {uid:?}");
    let version = stack
        .run(
            "exec",
            &["acme", "--", "hermes", "--version"],
            SHORT_TIMEOUT,
        )
        .ok();
    assert!(version.stdout.contains("0.19.0"), "{version:?}");
    stack
        .run("logs", &["acme", "--tail", "5"], SHORT_TIMEOUT)
        .ok();
    let rotated = stack.run("rotate", &["acme"], SHORT_TIMEOUT).ok();
    assert!(rotated.stderr.contains("has a new API key"), "{rotated:?}");
    let new_key = key_of("acme");
    assert_eq!(new_key.len(), 64);
    assert_ne!(new_key, acme_key);
    assert!(!rotated.stdout.contains(&new_key) && !rotated.stderr.contains(&new_key));
    assert_eq!(
        proxy.chat(ACME, Some(&acme_key)).1,
        "401",
        "the old key is refused"
    );
    assert_eq!(proxy.chat(ACME, Some(&new_key)).1, "200");
    let after_rotation = stack.apply(&[]).ok().json();
    assert!(
        addresses(&after_rotation, "done").is_empty(),
        "{after_rotation}"
    );
    assert_eq!(key_of("acme"), new_key, "apply keeps the rotated key");
    let acme_key = new_key;

    // The data survives an upgrade (a new setting replaces the container) and a reboot.
    stack
        .on(
            "h",
            &format!(
                "sudo sh -c 'head -c 4096 /dev/urandom >/srv/hermes/acme/data/marker; \
                 chown {acme_uid}:{acme_uid} /srv/hermes/acme/data/marker'"
            ),
        )
        .ok();
    let data = || {
        stack
            .on(
                "h",
                "sudo sha256sum /srv/hermes/acme/data/marker; \
                 sudo test -s /srv/hermes/acme/data/state.db && echo state.db",
            )
            .ok()
            .stdout
    };
    let before = data();
    let container_id = || {
        stack
            .on(
                "h",
                "sudo docker container inspect -f '{{.Id}}' hermes-agent-acme",
            )
            .ok()
            .stdout
    };
    let old_container = container_id();
    let tz = "TZ = \"Europe/Berlin\"";
    stack.write(&body("", true, tz));
    let upgraded = stack.apply(&[]).ok().json();
    assert_eq!(addresses(&upgraded, "done"), ["agent.acme"], "{upgraded}");
    assert_ne!(container_id(), old_container, "a new container");
    assert_eq!(data(), before, "the data survived the upgrade");
    assert_eq!(key_of("acme"), acme_key);
    assert_eq!(proxy.chat(ACME, Some(&acme_key)).1, "200");

    stack.power("off", "h").ok();
    stack.power("on", "h").ok();
    let back = Instant::now();
    loop {
        let status = stack.run("status", &["--output", "json"], SHORT_TIMEOUT);
        let healthy = status.code == 0
            && status.json()["agents"]
                .as_array()
                .is_some_and(|a| a.iter().all(|agent| agent["health"] == "healthy"));
        if healthy {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_mins(4),
            "the agents did not come back after a reboot: {status:?}"
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    eprintln!(
        "agents healthy {:.0}s after power on",
        back.elapsed().as_secs_f64()
    );
    assert_eq!(data(), before, "the data survived the reboot");
    assert_eq!(proxy.chat(ACME, Some(&acme_key)).1, "200");

    // An upgrade to another image (pinned by its id: the built image with one more label) is
    // health-gated onto both agents; `rollback` returns acme to the image before, with its
    // data, and the plan then shows the stack's image pending. Nothing before it to roll
    // back to is an error that changes nothing.
    let upgrade =
        DerivedImage::of("hermes-agent:0.19.0", "LABEL hermes-infra-test=upgrade").unwrap();
    let upgraded_to = format!("digest = \"{}\"", upgrade.id);
    stack.write(&body(&upgraded_to, true, tz));
    let upgraded = stack.apply(&[]).ok().json();
    assert_eq!(
        addresses(&upgraded, "done"),
        ["agent.acme", "agent.globex"],
        "{upgraded}"
    );
    let running_image = |agent: &str| {
        stack
            .on(
                "h",
                &format!("sudo docker container inspect -f '{{{{.Image}}}}' hermes-agent-{agent}"),
            )
            .ok()
            .stdout
            .trim()
            .to_owned()
    };
    assert_eq!(running_image("acme"), upgrade.id);
    assert_eq!(
        data(),
        before,
        "the data survived the upgrade to a new image"
    );
    assert_eq!(proxy.chat(ACME, Some(&acme_key)).1, "200");
    let plan = stack.run("plan", &["--detailed-exitcode"], SHORT_TIMEOUT);
    assert_eq!(plan.code, 0, "{plan:?}");

    let rolled = stack
        .run("rollback", &["acme", "--yes"], APPLY_TIMEOUT)
        .ok();
    assert!(rolled.stderr.contains("runs sha256:"), "{rolled:?}");
    assert_eq!(
        running_image("acme"),
        agent_id,
        "acme runs the image before"
    );
    assert_eq!(running_image("globex"), upgrade.id, "globex is left alone");
    assert_eq!(data(), before, "the data survived the rollback");
    assert_eq!(key_of("acme"), acme_key);
    assert_eq!(proxy.chat(ACME, Some(&acme_key)).1, "200");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(stack.state_path()).unwrap()).unwrap();
    assert_eq!(
        state["image_history"]["acme"],
        serde_json::json!([agent_id]),
        "the rollback took the upgrade off acme's history: {state}"
    );
    let pending = stack.run("plan", &["--detailed-exitcode"], SHORT_TIMEOUT);
    assert_eq!(pending.code, 2, "{pending:?}");
    assert!(pending.stdout.contains("agent.acme"), "{pending:?}");
    let nothing_before = stack.run("rollback", &["acme", "--yes"], SHORT_TIMEOUT);
    assert_eq!(nothing_before.code, 1, "{nothing_before:?}");
    assert!(
        nothing_before.stderr.contains("no image before"),
        "{nothing_before:?}"
    );
    assert_eq!(running_image("acme"), agent_id);

    // Back to the stack's image: acme runs it already (only its record changes), globex goes
    // back to it.
    stack.write(&body("", true, tz));
    let back = stack.apply(&[]).ok().json();
    assert_eq!(
        addresses(&back, "done"),
        ["agent.acme", "agent.globex"],
        "{back}"
    );
    assert_eq!(running_image("globex"), agent_id);
    drop(upgrade);

    // An upgrade to an image that cannot become healthy (its Python cannot start: the gateway
    // and the dashboard exit at once) is refused; the running agents keep serving, untouched.
    let container = || {
        stack
            .on(
                "h",
                "sudo docker container inspect -f '{{.Id}} {{.State.Health.Status}}' hermes-agent-acme",
            )
            .ok()
            .stdout
    };
    let serving = container();
    let broken = DerivedImage::of("hermes-agent:0.19.0", "ENV PYTHONHOME=/nonexistent").unwrap();
    stack.write(&body(&format!("digest = \"{}\"", broken.id), true, tz));
    let refused = stack.apply(&[]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stdout.contains("upgrade refused"), "{refused:?}");
    assert_eq!(container(), serving, "the running agent was touched");
    assert_eq!(proxy.chat(ACME, Some(&acme_key)).1, "200");

    // Out of the stack: globex's container, proxy and network go; its data stays; acme serves.
    stack.write(&body("", false, tz));
    let removed = stack.apply(&["--allow-destroy"]).ok().json();
    assert_eq!(
        addresses(&removed, "done"),
        ["agent.globex", "reverse-proxy.h"],
        "{removed}"
    );
    let left = stack
        .on(
            "h",
            "sudo docker ps -aq --filter name=hermes-agent-globex --filter name=hermes-egress-globex | wc -l; \
             sudo test -f /srv/hermes/globex/data/state.db && echo data-kept",
        )
        .ok();
    assert_eq!(left.stdout.trim(), "0\ndata-kept", "{left:?}");
    assert_eq!(proxy.chat(ACME, Some(&acme_key)).1, "200");
    let (gone, _, _) = proxy.chat(GLOBEX, Some(&globex_key));
    assert_eq!(gone, 35, "globex's name is no longer served");
}
