//! Applying one phase on one host: render, ship, run, and for sshd or firewall changes the
//! fresh-login test that confirms or reverts them.

use std::collections::BTreeMap;

use serde::Deserialize;

use hermes_core::resource::SSH_PORT_ATTR;
use hermes_core::seams::{HostEndpoint, ProviderError, Remote as _, StepContext};
use hermes_core::{ObservedResource, Resource, Secret, SecretRef};
use hermes_render::{
    HardeningSpec, Phase, ProxySpec, Rendered, docker_files, hardening_files, proxy_files,
};

use crate::manifest::{Manifest, fail2ban_enabled};
use crate::scripts::{self, as_root, with_settings};
use crate::{Inner, phase_of};

/// What the phase script reports.
#[derive(Debug, Deserialize)]
struct PhaseOutcome {
    changed: Vec<String>,
    /// sshd or the firewall changed: test a fresh login, then confirm or revert.
    confirm: bool,
}

/// The last lines of a script's standard error, for messages.
pub(crate) fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(12);
    let tail = lines[start..].join("\n");
    if tail.is_empty() {
        "no message".to_owned()
    } else {
        tail
    }
}

fn render(
    inner: &Inner,
    phase: Phase,
    desired: &Resource,
    facts: &hermes_render::HostFacts,
    acme_ca: Option<&str>,
) -> Result<Rendered, hermes_render::RenderError> {
    match phase {
        Phase::HostHardening => hardening_files(
            &HardeningSpec::from_attrs(&desired.attrs)?,
            facts,
            &inner.settings.extra_keys,
        ),
        Phase::DockerEngine => docker_files(facts),
        Phase::ReverseProxy => proxy_files(&ProxySpec::from_attrs(&desired.attrs)?, acme_ca),
    }
}

/// The reverse proxy's extra packages (certbot with ACME) and the PEM text of the CA of a
/// private ACME directory, resolved from its reference.
async fn proxy_needs(
    phase: Phase,
    desired: &Resource,
    ctx: &StepContext,
) -> Result<(Vec<&'static str>, Option<Secret>), String> {
    if phase != Phase::ReverseProxy {
        return Ok((Vec::new(), None));
    }
    let spec = ProxySpec::from_attrs(&desired.attrs).map_err(|e| e.to_string())?;
    let ca = match &spec.acme_ca {
        Some(reference) if spec.acme() => {
            let parsed: SecretRef = reference
                .parse()
                .map_err(|e| format!("`proxy.acme-ca`: {e}"))?;
            Some(
                ctx.secrets
                    .resolve(&parsed)
                    .await
                    .map_err(|e| format!("`proxy.acme-ca`: {e}"))?,
            )
        }
        _ => None,
    };
    Ok((spec.extra_packages().to_vec(), ca))
}

