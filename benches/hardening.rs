//! Benchmark (issue 4): host hardening over SSH on real local container hosts, through the real
//! binary. Prints tables; not a pass/fail test (it stops loudly when an apply fails).
//!
//! 1. Cold hardening of 1 and 10 hosts: the hosts are created first with
//!    `apply --target host --yes` (not timed), then `apply --yes` is timed: host-hardening and
//!    docker-engine on every host. Packages come through the local apt cache (one per engine,
//!    kept across runs); the growth of its volume during the apply says whether it was cold.
//! 2. No-op apply (`apply --yes --output json`, everything up to date) of 10 and 30 hosts, with
//!    0 ms and with 50 ms added round trip on the stack's Docker network ([`Latency`] on the
//!    network the local provider made, found with [`TestNetwork::existing`]), 5 runs each:
//!    median and max wall time, and the SSH connections and exec round trips per host read from
//!    the JSON output; the CPU a run costs the hosts (their cgroups) and `hermes-infra`, and
//!    the least wall time that CPU allows on this machine's cores. Target: 30 hosts at 50 ms
//!    under 1.5 s.
//!
//! The 10-host stack of (1) is reused for the 10-host no-ops and then grown to 30 hosts, 10 at a
//! time (created, then hardened; timed and printed as extra lines). Creating many hosts at once
//! on a loaded machine can miss the local provider's boot timeout: creation is retried then.
//! The delay is checked by timing TCP connects from this machine to a host's port 22 with and
//! without it. Every host is removed at the end, also on failure ([`LocalStackGuard`]), after a
//! `destroy --yes`. The load (`uptime`) is printed at the start and the end, and the 1-minute
//! load before each measurement: other work on the machine shows in the figures.

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![allow(
    clippy::unwrap_used,
    reason = "a benchmark that cannot run should stop loudly"
)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use hermes_testbed::{Latency, TestNetwork, Testbed};
use serde_json::Value;
use support::{SHORT_TIMEOUT, Stack, done, load, uptime};

/// A cold hardening (30 hosts of dpkg work on two cores, a cold apt cache).
const HARDEN_TIMEOUT: Duration = Duration::from_mins(40);
/// Hosts created and hardened at once when growing the stack.
const GROW_STEP: u32 = 10;
/// No-op runs per case.
const RUNS: usize = 5;
/// The added round trip.
const DELAY: Duration = Duration::from_millis(50);
/// TCP connects timed for the delay check.
const CONNECT_SAMPLES: usize = 7;
/// The no-op target for 30 hosts at 50 ms.
const TARGET: Duration = Duration::from_millis(1500);
/// The shared apt cache container of the local provider.
const APT_CACHE: &str = "hermes-infra-apt-cache";

/// The stack file of `count` container hosts and nothing else.
fn hosts_only(count: u32) -> String {
    format!("[provider.local]\nhost-kind = \"container\"\n[hosts.node]\ncount = {count}\n")
}

/// Asserts that the apply hardened and installed Docker on `node-{from..=to}`.
fn assert_hardened(report: &Value, from: u32, to: u32) {
    let done = done(report);
    for i in from..=to {
        for phase in ["host-hardening", "docker-engine"] {
            let address = format!("{phase}.node-{i}");
            assert!(done.contains(&address), "{address} not done: {report}");
        }
    }
}

/// MiB in the apt cache's volume, `None` when the cache is not running.
fn apt_cache_mib() -> Option<u64> {
    let out = Command::new("docker")
        .args(["exec", APT_CACHE, "du", "-sm", "/var/cache/apt-cacher-ng"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether the cache served the apply: warm when it grew less than a few MiB (index files).
fn cache_state(before: Option<u64>, after: Option<u64>) -> String {
    match (before, after) {
        (None, Some(a)) => format!("cold (started by this apply; {a} MiB after)"),
        (Some(b), Some(a)) if a.saturating_sub(b) < 5 => {
            format!("warm ({b} MiB before, +{} MiB)", a.saturating_sub(b))
        }
        (Some(b), Some(a)) => format!("cold ({b} MiB before, +{} MiB fetched)", a - b),
        _ => "unknown (cache not readable)".to_owned(),
    }
}

/// Median TCP connect time from this machine to `addr` (one round trip: SYN, SYN-ACK). The
/// connects are 1.1 s apart: the hosts' firewall limits new SSH connections per source to a
/// burst of 10, then 1 per second, and a dropped SYN would be retried after a second.
fn connect_median(addr: SocketAddr) -> Duration {
    let mut times: Vec<Duration> = (0..CONNECT_SAMPLES)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(1100));
            let started = Instant::now();
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
            let took = started.elapsed();
            drop(stream);
            took
        })
        .collect();
    times.sort();
    times[CONNECT_SAMPLES / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU time used so far by the stack's host containers (their cgroups' `usage_usec`, summed):
/// `None` when a cgroup cannot be read (another cgroup layout).
fn hosts_cpu(stack: &Stack) -> Option<Duration> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=hermes-infra/stack={}", stack.dir.stack_name()),
        ])
        .output()
        .ok()?;
    let mut total = 0_u64;
    for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let stat = [
            format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat"),
            format!("/sys/fs/cgroup/docker/{id}/cpu.stat"),
            format!("/sys/fs/cgroup/unified/docker/{id}/cpu.stat"),
        ]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())?;
        total += stat
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))?
            .trim()
            .parse::<u64>()
            .ok()?;
    }
    Some(Duration::from_micros(total))
}

