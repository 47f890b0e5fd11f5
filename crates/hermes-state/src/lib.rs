//! State backends of `hermes-infra`.
//!
//! # What this crate does
//!
//! It keeps the small state of one stack in one environment ([`hermes_core::seams::State`]:
//! the last applied plan hash, the SSH host keys pinned at first contact, the image digests
//! deployed per agent) on the local disk, behind the
//! [`StateStore`](hermes_core::seams::StateStore) seam, together with a lock that records who
//! holds it (`user@machine (pid N)`), since when, for which operation and plan hash, and that
//! expires after a TTL so that an abandoned lock (a crashed run, a lost laptop) can be taken
//! over.
//!
//! [`LocalStateStore`] lays its files out as
//!
//! ```text
//! <root>/<stack>/<env>/state.json   the state, pretty JSON, replaced atomically on save
//! <root>/<stack>/<env>/lock.json    the lock (a serialized LockInfo) while a run holds it
//! <root>/<stack>/<env>/lock.guard   an empty file, flock(2)ed for a few milliseconds while
//!                                   the lock is taken, released or checked
//! ```
//!
//! with directories created 0700 and files 0600. [`lock_info_for_this_process`] builds the
//! [`LockInfo`](hermes_core::seams::LockInfo) a run presents when it takes the lock.
//!
//! # What it does not do
//!
//! - It never stores a secret value: [`State`](hermes_core::seams::State) has no field for one
//!   and rejects unknown fields. Generated secrets live on the hosts.
//! - It never touches the network. The S3-compatible backend (for CI) comes later, behind the
//!   same trait.
//! - It does not decide what the state means: it saves what it is given (the caller bumps
//!   `serial`) and refuses only when the caller does not hold the lock.
//!
//! # Unreadable files
//!
//! A `state.json` or `lock.json` that cannot be parsed is never guessed around: every operation
//! that needs it fails with a [`StateError`](hermes_core::seams::StateError) that names the file
//! and says how to repair it. In particular an unreadable lock is not silently taken over (it may
//! belong to a live run of another version) nor reported as held by an unknown holder (nothing
//! would ever expire it); the message tells the operator to remove it once no run is in
//! progress.

mod local;
mod process;

pub use local::LocalStateStore;
pub use process::{
    holder_for, lock_info_for_this_process, this_process_actor, this_process_holder,
};
