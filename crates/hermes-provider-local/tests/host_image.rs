#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "slow real tests: a failure stops the test with its message; timings go to stderr"
)]
//! Real tests of local container hosts: the host image built from Debian packages, hosts booted
//! from it with injected keys and reached over SSH, the apt cache, and Docker inside a host.
//!
//! They need a Docker engine (20.10 or later), `mmdebstrap`, `ssh` and `ssh-keygen`, and reach
//! only Debian's archive (through the apt cache) and containers they start themselves. Every
//! container, network and volume they create is labelled `hermes-infra.testbed=1` and removed by
//! id when the test ends, failed or not. The images and the apt cache are kept: they are the
//! product's caches. Timings go to stderr (`-- --nocapture` shows them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hermes_provider_local::Docker;
use hermes_provider_local::apt_cache;
use hermes_provider_local::image::{
    HostContainer, ImageRecipe, UserData, ensure_host, host_run_args,
};

const TESTBED_LABEL: &str = "hermes-infra.testbed";
const ADMIN: &str = "hermes-admin";
const SSH_READY_WITHIN: Duration = Duration::from_mins(2);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn docker() -> Docker {
    Docker::new("docker", Duration::from_mins(3))
}

fn progress(line: &str) {
    eprintln!("[build] {line}");
}