/// CPU time (user and system) of this process's finished children: the `hermes-infra` runs.
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: cutime and cstime are the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(13).copied().unwrap_or(0) + fields.get(14).copied().unwrap_or(0);
    // The kernel reports in USER_HZ, 100 per second on Linux.
    Duration::from_millis(ticks * 10)
}

/// One no-op case: 5 runs, their times and the round trips per host.
struct NoOp {
    hosts: u32,
    delay: Duration,
    load: String,
    times: Vec<Duration>,
    /// CPU the hosts used per run, all hosts together (`None`: cgroups unreadable).
    hosts_cpu: Option<Duration>,
    /// CPU `hermes-infra` used per run.
    tool_cpu: Duration,
    /// (connections, exec round trips) -> how many host-runs had it.
    trips: BTreeMap<(u64, u64), usize>,
}

impl NoOp {
    fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t[t.len() / 2]
    }

    fn max(&self) -> Duration {
        self.times.iter().copied().max().unwrap_or_default()
    }

    fn range(&self, pick: impl Fn(&(u64, u64)) -> u64) -> String {
        let lo = self.trips.keys().map(&pick).min().unwrap_or_default();
        let hi = self.trips.keys().map(&pick).max().unwrap_or_default();
        if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        }
    }
}

/// Runs the no-op apply [`RUNS`] times on `stack` of `hosts` hosts.
fn no_op(stack: &Stack, hosts: u32, delay: Duration) -> NoOp {
    let mut case = NoOp {
        hosts,
        delay,
        load: load(),
        times: Vec::new(),
        hosts_cpu: None,
        tool_cpu: Duration::ZERO,
        trips: BTreeMap::new(),
    };
    let hosts_before = hosts_cpu(stack);
    let tool_before = children_cpu();
    for _ in 0..RUNS {
        let (elapsed, report) = stack.apply(&[], SHORT_TIMEOUT);
        assert!(done(&report).is_empty(), "not a no-op: {report}");
        let per_host = report["hosts"].as_object().unwrap();
        assert_eq!(
            per_host.len(),
            usize::try_from(hosts).unwrap(),
            "round trips not reported for every host: {report}"
        );
        for (host, r) in per_host {
            let pair = (
                r["connections"].as_u64().unwrap(),
                r["exec_round_trips"].as_u64().unwrap(),
            );
            if pair != (1, 1) {
                println!(
                    "  note: no-op on {host}: {} connection(s), {} exec round trip(s)",
                    pair.0, pair.1
                );
            }
            *case.trips.entry(pair).or_default() += 1;
        }
        case.times.push(elapsed);
    }
    let runs = u32::try_from(RUNS).unwrap();
    case.tool_cpu = children_cpu().saturating_sub(tool_before) / runs;
    case.hosts_cpu = hosts_before
        .zip(hosts_cpu(stack))
        .map(|(before, after)| after.saturating_sub(before) / runs);
    println!(
        "  no-op of {hosts} hosts at +{} ms: median {:.2} s, max {:.2} s (load {}); CPU per run: \
         hosts {}, hermes-infra {:.0} ms",
        delay.as_millis(),
        case.median().as_secs_f64(),
        case.max().as_secs_f64(),
        case.load,
        case.hosts_cpu
            .map_or_else(|| "unreadable".to_owned(), |c| format!("{:.0} ms", ms(c))),
        ms(case.tool_cpu)
    );
    case
}

