//! A fixed round-trip delay on a testbed network, for benchmarks.
//!
//! **Why not `tc netem`:** this machine's kernel (6.18, Firecracker) is built without
//! `CONFIG_NET_SCH_NETEM` and without module support (`CONFIG_MODULES` unset), so
//! `tc qdisc add dev br-… root netem delay 50ms` fails with "Specified qdisc kind is unknown" and
//! no `modprobe` can change that; containers share the kernel, so no network namespace has it
//! either. The kernel does have `NFQUEUE` (`xt_NFQUEUE`, `nfnetlink_queue`) and `br_netfilter`.
//!
//! **What is done instead:** `iptables` rules in this machine's `mangle` table send packets coming
//! out of the network's containers to netlink queues, and a delayer (`assets/delayer.py`, Python
//! standard library, in a tools-image container with `--network=host --cap-add=NET_ADMIN`) holds
//! each packet, then accepts it, in order:
//!
//! - bridged between two containers of the network (`FORWARD`, physdev bridged): half the round
//!   trip, so a container-to-container round trip (two such packets) gains `round_trip`;
//! - from a container to this machine (`INPUT`) or routed beyond (`FORWARD`, not bridged): the
//!   whole round trip; what this machine sends or routes into the network is not held, so a round
//!   trip between this machine (or anything routed) and a container gains `round_trip` too.
//!
//! Measured here with 50 ms: TCP connect from this machine to a container 50.7 ms, and between
//! two containers 50.8 ms (0.05 ms and 0.15 ms without). Packets this machine sends are not held
//! because the sending socket still owns them there: TCP small queues then throttle the sender
//! to a few packets per delay (tried: 5 MiB took 23 s). As done, bulk data is bounded by TCP slow
//! start and by the delayer (one Python process): 8 MiB from this machine to a container in
//! 0.13 s with 10 ms and 0.6 s with 50 ms; 32 MiB from a container to this machine at 29-40 MiB/s
//! whatever the delay (1.7 GiB/s without the delayer). Fine for round-trip-bound work (SSH, API
//! calls, image pulls of a few MB), not for bandwidth tests.
//!
//! Docker's DNS (127.0.0.11 inside each container) is not delayed; IPv4 only. Round trips
//! between two delayed networks gain both delays. A container removed right after its process
//! exits loses whatever its kernel still had in flight (wait for the peer's answer first).
//!
//! The rules use `--queue-bypass` and the queues are bound fail-open, so traffic is never
//! stopped: without the delayer, or with a queue full (8192 packets), packets pass undelayed. The
//! rules carry the run label as their comment and the delayer container the run labels, so
//! [`crate::remove_everything_labelled`] finds both.

pub(crate) mod firewall;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use crate::container::ContainerGuard;
use crate::{RUN_LABEL, TestNetwork, Testbed};

use firewall::Queues;

/// The delayer's script.
pub const SCRIPT: &str = include_str!("../assets/delayer.py");
/// How long the delayer may take to bind its queues.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// Queue numbers are drawn from this range.
const QUEUES: std::ops::RangeInclusive<u16> = 10_000..=60_000;
/// How many queue numbers are tried when one is taken.
const ATTEMPTS: usize = 5;

/// A delay in force on one network: removed by [`Latency::remove`] or when dropped (rules
/// first, then the delayer).
#[derive(Debug)]
pub struct Latency {
    rules: Vec<firewall::Rule>,
    delayer: Option<ContainerGuard>,
    round_trip: Duration,
}

impl Latency {
    /// Adds `round_trip` to every round trip across `network` (see the module documentation
    /// for where packets are held). `network` may be one the testbed did not create, such as a
    /// local stack's `hermes-<stack>-<env>`, found with [`TestNetwork::existing`]; the rules
    /// and the delayer are this testbed's all the same.
    pub async fn add(
        testbed: &Testbed,
        network: &TestNetwork,
        round_trip: Duration,
    ) -> anyhow::Result<Self> {
        let bridge = network.bridge().to_owned();
        ensure!(
            Path::new("/sys/class/net").join(&bridge).exists(),
            "network {} has no bridge interface {bridge} on this machine (is the Docker engine \
             elsewhere?): latency works on a local engine only",
            network.name()
        );
        let full_us = u64::try_from(round_trip.as_micros()).context("delay too long")?;
        let image = testbed.tools_image().await?;
        let (delayer, queues) = start_delayer(testbed, &image, full_us).await?;
        let comment = format!("{RUN_LABEL}={}", testbed.run_id());
        let mut latency = Self {
            rules: Vec::new(),
            delayer: Some(delayer),
            round_trip,
        };
        for rule in firewall::rules(&bridge, queues, &comment) {
            let r = rule.clone();
            tokio::task::spawn_blocking(move || firewall::insert(&r))
                .await
                .context("iptables thread")??;
            latency.rules.push(rule);
        }
        tracing::info!(bridge = %bridge, ?queues, ?round_trip, "testbed latency added");
        Ok(latency)
    }

