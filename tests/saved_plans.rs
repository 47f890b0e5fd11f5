//! Saved plans against the real Docker engine: `apply FILE` applies exactly the plan, and
//! refuses when the stack file or the world changed since, or when another run holds the lock.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::path::Path;
use std::process::Command;

use support::{hermes, unique};

/// An empty image for marker containers (created, never started), built once per machine.
fn empty_image() -> &'static str {
    const IMAGE: &str = "hermes-infra-testbed/empty:1";
    let present = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .unwrap();
    if !present.status.success() {
        let status = Command::new("sh")
            .args([
                "-c",
                &format!("tar -cf - --files-from /dev/null | docker import - {IMAGE} >/dev/null"),
            ])
            .status()
            .unwrap();
        assert!(status.success(), "cannot build the empty marker image");
    }
    IMAGE
}

/// A container that only carries labels; removed (by id) when dropped.
struct Marker(String);

impl Marker {
    fn new(labels: &[(&str, &str)]) -> Self {
        let mut args = vec![
            "create".to_owned(),
            "--label".to_owned(),
            "hermes-infra.testbed=1".to_owned(),
        ];
        for (k, v) in labels {
            args.extend(["--label".to_owned(), format!("{k}={v}")]);
        }
        args.extend([empty_image().to_owned(), "/none".to_owned()]);
        let out = Command::new("docker").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Marker(String::from_utf8(out.stdout).unwrap().trim().to_owned())
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

fn write_stack(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join("stack.toml");
    std::fs::write(&path, format!("version = 1\nname = \"{name}\"\n")).unwrap();
    path
}

#[test]
fn a_saved_plan_applies_when_nothing_moved() {
    let dir = tempfile::tempdir().unwrap();
    let stack = write_stack(dir.path(), &unique("saved"));
    let plan = dir.path().join("plan.json");
    let made = hermes(&[
        "plan",
        stack.to_str().unwrap(),
        "--out",
        plan.to_str().unwrap(),
        "--detailed-exitcode",
    ])
    .run();
    assert_eq!(made.code, 0, "{made:?}");
    assert!(made.stdout.contains("No changes."), "{}", made.stdout);
    let applied = hermes(&["apply", plan.to_str().unwrap()]).run();
    assert_eq!(applied.code, 0, "{applied:?}");
    let state = std::fs::read_to_string(
        dir.path()
            .join(".hermes-infra/state")
            .join(stack_name(&stack))
            .join("default/state.json"),
    )
    .unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["serial"], 1);
    assert!(
        state["last_plan_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
}

fn stack_name(stack: &Path) -> String {
    let t: toml::Table = std::fs::read_to_string(stack).unwrap().parse().unwrap();
    t["name"].as_str().unwrap().to_owned()
}

#[test]
fn a_saved_plan_is_refused_when_the_world_moved() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("moved");
    let stack = write_stack(dir.path(), &name);
    let plan = dir.path().join("plan.json");
    assert_eq!(
        hermes(&[
            "plan",
            stack.to_str().unwrap(),
            "--out",
            plan.to_str().unwrap()
        ])
        .run()
        .code,
        0
    );

    let _ghost = Marker::new(&[
        ("hermes-infra/stack", &name),
        ("hermes-infra/env", "default"),
        ("hermes-infra/address", "host.ghost"),
    ]);
    let now = hermes(&["plan", stack.to_str().unwrap(), "--detailed-exitcode"]).run();
    assert_eq!(
        now.code, 2,
        "the new host should now be planned for deletion: {now:?}"
    );
    assert!(now.stdout.contains("host.ghost"), "{}", now.stdout);

    let applied = hermes(&["apply", plan.to_str().unwrap()]).run();
    assert_eq!(applied.code, 1, "{applied:?}");
    assert!(
        applied.stderr.contains("changed since"),
        "{}",
        applied.stderr
    );
    assert!(
        !dir.path()
            .join(".hermes-infra/state")
            .join(&name)
            .join("default/lock.json")
            .exists(),
        "the lock was left behind"
    );
}

#[test]
fn hosts_of_another_stack_are_invisible() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("mine");
    let stack = write_stack(dir.path(), &name);
    let _other_stack = Marker::new(&[
        ("hermes-infra/stack", &unique("theirs")),
        ("hermes-infra/env", "default"),
        ("hermes-infra/address", "host.x"),
    ]);
    let _other_env = Marker::new(&[
        ("hermes-infra/stack", &name),
        ("hermes-infra/env", "prod"),
        ("hermes-infra/address", "host.y"),
    ]);
    let plan = hermes(&["plan", stack.to_str().unwrap(), "--detailed-exitcode"]).run();
    assert_eq!(plan.code, 0, "{plan:?}");
}

#[test]
fn a_saved_plan_is_refused_when_the_stack_file_changed() {
    let dir = tempfile::tempdir().unwrap();
    let stack = write_stack(dir.path(), &unique("edited"));
    let plan = dir.path().join("plan.json");
    assert_eq!(
        hermes(&[
            "plan",
            stack.to_str().unwrap(),
            "--out",
            plan.to_str().unwrap()
        ])
        .run()
        .code,
        0
    );
    let mut text = std::fs::read_to_string(&stack).unwrap();
    text.push_str("description = \"edited after planning\"\n");
    std::fs::write(&stack, text).unwrap();
    let applied = hermes(&["apply", plan.to_str().unwrap()]).run();
    assert_eq!(applied.code, 1);
    assert!(
        applied
            .stderr
            .contains("has changed since the plan was made"),
        "{}",
        applied.stderr
    );
}

#[test]
fn a_lock_held_by_another_run_is_reported_with_holder_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("locked");
    let stack = write_stack(dir.path(), &name);
    let plan = dir.path().join("plan.json");
    assert_eq!(
        hermes(&[
            "plan",
            stack.to_str().unwrap(),
            "--out",
            plan.to_str().unwrap()
        ])
        .run()
        .code,
        0
    );
    let lock_dir = dir
        .path()
        .join(".hermes-infra/state")
        .join(&name)
        .join("default");
    std::fs::create_dir_all(&lock_dir).unwrap();
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 125;
    let lock = serde_json::json!({"id": "other-run", "holder": "alice@ci-runner (pid 4242)", "operation": "apply", "created_unix": created, "ttl_secs": 900});
    std::fs::write(lock_dir.join("lock.json"), lock.to_string()).unwrap();

