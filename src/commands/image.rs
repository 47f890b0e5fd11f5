//! `hermes-infra image build`: builds the stack's Hermes Agent image on this machine's Docker
//! engine from Debian packages and PyPI (`templates/agent-image/`), and the egress proxy image
//! every agent gets; tags the agent image `hermes-agent:<image.tag or hermes-version>`.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::json;

use hermes_provider_local::Docker;
use hermes_provider_local::image::ImageRecipe;

use crate::Outcome;
use crate::cli::{OutputFormat, StackArgs};
use crate::output::Printer;

/// Bound on each `docker` call (an import of a 500 MB root filesystem included).
const DOCKER_TIMEOUT: Duration = Duration::from_mins(5);

/// The images of one build.
struct Built {
    agent_tag: String,
    agent_recipe_tag: String,
    agent_id: String,
    egress_tag: String,
}

pub(crate) async fn build(
    args: &StackArgs,
    output: OutputFormat,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let stack = hermes_stack::load(&args.stack, args.env.as_deref())?;
    let image = &stack.file.image;
    if let Some(upstream) = &image.upstream {
        bail!(
            "{}: `image.upstream` names `{upstream}`, so there is nothing to build; remove it \
             to build Hermes Agent {} from PyPI",
            args.stack.display(),
            image.hermes_version
        );
    }
    let script = hermes_render::agent_image_install_script(&image.hermes_version)
        .with_context(|| format!("{}: `image.hermes-version`", args.stack.display()))?;
    let docker = Docker::new("docker", DOCKER_TIMEOUT);
    let progress = move |line: &str| printer.err(&format!("  image: {line}\n"));
    let agent = ImageRecipe::agent(script);
    let agent_recipe_tag = agent
        .ensure_through_cache(&docker, &progress)
        .await
        .context("building the Hermes Agent image")?;
    let agent_tag = format!(
        "hermes-agent:{}",
        image.tag.as_deref().unwrap_or(&image.hermes_version)
    );
    docker
        .run(["tag", agent_recipe_tag.as_str(), agent_tag.as_str()])
        .await
        .with_context(|| format!("tagging {agent_recipe_tag} as {agent_tag}"))?;
    let agent_id = docker
        .run([
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            agent_tag.as_str(),
        ])
        .await?
        .trim()
        .to_owned();
    let egress_tag = ImageRecipe::egress_proxy()
        .ensure_through_cache(&docker, &progress)
        .await
        .context("building the egress proxy image")?;
    let built = Built {
        agent_tag,
        agent_recipe_tag,
        agent_id,
        egress_tag,
    };
    print(&built, &image.hermes_version, output, printer)?;
    Ok(Outcome::Done)
}

fn print(
    built: &Built,
    version: &str,
    output: OutputFormat,
    printer: Printer,
) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => printer.json(&json!({
            "agent": {
                "tag": built.agent_tag,
                "recipe-tag": built.agent_recipe_tag,
                "id": built.agent_id,
                "hermes-version": version,
            },
            "egress-proxy": { "tag": built.egress_tag },
        })),
        OutputFormat::Text => {
            printer.out(&format!(
                "Hermes Agent {version}: {} ({})\n  id {}\negress proxy: {}\n",
                built.agent_tag, built.agent_recipe_tag, built.agent_id, built.egress_tag
            ));
            Ok(())
        }
    }
}
