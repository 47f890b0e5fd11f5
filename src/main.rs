//! `hermes-infra`, the command line: parses arguments, wires the real providers, state store
//! and secret sources into the engine, prints results, and maps outcomes to exit codes. It is
//! the only part of the project that prints.

mod cli;
mod commands;
mod local_images;
mod output;
mod registry_push;
mod saved_plan;
mod secrets;
mod wiring;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::Cli;
use crate::output::Printer;

/// How a command ended; each maps to a documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Done (plan: no changes).
    Done,
    /// `plan --detailed-exitcode` found changes.
    Changes,
    /// Something failed after starting; what was done has been reported.
    Failed,
    /// Stopped by Ctrl-C; what was done has been reported.
    Interrupted,
    /// A command run on a host (`ssh HOST -- CMD`) ended with this status.
    Code(u8),
}

impl Outcome {
    fn code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Failed => 1,
            Outcome::Changes => 2,
            Outcome::Interrupted => 130,
            Outcome::Code(n) => n,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let printer = Printer::new(cli.global.color);
    init_logging(cli.global.verbose, printer.color_err());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            printer.err(&format!("error: cannot start the async runtime: {e}\n"));
            return ExitCode::FAILURE;
        }
    };
    let actor = cli
        .global
        .actor
        .unwrap_or_else(hermes_state::this_process_actor);
    let result = runtime.block_on(commands::run(cli.command, &actor, printer));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(err) => {
            if let Some(load) = err.downcast_ref::<hermes_stack::LoadError>()
                && !load.diagnostics().is_empty()
            {
                printer.err(&format!("{load}\n"));
            } else {
                printer.err(&format!("error: {err:#}\n"));
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8, color: bool) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERMES_INFRA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .try_init();
}
