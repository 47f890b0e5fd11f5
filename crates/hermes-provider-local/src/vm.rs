//! VM hosts (`kind = "vm"`): a QEMU virtual machine booted with Debian's cloud kernel from a
//! Debian 12 root filesystem made of the same packages and first-boot files as a container host,
//! for what only a real kernel shows (kernel sysctls, modules, auditd, Lynis' kernel tests).
//!
//! A VM host is a container too (the "runner"), so labels, `observe`, power and delete work as
//! for container hosts: its image holds QEMU and the guest's root filesystem, its entrypoint
//! (`assets/vm/vm-init`) makes the guest's disk in a volume and runs QEMU with the container's port
//! 22 forwarded to the guest's sshd. The guest's SSH host keys come back on its second serial port
//! (written before sshd starts) into a file of the runner, read through the Docker engine.
//! `HOSTS.md` has the details, timings and differences.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use hermes_core::resource::{FRESH_HOST_SSH_PORT, VM_FORWARD_ATTR};
use hermes_core::seams::{ProviderError, StepContext};
use hermes_core::{Address, ObservedResource, Resource};

use crate::docker::Docker;
use crate::host::host_name;
use crate::image::{EmbeddedFile, ImageRecipe, UserData};
use crate::{LocalProvider, image};

/// Where the runner keeps the guest's disk (a volume, so a stopped VM keeps its disk).
pub const DISK_DIR: &str = "/var/lib/hermes-vm";
/// The file of the runner receiving the guest's second serial port (its SSH host keys).
pub const HOST_KEYS_FILE: &str = "/run/hermes-vm/host-keys";
/// The prefix of each host key line the guest writes there.
const HOST_KEY_PREFIX: &str = "hermes-infra-host-key: ";
/// Environment variable of the provider's process choosing QEMU's accelerator: `kvm` (where
/// nested virtualization works) or `tcg` (software emulation, the default).
pub const ACCEL_ENV: &str = "HERMES_INFRA_VM_ACCEL";
/// How long a VM may take from `docker run` to sshd answering (software emulation: about 25 s
/// measured here, on a busy machine more).
pub const VM_BOOT_TIMEOUT: Duration = Duration::from_mins(5);
/// Memory of the runner on top of the guest's RAM (QEMU itself and its translation cache).
const RUNNER_OVERHEAD_MIB: u32 = 768;

/// Packages of the runner image: QEMU without its Recommends, and `mkfs.ext4`.
const RUNNER_PACKAGES: &[&str] = &["qemu-system-x86", "e2fsprogs"];

/// Packages the guest adds to the container host's: a kernel (with its initramfs), udev and the
/// file system tools a booted machine needs. Its network is configured by systemd-networkd.
const GUEST_EXTRA_PACKAGES: &[&str] = &["linux-image-cloud-amd64", "udev", "e2fsprogs"];

/// Staging directory in the runner's root filesystem for the guest's files.
const STAGE: &str = "/usr/lib/hermes-infra/vm/stage";

