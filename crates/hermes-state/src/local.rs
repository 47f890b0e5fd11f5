//! The local-file backend.
//!
//! # How the lock is kept safe
//!
//! - `lock.json` is published whole: its JSON is written and fsynced to a temporary file, then
//!   hard-linked to `lock.json`. `link(2)` fails when the name exists, so it is an exclusive
//!   create (like `O_EXCL`) that no reader can ever observe half written. On a file system
//!   without hard links it falls back to `create_new` (`O_CREAT | O_EXCL`) and a write.
//! - A lock whose `created_unix + ttl_secs` is before now is abandoned. It is taken over by
//!   renaming it aside to a unique name, checking that what was moved is the abandoned lock seen
//!   before (if a live lock was moved instead, it is linked back and reported as the holder),
//!   and publishing again; losing that race to another taker reports the winner as the holder.
//! - Taking, releasing and checking the lock (in `try_lock`, `unlock` and `save`) run under an
//!   exclusive `flock(2)` of `lock.guard`, held for milliseconds and released by the kernel if
//!   the process dies. This is what makes the takeover of an abandoned lock safe between many
//!   takers (without it, a slow taker can move aside the fresh lock of a faster one), and what
//!   closes the gap between "the lock is ours" and "the state is replaced" in `save`, so a run
//!   whose lock was taken over cannot write after the takeover. A file system without `flock`
//!   is refused with an error rather than used unsafely.
//! - `state.json` is replaced atomically: a temporary 0600 file in the same directory is written
//!   and fsynced, renamed over `state.json`, and the directory is fsynced.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions, TryLockError};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hermes_core::Scope;
use hermes_core::seams::{LockAttempt, LockInfo, State, StateError, StateStore};

use crate::process::now_unix;

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock.json";
const GUARD_FILE: &str = "lock.guard";
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
/// How long to wait for another process to finish its few milliseconds under the guard.
const GUARD_WAIT: Duration = Duration::from_secs(10);
const GUARD_POLL: Duration = Duration::from_millis(5);
/// Rounds of "publish, find a lock, take over an abandoned one" before giving up.
const TAKEOVER_ROUNDS: usize = 8;

/// Keeps [`State`] and its lock in files under a root directory, one directory per stack and
/// environment: `<root>/<stack>/<env>/state.json` and `<root>/<stack>/<env>/lock.json`.
///
/// The stack and environment names become directory names, so they must be non-empty, must not
/// be `.` or `..`, and must not contain `/` or NUL; operations on any other scope fail with a
/// [`StateError`].
#[derive(Debug, Clone)]
pub struct LocalStateStore {
    root: PathBuf,
}

impl LocalStateStore {
    /// A store under `root`, made absolute against the current directory (so messages name the
    /// real place). Nothing is created until a lock is taken.
    pub fn new(root: PathBuf) -> Self {
        let root = std::path::absolute(&root).unwrap_or(root);
        Self { root }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the state of `scope` is kept.
    pub fn state_path(&self, scope: &Scope) -> PathBuf {
        self.dir(scope).join(STATE_FILE)
    }

    /// Where the lock of `scope` is kept while it is held.
    pub fn lock_path(&self, scope: &Scope) -> PathBuf {
        self.dir(scope).join(LOCK_FILE)
    }

    fn dir(&self, scope: &Scope) -> PathBuf {
        self.root.join(&scope.stack).join(&scope.env)
    }

    /// The files of `scope`, once its names are known to be safe as directory names.
    fn files(&self, scope: &Scope) -> Result<Files, StateError> {
        let backend = self.describe(scope);
        for (what, name) in [("stack", &scope.stack), ("environment", &scope.env)] {
            if name.is_empty()
                || name == "."
                || name == ".."
                || name.contains('/')
                || name.contains('\0')
            {
                return Err(StateError {
                    backend,
                    message: format!(
                        "the {what} name {name:?} cannot be used as a directory name under {}; \
                         use a name without `/`, other than `.` and `..`",
                        self.root.display()
                    ),
                });
            }
        }
        let dir = self.dir(scope);
        Ok(Files {
            backend,
            stack_dir: self.root.join(&scope.stack),
            state: dir.join(STATE_FILE),
            lock: dir.join(LOCK_FILE),
            guard: dir.join(GUARD_FILE),
            dir,
        })
    }
}

#[async_trait]
impl StateStore for LocalStateStore {
    fn describe(&self, scope: &Scope) -> String {
        format!("local file {}", self.state_path(scope).display())
    }

