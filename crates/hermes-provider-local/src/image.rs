//! Local images built from Debian packages: the container host image (a Debian 12 system as close
//! to a fresh cloud image as a container allows), the apt cache image, and the images agents run
//! from (Hermes Agent itself, and its egress proxy).
//!
//! No image can be pulled, so each image is a recipe: `mmdebstrap` makes a root filesystem tar
//! from Debian packages, the recipe's files are copied in, and `docker import` loads it. The tag
//! carries a digest of the whole recipe (packages, options, every embedded file, import changes),
//! so a changed recipe builds a new image and an unchanged one is reused: [`ImageRecipe::ensure`]
//! returns at once when the tag exists. `HOSTS.md` beside this crate's `Cargo.toml` describes the
//! host image and how it differs from a real cloud host.

mod agent;
mod build;
mod user_data;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hermes_core::seams::ProviderError;

use crate::docker::Docker;

pub use agent::{AGENT_INSTALL_PATH, AGENT_PACKAGES};
pub use user_data::{USER_DATA_ENV, UserData};

/// Image label: which recipe built the image (`host`, `apt-cache`).
pub const IMAGE_LABEL: &str = "hermes-infra/image";
/// Image label: the full digest of the recipe that built the image.
pub const RECIPE_DIGEST_LABEL: &str = "hermes-infra/recipe-digest";
/// The Debian archive images are built from (and hosts' apt sources point at).
pub const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";
/// How long one `mmdebstrap` run may take.
pub const BUILD_TIMEOUT: Duration = Duration::from_mins(15);

/// A file the recipe copies into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedFile {
    /// Absolute path inside the image.
    pub path: &'static str,
    /// Its mode (owner root).
    pub mode: u32,
    /// Its content: embedded in the binary, or rendered for this recipe (an install step that
    /// names a version).
    pub content: Cow<'static, str>,
}

/// How to build one image from Debian packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecipe {
    name: &'static str,
    repository: &'static str,
    release: &'static str,
    suite: &'static str,
    variant: &'static str,
    sources: &'static [&'static str],
    packages: &'static [&'static str],
    files: Cow<'static, [EmbeddedFile]>,
    hooks: &'static [&'static str],
    changes: &'static [&'static str],
}

/// Options for one build (none of them changes the image's content, so none is in the digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Fetch packages through this apt proxy (`http://address:3142`, e.g. a running
    /// [`crate::apt_cache`]); it is not left in the image.
    pub apt_proxy: Option<String>,
    /// Bound on the `mmdebstrap` run.
    pub timeout: Duration,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            apt_proxy: None,
            timeout: BUILD_TIMEOUT,
        }
    }
}

const BOOKWORM_SOURCES: &[&str] = &[
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
];

/// Packages of the host image: what a Debian 12 cloud image gives a first SSH login (its
/// `important`-priority basics included), less cloud-init itself (replaced by the first-boot
/// unit) and the kernel, bootloader, udev and network configuration a container does not use. Never Docker, nftables, fail2ban or
/// unattended-upgrades: `hermes-infra` installs those itself, as on a real cloud host.
const HOST_PACKAGES: &[&str] = &[
    "apt-utils",
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "sudo",
    "ca-certificates",
    "netbase",
    "iproute2",
    "iputils-ping",
    "procps",
    "less",
    "nano",
    "curl",
    "wget",
    "gnupg",
    "bash-completion",
    "cron",
    "logrotate",
    "kmod",
];

const HOST_FILES: &[EmbeddedFile] = &[
    EmbeddedFile {
        path: "/usr/lib/hermes-infra/container-init",
        mode: 0o755,
        content: Cow::Borrowed(include_str!("../assets/host/container-init")),
    },
    EmbeddedFile {
        path: "/usr/lib/hermes-infra/firstboot",
        mode: 0o755,
        content: Cow::Borrowed(include_str!("../assets/host/firstboot")),
    },
    EmbeddedFile {
        path: "/etc/systemd/system/hermes-infra-firstboot.service",
        mode: 0o644,
        content: Cow::Borrowed(include_str!(
            "../assets/host/hermes-infra-firstboot.service"
        )),
    },
    EmbeddedFile {
        path: "/etc/apt/sources.list.d/debian.sources",
        mode: 0o644,
        content: Cow::Borrowed(include_str!("../assets/host/debian.sources")),
    },
];