/// Runs `docker ARGS` synchronously (for `Drop`), returning its output.
fn docker_sync(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

/// Everything one test created, removed by id when dropped (also when the test panics).
#[derive(Default)]
struct Cleanup {
    containers: Vec<String>,
    networks: Vec<String>,
    dirs: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in self.containers.drain(..).rev() {
            let _ = docker_sync(&["rm", "--force", "--volumes", &id]);
        }
        for id in self.networks.drain(..).rev() {
            // The shared apt cache may be attached; it must leave before the network can go.
            let _ = docker_sync(&[
                "network",
                "disconnect",
                "--force",
                &id,
                apt_cache::CONTAINER_NAME,
            ]);
            let _ = docker_sync(&["network", "rm", &id]);
        }
        for dir in self.dirs.drain(..) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Cleanup {
    fn network(&mut self) -> String {
        let name = unique("hermes-testbed-net");
        let out = docker_sync(&[
            "network",
            "create",
            "--label",
            &format!("{TESTBED_LABEL}=1"),
            &name,
        ]);
        assert!(out.status.success(), "{out:?}");
        let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        self.networks.push(id);
        name
    }

    fn key(&mut self) -> (PathBuf, String) {
        let dir = std::env::temp_dir().join(unique("hermes-testbed-key"));
        std::fs::create_dir_all(&dir).unwrap();
        self.dirs.push(dir.clone());
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
        (key, public.trim().to_owned())
    }

    /// Starts a host, returning it once `docker run` returned (not yet reachable).
    async fn host(&mut self, image: &str, network: &str, key: &Path, user_data: &UserData) -> Host {
        let labels = [(TESTBED_LABEL.to_owned(), "1".to_owned())].into();
        let name = unique("hermes-testbed-host");
        let args = host_run_args(&HostContainer {
            name: &name,
            image,
            network: Some(network),
            labels: &labels,
            user_data,
            memory: Some("2g"),
            cpus: None,
        })
        .unwrap();
        let started = Instant::now();
        let id = docker().run(&args).await.unwrap().trim().to_owned();
        self.containers.push(id.clone());
        let ip = docker()
            .run([
                "inspect",
                "--format",
                &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
                &id,
            ])
            .await
            .unwrap()
            .trim()
            .to_owned();
        assert!(!ip.is_empty(), "no address for {id}");
        Host {
            id,
            ip,
            key: key.to_owned(),
            started,
        }
    }
}

struct Host {
    id: String,
    ip: String,
    key: PathBuf,
    started: Instant,
}

impl Host {
    /// `ssh USER@host COMMAND` with the host's key, bounded by `limit`.
    fn ssh_as(&self, user: &str, key: &Path, command: &str, limit: Duration) -> Output {
        Command::new("timeout")
            .arg(limit.as_secs().to_string())
            .arg("ssh")
            .arg("-i")
            .arg(key)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=5",
                "-p",
                "22",
            ])
            .arg(format!("{user}@{}", self.ip))
            .arg(command)
            .output()
            .unwrap()
    }

    /// Runs `command` as the admin user; panics unless it succeeds; returns its trimmed stdout.
    fn run(&self, command: &str) -> String {
        self.run_within(command, Duration::from_mins(1))
    }

    fn run_within(&self, command: &str, limit: Duration) -> String {
        let out = self.ssh_as(ADMIN, &self.key, command, limit);
        assert!(
            out.status.success(),
            "`{command}` failed on {}: {}{}",
            self.ip,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Polls until `ssh ... true` works; returns the time since `docker run`.
    async fn wait_for_ssh(&self) -> Duration {
        let deadline = Instant::now() + SSH_READY_WITHIN;
        loop {
            let out = self.ssh_as(ADMIN, &self.key, "true", Duration::from_secs(10));
            if out.status.success() {
                return self.started.elapsed();
            }
            if Instant::now() > deadline {
                let logs = docker_sync(&["logs", "--tail", "50", &self.id]);
                panic!(
                    "no SSH login on {} within {SSH_READY_WITHIN:?}: {}\n{}{}",
                    self.ip,
                    String::from_utf8_lossy(&out.stderr),
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

async fn host_image() -> String {
    let started = Instant::now();
    let built = !ImageRecipe::host().exists(&docker()).await.unwrap();
    let image = ensure_host(&docker(), &progress).await.unwrap();
    eprintln!(
        "TIMING host image {image}: {:.1}s ({})",
        started.elapsed().as_secs_f64(),
        if built { "built cold" } else { "cached" }
    );
    image
}

#[tokio::test]
async fn hosts_boot_to_ssh_with_injected_keys_like_fresh_cloud_hosts() {
    let image = host_image().await;
    let mut cleanup = Cleanup::default();
    let network = cleanup.network();
    let (key1, pub1) = cleanup.key();
    let (key2, pub2) = cleanup.key();
    let h1 = cleanup
        .host(
            &image,
            &network,
            &key1,
            &UserData::new(unique("i"))
                .with_hostname("web-1")
                .with_admin(ADMIN, [pub1]),
        )
        .await;
    let h2 = cleanup
        .host(
            &image,
            &network,
            &key2,
            &UserData::new(unique("i"))
                .with_hostname("web-2")
                .with_admin(ADMIN, [pub2]),
        )
        .await;
    let ready1 = h1.wait_for_ssh().await;
    let ready2 = h2.wait_for_ssh().await;
    eprintln!(
        "TIMING docker run -> SSH ready: {:.1}s and {:.1}s",
        ready1.as_secs_f64(),
        ready2.as_secs_f64()
    );

    // The admin user: passwordless sudo, its key only, files as cloud-init leaves them.
    assert_eq!(h1.run("sudo -n true && sudo -n id -u"), "0");
    assert_eq!(h1.run("id -un"), ADMIN);
    assert_eq!(
        h1.run("stat -c '%a %U' ~/.ssh ~/.ssh/authorized_keys"),
        format!("700 {ADMIN}\n600 {ADMIN}")
    );
    assert_eq!(
        h1.run("sudo stat -c '%a %U' /etc/sudoers.d/90-cloud-init-users"),
        "440 root"
    );
    assert!(
        !h1.ssh_as(ADMIN, &key2, "true", Duration::from_secs(10))
            .status
            .success(),
        "another host's key must not log in"
    );
    assert!(
        !h1.ssh_as("root", &key1, "true", Duration::from_secs(10))
            .status
            .success(),
        "root has no keys"
    );
    let sshd = h1.run("sudo sshd -T");
    assert!(sshd.contains("passwordauthentication no"), "{sshd}");
    assert!(sshd.contains("permitrootlogin without-password"), "{sshd}");
    assert_eq!(h1.run("hostname"), "web-1");
    assert_eq!(h2.run("hostname"), "web-2");

    // A container, and it says so; systemd booted cleanly as PID 1.
    assert_eq!(h1.run("systemd-detect-virt --container"), "docker");
    assert_eq!(h1.run("ps -o comm= -p 1"), "systemd");
    assert_eq!(
        h1.run("systemctl is-system-running --wait || true"),
        "running"
    );
    assert_eq!(h1.run("systemctl --failed --no-legend --plain"), "");

    // The network namespace's sysctls are the host's own; the kernel's belong to the machine
    // running the tests and are read-only (see HOSTS.md).
    assert_eq!(
        h1.run("sudo sysctl -w net.ipv4.conf.all.rp_filter=1"),
        "net.ipv4.conf.all.rp_filter = 1"
    );
    for kernel_wide in [
        "kernel.kptr_restrict=2",
        "vm.swappiness=10",
        "fs.suid_dumpable=0",
    ] {
        assert!(
            !h1.ssh_as(
                ADMIN,
                &h1.key,
                &format!("sudo sysctl -w {kernel_wide}"),
                Duration::from_secs(10)
            )
            .status
            .success(),
            "{kernel_wide} must not reach the machine's kernel"
        );
    }

    // Nothing the tool installs itself.
    let installed = h1.run(
        "for p in docker.io docker-ce containerd runc nftables iptables fail2ban \
         unattended-upgrades cloud-init; do dpkg-query -W -f='${db:Status-Abbrev}' \"$p\" \
         2>/dev/null | grep -q '^ii' && echo \"$p\"; done; \
         for c in docker dockerd nft iptables fail2ban-client; do command -v \"$c\"; done; true",
    );
    assert_eq!(installed, "", "installed but should not be");

    // Each host has its own host keys and machine id; the image has none.
    let identity = "cat /etc/ssh/ssh_host_ed25519_key.pub /etc/machine-id";
    let (k1, k2) = (h1.run(identity), h2.run(identity));
    assert_ne!(k1.lines().next(), k2.lines().next(), "same host key");
    assert_ne!(k1.lines().nth(1), k2.lines().nth(1), "same machine id");
    let shipped = docker()
        .run([
            "run",
            "--rm",
            "--pull=never",
            "--label",
            &format!("{TESTBED_LABEL}=1"),
            "--entrypoint",
            "sh",
            &image,
            "-c",
            "ls /etc/ssh; cat /etc/machine-id",
        ])
        .await
        .unwrap();
    assert!(!shipped.contains("ssh_host_"), "{shipped}");
    assert!(shipped.contains("sshd_config"), "{shipped}");

    // A restart is the same instance: same host keys, no new user setup.
    let restarted = Instant::now();
    docker().run(["restart", h1.id.as_str()]).await.unwrap();
    let h1 = Host {
        started: restarted,
        ..h1
    };
    let back = h1.wait_for_ssh().await;
    eprintln!(
        "TIMING docker restart -> SSH ready: {:.1}s",
        back.as_secs_f64()
    );
    assert_eq!(h1.run(identity), k1);
}

#[tokio::test]
async fn user_data_for_root_puts_the_keys_on_root_and_creates_nobody() {
    let image = host_image().await;
    let mut cleanup = Cleanup::default();
    let network = cleanup.network();
    let (key, public) = cleanup.key();
    let host = cleanup
        .host(
            &image,
            &network,
            &key,
            &UserData::new(unique("i")).with_admin("root", [public]),
        )
        .await;
    let deadline = Instant::now() + SSH_READY_WITHIN;
    while !host
        .ssh_as("root", &key, "true", Duration::from_secs(10))
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "no root login on {}", host.ip);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let out = host.ssh_as(
        "root",
        &key,
        "stat -c '%a %U' /root/.ssh/authorized_keys; getent passwd hermes-admin; \
         ls /etc/sudoers.d/",
        Duration::from_secs(30),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "600 root\nREADME"
    );
}

#[tokio::test]
async fn the_apt_cache_serves_debian_to_hosts_and_nothing_else() {
    let image = host_image().await;
    let mut cleanup = Cleanup::default();
    let network = cleanup.network();
    let started = Instant::now();
    let cache = apt_cache::ensure(&docker(), Some(&network), &progress)
        .await
        .unwrap();
    eprintln!(
        "TIMING apt cache ensure: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let again = apt_cache::ensure(&docker(), Some(&network), &progress)
        .await
        .unwrap();
    assert_eq!(again, cache, "ensure is idempotent");

    let (key, public) = cleanup.key();
    let host = cleanup
        .host(
            &image,
            &network,
            &key,
            &UserData::new(unique("i"))
                .with_admin(ADMIN, [public])
                .with_apt_proxy(&cache.url),
        )
        .await;
    host.wait_for_ssh().await;
    assert_eq!(
        host.run("cat /etc/apt/apt.conf.d/90cloud-init-aptproxy"),
        format!("Acquire::http::Proxy \"{}\";", cache.url)
    );

    // Debian packages come through the cache; a real firewall loads in the host.
    let started = Instant::now();
    host.run_within(
        "sudo apt-get -q update >/dev/null && sudo DEBIAN_FRONTEND=noninteractive \
         apt-get -q install -y nftables >/dev/null",
        Duration::from_mins(5),
    );
    eprintln!(
        "TIMING apt-get update + install nftables through the cache: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    host.run(
        "printf 'table inet hermes_testbed {\\n chain input {\\n  type filter hook input priority 0; \
         policy accept;\\n  tcp dport 2223 drop\\n }\\n}\\n' > /tmp/t.nft && sudo nft -c -f /tmp/t.nft \
         && sudo nft -f /tmp/t.nft",
    );
    assert!(
        host.run("sudo nft list ruleset")
            .contains("tcp dport 2223 drop")
    );

    // Not an open proxy: anything but Debian's archive is refused without being fetched (the
    // address asked for is this test's own host, so nothing outside is contacted even if not).
    let refused = host.run(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' -x {} http://{}:8080/ || true",
        cache.url, host.ip
    ));
    assert_eq!(refused, "403", "plain request through the cache");
    let tunnel = host.run(&format!(
        "curl -s -o /dev/null -w '%{{http_connect}}' -x {} https://{}:8443/ || true",
        cache.url, host.ip
    ));
    assert_eq!(tunnel, "403", "CONNECT through the cache");
}

#[tokio::test]
async fn a_host_runs_its_own_docker_engine() {
    let image = host_image().await;
    let mut cleanup = Cleanup::default();
    let network = cleanup.network();
    let cache = apt_cache::ensure(&docker(), Some(&network), &progress)
        .await
        .unwrap();
    let (key, public) = cleanup.key();
    let host = cleanup
        .host(
            &image,
            &network,
            &key,
            &UserData::new(unique("i"))
                .with_admin(ADMIN, [public])
                .with_apt_proxy(&cache.url),
        )
        .await;
    host.wait_for_ssh().await;

    let started = Instant::now();
    host.run_within(
        "sudo apt-get -q update >/dev/null && sudo DEBIAN_FRONTEND=noninteractive \
         apt-get -q install -y docker.io busybox-static >/dev/null",
        Duration::from_mins(10),
    );
    eprintln!(
        "TIMING apt-get update + install docker.io through the cache: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(host.run("systemctl is-active docker"), "active");
    assert_eq!(
        host.run("sudo docker info --format '{{.Driver}}'"),
        "overlay2"
    );
    assert_eq!(host.run("systemctl --failed --no-legend --plain"), "");

    // An image from a local root filesystem (nothing is pulled), a network, a container with a
    // published port and limits, nested under the host's own cgroups.
    host.run(
        "set -e; d=$(mktemp -d); mkdir \"$d/bin\"; cp /bin/busybox \"$d/bin/\"; \
         for a in sh httpd sleep cat echo ping; do ln -s busybox \"$d/bin/$a\"; done; \
         tar -C \"$d\" -cf /tmp/bb.tar .; sudo docker import /tmp/bb.tar testbed/bb:1 >/dev/null; \
         sudo docker network create inner >/dev/null",
    );
    assert_eq!(
        host.run("sudo docker run --pull never --rm --network inner testbed/bb:1 echo inner-ok"),
        "inner-ok"
    );
    host.run(
        "mkdir -p /tmp/www && echo served > /tmp/www/index.html && sudo docker run --pull never -d \
         --name web --network inner -p 8080:80 -v /tmp/www:/www:ro --memory 64m --pids-limit 50 \
         --cap-drop ALL --security-opt no-new-privileges testbed/bb:1 httpd -f -p 80 -h /www \
         >/dev/null",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("curl")
            .args(["-s", "-m", "3", &format!("http://{}:8080/", host.ip)])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim() == "served" {
            break;
        }
        assert!(Instant::now() < deadline, "published port never answered");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The host's own firewall governs its agents' traffic: a rule in the host's netfilter
    // (Docker's DOCKER-USER chain) cuts an agent off from the apt cache it could reach before.
    let ping = format!(
        "sudo docker run --pull never --rm --network inner testbed/bb:1 ping -c 1 -W 2 {}",
        cache.address
    );
    host.run(&ping);
    host.run("sudo iptables -I DOCKER-USER -i br-+ -j REJECT");
    assert!(
        !host
            .ssh_as(ADMIN, &host.key, &ping, Duration::from_secs(30))
            .status
            .success(),
        "the host's firewall rule did not apply to its agent"
    );
    host.run("sudo iptables -D DOCKER-USER -i br-+ -j REJECT");

    // The agent's cgroups nest under the host container's own (private cgroup namespace), so the
    // host's memory and pids limits govern its agents as a machine's RAM does.
    let inner = host.run("sudo docker inspect -f '{{.Id}}' web");
    let machine_v1 = Path::new("/sys/fs/cgroup/memory/docker");
    if machine_v1.join(&host.id).exists() {
        let nested = machine_v1.join(&host.id).join("docker").join(&inner);
        assert_eq!(
            std::fs::read_to_string(nested.join("memory.limit_in_bytes"))
                .unwrap()
                .trim(),
            "67108864",
            "{}",
            nested.display()
        );
    } else {
        eprintln!("(cgroup nesting not checked: this engine's cgroups are not v1 cgroupfs)");
    }
}
