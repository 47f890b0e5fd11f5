//! `hermes-infra image build`: builds the stack's Hermes Agent image on this machine's Docker
//! engine from Debian packages and PyPI (`templates/agent-image/`), and the egress proxy image
//! every agent gets; tags the agent image `hermes-agent:<image.tag or hermes-version>`.
//!
//! `hermes-infra image push`: without a registry, sends every host that runs agents the images
//! they run (as the plan names them: the built tag, a digest pin, an upstream image) and the
//! egress proxy's, from this machine's engine over the run's SSH connections: each host is asked
//! first (one round trip), an image is compressed once and only when some host lacks it, and a
//! host that has it gets nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::json;

use hermes_core::seams::SecretSource as _;
use hermes_core::{Address, Kind, ObservedResource};
use hermes_provider_local::Docker;
use hermes_provider_local::image::ImageRecipe;
use hermes_provider_ssh::{HostImage, ImageSource as _};
use hermes_stack::LoadedStack;
use hermes_stack::wire::{GenericRegistry, Image, Registry};

use crate::Outcome;
use crate::cli::{OutputFormat, StackArgs};
use crate::local_images::LocalImages;
use crate::output::Printer;
use crate::registry_push::RegistrySession;
use crate::wiring;

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
    if let Some(upstream) = &stack.file.image.upstream {
        bail!(
            "{}: `image.upstream` names `{upstream}`, so there is nothing to build; remove it \
             to build Hermes Agent {} from PyPI",
            args.stack.display(),
            stack.file.image.hermes_version
        );
    }
    let built = ensure_built(&stack, printer).await?;
    print(&built, &stack.file.image.hermes_version, output, printer)?;
    Ok(Outcome::Done)
}

/// Builds the stack's agent image and the egress proxy image where this machine's engine does
/// not have them yet (each is cached by recipe), and tags the agent image.
async fn ensure_built(stack: &LoadedStack, printer: Printer) -> anyhow::Result<Built> {
    let image = &stack.file.image;
    let script = hermes_render::agent_image_install_script(&image.hermes_version)
        .with_context(|| format!("{}: `image.hermes-version`", stack.path.display()))?;
    let docker = Docker::new("docker", DOCKER_TIMEOUT);
    let progress = move |line: &str| printer.err(&format!("  image: {line}\n"));
    let agent = ImageRecipe::agent(script);
    let agent_recipe_tag = agent
        .ensure_through_cache(&docker, &progress)
        .await
        .context("building the Hermes Agent image")?;
    let agent_tag = agent_tag(image);
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
    Ok(Built {
        agent_tag,
        agent_recipe_tag,
        agent_id,
        egress_tag,
    })
}

/// Before an apply that deploys agents from the image the stack builds: the images this
/// machine sends to the hosts that lack them (built once, then cached).
pub(crate) async fn before_apply(
    stack: &LoadedStack,
    plan: &hermes_plan::Plan,
    printer: Printer,
) -> anyhow::Result<()> {
    let deploys = plan
        .changes
        .iter()
        .any(|c| c.address.kind == Kind::Agent && c.action != hermes_plan::Action::Delete);
    if deploys && stack.file.image.upstream.is_none() {
        ensure_built(stack, printer).await?;
        // With a registry, hosts pull: what they pull must be there first.
        if let Some(Registry::Generic(registry)) = &stack.file.registry {
            to_registry(stack, registry, printer).await?;
        }
    }
    Ok(())
}

/// One image pushed to a registry.
#[derive(Debug, Serialize)]
struct Pushed {
    /// This machine's tag.
    local: String,
    /// Where it went (`server/repository:tag`).
    reference: String,
    /// The registry's digest of it: what `[image] digest` pins.
    digest: String,
}

