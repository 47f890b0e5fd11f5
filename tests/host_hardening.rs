//! Host hardening on real local hosts, through the real binary: the first apply hardens every
//! host and installs Docker; the second finds nothing to do at the cost of one SSH connection
//! and one script per host; sshd is what the checklist says and ssh-audit finds no failure; a
//! hand-edited managed file is drift that `plan` shows and `apply` repairs; a change that would
//! lock the admin out is reverted and reported, and the host stays reachable.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod hardening;

use hardening::{SHORT_TIMEOUT, Stack, ssh_audit};
use serde_json::Value;

const TWO_HOSTS: &str = r#"environments = ["dev"]
[provider.local]
host-kind = "container"
[hosts.t]
count = 2
"#;

fn done(report: &Value) -> Vec<String> {
    let mut done: Vec<String> = report["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["address"].as_str().unwrap().to_owned())
        .collect();
    done.sort();
    done
}

#[test]
fn hosts_are_hardened_once_then_a_no_op_costs_one_round_trip_and_drift_is_repaired() {
    let stack = Stack::new("harden", TWO_HOSTS);

    let first = stack.apply(&[]).ok().json();
    assert_eq!(
        done(&first),
        [
            "docker-engine.t-1",
            "docker-engine.t-2",
            "host-hardening.t-1",
            "host-hardening.t-2",
            "host.t-1",
            "host.t-2",
        ]
    );
    for host in ["t-1", "t-2"] {
        let skipped = first["hosts"][host]["not_applicable"]["host-hardening"].to_string();
        assert!(
            skipped.contains("kernel.kptr_restrict") && skipped.contains("shares the kernel"),
            "kernel-level settings on a container host are reported as not applicable: {first}"
        );
    }

    // Nothing to do: one connection and at most two scripts per host, nothing changed.
    let second = stack.apply(&[]).ok().json();
    assert_eq!(done(&second), Vec::<String>::new(), "{second}");
    for host in ["t-1", "t-2"] {
        let trips = &second["hosts"][host];
        assert_eq!(trips["connections"], 1, "{second}");
        assert!(trips["exec_round_trips"].as_u64().unwrap() <= 2, "{second}");
    }
    assert_eq!(
        stack
            .run("plan", &["--detailed-exitcode"], SHORT_TIMEOUT)
            .code,
        0
    );

    // sshd as the checklist says, read back from sshd itself.
    let sshd = stack.on("t-1", "sudo sshd -T").ok().stdout;
    for line in [
        "permitrootlogin no",
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "pubkeyauthentication yes",
        "authenticationmethods publickey",
        "maxauthtries 3",
        "allowgroups hermes-ssh",
        "allowtcpforwarding no",
        "x11forwarding no",
        "permituserenvironment no",
    ] {
        assert!(
            sshd.lines().any(|l| l == line),
            "sshd -T lacks `{line}`:\n{sshd}"
        );
    }
    let services = stack
        .on(
            "t-1",
            "systemctl is-active ssh fail2ban docker; sudo fail2ban-client status; \
             sudo nft list table inet hermes-infra >/dev/null && echo firewall-loaded; \
             loginctl show-user hermes-admin --property=Linger",
        )
        .ok()
        .stdout;
    assert!(
        services.starts_with("active\nactive\nactive\n")
            && services.contains("recidive, sshd")
            && services.contains("firewall-loaded")
            && services.contains("Linger=yes"),
        "{services}"
    );

    // Security updates only, rebooting in the stack's window; Docker with the CIS settings.
    let settings = stack
        .on(
            "t-1",
            "apt-config dump | grep -E 'Origins-Pattern|Automatic-Reboot-Time'; \
             sudo docker info --format 'live-restore={{.LiveRestoreEnabled}} log={{.LoggingDriver}}'; \
             sudo docker run --help >/dev/null",
        )
        .ok()
        .stdout;
    assert!(
        settings.contains("codename=${distro_codename}-security,label=Debian-Security")
            && !settings.contains("label=Debian\"")
            && settings.contains("Automatic-Reboot-Time \"03:30\"")
            && settings.contains("live-restore=true log=local"),
        "{settings}"
    );

    // ssh-audit, from this machine: no failure (warnings only about kex that is not
    // post-quantum, kept for hermes-infra's own SSH library).
    let address = stack.address("t-1");
    let audit = std::process::Command::new(ssh_audit())
        .args(["-j", "--skip-rate-test", "-p", "22", &address])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&audit.stdout)
        .unwrap_or_else(|e| panic!("ssh-audit JSON ({e}): {audit:?}"));
    let mut failures = Vec::new();
    for section in ["kex", "key", "enc", "mac"] {
        for entry in report[section].as_array().into_iter().flatten() {
            if entry["notes"]["fail"]
                .as_array()
                .is_some_and(|f| !f.is_empty())
            {
                failures.push(entry["algorithm"].to_string());
            }
        }
    }
    assert!(
        failures.is_empty() && audit.status.code() != Some(3),
        "ssh-audit failures: {failures:?}"
    );

    // A hand edit of a managed file is drift: shown by plan, repaired by apply.
    stack
        .on(
            "t-1",
            "echo '# edited by hand' | sudo tee -a /etc/ssh/sshd_config.d/00-hermes.conf >/dev/null",
        )
        .ok();
    let drifted = stack.run("plan", &["--detailed-exitcode"], SHORT_TIMEOUT);
    assert_eq!(drifted.code, 2, "{drifted:#?}");
    assert!(
        drifted.stdout.contains("host-hardening.t-1")
            && drifted
                .stdout
                .contains("/etc/ssh/sshd_config.d/00-hermes.conf (edited on the host)"),
        "{}",
        drifted.stdout
    );
    let repaired = stack.apply(&[]).ok().json();
    assert_eq!(done(&repaired), ["host-hardening.t-1"], "{repaired}");
    assert_eq!(
        stack
            .run("plan", &["--detailed-exitcode"], SHORT_TIMEOUT)
            .code,
        0
    );
    let edited = stack
        .on(
            "t-1",
            "sudo grep -c 'edited by hand' /etc/ssh/sshd_config.d/00-hermes.conf || true",
        )
        .ok()
        .stdout;
    assert_eq!(edited.trim(), "0");

    // Every apply that changed a host left an audit line: who, when, plan, result.
    let audit_log = stack
        .on("t-1", "sudo cat /var/log/hermes-infra/audit.log")
        .ok()
        .stdout;
    let lines: Vec<&str> = audit_log.lines().collect();
    assert_eq!(lines.len(), 3, "{audit_log}");
    for (line, phase) in lines
        .iter()
        .zip(["host-hardening", "docker-engine", "host-hardening"])
    {
        assert!(
            line.contains(&format!("phase={phase} result=ok"))
                && line.contains("who=\"")
                && line.contains("plan=sha256:"),
            "{line}"
        );
    }

    // A host that is off is shown, not fatal: its setup cannot be read, and it can be deleted.
    stack.power("off", "t-2").ok();
    let off = stack.run("plan", &["--detailed-exitcode"], SHORT_TIMEOUT);
    assert_eq!(off.code, 2, "{off:#?}");
    assert!(
        off.stdout
            .contains("drift: facts (unreadable: the host is powered off)"),
        "{}",
        off.stdout
    );
    stack
        .run("destroy", &["--yes"], hardening::APPLY_TIMEOUT)
        .ok();
}

