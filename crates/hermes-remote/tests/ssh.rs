#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]
#![allow(clippy::print_stderr, reason = "timing figures for the report")]
//! The SSH connector against real sshd daemons on 127.0.0.1 (needs openssh-server).

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hermes_core::seams::{Connector as _, ExecOutput, HostEndpoint, Remote as _};
use hermes_remote::{
    AdminKey, HostKey, PinnedHostKeys, RoundTrips, SshConfig, SshConnector, ensure_admin_key,
    generate_admin_key, scan_host_key,
};
use sha2::{Digest as _, Sha256};
use support::{Sshd, admin_key, silent_listener, ssh_keygen_fingerprint};
use tempfile::TempDir;

const MB: usize = 1024 * 1024;

fn config(key: &AdminKey) -> SshConfig {
    SshConfig {
        private_key: key.private_key.clone(),
        connect_timeout: Duration::from_secs(10),
        op_timeout: Duration::from_mins(1),
        keepalive: Duration::from_secs(30),
    }
}

fn ssh_connector(config: SshConfig) -> (SshConnector, Arc<PinnedHostKeys>) {
    let keys = Arc::new(PinnedHostKeys::default());
    (SshConnector::new(config, keys.clone()), keys)
}

/// Deterministic bytes that do not compress into a pattern the shell might mistake for text.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect()
}

/// One host with our admin key in its `authorized_keys`.
struct Host {
    dir: TempDir,
    key: AdminKey,
    sshd: Sshd,
}

