//! Agents on their hosts: one gateway container per agent with its data directory, 0600 `.env`,
//! internal network and egress proxy, applied by one script over the run's connection
//! (`assets/agent.sh`), health-gated, and removed (its data kept) when it leaves the stack.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use hermes_core::resource::IMAGE_ID_ATTR;
use hermes_core::seams::{ProviderError, Remote as _, StepContext};
use hermes_core::{Attrs, ObservedResource, Resource, Secret, SecretRef};
use hermes_render::{AgentSpec, EGRESS_PROXY_PORT, Placement};

use crate::Inner;
use crate::apply::tail;
use crate::scripts::{self, as_root, with_settings};

/// The word in an agent's `docker run` arguments that the host replaces with the id its image
/// tag names there, so that containers run pinned to an image id (CIS Docker 5.28).
pub(crate) const IMAGE_PLACEHOLDER: &str = "@HERMES_INFRA_IMAGE_ID@";
/// The word in an agent's `docker run` arguments that the host replaces with the agent's own
/// `UID:GID`, allocated there on its first deploy (`assets/agent-files.sh`).
pub(crate) const USER_PLACEHOLDER: &str = "@HERMES_INFRA_AGENT_USER@";
/// How long a new gateway may take to report healthy, in a scratch home and on its data.
const HEALTHY_WITHIN_SECONDS: u32 = 180;
/// Where agents' manifests live on their host.
pub(crate) const MANIFESTS: &str = "/etc/hermes-infra/agents";

/// What an agent's apply left on its host (`/etc/hermes-infra/agents/<agent>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AgentManifest {
    /// Format version.
    pub(crate) v: u32,
    /// The agent.
    pub(crate) agent: String,
    /// The desired attributes applied (secret references only).
    pub(crate) spec: Attrs,
}

/// The names an agent's objects carry on its host.
pub(crate) struct Names {
    pub(crate) container: String,
    pub(crate) preflight: String,
    pub(crate) network: String,
    pub(crate) data: String,
    pub(crate) preflight_data: String,
}

impl Names {
    pub(crate) fn of(agent: &str) -> Self {
        Self {
            container: format!("hermes-agent-{agent}"),
            preflight: format!("hermes-agent-{agent}-preflight"),
            network: format!("hermes-net-{agent}"),
            data: format!("/srv/hermes/{agent}/data"),
            preflight_data: format!("/var/lib/hermes-infra/preflight/{agent}/data"),
        }
    }
}

fn fail(agent: &str, host: &str, message: impl std::fmt::Display) -> ProviderError {
    ProviderError::Other(format!("agent `{agent}` on host `{host}`: {message}"))
}

/// Every secret the agent needs, resolved, by `.env` variable.
async fn resolve_secrets(
    agent: &str,
    host: &str,
    spec: &AgentSpec,
    ctx: &StepContext,
) -> Result<BTreeMap<String, Secret>, ProviderError> {
    let mut values = BTreeMap::new();
    for (var, reference) in spec.secret_refs() {
        let parsed: SecretRef = reference
            .parse()
            .map_err(|e| fail(agent, host, format!("`{var}`: {e}")))?;
        let value = ctx
            .secrets
            .resolve(&parsed)
            .await
            .map_err(|e| fail(agent, host, e))?;
        values.insert(var, value);
    }
    Ok(values)
}

fn lines(args: &[String]) -> Result<String, String> {
    let mut text = String::new();
    for arg in args {
        if arg.contains(['\n', '\r', '\0']) {
            return Err(format!(
                "a container argument holds a line break ({}); remove it from the stack",
                arg.split(['\n', '\r']).next().unwrap_or_default()
            ));
        }
        let _ = writeln!(text, "{arg}");
    }
    Ok(text)
}

/// What the agent script reports.
#[derive(Debug, Deserialize)]
struct AgentOutcome {
    changed: Vec<String>,
    /// The id of the image the agent's container runs now.
    image: String,
}

