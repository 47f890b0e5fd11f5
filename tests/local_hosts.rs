//! Real local hosts from the real binary: `apply` gives running, labelled Debian hosts reachable
//! over SSH with pinned host keys; a second plan is empty; a size change is a replacement that
//! needs --allow-destroy; a changed host key is refused; power off and on round-trips; two
//! stacks never see each other; `destroy` leaves nothing with the stack's labels.
//!
//! Hardening, Docker and agents come later, so these tests apply `--target host`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{Run, hermes, unique};

/// Bound on the apply that creates a VM host: on a new machine it builds the VM runner image
/// first (about 2 min here, more under load), then boots the VM under emulation.
const VM_APPLY_TIMEOUT: Duration = Duration::from_mins(10);

/// A stack in a temp dir whose Docker objects are removed when dropped, even after a failure.
struct LocalStack {
    dir: tempfile::TempDir,
    name: String,
}

impl LocalStack {
    fn new(prefix: &str, hosts: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let name = unique(prefix);
        let stack = Self { dir, name };
        stack.write(hosts);
        stack
    }

    fn write(&self, hosts: &str) {
        std::fs::write(
            self.path(),
            format!("version = 1\nname = \"{}\"\n{hosts}", self.name),
        )
        .unwrap();
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("stack.toml")
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_within(args, Duration::from_mins(2))
    }

    /// [`Self::run`] with a longer bound.
    fn run_within(&self, args: &[&str], bound: Duration) -> Run {
        let path = self.path();
        let mut full: Vec<&str> = args.to_vec();
        full.insert(1, path.to_str().unwrap());
        hermes(&full).run_within(bound)
    }

    /// `power on|off STACK HOST`: the state comes before the stack file.
    fn power(&self, state: &str, host: &str) -> Run {
        let path = self.path();
        hermes(&["power", state, path.to_str().unwrap(), host]).run()
    }

    fn containers(&self) -> Vec<String> {
        docker(&[
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label=hermes-infra/stack={}", self.name),
        ])
    }

    /// The container id of host `host` (its full id).
    fn host_id(&self, host: &str) -> Vec<String> {
        docker(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=hermes-infra/stack={}", self.name),
            "--filter",
            &format!("label=hermes-infra/address=host.{host}"),
        ])
    }

    fn state(&self) -> serde_json::Value {
        let path = self
            .dir
            .path()
            .join(".hermes-infra/state")
            .join(&self.name)
            .join("default/state.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        for id in self.containers() {
            let _ = Command::new("docker")
                .args(["rm", "-f", "-v", &id])
                .output();
        }
        let network = format!("hermes-{}-default", self.name);
        let _ = Command::new("docker")
            .args([
                "network",
                "disconnect",
                "--force",
                &network,
                "hermes-infra-apt-cache",
            ])
            .output();
        let _ = Command::new("docker")
            .args(["network", "rm", &network])
            .output();
    }
}

fn docker(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker").args(args).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn assert_ok(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{what}: {run:?}");
}

fn exists(path: &Path) -> bool {
    path.exists()
}

