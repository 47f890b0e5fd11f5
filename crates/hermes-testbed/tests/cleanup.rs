#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]
//! A testbed run removes exactly what it created: its containers, networks and latency rules,
//! whether by `cleanup()` or by being dropped, and never a container of another run or of the
//! product, even one carrying the testbed label. Needs a Docker engine, root, and `iptables`.

use std::process::Command;
use std::time::Duration;

use hermes_testbed::{
    FakeLlmOptions, ForbiddenOptions, NetworkOptions, RUN_LABEL, TESTBED_LABEL, Testbed,
    remove_everything_labelled,
};

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn exists(kind: &str, id: &str) -> bool {
    Command::new("docker")
        .args([kind, "inspect", id])
        .output()
        .unwrap()
        .status
        .success()
}

fn labelled(run_id: &str) -> String {
    let filter = format!("label={RUN_LABEL}={run_id}");
    let containers = docker(&["ps", "-aq", "--filter", &filter]);
    let networks = docker(&["network", "ls", "-q", "--filter", &filter]);
    format!("{containers}{networks}")
}

fn rules_mentioning(run_id: &str) -> usize {
    let out = Command::new("iptables")
        .args(["-w", "10", "-t", "mangle", "-S"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).matches(run_id).count()
}

/// A container that is not this run's, removed by id at the end whatever happens.
struct Bystander(String);

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.0])
            .output();
    }
}

#[tokio::test]
async fn removes_only_what_this_run_created() {
    let testbed = Testbed::new();
    let image = testbed.tools_image().await.unwrap();
    // The nearest miss: the testbed label, but another run's id.
    let other_run = "00000000-0000-4000-8000-000000000000";
    let bystander = Bystander(docker(&[
        "run",
        "-d",
        "--pull=never",
        "--label",
        &format!("{TESTBED_LABEL}=1"),
        "--label",
        &format!("{RUN_LABEL}={other_run}"),
        &image,
        "sleep",
        "300",
    ]));

    let network = testbed.network(NetworkOptions::default()).await.unwrap();
    let llm = testbed
        .fake_llm(&network, FakeLlmOptions::default())
        .await
        .unwrap();
    let forbidden = testbed
        .forbidden(&network, ForbiddenOptions::default())
        .await
        .unwrap();
    let latency = testbed
        .latency(&network, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(rules_mentioning(testbed.run_id()), 3);

    let removed = testbed.cleanup().await.unwrap();
    assert_eq!(
        removed.containers.len(),
        3,
        "fake LLM, forbidden, delayer: {removed:?}"
    );
    assert!(removed.containers.iter().any(|c| c == llm.container_id()));
    assert!(
        removed
            .containers
            .iter()
            .any(|c| c == forbidden.container_id())
    );
    assert_eq!(removed.networks, [network.id()]);
    assert_eq!(removed.firewall_rules.len(), 3, "{removed:?}");
    assert_eq!(labelled(testbed.run_id()), "");
    assert_eq!(rules_mentioning(testbed.run_id()), 0);
    assert!(
        exists("container", &bystander.0),
        "another run's container survives"
    );
    // The pieces' own guards now find nothing left to remove.
    drop((latency, forbidden, llm, network));
    assert!(exists("container", &bystander.0));

    // A second cleanup of the same run has nothing to do; another run's cleanup removes only it.
    assert!(testbed.cleanup().await.unwrap().is_empty());
    let theirs = remove_everything_labelled("docker", other_run)
        .await
        .unwrap();
    assert_eq!(theirs.containers, std::slice::from_ref(&bystander.0));
    assert!(!exists("container", &bystander.0));
}

#[tokio::test]
async fn dropping_the_testbed_removes_what_its_pieces_left() {
    let testbed = Testbed::new();
    let run_id = testbed.run_id().to_owned();
    let network = testbed.network(NetworkOptions::default()).await.unwrap();
    let llm = testbed
        .fake_llm(&network, FakeLlmOptions::default())
        .await
        .unwrap();
    let latency = testbed
        .latency(&network, Duration::from_millis(10))
        .await
        .unwrap();
    let (network_id, llm_id) = (network.id().to_owned(), llm.container_id().to_owned());
    // Guards that never run (leaked, as after a crash in a helper): the testbed still cleans.
    std::mem::forget((network, llm, latency));
    assert!(exists("container", &llm_id));
    drop(testbed);
    assert!(!exists("container", &llm_id));
    assert!(!exists("network", &network_id));
    assert_eq!(labelled(&run_id), "");
    assert_eq!(rules_mentioning(&run_id), 0);
}
