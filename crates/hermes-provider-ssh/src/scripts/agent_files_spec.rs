//! How root reaches into an agent's data directory (`assets/agent-files.sh`), run for real with
//! this machine's shell as root: the agent's planted links, FIFOs and other users' files give
//! root's powers to nobody.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::AGENT_FILES;

/// The agent's UID, and another agent's.
const AGENT: u32 = 10_051;
const OTHER: u32 = 10_052;

/// A data directory owned by [`AGENT`] (0700), under a directory every user may traverse, and
/// a root-only secret beside it.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    secret: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        assert_eq!(
            nix_uid(),
            0,
            "these specs run the script as root, as hosts do: run the tests as root"
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = root.join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&data, Some(AGENT), Some(AGENT)).unwrap();
        let secret = root.join("secret");
        std::fs::write(&secret, "ROOT-SECRET\n").unwrap();
        // World-readable on purpose: only refusing to follow the link keeps it out.
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        Self {
            _dir: dir,
            root,
            data,
            secret,
        }
    }

    /// Runs `commands` after the helpers, with `data` and the UID table pointed here.
    fn run(&self, commands: &str) -> Output {
        let script = format!(
            "AGENT=spec\n{AGENT_FILES}\nfail() {{ echo \"$*\" >&2; exit 3; }}\n\
             data='{}'\nuids='{}/uids'\nset -eu\n{commands}\n",
            self.data.display(),
            self.root.display()
        );
        Command::new("timeout")
            .args(["20", "sh", "-c", &script])
            .output()
            .unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.data.join(name)
    }
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn owned_file(path: &Path, text: &str, uid: u32, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

#[test]
fn a_planted_link_is_refused_and_neither_read_nor_written_through() {
    let f = Fixture::new();
    std::os::unix::fs::symlink(&f.secret, f.path(".env")).unwrap();
    let checked = f.run(&format!("check_file {AGENT} .env; echo reached"));
    assert_eq!(checked.status.code(), Some(3), "{checked:?}");
    let message = stderr(&checked);
    assert!(message.contains("is a symbolic link"), "{message}");
    assert!(message.contains("/opt/data/.env"), "{message}");
    assert!(message.contains("rm /opt/data/.env"), "the fix: {message}");
    assert!(!String::from_utf8_lossy(&checked.stdout).contains("reached"));

    let read = f.run(&format!("read_file {AGENT} .env"));
    assert!(read.stdout.is_empty(), "read through the link: {read:?}");

    let written = f.run(&format!("echo NEW | write_file {AGENT} .env 600"));
    assert!(written.status.success(), "{written:?}");
    assert_eq!(std::fs::read_to_string(&f.secret).unwrap(), "ROOT-SECRET\n");
    let replaced = std::fs::symlink_metadata(f.path(".env")).unwrap();
    assert!(
        replaced.file_type().is_file(),
        "the name was replaced, not followed"
    );
    assert_eq!(replaced.uid(), AGENT);
}

#[test]
fn a_fifo_is_refused_at_once() {
    let f = Fixture::new();
    let made = Command::new("mkfifo").arg(f.path(".env")).status().unwrap();
    assert!(made.success());
    let checked = f.run(&format!("check_file {AGENT} .env"));
    assert_eq!(checked.status.code(), Some(3), "{checked:?}");
    assert!(
        stderr(&checked).contains("not a regular file"),
        "{checked:?}"
    );
    // Even unchecked, a read does not wait for a writer (timeout would answer 124).
    let read = f.run(&format!("read_file {AGENT} .env; echo done"));
    assert_eq!(String::from_utf8_lossy(&read.stdout), "done\n", "{read:?}");
}

#[test]
fn another_users_file_is_not_read_for_the_agent() {
    let f = Fixture::new();
    // Root puts another agent's file in this data directory (as a careless copy would).
    owned_file(&f.path(".env"), "OTHER-KEY\n", OTHER, 0o600);
    let read = f.run(&format!("read_file {AGENT} .env"));
    assert!(read.stdout.is_empty(), "{read:?}");
    let checked = f.run(&format!("check_file {AGENT} .env"));
    assert_eq!(checked.status.code(), Some(3), "{checked:?}");
    assert!(
        stderr(&checked).contains("cannot be read by the agent's own user"),
        "{checked:?}"
    );
}

#[test]
fn root_is_never_the_user_acted_as() {
    let f = Fixture::new();
    owned_file(&f.path("config.yaml"), "model: x\n", AGENT, 0o640);
    for uid in ["0", "", "10x"] {
        let read = f.run(&format!("read_file '{uid}' config.yaml"));
        assert_eq!(read.status.code(), Some(3), "uid {uid:?}: {read:?}");
        assert!(read.stdout.is_empty());
        assert!(
            stderr(&read).contains("refusing to act as user"),
            "{read:?}"
        );
    }
}

#[test]
fn a_regular_file_is_replaced_by_a_rename_with_its_owner_and_mode() {
    let f = Fixture::new();
    owned_file(&f.path(".env"), "OLD\n", AGENT, 0o644);
    let before = std::fs::metadata(f.path(".env")).unwrap().ino();
    let out = f.run(&format!(
        "check_file {AGENT} .env && read_file {AGENT} .env && printf 'NEW\\n' | write_file {AGENT} .env 600"
    ));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OLD\n");
    let after = std::fs::metadata(f.path(".env")).unwrap();
    assert_eq!(std::fs::read_to_string(f.path(".env")).unwrap(), "NEW\n");
    assert_ne!(after.ino(), before, "a new file took the name");
    assert_eq!((after.uid(), after.gid()), (AGENT, AGENT));
    assert_eq!(after.mode() & 0o777, 0o600);
    let names: Vec<_> = std::fs::read_dir(&f.data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [".env"], "no temporary file is left");
}

#[test]
fn each_agent_keeps_a_uid_of_its_own() {
    let f = Fixture::new();
    std::fs::write(f.root.join("uids"), "older 10001\n").unwrap();
    let out = f.run("AGENT=acme; agent_uid; agent_uid; AGENT=globex; agent_uid");
    assert!(out.status.success(), "{out:?}");
    let uids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(uids[0], uids[1], "the same agent keeps its UID");
    assert_ne!(uids[0], uids[2]);
    assert!(uids.iter().all(|u| *u > 10_001), "{uids:?}");
}