#[test]
fn local_hosts_live_and_die_with_the_stack() {
    let stack = LocalStack::new("hosts", "[hosts.node]\ncount = 3\n");
    assert_ok(&stack.run(&["apply", "--target", "host", "--yes"]), "apply");

    let ids = stack.containers();
    assert_eq!(ids.len(), 3, "three hosts");
    for id in &ids {
        let state = docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{index .Config.Labels \"hermes-infra/env\"}}",
            id,
        ]);
        assert_eq!(state, ["running", "default"]);
    }
    let pins = stack.state()["host_keys"].as_object().unwrap().clone();
    assert_eq!(
        pins.len(),
        3,
        "every host's key is pinned at creation: {pins:?}"
    );
    for host in ["node-1", "node-2", "node-3"] {
        let out = stack.run(&["ssh", host, "--", "hostname; sudo -n true && echo sudo-ok"]);
        assert_ok(&out, host);
        assert_eq!(out.stdout, format!("{host}\nsudo-ok\n"));
    }
    assert_ok(
        &stack.run(&["plan", "--target", "host", "--detailed-exitcode"]),
        "a second plan is empty",
    );

    // A changed host key is refused, and accepted only on request.
    let node1 = stack.host_id("node-1");
    docker(&[
        "exec",
        &node1[0],
        "sh",
        "-c",
        "rm -f /etc/ssh/ssh_host_*; ssh-keygen -A -q; systemctl restart ssh",
    ]);
    let refused = stack.run(&["ssh", "node-1", "--", "true"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("was pinned when it was created"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("hermes-infra ssh node-1 --accept-new-host-key"),
        "{}",
        refused.stderr
    );
    assert_ok(
        &stack.run(&["ssh", "node-1", "--accept-new-host-key", "--", "true"]),
        "accepted on request",
    );
    assert_ok(
        &stack.run(&["ssh", "node-1", "--", "true"]),
        "the new pin holds",
    );

    // Power off and on again; the host keeps its identity.
    assert_ok(&stack.power("off", "node-2"), "power off");
    let status = stack.run(&["status", "--output", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let node2 = status["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "node-2")
        .unwrap()
        .clone();
    assert_eq!(node2["state"], "off");
    assert_eq!(
        node2["kernel"], "shared",
        "container hosts say they share this machine's kernel"
    );
    let off = stack.run(&["ssh", "node-2", "--", "true"]);
    assert!(off.stderr.contains("is off; power it on"), "{}", off.stderr);
    assert_ok(&stack.power("on", "node-2"), "power on");
    let mut back = stack.run(&["ssh", "node-2", "--", "true"]);
    for _ in 0..40 {
        if back.code == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        back = stack.run(&["ssh", "node-2", "--", "true"]);
    }
    assert_ok(&back, "node-2 is reachable again with its pinned key");

    // A new size cannot change in place: REPLACE, and only with --allow-destroy.
    stack.write("[hosts.node]\ncount = 3\n[hosts.big]\nsize = \"small\"\n");
    assert_ok(
        &stack.run(&["apply", "--target", "host.big", "--yes"]),
        "add a host",
    );
    stack.write("[hosts.node]\ncount = 3\n[hosts.big]\nsize = \"medium\"\n");
    let plan = stack.run(&["plan", "--target", "host", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2);
    assert!(plan.stdout.contains("-/+ host.big"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("size: \"small\" -> \"medium\"   # forces replacement"),
        "{}",
        plan.stdout
    );
    let before = stack.host_id("big");
    let refused = stack.run(&["apply", "--target", "host", "--yes"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("--allow-destroy"),
        "{}",
        refused.stderr
    );
    let replaced = stack.run(&["apply", "--target", "host", "--yes", "--allow-destroy"]);
    assert_ok(&replaced, "replace");
    let after = stack.host_id("big");
    assert_eq!(after.len(), 1);
    assert_ne!(before, after, "a new container");
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{index .Config.Labels \"hermes-infra/size\"}}",
            &after[0]
        ]),
        ["medium"]
    );
    assert_ok(
        &stack.run(&["ssh", "big", "--", "true"]),
        "the replacement's key was pinned",
    );

    // Destroy leaves nothing with the stack's labels.
    assert_ok(&stack.run(&["destroy", "--yes"]), "destroy");
    assert!(stack.containers().is_empty());
    assert!(
        docker(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=hermes-infra/stack={}", stack.name)
        ])
        .is_empty()
    );
    assert!(
        docker(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("name=hermes-{}-default", stack.name)
        ])
        .is_empty()
    );
    assert!(
        stack.state()["host_keys"]
            .as_object()
            .is_none_or(serde_json::Map::is_empty)
    );
    assert!(exists(&stack.path()));
}

#[test]
fn two_stacks_on_one_machine_never_touch_each_other() {
    let a = LocalStack::new("iso-a", "[hosts.web]\n");
    let b = LocalStack::new("iso-b", "[hosts.web]\n");
    assert_ok(&a.run(&["apply", "--target", "host", "--yes"]), "apply a");
    assert_ok(&b.run(&["apply", "--target", "host", "--yes"]), "apply b");
    // Each sees only its own host: nothing to do for either.
    assert_ok(
        &a.run(&["plan", "--target", "host", "--detailed-exitcode"]),
        "a is up to date",
    );
    assert_ok(
        &b.run(&["plan", "--target", "host", "--detailed-exitcode"]),
        "b is up to date",
    );
    assert_ok(&a.run(&["destroy", "--yes"]), "destroy a");
    assert!(a.containers().is_empty());
    assert_eq!(b.containers().len(), 1, "b's host survives a's destroy");
    assert_ok(&b.run(&["ssh", "web", "--", "true"]), "b still works");
}

#[test]
fn a_vm_host_boots_its_own_kernel_and_is_reached_with_its_pinned_key() {
    let stack = LocalStack::new("vm", "[hosts.kernel]\nkind = \"vm\"\n");
    assert_ok(
        &stack.run_within(&["apply", "--target", "host", "--yes"], VM_APPLY_TIMEOUT),
        "apply a VM host",
    );
    let pins = stack.state()["host_keys"].as_object().unwrap().clone();
    assert_eq!(
        pins.len(),
        1,
        "the VM's key is pinned at creation: {pins:?}"
    );
    let out = stack.run(&[
        "ssh",
        "kernel",
        "--",
        "systemd-detect-virt; uname -r; sudo -n sysctl -n kernel.dmesg_restrict",
    ]);
    assert_ok(&out, "ssh into the VM");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0], "qemu",
        "a real VM, not a container: {}",
        out.stdout
    );
    assert!(
        lines[1].ends_with("-cloud-amd64"),
        "Debian's cloud kernel: {}",
        out.stdout
    );
    assert_ok(
        &stack.run(&["plan", "--target", "host", "--detailed-exitcode"]),
        "nothing left to do",
    );
    let status = stack.run(&["status", "--output", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        status["hosts"][0]["kernel"], "own",
        "a VM host has a kernel of its own"
    );
    assert_ok(&stack.run(&["destroy", "--yes"]), "destroy");
    assert!(stack.containers().is_empty());
}