/// Makes agent `desired` true on its host; returns it as now observed.
pub(crate) async fn apply(
    inner: &Inner,
    desired: &Resource,
    ctx: &StepContext,
) -> Result<ObservedResource, ProviderError> {
    let agent = desired.address.name.as_str();
    let spec = AgentSpec::from_attrs(agent, &desired.attrs)
        .map_err(|e| ProviderError::Other(e.to_string()))?;
    let host = spec.host.as_str();
    let secrets = resolve_secrets(agent, host, &spec, ctx).await?;
    let config = hermes_render::agent_config(agent, &spec).map_err(|e| fail(agent, host, e))?;
    let env =
        hermes_render::agent_env_file(agent, &spec, &secrets).map_err(|e| fail(agent, host, e))?;
    // The trial run in a scratch home gets no messaging bridge: a second poller of the same
    // bot beside the running agent would make both fail (one poller per bot token).
    let trial = AgentSpec {
        messaging: hermes_render::MessagingSpec::default(),
        ..spec.clone()
    };
    let trial_env =
        hermes_render::agent_env_file(agent, &trial, &secrets).map_err(|e| fail(agent, host, e))?;
    let egress =
        hermes_render::egress_proxy_files(agent, &spec).map_err(|e| fail(agent, host, e))?;
    let egress_health = hermes_render::egress_health_command();
    let names = Names::of(agent);
    let mut labels = hermes_core::labels::ownership(&ctx.scope, &desired.address);
    labels.insert(hermes_core::labels::ROLE.to_owned(), "agent".to_owned());
    let placement = Placement {
        container: names.container.clone(),
        image: IMAGE_PLACEHOLDER.to_owned(),
        network: names.network.clone(),
        data_dir: names.data.clone(),
        user: USER_PLACEHOLDER.to_owned(),
        egress_proxy: format!("egress:{EGRESS_PROXY_PORT}"),
        labels: labels.clone(),
    };
    let run_args = hermes_render::agent_run_args(&spec, &placement);
    let mut preflight_labels = labels.clone();
    preflight_labels.insert(hermes_core::labels::ROLE.to_owned(), "preflight".to_owned());
    let preflight_args = hermes_render::agent_run_args(
        &spec,
        &Placement {
            container: names.preflight.clone(),
            data_dir: names.preflight_data.clone(),
            labels: preflight_labels,
            ..placement
        },
    );
    // The agent's network and egress proxy: its ownership, with a role of their own (the
    // agent role marks gateway containers only: facts and audit look for it).
    let mut proxy_labels = labels.clone();
    proxy_labels.insert(
        hermes_core::labels::ROLE.to_owned(),
        "egress-proxy".to_owned(),
    );
    let label_lines: Vec<String> = proxy_labels
        .iter()
        .map(|(k, v)| format!("--label={k}={v}"))
        .collect();
    let manifest = AgentManifest {
        v: 1,
        agent: agent.to_owned(),
        spec: desired.attrs.clone(),
    };
    let manifest =
        serde_json::to_vec_pretty(&manifest).map_err(|e| fail(agent, host, e.to_string()))?;
    let run_text = lines(&run_args).map_err(|e| fail(agent, host, e))?;
    let preflight_text = lines(&preflight_args).map_err(|e| fail(agent, host, e))?;
    let label_text = lines(&label_lines).map_err(|e| fail(agent, host, e))?;
    let payload = crate::payload::of_files(&[
        ("config.yaml", config.as_bytes()),
        ("env", env.expose().as_bytes()),
        ("preflight.env", trial_env.expose().as_bytes()),
        ("tinyproxy.conf", egress.config.as_bytes()),
        ("filter", egress.filter.as_bytes()),
        ("egress.health", egress_health.as_bytes()),
        ("run.args", run_text.as_bytes()),
        ("preflight.args", preflight_text.as_bytes()),
        ("labels", label_text.as_bytes()),
        ("manifest.json", &manifest),
    ])
    .map_err(|e| fail(agent, host, format!("cannot build the file bundle: {e}")))?;

    // The image by its id: pulled from the registry, or as this machine resolved it when images
    // are sent from here (a digest pin is then the image's id, and the host's tag cannot lag).
    let mut image = spec.image.clone();
    if let Some(registry) = &inner.settings.registry {
        let references = [spec.image.clone(), inner.settings.egress_image.clone()];
        let ids = inner
            .pull_images(host, &ctx.world, registry, ctx, &references)
            .await
            .map_err(|e| fail(agent, host, e))?;
        if let Some(first) = ids.first() {
            image.clone_from(first);
        }
    } else if let Some(source) = &inner.images {
        let references = [spec.image.clone(), inner.settings.egress_image.clone()];
        let ensured = inner
            .ensure_images(host, &ctx.world, source.as_ref(), &references)
            .await
            .map_err(|e| fail(agent, host, e))?;
        let sent: Vec<String> = ensured
            .iter()
            .filter(|image| image.sent.is_some())
            .map(|image| image.reference.clone())
            .collect();
        if !sent.is_empty() {
            inner.report(host, |r| {
                r.changed
                    .entry("images".to_owned())
                    .or_default()
                    .extend(sent);
            });
        }
        if let Some(first) = ensured.first() {
            image.clone_from(&first.id);
        }
    }
    let settings = [
        ("AGENT", agent.to_owned()),
        ("IMAGE", image),
        ("IMAGE_PLACEHOLDER", IMAGE_PLACEHOLDER.to_owned()),
        ("USER_PLACEHOLDER", USER_PLACEHOLDER.to_owned()),
        ("EGRESS_IMAGE", inner.settings.egress_image.clone()),
        ("AUDIT_WHO", scripts::audit_who(&ctx.actor)),
        ("AUDIT_PLAN", ctx.plan_hash.clone()),
        ("HEALTHY_WITHIN", HEALTHY_WITHIN_SECONDS.to_string()),
    ];
    let script = as_root(&with_settings(
        &settings,
        &scripts::for_agent(scripts::AGENT),
    ));
    let remote = inner.remote(host, &ctx.world).await?;
    let output = match remote
        .run(&format!("agent {agent}"), &script, &payload)
        .await
    {
        Ok(output) => output,
        Err(e) => {
            inner.drop_remote(host).await;
            return Err(ProviderError::Transient(e.to_string()));
        }
    };
    if output.status != 0 {
        return Err(fail(agent, host, tail(&output.stderr)));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let outcome: AgentOutcome = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            fail(
                agent,
                host,
                format!(
                    "the agent script did not report its outcome: {}",
                    tail(&output.stdout)
                ),
            )
        })?;
    inner.report(host, |r| {
        if !outcome.changed.is_empty() {
            r.changed
                .insert(format!("agent {agent}"), outcome.changed.clone());
        }
    });
    let mut observed = ObservedResource::new(desired.address.clone(), host.to_owned());
    observed.attrs = desired.attrs.clone();
    observed
        .attrs
        .insert(IMAGE_ID_ATTR.to_owned(), outcome.image.into());
    Ok(observed)
}

