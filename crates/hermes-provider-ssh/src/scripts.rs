//! The shell scripts run on hosts (embedded from `assets/`), and how they are given their
//! settings and run as root.

/// Facts: one JSON line, read-only.
pub(crate) const FACTS: &str = include_str!("../assets/facts.sh");
/// One phase's files, packages, reloads, under a revert timer for sshd and the firewall.
pub(crate) const PHASE: &str = include_str!("../assets/phase.sh");
/// Keeps a lockout-protected change after a fresh login worked.
pub(crate) const CONFIRM: &str = include_str!("../assets/confirm.sh");
/// Undoes a lockout-protected change at once after a fresh login failed.
pub(crate) const REVERT: &str = include_str!("../assets/revert.sh");
/// How root reaches into an agent's data directory: as the data's owner, never through a
/// link. The head of [`AGENT`] and [`ROTATE`] (see [`for_agent`]).
pub(crate) const AGENT_FILES: &str = include_str!("../assets/agent-files.sh");
/// One agent: networks, egress proxy, data directory, health-gated container.
pub(crate) const AGENT: &str = include_str!("../assets/agent.sh");
/// A new API key for one agent.
pub(crate) const ROTATE: &str = include_str!("../assets/rotate.sh");

/// Images from the stack's registry (login, CA, pull).
pub(crate) const PULL: &str = include_str!("../assets/pull.sh");

/// An agent script ([`AGENT`], [`ROTATE`]) with the helpers it stands on ([`AGENT_FILES`]).
pub(crate) fn for_agent(script: &str) -> String {
    format!("{AGENT_FILES}{script}")
}

/// `value` as one single-quoted shell word.
pub(crate) fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `script` preceded by `NAME='value'` lines.
pub(crate) fn with_settings(settings: &[(&str, String)], script: &str) -> String {
    let mut text = String::new();
    for (name, value) in settings {
        text.push_str(name);
        text.push('=');
        text.push_str(&quote(value));
        text.push('\n');
    }
    text.push_str(script);
    text
}

/// A script for `sh -s` (run as the admin user) that runs `script` as root through `sudo`,
/// with the admin connection's `SSH_CLIENT` as its `$1` (sudo does not pass the environment).
/// Standard input, with any payload after the script, goes on to the root shell.
pub(crate) fn as_root(script: &str) -> String {
    format!(
        "exec sudo -n /bin/sh -c {} hermes-infra \"${{SSH_CLIENT:-}}\"",
        quote(script)
    )
}

#[cfg(test)]
mod agent_files_spec;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(
            with_settings(&[("A", "x y".to_owned())], "echo $A"),
            "A='x y'\necho $A"
        );
    }

    #[test]
    fn every_script_is_valid_sh() {
        for script in [
            FACTS,
            PHASE,
            CONFIRM,
            REVERT,
            &for_agent(AGENT),
            &for_agent(ROTATE),
            PULL,
        ] {
            let status = std::process::Command::new("sh")
                .args(["-n", "-c", script])
                .status()
                .expect("sh runs");
            assert!(status.success(), "sh -n refused a script");
        }
    }
}
