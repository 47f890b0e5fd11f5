//! Real `sshd` daemons on 127.0.0.1 and free high ports, one per fake host, killed on drop.

#![allow(dead_code, reason = "not every test file uses every helper")]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hermes_core::seams::HostEndpoint;
use hermes_remote::{AdminKey, ensure_admin_key};
use tempfile::TempDir;

/// How long an sshd may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The `sshd` binary, by absolute path (sshd refuses to re-exec itself otherwise).
pub(crate) fn sshd_path() -> PathBuf {
    for candidate in ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "sshd not found: these tests need the openssh-server package (apt-get install -y openssh-server)"
    );
}

/// A port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The user sshd will let us in as: ourselves.
pub(crate) fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A fresh admin key in `dir`, made by the crate under test.
pub(crate) fn admin_key(dir: &Path, name: &str) -> AdminKey {
    ensure_admin_key(&dir.join(name), "hermes-infra-test").unwrap()
}

/// `ssh-keygen -t ed25519` host key at `path`; returns its public line.
pub(crate) fn ssh_keygen(path: &Path) -> String {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test-host", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen failed");
    fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned()
}

/// `ssh-keygen -lf` fingerprint of a public key file (`SHA256:...`).
pub(crate) fn ssh_keygen_fingerprint(public_key_file: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public_key_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

/// One running sshd.
pub(crate) struct Sshd {
    child: Child,
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    dir: TempDir,
    /// Its host key's public line (`ssh-ed25519 AAAA... test-host`).
    pub(crate) host_key: String,
    authorized_keys: String,
}

impl Sshd {
    /// An sshd on a free port with a new host key, letting in the holders of `authorized_keys`
    /// (OpenSSH public-key lines).
    pub(crate) fn start(authorized_keys: &[&str]) -> Self {
        Self::start_on(None, &authorized_keys.join("\n"))
    }

    /// Stops this sshd and starts another one on the same port with a new host key.
    pub(crate) fn restart_with_new_host_key(mut self) -> Self {
        let port = self.port;
        let authorized = std::mem::take(&mut self.authorized_keys);
        drop(self);
        Self::start_on(Some(port), &authorized)
    }

    fn start_on(port: Option<u16>, authorized_keys: &str) -> Self {
        let sshd = sshd_path();
        // The privilege separation directory the package normally creates at boot.
        if current_user() == "root" {
            fs::create_dir_all("/run/sshd").unwrap();
        }
        let dir = tempfile::Builder::new()
            .prefix("hermes-sshd-")
            .tempdir()
            .unwrap();
        let host_key_path = dir.path().join("host_ed25519");
        let host_key = ssh_keygen(&host_key_path);
        fs::write(
            dir.path().join("authorized_keys"),
            format!("{authorized_keys}\n"),
        )
        .unwrap();

        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = port.unwrap_or_else(free_port);
            let config = dir.path().join("sshd_config");
            let pid_file = dir.path().join("sshd.pid");
            let log = dir.path().join("sshd.log");
            let _ = fs::remove_file(&pid_file);
            let _ = fs::remove_file(&log);
            fs::write(
                &config,
                format!(
                    "Port {port}\n\
                     ListenAddress 127.0.0.1\n\
                     HostKey {host_key}\n\
                     PidFile {pid}\n\
                     AuthorizedKeysFile {authorized}\n\
                     PermitRootLogin prohibit-password\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     UsePAM no\n\
                     StrictModes no\n\
                     MaxSessions 64\n\
                     MaxStartups 100:30:200\n\
                     LogLevel DEBUG\n",
                    host_key = host_key_path.display(),
                    pid = pid_file.display(),
                    authorized = dir.path().join("authorized_keys").display(),
                ),
            )
            .unwrap();
            let mut child = Command::new(&sshd)
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            // sshd writes its pid file once its socket listens.
            let started = Instant::now();
            let up = loop {
                if pid_file.exists() {
                    break true;
                }
                if child.try_wait().unwrap().is_some() || started.elapsed() > START_TIMEOUT {
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            if up {
                return Self {
                    child,
                    port,
                    dir,
                    host_key,
                    authorized_keys: authorized_keys.to_owned(),
                };
            }
            // A random port may have been taken meanwhile (try another); a fixed one may
            // still be held by the daemon just stopped (try again shortly).
            last_log = fs::read_to_string(&log).unwrap_or_default();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("sshd did not start; its log:\n{last_log}");
    }

    /// How hosts reach this sshd.
    pub(crate) fn endpoint(&self, host: &str) -> HostEndpoint {
        HostEndpoint {
            host: host.to_owned(),
            address: "127.0.0.1".to_owned(),
            port: self.port,
            user: current_user(),
        }
    }

    /// The public key file of its host key.
    pub(crate) fn host_key_file(&self) -> PathBuf {
        self.dir.path().join("host_ed25519.pub")
    }

    /// What sshd logged so far.
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // By PID: the listening daemon (run with -D, so it is our child).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A listener that accepts TCP connections but never says a word (for handshake timeouts).
pub(crate) fn silent_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}