/// Shell run after the packages and files are in, with the root directory as `$1`.
const HOST_HOOKS: &[&str] = &[
    // Cloud images ship no SSH host keys: every instance makes its own on first boot.
    r#"rm -f "$1"/etc/ssh/ssh_host_*"#,
    // The deb822 sources file above replaces mmdebstrap's one-line list.
    r#"rm -f "$1/etc/apt/sources.list""#,
    r#"chroot "$1" systemctl enable hermes-infra-firstboot.service"#,
    // An empty machine id: systemd makes a fresh one on each host's first boot.
    r#": > "$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id""#,
];

const HOST_CHANGES: &[&str] = &[
    r#"CMD ["/usr/lib/hermes-infra/container-init"]"#,
    // systemd's container interface: tells systemd (and systemd-detect-virt) what it runs in.
    "ENV container=docker",
];

const APT_CACHE_PACKAGES: &[&str] = &["apt-cacher-ng", "ca-certificates", "netbase"];

const APT_CACHE_FILES: &[EmbeddedFile] = &[EmbeddedFile {
    path: "/etc/apt-cacher-ng/acng.conf",
    mode: 0o644,
    content: Cow::Borrowed(include_str!("../assets/apt-cache/acng.conf")),
}];

const APT_CACHE_HOOKS: &[&str] = &[
    r#"chroot "$1" install -d -o apt-cacher-ng -g apt-cacher-ng -m 0755 /run/apt-cacher-ng"#,
    r#"chroot "$1" chown -R apt-cacher-ng:apt-cacher-ng /var/cache/apt-cacher-ng /var/log/apt-cacher-ng"#,
];

const APT_CACHE_CHANGES: &[&str] = &[
    "USER apt-cacher-ng",
    r#"CMD ["/usr/sbin/apt-cacher-ng", "-c", "/etc/apt-cacher-ng", "ForeGround=1"]"#,
    "EXPOSE 3142/tcp",
];

impl ImageRecipe {
    /// The container host image: Debian 12 with systemd as PID 1, OpenSSH, sudo, and the
    /// cloud-init-like first-boot unit; tagged `hermes-infra/host:debian12-<digest>`.
    pub fn host() -> Self {
        Self {
            name: "host",
            repository: "hermes-infra/host",
            release: "debian12",
            suite: "bookworm",
            variant: "minbase",
            sources: BOOKWORM_SOURCES,
            packages: HOST_PACKAGES,
            files: Cow::Borrowed(HOST_FILES),
            hooks: HOST_HOOKS,
            changes: HOST_CHANGES,
        }
    }

    /// The apt cache image: Debian 12 with `apt-cacher-ng` in the foreground, serving only
    /// Debian's archives; tagged `hermes-infra/apt-cache:debian12-<digest>`.
    pub fn apt_cache() -> Self {
        Self {
            name: "apt-cache",
            repository: "hermes-infra/apt-cache",
            release: "debian12",
            suite: "bookworm",
            variant: "minbase",
            sources: BOOKWORM_SOURCES,
            packages: APT_CACHE_PACKAGES,
            files: Cow::Borrowed(APT_CACHE_FILES),
            hooks: APT_CACHE_HOOKS,
            changes: APT_CACHE_CHANGES,
        }
    }

