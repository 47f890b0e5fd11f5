//! `hermes-infra plan`: observe, plan, show; optionally save the plan.

use std::path::Path;

use hermes_plan::Target;

use crate::Outcome;
use crate::cli::{OutputFormat, StackArgs};
use crate::output::Printer;
use crate::saved_plan::SavedPlan;
use crate::wiring::{self, Wired};

/// Loads the stack, observes its world and plans (narrowed to `targets`); shared by `plan` and
/// `apply`.
pub(crate) async fn make(
    stack: &Path,
    env: Option<&str>,
    targets: &[Target],
    printer: Printer,
) -> anyhow::Result<(hermes_stack::LoadedStack, Wired, hermes_plan::Plan)> {
    let loaded = hermes_stack::load(stack, env)?;
    let wired = wiring::wire(&loaded, printer).await?;
    let observed = wired.engine.observe(&loaded.scope()).await?;
    let plan = hermes_plan::plan(&hermes_plan::desired(&loaded), &observed).targeting(targets);
    Ok((loaded, wired, plan))
}

pub(crate) async fn run(
    args: &StackArgs,
    output: OutputFormat,
    detailed_exitcode: bool,
    out: Option<&Path>,
    targets: &[Target],
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let (_, _, plan) = make(&args.stack, args.env.as_deref(), targets, printer).await?;
    match output {
        OutputFormat::Text => printer.out(&hermes_plan::text::render(&plan, printer.color())),
        OutputFormat::Json => printer.json(&plan)?,
    }
    if let Some(out) = out {
        SavedPlan::write(out, &args.stack, &plan)?;
        printer.err(&format!(
            "Saved the plan to {0}; apply exactly it with: hermes-infra apply {0}\n",
            out.display()
        ));
    }
    Ok(if detailed_exitcode && !plan.is_empty() {
        Outcome::Changes
    } else {
        Outcome::Done
    })
}
