//! [`as_root`] run by a local `sh -s`, fed like `hermes_remote` feeds a host (the wrapper in
//! one `{ ... }` group that prints a marker, the payload only once the marker came back), with
//! a fake `sudo` first in `PATH` that records its arguments, checks `-n` and runs the rest.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::*;

const MARKER: &str = "hermes-infra-test-ready";

/// A fake `sudo`: appends its arguments to `$FAKE_SUDO_LOG`, one a line, then refuses
/// (`$FAKE_SUDO_REFUSE` set) or drops `-n` and runs the rest.
const FAKE_SUDO: &str = r#"#!/bin/sh
printf '%s\n' "$@" >>"$FAKE_SUDO_LOG"
[ "$1" = -n ] || { echo "fake sudo: -n missing" >&2; exit 99; }
shift
[ -z "${FAKE_SUDO_REFUSE:-}" ] || { echo "sudo: a password is required" >&2; exit 1; }
exec "$@"
"#;

struct Ran {
    status: i32,
    stdout: Vec<u8>,
    stderr: String,
    /// What the fake sudo was given, one argument a line.
    sudo_args: String,
}

fn fake_sudo_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sudo = dir.path().join("sudo");
    std::fs::write(&sudo, FAKE_SUDO).expect("write the fake sudo");
    std::fs::set_permissions(&sudo, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Runs `as_root(script)` with `sh -s`, `payload` sent after the marker.
fn run_as_root(script: &str, payload: &[u8], refuse: bool) -> Ran {
    let dir = fake_sudo_dir();
    let log = dir.path().join("sudo.log");
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-s")
        .env("PATH", path)
        .env("SSH_CLIENT", "192.0.2.7 50022 22")
        .env("FAKE_SUDO_LOG", &log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if refuse {
        cmd.env("FAKE_SUDO_REFUSE", "1");
    }
    let mut child = cmd.spawn().expect("sh runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let group = format!("{{ printf '%s\\n' '{MARKER}'\n{}}}\n", as_root(script));
    stdin.write_all(group.as_bytes()).expect("send the script");
    let mut first = String::new();
    stdout.read_line(&mut first).expect("the marker");
    assert_eq!(first, format!("{MARKER}\n"), "the group did not start");
    // A refused sudo may have ended the shell already: the payload is then not wanted.
    let _ = stdin.write_all(payload);
    drop(stdin);
    let mut out = Vec::new();
    stdout.read_to_end(&mut out).expect("stdout");
    let status = child.wait().expect("sh ends").code().unwrap_or(-1);
    Ran {
        status,
        stdout: out,
        stderr: errors.join().expect("stderr reader"),
        sudo_args: std::fs::read_to_string(&log).unwrap_or_default(),
    }
}

/// The file sudo was asked to run.
fn root_file(sudo_args: &str) -> PathBuf {
    let path = sudo_args.lines().nth(2).expect("sudo -n /bin/sh FILE ...");
    assert!(path.starts_with("/tmp/hermes-infra."), "{sudo_args}");
    PathBuf::from(path)
}

#[test]
fn the_root_script_gets_ssh_client_and_the_payload_and_its_file_is_gone() {
    let script = "set -eu\n\
                  SECRET_SETTING='s3cr3t-in-the-script'\n\
                  printf 'arg1=%s\\n' \"$1\"\n\
                  if [ -e \"$0\" ]; then echo 'file still there'; else echo 'file gone'; fi\n\
                  echo payload:\n\
                  cat\n\
                  exit 7";
    // A payload that a shell reading on would run, and bytes of every value.
    let mut payload = b"echo PAYLOAD-RAN-AS-SCRIPT; exit 99\nHERMES_INFRA_ROOT_SCRIPT_x\n".to_vec();
    payload.extend(0_u8..=255);
    let ran = run_as_root(script, &payload, false);

    assert_eq!(ran.status, 7, "the root script's status: {}", ran.stderr);
    let mut expected = b"arg1=192.0.2.7 50022 22\nfile gone\npayload:\n".to_vec();
    expected.extend_from_slice(&payload);
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(ran.stdout, expected, "the payload arrives byte for byte");

    // sudo saw a file name, never the script.
    let args: Vec<&str> = ran.sudo_args.lines().collect();
    assert_eq!(args.len(), 4, "{args:?}");
    assert_eq!(&args[..2], ["-n", "/bin/sh"]);
    assert_eq!(args[3], "192.0.2.7 50022 22");
    assert!(!ran.sudo_args.contains("s3cr3t"), "{}", ran.sudo_args);
    assert!(
        !root_file(&ran.sudo_args).exists(),
        "the root script's file is left"
    );
}

#[test]
fn a_refused_sudo_leaves_no_file_and_reports_its_status() {
    let ran = run_as_root("echo ran as root", b"payload", true);
    assert_eq!(ran.status, 1);
    assert!(
        ran.stderr.contains("password is required"),
        "{}",
        ran.stderr
    );
    assert!(ran.stdout.is_empty(), "{:?}", ran.stdout);
    assert!(
        !root_file(&ran.sudo_args).exists(),
        "the root script's file is left"
    );
}

#[test]
fn scripts_without_a_final_line_break_or_empty_run_too() {
    for (script, out) in [("echo one", "one\n"), ("", ""), ("echo two\n\n", "two\n")] {
        let ran = run_as_root(script, b"", false);
        assert_eq!(ran.status, 0, "{script:?}: {}", ran.stderr);
        assert_eq!(String::from_utf8_lossy(&ran.stdout), out);
    }
}

#[test]
fn the_delimiter_is_no_line_of_the_script() {
    let script = "echo a\nEND\nEND_\nEND_ \n";
    assert_eq!(unused_line(script, "END"), "END__");
    assert_eq!(unused_line(script, "OTHER"), "OTHER");
    let delimiter = here_doc_delimiter(PHASE);
    assert!(delimiter.starts_with("HERMES_INFRA_ROOT_SCRIPT_"));
    assert!(!PHASE.lines().any(|l| l == delimiter));
}