    /// Another Debian 12 (bookworm, minbase) image, for example a test tool's: `name` becomes the
    /// [`IMAGE_LABEL`], `repository` the tag's repository (`hermes-infra/<name>` by convention).
    pub fn bookworm(
        name: &'static str,
        repository: &'static str,
        packages: &'static [&'static str],
        files: &'static [EmbeddedFile],
        hooks: &'static [&'static str],
        changes: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            repository,
            release: "debian12",
            suite: "bookworm",
            variant: "minbase",
            sources: BOOKWORM_SOURCES,
            packages,
            files: Cow::Borrowed(files),
            hooks,
            changes,
        }
    }

    /// Short name (`host`, `apt-cache`), the value of [`IMAGE_LABEL`].
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Debian packages asked for (their dependencies come too).
    pub fn packages(&self) -> &'static [&'static str] {
        self.packages
    }

    /// The files copied in.
    pub fn files(&self) -> &[EmbeddedFile] {
        &self.files
    }

    /// The recipe with one more file copied in (part of the digest like every other file).
    #[must_use]
    pub fn with_file(mut self, file: EmbeddedFile) -> Self {
        self.files.to_mut().push(file);
        self
    }

    /// The canonical text the digest is taken over: every input of the build.
    pub fn canonical(&self) -> String {
        let mut text = String::from("hermes-infra image recipe v1\n");
        let mut line = |k: &str, v: &str| {
            let _ = writeln!(text, "{k}={v}");
        };
        line("name", self.name);
        line("repository", self.repository);
        line("release", self.release);
        line("suite", self.suite);
        line("variant", self.variant);
        line("builder", "mmdebstrap");
        for s in self.sources {
            line("source", s);
        }
        for p in self.packages {
            line("package", p);
        }
        for f in self.files.iter() {
            line(
                "file",
                &format!(
                    "{} {:o} {}",
                    f.path,
                    f.mode,
                    hermes_core::digest::sha256(f.content.as_bytes())
                ),
            );
        }
        for h in self.hooks {
            line("hook", h);
        }
        for c in self.changes {
            line("change", c);
        }
        text
    }

    /// `sha256:<hex>` of [`Self::canonical`].
    pub fn digest(&self) -> String {
        hermes_core::digest::sha256(self.canonical().as_bytes())
    }

    /// The image reference: `<repository>:<release>-<first 12 hex digits of the digest>`.
    pub fn tag(&self) -> String {
        let digest = self.digest();
        let hex = digest.strip_prefix("sha256:").unwrap_or(&digest);
        format!("{}:{}-{}", self.repository, self.release, &hex[..12])
    }

    /// The `docker import --change` lines: the recipe's own plus its labels.
    pub fn import_changes(&self) -> Vec<String> {
        let mut changes: Vec<String> = self.changes.iter().map(|c| (*c).to_owned()).collect();
        changes.push(format!("LABEL {IMAGE_LABEL}={}", self.name));
        changes.push(format!("LABEL {RECIPE_DIGEST_LABEL}={}", self.digest()));
        changes
    }

    /// The `mmdebstrap` arguments writing the root filesystem to `output`, with the embedded
    /// files already written under `files_dir` as `0`, `1`, ... (in [`Self::files`] order).
    pub fn mmdebstrap_args(
        &self,
        files_dir: &std::path::Path,
        output: &std::path::Path,
        options: &BuildOptions,
    ) -> Vec<String> {
        let mut args = vec![
            format!("--variant={}", self.variant),
            "--components=main".to_owned(),
            format!("--include={}", self.packages.join(",")),
        ];
        if let Some(proxy) = &options.apt_proxy {
            args.push(format!("--aptopt=Acquire::http::Proxy \"{proxy}\""));
        }
        for (i, f) in self.files.iter().enumerate() {
            let local = files_dir.join(i.to_string());
            args.push(format!(
                "--customize-hook=install -D -m {:o} {} \"$1{}\"",
                f.mode,
                sh_quote(&local.to_string_lossy()),
                f.path
            ));
        }
        for h in self.hooks {
            args.push(format!("--customize-hook={h}"));
        }
        // mmdebstrap keeps --aptopt settings in the image; a build proxy must not stay there.
        args.push(r#"--customize-hook=rm -f "$1/etc/apt/apt.conf.d/99mmdebstrap""#.to_owned());
        args.push(self.suite.to_owned());
        args.push(output.to_string_lossy().into_owned());
        args.extend(self.sources.iter().map(|s| (*s).to_owned()));
        args
    }

    /// Whether the image is already on the engine.
    pub async fn exists(&self, docker: &Docker) -> Result<bool, ProviderError> {
        let ids = docker
            .run(["images", "--quiet", "--no-trunc", &self.tag()])
            .await?;
        Ok(!ids.trim().is_empty())
    }

    /// The image reference, building it first if the engine does not have it yet (see
    /// [`Self::ensure_with`]).
    pub async fn ensure(
        &self,
        docker: &Docker,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<String, ProviderError> {
        self.ensure_with(docker, &BuildOptions::default(), progress)
            .await
    }

    /// The image reference, building it first if the engine does not have it yet: `mmdebstrap`
    /// (its output relayed to `progress`, bounded by `options.timeout`), then `docker import`
    /// (bounded by `docker`'s own timeout: give it a minute or more). Concurrent callers, in
    /// this process or others, wait for one build.
    pub async fn ensure_with(
        &self,
        docker: &Docker,
        options: &BuildOptions,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<String, ProviderError> {
        let tag = self.tag();
        if self.exists(docker).await? {
            return Ok(tag);
        }
        let lock_path = std::env::temp_dir().join(format!("hermes-infra-image-{}.lock", self.name));
        let _lock = build::lock(
            &lock_path,
            options.timeout + Duration::from_mins(2),
            &format!("building {tag}"),
            progress,
        )
        .await?;
        if self.exists(docker).await? {
            return Ok(tag);
        }
        self.build(docker, options, progress).await?;
        Ok(tag)
    }

    async fn build(
        &self,
        docker: &Docker,
        options: &BuildOptions,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), ProviderError> {
        let tag = self.tag();
        let Some(mmdebstrap) = build::find_program("mmdebstrap") else {
            return Err(ProviderError::Other(format!(
                "cannot build the local image {tag}: `mmdebstrap` is not installed (it builds \
                 the image from Debian packages, as no image can be pulled); install it with \
                 `apt-get install mmdebstrap`"
            )));
        };
        let started = Instant::now();
        let scratch = build::ScratchDir::new(&format!("hermes-infra-image-{}", self.name))?;
        let files_dir = scratch.path().join("files");
        std::fs::create_dir_all(&files_dir)
            .map_err(|e| ProviderError::Other(format!("cannot write build files: {e}")))?;
        for (i, f) in self.files.iter().enumerate() {
            std::fs::write(files_dir.join(i.to_string()), f.content.as_bytes())
                .map_err(|e| ProviderError::Other(format!("cannot write build files: {e}")))?;
        }
        let output = scratch.path().join("rootfs.tar");
        progress(&format!(
            "building local image {tag} from Debian packages with mmdebstrap (once; cached \
             afterwards)"
        ));
        build::run_relayed(
            &mmdebstrap,
            &self.mmdebstrap_args(&files_dir, &output, options),
            options.timeout,
            "mmdebstrap: ",
            progress,
        )
        .await?;
        progress(&format!("importing {tag} into Docker"));
        let mut args = vec!["import".to_owned()];
        for change in self.import_changes() {
            args.push("--change".to_owned());
            args.push(change);
        }
        args.push(output.to_string_lossy().into_owned());
        args.push(tag.clone());
        docker.run(&args).await?;
        progress(&format!("built {tag} in {}s", started.elapsed().as_secs()));
        Ok(())
    }
}

impl ImageRecipe {
    /// The image reference, building it if needed through the local apt cache
    /// ([`crate::apt_cache::ensure`], started first): measured here, `mmdebstrap` took about 30 s
    /// through the cache against about 90 s straight from Debian's archive, and later rebuilds (a
    /// changed recipe) find the packages cached. Builds straight from the archive when this
    /// machine cannot reach the cache container (an engine elsewhere, through `DOCKER_HOST`).
    pub async fn ensure_through_cache(
        &self,
        docker: &Docker,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<String, ProviderError> {
        if self.exists(docker).await? {
            return Ok(self.tag());
        }
        let cache = crate::apt_cache::ensure(docker, None, progress).await?;
        let address = format!("{}:{}", cache.address, crate::apt_cache::PORT);
        let reachable = tokio::task::spawn_blocking(move || {
            address.parse::<std::net::SocketAddr>().is_ok_and(|a| {
                std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok()
            })
        })
        .await
        .unwrap_or(false);
        if !reachable {
            progress(&format!(
                "the apt cache at {} is not reachable from this machine; building from Debian's \
                 archive directly",
                cache.url
            ));
        }
        let options = BuildOptions {
            apt_proxy: reachable.then(|| cache.url.clone()),
            ..BuildOptions::default()
        };
        self.ensure_with(docker, &options, progress).await
    }
}

/// The host image reference, building it if needed ([`ImageRecipe::ensure_through_cache`]).
pub async fn ensure_host(
    docker: &Docker,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<String, ProviderError> {
    ImageRecipe::host()
        .ensure_through_cache(docker, progress)
        .await
}

/// A cross-process lock at `path` for short work (starting a shared container), waiting at most
/// two minutes for another holder.
pub(crate) async fn build_lock(
    path: &std::path::Path,
    what: &str,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<build::FileLock, ProviderError> {
    build::lock(path, Duration::from_mins(2), what, progress).await
}

/// `value` single-quoted for `sh`.
fn sh_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Flags every host container needs on top of `docker run -d` (see `HOSTS.md` for why each is
/// there). The engine must support `--cgroupns` (Docker 20.10 or later).
pub const HOST_RUN_FLAGS: &[&str] = &[
    // Never reach for a registry: the image is local or the run fails.
    "--pull=never",
    // systemd's own cgroup subtree; agents' cgroups nest under the host's.
    "--cgroupns=private",
    // Mounts (systemd, Docker), namespaces and cgroups of the host's own engine.
    "--cap-add=SYS_ADMIN",
    // Interfaces, routes, nftables and iptables in the host's own network namespace.
    "--cap-add=NET_ADMIN",
    // Root on a real host reads every process (`ss -p`, `ps`, strace); agents run as other users.
    "--cap-add=SYS_PTRACE",
    // Services that raise their priority or lock memory, as on a real host.
    "--cap-add=SYS_NICE",
    "--cap-add=IPC_LOCK",
    // The inner runc joins a session keyring (keyctl), which Docker's default profile forbids;
    // a real host's processes have no seccomp filter either.
    "--security-opt=seccomp=unconfined",
    // Docker's AppArmor profile (where AppArmor is on) forbids the mounts systemd makes.
    "--security-opt=apparmor=unconfined",
    // systemd expects /run and /run/lock to be fresh tmpfs, as on a booted machine.
    "--tmpfs=/run:rw,nosuid,nodev,exec,mode=755",
    "--tmpfs=/run/lock:rw,nosuid,nodev,noexec,size=5m",
    // systemd halts on SIGRTMIN+3 (SIGTERM makes it re-execute); `docker import` cannot store it.
    "--stop-signal=SIGRTMIN+3",
    "--stop-timeout=30",
];

/// Adds `labels` to a `docker run`, and an anonymous volume at `volume_dst` carrying the same
/// labels (so that a stack's volumes are found, and removed, by its ownership labels too).
pub(crate) fn push_labels(
    args: &mut Vec<String>,
    labels: &BTreeMap<String, String>,
    volume_dst: &str,
) -> Result<(), ProviderError> {
    let mut mount = format!("--mount=type=volume,dst={volume_dst}");
    for (k, v) in labels {
        if k.contains([',', '"', '=']) || v.contains([',', '"']) {
            return Err(ProviderError::Other(format!(
                "label `{k}={v}` cannot be given to a volume (no `,`, `\"` or `=` in keys)"
            )));
        }
        args.push(format!("--label={k}={v}"));
        let _ = write!(mount, ",volume-label={k}={v}");
    }
    args.push(mount);
    Ok(())
}

/// What [`host_run_args`] needs to start one container host.
#[derive(Debug, Clone)]
pub struct HostContainer<'a> {
    /// Container name.
    pub name: &'a str,
    /// The host image reference ([`ImageRecipe::host`]`.ensure(..)`).
    pub image: &'a str,
    /// Docker network to attach it to (`None`: the default bridge).
    pub network: Option<&'a str>,
    /// Labels for the container and its `/var/lib/docker` volume.
    pub labels: &'a BTreeMap<String, String>,
    /// Its user data (host name, admin user and keys, apt proxy).
    pub user_data: &'a UserData,
    /// `--memory` (e.g. `2g`), the host's RAM.
    pub memory: Option<&'a str>,
    /// `--cpus` (e.g. `2`), the host's CPUs.
    pub cpus: Option<&'a str>,
}

/// The full argument list after `docker`: `run -d ... IMAGE`. The host's Docker engine keeps its
/// data in an anonymous volume (removed with `docker rm -v`), labelled like the container: an
/// overlay filesystem cannot be stacked on the outer engine's storage.
pub fn host_run_args(host: &HostContainer<'_>) -> Result<Vec<String>, ProviderError> {
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), format!("--name={}", host.name)];
    if let Some(h) = &host.user_data.hostname {
        args.push(format!("--hostname={h}"));
    }
    args.extend(HOST_RUN_FLAGS.iter().map(|f| (*f).to_owned()));
    push_labels(&mut args, host.labels, "/var/lib/docker")?;
    if let Some(n) = host.network {
        args.push(format!("--network={n}"));
    }
    if let Some(m) = host.memory {
        args.push(format!("--memory={m}"));
    }
    if let Some(c) = host.cpus {
        args.push(format!("--cpus={c}"));
    }
    args.push("--env".into());
    args.push(host.user_data.env_assignment()?);
    args.push(host.image.to_owned());
    Ok(args)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn tags_are_content_addressed() {
        let host = ImageRecipe::host();
        let tag = host.tag();
        assert!(tag.starts_with("hermes-infra/host:debian12-"), "{tag}");
        assert_eq!(tag.len(), "hermes-infra/host:debian12-".len() + 12);
        assert_eq!(tag, ImageRecipe::host().tag(), "stable");

        let mut changed = ImageRecipe::host();
        changed.packages = &["systemd"];
        assert_ne!(changed.tag(), tag);
        let mut changed = ImageRecipe::host();
        changed.files = Cow::Borrowed(&HOST_FILES[..1]);
        assert_ne!(changed.tag(), tag);
        assert!(
            ImageRecipe::apt_cache()
                .tag()
                .starts_with("hermes-infra/apt-cache:debian12-")
        );
    }

    #[test]
    fn the_digest_covers_every_embedded_file() {
        let canonical = ImageRecipe::host().canonical();
        for f in HOST_FILES {
            assert!(canonical.contains(f.path), "{}", f.path);
        }
        assert!(canonical.contains("package=openssh-server"));
    }

    #[test]
    fn the_host_image_leaves_the_tools_packages_out() {
        let host = ImageRecipe::host();
        for p in [
            "docker.io",
            "docker-ce",
            "containerd",
            "nftables",
            "iptables",
            "fail2ban",
            "unattended-upgrades",
            "cloud-init",
        ] {
            assert!(!host.packages().contains(&p), "{p}");
        }
    }

    #[test]
    fn mmdebstrap_gets_files_hooks_and_sources() {
        let opts = BuildOptions {
            apt_proxy: Some("http://10.0.0.2:3142".into()),
            ..BuildOptions::default()
        };
        let args = ImageRecipe::host().mmdebstrap_args(
            std::path::Path::new("/tmp/b it's"),
            std::path::Path::new("/tmp/out.tar"),
            &opts,
        );
        assert!(args.contains(&"--variant=minbase".to_owned()));
        assert!(
            args.iter()
                .any(|a| a.starts_with("--include=apt-utils,systemd,"))
        );
        assert!(args.contains(
            &r#"--customize-hook=install -D -m 755 '/tmp/b it'\''s/0' "$1/usr/lib/hermes-infra/container-init""#
                .to_owned()
        ));
        assert!(
            args.contains(&r#"--aptopt=Acquire::http::Proxy "http://10.0.0.2:3142""#.to_owned())
        );
        let suite = args.iter().position(|a| a == "bookworm").unwrap();
        assert_eq!(args[suite + 1], "/tmp/out.tar");
        assert_eq!(args.len(), suite + 2 + BOOKWORM_SOURCES.len());
    }

    #[test]
    fn host_run_args_carry_flags_labels_and_user_data() {
        let labels = BTreeMap::from([("hermes-infra.testbed".to_owned(), "1".to_owned())]);
        let ud = UserData::new("i-1").with_hostname("web-1");
        let args = host_run_args(&HostContainer {
            name: "h1",
            image: "hermes-infra/host:debian12-0123456789ab",
            network: Some("net"),
            labels: &labels,
            user_data: &ud,
            memory: Some("1g"),
            cpus: None,
        })
        .unwrap();
        for f in HOST_RUN_FLAGS {
            assert!(args.contains(&(*f).to_owned()), "{f}");
        }
        assert_eq!(args[..3], ["run", "-d", "--name=h1"]);
        assert!(args.contains(&"--hostname=web-1".to_owned()));
        assert!(args.contains(&"--label=hermes-infra.testbed=1".to_owned()));
        assert!(
            args.contains(
                &"--mount=type=volume,dst=/var/lib/docker,volume-label=hermes-infra.testbed=1"
                    .to_owned()
            )
        );
        assert!(args.contains(&"--memory=1g".to_owned()));
        assert_eq!(
            args.last().unwrap(),
            "hermes-infra/host:debian12-0123456789ab"
        );
        let env = &args[args.len() - 2];
        assert!(env.starts_with("HERMES_INFRA_USER_DATA="));

        let bad = BTreeMap::from([("a,b".to_owned(), "1".to_owned())]);
        assert!(
            host_run_args(&HostContainer {
                labels: &bad,
                name: "h1",
                image: "i",
                network: None,
                user_data: &ud,
                memory: None,
                cpus: None,
            })
            .is_err()
        );
    }
}
