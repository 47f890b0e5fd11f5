//! One module per verb; each is a thin wrapper that loads, calls the libraries, and prints.

pub(crate) mod agents;
mod apply;
mod audit;
pub(crate) mod hosts;
pub(crate) mod image;
mod init;
mod plan;
pub(crate) mod remote_command;
mod rollback;
mod tunnel;
mod validate;

use clap::CommandFactory;
use hermes_core::Actor;

use crate::Outcome;
use crate::cli::{Cli, Command, ImageAction};
use crate::commands::remote_command::RemoteCommand;
use crate::output::Printer;

/// Runs `command`; `actor` is who hosts record as making changes.
pub(crate) async fn run(
    command: Command,
    actor: &Actor,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    match command {
        Command::Init { path, name, force } => init::run(&path, name.as_deref(), force, printer),
        Command::Validate { stack, output } => validate::run(&stack, output, printer),
        Command::Plan {
            stack,
            output,
            detailed_exitcode,
            out,
            targets,
        } => {
            plan::run(
                &stack,
                output,
                detailed_exitcode,
                out.as_deref(),
                &targets.targets,
                printer,
            )
            .await
        }
        Command::Apply {
            target,
            env,
            run,
            targets,
        } => {
            apply::apply(
                &target,
                env.as_deref(),
                &run,
                &targets.targets,
                actor,
                printer,
            )
            .await
        }
        Command::Destroy {
            stack,
            run,
            targets,
        } => apply::destroy(&stack, &run, &targets.targets, actor, printer).await,
        Command::Status { stack, output } => hosts::status(&stack, output, printer).await,
        Command::Audit { stack, output } => audit::run(&stack, output, printer).await,
        Command::Ssh {
            stack,
            host,
            accept_new_host_key,
            command,
        } => {
            let remote = RemoteCommand::typed(&command);
            hosts::ssh(&stack, &host, accept_new_host_key, &remote, printer).await
        }
        Command::Power { state, stack, host } => hosts::power(&stack, &host, state, printer).await,
        Command::Logs {
            stack,
            agent,
            follow,
            tail,
        } => agents::logs(&stack, &agent, follow, tail, printer).await,
        Command::Exec {
            stack,
            agent,
            command,
        } => agents::exec(&stack, &agent, &command, printer).await,
        Command::Rotate { stack, agent } => agents::rotate(&stack, &agent, actor, printer).await,
        Command::Tunnel { stack, agent, port } => {
            tunnel::tunnel(&stack, &agent, port, printer).await
        }
        Command::Rollback { stack, agent, run } => {
            rollback::rollback(&stack, &agent, &run, actor, printer).await
        }
        Command::Image {
            action: ImageAction::Build { stack, output },
        } => image::build(&stack, output, printer).await,
        Command::Image {
            action: ImageAction::Push { stack, output },
        } => image::push(&stack, output, printer).await,
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