    async fn try_lock(&self, scope: &Scope, info: &LockInfo) -> Result<LockAttempt, StateError> {
        let files = self.files(scope)?;
        let info = info.clone();
        blocking(files, move |files| files.try_lock(&info)).await
    }

    async fn unlock(&self, scope: &Scope, lock_id: &str) -> Result<(), StateError> {
        let files = self.files(scope)?;
        let lock_id = lock_id.to_owned();
        blocking(files, move |files| files.unlock(&lock_id)).await
    }

    async fn load(&self, scope: &Scope) -> Result<State, StateError> {
        let files = self.files(scope)?;
        blocking(files, Files::load).await
    }

    async fn save(&self, scope: &Scope, state: &State, lock_id: &str) -> Result<(), StateError> {
        let files = self.files(scope)?;
        let state = state.clone();
        let lock_id = lock_id.to_owned();
        blocking(files, move |files| files.save(&state, &lock_id)).await
    }
}

/// Runs blocking file work off the async runtime.
async fn blocking<T, F>(files: Files, work: F) -> Result<T, StateError>
where
    T: Send + 'static,
    F: FnOnce(&Files) -> Result<T, StateError> + Send + 'static,
{
    let backend = files.backend.clone();
    tokio::task::spawn_blocking(move || work(&files))
        .await
        .map_err(|join| StateError {
            backend,
            message: format!("internal error: the file task did not finish ({join})"),
        })?
}

/// The paths of one stack and environment, and the work done on them (blocking).
#[derive(Debug)]
struct Files {
    backend: String,
    stack_dir: PathBuf,
    dir: PathBuf,
    state: PathBuf,
    lock: PathBuf,
    guard: PathBuf,
}

impl Files {
    fn error(&self, message: impl Into<String>) -> StateError {
        StateError {
            backend: self.backend.clone(),
            message: message.into(),
        }
    }

    fn io_error(&self, doing: &str, path: &Path, error: &std::io::Error) -> StateError {
        let hint = match error.kind() {
            ErrorKind::PermissionDenied => format!(
                "; check that {} and the files in it belong to the user running hermes-infra",
                self.dir.display()
            ),
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
                "; free some disk space and retry".to_owned()
            }
            _ => String::new(),
        };
        self.error(format!("cannot {doing} {}: {error}{hint}", path.display()))
    }

    // ----- try_lock -------------------------------------------------------------------------

    fn try_lock(&self, info: &LockInfo) -> Result<LockAttempt, StateError> {
        self.ensure_dirs()?;
        let _guard = self.guard()?;
        for _ in 0..TAKEOVER_ROUNDS {
            if self.publish_lock(info)? {
                return Ok(LockAttempt::Acquired);
            }
            let Some(current) = self.read_lock(&self.lock)? else {
                // Released between our attempt and our look: try again.
                continue;
            };
            if current.id == info.id {
                return Ok(LockAttempt::Acquired);
            }
            if !is_abandoned(&current, now_unix()) {
                return Ok(LockAttempt::HeldBy(current));
            }
            if let Some(live) = self.move_aside_abandoned(&current)? {
                return Ok(LockAttempt::HeldBy(live));
            }
        }
        Err(self.error(format!(
            "{} kept changing while trying to take the lock ({TAKEOVER_ROUNDS} rounds); another \
             run is taking and releasing it; retry in a moment",
            self.lock.display()
        )))
    }

