//! `hermes-infra validate`: loads the stack and reports every problem, for the environment
//! named with `--env`, or for every declared environment (so that every overlay is checked). It
//! contacts nothing.

use std::fmt::Write as _;

use serde_json::json;

use crate::Outcome;
use crate::cli::{OutputFormat, StackArgs};
use crate::output::Printer;

pub(crate) fn run(
    args: &StackArgs,
    output: OutputFormat,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let loaded = match args.env.as_deref() {
        Some(env) => hermes_stack::load(&args.stack, Some(env)).map(|s| vec![s]),
        None => hermes_stack::load_all(&args.stack),
    };
    match (output, loaded) {
        (OutputFormat::Text, Ok(stacks)) => {
            let envs: Vec<&str> = stacks.iter().map(|s| s.env.as_str()).collect();
            let mut text = format!(
                "{} is valid in {}:\n",
                args.stack.display(),
                envs.join(", ")
            );
            for s in &stacks {
                let _ = writeln!(
                    text,
                    "  {}: stack `{}`, {} host(s), {} agent(s)",
                    s.env,
                    s.name(),
                    s.hosts.len(),
                    s.file.agents.len()
                );
            }
            printer.out(&text);
            Ok(Outcome::Done)
        }
        (OutputFormat::Json, Ok(stacks)) => {
            let envs: Vec<_> = stacks
                .iter()
                .map(|s| {
                    json!({
                        "env": s.env,
                        "hosts": s.hosts.iter().map(|h| &h.name).collect::<Vec<_>>(),
                        "agents": s.file.agents.keys().collect::<Vec<_>>(),
                    })
                })
                .collect();
            let name = stacks.first().map(|s| s.name().to_owned());
            printer.json(
                &json!({ "valid": true, "file": args.stack, "stack": name, "environments": envs }),
            )?;
            Ok(Outcome::Done)
        }
        (OutputFormat::Json, Err(err)) if !err.diagnostics().is_empty() => {
            printer.json(
                &json!({ "valid": false, "file": args.stack, "errors": err.diagnostics() }),
            )?;
            Ok(Outcome::Failed)
        }
        (_, Err(err)) => Err(err.into()),
    }
}
