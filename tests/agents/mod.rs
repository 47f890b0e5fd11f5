//! Helpers for the agent tests: a host's reverse proxy seen from this machine (its local CA,
//! chat completions by hostname), an agent's API key as its host keeps it, and the addresses an
//! apply report lists.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use std::fmt::Write as _;
use std::process::Command;

use hermes_testbed::{FakeLlm, FakeLlmOptions, TestNetwork, Testbed};
use serde_json::Value;

use crate::hardening::Stack;

/// The stack's Docker network, as a testbed network (the testbed's servers join it).
pub(crate) async fn network_of(testbed: &Testbed, stack: &Stack) -> TestNetwork {
    TestNetwork::existing(testbed, &stack.network())
        .await
        .unwrap()
}

/// The testbed's fake LLM on `network` (`fake-llm.hermes.test:8080`), answering `answer`.
pub(crate) async fn fake_llm(testbed: &Testbed, network: &TestNetwork, answer: &str) -> FakeLlm {
    testbed
        .fake_llm(
            network,
            FakeLlmOptions {
                answer: answer.to_owned(),
                ..FakeLlmOptions::default()
            },
        )
        .await
        .unwrap()
}

/// A host's TLS reverse proxy, reached from this machine by hostname, trusting the host's
/// local CA (copied to a scratch directory).
pub(crate) struct Proxy {
    address: String,
    scratch: tempfile::TempDir,
}

impl Proxy {
    /// The proxy of `host`, trusting the host's local CA.
    pub(crate) fn of(stack: &Stack, host: &str) -> Self {
        let ca = stack
            .on(host, "sudo cat /etc/hermes-infra/proxy/ca/ca.crt")
            .ok()
            .stdout;
        Self::trusting(stack, host, &ca)
    }

    /// The proxy of `host`, trusting only `ca` (PEM).
    pub(crate) fn trusting(stack: &Stack, host: &str, ca: &str) -> Self {
        let scratch = tempfile::tempdir().unwrap();
        std::fs::write(scratch.path().join("ca.crt"), ca).unwrap();
        Self {
            address: stack.address(host),
            scratch,
        }
    }

    /// A chat completion at `https://hostname/` with `key` (sent from a header file, never in
    /// the process list): curl's exit code, the HTTP status, the body.
    pub(crate) fn chat(&self, hostname: &str, key: Option<&str>) -> (i32, String, String) {
        let headers = self.scratch.path().join("headers");
        let mut lines = "Content-Type: application/json\n".to_owned();
        if let Some(key) = key {
            let _ = writeln!(lines, "Authorization: Bearer {key}");
        }
        std::fs::write(&headers, lines).unwrap();
        let ca = self.scratch.path().join("ca.crt");
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "120",
                "--resolve",
                &format!("{hostname}:443:{}", self.address),
                "--cacert",
                ca.to_str().unwrap(),
                "-H",
                &format!("@{}", headers.display()),
                "-w",
                "\n%{http_code}",
                "-d",
                r#"{"model":"agent","messages":[{"role":"user","content":"hi"}]}"#,
                &format!("https://{hostname}/v1/chat/completions"),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (
            out.status.code().unwrap_or(-1),
            status.to_owned(),
            body.to_owned(),
        )
    }
}

impl Proxy {
    /// A request whose TLS name is `sni` and whose `Host` header is `host`, with `key`: the
    /// HTTP status.
    pub(crate) fn misrouted(&self, sni: &str, host: &str, key: &str) -> String {
        let headers = self.scratch.path().join("headers");
        std::fs::write(
            &headers,
            format!("Host: {host}\nAuthorization: Bearer {key}\n"),
        )
        .unwrap();
        let ca = self.scratch.path().join("ca.crt");
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "--max-time",
                "30",
                "--resolve",
                &format!("{sni}:443:{}", self.address),
                "--cacert",
                ca.to_str().unwrap(),
                "-H",
                &format!("@{}", headers.display()),
                "-w",
                "%{http_code}",
                &format!("https://{sni}/v1/models"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The API key agent `agent` answers on `host` (kept in its data directory's `.env`).
pub(crate) fn api_key(stack: &Stack, host: &str, agent: &str) -> String {
    stack
        .on(
            host,
            &format!(
                "sudo sed -n \"s/^API_SERVER_KEY='\\(.*\\)'$/\\1/p\" /srv/hermes/{agent}/data/.env"
            ),
        )
        .ok()
        .stdout
        .trim()
        .to_owned()
}

/// The addresses listed under `key` (`done`, `failed`) in an apply report, sorted.
pub(crate) fn addresses(report: &Value, key: &str) -> Vec<String> {
    let mut found: Vec<String> = report[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| d["address"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}