const RUNNER_FILES: &[EmbeddedFile] = &[
    EmbeddedFile {
        path: "/usr/lib/hermes-infra/vm-init",
        mode: 0o755,
        content: Cow::Borrowed(include_str!("../assets/vm/vm-init")),
    },
    // The guest's files, copied into its root filesystem by the build hook: the container host's
    // first-boot script, unit and apt sources, plus what a VM needs.
    EmbeddedFile {
        path: "/usr/lib/hermes-infra/vm/stage/usr/lib/hermes-infra/firstboot",
        mode: 0o755,
        content: Cow::Borrowed(include_str!("../assets/host/firstboot")),
    },
    EmbeddedFile {
        path: "/usr/lib/hermes-infra/vm/stage/etc/systemd/system/hermes-infra-firstboot.service",
        mode: 0o644,
        content: Cow::Borrowed(include_str!(
            "../assets/host/hermes-infra-firstboot.service"
        )),
    },
    EmbeddedFile {
        path: "/usr/lib/hermes-infra/vm/stage/etc/apt/sources.list.d/debian.sources",
        mode: 0o644,
        content: Cow::Borrowed(include_str!("../assets/host/debian.sources")),
    },
    EmbeddedFile {
        path: "/usr/lib/hermes-infra/vm/stage/usr/lib/hermes-infra/vm-firstboot",
        mode: 0o755,
        content: Cow::Borrowed(include_str!("../assets/vm/vm-firstboot")),
    },
    EmbeddedFile {
        path: "/usr/lib/hermes-infra/vm/stage/etc/systemd/system/hermes-infra-vm-firstboot.service",
        mode: 0o644,
        content: Cow::Borrowed(include_str!(
            "../assets/vm/hermes-infra-vm-firstboot.service"
        )),
    },
    EmbeddedFile {
        path: "/usr/lib/hermes-infra/vm/stage/etc/systemd/network/10-hermes-vm.network",
        mode: 0o644,
        content: Cow::Borrowed(include_str!("../assets/vm/10-hermes-vm.network")),
    },
    EmbeddedFile {
        path: "/usr/lib/hermes-infra/vm/stage/etc/fstab",
        mode: 0o644,
        content: Cow::Borrowed(include_str!("../assets/vm/fstab")),
    },
    EmbeddedFile {
        path: "/usr/lib/hermes-infra/vm/stage/etc/hosts",
        mode: 0o644,
        content: Cow::Borrowed(include_str!("../assets/vm/hosts")),
    },
    EmbeddedFile {
        path: "/usr/lib/hermes-infra/vm/stage/etc/resolv.conf",
        mode: 0o644,
        content: Cow::Borrowed(include_str!("../assets/vm/resolv.conf")),
    },
];