/// The least wall time the CPU work of one run allows on this machine's cores: hosts and tool
/// share them here, where each real host would have CPUs of its own.
fn cpu_floor(case: &NoOp) -> Option<Duration> {
    let cores = std::thread::available_parallelism().ok()?;
    Some((case.hosts_cpu? + case.tool_cpu) / u32::try_from(cores.get()).ok()?)
}

/// Adds [`DELAY`] to `stack`'s network, checks it with TCP connects to node-1:22, and prints
/// the check.
fn add_delay(rt: &tokio::runtime::Runtime, testbed: &Testbed, stack: &Stack) -> Latency {
    let endpoint = stack.ssh_endpoint("node-1");
    let before = connect_median(endpoint);
    let latency = rt.block_on(async {
        let network = TestNetwork::existing(testbed, &stack.network()).await?;
        testbed.latency(&network, DELAY).await
    });
    let latency = latency.unwrap();
    let after = connect_median(endpoint);
    println!(
        "  delay check on {} ({}): TCP connect to node-1:22 from this machine, median of \
         {CONNECT_SAMPLES}: {:.2} ms without, {:.2} ms with {} ms added ({})",
        stack.network(),
        endpoint.ip(),
        ms(before),
        ms(after),
        DELAY.as_millis(),
        if after >= DELAY.mul_f64(0.95) && after < DELAY * 2 {
            "in force"
        } else {
            "NOT as expected"
        }
    );
    latency
}

