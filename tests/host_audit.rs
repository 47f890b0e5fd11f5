//! `hermes-infra audit` on a real local container host, through the real binary: the outside
//! auditors' figures before hardening (the baseline: the host alone, as its provider made it)
//! and after `apply` hardened it, with the one `hermes-compare` Lynis profile both times. Both
//! Lynis figures are printed, so they show in the test log.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod hardening;

use std::time::Duration;

use hardening::Stack;
use serde_json::Value;

/// Lynis takes about two minutes on a host, plus installing it the first time.
const AUDIT_TIMEOUT: Duration = Duration::from_mins(10);

const ONE_HOST: &str = r#"environments = ["dev"]
[provider.local]
host-kind = "container"
[hosts.t]
count = 1
"#;

/// `audit --output json` of the container host `t-1`.
fn audit(stack: &Stack) -> Value {
    hardening::audit(stack, "t-1", "shared", AUDIT_TIMEOUT)
}

#[test]
fn the_audit_shows_hardening_in_the_outside_auditors_figures() {
    let stack = Stack::new("audit", ONE_HOST);

    // The baseline: the host as its provider made it, nothing hardened.
    stack.apply(&["--target", "host"]).ok();
    let before = audit(&stack);
    let baseline = &before["hosts"]["t-1"];
    assert_eq!(baseline["fail2ban"]["state"], "not-installed", "{before:#}");
    assert!(
        baseline["ssh_audit"]["fail"].as_u64().unwrap() > 0,
        "Debian's default sshd crypto fails ssh-audit: {before:#}"
    );

    // Hardened.
    stack.apply(&[]).ok();
    let after = audit(&stack);
    let hardened = &after["hosts"]["t-1"];

    // Issue 4's bar for container hosts with the documented profile (measured: 57 -> 88).
    hardening::compare("hermes-compare, container host", baseline, hardened, 80);
    let jails = hardened["fail2ban"]["jails"].to_string();
    assert!(
        jails.contains("\"sshd\"") && jails.contains("\"recidive\""),
        "{after:#}"
    );
    let listeners = hardened["listeners"].as_array().unwrap();
    assert!(
        !listeners.is_empty()
            && listeners
                .iter()
                .all(|l| l.as_str().unwrap().contains(":22 (sshd)")),
        "only sshd listens beyond loopback: {listeners:?}"
    );
    assert!(hardened["pending_security_updates"].is_u64(), "{after:#}");
}