/// Pushes the stack's built agent image and the egress proxy image to `registry`.
async fn to_registry(
    stack: &LoadedStack,
    registry: &GenericRegistry,
    printer: Printer,
) -> anyhow::Result<Vec<Pushed>> {
    let built = ensure_built(stack, printer).await?;
    let password = match &registry.password {
        Some(reference) => Some(
            wiring::secrets(stack)
                .resolve(reference)
                .await
                .with_context(|| format!("the password of registry `{}`", registry.server))?,
        ),
        None => None,
    };
    let login = registry.username.as_deref().zip(password.as_ref());
    let session = RegistrySession::open(&registry.server, login).await?;
    let targets = [
        (
            built.agent_tag.clone(),
            GenericRegistry::reference(&registry.agent_repository(), &built.agent_tag),
        ),
        (
            built.egress_tag.clone(),
            GenericRegistry::reference(&registry.egress_repository(), &built.egress_tag),
        ),
    ];
    let mut pushed = Vec::new();
    for (local, reference) in targets {
        let started = Instant::now();
        let digest = session
            .push(&local, &reference)
            .await
            .with_context(|| format!("pushing {local} to registry `{}`", registry.server))?;
        printer.err(&format!(
            "  image: {local} pushed as {reference}@{digest} in {:.1}s\n",
            started.elapsed().as_secs_f64()
        ));
        pushed.push(Pushed {
            local,
            reference,
            digest,
        });
    }
    Ok(pushed)
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

/// The tag the built agent image carries, and the planner deploys.
fn agent_tag(image: &Image) -> String {
    format!(
        "hermes-agent:{}",
        image.tag.as_deref().unwrap_or(&image.hermes_version)
    )
}

/// One host after a push.
#[derive(Debug, Serialize)]
struct HostPush {
    images: Vec<HostImage>,
    seconds: f64,
}

pub(crate) async fn push(
    args: &StackArgs,
    output: OutputFormat,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let (loaded, wired) = wiring::load(args, printer).await?;
    let stack = args.stack.display().to_string();
    match &loaded.file.registry {
        Some(Registry::Generic(registry)) => {
            let pushed = to_registry(&loaded, registry, printer).await?;
            match output {
                OutputFormat::Json => printer.json(&json!({
                    "scope": loaded.scope(),
                    "registry": registry.server,
                    "images": pushed,
                }))?,
                OutputFormat::Text => {
                    let mut text = String::new();
                    for image in &pushed {
                        let _ = writeln!(
                            text,
                            "{} -> {}@{}",
                            image.local, image.reference, image.digest
                        );
                    }
                    printer.out(&text);
                }
            }
            return Ok(Outcome::Done);
        }
        Some(Registry::Ecr(_)) => bail!(
            "{stack}: pushing to ECR comes with the AWS provider and is not built yet; a \
             `[registry.generic]` or no registry (images over SSH) works"
        ),
        None => {}
    }
    // Each host gets the images its agents run (as the plan names them: the built tag, a
    // digest pin, an upstream image, an agent's own) and the egress proxy's.
    let egress = ImageRecipe::egress_proxy().tag();
    let mut per_host: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for agent in hermes_plan::desired(&loaded)
        .resources
        .iter()
        .filter(|r| r.address.kind == Kind::Agent)
    {
        let attr = |key: &str| {
            agent
                .attrs
                .get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let (Some(host), Some(image)) = (attr("host"), attr("image")) else {
            continue;
        };
        let references = per_host.entry(host).or_default();
        for reference in [image, egress.clone()] {
            if !references.contains(&reference) {
                references.push(reference);
            }
        }
    }
    let source = Arc::new(LocalImages::new(printer));
    let unique: BTreeSet<&String> = per_host.values().flatten().collect();
    for reference in unique {
        source.id(reference).await.with_context(|| {
            format!(
                "`image push` sends what `hermes-infra image build {stack}` made, or an \
                 upstream image pulled or loaded on this machine"
            )
        })?;
    }
    let ssh = wired
        .hosts
        .clone()
        .context("this stack's provider cannot reach its hosts over SSH in this build")?;
    let scope = loaded.scope();
    let world: Arc<BTreeMap<Address, ObservedResource>> = Arc::new(
        wired
            .observe_hosts(&scope)
            .await?
            .into_iter()
            .map(|o| (o.address.clone(), o))
            .collect(),
    );
    for host in per_host.keys() {
        let state = world
            .get(&Address::new(Kind::Host, host))
            .and_then(|o| o.attrs.get("state"))
            .and_then(|v| v.as_str());
        if state != Some("running") {
            bail!(
                "host `{host}` runs agents but is {}; apply the stack first",
                state.unwrap_or("not created")
            );
        }
    }
    // Hosts in parallel; each image is compressed once, for the first host that lacks it.
    let mut tasks = tokio::task::JoinSet::new();
    for (host, references) in per_host {
        let (ssh, world, source) = (ssh.clone(), Arc::clone(&world), Arc::clone(&source));
        tasks.spawn(async move {
            let started = Instant::now();
            let images = ssh
                .ensure_images(&host, &world, source.as_ref(), &references)
                .await
                .with_context(|| format!("sending the images to host `{host}`"))?;
            let report = HostPush {
                images,
                seconds: started.elapsed().as_secs_f64(),
            };
            anyhow::Ok((host, report))
        });
    }
    let mut hosts = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (host, report) = done.context("an image transfer stopped unexpectedly")??;
        hosts.insert(host, report);
    }
    match output {
        OutputFormat::Json => printer.json(&json!({ "scope": scope, "hosts": hosts }))?,
        OutputFormat::Text => {
            let mut text = format!("{scope}: images on {} host(s)\n", hosts.len());
            for (host, report) in &hosts {
                for image in &report.images {
                    let _ = match &image.sent {
                        Some(sent) => writeln!(
                            text,
                            "  {host}: {} sent ({} bytes in {} chunks)",
                            image.reference, sent.bytes, sent.chunks
                        ),
                        None => writeln!(text, "  {host}: {} already there", image.reference),
                    };
                }
            }
            printer.out(&text);
        }
    }
    Ok(Outcome::Done)
}
