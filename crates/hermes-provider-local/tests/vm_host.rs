#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "slow real test: a failure stops the test with its message; timings go to stderr"
)]
//! Real test of a VM host (`kind = "vm"`): the runner image built from Debian packages, one VM
//! created through [`LocalProvider`], reached over SSH with the host key the provider pinned,
//! running Debian's cloud kernel under QEMU, then deleted.
//!
//! It needs a Docker engine, `mmdebstrap`, `ssh`, `ssh-keygen` and `ssh-keyscan`, and reaches
//! only Debian's archive (through the apt cache) and containers it starts itself. The provider
//! labels what it creates with the test's own stack (`hermes-testbed-vm-<pid>`); everything
//! carrying that stack is removed by id when the test ends, failed or not. Images and the apt
//! cache are kept (the product's caches). Timings go to stderr (`-- --nocapture`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hermes_core::resource::HOST_KEY_ATTR;
use hermes_core::seams::{Provider, SecretError, SecretSource, StepContext};
use hermes_core::{Address, Kind, Resource, Scope, Secret, SecretRef, labels};
use hermes_provider_local::{Admin, Docker, LocalProvider, apt_cache, vm};

const ADMIN: &str = "hermes-admin";

struct NoSecrets;

#[async_trait]
impl SecretSource for NoSecrets {
    async fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
        Err(SecretError {
            reference: reference.clone(),
            reason: "no secrets in this test".to_owned(),
        })
    }
}

fn docker_sync(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

fn ids(args: &[&str]) -> Vec<String> {
    let out = docker_sync(args);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Everything carrying the test's stack label, removed by id on drop (also on panic).
struct Cleanup {
    stack: String,
    dir: PathBuf,
}

impl Cleanup {
    fn remaining(&self) -> Vec<String> {
        let filter = format!("label={}={}", labels::STACK, self.stack);
        let mut left = ids(&["ps", "-aq", "--filter", &filter]);
        left.extend(ids(&["volume", "ls", "-q", "--filter", &filter]));
        left.extend(ids(&["network", "ls", "-q", "--filter", &filter]));
        left
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label={}={}", labels::STACK, self.stack);
        for id in ids(&["ps", "-aq", "--filter", &filter]) {
            let _ = docker_sync(&["rm", "--force", "--volumes", &id]);
        }
        for id in ids(&["volume", "ls", "-q", "--filter", &filter]) {
            let _ = docker_sync(&["volume", "rm", &id]);
        }
        for id in ids(&["network", "ls", "-q", "--filter", &filter]) {
            let _ = docker_sync(&[
                "network",
                "disconnect",
                "--force",
                &id,
                apt_cache::CONTAINER_NAME,
            ]);
            let _ = docker_sync(&["network", "rm", &id]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ssh(key: &Path, known_hosts: &Path, ip: &str, command: &str) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg("ssh")
        .args(["-i"])
        .arg(key)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
        ])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"])
        .arg(format!("{ADMIN}@{ip}"))
        .arg(command)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vm_host_boots_debians_cloud_kernel_and_is_reached_with_its_pinned_key() {
    let stack = format!("hermes-testbed-vm-{}", std::process::id());
    let dir = std::env::temp_dir().join(&stack);
    std::fs::create_dir_all(&dir).unwrap();
    let cleanup = Cleanup {
        stack: stack.clone(),
        dir: dir.clone(),
    };
    let key = dir.join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "hermes-testbed",
            "-f",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();

    let started = Instant::now();
    let docker = Docker::new("docker", Duration::from_mins(3));
    let image = vm::ensure_runner(&docker, &|l: &str| eprintln!("[build] {l}"))
        .await
        .unwrap();
    eprintln!(
        "runner image {image} ready after {}s",
        started.elapsed().as_secs()
    );

    let provider = LocalProvider::new(
        Duration::from_mins(3),
        Admin {
            user: ADMIN.to_owned(),
            public_keys: vec![public.trim().to_owned()],
        },
        Arc::new(|l: &str| eprintln!("[provider] {l}")),
    );
    let ctx = StepContext {
        scope: Scope::new(stack.as_str(), "test"),
        secrets: Arc::new(NoSecrets),
        world: Arc::new(BTreeMap::new()),
        plan_hash: "sha256:test".to_owned(),
        holder: "vm_host test".to_owned(),
        actor: hermes_core::Actor::new("vm_host-test").unwrap(),
    };
    let desired = Resource::new(Address::new(Kind::Host, "vm-1"))
        .attr("size", "small")
        .attr("kind", "vm")
        .attr("role", "agents");
    let started = Instant::now();
    let host = provider.create(&desired, &ctx).await.unwrap();
    eprintln!(
        "VM create -> sshd answering with its host key reported: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let ip = host.attrs["address"].as_str().unwrap().to_owned();
    let pinned = host.attrs[HOST_KEY_ATTR].as_str().unwrap().to_owned();
    assert!(pinned.starts_with("ssh-ed25519 "), "{pinned}");
    assert_eq!(host.attrs["kind"], "vm");
    assert_eq!(provider.read_host_key(&host.id).await.unwrap(), pinned);

    // What the VM's sshd presents at the container's address is the pinned key.
    let scan = Command::new("timeout")
        .args(["30", "ssh-keyscan", "-T", "10", "-t", "ed25519", &ip])
        .output()
        .unwrap();
    let scanned = String::from_utf8_lossy(&scan.stdout);
    let seen = scanned
        .lines()
        .find(|l| !l.starts_with('#'))
        .and_then(|l| l.split_once(' '))
        .map(|(_, k)| k.trim().to_owned());
    assert_eq!(seen.as_deref(), Some(pinned.as_str()), "{scan:?}");

    // Log in trusting only the pinned key.
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, format!("{ip} {pinned}\n")).unwrap();
    let started = Instant::now();
    let out = ssh(
        &key,
        &known_hosts,
        &ip,
        "uname -r; systemd-detect-virt || true; sudo sysctl -w kernel.dmesg_restrict=1; \
         cat /proc/sys/kernel/dmesg_restrict",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "ssh session: {:.1}s\n{stdout}",
        started.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("unable to resolve"), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].ends_with("-cloud-amd64"), "{stdout}");
    assert_eq!(lines[1], "qemu", "{stdout}");
    assert_eq!(lines[2], "kernel.dmesg_restrict = 1", "{stdout}");
    assert_eq!(lines[3], "1", "{stdout}");

    let started = Instant::now();
    provider.delete(&host, &ctx).await.unwrap();
    eprintln!("delete: {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(cleanup.remaining(), Vec::<String>::new());
}
