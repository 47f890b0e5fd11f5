//! From a loaded stack to the resources it wants: cloud objects, hosts, host setup, proxies and
//! agents, with the attributes the planner compares and the dependencies the engine orders by.
//! Secrets appear only as references.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use hermes_core::resource::{FRESH_HOST_SSH_PORT, VM_FORWARD_ATTR};
use hermes_core::{Address, Kind, Resource};
use hermes_stack::LoadedStack;
use hermes_stack::wire::{Agent, HostKind, Model, Provider, Registry, StackFile};

use crate::model::Desired;

/// The ports a local VM forwards: the fresh port sshd starts on and the stack's SSH port.
fn vm_forward_ports(file: &StackFile) -> String {
    let mut ports = vec![FRESH_HOST_SSH_PORT, file.ssh.port];
    ports.sort_unstable();
    ports.dedup();
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The resources `stack` wants.
pub fn desired(stack: &LoadedStack) -> Desired {
    let file = &stack.file;
    let mut out = Vec::new();
    cloud_objects(stack, &mut out);
    for host in &stack.hosts {
        let host_addr = Address::new(Kind::Host, &host.name);
        let mut r = Resource::new(host_addr.clone()).fixed_attr("provider", file.provider.name());
        // A local host is a container: nothing about it changes in place (not even its labels),
        // so every attribute is fixed and any change is a new container.
        let local = matches!(file.provider, Provider::Local(_));
        r = if local {
            r.fixed_attr("role", host.role.as_str())
        } else {
            r.attr("role", host.role.as_str())
        };
        r = match &file.provider {
            Provider::Local(_) => {
                let kind = host.kind.unwrap_or_default();
                let r = r
                    .fixed_attr("size", host.size.as_str())
                    .fixed_attr("kind", json!(kind));
                if kind == HostKind::Vm {
                    r.fixed_attr(VM_FORWARD_ATTR, vm_forward_ports(file))
                } else {
                    r
                }
            }
            // Clouds resize in place (with a reboot); the image and location are for life.
            Provider::Hetzner(h) => r
                .attr("size", host.size.as_str())
                .fixed_attr("location", host.location.clone().unwrap_or_default())
                .fixed_attr("image", h.image.as_str()),
            Provider::Aws(a) => r
                .attr("size", host.size.as_str())
                .fixed_attr(
                    "image",
                    a.ami
                        .clone()
                        .or_else(|| a.image_name.clone())
                        .unwrap_or_default(),
                )
                .fixed_attr("subnet", a.subnet_id.clone().unwrap_or_default()),
        };
        if !host.labels.is_empty() {
            r = if local {
                r.fixed_attr("labels", json!(host.labels))
            } else {
                r.attr("labels", json!(host.labels))
            };
        }
        for dep in out
            .iter()
            .filter(|d: &&Resource| d.address.kind.layer() == 0)
        {
            r.depends_on.push(dep.address.clone());
        }
        out.push(r);

        let hardening_addr = Address::new(Kind::HostHardening, &host.name);
        out.push(hardening(file, host_addr.clone(), hardening_addr.clone()));
        let docker_addr = Address::new(Kind::DockerEngine, &host.name);
        out.push(
            Resource::new(docker_addr.clone())
                .attr("source", "debian")
                .attr(
                    "templates",
                    hermes_render::templates_digest(hermes_render::Phase::DockerEngine),
                )
                .after(hardening_addr),
        );

        let agents: Vec<(&str, &Agent)> = file
            .agents
            .iter()
            .filter(|(_, a)| a.host == host.name)
            .map(|(n, a)| (n.as_str(), a))
            .collect();
        let proxied: Vec<Value> = agents
            .iter()
            .filter_map(|(n, a)| {
                a.hostname
                    .as_ref()
                    .map(|h| json!({"agent": n, "hostname": h}))
            })
            .collect();
        let proxy_addr = Address::new(Kind::ReverseProxy, &host.name);
        let has_proxy = !proxied.is_empty();
        if has_proxy {
            out.push(
                Resource::new(proxy_addr.clone())
                    .attr("tls", json!(file.proxy.tls))
                    .attr("acme-email", json!(file.proxy.acme_email))
                    .attr("acme-directory", json!(file.proxy.acme_directory))
                    .attr("acme-ca", json!(file.proxy.acme_ca))
                    .attr("listen", json!(file.proxy.listen))
                    .attr("port", file.proxy.port)
                    .attr("allow-from", json!(file.proxy.allow_from))
                    .attr("routes", Value::Array(proxied))
                    .attr(
                        "templates",
                        hermes_render::templates_digest(hermes_render::Phase::ReverseProxy),
                    )
                    .after(docker_addr.clone()),
            );
        }
        for (name, agent) in agents {
            let mut r = agent_resource(file, name, agent).after(docker_addr.clone());
            if has_proxy && agent.hostname.is_some() {
                r = r.after(proxy_addr.clone());
            }
            out.push(r);
        }
    }
    out.sort_by(|a, b| a.address.cmp(&b.address));
    Desired {
        scope: stack.scope(),
        stack_digest: stack.source_digest.clone(),
        resources: out,
    }
}

/// The operator's public keys, as written in the stack.
fn authorized_keys(file: &StackFile) -> Vec<&str> {
    file.ssh
        .authorized_keys
        .iter()
        .map(hermes_stack::values::SshPublicKey::as_str)
        .collect()
}

fn cloud_objects(stack: &LoadedStack, out: &mut Vec<Resource>) {
    let file = &stack.file;
    let name = file.name.as_str();
    let cloud = !matches!(file.provider, Provider::Local(_));
    if cloud {
        let keys = authorized_keys(file);
        out.push(
            Resource::new(Address::new(Kind::SshKey, format!("{name}-admin")))
                .fixed_attr("public-keys", json!(keys)),
        );
        let hetzner_firewall = matches!(&file.provider, Provider::Hetzner(h) if h.cloud_firewall);
        if hetzner_firewall || matches!(file.provider, Provider::Aws(_)) {
            out.push(
                Resource::new(Address::new(Kind::CloudFirewall, name))
                    .attr(
                        "ssh",
                        json!({"port": file.ssh.port, "from": file.ssh.allow_from}),
                    )
                    .attr("proxy", proxy_rule(file))
                    .attr("inbound", json!(file.hardening.inbound)),
            );
        }
    }
    if let Some(Registry::Ecr(ecr)) = &file.registry {
        out.push(
            Resource::new(Address::new(Kind::ImageRepository, &ecr.repository))
                .attr("scan-on-push", ecr.scan_on_push)
                .fixed_attr("immutable-tags", ecr.immutable_tags)
                .attr("keep-images", ecr.keep_images),
        );
    }
    if let Some(bedrock) = &file.bedrock {
        let policy = json!({
            "actions": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
            "region": bedrock.region,
            "models": bedrock.models,
        });
        if matches!(file.provider, Provider::Aws(_)) {
            out.push(
                Resource::new(Address::new(Kind::IamRole, format!("{name}-bedrock")))
                    .attr("policy", policy),
            );
        } else {
            out.push(
                Resource::new(Address::new(Kind::IamUser, format!("{name}-bedrock")))
                    .attr("policy", policy),
            );
        }
    }
}

fn proxy_rule(file: &StackFile) -> Value {
    if file.agents.values().any(|a| a.hostname.is_some()) {
        let mut rule = json!({"port": file.proxy.port, "from": file.proxy.allow_from, "listen": file.proxy.listen});
        if file.proxy.tls == hermes_stack::wire::TlsMode::Acme {
            // ACME's HTTP-01 challenges come in on port 80, from wherever the CA validates.
            rule["acme"] = json!(true);
        }
        rule
    } else {
        Value::Null
    }
}

fn hardening(file: &StackFile, host: Address, address: Address) -> Resource {
    let h = &file.hardening;
    let keys = authorized_keys(file);
    // `ssh.allow-from` is not added: an allowed network may be large (an office, a VPN, the
    // whole internet), and a source inside it that guesses passwords must still be banned.
    let ignore: Vec<String> = h.fail2ban.ignore.iter().map(ToString::to_string).collect();
    Resource::new(address)
        .attr("admin-user", file.ssh.admin_user.as_str())
        .attr("ssh-port", file.ssh.port)
        .attr("ssh-allow-from", json!(file.ssh.allow_from))
        .attr("authorized-keys", json!(keys))
        .attr(
            "fail2ban",
            json!({
                "enabled": h.fail2ban.enabled,
                "max-retry": h.fail2ban.max_retry,
                "find-time": h.fail2ban.find_time,
                "ban-time": h.fail2ban.ban_time,
                "recidive": h.fail2ban.recidive,
                "ignore": ignore,
            }),
        )
        .attr("unattended-upgrades", json!(h.unattended_upgrades))
        .attr("sysctl", json!(h.sysctl))
        .attr("inbound", json!(h.inbound))
        .attr("proxy", proxy_rule(file))
        .attr(
            "templates",
            hermes_render::templates_digest(hermes_render::Phase::HostHardening),
        )
        .after(host)
}

/// Hosts an agent must reach: its models' endpoints, its messaging services, and what the stack
/// lists. Sorted and without repeats.
fn egress(agent: &Agent) -> Vec<String> {
    let mut hosts: BTreeSet<String> = agent.egress.allow.iter().map(ToString::to_string).collect();
    for model in std::iter::once(&agent.model).chain(agent.fallback_model.as_ref()) {
        hosts.extend(model_host(model));
    }
    if agent.messaging.telegram.is_some() {
        hosts.insert("api.telegram.org".to_owned());
    }
    if agent.messaging.slack.is_some() {
        hosts.extend(["slack.com".to_owned(), "wss-primary.slack.com".to_owned()]);
    }
    if agent.messaging.discord.is_some() {
        hosts.extend(["discord.com".to_owned(), "gateway.discord.gg".to_owned()]);
    }
    hosts.into_iter().collect()
}

fn model_host(model: &Model) -> Option<String> {
    match &model.base_url {
        Some(url) => Some(url.host().to_owned()),
        None => model.provider.default_host().map(str::to_owned),
    }
}

fn model_attr(model: &Model) -> Value {
    json!({
        "provider": model.provider,
        "model": model.model,
        "base-url": model.base_url,
        "api-key": model.api_key,
    })
}

fn image(file: &StackFile, agent: &Agent) -> String {
    if let Some(image) = &agent.image {
        return image.to_string();
    }
    if let Some(upstream) = &file.image.upstream {
        return upstream.to_string();
    }
    let tag = file
        .image
        .tag
        .clone()
        .unwrap_or_else(|| file.image.hermes_version.clone());
    // With a registry, hosts pull the image from it; without, this machine's tag goes to them.
    let repository = match &file.registry {
        Some(Registry::Generic(generic)) => generic.agent_repository(),
        _ => "hermes-agent".to_owned(),
    };
    match &file.image.digest {
        Some(digest) => format!("{repository}:{tag}@{digest}"),
        None => format!("{repository}:{tag}"),
    }
}

fn agent_resource(file: &StackFile, name: &str, agent: &Agent) -> Resource {
    let r = Resource::new(Address::new(Kind::Agent, name))
        // An agent's data lives on its host; moving it to another host starts it afresh there.
        .fixed_attr("host", agent.host.as_str())
        .attr("image", image(file, agent))
        .attr("model", model_attr(&agent.model))
        .attr("limits", json!(agent.limits))
        .attr("egress", json!(egress(agent)))
        .attr(
            "dashboard",
            json!({"enabled": agent.dashboard.enabled, "expose": agent.dashboard.expose}),
        );
    // Every attribute is always written (null or empty when unset): the host records the
    // attributes it applied, so a setting added later shows as a change.
    r.attr(
        "fallback-model",
        agent
            .fallback_model
            .as_ref()
            .map_or(Value::Null, model_attr),
    )
    .attr("hostname", json!(agent.hostname))
    .attr("messaging", json!(agent.messaging))
    .attr("env", json!(agent.env))
    .attr("secrets", json!(agent.secrets))
}
