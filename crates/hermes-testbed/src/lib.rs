//! Test support for `hermes-infra`: **test support only, never in the release binary** (it is
//! only ever a dev-dependency).
//!
//! A [`Testbed`] is one test run: it labels everything it creates with
//! `hermes-infra.testbed=1` and `hermes-infra.testbed.run=<uuid>`, and removes exactly those
//! things (by id) when asked or when dropped, also when the test fails. On a testbed it starts:
//!
//! - [`TestNetwork`]: a Docker bridge network (optionally `--internal`);
//! - [`FakeLlm`]: an OpenAI-compatible chat completions server (streaming and not) that records
//!   every request, as a container from the [tools image](tools_image) on a testbed network;
//! - [`Forbidden`]: a server that answers anything with `FORBIDDEN-REACHED` and counts hits,
//!   so later tests can prove that agents never reach it;
//! - [`AcmeServer`]: Pebble, Let's Encrypt's test ACME server (Debian's package), with its DNS
//!   stand-in, for certificates issued over ACME;
//! - [`Registry`]: an image registry (Debian's `docker-registry`, TLS, basic auth);
//! - [`Latency`]: a fixed round-trip delay on a testbed network (the kernel here has no `netem`;
//!   see [`latency`] for how it is done instead).
//!
//! [`e2e`] holds helpers for end-to-end tests of the real binary: a temporary stack directory,
//! a bounded [`run_binary`], and a [`LocalStackGuard`] that removes what `apply` created.
//!
//! A run killed before its drop runs (SIGKILL, an abort) leaves its objects behind: find the runs
//! with `docker ps -a --format '{{.Label "hermes-infra.testbed.run"}}'` and remove each with
//! [`remove_everything_labelled`]`("docker", run_id)` (its latency rules included).
//!
//! Network rule: the testbed contacts only loopback and the containers and networks it created
//! ([`http`] refuses any other address); every wait is bounded in count and time.

pub mod acme;
mod blocking;
pub mod cleanup;
mod container;
pub mod e2e;
pub mod fake_llm;
pub mod forbidden;
pub mod http;
pub mod latency;
pub mod network;
pub mod registry;
mod testbed;
pub mod tools_image;

pub use acme::AcmeServer;
pub use cleanup::{Removed, remove_everything_labelled};
pub use e2e::{DerivedImage, LocalStackGuard, StackDir, run_binary};
pub use fake_llm::{FakeLlm, FakeLlmOptions, RecordedRequest};
pub use forbidden::{Forbidden, ForbiddenOptions, Hits};
pub use latency::Latency;
pub use network::{NetworkOptions, TestNetwork};
pub use registry::Registry;
pub use testbed::{KEEP_ENV, Testbed};

/// Label on everything any testbed creates (value `1`).
pub const TESTBED_LABEL: &str = "hermes-infra.testbed";
/// Label carrying the run id of the testbed that created an object.
pub const RUN_LABEL: &str = "hermes-infra.testbed.run";
/// Label naming what a testbed container is (`fake-llm`, `forbidden`, `delayer`).
pub const ROLE_LABEL: &str = "hermes-infra.testbed.role";
