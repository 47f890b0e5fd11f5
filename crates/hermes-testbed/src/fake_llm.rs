//! An OpenAI-compatible fake LLM on a testbed network (`assets/fake_llm.py`, Python standard
//! library, run in the tools image): `GET /v1/models`, `POST /v1/chat/completions` (streaming
//! server-sent `chat.completion.chunk` events ending `data: [DONE]`, or one JSON completion),
//! `POST /api/show` answered 404 (the agent's Ollama probe), `GET /health`, and every request
//! recorded at `GET /__requests` for assertions.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, ensure};
use serde::Deserialize;

use crate::container::{self, ContainerGuard, Service};
use crate::{TestNetwork, Testbed, http};

/// The server's script.
pub const SCRIPT: &str = include_str!("../assets/fake_llm.py");
/// The default DNS name on the network (the one `stacks/local.toml` points agents at).
pub const DEFAULT_ALIAS: &str = "fake-llm.hermes.test";
/// The default port (the one `stacks/local.toml` points agents at).
pub const DEFAULT_PORT: u16 = 8080;

/// How the fake LLM answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeLlmOptions {
    /// The assistant's answer to every completion.
    pub answer: String,
    /// The one model id listed by `/v1/models`.
    pub model: String,
    /// DNS name on the network (`--network-alias`).
    pub alias: String,
    /// Port it listens on.
    pub port: u16,
    /// When set, `/v1/*` requests without `Authorization: Bearer <key>` get 401.
    pub api_key: Option<String>,
}

impl Default for FakeLlmOptions {
    fn default() -> Self {
        Self {
            answer: "Hello from the fake LLM.".to_owned(),
            model: "fake-gpt".to_owned(),
            alias: DEFAULT_ALIAS.to_owned(),
            port: DEFAULT_PORT,
            api_key: None,
        }
    }
}

/// One request the fake LLM received.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path with its query string.
    pub path: String,
    /// Whether an `Authorization` header was sent (its value is not recorded).
    pub authorization: bool,
    /// The body: parsed JSON, a string when it was not JSON, `null` when empty.
    pub body: serde_json::Value,
    /// When it arrived (UNIX seconds).
    pub time: f64,
}

impl RecordedRequest {
    /// Whether this is a chat completion asking for a stream.
    pub fn is_streaming_completion(&self) -> bool {
        self.path.starts_with("/v1/chat/completions")
            && self.body.get("stream").and_then(serde_json::Value::as_bool) == Some(true)
    }
}

/// A running fake LLM; its container is removed by [`FakeLlm::stop`] or when dropped.
#[derive(Debug)]
pub struct FakeLlm {
    container: ContainerGuard,
    ip: IpAddr,
    options: FakeLlmOptions,
}

impl FakeLlm {
    /// Starts it on `network` and waits until `/health` answers.
    pub async fn start(
        testbed: &Testbed,
        network: &TestNetwork,
        options: FakeLlmOptions,
    ) -> anyhow::Result<Self> {
        let mut env = vec![
            ("FAKE_LLM_ANSWER".to_owned(), options.answer.clone()),
            ("FAKE_LLM_MODEL".to_owned(), options.model.clone()),
            ("FAKE_LLM_PORT".to_owned(), options.port.to_string()),
        ];
        if let Some(key) = &options.api_key {
            env.push(("FAKE_LLM_API_KEY".to_owned(), key.clone()));
        }
        let started = container::start(
            testbed,
            network,
            Service {
                role: "fake-llm",
                alias: &options.alias,
                script: SCRIPT,
                env,
                ready: (options.port, "/health"),
            },
        )
        .await
        .context("starting the fake LLM")?;
        Ok(Self {
            container: started.container,
            ip: started.ip,
            options,
        })
    }

    /// The container's full id.
    pub fn container_id(&self) -> &str {
        self.container.id()
    }

    /// Its address on the network (reachable from this machine too).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Its DNS name on the network.
    pub fn alias(&self) -> &str {
        &self.options.alias
    }

    /// The model id it lists.
    pub fn model(&self) -> &str {
        &self.options.model
    }

    /// `ip:port`, for requests from this machine.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.options.port)
    }

    /// `http://<alias>:<port>/v1`: the base URL for clients on the network.
    pub fn base_url(&self) -> String {
        format!("http://{}:{}/v1", self.options.alias, self.options.port)
    }

    /// `http://<ip>:<port>/v1`: the base URL from this machine.
    pub fn base_url_by_ip(&self) -> String {
        format!("http://{}/v1", self.addr())
    }

    /// Every request received so far (up to the last 1000), oldest first.
    pub async fn requests(&self) -> anyhow::Result<Vec<RecordedRequest>> {
        let response = http::get(self.addr(), "/__requests").await?;
        ensure!(
            response.status == 200,
            "GET /__requests: {}",
            response.status
        );
        response.json()
    }

    /// Forgets the requests received so far.
    pub async fn clear_requests(&self) -> anyhow::Result<()> {
        let response = http::request(
            self.addr(),
            "DELETE",
            "/__requests",
            &[],
            None,
            http::TIMEOUT,
        )
        .await?;
        ensure!(
            response.status == 200,
            "DELETE /__requests: {}",
            response.status
        );
        Ok(())
    }

    /// Stops and removes it now.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.container.remove().await
    }
}
