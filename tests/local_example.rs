//! The README's main job, checked: `apply` of `stacks/local.toml` (renamed, so that it cannot
//! meet a stack someone applied by hand) through the real binary gives three healthy agents on
//! two hardened hosts; each answers a chat completion through its host's TLS reverse proxy with
//! its own key (the testbed's fake LLM answering), and refuses no key and another agent's key;
//! a second apply changes nothing.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod agents;
mod hardening;

use agents::{Proxy, addresses, api_key};
use hardening::{SHORT_TIMEOUT, Stack};
use hermes_testbed::Testbed;

const ANSWER: &str = "Hello from the fake LLM, to the example stack.";

/// The example's agents: (agent, host, hostname).
const AGENTS: [(&str, &str, &str); 3] = [
    ("acme", "local-1", "acme.hermes.localhost"),
    ("globex", "local-1", "globex.hermes.localhost"),
    ("initech", "local-2", "initech.hermes.localhost"),
];

/// `stacks/local.toml` without its `version` and `name` lines (the test stack writes its own).
fn example_body() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/local.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let body: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("version =") && !l.starts_with("name ="))
        .collect();
    assert_eq!(
        body.len() + 2,
        text.lines().count(),
        "one version and one name line"
    );
    body.join("\n") + "\n"
}

#[test]
fn the_local_example_gives_three_agents_that_answer_their_own_keys_only() {
    let stack = Stack::new("local-example", &example_body());
    stack.apply(&["--target", "host"]).ok();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let testbed = Testbed::new();
    let _llm = runtime.block_on(async {
        let network = agents::network_of(&testbed, &stack).await;
        agents::fake_llm(&testbed, &network, ANSWER).await
    });

    let applied = stack.apply(&[]).ok().json();
    let done = addresses(&applied, "done");
    for (agent, _, _) in AGENTS {
        assert!(done.contains(&format!("agent.{agent}")), "{applied}");
    }
    let status = stack
        .run("status", &["--output", "json"], SHORT_TIMEOUT)
        .ok()
        .json();
    let healthy: Vec<&str> = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["health"] == "healthy")
        .filter_map(|a| a["agent"].as_str())
        .collect();
    assert_eq!(healthy, ["acme", "globex", "initech"], "{status:#}");

    let keys: Vec<String> = AGENTS
        .iter()
        .map(|(agent, host, _)| api_key(&stack, host, agent))
        .collect();
    for (i, (agent, host, hostname)) in AGENTS.iter().enumerate() {
        let proxy = Proxy::of(&stack, host);
        let (code, status, answer) = proxy.chat(hostname, Some(&keys[i]));
        assert_eq!((code, status.as_str()), (0, "200"), "{agent}: {answer}");
        assert!(answer.contains(ANSWER), "{agent}: {answer}");
        assert_eq!(proxy.chat(hostname, None).1, "401", "{agent}: no key");
        let other = &keys[(i + 1) % keys.len()];
        assert_eq!(
            proxy.chat(hostname, Some(other)).1,
            "401",
            "{agent}: another agent's key"
        );
    }

    let second = stack.apply(&[]).ok().json();
    assert!(addresses(&second, "done").is_empty(), "{second}");
}
