//! The shell scripts run on hosts (embedded from `assets/`), and how they are given their
//! settings and run as root.

use hermes_core::Actor;

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

/// `actor` as the host scripts record it (`AUDIT_WHO`, written as `who="..."` in the audit
/// log). The revert script that `phase.sh` writes embeds it in a single-quoted word, so it
/// must never hold a quote: only the characters an [`Actor`] may hold are kept. A valid actor
/// holds no others; filtering here keeps that guarantee next to the scripts that rely on it.
pub(crate) fn audit_who(actor: &Actor) -> String {
    actor
        .as_str()
        .chars()
        .filter(|c| Actor::allows(*c))
        .collect()
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
///
/// The root script is never a command-line argument, so neither sudo's log (its `COMMAND=`
/// line in the journal) nor the process list shows it: the admin's shell writes it into a
/// fresh `mktemp` file under `/tmp` (mode 0600, the admin's own) from a quoted here-document,
/// and runs `sudo -n /bin/sh FILE "$SSH_CLIENT"`; sudo logs `COMMAND=/bin/sh
/// /tmp/hermes-infra.XXXXXXXX ADDRESS PORT LOCALPORT`. The root shell's first command removes
/// the file (`rm -f -- "$0"`), so it is gone while the script runs; the admin's shell removes
/// it too, should sudo refuse to start. The exit status is the root shell's (or sudo's), and
/// 125 when no file can be made.
///
/// Standard input, with any payload after the script, goes on to the root shell unread: the
/// admin's shell parses the whole wrapper (`hermes_remote` sends it as one `{ ... }` group)
/// before running it, and it ends with `exit`, before reading anything after it.
pub(crate) fn as_root(script: &str) -> String {
    let delimiter = here_doc_delimiter(script);
    let newline = if script.is_empty() || script.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    format!(
        "hermes_infra_root=$(mktemp /tmp/hermes-infra.XXXXXXXX) || exit 125\n\
         cat >\"$hermes_infra_root\" <<'{delimiter}' || {{ rm -f -- \"$hermes_infra_root\"; exit 125; }}\n\
         rm -f -- \"$0\"\n\
         {script}{newline}\
         {delimiter}\n\
         sudo -n /bin/sh \"$hermes_infra_root\" \"${{SSH_CLIENT:-}}\"; \
         hermes_infra_status=$?; rm -f -- \"$hermes_infra_root\"; exit \"$hermes_infra_status\"\n"
    )
}

/// A here-document delimiter that is no line of `script`: named after the script's digest,
/// lengthened in the (never seen) case that the script holds that line.
fn here_doc_delimiter(script: &str) -> String {
    let digest = hermes_core::digest::sha256(script.as_bytes());
    let hex = digest.trim_start_matches("sha256:");
    unused_line(script, &format!("HERMES_INFRA_ROOT_SCRIPT_{}", &hex[..16]))
}

/// `base`, with as many `_` added as it takes to be no line of `script`.
fn unused_line(script: &str, base: &str) -> String {
    let mut line = base.to_owned();
    while script.split('\n').any(|l| l == line) {
        line.push('_');
    }
    line
}

#[cfg(test)]
mod root_tests;

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
            for text in [script.to_owned(), as_root(script)] {
                let status = std::process::Command::new("sh")
                    .args(["-n", "-c", &text])
                    .status()
                    .expect("sh runs");
                assert!(status.success(), "sh -n refused a script");
            }
        }
    }

    #[test]
    fn the_revert_line_keeps_a_hostile_actor_inside_its_quotes() {
        let actor = Actor::lossy("o'brien\"; touch /tmp/pwned; \\\n x=$(id)`id`");
        let who = audit_who(&actor);
        assert!(
            !who.contains(['\'', '"', '\\', '\n', '$', '`', ' ']),
            "{who}"
        );
        // The line of phase.sh that writes the revert script's audit line, run for real.
        let line = PHASE
            .lines()
            .find(|l| l.contains("result=reverted"))
            .expect("phase.sh audits reverts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let script = with_settings(
            &[
                ("AUDIT_WHO", who.clone()),
                ("AUDIT_PLAN", "sha256:p".to_owned()),
                ("PHASE", "host-hardening".to_owned()),
                ("log", dir.path().display().to_string()),
                ("revert", dir.path().join("revert.sh").display().to_string()),
            ],
            &format!("{line}\nsh \"$revert\"\n"),
        );
        let status = std::process::Command::new("sh")
            .args(["-c", &script])
            .status()
            .expect("sh runs");
        assert!(status.success());
        let log = std::fs::read_to_string(dir.path().join("audit.log")).expect("the audit line");
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "{log}");
        assert!(
            lines[0].ends_with(&format!(
                " who=\"{who}\" plan=sha256:p phase=host-hardening result=reverted"
            )),
            "{log}"
        );
    }
}
