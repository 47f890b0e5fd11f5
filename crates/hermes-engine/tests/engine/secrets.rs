//! Secret values never leave the step that resolved them: a canary value resolved by a provider
//! through `ctx.secrets` appears in no report (Debug or JSON), no saved state, no event and no
//! log line, even at TRACE level, whether the run succeeds or fails. (The engine never sees a
//! value; this guards against a future change that would, for example, log a step context.)

use std::sync::Arc;

use hermes_core::Kind;
use hermes_core::seams::Provider;
use hermes_engine::Engine;
use serde_json::json;

use crate::support::{FakeSecrets, Harness, addr, agent, existing, host_chain, logs, options};

const CANARY: &str = "canary-7f3e9a";

fn engine_with_canary(h: &Harness) -> Engine {
    let cloud: Arc<dyn Provider> = h.cloud.clone();
    let ssh: Arc<dyn Provider> = h.ssh.clone();
    Engine::new(
        vec![cloud, ssh],
        h.store.clone(),
        h.reporter.clone(),
        Arc::new(FakeSecrets::with("env:OPENAI_API_KEY", CANARY)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_secret_appears_in_no_report_state_event_or_log() {
    let chain = host_chain("h1");
    let h = Harness::new(existing(&chain));
    let with_secret = |name: &str| {
        agent(name, "h1").attr("secrets", json!({"OPENAI_API_KEY": "env:OPENAI_API_KEY"}))
    };
    let mut wanted = chain.clone();
    wanted.push(with_secret("a1"));
    let plan = h.plan(wanted.clone());
    let engine = engine_with_canary(&h);
    // Logs of this whole test binary at TRACE level (other tests' lines too, which is fine:
    // none may hold the canary either).
    let logs = logs();

    let succeeded = engine.apply(&plan, options()).await.unwrap();

    // A second run fails on an agent that also resolved the secret.
    wanted.push(with_secret("a2"));
    let plan = h.plan(wanted);
    h.ssh.fail(addr(Kind::Agent, "a2"));
    let failed = engine.apply(&plan, options()).await.unwrap();

    // The secret was really resolved and written where it belongs.
    for name in ["a1", "a2"] {
        let file = h.ssh.env_file(&addr(Kind::Agent, name)).unwrap_or_default();
        assert_eq!(file, format!("OPENAI_API_KEY={CANARY}\n"));
    }
    assert!(succeeded.is_success());
    assert_eq!(failed.failed.len(), 1);

    let places = [
        ("report Debug", format!("{succeeded:?} {failed:?}")),
        (
            "report JSON",
            format!(
                "{} {}",
                serde_json::to_string(&succeeded).unwrap(),
                serde_json::to_string(&failed).unwrap()
            ),
        ),
        (
            "state JSON",
            serde_json::to_string(&h.store.state()).unwrap(),
        ),
        ("state Debug", format!("{:?}", h.store.state())),
        ("events JSON", h.reporter.json()),
        ("events Debug", format!("{:?}", h.reporter.events())),
        ("logs", logs.text()),
    ];
    for (place, text) in &places {
        assert!(
            !text.is_empty(),
            "{place} is empty, so the check proves nothing"
        );
        assert!(
            !text.contains(CANARY),
            "the canary leaked into the {place}:\n{text}"
        );
    }
    let logs = logs.text();
    assert!(
        logs.contains("step finished"),
        "engine logs were captured:\n{logs}"
    );
    assert!(logs.contains("agent.a1"), "{logs}");
    assert!(
        logs.contains("Secret(****)"),
        "the provider's log was captured:\n{logs}"
    );
    assert!(h.reporter.json().contains("step-failed"));
}