    /// Publishes `info` as `lock.json` unless a lock exists. True if published.
    fn publish_lock(&self, info: &LockInfo) -> Result<bool, StateError> {
        let bytes = serde_json::to_vec_pretty(info)
            .map_err(|e| self.error(format!("cannot serialize the lock: {e}")))?;
        let temp = self.temp_path(LOCK_FILE);
        self.write_new_file(&temp, &bytes)?;
        let linked = fs::hard_link(&temp, &self.lock);
        remove_quietly(&temp);
        match linked {
            Ok(()) => {
                sync_dir(&self.dir);
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            // No hard links here (some FUSE or foreign file systems): exclusive create instead.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Unsupported | ErrorKind::PermissionDenied
                ) =>
            {
                match self.write_new_file(&self.lock, &bytes) {
                    Ok(()) => {
                        sync_dir(&self.dir);
                        Ok(true)
                    }
                    Err(_) if self.lock.exists() => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(self.io_error("create the lock file", &self.lock, &e)),
        }
    }

    /// Renames the abandoned lock `stale` aside. If what was moved turns out to be another,
    /// live lock (someone took over first), puts it back and returns it as the holder.
    fn move_aside_abandoned(&self, stale: &LockInfo) -> Result<Option<LockInfo>, StateError> {
        let aside = self.dir.join(format!(
            "{LOCK_FILE}.abandoned-{}",
            uuid::Uuid::new_v4().simple()
        ));
        match fs::rename(&self.lock, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(self.io_error("move the abandoned lock aside:", &self.lock, &e));
            }
        }
        let moved = self.read_lock(&aside);
        if let Ok(Some(moved)) = &moved
            && moved == stale
        {
            remove_quietly(&aside);
            return Ok(None);
        }
        // We moved something else. Put it back unless a new lock already took its place.
        let restored = fs::hard_link(&aside, &self.lock);
        remove_quietly(&aside);
        match restored {
            Ok(()) => moved,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
            Err(e) => {
                Err(self.io_error("put back a lock moved aside by mistake to", &self.lock, &e))
            }
        }
    }

    // ----- unlock ---------------------------------------------------------------------------

    fn unlock(&self, lock_id: &str) -> Result<(), StateError> {
        if !self.dir.is_dir() {
            return Ok(());
        }
        let _guard = self.guard()?;
        match self.read_lock(&self.lock)? {
            Some(current) if current.id == lock_id => match fs::remove_file(&self.lock) {
                Ok(()) => {
                    sync_dir(&self.dir);
                    Ok(())
                }
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                Err(e) => Err(self.io_error("remove the lock file", &self.lock, &e)),
            },
            // Not locked, or held by someone else (after a takeover): leave it alone.
            _ => Ok(()),
        }
    }

    // ----- load -----------------------------------------------------------------------------

    fn load(&self) -> Result<State, StateError> {
        let text = match fs::read_to_string(&self.state) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(self.io_error("read the state file", &self.state, &e)),
        };
        serde_json::from_str(&text).map_err(|e| {
            let path = self.state.display();
            self.error(format!(
                "cannot parse the state file {path}: {e}. It is written only by hermes-infra; \
                 restore it from a backup, or move it aside (`mv {path} {path}.bad`) to start \
                 from an empty state, knowing that SSH host keys will then be pinned again at \
                 the next contact and the image history used for rollback is lost"
            ))
        })
    }

    // ----- save -----------------------------------------------------------------------------

