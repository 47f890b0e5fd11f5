//! `hermes-infra apply` and `destroy`: plan (or read a saved plan), confirm, run through the
//! engine, report what was done.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, bail};

use hermes_core::Actor;
use hermes_engine::{ApplyOptions, ApplyReport};
use hermes_plan::{Desired, Plan, Target};
use hermes_provider_ssh::{HostReport, SshHostProvider};

use crate::Outcome;
use crate::cli::{OutputFormat, RunArgs, StackArgs};
use crate::commands::plan;
use crate::output::Printer;
use crate::saved_plan::SavedPlan;
use crate::wiring::{self, Wired};

pub(crate) async fn apply(
    target: &Path,
    env: Option<&str>,
    run: &RunArgs,
    targets: &[Target],
    actor: &Actor,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    if let Some(saved) = SavedPlan::read_if_plan(target)? {
        let plan_env = saved.plan.scope.env.clone();
        if let Some(env) = env
            && env != plan_env
        {
            bail!("the saved plan is for environment `{plan_env}`, not `{env}`; leave out --env");
        }
        let loaded = hermes_stack::load(&saved.stack, Some(&plan_env))
            .with_context(|| format!("the saved plan's stack `{}`", saved.stack.display()))?;
        if loaded.source_digest != saved.plan.stack_digest {
            bail!(
                "the stack file `{}` has changed since the plan was made; make a new plan with `hermes-infra plan {} --out {}`",
                saved.stack.display(),
                saved.stack.display(),
                target.display()
            );
        }
        if !targets.is_empty() {
            bail!("a saved plan is applied whole; narrow it with --target when making it");
        }
        let wired = wiring::wire(&loaded, printer).await?;
        crate::commands::image::before_apply(&loaded, &saved.plan, printer).await?;
        return execute(&wired, &saved.plan, run, "apply", actor, printer).await;
    }
    let (loaded, wired, plan) = plan::make(target, env, targets, printer).await?;
    show(&plan, run.output, printer);
    if plan.is_empty() {
        // Nothing to do is a result too: JSON callers get the empty report with the round
        // trips that finding out cost.
        let report = ApplyReport::new(plan.hash());
        return report_outcome(&report, &wired, run.output, printer);
    }
    confirm(&plan, run.yes)?;
    crate::commands::image::before_apply(&loaded, &plan, printer).await?;
    execute(&wired, &plan, run, "apply", actor, printer).await
}

pub(crate) async fn destroy(
    args: &StackArgs,
    run: &RunArgs,
    targets: &[Target],
    actor: &Actor,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let (loaded, wired) = wiring::load(args, printer).await?;
    let observed = wired.engine.observe(&loaded.scope()).await?;
    let nothing = Desired {
        scope: loaded.scope(),
        stack_digest: loaded.source_digest.clone(),
        resources: Vec::new(),
    };
    let plan = hermes_plan::plan(&nothing, &observed).targeting(targets);
    let run = RunArgs {
        allow_destroy: true,
        ..run.clone()
    };
    run_plan(&wired, &plan, &run, "destroy", actor, printer).await
}

/// Shows the plan about to be applied (text only: with `--output json` the report is the result).
fn show(plan: &Plan, output: OutputFormat, printer: Printer) {
    if output == OutputFormat::Text {
        printer.out(&hermes_plan::text::render(plan, printer.color()));
    }
}

fn confirm(plan: &Plan, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "refusing to change {} without confirmation: standard input is not a terminal; pass --yes",
            plan.scope
        );
    }
    eprint_prompt(&format!(
        "Apply these {} change(s) to {}? Only `yes` is accepted: ",
        plan.changes.len(),
        plan.scope
    ));
    let mut answer = String::new();
    stdin
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    if answer.trim() != "yes" {
        bail!("not applied: the answer was not `yes`");
    }
    Ok(())
}

#[expect(
    clippy::print_stderr,
    reason = "the confirmation prompt must appear before reading the answer"
)]
fn eprint_prompt(text: &str) {
    eprint!("{text}");
}

/// Shows `plan`, asks for confirmation (unless `--yes`) and applies it as `operation`, on
/// behalf of `actor`.
pub(crate) async fn run_plan(
    wired: &Wired,
    plan: &Plan,
    run: &RunArgs,
    operation: &str,
    actor: &Actor,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    show(plan, run.output, printer);
    if plan.is_empty() {
        return Ok(Outcome::Done);
    }
    confirm(plan, run.yes)?;
    execute(wired, plan, run, operation, actor, printer).await
}

/// Applies `plan` through the engine: the lock names `actor` and this process, hosts record
/// `actor` in their audit logs.
async fn execute(
    wired: &Wired,
    plan: &Plan,
    run: &RunArgs,
    operation: &str,
    actor: &Actor,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    let signals = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let options = ApplyOptions {
        allow_destroy: run.allow_destroy,
        lock_wait: run.lock_wait,
        holder: hermes_state::holder_for(actor),
        actor: actor.clone(),
        operation: operation.to_owned(),
        cancel,
    };
    let result = wired.engine.apply(plan, options).await;
    signals.abort();
    let report = result?;
    report_outcome(&report, wired, run.output, printer)
}

/// An apply's JSON result: the engine's report and what happened on each host.
#[derive(serde::Serialize)]
struct ApplyOutput<'a> {
    #[serde(flatten)]
    report: &'a ApplyReport,
    /// Per host: SSH connections and exec round trips, files changed, settings not applicable.
    hosts: BTreeMap<String, HostReport>,
}

fn report_outcome(
    report: &ApplyReport,
    wired: &Wired,
    output: OutputFormat,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let hosts = wired
        .hosts
        .as_ref()
        .map(SshHostProvider::host_reports)
        .unwrap_or_default();
    match output {
        OutputFormat::Json => printer.json(&ApplyOutput { report, hosts })?,
        OutputFormat::Text => {
            let mut text = format!("{} change(s) done", report.done.len());
            if !report.failed.is_empty() {
                let _ = write!(text, ", {} failed", report.failed.len());
            }
            if !report.not_started.is_empty() {
                let _ = write!(text, ", {} not started", report.not_started.len());
            }
            text.push_str(".\n");
            for f in &report.failed {
                let _ = writeln!(
                    text,
                    "  failed: {} ({:?}): {}",
                    f.address, f.action, f.error
                );
            }
            for a in &report.not_started {
                let _ = writeln!(text, "  not started: {a}");
            }
            for (host, r) in &hosts {
                for (phase, files) in &r.changed {
                    let _ = writeln!(text, "  {host}: {phase} changed {}", files.join(", "));
                }
                for (phase, skipped) in &r.not_applicable {
                    for what in skipped {
                        let _ = writeln!(text, "  {host}: {phase}: not applicable: {what}");
                    }
                }
            }
            printer.out(&text);
        }
    }
    Ok(if report.interrupted {
        Outcome::Interrupted
    } else if report.failed.is_empty() {
        Outcome::Done
    } else {
        Outcome::Failed
    })
}
