//! `hermes-infra audit STACK`: the outside auditors' figures for every running host of the
//! stack. On the host, as root over the run's pinned SSH connection: Lynis (Debian's package,
//! installed if missing; on container hosts with the one `hermes-compare` profile that skips the
//! tests only the kernel's owner can pass, on hosts that own their kernel with Lynis' default
//! profile alone), fail2ban's jails, non-loopback listeners, pending security updates, and the
//! CIS Docker Benchmark's section 5 on every running agent container, and the tenant boundary
//! ([`tenancy`]: each agent's UID and data, probes from inside each agent to the host and its
//! neighbours, the reverse proxy's TLS settings). From this machine:
//! ssh-audit against the host's SSH port.
//!
//! Figures are figures, not a verdict: the exit code is 0 when every host could be audited, 1
//! when a step failed somewhere (each error names the host and the step).

mod parse;
mod report;
mod scripts;
mod ssh_audit;
mod tenancy;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use hermes_core::{Address, Kind, ObservedResource};
use hermes_provider_ssh::SshHostProvider;

use crate::Outcome;
use crate::cli::{OutputFormat, StackArgs};
use crate::output::Printer;
use crate::wiring;

use report::{HostAudit, Lynis};

type World = BTreeMap<Address, ObservedResource>;

pub(crate) async fn run(
    args: &StackArgs,
    output: OutputFormat,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let (loaded, wired) = wiring::load(args, printer).await?;
    let scope = loaded.scope();
    let ssh = wired
        .hosts
        .clone()
        .context("this stack's provider cannot reach its hosts over SSH in this build")?;
    // The hosts alone: the audit reads hosts, not their setup.
    let observed = wired.observe_hosts(&scope).await?;
    let world: Arc<World> = Arc::new(
        observed
            .into_iter()
            .map(|o| (o.address.clone(), o))
            .collect(),
    );
    let mut running = Vec::new();
    for spec in &loaded.hosts {
        let found = world.get(&Address::new(Kind::Host, &spec.name));
        match found.map(|o| attr(o, "state")) {
            Some("running") => {}
            Some(state) => printer.err(&format!("host `{}` is {state}: not audited\n", spec.name)),
            None => printer.err(&format!(
                "host `{}` does not exist: not audited\n",
                spec.name
            )),
        }
    }
    for (address, found) in world.iter() {
        if address.kind == Kind::Host && attr(found, "state") == "running" {
            running.push((address.name.clone(), attr(found, "kernel").to_owned()));
        }
    }
    let tool = ssh_audit::locate();
    let mut tasks = tokio::task::JoinSet::new();
    for (host, kernel) in running {
        let (ssh, world, tool) = (ssh.clone(), Arc::clone(&world), tool.clone());
        tasks.spawn(async move {
            let audit = audit_host(&ssh, &world, &host, &kernel, tool, printer).await;
            (host, audit)
        });
    }
    let mut hosts = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (host, audit) = done.context("an audit task failed")?;
        hosts.insert(host, audit);
    }
    match output {
        OutputFormat::Json => printer.json(&json!({ "scope": scope, "hosts": hosts }))?,
        OutputFormat::Text => printer.out(&report::text(&scope.to_string(), &hosts)),
    }
    let errors: Vec<&String> = hosts.values().flat_map(|h| &h.errors).collect();
    for error in &errors {
        printer.err(&format!("error: {error}\n"));
    }
    Ok(if errors.is_empty() {
        Outcome::Done
    } else {
        Outcome::Failed
    })
}

fn attr<'a>(found: &'a ObservedResource, key: &str) -> &'a str {
    found
        .attrs
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or("unknown")
}

/// Every figure of one host; a failed step leaves its figure empty and records the error.
async fn audit_host(
    ssh: &SshHostProvider,
    world: &World,
    host: &str,
    kernel: &str,
    tool: Option<PathBuf>,
    printer: Printer,
) -> HostAudit {
    let mut audit = HostAudit::new(kernel);
    // A host on this machine's kernel (a container) cannot pass the kernel's own tests: it gets
    // the profile that skips them; a host with a kernel of its own is judged in full.
    let profile = if kernel == "shared" {
        scripts::LynisProfile::Compare
    } else {
        scripts::LynisProfile::Default
    };
    let from_here = async {
        let tool = tool.ok_or_else(ssh_audit::missing)?;
        let endpoint = ssh.endpoint(host, world).map_err(|e| e.to_string())?;
        ssh_audit::run(&tool, &endpoint.address, endpoint.port).await
    };
    let on_host = async {
        let fail2ban = remote(ssh, world, host, "fail2ban", &scripts::fail2ban())
            .await
            .and_then(|out| parse::fail2ban(&out));
        let listeners = remote(ssh, world, host, "listeners", &scripts::listeners())
            .await
            .map(|out| parse::listeners(&out));
        let updates = remote(
            ssh,
            world,
            host,
            "security-updates",
            &scripts::security_updates(),
        )
        .await
        .and_then(|out| parse::security_updates(&out));
        printer.err(&format!(
            "  audit {host}: running Lynis (about 2 minutes on a container host, 15 or more on \
             an emulated VM)\n"
        ));
        let agents = remote(ssh, world, host, "agents", &scripts::agent_containers())
            .await
            .and_then(|out| parse::agent_containers(&out));
        let tenancy = remote(ssh, world, host, "tenancy", &scripts::tenancy())
            .await
            .map(|out| tenancy::parse(&out));
        let lynis = remote(ssh, world, host, "lynis", &scripts::lynis(profile))
            .await
            .and_then(|out| parse::lynis(&out));
        (fail2ban, listeners, updates, agents, tenancy, lynis)
    };
    let (ssh_audit, (fail2ban, listeners, updates, agents, tenancy, lynis)) =
        tokio::join!(from_here, on_host);
    audit.ssh_audit = audit.keep(host, "ssh-audit", ssh_audit);
    audit.fail2ban = audit.keep(host, "fail2ban", fail2ban);
    audit.listeners = audit.keep(host, "listeners", listeners);
    audit.pending_security_updates = audit.keep(host, "security-updates", updates);
    audit.agents = audit.keep(host, "agents", agents);
    audit.tenancy = audit.keep(host, "tenancy", tenancy);
    audit.lynis = audit.keep(host, "lynis", lynis).map(|run| Lynis {
        profile: profile.name(),
        run,
    });
    printer.err(&format!("  audit {host}: done\n"));
    audit
}

/// Runs `script` as root on `host`; its standard output, or an error naming host and step.
async fn remote(
    ssh: &SshHostProvider,
    world: &World,
    host: &str,
    step: &str,
    script: &str,
) -> Result<String, String> {
    let output = ssh
        .run_as_root(host, world, step, script)
        .await
        .map_err(|e| {
            let message = e.to_string();
            if message.starts_with("host `") {
                message
            } else {
                format!("host `{host}`, step `{step}`: {message}")
            }
        })?;
    if output.status != 0 {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        return Err(format!(
            "host `{host}`, step `{step}`: exited with {}: {}",
            output.status,
            message[message.len().saturating_sub(6)..].join(" | ")
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