    /// The round-trip delay added.
    pub fn round_trip(&self) -> Duration {
        self.round_trip
    }

    /// The rules in force, as `iptables -S` prints them.
    pub fn rules(&self) -> Vec<String> {
        self.rules.iter().map(firewall::Rule::shown).collect()
    }

    /// Removes the delay now: the rules, then the delayer.
    pub async fn remove(mut self) -> anyhow::Result<()> {
        let rules = std::mem::take(&mut self.rules);
        let delayer = self.delayer.take();
        tokio::task::spawn_blocking(move || delete_rules(&rules))
            .await
            .context("iptables thread")??;
        if let Some(d) = delayer {
            d.remove().await?;
        }
        Ok(())
    }
}

fn delete_rules(rules: &[firewall::Rule]) -> anyhow::Result<()> {
    let mut first = None;
    for rule in rules {
        if let Err(e) = firewall::delete(rule) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

impl Drop for Latency {
    fn drop(&mut self) {
        if crate::testbed::keep() {
            return;
        }
        if let Err(e) = delete_rules(&self.rules) {
            tracing::warn!("cannot remove testbed latency rules: {e:#}");
        }
        // The delayer's own guard removes its container next.
    }
}

/// Starts the delayer on two free queue numbers (retrying when one turns out to be taken).
async fn start_delayer(
    testbed: &Testbed,
    image: &str,
    full_us: u64,
) -> anyhow::Result<(ContainerGuard, Queues)> {
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        let queues = pick_queues();
        let mut args = vec![
            "run".to_owned(),
            "-d".to_owned(),
            "--pull=never".to_owned(),
            format!("--name={}", testbed.unique_name("delayer")),
            "--network=host".to_owned(),
            "--cap-add=NET_ADMIN".to_owned(),
        ];
        args.extend(testbed.label_args(Some("delayer")));
        args.extend([
            image.to_owned(),
            "python3".to_owned(),
            "-c".to_owned(),
            SCRIPT.to_owned(),
            format!("{}:{}", queues.bridged, full_us / 2),
            format!("{}:{full_us}", queues.leaving),
        ]);
        let id = testbed.docker().run(&args).await?.trim().to_owned();
        let guard = ContainerGuard::new(testbed.program(), &id);
        match wait_bound(testbed, &id).await? {
            None => return Ok((guard, queues)),
            Some(logs) if logs.contains("[Errno 16]") => last = logs,
            Some(logs) => bail!("the latency delayer did not start; its output:\n{logs}"),
        }
    }
    bail!("no free netlink queues after {ATTEMPTS} attempts; last delayer output:\n{last}")
}

/// Waits until the delayer says it is bound (`None`), or returns its output when it stopped.
async fn wait_bound(testbed: &Testbed, id: &str) -> anyhow::Result<Option<String>> {
    let started = Instant::now();
    while started.elapsed() < READY_WITHIN {
        if logs(testbed, id).await.contains("delayer ready") {
            return Ok(None);
        }
        let running = testbed
            .docker()
            .run(["inspect", "--format", "{{.State.Running}}", id])
            .await?;
        if running.trim() != "true" {
            return Ok(Some(logs(testbed, id).await));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the latency delayer did not bind its queues within {READY_WITHIN:?}")
}

/// Both output streams of container `id`.
async fn logs(testbed: &Testbed, id: &str) -> String {
    let out = tokio::process::Command::new(testbed.program())
        .args(["logs", id])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(20), out).await {
        Ok(Ok(o)) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        _ => String::new(),
    }
}

/// Two distinct queue numbers in [`QUEUES`] not bound right now (per
/// `/proc/net/netfilter/nfnetlink_queue`).
fn pick_queues() -> Queues {
    let mut used: Vec<u16> = std::fs::read_to_string("/proc/net/netfilter/nfnetlink_queue")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let bridged = pick_queue(&used);
    used.push(bridged);
    Queues {
        bridged,
        leaving: pick_queue(&used),
    }
}

/// A random queue number not in `used` (the lowest free one when random picks keep hitting used
/// ones; the range's start when none is free: binding then fails and is retried).
fn pick_queue(used: &[u16]) -> u16 {
    let span = u32::from(QUEUES.end() - QUEUES.start()) + 1;
    for _ in 0..20 {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        let random = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let queue = QUEUES.start() + u16::try_from(random % span).unwrap_or(0);
        if !used.contains(&queue) {
            return queue;
        }
    }
    QUEUES
        .clone()
        .find(|q| !used.contains(q))
        .unwrap_or(*QUEUES.start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_numbers_are_free_and_distinct() {
        for _ in 0..50 {
            let q = pick_queues();
            assert_ne!(q.bridged, q.leaving);
            assert!(QUEUES.contains(&q.bridged) && QUEUES.contains(&q.leaving));
        }
    }
}
