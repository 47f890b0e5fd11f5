//! The local-file state backend, specified through the `StateStore` seam and the files it
//! leaves on disk.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hermes_core::Scope;
use hermes_core::seams::{LockAttempt, LockInfo, State, StateStore};
use hermes_state::{LocalStateStore, lock_info_for_this_process, this_process_holder};
use tempfile::TempDir;

const HOUR: Duration = Duration::from_hours(1);

fn store() -> (TempDir, LocalStateStore) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = LocalStateStore::new(dir.path().join("state"));
    (dir, store)
}

fn scope() -> Scope {
    Scope::new("shop", "prod")
}

fn lock(holder: &str) -> LockInfo {
    LockInfo {
        holder: holder.to_owned(),
        ..lock_info_for_this_process("apply", Some("sha256:plan".to_owned()), HOUR)
    }
}

/// A lock taken long ago with a short TTL: abandoned.
fn abandoned_lock(holder: &str) -> LockInfo {
    LockInfo {
        created_unix: 1_000_000,
        ttl_secs: 60,
        ..lock(holder)
    }
}

fn sample_state() -> State {
    State {
        serial: 7,
        last_plan_hash: Some("sha256:abc".to_owned()),
        host_keys: BTreeMap::from([(
            "web-1".to_owned(),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample".to_owned(),
        )]),
        ssh_ports: BTreeMap::from([("web-1".to_owned(), 2222)]),
        image_history: BTreeMap::from([(
            "support".to_owned(),
            vec!["sha256:111".to_owned(), "sha256:222".to_owned()],
        )]),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("file exists")
        .permissions()
        .mode()
        & 0o7777
}

fn read_lock_file(store: &LocalStateStore) -> Option<LockInfo> {
    match std::fs::read_to_string(store.lock_path(&scope())) {
        Ok(text) => Some(serde_json::from_str(&text).expect("lock.json is a LockInfo")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("{e}"),
    }
}

/// Writes `info` as the lock file, as another run would have left it.
fn plant_lock(store: &LocalStateStore, info: &LockInfo) {
    std::fs::create_dir_all(env_dir(store)).expect("create the environment directory");
    let json = serde_json::to_vec(info).expect("serialize the lock");
    std::fs::write(store.lock_path(&scope()), json).expect("write lock.json");
}

fn env_dir(store: &LocalStateStore) -> std::path::PathBuf {
    store.root().join("shop").join("prod")
}

fn dir_entries(store: &LocalStateStore) -> BTreeSet<String> {
    std::fs::read_dir(env_dir(store))
        .expect("environment directory exists")
        .map(|entry| {
            let entry = entry.expect("directory entry");
            entry.file_name().to_string_lossy().into_owned()
        })
        .collect()
}

// ----- fresh store, save, load ---------------------------------------------------------------

#[tokio::test]
async fn a_fresh_store_loads_the_default_state_and_creates_nothing() {
    let (_tmp, store) = store();
    assert_eq!(store.load(&scope()).await.unwrap(), State::default());
    assert!(!store.root().exists(), "load must not create directories");
}

#[tokio::test]
async fn save_without_the_lock_is_refused_and_writes_nothing() {
    let (_tmp, store) = store();
    let err = store
        .save(&scope(), &sample_state(), "not-a-lock")
        .await
        .unwrap_err();
    assert!(err.message.contains("does not hold the lock"), "{err}");
    assert!(err.message.contains("lock.json"), "{err}");
    assert!(!store.state_path(&scope()).exists());
}

#[tokio::test]
async fn lock_save_load_round_trips() {
    let (_tmp, store) = store();
    let me = lock("me");
    assert_eq!(
        store.try_lock(&scope(), &me).await.unwrap(),
        LockAttempt::Acquired
    );
    store.save(&scope(), &sample_state(), &me.id).await.unwrap();
    assert_eq!(store.load(&scope()).await.unwrap(), sample_state());

    let newer = State {
        serial: 8,
        ..sample_state()
    };
    store.save(&scope(), &newer, &me.id).await.unwrap();
    assert_eq!(store.load(&scope()).await.unwrap(), newer);
}

#[tokio::test]
async fn scopes_are_kept_apart() {
    let (_tmp, store) = store();
    let me = lock("me");
    store.try_lock(&scope(), &me).await.unwrap();
    store.save(&scope(), &sample_state(), &me.id).await.unwrap();

    let staging = Scope::new("shop", "staging");
    assert_eq!(store.load(&staging).await.unwrap(), State::default());
    assert_eq!(
        store.try_lock(&staging, &lock("other")).await.unwrap(),
        LockAttempt::Acquired,
        "the prod lock does not lock staging"
    );
}

#[tokio::test]
async fn files_are_0600_and_directories_0700() {
    let (_tmp, store) = store();
    let me = lock("me");
    store.try_lock(&scope(), &me).await.unwrap();
    store.save(&scope(), &sample_state(), &me.id).await.unwrap();

    let state = store.state_path(&scope());
    let env_dir = state.parent().unwrap();
    let stack_dir = env_dir.parent().unwrap();
    assert_eq!(mode(&state), 0o600, "state.json");
    assert_eq!(mode(&store.lock_path(&scope())), 0o600, "lock.json");
    assert_eq!(mode(&env_dir.join("lock.guard")), 0o600, "lock.guard");
    assert_eq!(mode(env_dir), 0o700, "environment directory");
    assert_eq!(mode(stack_dir), 0o700, "stack directory");
    assert_eq!(
        mode(store.root()),
        0o700,
        "root directory created by the store"
    );
}

#[tokio::test]
async fn existing_stack_and_environment_directories_are_tightened_to_0700() {
    let (_tmp, store) = store();
    let env_dir = store.state_path(&scope()).parent().unwrap().to_owned();
    std::fs::create_dir_all(&env_dir).unwrap();
    std::fs::set_permissions(&env_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        env_dir.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    store.try_lock(&scope(), &lock("me")).await.unwrap();
    assert_eq!(mode(&env_dir), 0o700);
    assert_eq!(mode(env_dir.parent().unwrap()), 0o700);
}

#[tokio::test]
async fn save_is_pretty_json_with_only_state_fields_and_leaves_no_temporary_file() {
    let (_tmp, store) = store();
    let me = lock("me");
    store.try_lock(&scope(), &me).await.unwrap();
    store.save(&scope(), &sample_state(), &me.id).await.unwrap();

    let text = std::fs::read_to_string(store.state_path(&scope())).unwrap();
    assert!(text.contains("\n  \"serial\": 7"), "pretty JSON:\n{text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: BTreeSet<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "serial",
            "last_plan_hash",
            "host_keys",
            "ssh_ports",
            "image_history"
        ])
    );
    // State denies unknown fields, so this also proves nothing else was written.
    let _: State = serde_json::from_value(value).unwrap();
    assert!(
        !text.contains(&me.id) && !text.contains("holder"),
        "no lock data in the state:\n{text}"
    );
    assert_eq!(
        dir_entries(&store),
        BTreeSet::from([
            "lock.guard".to_owned(),
            "lock.json".to_owned(),
            "state.json".to_owned()
        ])
    );
}

#[tokio::test]
async fn a_default_state_is_saved_as_just_its_serial() {
    let (_tmp, store) = store();
    let me = lock("me");
    store.try_lock(&scope(), &me).await.unwrap();
    store
        .save(&scope(), &State::default(), &me.id)
        .await
        .unwrap();
    let value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.state_path(&scope())).unwrap()).unwrap();
    assert_eq!(value, serde_json::json!({ "serial": 0 }));
}