const RUNNER_CHANGES: &[&str] = &[r#"CMD ["/usr/lib/hermes-infra/vm-init"]"#, "EXPOSE 22/tcp"];

/// The build hook making the guest's root filesystem: `mmdebstrap` (of this machine, as root,
/// through the same apt proxy as the runner's build) into the runner's
/// `/usr/lib/hermes-infra/vm/rootfs`, then the container host's first-boot setup.
fn guest_hook() -> String {
    let mut packages: Vec<&str> = ImageRecipe::host().packages().to_vec();
    packages.extend(GUEST_EXTRA_PACKAGES);
    let mut hook = String::from(
        r#"set -e
guest="$1/usr/lib/hermes-infra/vm/rootfs"
"#,
    );
    let _ = writeln!(hook, r#"stage="$1{STAGE}""#);
    let _ = write!(
        hook,
        r#"proxy=$(sed -n 's/^Acquire::http::Proxy "\(.*\)";$/\1/p' "$1/etc/apt/apt.conf.d/99mmdebstrap" 2>/dev/null | head -n 1)
set --
[ -n "$proxy" ] && set -- "--aptopt=Acquire::http::Proxy \"$proxy\""
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TMPDIR="${{TMPDIR:-/tmp}}" \
  mmdebstrap --mode=root --variant=minbase --include={packages} "$@" bookworm "$guest" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"
# The build's apt proxy must not stay in the guest: it would override the proxy its user data
# sets (99 sorts after cloud-init's 90) and point at an address the guest cannot reach.
rm -f "$guest/etc/resolv.conf" "$guest/etc/hosts" "$guest/etc/apt/sources.list" "$guest"/etc/ssh/ssh_host_* "$guest/etc/apt/apt.conf.d/99mmdebstrap"
cp -a "$stage/." "$guest/"
rm -rf "$stage"
chroot "$guest" systemctl enable hermes-infra-firstboot.service hermes-infra-vm-firstboot.service systemd-networkd.service
: > "$guest/etc/machine-id"; rm -f "$guest/var/lib/dbus/machine-id"
rm -rf "$guest"/dev/* "$guest"/var/cache/apt/archives/*.deb
ls "$guest"/boot/vmlinuz-* "$guest"/boot/initrd.img-* >/dev/null
"#,
        packages = packages.join(","),
    );
    hook
}

static RUNNER_HOOKS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| vec![String::leak(guest_hook())]);

/// The runner image: Debian 12 with QEMU and the guest's root filesystem (kernel and initramfs
/// in its `/boot`); tagged `hermes-infra/vm-runner:debian12-<digest>`.
pub fn runner_recipe() -> ImageRecipe {
    ImageRecipe::bookworm(
        "vm-runner",
        "hermes-infra/vm-runner",
        RUNNER_PACKAGES,
        RUNNER_FILES,
        &RUNNER_HOOKS,
        RUNNER_CHANGES,
    )
}

/// The runner image reference, building it if needed ([`ImageRecipe::ensure_through_cache`]).
pub async fn ensure_runner(
    docker: &Docker,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<String, ProviderError> {
    runner_recipe().ensure_through_cache(docker, progress).await
}

/// The accelerator asked for by [`ACCEL_ENV`]: `kvm` or `tcg` (the default).
fn accel() -> &'static str {
    match std::env::var(ACCEL_ENV).as_deref() {
        Ok("kvm") => "kvm",
        _ => "tcg",
    }
}

/// What [`run_args`] needs to start one VM host.
#[derive(Debug, Clone)]
pub struct VmContainer<'a> {
    /// Container name.
    pub name: &'a str,
    /// The runner image reference.
    pub image: &'a str,
    /// Docker network to attach it to.
    pub network: Option<&'a str>,
    /// Labels of the container and of its disk volume.
    pub labels: &'a BTreeMap<String, String>,
    /// The guest's user data.
    pub user_data: &'a UserData,
    /// The guest's RAM in MiB.
    pub memory_mib: u32,
    /// The guest's CPUs.
    pub cpus: u32,
    /// `kvm` or `tcg`.
    pub accel: &'a str,
    /// TCP ports forwarded to the same port of the guest (`22 2222`).
    pub forward: &'a str,
}

/// `forward` checked: space-separated TCP ports (a label value holds no commas), 22 among them
/// (sshd starts there).
fn forward_ports(name: &str, forward: &str) -> Result<Vec<u16>, ProviderError> {
    let ports: Vec<u16> = forward
        .split_whitespace()
        .map(|p| p.parse::<u16>().ok().filter(|p| *p > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            ProviderError::Other(format!(
                "VM host `{name}`: forwarded ports `{forward}` are not a space-separated list of \
                 TCP ports"
            ))
        })?;
    if ports.is_empty() || !ports.contains(&FRESH_HOST_SSH_PORT) {
        return Err(ProviderError::Other(format!(
            "VM host `{name}`: forwarded ports `{forward}` leave out {FRESH_HOST_SSH_PORT}, where \
             a new host's sshd listens"
        )));
    }
    Ok(ports)
}

/// The full argument list after `docker`: `run -d ... IMAGE`.
pub fn run_args(vm: &VmContainer<'_>) -> Result<Vec<String>, ProviderError> {
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        format!("--name={}", vm.name),
        "--pull=never".into(),
        // The guest's clean shutdown (ACPI power button) takes a few seconds under emulation.
        "--stop-timeout=90".into(),
    ];
    if let Some(h) = &vm.user_data.hostname {
        args.push(format!("--hostname={h}"));
    }
    image::push_labels(&mut args, vm.labels, DISK_DIR)?;
    if let Some(n) = vm.network {
        args.push(format!("--network={n}"));
    }
    args.push(format!("--memory={}m", vm.memory_mib + RUNNER_OVERHEAD_MIB));
    if vm.accel == "kvm" {
        args.push("--device=/dev/kvm".into());
    }
    for (k, v) in [
        ("HERMES_INFRA_VM_MEMORY", vm.memory_mib.to_string()),
        ("HERMES_INFRA_VM_CPUS", vm.cpus.to_string()),
        ("HERMES_INFRA_VM_ACCEL", vm.accel.to_owned()),
        (
            "HERMES_INFRA_VM_FORWARD",
            forward_ports(vm.name, vm.forward)?
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ] {
        args.push("--env".into());
        args.push(format!("{k}={v}"));
    }
    let user_data = vm.user_data.env_assignment()?;
    // The user data travels on the guest's kernel command line (2048 bytes on x86, shared with
    // the root, console and other parameters).
    if user_data.len() > 1700 {
        return Err(ProviderError::Other(format!(
            "the user data of VM host `{}` is {} bytes, more than the 1700 a kernel command line \
             can carry; give it fewer or shorter (ed25519) public keys",
            vm.name,
            user_data.len()
        )));
    }
    args.push("--env".into());
    args.push(user_data);
    args.push(vm.image.to_owned());
    Ok(args)
}

/// Creates a VM host for [`LocalProvider::create`] (`kind = "vm"`).
pub(crate) async fn create(
    provider: &LocalProvider,
    desired: &Resource,
    ctx: &StepContext,
) -> Result<ObservedResource, ProviderError> {
    let host = host_name(&desired.address)?;
    let progress = |m: &str| (provider.progress)(m);
    let image = ensure_runner(&provider.docker, &progress).await?;
    let crate::Launch {
        limits,
        network,
        container,
        user_data,
        labels,
        machine_cpus,
    } = provider.prepare_launch(host, desired, ctx).await?;
    let args = run_args(&VmContainer {
        name: &container,
        image: &image,
        network: Some(&network),
        labels: &labels,
        user_data: &user_data,
        memory_mib: limits.memory_gib * 1024,
        cpus: limits.cpus.min(machine_cpus),
        accel: accel(),
        forward: desired
            .attrs
            .get(VM_FORWARD_ATTR)
            .and_then(|v| v.as_str())
            .unwrap_or("22"),
    })?;
    let started = Instant::now();
    let id = provider.docker.run(args).await?.trim().to_owned();
    progress(&format!(
        "`{}`: VM booting (software emulation takes about half a minute)",
        desired.address
    ));
    let key = wait_for_boot(&provider.docker, &id, &desired.address, VM_BOOT_TIMEOUT).await?;
    progress(&format!(
        "`{}`: VM up, sshd answering, after {}s",
        desired.address,
        started.elapsed().as_secs()
    ));
    provider
        .created(&ctx.scope, &id, &desired.address, &network, key)
        .await
}

/// The guest's ed25519 host key from the lines its second serial port wrote, if any.
fn parse_host_key(written: &str) -> Option<String> {
    written.lines().find_map(|line| {
        let rest = line.trim_end_matches('\r').strip_prefix(HOST_KEY_PREFIX)?;
        let mut parts = rest.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some(kind @ "ssh-ed25519"), Some(blob))
                if blob
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)) =>
            {
                Some(format!("{kind} {blob}"))
            }
            _ => None,
        }
    })
}

/// The VM's SSH host public key, as its guest reported it on its second serial port (see
/// `HOSTS.md` for why that channel is trusted).
pub async fn read_host_key(docker: &Docker, id: &str) -> Result<String, ProviderError> {
    let written = docker.run(["exec", id, "cat", HOST_KEYS_FILE]).await?;
    parse_host_key(&written).ok_or_else(|| {
        ProviderError::Other(format!(
            "VM host {id} has not reported its SSH host key (yet)"
        ))
    })
}

/// Waits until the guest reported its host key and its sshd answers on the runner's port 22.
pub async fn wait_for_boot(
    docker: &Docker,
    id: &str,
    address: &Address,
    timeout: Duration,
) -> Result<String, ProviderError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(key) = read_host_key(docker, id).await {
            // QEMU accepts on the forwarded port before the guest listens: wait for the banner.
            let banner = docker
                .run([
                    "exec",
                    id,
                    "bash",
                    "-c",
                    "exec 3<>/dev/tcp/127.0.0.1/22 && timeout 5 head -c 4 <&3",
                ])
                .await;
            if banner.is_ok_and(|b| b.starts_with("SSH-")) {
                return Ok(key);
            }
        }
        let state = docker
            .run(["inspect", "--format", "{{.State.Running}}", id])
            .await?;
        if state.trim() != "true" {
            return Err(ProviderError::Other(format!(
                "`{address}`: the VM stopped while booting; see `docker logs {id}`"
            )));
        }
        if Instant::now() > deadline {
            return Err(ProviderError::Transient(format!(
                "`{address}` did not finish booting (host key reported, sshd answering) within \
                 {timeout:?}; see `docker logs {id}`"
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn the_runner_recipe_is_content_addressed_and_carries_the_guest() {
        let tag = runner_recipe().tag();
        assert!(tag.starts_with("hermes-infra/vm-runner:debian12-"), "{tag}");
        assert_eq!(tag, runner_recipe().tag());
        let hook = guest_hook();
        assert!(hook.contains("linux-image-cloud-amd64"));
        assert!(hook.contains("openssh-server"));
        for p in ["docker.io", "nftables", "fail2ban", "cloud-init"] {
            assert!(!hook.contains(&format!(",{p},")), "{p}");
        }
        // The build's apt proxy is not left in the guest to shadow the one its user data sets.
        assert!(hook.contains(r#""$guest/etc/apt/apt.conf.d/99mmdebstrap""#));
        let canonical = runner_recipe().canonical();
        assert!(
            canonical.contains("/usr/lib/hermes-infra/vm/stage/usr/lib/hermes-infra/firstboot")
        );
    }

    #[test]
    fn host_keys_come_from_the_prefixed_lines_only() {
        let written = "noise\r\nhermes-infra-host-key: ssh-rsa AAAAB3\r\n\
                       hermes-infra-host-key: ssh-ed25519 AAAAC3Nza+/=\r\n";
        assert_eq!(parse_host_key(written).unwrap(), "ssh-ed25519 AAAAC3Nza+/=");
        assert_eq!(parse_host_key("ssh-ed25519 AAAA\n"), None);
        assert_eq!(
            parse_host_key("hermes-infra-host-key: ssh-ed25519 AA;rm\n"),
            None
        );
    }

    #[test]
    fn forwarded_ports_are_checked() {
        assert_eq!(forward_ports("v", "22  2222").unwrap(), [22, 2222]);
        for bad in ["", "22,2222", "22 x", "22 0", "22 70000", "2222"] {
            assert!(forward_ports("v", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn run_args_pass_resources_accel_and_user_data() {
        let labels = BTreeMap::from([("hermes-infra.testbed".to_owned(), "1".to_owned())]);
        let ud = UserData::new("i-1").with_hostname("vm-1");
        let args = run_args(&VmContainer {
            name: "v1",
            image: "hermes-infra/vm-runner:debian12-0123456789ab",
            network: Some("net"),
            labels: &labels,
            user_data: &ud,
            memory_mib: 2048,
            cpus: 1,
            accel: "tcg",
            forward: "22 2222",
        })
        .unwrap();
        assert!(args.contains(&"HERMES_INFRA_VM_FORWARD=22 2222".to_owned()));
        assert_eq!(args[..3], ["run", "-d", "--name=v1"]);
        assert!(args.contains(&"--memory=2816m".to_owned()));
        assert!(args.contains(&"HERMES_INFRA_VM_MEMORY=2048".to_owned()));
        assert!(args.contains(&"HERMES_INFRA_VM_ACCEL=tcg".to_owned()));
        assert!(!args.contains(&"--device=/dev/kvm".to_owned()));
        assert!(
            args.contains(
                &"--mount=type=volume,dst=/var/lib/hermes-vm,volume-label=hermes-infra.testbed=1"
                    .to_owned()
            )
        );
        assert!(args[args.len() - 2].starts_with("HERMES_INFRA_USER_DATA="));
    }
}
