//! What `ssh` runs on a host for `ssh HOST [-- CMD]`, `exec AGENT -- CMD`, `logs` and `tunnel`,
//! and how a command the operator typed gets there without being an argument of any process on
//! the host (ssh's remote command, the login shell, sudo, the root shell, the Docker client),
//! so neither the process list nor sudo's journal line (`COMMAND=...`) shows it. The programs
//! the command itself starts carry their own arguments, as always.
//!
//! Such a command travels on the SSH session's standard input, in a frame ahead of the
//! operator's own input: a line with its length in bytes, the command, a line break. The
//! remote command is a fixed reader ([`READ_FRAME`]) that takes exactly the frame (`read`
//! takes one byte at a time from a pipe, `dd bs=1` exactly the command's bytes) and leaves the
//! rest of standard input to the command. A frame cut short runs nothing (exit 125). No
//! terminal is requested for it (`ssh -T`, whatever the ssh configuration says): a terminal
//! would echo the frame back and could alter it.

/// Reads one frame from standard input into `hermes_infra_cmd` (POSIX sh: dash, bash).
pub(crate) const READ_FRAME: &str = r#"IFS= read -r hermes_infra_len || hermes_infra_len=
case $hermes_infra_len in
'' | *[!0-9]*) echo "hermes-infra: no command on standard input" >&2; exit 125 ;;
esac
hermes_infra_cmd=$(dd bs=1 count="$hermes_infra_len" 2>/dev/null; echo .)
hermes_infra_cmd=${hermes_infra_cmd%.}
if ! IFS= read -r hermes_infra_end || [ -n "$hermes_infra_end" ]; then
    echo "hermes-infra: the command on standard input was cut short; nothing ran" >&2
    exit 125
fi
unset hermes_infra_len hermes_infra_end
"#;

/// After [`READ_FRAME`], in the admin's login shell: runs the command as that shell would
/// have run it as ssh's remote command (the variable is gone before it runs).
const RUN_IN_LOGIN_SHELL: &str = r#"eval "unset hermes_infra_cmd; $hermes_infra_cmd"
"#;

/// After [`READ_FRAME`], as root, `$1` naming the container: runs the command (words quoted
/// for `sh`) in the container as its user, with standard input. The command reaches the
/// container in the environment of the Docker client (`-e` names the variable only); the
/// container's `sh` takes it out of the environment and replaces itself with the command.
const RUN_IN_CONTAINER: &str = r#"HERMES_INFRA_CMD=$hermes_infra_cmd
export HERMES_INFRA_CMD
unset hermes_infra_cmd
exec docker exec -i -e HERMES_INFRA_CMD "$1" sh -c 'c=$HERMES_INFRA_CMD; unset HERMES_INFRA_CMD; eval "unset c; exec $c"'
"#;

/// `word` as one single-quoted word for the host's shell (ssh joins its arguments).
pub(crate) fn shell_word(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// What `ssh` runs on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RemoteCommand {
    /// A login shell (with a terminal when this one is a terminal, as `ssh` decides).
    Shell,
    /// These words, joined by `ssh` and parsed by the admin's login shell. They show in the
    /// host's process list (and, after `sudo`, in its journal): nothing typed, nothing secret.
    Words(Vec<String>),
    /// `command`, sent in a frame on standard input; `reader` (fixed text) is the remote
    /// command that reads and runs it.
    Hidden {
        /// The remote command: reads the frame, runs what it holds.
        reader: String,
        /// What the operator typed, as the reader's shell is to run it.
        command: String,
    },
}

impl RemoteCommand {
    /// `ssh HOST -- WORDS`: the words joined with spaces (as `ssh` joins them), run by the
    /// admin's login shell; no words: a login shell.
    pub(crate) fn typed(words: &[String]) -> Self {
        if words.is_empty() {
            return Self::Shell;
        }
        Self::Hidden {
            reader: format!("{READ_FRAME}{RUN_IN_LOGIN_SHELL}"),
            command: words.join(" "),
        }
    }

    /// `exec AGENT -- WORDS`: the words exactly as given (each one a word, nothing expanded),
    /// run in `container` as its user by root's Docker client, with standard input.
    pub(crate) fn in_container(container: &str, words: &[String]) -> Self {
        let root = format!("{READ_FRAME}{RUN_IN_CONTAINER}");
        Self::Hidden {
            reader: format!(
                "sudo -n /bin/sh -c {} hermes-infra {}",
                shell_word(&root),
                shell_word(container)
            ),
            command: words
                .iter()
                .map(|w| shell_word(w))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// The remote command for `ssh`, in the words `ssh` joins (none: a login shell).
    pub(crate) fn remote_words(&self) -> Vec<String> {
        match self {
            Self::Shell => Vec::new(),
            Self::Words(words) => words.clone(),
            Self::Hidden { reader, .. } => vec![reader.clone()],
        }
    }

    /// What goes to the session's standard input before the operator's input, if anything.
    pub(crate) fn frame(&self) -> Option<Vec<u8>> {
        match self {
            Self::Hidden { command, .. } => {
                Some(format!("{}\n{command}\n", command.len()).into_bytes())
            }
            Self::Shell | Self::Words(_) => None,
        }
    }
}

#[cfg(test)]
mod tests;