fn host() -> Host {
    let dir = TempDir::new().unwrap();
    let key = admin_key(dir.path(), "admin_ed25519");
    let sshd = Sshd::start(&[&key.public_key]);
    Host { dir, key, sshd }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_script_and_reports_stdout_stderr_and_status() {
    let host = host();
    let (connector, _) = ssh_connector(config(&host.key));
    let remote = connector
        .connect(&host.sshd.endpoint("web-1"))
        .await
        .unwrap();

    let out = remote
        .run(
            "facts",
            "echo out\necho err >&2\nprintf 'no newline'\nexit 3",
            b"",
        )
        .await
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\nno newline");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    let ok = remote.run("facts", "true", b"").await.unwrap();
    assert_eq!((ok.status, ok.stdout.len(), ok.stderr.len()), (0, 0, 0));

    let stdin = remote.run("facts", "cat; echo end", b"").await.unwrap();
    assert_eq!(stdin.stdout, b"end\n", "no payload means an empty stdin");

    for quiet in ["", "# only a comment", "\n\n"] {
        let out = remote.run("facts", quiet, b"").await.unwrap();
        assert_eq!(out, ExecOutput::default(), "script {quiet:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_arrives_intact_after_the_script() {
    let host = host();
    let (connector, _) = ssh_connector(config(&host.key));
    let remote = connector
        .connect(&host.sshd.endpoint("web-1"))
        .await
        .unwrap();
    let target = host.dir.path().join("payload.bin");

    // A long script (far beyond the shell's read buffer) and a payload of 3 MiB.
    let padding = "# padding line to make the script longer than any read buffer\n".repeat(2000);
    let script = format!(
        "{padding}cat > '{}'\nsha256sum < '{}'\n",
        target.display(),
        target.display()
    );
    let payload = pseudo_random(3 * MB);
    let out = remote.run("files", &script, &payload).await.unwrap();
    assert_eq!(out.status, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let expected = hex::encode(Sha256::digest(&payload));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{expected}  -\n")
    );
    assert_eq!(std::fs::read(&target).unwrap(), payload);

    // A payload read in parts, with output before and after.
    let mut payload = b"first line\n".to_vec();
    payload.extend_from_slice(&pseudo_random(100_000));
    let out = remote
        .run(
            "files",
            "echo start\nIFS= read -r first\necho \"first=$first\"\necho \"rest=$(wc -c)\"",
            &payload,
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "start\nfirst=first line\nrest=100000\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_on_both_streams_do_not_deadlock() {
    let host = host();
    let (connector, _) = ssh_connector(config(&host.key));
    let remote = connector
        .connect(&host.sshd.endpoint("web-1"))
        .await
        .unwrap();

    let started = Instant::now();
    let out = remote
        .run(
            "flood",
            "head -c 10485760 /dev/zero | tr '\\0' o &\n\
             head -c 10485760 /dev/zero | tr '\\0' e >&2 &\n\
             wait",
            b"",
        )
        .await
        .unwrap();
    let flood = started.elapsed();
    assert_eq!(out.status, 0);
    assert_eq!(out.stdout.len(), 10 * MB);
    assert_eq!(out.stderr.len(), 10 * MB);
    assert!(out.stdout.iter().all(|&b| b == b'o'));
    assert!(out.stderr.iter().all(|&b| b == b'e'));

    // 10 MiB in echoed back while 10 MiB of stderr flows: stdin, stdout and stderr at once.
    let payload = pseudo_random(10 * MB);
    let started = Instant::now();
    let out = remote
        .run(
            "echo",
            "head -c 10485760 /dev/zero | tr '\\0' e >&2 &\ncat\nwait",
            &payload,
        )
        .await
        .unwrap();
    let echo = started.elapsed();
    assert_eq!(out.status, 0);
    assert!(out.stdout == payload, "stdout differs from the payload");
    assert_eq!(out.stderr.len(), 10 * MB);
    eprintln!(
        "timing: 10 MiB stdout + 10 MiB stderr: {flood:?}; 10 MiB echoed + 10 MiB stderr: {echo:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_contact_pins_the_host_key() {
    let host = host();
    let (connector, keys) = ssh_connector(config(&host.key));
    let endpoint = host.sshd.endpoint("web-1");

    // Read without authenticating: the same key, and nothing pinned by reading.
    let scanned = scan_host_key(&endpoint, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(keys.snapshot().is_empty());

    let remote = connector.open(&endpoint).await.unwrap();
    let expected = HostKey::parse(&host.sshd.host_key).unwrap();
    assert_eq!(remote.host_key(), &expected);
    assert_eq!(scanned, expected);
    assert_eq!(scanned.algorithm(), "ssh-ed25519");
    assert_eq!(
        expected.fingerprint(),
        ssh_keygen_fingerprint(&host.sshd.host_key_file()),
        "fingerprints read like OpenSSH's"
    );
    let pinned = BTreeMap::from([("web-1".to_owned(), expected.openssh())]);
    assert_eq!(keys.learned(), pinned);
    assert_eq!(keys.snapshot(), pinned);

    // A second contact matches and learns nothing new.
    let keys = Arc::new(PinnedHostKeys::new(pinned));
    let again = SshConnector::new(config(&host.key), keys.clone());
    again.open(&endpoint).await.unwrap();
    assert!(keys.learned().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_host_key_is_refused_and_nothing_runs() {
    let Host { dir, key, sshd } = host();
    let (connector, keys) = ssh_connector(config(&key));
    let endpoint = sshd.endpoint("web-1");
    drop(connector.open(&endpoint).await.unwrap());
    let old = HostKey::parse(&sshd.host_key).unwrap();

    // The "host" is rebuilt (or impersonated): same address, another host key.
    let sshd = sshd.restart_with_new_host_key();
    let new = HostKey::parse(&sshd.host_key).unwrap();
    assert_ne!(old, new);

    let err = connector.open(&endpoint).await.unwrap_err();
    assert_eq!((err.host.as_str(), err.step.as_str()), ("web-1", "connect"));
    assert_eq!(
        err.message,
        format!(
            "host `web-1` (127.0.0.1:{port}) presented ssh-ed25519 {new_fp}, but {old_fp} was \
             pinned at first contact; if the host was rebuilt on purpose, accept the new key \
             with `hermes-infra ssh web-1 --accept-new-host-key`, otherwise treat it as a \
             possible attack (nothing was sent to or run on it)",
            port = sshd.port,
            new_fp = new.fingerprint(),
            old_fp = old.fingerprint(),
        )
    );
    // Nothing ran, no credential was offered, the pin is unchanged.
    assert_eq!(
        connector.round_trips()["web-1"],
        RoundTrips {
            connections: 2,
            exec_channels: 0
        }
    );
    let log = sshd.log();
    assert!(!log.contains("Accepted publickey"), "{log}");
    assert!(!log.contains("userauth-request"), "{log}");
    assert_eq!(keys.snapshot()["web-1"], old.openssh());

    // Accepting deliberately: forget the pin, the next contact pins the new key.
    keys.forget("web-1");
    let remote = connector.open(&endpoint).await.unwrap();
    assert_eq!(remote.host_key(), &new);
    assert_eq!(keys.snapshot()["web-1"], new.openssh());
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_admin_key_is_refused_naming_host_and_step() {
    let host = host();
    let stranger = admin_key(host.dir.path(), "stranger_ed25519");
    let (connector, keys) = ssh_connector(config(&stranger));
    let endpoint = host.sshd.endpoint("db-2");

    let err = connector.open(&endpoint).await.unwrap_err();
    assert_eq!((err.host.as_str(), err.step.as_str()), ("db-2", "connect"));
    let expected = format!(
        "127.0.0.1:{} refused the admin key `{}` for user `{}`",
        host.sshd.port,
        stranger.private_key.display(),
        endpoint.user
    );
    assert!(err.message.starts_with(&expected), "{}", err.message);
    assert!(err.message.contains("authorized_keys"), "{}", err.message);
    assert!(
        err.to_string().starts_with("host `db-2`, step `connect`: "),
        "{err}"
    );
    assert!(
        keys.snapshot().is_empty(),
        "a host that refused us is not pinned"
    );

    // A missing key file is named as such.
    let mut missing = config(&host.key);
    missing.private_key = host.dir.path().join("nope");
    let (connector, _) = ssh_connector(missing);
    let err = connector.open(&endpoint).await.unwrap_err();
    assert!(err.message.contains("admin key"), "{}", err.message);
    assert!(err.message.contains("cannot be read"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_fails_fast_naming_host_and_step() {
    let dir = TempDir::new().unwrap();
    let key = admin_key(dir.path(), "admin_ed25519");
    let (connector, _) = ssh_connector(config(&key));
    let endpoint = HostEndpoint {
        host: "gone-1".to_owned(),
        address: "127.0.0.1".to_owned(),
        port: support::free_port(),
        user: "root".to_owned(),
    };
    let started = Instant::now();
    let err = connector.open(&endpoint).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        (err.host.as_str(), err.step.as_str()),
        ("gone-1", "connect")
    );
    assert_eq!(
        err.message,
        format!(
            "127.0.0.1:{} refused the TCP connection; is sshd running there and the port open?",
            endpoint.port
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_listener_times_out_within_the_connect_timeout() {
    let dir = TempDir::new().unwrap();
    let key = admin_key(dir.path(), "admin_ed25519");
    let (_listener, port) = silent_listener();
    let mut config = config(&key);
    config.connect_timeout = Duration::from_secs(1);
    let (connector, _) = ssh_connector(config);
    let endpoint = HostEndpoint {
        host: "mute-1".to_owned(),
        address: "127.0.0.1".to_owned(),
        port,
        user: "root".to_owned(),
    };

    let started = Instant::now();
    let err = connector.open(&endpoint).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(
        (err.host.as_str(), err.step.as_str()),
        ("mute-1", "connect")
    );
    assert_eq!(
        err.message,
        format!("127.0.0.1:{port} accepted TCP but did not complete the SSH handshake in time")
    );

    let started = Instant::now();
    let err = scan_host_key(&endpoint, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(err.step, "scan-host-key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_the_operation_timeout_is_cut_off() {
    let host = host();
    let mut config = config(&host.key);
    config.op_timeout = Duration::from_secs(2);
    let (connector, _) = ssh_connector(config);
    let remote = connector
        .connect(&host.sshd.endpoint("web-1"))
        .await
        .unwrap();

    let started = Instant::now();
    let err = remote
        .run("hardening", "echo begun; sleep 30", b"")
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(
        (err.host.as_str(), err.step.as_str()),
        ("web-1", "hardening")
    );
    assert!(
        err.message.starts_with("did not finish within 2s"),
        "{}",
        err.message
    );

    // The session may be mid-way: it refuses further work instead of guessing.
    let err = remote.run("agents", "true", b"").await.unwrap_err();
    assert_eq!(err.step, "agents");
    assert!(
        err.message.contains("unusable since an earlier failure"),
        "{}",
        err.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_with_a_syntax_error_runs_nothing() {
    let host = host();
    let (connector, _) = ssh_connector(config(&host.key));
    let remote = connector
        .connect(&host.sshd.endpoint("web-1"))
        .await
        .unwrap();
    let marker = host.dir.path().join("ran");

    let script = format!("touch '{}'\nif then fi fi\n", marker.display());
    let out = remote.run("hardening", &script, b"payload").await.unwrap();
    assert_ne!(out.status, 0);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Syntax error"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!marker.exists(), "the first line ran before the error");

    // Killed by a signal: 128 + signal, like a shell reports it.
    let out = remote.run("kill", "kill -TERM $$", b"").await.unwrap();
    assert_eq!(out.status, 143);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_serves_every_run() {
    let host = host();
    let (connector, _) = ssh_connector(config(&host.key));
    let remote = connector.open(&host.sshd.endpoint("web-1")).await.unwrap();
    for i in 0..5 {
        let out = remote
            .run("step", &format!("echo {i} $PPID"), b"")
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("{i} ")));
    }
    let expected = RoundTrips {
        connections: 1,
        exec_channels: 5,
    };
    assert_eq!(remote.round_trips(), expected);
    assert_eq!(connector.round_trips()["web-1"], expected);

    // Runs asked for at the same time take turns on the one session.
    let (a, b) = tokio::join!(
        remote.run("a", "sleep 0.2; echo a", b""),
        remote.run("b", "cat", b"b")
    );
    assert_eq!(
        (a.unwrap().stdout, b.unwrap().stdout),
        (b"a\n".to_vec(), b"b".to_vec())
    );
    assert_eq!(remote.round_trips().exec_channels, 7);
    let log = host.sshd.log();
    assert_eq!(log.matches("Accepted publickey").count(), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_are_sent_when_idle_and_during_quiet_runs() {
    let host = host();
    let mut config = config(&host.key);
    config.keepalive = Duration::from_secs(2);
    let (connector, _) = ssh_connector(config);
    let remote = connector.open(&host.sshd.endpoint("web-1")).await.unwrap();
    let count = || host.sshd.log().matches("keepalive@libssh2.org").count();

    tokio::time::sleep(Duration::from_millis(4500)).await;
    let idle = count();
    assert!(idle >= 1, "no keepalive while idle");

    remote.run("quiet", "sleep 5", b"").await.unwrap();
    let after_run = count();
    assert!(
        after_run >= idle + 2,
        "no keepalive during a quiet run ({idle} -> {after_run})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_hosts_in_parallel() {
    let dir = TempDir::new().unwrap();
    let key = admin_key(dir.path(), "admin_ed25519");
    let daemons: Vec<Sshd> = (0..10).map(|_| Sshd::start(&[&key.public_key])).collect();
    let (connector, keys) = ssh_connector(config(&key));
    let connector = Arc::new(connector);

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, sshd) in daemons.iter().enumerate() {
        let endpoint = sshd.endpoint(&format!("host-{i}"));
        let connector = Arc::clone(&connector);
        tasks.spawn(async move {
            let remote = connector.connect(&endpoint).await.unwrap();
            let out = remote
                .run("facts", "echo \"$SSH_CONNECTION\"", b"")
                .await
                .unwrap();
            (endpoint, out)
        });
    }
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        let (endpoint, out) = joined.unwrap();
        let line = String::from_utf8(out.stdout).unwrap();
        assert!(
            line.trim_end().ends_with(&format!(" {}", endpoint.port)),
            "{line}"
        );
        done += 1;
    }
    let parallel = started.elapsed();
    assert_eq!(done, 10);
    assert_eq!(keys.learned().len(), 10);
    assert!(connector.round_trips().values().all(|rt| *rt
        == RoundTrips {
            connections: 1,
            exec_channels: 1
        }));

    // One host alone, for comparison.
    let single = SshConnector::new(config(&key), Arc::new(PinnedHostKeys::default()));
    let started = Instant::now();
    let remote = single.open(&daemons[0].endpoint("solo")).await.unwrap();
    let connected = started.elapsed();
    let started = Instant::now();
    remote.run("facts", "true", b"").await.unwrap();
    let one_run = started.elapsed();
    let started = Instant::now();
    remote.run("files", "cat > /dev/null", b"x").await.unwrap();
    let payload_run = started.elapsed();
    eprintln!(
        "timing: connect {connected:?}; one run {one_run:?}; one run with payload \
         {payload_run:?}; 10 hosts in parallel (connect + one run each) {parallel:?}"
    );
}

#[test]
fn admin_keys_are_0600_openssh_keys_that_ssh_keygen_reads() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("keys/admin_ed25519");
    let made = ensure_admin_key(&path, "hermes-infra").unwrap();

    let file_mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(file_mode, 0o600);
    let folder_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(folder_mode, 0o700);
    assert!(made.public_key.starts_with("ssh-ed25519 "));
    assert!(made.public_key.ends_with(" hermes-infra"));

    // ssh-keygen derives the same public key from the private file.
    let derived = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(derived.status.success());
    let derived = String::from_utf8(derived.stdout).unwrap();
    assert_eq!(
        HostKey::parse(&derived).unwrap(),
        HostKey::parse(&made.public_key).unwrap()
    );
    let pub_file = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    assert_eq!(pub_file.trim(), made.public_key);
    assert_eq!(
        made.fingerprint,
        ssh_keygen_fingerprint(&path.with_extension("pub"))
    );

    // Idempotent; never overwritten.
    assert_eq!(ensure_admin_key(&path, "other").unwrap(), made);
    let err = generate_admin_key(&path, "hermes-infra").unwrap_err();
    assert_eq!(err.path, path);

    // A key others can read is refused with the fix.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = ensure_admin_key(&path, "hermes-infra").unwrap_err();
    assert!(err.message.contains("chmod 600"), "{err}");
}