    let at_once = hermes(&["apply", plan.to_str().unwrap()]).run();
    assert_eq!(at_once.code, 1);
    assert!(
        at_once.stderr.contains("alice@ci-runner (pid 4242)"),
        "{}",
        at_once.stderr
    );
    assert!(
        at_once.stderr.contains("2m"),
        "age missing: {}",
        at_once.stderr
    );
    assert!(at_once.stderr.contains("--lock-wait"), "{}", at_once.stderr);

    let waited = hermes(&["apply", plan.to_str().unwrap(), "--lock-wait", "1s"]).run();
    assert_eq!(waited.code, 1);
    assert!(
        waited
            .stderr
            .contains("waiting for the lock held by alice@ci-runner"),
        "{}",
        waited.stderr
    );
    assert!(
        lock_dir.join("lock.json").exists(),
        "another run's lock must never be removed"
    );
}

#[test]
fn plan_output_is_plain_off_a_terminal_coloured_on_request_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack.toml");
    std::fs::write(
        &stack,
        format!("version = 1\nname = \"{}\"\n[hosts.a]\n", unique("colour")),
    )
    .unwrap();
    let s = stack.to_str().unwrap();
    let plain = hermes(&["plan", s]).run();
    assert_eq!(plain.code, 0, "{plain:?}");
    assert!(plain.stdout.contains("+   host.a"), "{}", plain.stdout);
    assert!(!plain.stdout.contains('\u{1b}'), "no colour off a terminal");
    let coloured = hermes(&["plan", s, "--color", "always"]).run();
    assert!(coloured.stdout.contains("\u{1b}["), "colour when asked");
    let json = hermes(&["plan", s, "--output", "json"]).run();
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(parsed["summary"]["create"], 3);
    assert_eq!(parsed["changes"][0]["address"], "host.a");
    assert_eq!(parsed["changes"][0]["action"], "create");
    assert_eq!(parsed["changes"][0]["reason"], "new in the stack");
}