#[test]
fn a_change_that_would_lock_the_admin_out_is_reverted_and_the_host_stays_reachable() {
    // SSH only from a documentation address: this machine would be locked out.
    let locked = r#"environments = ["dev"]
[provider.local]
host-kind = "container"
[ssh]
allow-from = ["192.0.2.1/32"]
[hosts.t]
count = 1
"#;
    let stack = Stack::new("lockout", locked);
    let refused = stack.apply(&[]);
    assert_eq!(refused.code, 1, "{refused:#?}");
    let report = refused.json();
    let error = report["failed"][0]["error"].as_str().unwrap_or_default();
    assert_eq!(report["failed"][0]["address"], "host-hardening.t-1");
    assert!(
        error.contains("refused a fresh login") && error.contains("reverted"),
        "{error}"
    );

    // The old session's view: our firewall table is gone again, no revert timer is left, and
    // the audit log says what happened.
    let after = stack
        .on(
            "t-1",
            "sudo nft list table inet hermes-infra >/dev/null 2>&1 && echo table-loaded; \
             systemctl list-timers --all --no-legend | grep -c hermes-infra-revert; \
             sudo tail -n 1 /var/log/hermes-infra/audit.log",
        )
        .ok()
        .stdout;
    assert!(!after.contains("table-loaded"), "{after}");
    assert!(
        after.contains("\n0\n") || after.starts_with("0\n"),
        "{after}"
    );
    assert!(
        after.contains("phase=host-hardening result=reverted"),
        "{after}"
    );

    // Fixed stack: the same host is hardened.
    stack.write(&locked.replace("allow-from = [\"192.0.2.1/32\"]\n", ""));
    let fixed = stack.apply(&[]).ok().json();
    assert!(
        done(&fixed).contains(&"host-hardening.t-1".to_owned()),
        "{fixed}"
    );
}
