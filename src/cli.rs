//! Command-line arguments (clap). Arguments are turned into plain settings before any command
//! runs; nothing below the CLI sees clap types.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hermes_core::Actor;
use hermes_core::actor::{ACTOR_MAX_LEN, ACTOR_PUNCTUATION};

/// hermes-infra: from an empty cloud account to hardened, self-hosted Hermes Agent deployments,
/// from one TOML stack file.
#[derive(Debug, Parser)]
#[command(name = "hermes-infra", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct GlobalArgs {
    /// More detail on standard error (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Colour: auto (on a terminal, unless `NO_COLOR` is set), always or never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub(crate) color: ColorChoice,
    /// Who you are, as hosts record it in their audit log (default: `user@machine`).
    ///
    /// Letters, digits and `._@+-`, at most 64 characters (e.g. `alice@laptop`, `ci+deploy`).
    #[arg(long, value_name = "NAME", env = "HERMES_INFRA_ACTOR", value_parser = parse_actor, global = true)]
    pub(crate) actor: Option<Actor>,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Output format of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// The stack file and environment a command works on.
#[derive(Debug, Args)]
pub(crate) struct StackArgs {
    /// The stack file.
    pub(crate) stack: PathBuf,
    /// Environment (one of the stack's `environments`).
    #[arg(short, long, env = "HERMES_INFRA_ENV")]
    pub(crate) env: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Write a commented starter stack file.
    Init {
        /// Where to write it.
        #[arg(default_value = "stack.toml")]
        path: PathBuf,
        /// The stack's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Check a stack file without contacting anything.
    Validate {
        #[command(flatten)]
        stack: StackArgs,
        /// Result format.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show what apply would change, everywhere.
    Plan {
        #[command(flatten)]
        stack: StackArgs,
        /// Result format.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
        /// Exit 0 when there is nothing to change, 2 when there are changes, 1 on errors.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Save the plan to FILE; `apply FILE` then applies exactly it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        targets: TargetArgs,
    },
    /// Make the world match the stack (or apply a saved plan).
    Apply {
        /// A stack file, or a plan saved with `plan --out`.
        target: PathBuf,
        /// Environment (stack files only; a saved plan knows its own).
        #[arg(short, long, env = "HERMES_INFRA_ENV")]
        env: Option<String>,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        targets: TargetArgs,
    },
    /// Delete everything the stack created in an environment.
    Destroy {
        #[command(flatten)]
        stack: StackArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        targets: TargetArgs,
    },
    /// Show every host: power state, address, pinned key, and pending changes.
    Status {
        #[command(flatten)]
        stack: StackArgs,
        /// Result format.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Print the outside auditors' figures for every running host.
    ///
    /// Lynis hardening index, ssh-audit, fail2ban jails, listeners, pending security updates.
    Audit {
        #[command(flatten)]
        stack: StackArgs,
        /// Result format.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Open a shell on a host (or run a command: `-- CMD...`), checking its pinned host key.
    Ssh {
        #[command(flatten)]
        stack: StackArgs,
        /// The host's name.
        host: String,
        /// The host was rebuilt on purpose: pin the key it presents now.
        #[arg(long)]
        accept_new_host_key: bool,
        /// A command to run instead of a shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Power a host off (a clean shutdown) or on again.
    Power {
        /// `on` or `off`.
        #[arg(value_enum)]
        state: PowerState,
        #[command(flatten)]
        stack: StackArgs,
        /// The host's name.
        host: String,
    },
    /// Print an agent's gateway log (its container's), or follow it with `-f`.
    Logs {
        #[command(flatten)]
        stack: StackArgs,
        /// The agent's name.
        agent: String,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// How many of the last lines to print first.
        #[arg(long, default_value_t = 200)]
        tail: u32,
    },
    /// Run a command in an agent's container, as the agent's user: `exec STACK AGENT -- CMD`.
    Exec {
        #[command(flatten)]
        stack: StackArgs,
        /// The agent's name.
        agent: String,
        /// The command and its arguments.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Give an agent a new API key, made and kept on its host (never shown).
    Rotate {
        #[command(flatten)]
        stack: StackArgs,
        /// The agent's name.
        agent: String,
    },
    /// Open an agent's web dashboard on this machine (127.0.0.1), over SSH; Ctrl-C closes it.
    Tunnel {
        #[command(flatten)]
        stack: StackArgs,
        /// The agent's name.
        agent: String,
        /// The local port (0: any free port, printed).
        #[arg(long, default_value_t = 9119)]
        port: u16,
    },
    /// Run an agent on the image it ran before (recorded in the state), health-gated.
    ///
    /// Only the image changes; the next apply returns to the stack's image.
    Rollback {
        #[command(flatten)]
        stack: StackArgs,
        /// The agent's name.
        agent: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Build or move the Hermes Agent image.
    Image {
        #[command(subcommand)]
        action: ImageAction,
    },
    /// Print the JSON Schema of the stack file format.
    Schema,
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// What `image` does.
#[derive(Debug, Subcommand)]
pub(crate) enum ImageAction {
    /// Build the stack's Hermes Agent image (Debian packages and PyPI) and the egress proxy
    /// image on this machine's Docker engine; cached by recipe.
    Build {
        #[command(flatten)]
        stack: StackArgs,
        /// Result format.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Send the built images to every host that runs an agent, over SSH (only to hosts that
    /// lack them).
    Push {
        #[command(flatten)]
        stack: StackArgs,
        /// Result format.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

/// Power states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PowerState {
    On,
    Off,
}

/// Narrowing a plan.
#[derive(Debug, Clone, Args)]
pub(crate) struct TargetArgs {
    /// Only this resource (`host.web-1`) or kind (`host`), and what it depends on; repeatable.
    #[arg(long = "target", value_name = "ADDRESS|KIND", value_parser = parse_target)]
    pub(crate) targets: Vec<hermes_plan::Target>,
}

fn parse_target(s: &str) -> Result<hermes_plan::Target, String> {
    s.parse()
}

/// Options of commands that change things.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub(crate) yes: bool,
    /// Allow changes that destroy something (replacements and deletions).
    #[arg(long)]
    pub(crate) allow_destroy: bool,
    /// Wait up to this long for a lock held by another run (e.g. `30s`, `5m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub(crate) lock_wait: Duration,
    /// Result format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) output: OutputFormat,
}

fn parse_actor(s: &str) -> Result<Actor, String> {
    Actor::new(s).map_err(|e| {
        format!(
            "{e}; the actor (--actor or HERMES_INFRA_ACTOR) may hold only ASCII letters, digits \
             and `{ACTOR_PUNCTUATION}`, 1 to {ACTOR_MAX_LEN} of them: e.g. `--actor \
             alice@laptop`, or unset both for the default `user@machine`"
        )
    })
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. `30s` or `5m`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