    fn save(&self, state: &State, lock_id: &str) -> Result<(), StateError> {
        if !self.dir.is_dir() {
            return Err(self.not_locked(lock_id));
        }
        let _guard = self.guard()?;
        match self.read_lock(&self.lock)? {
            None => return Err(self.not_locked(lock_id)),
            Some(current) if current.id != lock_id => {
                return Err(self.error(format!(
                    "state not saved: the lock {} is now held by {} for `{}` (lock id {}), not \
                     by this run (lock id {lock_id}); it was probably taken over after this \
                     run's lock outlived its TTL. Check what that run did, then plan again",
                    self.lock.display(),
                    current.holder,
                    current.operation,
                    current.id
                )));
            }
            Some(_) => {}
        }
        let mut bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| self.error(format!("cannot serialize the state: {e}")))?;
        bytes.push(b'\n');
        let temp = self.temp_path(STATE_FILE);
        self.write_new_file(&temp, &bytes)?;
        if let Err(e) = fs::rename(&temp, &self.state) {
            remove_quietly(&temp);
            return Err(self.io_error("replace the state file", &self.state, &e));
        }
        sync_dir(&self.dir);
        Ok(())
    }

    fn not_locked(&self, lock_id: &str) -> StateError {
        self.error(format!(
            "state not saved: this run (lock id {lock_id}) does not hold the lock; {} does not \
             exist, so the lock was released or never taken. Take the lock before saving",
            self.lock.display()
        ))
    }

    // ----- files ----------------------------------------------------------------------------

    /// Creates `<root>/<stack>/<env>` (missing directories 0700) and makes sure the stack and
    /// environment directories, which are ours, are 0700.
    fn ensure_dirs(&self) -> Result<(), StateError> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.dir)
            .map_err(|e| self.io_error("create the directory", &self.dir, &e))?;
        for dir in [&self.stack_dir, &self.dir] {
            let mode = fs::metadata(dir)
                .map_err(|e| self.io_error("inspect the directory", dir, &e))?
                .permissions()
                .mode();
            if mode & 0o7777 != DIR_MODE {
                fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
                    .map_err(|e| self.io_error("restrict to mode 0700 the directory", dir, &e))?;
            }
        }
        Ok(())
    }

    /// Takes the exclusive `flock` on `lock.guard`, waiting up to [`GUARD_WAIT`]. Released when
    /// the returned file is dropped, or by the kernel if the process dies.
    fn guard(&self) -> Result<File, StateError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&self.guard)
            .map_err(|e| self.io_error("open the guard file", &self.guard, &e))?;
        let deadline = Instant::now() + GUARD_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::Error(e)) if e.kind() == ErrorKind::Unsupported => {
                    return Err(self.error(format!(
                        "the file system holding {} does not support flock(2), which the local \
                         state lock needs to keep two runs apart; keep the state directory on a \
                         local file system",
                        self.dir.display()
                    )));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(self.io_error("lock the guard file", &self.guard, &e));
                }
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    thread::sleep(GUARD_POLL);
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(self.error(format!(
                        "another process has held {} for more than {} s (it is held only while \
                         a lock is taken, released or checked); that process may be stuck: find \
                         it with `fuser {}` and stop it, then retry",
                        self.guard.display(),
                        GUARD_WAIT.as_secs(),
                        self.guard.display()
                    )));
                }
            }
        }
    }

    /// The lock recorded in `path`, `None` if there is none.
    fn read_lock(&self, path: &Path) -> Result<Option<LockInfo>, StateError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_error("read the lock file", path, &e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            let path = path.display();
            self.error(format!(
                "the lock file {path} is unreadable ({e}), so who holds the lock is unknown. If \
                 no hermes-infra run is in progress for this stack and environment, remove it \
                 (`rm {path}`) and retry"
            ))
        })
    }

    /// A unique temporary name next to `name`, hidden, in the same directory (same file system,
    /// so a rename or link to the real name is atomic).
    fn temp_path(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()))
    }

    /// Creates `path` (which must not exist) with mode 0600, writes `bytes` and fsyncs. Removes
    /// the file again if any step fails.
    fn write_new_file(&self, path: &Path, bytes: &[u8]) -> Result<(), StateError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|e| self.io_error("create", path, &e))?;
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        written.map_err(|e| {
            drop(file);
            remove_quietly(path);
            self.io_error("write", path, &e)
        })
    }
}

/// A lock is abandoned once its TTL has passed: `created_unix + ttl_secs < now`.
fn is_abandoned(info: &LockInfo, now_unix: u64) -> bool {
    info.created_unix.saturating_add(info.ttl_secs) < now_unix
}

/// Best effort: a leftover temporary file is harmless.
fn remove_quietly(path: &Path) {
    let _ = fs::remove_file(path);
}

/// Best effort: makes a rename, link or removal in `dir` durable. Some file systems refuse to
/// fsync a directory; the change is then as durable as they make it.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(created_unix: u64, ttl_secs: u64) -> LockInfo {
        LockInfo {
            id: "id".to_owned(),
            holder: "h".to_owned(),
            operation: "apply".to_owned(),
            created_unix,
            ttl_secs,
            plan_hash: None,
        }
    }

    #[test]
    fn a_lock_is_abandoned_only_after_its_ttl_has_fully_passed() {
        assert!(!is_abandoned(&lock(100, 10), 100));
        assert!(!is_abandoned(&lock(100, 10), 110));
        assert!(is_abandoned(&lock(100, 10), 111));
    }

    #[test]
    fn a_huge_ttl_never_overflows_into_an_abandoned_lock() {
        assert!(!is_abandoned(&lock(u64::MAX - 1, u64::MAX), u64::MAX));
    }

    #[test]
    fn a_lock_from_the_future_is_live() {
        assert!(!is_abandoned(&lock(2_000, 0), 1_000));
    }
}