/// Removes agent `observed` from its host: its container, egress proxy, network and manifest.
/// Its data directory stays (`/srv/hermes/<agent>/data`), and the message says so.
pub(crate) async fn remove(
    inner: &Inner,
    observed: &ObservedResource,
    ctx: &StepContext,
) -> Result<(), ProviderError> {
    let agent = observed.address.name.as_str();
    let host = observed.id.as_str();
    let running = ctx
        .world
        .get(&hermes_core::Address::new(hermes_core::Kind::Host, host))
        .and_then(|o| o.attrs.get("state"))
        .and_then(serde_json::Value::as_str)
        == Some("running");
    if !running {
        tracing::debug!(agent, host, "agent forgotten with its host");
        return Ok(());
    }
    let names = Names::of(agent);
    let script = format!(
        "set -eu\n\
         docker rm -f {container} {container}-previous {preflight} hermes-egress-{agent} \
         >/dev/null 2>&1 || true\n\
         docker network rm {network} >/dev/null 2>&1 || true\n\
         rm -f {MANIFESTS}/{agent}.json {MANIFESTS}/{agent}.args\n\
         rm -rf /etc/hermes-infra/egress/{agent}\n",
        container = names.container,
        preflight = names.preflight,
        network = names.network,
    );
    let remote = inner.remote(host, &ctx.world).await?;
    let output = remote
        .run(&format!("remove agent {agent}"), &as_root(&script), &[])
        .await
        .map_err(|e| ProviderError::Transient(e.to_string()))?;
    if output.status != 0 {
        return Err(fail(agent, host, tail(&output.stderr)));
    }
    tracing::info!(
        agent,
        host,
        data = %names.data,
        "agent removed; its data directory is kept"
    );
    Ok(())
}

impl crate::SshHostProvider {
    /// Gives agent `agent` on `host` a new API key (made on the host, never shown) and
    /// restarts its gateway until it is healthy with it; the old key stops working.
    pub async fn rotate_api_key(
        &self,
        agent: &str,
        host: &str,
        world: &BTreeMap<hermes_core::Address, ObservedResource>,
        who: &hermes_core::Actor,
    ) -> Result<(), ProviderError> {
        let settings = [
            ("AGENT", agent.to_owned()),
            ("AUDIT_WHO", scripts::audit_who(who)),
        ];
        let remote = self.inner.remote(host, world).await?;
        let output = remote
            .run(
                &format!("rotate {agent}"),
                &as_root(&with_settings(
                    &settings,
                    &scripts::for_agent(scripts::ROTATE),
                )),
                &[],
            )
            .await
            .map_err(|e| ProviderError::Transient(e.to_string()))?;
        if output.status == 0 {
            Ok(())
        } else {
            Err(fail(agent, host, tail(&output.stderr)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_with_line_breaks_are_refused() {
        assert_eq!(
            lines(&["run".to_owned(), "-d".to_owned()]).ok(),
            Some("run\n-d\n".to_owned())
        );
        assert!(lines(&["--env=A=1\n--privileged".to_owned()]).is_err());
    }
}
