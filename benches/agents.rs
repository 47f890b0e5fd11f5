//! Benchmark (issue 5): Hermes agents on real local container hosts, through the real binary:
//! 10 hosts with 3 agents each (the real gateway from the image `image build` makes, each
//! behind its egress proxy, with a hostname on its host's TLS reverse proxy). Prints a table;
//! not a pass/fail test (it stops loudly when an apply fails or an agent is not healthy).
//!
//! 1. The hosts are created and hardened first (`apply --target docker-engine`), and the image
//!    built (`image build`); neither is timed.
//! 2. Deploy: `apply` of the 30 agents, timed: the images go to each host over SSH, each agent
//!    starts in a scratch home, then on its data, health-gated; the reverse proxies are set up.
//! 3. No-op: `apply` again, timed (nothing to do).
//! 4. Rolling upgrade: the stack pins another image (the built one with one more label: a
//!    new id, as a new release would have), `apply` timed: the new image goes to every host,
//!    every agent is replaced, health-gated.
//!
//! After 2 and 4, `status` must report every agent healthy. The hosts are removed at the end,
//! also on failure (`LocalStackGuard`), after a `destroy --yes`; the derived image too
//! ([`DerivedImage`]).

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![allow(
    clippy::unwrap_used,
    reason = "a benchmark that cannot run should stop loudly"
)]

mod support;

use std::fmt::Write as _;
use std::time::Duration;

use hermes_testbed::DerivedImage;
use serde_json::Value;
use support::{SHORT_TIMEOUT, Stack, done, load, uptime};

/// Hosts in the stack.
const HOSTS: u32 = 10;
/// Agents per host.
const AGENTS_PER_HOST: u32 = 3;
/// Hardening 10 hosts, building the image, deploying or upgrading 30 agents.
const LONG_TIMEOUT: Duration = Duration::from_hours(1);

/// The stack: `count` container hosts, [`AGENTS_PER_HOST`] agents on each (`n<i>-a<j>`),
/// `image` as the body of its `[image]` table. The model's address is never called: a
/// gateway becomes healthy without asking it anything.
fn body_with(count: u32, image: &str) -> String {
    let mut text = format!(
        "[provider.local]\nhost-kind = \"container\"\n[hosts.node]\ncount = {count}\n\
         [proxy]\ntls = \"self-signed\"\n"
    );
    if !image.is_empty() {
        let _ = writeln!(text, "[image]\n{image}");
    }
    for host in 1..=count {
        for agent in 1..=AGENTS_PER_HOST {
            let _ = write!(
                text,
                "[agents.n{host}-a{agent}]\nhost = \"node-{host}\"\n\
                 hostname = \"n{host}-a{agent}.bench.localhost\"\n\
                 model = {{ provider = \"custom\", model = \"m\", base-url = \"http://model.invalid:8080/v1\" }}\n\
                 limits = {{ memory = \"768m\", cpus = 1.0, pids = 256 }}\n"
            );
        }
    }
    text
}

fn body(count: u32) -> String {
    body_with(count, "")
}

/// Asserts that `status` reports every agent healthy; returns how many there are.
fn all_healthy(stack: &Stack) -> usize {
    let (_, stdout) = stack.run("status", &["--output", "json"], SHORT_TIMEOUT);
    let status: Value = serde_json::from_str(&stdout).unwrap();
    let agents = status["agents"].as_array().unwrap();
    for agent in agents {
        assert_eq!(agent["health"], "healthy", "{status:#}");
    }
    agents.len()
}

/// The images sent in an apply, summed over hosts: (hosts that got one, images).
fn images_sent(report: &Value) -> (usize, usize) {
    let hosts = report["hosts"].as_object().unwrap();
    let sent: Vec<usize> = hosts
        .values()
        .map(|h| h["changed"]["images"].as_array().map_or(0, Vec::len))
        .filter(|n| *n > 0)
        .collect();
    (sent.len(), sent.iter().sum())
}

/// One timed apply.
struct Row {
    what: &'static str,
    seconds: f64,
    done: usize,
    images: (usize, usize),
    load_before: String,
}

fn timed(stack: &Stack, what: &'static str) -> Row {
    let load_before = load();
    let (elapsed, report) = stack.apply(&[], LONG_TIMEOUT);
    let row = Row {
        what,
        seconds: elapsed.as_secs_f64(),
        done: done(&report).len(),
        images: images_sent(&report),
        load_before,
    };
    println!(
        "  {what}: {:.1} s, {} change(s), images sent to {} host(s) ({} in all), load before {}",
        row.seconds, row.done, row.images.0, row.images.1, row.load_before
    );
    row
}

fn main() {
    println!("agents: load at start: {}", uptime());
    let stack = Stack::new("bench-agents", HOSTS, body);
    let created = stack.create(HOSTS);
    let (hardened, _) = stack.apply(&["--target", "docker-engine"], LONG_TIMEOUT);
    println!(
        "  {HOSTS} hosts created in {:.1} s and hardened in {:.1} s (not timed below)",
        created.as_secs_f64(),
        hardened.as_secs_f64()
    );
    let (built, _) = stack.run_words_ok(&["image", "build"], &[], LONG_TIMEOUT);
    println!(
        "  image build: {:.1} s (not timed below)",
        built.as_secs_f64()
    );

    let mut rows = vec![timed(&stack, "deploy")];
    let agents = all_healthy(&stack);
    assert_eq!(agents, usize::try_from(HOSTS * AGENTS_PER_HOST).unwrap());
    rows.push(timed(&stack, "no-op"));

    let upgrade = DerivedImage::of("hermes-agent:0.19.0", "LABEL bench=upgrade").unwrap();
    stack.write(&body_with(HOSTS, &format!("digest = \"{}\"", upgrade.id)));
    rows.push(timed(&stack, "rolling upgrade"));
    all_healthy(&stack);

    let destroyed = stack.destroy();
    println!(
        "  destroyed in {:.1} s; load at end: {}",
        destroyed.as_secs_f64(),
        uptime()
    );
    drop(upgrade);

    println!();
    println!(
        "agents: {HOSTS} hosts x {AGENTS_PER_HOST} agents, `apply --yes --output json`, one run each"
    );
    println!(
        "{:<16} {:>9} {:>8} {:>22} {:>6}",
        "apply", "wall (s)", "changes", "images sent (hosts/n)", "load"
    );
    for row in &rows {
        println!(
            "{:<16} {:>9.1} {:>8} {:>22} {:>6}",
            row.what,
            row.seconds,
            row.done,
            format!("{}/{}", row.images.0, row.images.1),
            row.load_before
        );
    }
}