// ----- the lock ------------------------------------------------------------------------------

#[tokio::test]
async fn the_lock_file_records_the_holder_time_operation_and_plan_hash() {
    let (_tmp, store) = store();
    let me = lock("me");
    store.try_lock(&scope(), &me).await.unwrap();
    assert_eq!(read_lock_file(&store), Some(me));
}

#[tokio::test]
async fn a_second_holder_is_told_who_holds_the_lock() {
    let (_tmp, store) = store();
    let first = lock("alice@laptop (pid 1)");
    let second = lock("bob@ci (pid 2)");
    assert_eq!(
        store.try_lock(&scope(), &first).await.unwrap(),
        LockAttempt::Acquired
    );
    assert_eq!(
        store.try_lock(&scope(), &second).await.unwrap(),
        LockAttempt::HeldBy(first.clone())
    );
    assert_eq!(read_lock_file(&store), Some(first), "the lock is unchanged");
}

#[tokio::test]
async fn taking_a_lock_already_held_with_the_same_id_succeeds() {
    let (_tmp, store) = store();
    let me = lock("me");
    store.try_lock(&scope(), &me).await.unwrap();
    assert_eq!(
        store.try_lock(&scope(), &me).await.unwrap(),
        LockAttempt::Acquired
    );
    assert_eq!(read_lock_file(&store), Some(me));
}

#[tokio::test]
async fn unlock_by_the_wrong_id_leaves_the_lock_and_by_the_right_id_frees_it() {
    let (_tmp, store) = store();
    let first = lock("first");
    let second = lock("second");
    store.try_lock(&scope(), &first).await.unwrap();

    store.unlock(&scope(), &second.id).await.unwrap();
    assert_eq!(read_lock_file(&store), Some(first.clone()));
    assert_eq!(
        store.try_lock(&scope(), &second).await.unwrap(),
        LockAttempt::HeldBy(first.clone())
    );

    store.unlock(&scope(), &first.id).await.unwrap();
    assert_eq!(read_lock_file(&store), None);
    assert_eq!(
        store.try_lock(&scope(), &second).await.unwrap(),
        LockAttempt::Acquired
    );
}

