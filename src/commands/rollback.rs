//! `hermes-infra rollback STACK AGENT`: the agent runs the image it ran before (the one before
//! the last in the state's image history), with the settings it runs now, through the engine
//! (lock, health-gated swap, state): a one-change plan shown and confirmed like any apply.

use anyhow::{Context as _, bail};

use hermes_core::resource::IMAGE_ID_ATTR;
use hermes_core::seams::StateStore as _;
use hermes_core::{Actor, Address, Kind, Resource};
use hermes_plan::{Desired, Target};

use crate::Outcome;
use crate::cli::{RunArgs, StackArgs};
use crate::output::Printer;
use crate::wiring;

/// A short form of an image id for messages (`sha256:` and 12 hex digits).
fn short(id: &str) -> &str {
    id.get(..19).unwrap_or(id)
}

pub(crate) async fn rollback(
    args: &StackArgs,
    agent: &str,
    run: &RunArgs,
    actor: &Actor,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let (loaded, wired) = wiring::load(args, printer).await?;
    let scope = loaded.scope();
    let address = Address::new(Kind::Agent, agent);
    let desired = hermes_plan::desired(&loaded);
    let Some(wanted) = desired.resources.iter().find(|r| r.address == address) else {
        bail!(
            "{}: no agent `{agent}` in environment `{}`",
            args.stack.display(),
            scope.env
        );
    };
    let state = wired.store.load(&scope).await?;
    let Some(previous) = state.previous_image(agent).map(str::to_owned) else {
        bail!(
            "agent `{agent}`: the state ({scope}) records no image before the one it runs; a \
             rollback needs an earlier deploy. To run another release, name it in the stack's \
             `[image]` and apply"
        );
    };
    let observed = wired.engine.observe(&scope).await?;
    let Some(running) = observed.iter().find(|o| o.address == address) else {
        bail!("agent `{agent}` is not deployed; apply the stack first");
    };
    let now = running
        .attrs
        .get(IMAGE_ID_ATTR)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("no container");
    if now == previous {
        bail!(
            "agent `{agent}` already runs {}, the image before the last recorded; nothing to \
             roll back",
            short(&previous)
        );
    }
    // What runs now, with only the image changed.
    let mut attrs = running.attrs.clone();
    attrs.remove(IMAGE_ID_ATTR);
    attrs.insert("image".to_owned(), previous.clone().into());
    let back = Resource {
        attrs,
        ..wanted.clone()
    };
    let resources = desired
        .resources
        .iter()
        .map(|r| {
            if r.address == address {
                back.clone()
            } else {
                r.clone()
            }
        })
        .collect();
    let plan = hermes_plan::plan(
        &Desired {
            resources,
            ..desired.clone()
        },
        &observed,
    )
    .targeting(&[Target::Address(address.clone())]);
    printer.err(&format!(
        "agent `{agent}`: rolling back from {} to {}\n",
        short(now),
        short(&previous)
    ));
    let outcome = super::apply::run_plan(&wired, &plan, run, "rollback", actor, printer)
        .await
        .with_context(|| format!("rollback of agent `{agent}`"))?;
    if matches!(outcome, Outcome::Done) {
        printer.err(&format!(
            "agent `{agent}` runs {} again. The stack still names `{}`: the next apply returns \
             to it. To stay on this release, name it in the stack.\n",
            short(&previous),
            wanted
                .attrs
                .get("image")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("its image")
        ));
    }
    Ok(outcome)
}
