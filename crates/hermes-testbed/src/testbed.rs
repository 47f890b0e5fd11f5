//! One test run's testbed: its run id, its labels, and the cleanup of everything it made.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hermes_provider_local::Docker;
use tokio::sync::OnceCell;

use crate::cleanup::{self, Removed};
use crate::{
    FakeLlm, FakeLlmOptions, Forbidden, ForbiddenOptions, Latency, NetworkOptions, ROLE_LABEL,
    RUN_LABEL, TESTBED_LABEL, TestNetwork,
};

/// Bound on each async `docker` call of the testbed (image imports included).
const DOCKER_TIMEOUT: Duration = Duration::from_mins(3);
/// Set this environment variable to `1` to keep a run's objects after a test (for debugging);
/// remove them later with [`cleanup::remove_everything_labelled`] or by label.
pub const KEEP_ENV: &str = "HERMES_TESTBED_KEEP";

/// Whether [`KEEP_ENV`] asks to keep this run's objects.
pub(crate) fn keep() -> bool {
    std::env::var(KEEP_ENV).is_ok_and(|v| v == "1")
}

/// One test run. Every container, network and firewall rule it creates carries
/// `hermes-infra.testbed=1` and `hermes-infra.testbed.run=<run id>`; [`Testbed::cleanup`], and
/// dropping the testbed (also on a failed test), remove exactly those.
#[derive(Debug)]
pub struct Testbed {
    docker: Docker,
    program: String,
    run_id: String,
    counter: AtomicUsize,
    tools_image: OnceCell<String>,
}

impl Default for Testbed {
    fn default() -> Self {
        Self::new()
    }
}

impl Testbed {
    /// A new run using the `docker` command on `PATH`.
    pub fn new() -> Self {
        Self::with_program("docker")
    }

    /// A new run using the Docker command line `program`.
    pub fn with_program(program: &str) -> Self {
        Self {
            docker: Docker::new(program, DOCKER_TIMEOUT),
            program: program.to_owned(),
            run_id: uuid::Uuid::new_v4().to_string(),
            counter: AtomicUsize::new(0),
            tools_image: OnceCell::new(),
        }
    }

    /// This run's id (a UUID), the value of [`RUN_LABEL`].
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The async Docker client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The Docker command line program (for blocking calls in `Drop`).
    pub fn program(&self) -> &str {
        &self.program
    }

    /// `--label=K=V` arguments for an object of this run, with its `role` when given.
    pub fn label_args(&self, role: Option<&str>) -> Vec<String> {
        let mut labels = vec![
            format!("--label={TESTBED_LABEL}=1"),
            format!("--label={RUN_LABEL}={}", self.run_id),
        ];
        if let Some(role) = role {
            labels.push(format!("--label={ROLE_LABEL}={role}"));
        }
        labels
    }

    /// A fresh name for an object of this run: `hermes-testbed-<kind>-<run prefix>-<n>`.
    pub fn unique_name(&self, kind: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        format!("hermes-testbed-{kind}-{}-{n}", &self.run_id[..8])
    }

    /// The tools image's reference, built once if needed ([`crate::tools_image::ensure`]).
    pub async fn tools_image(&self) -> anyhow::Result<String> {
        self.tools_image
            .get_or_try_init(|| crate::tools_image::ensure(&self.docker))
            .await
            .cloned()
    }

    /// Creates a network (see [`TestNetwork::create`]).
    pub async fn network(&self, options: NetworkOptions) -> anyhow::Result<TestNetwork> {
        TestNetwork::create(self, options).await
    }

    /// Starts a fake LLM on `network` (see [`FakeLlm::start`]).
    pub async fn fake_llm(
        &self,
        network: &TestNetwork,
        options: FakeLlmOptions,
    ) -> anyhow::Result<FakeLlm> {
        FakeLlm::start(self, network, options).await
    }

    /// Starts a forbidden server on `network` (see [`Forbidden::start`]).
    pub async fn forbidden(
        &self,
        network: &TestNetwork,
        options: ForbiddenOptions,
    ) -> anyhow::Result<Forbidden> {
        Forbidden::start(self, network, options).await
    }

    /// Starts the ACME server on `network` (see [`AcmeServer`]).
    pub async fn acme(&self, network: &TestNetwork) -> anyhow::Result<crate::AcmeServer> {
        crate::AcmeServer::start(self, network).await
    }

    /// Adds `round_trip` of delay to `network` (see [`Latency::add`]).
    pub async fn latency(
        &self,
        network: &TestNetwork,
        round_trip: Duration,
    ) -> anyhow::Result<Latency> {
        Latency::add(self, network, round_trip).await
    }

    /// Runs `command` to its end in a one-shot tools-image container on `network` (for example
    /// `curl` from inside the network), bounded by `timeout`; the container is removed in any
    /// case.
    pub async fn run_tool(
        &self,
        network: &TestNetwork,
        command: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<std::process::Output> {
        let image = self.tools_image().await?;
        let mut args = vec![
            "run".to_owned(),
            "--pull=never".to_owned(),
            format!("--name={}", self.unique_name("tool")),
        ];
        args.extend(self.label_args(Some("tool")));
        args.push(format!("--network={}", network.name()));
        args.push(image);
        args.extend(command.iter().map(|c| (*c).to_owned()));
        crate::container::run_once(&self.program, args, timeout).await
    }

    /// Removes everything this run created ([`cleanup::remove_everything_labelled`]).
    pub async fn cleanup(&self) -> anyhow::Result<Removed> {
        cleanup::remove_everything_labelled(&self.program, &self.run_id).await
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if keep() {
            tracing::warn!(run = %self.run_id, "{KEEP_ENV}=1: keeping this run's objects");
            return;
        }
        match cleanup::remove_everything_labelled_blocking(&self.program, &self.run_id) {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(run = %self.run_id, ?removed, "testbed cleaned up");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(run = %self.run_id, "testbed cleanup failed: {e:#}"),
        }
    }
}