#[tokio::test]
async fn unlock_without_a_lock_is_a_no_op() {
    let (_tmp, store) = store();
    store.unlock(&scope(), "whatever").await.unwrap();
    assert!(!store.root().exists(), "unlock must not create directories");
}

#[tokio::test]
async fn save_is_refused_after_unlock() {
    let (_tmp, store) = store();
    let me = lock("me");
    store.try_lock(&scope(), &me).await.unwrap();
    store.unlock(&scope(), &me.id).await.unwrap();
    let err = store
        .save(&scope(), &sample_state(), &me.id)
        .await
        .unwrap_err();
    assert!(err.message.contains("does not hold the lock"), "{err}");
}

#[tokio::test]
async fn an_abandoned_lock_is_taken_over() {
    let (_tmp, store) = store();
    plant_lock(&store, &abandoned_lock("crashed@laptop (pid 9)"));
    let me = lock("me");
    assert_eq!(
        store.try_lock(&scope(), &me).await.unwrap(),
        LockAttempt::Acquired
    );
    assert_eq!(read_lock_file(&store), Some(me));
    assert_eq!(
        dir_entries(&store),
        BTreeSet::from(["lock.guard".to_owned(), "lock.json".to_owned()]),
        "the abandoned lock is not left lying around"
    );
}

#[tokio::test]
async fn a_lock_within_its_ttl_is_not_taken_over() {
    let (_tmp, store) = store();
    let now = lock("x").created_unix;
    let live = LockInfo {
        created_unix: now - 50,
        ttl_secs: 3600,
        ..lock("alive")
    };
    plant_lock(&store, &live);
    assert_eq!(
        store.try_lock(&scope(), &lock("me")).await.unwrap(),
        LockAttempt::HeldBy(live)
    );
}

#[tokio::test]
async fn save_is_refused_once_the_lock_was_taken_over() {
    let (_tmp, store) = store();
    let slow = abandoned_lock("slow@laptop (pid 3)");
    assert_eq!(
        store.try_lock(&scope(), &slow).await.unwrap(),
        LockAttempt::Acquired
    );
    store
        .save(&scope(), &sample_state(), &slow.id)
        .await
        .unwrap();

    let taker = lock("taker@ci (pid 4)");
    assert_eq!(
        store.try_lock(&scope(), &taker).await.unwrap(),
        LockAttempt::Acquired
    );

    let stale_write = State {
        serial: 99,
        ..State::default()
    };
    let err = store
        .save(&scope(), &stale_write, &slow.id)
        .await
        .unwrap_err();
    assert!(err.message.contains("taker@ci (pid 4)"), "{err}");
    assert!(err.message.contains("taken over"), "{err}");
    assert_eq!(store.load(&scope()).await.unwrap(), sample_state());

    // The late run's cleanup does not release the new holder's lock.
    store.unlock(&scope(), &slow.id).await.unwrap();
    assert_eq!(read_lock_file(&store), Some(taker));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn of_many_concurrent_takers_exactly_one_acquires() {
    let (_tmp, store) = store();
    let store = Arc::new(store);
    let outcomes = race(&store, 32).await;
    assert_eq!(acquired(&outcomes).len(), 1, "{outcomes:?}");
    let winner = acquired(&outcomes)[0].clone();
    for (info, outcome) in &outcomes {
        if info.id != winner.id {
            assert_eq!(outcome, &LockAttempt::HeldBy(winner.clone()));
        }
    }
    assert_eq!(read_lock_file(&store), Some(winner));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn of_many_concurrent_takers_of_an_abandoned_lock_exactly_one_acquires() {
    let (_tmp, store) = store();
    plant_lock(&store, &abandoned_lock("crashed"));
    let store = Arc::new(store);
    let outcomes = race(&store, 32).await;
    assert_eq!(acquired(&outcomes).len(), 1, "{outcomes:?}");
    let winner = acquired(&outcomes)[0].clone();
    assert_eq!(read_lock_file(&store), Some(winner));
}

async fn race(store: &Arc<LocalStateStore>, takers: usize) -> Vec<(LockInfo, LockAttempt)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(takers));
    let tasks: Vec<_> = (0..takers)
        .map(|n| {
            let store = Arc::clone(store);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let info = lock(&format!("taker {n}"));
                barrier.wait().await;
                let outcome = store.try_lock(&scope(), &info).await.expect("try_lock");
                (info, outcome)
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("taker task"));
    }
    outcomes
}

