//! Who this process is, for the lock it presents and the audit logs of hosts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hermes_core::Actor;
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

/// `actor (pid N)` for this process, `actor` being [`this_process_actor`].
pub fn this_process_holder() -> String {
    holder_for(&this_process_actor())
}

/// `actor (pid N)`: how the lock names a run of this process on behalf of `actor`.
pub fn holder_for(actor: &Actor) -> String {
    format!("{actor} (pid {})", std::process::id())
}

/// Who this process runs for when no actor was named: `user@hostname`, cleaned into an
/// [`Actor`] (characters it may not hold become `_`). The user comes from `$USER`, then
/// `$LOGNAME`, then the password database entry of the real user id (containers and CI jobs
/// often set neither variable), or is `unknown`; the host name from the kernel
/// (`/proc/sys/kernel/hostname`), then `/etc/hostname`, then `$HOSTNAME`, or is `unknown-host`.
pub fn this_process_actor() -> Actor {
    let user = user_name(non_empty_env, user_of_uid);
    Actor::lossy(&format!("{user}@{}", hostname()))
}

/// The user's name: from the environment (`USER`, then `LOGNAME`), then from `passwd`, or
/// `unknown`.
fn user_name(
    env: impl Fn(&str) -> Option<String>,
    passwd: impl FnOnce() -> Option<String>,
) -> String {
    env("USER")
        .or_else(|| env("LOGNAME"))
        .or_else(passwd)
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The name of the real user id in the password database (`/etc/passwd`, NSS).
fn user_of_uid() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|user| user.name)
        .filter(|name| !name.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_user_comes_from_user_then_logname_then_passwd() {
        let passwd = || Some("from-passwd".to_owned());
        let both = env_of(&[("USER", "u"), ("LOGNAME", "l")]);
        assert_eq!(user_name(both, passwd), "u");
        assert_eq!(user_name(env_of(&[("LOGNAME", "l")]), passwd), "l");
        assert_eq!(user_name(env_of(&[]), passwd), "from-passwd");
        assert_eq!(user_name(env_of(&[]), || None), "unknown");
    }

    #[test]
    fn the_password_database_names_this_process_user() {
        // Whoever runs the tests has an entry (root in containers, the developer elsewhere).
        let name = user_of_uid().expect("the current uid has a passwd entry");
        assert!(!name.is_empty());
        assert_ne!(name, "unknown");
    }

    #[test]
    fn the_default_actor_is_user_at_host_without_pid() {
        let actor = this_process_actor();
        let (user, host) = actor.as_str().split_once('@').expect("user@host");
        assert!(!user.is_empty() && !host.is_empty(), "{actor}");
        assert!(!actor.as_str().contains("pid"), "{actor}");
        assert_eq!(Actor::new(actor.as_str()).as_ref(), Ok(&actor));
        assert_eq!(
            holder_for(&actor),
            format!("{actor} (pid {})", std::process::id())
        );
    }
}
