//! The readers run by a local `sh` (and `bash`) as sshd would run them (`$SHELL -c`), fed the
//! frame and then the operator's input; `sudo` and `docker` replaced by fakes that record
//! their arguments and run the rest here.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};

use super::*;

/// How [`READ_FRAME`] exits when it finds no whole frame.
const NO_FRAME: i32 = 125;

/// Records its name and arguments (one a line) in `$FAKE_LOG`.
const RECORD: &str = "printf '%s\\n' \"$(basename \"$0\")\" \"$@\" >>\"$FAKE_LOG\"\n";

/// `sudo -n CMD...`: runs CMD.
const FAKE_SUDO: &str = "[ \"$1\" = -n ] || exit 99\nshift\nexec \"$@\"\n";

/// `docker exec -i -e HERMES_INFRA_CMD CONTAINER CMD...`: runs CMD here, with the variable
/// (as `-e NAME` gives it to the container).
const FAKE_DOCKER: &str = "[ \"$1 $2 $3 $4\" = 'exec -i -e HERMES_INFRA_CMD' ] || exit 98\n\
                           shift 5\nexec \"$@\"\n";

struct Ran {
    status: i32,
    stdout: String,
    stderr: String,
    /// What the fakes were given.
    log: String,
}

/// Runs `remote` the way sshd runs a remote command (`shell -c LINE`), its standard input
/// being the frame and then `input`.
fn run(shell: &str, remote: &RemoteCommand, input: &[u8]) -> Ran {
    let mut stdin = remote.frame().expect("a hidden command has a frame");
    stdin.extend_from_slice(input);
    run_raw(shell, &remote.remote_words().join(" "), &stdin)
}

fn run_raw(shell: &str, line: &str, stdin: &[u8]) -> Ran {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, body) in [("sudo", FAKE_SUDO), ("docker", FAKE_DOCKER)] {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{RECORD}{body}")).expect("write a fake");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let log = dir.path().join("log");
    let mut child = Command::new(shell)
        .args(["-c", line])
        .env(
            "PATH",
            format!(
                "{}:{}",
                dir.path().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("FAKE_LOG", &log)
        .env_remove("HERMES_INFRA_CMD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the shell runs");
    let mut to_child = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = to_child.write_all(&stdin);
    });
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("the shell ends").code().unwrap_or(-1);
    writer.join().expect("the writer");
    Ran {
        status,
        stdout,
        stderr,
        log: std::fs::read_to_string(&log).unwrap_or_default(),
    }
}

fn words(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

#[test]
fn a_typed_command_runs_as_written_and_reads_the_input_after_the_frame() {
    // `hermes-infra ssh STACK HOST -- printf '%s|' "a  b" 's3cr3t' ';' cat ';' exit 3`, as the
    // operator's shell leaves the words.
    let typed = RemoteCommand::typed(&words(&[
        "printf", "'%s|'", "\"a  b\"", "'s3cr3t'", ";", "cat", ";", "exit", "3",
    ]));
    for shell in ["sh", "bash"] {
        let ran = run(shell, &typed, b"operator line 1\nline 2 without end");
        assert_eq!(ran.status, 3, "{shell}: {}", ran.stderr);
        assert_eq!(
            ran.stdout,
            "a  b|s3cr3t|operator line 1\nline 2 without end"
        );
        assert!(!ran.stdout.contains("hermes_infra"), "{shell}");
    }
    assert!(!typed.remote_words().concat().contains("s3cr3t"));
}

#[test]
fn the_command_leaves_no_variable_behind() {
    let typed = RemoteCommand::typed(&words(&[
        "echo",
        "\"[${hermes_infra_cmd-gone}${hermes_infra_len-}${hermes_infra_end-}]\"",
    ]));
    let ran = run("sh", &typed, b"");
    assert_eq!(
        (ran.status, ran.stdout.as_str()),
        (0, "[gone]\n"),
        "{}",
        ran.stderr
    );
}

#[test]
fn words_reach_the_container_as_written_and_never_a_command_line() {
    let exec = RemoteCommand::in_container(
        "hermes-agent-a",
        &words(&[
            "sh",
            "-c",
            "printf '%s|' \"a b\" \"[${HERMES_INFRA_CMD-unset}]\" tok3n; cat; exit 4",
        ]),
    );
    let ran = run("sh", &exec, b"input for the container\n");
    assert_eq!(ran.status, 4, "{}\n{}", ran.stderr, ran.log);
    assert_eq!(ran.stdout, "a b|[unset]|tok3n|input for the container\n");
    // sudo and docker saw the container and fixed text only.
    let log: Vec<&str> = ran.log.lines().collect();
    assert_eq!(log.first(), Some(&"sudo"), "{}", ran.log);
    assert!(log.contains(&"docker") && log.contains(&"hermes-agent-a"));
    assert!(
        !ran.log.contains("tok3n") && !ran.log.contains("printf"),
        "{}",
        ran.log
    );

    // Each word is one word, nothing in it expanded by a shell on the way.
    let literal = ["it's", "$HOME", "a\nb", "*", "", "\\", "--x"];
    let mut argv = words(&["printf", "%s|"]);
    argv.extend(words(&literal));
    let ran = run(
        "sh",
        &RemoteCommand::in_container("hermes-agent-a", &argv),
        b"",
    );
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout, format!("{}|", literal.join("|")));
}

#[test]
fn a_missing_or_cut_frame_runs_nothing() {
    let reader = RemoteCommand::typed(&words(&["true"]))
        .remote_words()
        .concat();
    for (stdin, why) in [
        (&b""[..], "no command"),
        (b"abc\necho ran\n", "no command"),
        (b"50\necho ran\n", "cut short"),
        (b"8\necho ran", "cut short"),
        (b"8\necho ra more\n", "cut short"),
    ] {
        let ran = run_raw("sh", &reader, stdin);
        assert_eq!(ran.status, NO_FRAME, "{stdin:?}");
        assert!(ran.stdout.is_empty(), "{stdin:?}: {}", ran.stdout);
        assert!(ran.stderr.contains(why), "{stdin:?}: {}", ran.stderr);
    }
}

#[test]
fn a_long_command_arrives_whole() {
    let long = format!("echo {}; cat", "x".repeat(20_000));
    let ran = run("sh", &RemoteCommand::typed(&[long]), b"after");
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout, format!("{}\nafter", "x".repeat(20_000)));
}

#[test]
fn only_typed_commands_are_framed() {
    assert_eq!(RemoteCommand::typed(&[]), RemoteCommand::Shell);
    assert_eq!(RemoteCommand::Shell.frame(), None);
    assert!(RemoteCommand::Shell.remote_words().is_empty());
    let logs = RemoteCommand::Words(words(&["sudo", "docker", "logs", "c"]));
    assert_eq!(logs.frame(), None);
    assert_eq!(logs.remote_words(), ["sudo", "docker", "logs", "c"]);
    assert_eq!(
        RemoteCommand::typed(&words(&["ls", "-l"])).frame(),
        Some(b"5\nls -l\n".to_vec())
    );
}

#[test]
fn shell_words_survive_quotes() {
    assert_eq!(shell_word("a b"), "'a b'");
    assert_eq!(shell_word("it's; rm -rf /"), r"'it'\''s; rm -rf /'");
}
