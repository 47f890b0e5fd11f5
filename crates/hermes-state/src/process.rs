//! Who this process is, for the lock it presents.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hermes_core::seams::LockInfo;

/// The [`LockInfo`] this process presents to take a lock: a fresh random id (UUID v4), the
/// holder from [`this_process_holder`], the current time, `ttl` rounded up to whole seconds,
/// the `operation` (`apply`, `destroy`, ...) and the plan being applied, if any.
pub fn lock_info_for_this_process(
    operation: impl Into<String>,
    plan_hash: Option<String>,
    ttl: Duration,
) -> LockInfo {
    LockInfo {
        id: uuid::Uuid::new_v4().to_string(),
        holder: this_process_holder(),
        operation: operation.into(),
        created_unix: now_unix(),
        ttl_secs: ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0),
        plan_hash,
    }
}

/// `user@hostname (pid N)` for this process. The user comes from `$USER` (then `$LOGNAME`),
/// or is `unknown`; the host name from the kernel (`/proc/sys/kernel/hostname`), then
/// `/etc/hostname`, then `$HOSTNAME`, or is `unknown-host`.
pub fn this_process_holder() -> String {
    let user = non_empty_env("USER")
        .or_else(|| non_empty_env("LOGNAME"))
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{user}@{} (pid {})", hostname(), std::process::id())
}

/// Seconds since the Unix epoch; 0 if the clock is set before it.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| {
            std::fs::read_to_string(path)
                .ok()
                .map(|text| text.trim().to_owned())
                .filter(|name| !name.is_empty())
        })
        .or_else(|| non_empty_env("HOSTNAME"))
        .unwrap_or_else(|| "unknown-host".to_owned())
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}
