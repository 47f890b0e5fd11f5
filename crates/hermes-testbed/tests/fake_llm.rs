#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]
//! The fake LLM answers like an OpenAI-compatible server (streaming and not), by its address
//! from this machine and by its DNS alias from inside the network, and records every request.
//! Needs a Docker engine and `mmdebstrap` (the tools image is built once, then cached).

use std::net::SocketAddr;
use std::time::Duration;

use hermes_testbed::{FakeLlmOptions, NetworkOptions, Testbed, http};
use serde_json::{Value, json};

const ANSWER: &str = "The fake model says: all systems nominal.";
const KEY: &str = "test-key-0123";

fn chat(stream: bool) -> Value {
    json!({
        "model": "fake-gpt",
        "messages": [{"role": "user", "content": "status?"}],
        "stream": stream,
    })
}

/// `POST /v1/chat/completions` from this machine, with the key when given.
async fn complete(addr: SocketAddr, body: &Value, key: Option<&str>) -> http::Response {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let bytes = serde_json::to_vec(body).unwrap();
    http::request(
        addr,
        "POST",
        "/v1/chat/completions",
        &headers,
        Some(&bytes),
        http::TIMEOUT,
    )
    .await
    .unwrap()
}

/// The `data:` payloads of a server-sent event stream, in order.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.trim().strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn answers_streaming_and_plain_completions_and_records_requests() {
    let testbed = Testbed::new();
    let network = testbed.network(NetworkOptions::default()).await.unwrap();
    let llm = testbed
        .fake_llm(
            &network,
            FakeLlmOptions {
                answer: ANSWER.to_owned(),
                api_key: Some(KEY.to_owned()),
                ..FakeLlmOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(llm.alias(), "fake-llm.hermes.test");
    assert_eq!(llm.base_url(), "http://fake-llm.hermes.test:8080/v1");
    let addr = llm.addr();
    let auth = format!("Bearer {KEY}");
    let with_key = [("Authorization", auth.as_str())];
    // The agent's Ollama probe is told "not here".
    let probe = http::post_json(addr, "/api/show", &json!({"name": "fake-gpt"}))
        .await
        .unwrap();
    assert_eq!(probe.status, 404);

    let models = http::request(addr, "GET", "/v1/models", &with_key, None, http::TIMEOUT)
        .await
        .unwrap();
    assert_eq!(models.status, 200);
    let models: Value = models.json().unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "fake-gpt");

    // Without the key: 401, OpenAI style.
    let refused = complete(addr, &chat(false), None).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.json::<Value>().unwrap()["error"]["code"],
        "invalid_api_key"
    );

    // Plain completion.
    let plain = complete(addr, &chat(false), Some(KEY)).await;
    assert_eq!(plain.status, 200);
    let plain: Value = plain.json().unwrap();
    assert_eq!(plain["object"], "chat.completion");
    assert_eq!(plain["choices"][0]["message"]["role"], "assistant");
    assert_eq!(plain["choices"][0]["message"]["content"], ANSWER);
    assert_eq!(plain["choices"][0]["finish_reason"], "stop");
    assert!(plain["usage"]["total_tokens"].as_u64().unwrap() > 0);

    // Streaming completion: chunks, then [DONE].
    let mut streaming = chat(true);
    streaming["stream_options"] = json!({"include_usage": true});
    let stream = complete(addr, &streaming, Some(KEY)).await;
    assert_eq!(stream.status, 200);
    assert!(
        stream
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let data = sse_data(&stream.text());
    assert_eq!(data.last().unwrap(), "[DONE]", "{data:?}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, ANSWER);
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert!(
        chunks.last().unwrap()["usage"]["total_tokens"]
            .as_u64()
            .is_some()
    );

    // Recorded: method, path, whether a key came, and the body; not the health checks.
    let recorded = llm.requests().await.unwrap();
    let seen: Vec<(&str, &str, bool)> = recorded
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.authorization))
        .collect();
    assert_eq!(
        seen,
        [
            ("POST", "/api/show", false),
            ("GET", "/v1/models", true),
            ("POST", "/v1/chat/completions", false),
            ("POST", "/v1/chat/completions", true),
            ("POST", "/v1/chat/completions", true),
        ]
    );
    assert!(!recorded[3].is_streaming_completion());
    assert!(recorded[4].is_streaming_completion());
    assert_eq!(recorded[4].body["messages"][0]["content"], "status?");
    llm.clear_requests().await.unwrap();
    assert!(llm.requests().await.unwrap().is_empty());

    // From inside the network, by name: what an agent does.
    let inside = testbed
        .run_tool(
            &network,
            &[
                "curl",
                "-sS",
                "-N",
                "--max-time",
                "10",
                "-H",
                &format!("Authorization: Bearer {KEY}"),
                "-H",
                "Content-Type: application/json",
                "-d",
                &chat(true).to_string(),
                &format!("{}/chat/completions", llm.base_url()),
            ],
            Duration::from_mins(1),
        )
        .await
        .unwrap();
    assert!(inside.status.success(), "{inside:?}");
    let body = String::from_utf8_lossy(&inside.stdout);
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    let recorded = llm.requests().await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].is_streaming_completion() && recorded[0].authorization);

    llm.stop().await.unwrap();
    network.remove().await.unwrap();
    assert!(
        testbed.cleanup().await.unwrap().is_empty(),
        "nothing left behind"
    );
}