fn main() {
    println!("hardening: load at start: {}", uptime());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let testbed = Testbed::new();

    // 1. Cold hardening of 1 host, then of 10 hosts.
    let mut cold = Vec::new();
    let mut ten = None;
    for count in [1_u32, 10] {
        let stack = Stack::new(&format!("bench-harden{count}"), count, hosts_only);
        let created = stack.create(count);
        println!(
            "  {count} host(s) created with --target host in {:.1} s (not timed below)",
            created.as_secs_f64()
        );
        let cache_before = apt_cache_mib();
        let load_before = load();
        let (elapsed, report) = stack.apply(&[], HARDEN_TIMEOUT);
        assert_hardened(&report, 1, count);
        let cache = cache_state(cache_before, apt_cache_mib());
        println!(
            "  cold hardening of {count} host(s): {:.1} s (load {load_before}), apt cache {cache}",
            elapsed.as_secs_f64()
        );
        cold.push((count, elapsed, load_before, cache));
        if count == 10 {
            ten = Some(stack);
        } else {
            stack.destroy();
        }
    }
    let stack = ten.unwrap();

    // 2. No-ops of 10 hosts, then of 30 (the same stack grown by 10 hosts at a time).
    let mut no_ops = Vec::new();
    no_ops.push(no_op(&stack, 10, Duration::ZERO));
    let latency = add_delay(&rt, &testbed, &stack);
    no_ops.push(no_op(&stack, 10, DELAY));
    rt.block_on(latency.remove()).unwrap();

    for count in (10 + GROW_STEP..=30).step_by(usize::try_from(GROW_STEP).unwrap()) {
        let created = stack.create(count);
        let cache_before = apt_cache_mib();
        let (grown, report) = stack.apply(&[], HARDEN_TIMEOUT);
        assert_hardened(&report, count - GROW_STEP + 1, count);
        println!(
            "  grown to {count} hosts: {GROW_STEP} created in {:.1} s, then apply ({GROW_STEP} \
             cold hardenings, {} no-ops) in {:.1} s, apt cache {}",
            created.as_secs_f64(),
            count - GROW_STEP,
            grown.as_secs_f64(),
            cache_state(cache_before, apt_cache_mib())
        );
    }
    no_ops.push(no_op(&stack, 30, Duration::ZERO));
    let latency = add_delay(&rt, &testbed, &stack);
    no_ops.push(no_op(&stack, 30, DELAY));
    rt.block_on(latency.remove()).unwrap();
    let destroyed = stack.destroy();
    println!("  30 hosts destroyed in {:.1} s", destroyed.as_secs_f64());

    println!();
    println!("hardening: cold apply (hosts created first with `apply --target host`, not timed)");
    println!(
        "{:>6} {:>10} {:>13} {:>6}  apt cache",
        "hosts", "apply (s)", "per host (s)", "load"
    );
    for (count, elapsed, load, cache) in &cold {
        println!(
            "{count:>6} {:>10.1} {:>13.1} {load:>6}  {cache}",
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() / f64::from(*count)
        );
    }
    println!();
    println!(
        "hardening: no-op apply (`apply --yes --output json`, nothing to do), {RUNS} runs each"
    );
    println!(
        "{:>6} {:>10} {:>11} {:>8} {:>6} {:>12} {:>11} {:>14} {:>13} {:>14}",
        "hosts",
        "added RTT",
        "median (s)",
        "max (s)",
        "load",
        "conns/host",
        "execs/host",
        "host CPU/host",
        "tool CPU",
        "CPU floor (s)"
    );
    for case in &no_ops {
        let per_host = case.hosts_cpu.map_or_else(
            || "?".to_owned(),
            |c| format!("{:.0} ms", ms(c) / f64::from(case.hosts)),
        );
        let floor =
            cpu_floor(case).map_or_else(|| "?".to_owned(), |f| format!("{:.2}", f.as_secs_f64()));
        println!(
            "{:>6} {:>7} ms {:>11.2} {:>8.2} {:>6} {:>12} {:>11} {:>14} {:>10.0} ms {:>14}",
            case.hosts,
            case.delay.as_millis(),
            case.median().as_secs_f64(),
            case.max().as_secs_f64(),
            case.load,
            case.range(|p| p.0),
            case.range(|p| p.1),
            per_host,
            ms(case.tool_cpu),
            floor
        );
    }
    println!(
        "  (host CPU: the hosts' cgroups, sshd, PAM, logind, sudo and the facts script together; \
         CPU floor: all CPU of a run over this machine's {} cores, the least wall time it allows \
         when the hosts share them)",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    let target = no_ops
        .iter()
        .find(|c| c.hosts == 30 && c.delay == DELAY)
        .unwrap();
    println!();
    println!(
        "target: no-op of 30 hosts at {} ms under {:.1} s: median {:.2} s, max {:.2} s: {}",
        DELAY.as_millis(),
        TARGET.as_secs_f64(),
        target.median().as_secs_f64(),
        target.max().as_secs_f64(),
        if target.max() < TARGET {
            "met (every run)"
        } else if target.median() < TARGET {
            "met by the median, not by every run"
        } else {
            "NOT met"
        }
    );
    println!("hardening: load at end: {}", uptime());
    drop(testbed);
}
