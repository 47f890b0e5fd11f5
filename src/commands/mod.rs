//! One module per verb; each is a thin wrapper that loads, calls the libraries, and prints.

mod apply;
mod init;
mod plan;
mod validate;

use clap::CommandFactory;

use crate::Outcome;
use crate::cli::{Cli, Command};
use crate::output::Printer;

pub(crate) async fn run(command: Command, printer: Printer) -> anyhow::Result<Outcome> {
    match command {
        Command::Init { path, name, force } => init::run(&path, name.as_deref(), force, printer),
        Command::Validate { stack, output } => validate::run(&stack, output, printer),
        Command::Plan {
            stack,
            output,
            detailed_exitcode,
            out,
        } => plan::run(&stack, output, detailed_exitcode, out.as_deref(), printer).await,
        Command::Apply { target, env, run } => {
            apply::apply(&target, env.as_deref(), &run, printer).await
        }
        Command::Destroy { stack, run } => apply::destroy(&stack, &run, printer).await,
        Command::Schema => {
            printer.json(&hermes_stack::json_schema())?;
            Ok(Outcome::Done)
        }
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "hermes-infra", &mut buf);
            printer.out(&String::from_utf8_lossy(&buf));
            Ok(Outcome::Done)
        }
    }
}
