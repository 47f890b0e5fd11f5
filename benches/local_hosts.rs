//! Benchmark: time to create 1, 10 and 20 local hosts from a warm image with the real binary
//! (`apply --target host`), and to destroy them. Prints a table; not a pass/fail test.
//!
//! It builds the host image first (once per machine) so that only host creation is timed.

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![allow(
    clippy::unwrap_used,
    reason = "a benchmark that cannot run should stop loudly"
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn hermes(args: &[&str], dir: &Path) -> Duration {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_hermes-infra"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack.toml");
    let name = format!("bench-{}", std::process::id());
    // Warm up: the first host builds the image and starts the apt cache if needed.
    std::fs::write(
        &stack,
        format!("version = 1\nname = \"{name}-warm\"\n[hosts.warm]\n"),
    )
    .unwrap();
    let warm = hermes(
        &["apply", "stack.toml", "--target", "host", "--yes"],
        dir.path(),
    );
    hermes(&["destroy", "stack.toml", "--yes"], dir.path());
    println!(
        "local_hosts: warm-up (image build if needed + 1 host): {:.1} s",
        warm.as_secs_f64()
    );
    println!();
    println!(
        "{:>6} {:>12} {:>14} {:>12}",
        "hosts", "create (s)", "per host (s)", "destroy (s)"
    );
    for count in [1_u32, 10, 20] {
        std::fs::write(
            &stack,
            format!("version = 1\nname = \"{name}-{count}\"\n[hosts.node]\ncount = {count}\n"),
        )
        .unwrap();
        let create = hermes(
            &["apply", "stack.toml", "--target", "host", "--yes"],
            dir.path(),
        );
        let destroy = hermes(&["destroy", "stack.toml", "--yes"], dir.path());
        println!(
            "{count:>6} {:>12.1} {:>14.2} {:>12.1}",
            create.as_secs_f64(),
            create.as_secs_f64() / f64::from(count),
            destroy.as_secs_f64()
        );
    }
}
