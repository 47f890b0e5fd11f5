//! Agent verbs over the agent's host's pinned SSH connection: `logs AGENT [-f]` (the gateway's
//! container log), `exec AGENT -- CMD` (a command in the agent's container, as its user) and
//! `rotate AGENT` (a new API key, made on the host and never shown).

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};

use crate::Outcome;
use crate::cli::StackArgs;
use crate::commands::remote_command::RemoteCommand;
use crate::output::Printer;
use crate::wiring;

/// The host agent `agent` runs on, from the stack.
fn host_of(args: &StackArgs, agent: &str) -> anyhow::Result<String> {
    let stack = hermes_stack::load(&args.stack, args.env.as_deref())?;
    host_in(&stack, args, agent)
}

fn host_in(
    stack: &hermes_stack::LoadedStack,
    args: &StackArgs,
    agent: &str,
) -> anyhow::Result<String> {
    if let Some((_, spec)) = stack
        .file
        .agents
        .iter()
        .find(|(name, _)| name.as_str() == agent)
    {
        return Ok(spec.host.clone());
    }
    let known: Vec<String> = stack.file.agents.keys().map(ToString::to_string).collect();
    bail!(
        "{}: no agent `{agent}`; the stack's agents: {}",
        args.stack.display(),
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    )
}

fn container(agent: &str) -> String {
    format!("hermes-agent-{agent}")
}

pub(crate) async fn logs(
    args: &StackArgs,
    agent: &str,
    follow: bool,
    tail: u32,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let host = host_of(args, agent)?;
    let mut command = vec![
        "sudo".to_owned(),
        "docker".to_owned(),
        "logs".to_owned(),
        "--tail".to_owned(),
        tail.to_string(),
    ];
    if follow {
        command.push("--follow".to_owned());
    }
    command.push(container(agent));
    super::hosts::ssh(args, &host, false, &RemoteCommand::Words(command), printer).await
}

pub(crate) async fn exec(
    args: &StackArgs,
    agent: &str,
    command: &[String],
    printer: Printer,
) -> anyhow::Result<Outcome> {
    if command.is_empty() {
        bail!("name the command to run after `--`, for example `-- hermes --version`");
    }
    let host = host_of(args, agent)?;
    // The command travels on the session's standard input, never in a command line: its
    // words may hold secrets (sudo would log them, `ps` would show them).
    let remote = RemoteCommand::in_container(&container(agent), command);
    super::hosts::ssh(args, &host, false, &remote, printer).await
}

pub(crate) async fn rotate(
    args: &StackArgs,
    agent: &str,
    actor: &hermes_core::Actor,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let (loaded, wired) = wiring::load(args, printer).await?;
    let host = host_in(&loaded, args, agent)?;
    let ssh = wired
        .hosts
        .clone()
        .context("this stack's provider cannot reach its hosts over SSH in this build")?;
    let world: BTreeMap<_, _> = wired
        .observe_hosts(&loaded.scope())
        .await?
        .into_iter()
        .map(|o| (o.address.clone(), o))
        .collect();
    ssh.rotate_api_key(agent, &host, &world, actor).await?;
    printer.err(&format!(
        "agent `{agent}` on host `{host}` has a new API key; the old one no longer works. It is \
         kept only on the host: `hermes-infra exec {} {agent} -- sh -c 'grep ^API_SERVER_KEY= \
         /opt/data/.env'` shows it\n",
        args.stack.display()
    ));
    Ok(Outcome::Done)
}
