#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test code: a failed unwrap is a failed test; measurements go to stderr"
)]
//! A fixed round-trip delay on a testbed network: added, measured (TCP connect from this machine
//! to a container, and between two containers on the network), and removed again, by
//! `Latency::remove` and by dropping the guard; also on a network found by name
//! (`TestNetwork::existing`), which is left in place. Needs a Docker engine, root, and `iptables`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use hermes_testbed::{FakeLlm, FakeLlmOptions, NetworkOptions, TestNetwork, Testbed, http};

const ADDED: Duration = Duration::from_millis(50);
const SAMPLES: usize = 9;

/// Median time of a TCP connect (one round trip: SYN, SYN-ACK) from this machine to `addr`.
async fn connect_median(addr: SocketAddr) -> Duration {
    let mut times = Vec::new();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let stream =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
                .await
                .unwrap()
                .unwrap();
        times.push(started.elapsed());
        drop(stream);
    }
    times.sort();
    times[SAMPLES / 2]
}

/// Median TCP connect time from a one-shot container on `network` to the fake LLM by name (a
/// fresh connection each time: one `curl` per sample; the name lookup, answered by Docker's
/// resolver inside the container and not delayed, is subtracted).
async fn connect_median_inside(
    testbed: &Testbed,
    network: &TestNetwork,
    llm: &FakeLlm,
) -> Duration {
    let script = format!(
        "for i in $(seq {SAMPLES}); do curl -sS -o /dev/null --max-time 5 -w '%{{time_namelookup}} %{{time_connect}}\\n' \
         http://{}:8080/health || exit 1; done",
        llm.alias()
    );
    let out = testbed
        .run_tool(network, &["sh", "-c", &script], Duration::from_mins(1))
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut times: Vec<Duration> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (lookup, connect) = l.trim().split_once(' ').unwrap();
            let seconds = |s: &str| Duration::from_secs_f64(s.parse().unwrap());
            seconds(connect).saturating_sub(seconds(lookup))
        })
        .collect();
    assert_eq!(times.len(), SAMPLES, "{out:?}");
    times.sort();
    times[SAMPLES / 2]
}

fn mangle_rules() -> String {
    let out = Command::new("iptables")
        .args(["-w", "10", "-t", "mangle", "-S"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn adds_a_measured_round_trip_delay_and_removes_it() {
    let testbed = Testbed::new();
    let network = testbed.network(NetworkOptions::default()).await.unwrap();
    let llm = testbed
        .fake_llm(&network, FakeLlmOptions::default())
        .await
        .unwrap();
    let addr = llm.addr();

    let base = connect_median(addr).await;
    let base_inside = connect_median_inside(&testbed, &network, &llm).await;
    eprintln!("baseline: machine->container {base:?}, container->container {base_inside:?}");
    assert!(base < Duration::from_millis(10), "{base:?}");

    let latency = testbed.latency(&network, ADDED).await.unwrap();
    assert_eq!(latency.rules().len(), 3);
    let rules = mangle_rules();
    assert!(rules.contains(testbed.run_id()), "{rules}");
    let delayed = connect_median(addr).await;
    let delayed_inside = connect_median_inside(&testbed, &network, &llm).await;
    eprintln!(
        "with {ADDED:?}: machine->container {delayed:?}, container->container {delayed_inside:?}"
    );
    for d in [delayed, delayed_inside] {
        assert!(
            d >= Duration::from_millis(48) && d < Duration::from_millis(80),
            "{d:?}"
        );
    }
    // Bulk data from this machine is not throttled by the delay (4 MiB: about 10 round trips of
    // TCP slow start, not seconds per megabyte).
    let body = vec![b'x'; 4 << 20];
    let started = Instant::now();
    let posted = http::request(
        addr,
        "POST",
        "/upload",
        &[],
        Some(&body),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let upload = started.elapsed();
    eprintln!("with {ADDED:?}: 4 MiB machine->container in {upload:?}");
    assert_eq!(posted.status, 404);
    assert!(upload < Duration::from_secs(3), "{upload:?}");

    latency.remove().await.unwrap();
    assert!(!mangle_rules().contains(testbed.run_id()));
    let after = connect_median(addr).await;
    eprintln!("removed: machine->container {after:?}");
    assert!(after < Duration::from_millis(10), "{after:?}");

    // Dropping the guard removes it too.
    let latency = testbed
        .latency(&network, Duration::from_millis(20))
        .await
        .unwrap();
    let dropped = connect_median(addr).await;
    assert!(dropped >= Duration::from_millis(18), "{dropped:?}");
    drop(latency);
    assert!(!mangle_rules().contains(testbed.run_id()));
    assert!(connect_median(addr).await < Duration::from_millis(10));
}

/// A network the testbed did not create (as `hermes-infra`'s local provider makes a stack's),
/// found by name: the delay is added to it, and dropping the handle leaves the network.
#[tokio::test]
async fn adds_a_delay_to_an_existing_network_found_by_name_and_leaves_the_network() {
    let testbed = Testbed::new();
    let made = testbed.network(NetworkOptions::default()).await.unwrap();
    let llm = testbed
        .fake_llm(&made, FakeLlmOptions::default())
        .await
        .unwrap();
    let addr = llm.addr();

    let existing = TestNetwork::existing(&testbed, made.name()).await.unwrap();
    assert_eq!(
        (existing.id(), existing.name(), existing.bridge()),
        (made.id(), made.name(), made.bridge())
    );
    assert_eq!(existing.gateway(), made.gateway());
    let latency = testbed
        .latency(&existing, Duration::from_millis(20))
        .await
        .unwrap();
    let delayed = connect_median(addr).await;
    eprintln!("existing network with 20ms: machine->container {delayed:?}");
    assert!(delayed >= Duration::from_millis(18), "{delayed:?}");
    latency.remove().await.unwrap();

    let inspect = |id: &str| {
        Command::new("docker")
            .args(["network", "inspect", id])
            .output()
            .unwrap()
            .status
            .success()
    };
    let err = existing.remove().await.unwrap_err();
    assert!(
        format!("{err:#}").contains("not created by this testbed"),
        "{err:#}"
    );
    assert!(
        inspect(made.id()),
        "the network was removed through the existing handle"
    );
    let again = TestNetwork::existing(&testbed, made.id()).await.unwrap();
    drop(again);
    assert!(
        inspect(made.id()),
        "dropping the existing handle removed the network"
    );
    assert!(
        TestNetwork::existing(&testbed, "hermes-testbed-no-such-network")
            .await
            .is_err()
    );
}