/// Makes the phase of `desired` true on its host; returns it as now observed.
pub(crate) async fn phase(
    inner: &Inner,
    desired: &Resource,
    ctx: &StepContext,
) -> Result<ObservedResource, ProviderError> {
    let host = desired.address.name.as_str();
    let phase = phase_of(desired.address.kind).ok_or_else(|| {
        ProviderError::Other(format!(
            "`{}` is not a host-level resource",
            desired.address
        ))
    })?;
    let step = phase.as_str();
    let fail =
        |message: String| ProviderError::Other(format!("host `{host}`, step `{step}`: {message}"));

    let remote = inner.remote(host, &ctx.world).await?;
    let facts = inner.facts(host, &ctx.world).await?;
    let (extra_packages, acme_ca) = proxy_needs(phase, desired, ctx).await.map_err(fail)?;
    let rendered = render(
        inner,
        phase,
        desired,
        &facts.host_facts(),
        acme_ca.as_ref().map(Secret::expose),
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut spec = desired.attrs.clone();
    spec.insert(
        "templates".to_owned(),
        hermes_render::templates_digest(phase).into(),
    );
    let manifest = Manifest {
        v: 1,
        phase: step.to_owned(),
        spec: spec.clone(),
        files: rendered
            .files
            .iter()
            .map(|f| (f.path.clone(), f.digest()))
            .collect::<BTreeMap<_, _>>(),
        not_applicable: rendered.not_applicable.clone(),
    };
    let payload = crate::payload::build(&rendered, &manifest)
        .map_err(|e| fail(format!("cannot build the file bundle: {e}")))?;

    let audit = [
        ("PHASE", step.to_owned()),
        ("AUDIT_WHO", scripts::audit_who(&ctx.actor)),
        ("AUDIT_PLAN", ctx.plan_hash.clone()),
    ];
    let hardening = phase == Phase::HostHardening;
    // Where sshd listens once this phase is done: host-hardening moves it to the stack's port.
    let ssh_port = if hardening {
        desired
            .attrs
            .get(SSH_PORT_ATTR)
            .and_then(serde_json::Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(inner.settings.port)
    } else {
        inner.port(host)
    };
    let ensure = match phase {
        Phase::HostHardening if fail2ban_enabled(&desired.attrs) => "ssh fail2ban",
        Phase::HostHardening => "ssh",
        Phase::DockerEngine => "docker",
        Phase::ReverseProxy => "nginx",
    };
    let mut settings: Vec<(&str, String)> = audit.to_vec();
    settings.extend([
        (
            "PACKAGES",
            phase
                .packages()
                .iter()
                .chain(&extra_packages)
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (
            "REVERT_AFTER",
            format!("{}s", inner.settings.revert_after.as_secs().max(30)),
        ),
        ("ADMIN_USER", inner.settings.admin_user.clone()),
        (
            "ADMIN_GROUP",
            if hardening {
                hermes_render::ADMIN_GROUP
            } else {
                ""
            }
            .to_owned(),
        ),
        ("ENSURE_RUNNING", ensure.to_owned()),
        ("SSH_PORT", ssh_port.to_string()),
        (
            "ENSURE_FIREWALL",
            if hardening { "yes" } else { "no" }.to_owned(),
        ),
    ]);
    let script = as_root(&with_settings(&settings, scripts::PHASE));
    let output = match remote.run(step, &script, &payload).await {
        Ok(output) => output,
        Err(e) => {
            inner.drop_remote(host).await;
            return Err(ProviderError::Transient(e.to_string()));
        }
    };
    if output.status != 0 {
        return Err(fail(tail(&output.stderr)));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let outcome: PhaseOutcome = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            fail(format!(
                "the phase script did not report its outcome: {}",
                tail(&output.stdout)
            ))
        })?;

    if outcome.confirm {
        // The fresh login goes where sshd listens now: the new port when this change moved it.
        let endpoint = HostEndpoint {
            port: ssh_port,
            ..inner.endpoint(host, &ctx.world)?
        };
        let login = async {
            let fresh = inner.connector.open(&endpoint).await?;
            fresh.run("login-test", "sudo -n true", &[]).await
        }
        .await;
        let login = match login {
            Ok(out) if out.status == 0 => Ok(()),
            Ok(out) => Err(format!(
                "the fresh login could not use sudo: {}",
                tail(&out.stderr)
            )),
            Err(e) => Err(e.message),
        };
        let audit_script = with_settings(
            &audit,
            if login.is_ok() {
                scripts::CONFIRM
            } else {
                scripts::REVERT
            },
        );
        let finished = remote.run(step, &as_root(&audit_script), &[]).await;
        match (login, finished) {
            (Ok(()), Ok(out)) if out.status == 0 => inner.moved(host, ssh_port),
            (Ok(()), Ok(out)) => {
                return Err(fail(format!(
                    "the change works but could not be confirmed; the host will revert it within {}s: {}",
                    inner.settings.revert_after.as_secs(),
                    tail(&out.stderr)
                )));
            }
            (Ok(()) | Err(_), Err(e)) => {
                inner.drop_remote(host).await;
                return Err(fail(format!(
                    "the connection was lost while confirming the SSH/firewall change ({}); the host \
                     reverts it by itself within {}s unless it was confirmed",
                    e.message,
                    inner.settings.revert_after.as_secs()
                )));
            }
            (Err(why), Ok(_)) => {
                let source = facts.admin_source.clone();
                return Err(fail(format!(
                    "the new SSH/firewall configuration refused a fresh login ({why}); it was \
                     reverted and the host is reachable as before. This machine connects from \
                     {source}: check `ssh.allow-from`, `ssh.port` and the admin keys"
                )));
            }
        }
    }
    inner.report(host, |r| {
        if !outcome.changed.is_empty() {
            r.changed.insert(step.to_owned(), outcome.changed.clone());
        }
        if !rendered.not_applicable.is_empty() {
            r.not_applicable
                .insert(step.to_owned(), rendered.not_applicable.clone());
        }
    });
    let mut observed = ObservedResource::new(desired.address.clone(), host.to_owned());
    observed.attrs = spec;
    Ok(observed)
}