fn acquired(outcomes: &[(LockInfo, LockAttempt)]) -> Vec<LockInfo> {
    outcomes
        .iter()
        .filter(|(_, outcome)| *outcome == LockAttempt::Acquired)
        .map(|(info, _)| info.clone())
        .collect()
}

// ----- unreadable files ----------------------------------------------------------------------

#[tokio::test]
async fn a_corrupt_state_file_is_an_error_naming_the_file_and_the_fix() {
    let (_tmp, store) = store();
    let path = store.state_path(&scope());
    std::fs::create_dir_all(env_dir(&store)).unwrap();
    std::fs::write(&path, "{ not json").unwrap();
    let err = store.load(&scope()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("mv "), "says how to move it aside: {text}");
}

#[tokio::test]
async fn a_state_file_with_an_unknown_field_is_refused() {
    let (_tmp, store) = store();
    let path = store.state_path(&scope());
    std::fs::create_dir_all(env_dir(&store)).unwrap();
    std::fs::write(&path, r#"{ "serial": 1, "api_key": "hunter2" }"#).unwrap();
    let err = store.load(&scope()).await.unwrap_err();
    assert!(err.message.contains("api_key"), "{err}");
    assert!(!err.message.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn a_corrupt_lock_file_is_an_error_naming_the_file_and_the_fix() {
    let (_tmp, store) = store();
    let path = store.lock_path(&scope());
    std::fs::create_dir_all(env_dir(&store)).unwrap();
    std::fs::write(&path, "garbage").unwrap();
    let rm = format!("rm {}", path.display());

    let err = store.try_lock(&scope(), &lock("me")).await.unwrap_err();
    assert!(err.message.contains(&rm), "{err}");

    let err = store
        .save(&scope(), &sample_state(), "any")
        .await
        .unwrap_err();
    assert!(err.message.contains(&rm), "{err}");

    let err = store.unlock(&scope(), "any").await.unwrap_err();
    assert!(err.message.contains(&rm), "{err}");

    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "garbage",
        "left for the operator"
    );

    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        store.try_lock(&scope(), &lock("me")).await.unwrap(),
        LockAttempt::Acquired,
        "the advice works"
    );
}

#[tokio::test]
async fn an_empty_lock_file_is_an_error_too() {
    let (_tmp, store) = store();
    let path = store.lock_path(&scope());
    std::fs::create_dir_all(env_dir(&store)).unwrap();
    std::fs::write(&path, "").unwrap();
    let err = store.try_lock(&scope(), &lock("me")).await.unwrap_err();
    assert!(err.message.contains("unreadable"), "{err}");
}

// ----- names and messages --------------------------------------------------------------------

#[tokio::test]
async fn scope_names_that_would_escape_the_root_are_refused() {
    let (tmp, store) = store();
    for bad in [
        Scope::new("..", "prod"),
        Scope::new("shop", ".."),
        Scope::new("a/b", "prod"),
        Scope::new("shop", ""),
        Scope::new(".", "prod"),
    ] {
        let err = store.try_lock(&bad, &lock("me")).await.unwrap_err();
        assert!(err.message.contains("directory name"), "{bad}: {err}");
        assert!(store.load(&bad).await.is_err(), "{bad}");
    }
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
fn describe_names_the_absolute_state_file() {
    let store = LocalStateStore::new("relative/root".into());
    let text = store.describe(&scope());
    let expected = std::env::current_dir()
        .unwrap()
        .join("relative/root/shop/prod/state.json");
    assert_eq!(text, format!("local file {}", expected.display()));
}

#[test]
fn a_lock_for_this_process_names_user_host_and_pid() {
    let info = lock_info_for_this_process("destroy", None, Duration::from_millis(1500));
    let holder = this_process_holder();
    assert_eq!(info.holder, holder);
    assert!(
        holder.ends_with(&format!(" (pid {})", std::process::id())),
        "{holder}"
    );
    let (user, host) = holder
        .split_once(" (pid")
        .unwrap()
        .0
        .split_once('@')
        .unwrap();
    assert!(!user.is_empty() && !host.is_empty(), "{holder}");
    assert_eq!(info.operation, "destroy");
    assert_eq!(info.plan_hash, None);
    assert_eq!(info.ttl_secs, 2, "rounded up to whole seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(info.created_unix) <= 5);
    let id = uuid::Uuid::parse_str(&info.id).unwrap();
    assert_eq!(id.get_version_num(), 4);
    assert_ne!(
        info.id,
        lock_info_for_this_process("destroy", None, HOUR).id,
        "fresh id each time"
    );
}
