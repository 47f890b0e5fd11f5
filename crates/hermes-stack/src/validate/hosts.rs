//! Provider, host groups and SSH access.

use std::collections::BTreeMap;

use super::{KeyPath, Problems};
use crate::diagnostic::did_you_mean;
use crate::model::LoadedStack;
use crate::wire::{Provider, StackFile};

const HETZNER_LOCATIONS: [&str; 6] = ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"];
const LOCAL_SIZES: [&str; 3] = ["small", "medium", "large"];
const HETZNER_FAMILIES: [&str; 4] = ["cx", "cpx", "cax", "ccx"];

fn is_hetzner_type(size: &str) -> bool {
    let family = size.trim_end_matches(|c: char| c.is_ascii_digit());
    HETZNER_FAMILIES.contains(&family) && family.len() < size.len()
}

fn is_ec2_type(size: &str) -> bool {
    size.split_once('.').is_some_and(|(f, s)| {
        !f.is_empty()
            && !s.is_empty()
            && f.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    })
}

/// What other provider's size `size` looks like, as a hint.
fn looks_like(size: &str) -> Option<&'static str> {
    if is_hetzner_type(size) {
        Some("a Hetzner server type")
    } else if is_ec2_type(size) {
        Some("an EC2 instance type")
    } else if LOCAL_SIZES.contains(&size) {
        Some("a local host size")
    } else {
        None
    }
}

fn size_help(size: &str, examples: &str) -> String {
    match looks_like(size) {
        Some(kind) => format!("`{size}` is {kind}; this stack's provider takes {examples}"),
        None => format!("use {examples}"),
    }
}

pub(super) fn size_problem(provider: &Provider, size: &str) -> Option<(String, Option<String>)> {
    match provider {
        Provider::Local(_) if !LOCAL_SIZES.contains(&size) => Some((
            format!("`{size}` is not a local host size"),
            match did_you_mean(size, LOCAL_SIZES) {
                Some(m) => Some(format!("did you mean `{m}`? Sizes: small, medium, large")),
                None => Some(size_help(size, "`small`, `medium` or `large`")),
            },
        )),
        Provider::Hetzner(_) if !is_hetzner_type(size) => Some((
            format!("`{size}` is not a Hetzner server type"),
            Some(size_help(
                size,
                "a type such as `cx22`, `cpx22`, `cax21` or `ccx13`",
            )),
        )),
        Provider::Aws(_) if !is_ec2_type(size) => Some((
            format!("`{size}` is not an EC2 instance type"),
            Some(size_help(size, "a type such as `t3.medium`")),
        )),
        _ => None,
    }
}

fn hetzner_location(location: &str, path: KeyPath, p: &mut Problems) {
    if HETZNER_LOCATIONS.contains(&location) {
        return;
    }
    p.add(
        path,
        format!("`{location}` is not a Hetzner location"),
        Some(match did_you_mean(location, HETZNER_LOCATIONS) {
            Some(m) => format!(
                "did you mean `{m}`? Locations: {}",
                HETZNER_LOCATIONS.join(", ")
            ),
            None => format!("use one of: {}", HETZNER_LOCATIONS.join(", ")),
        }),
    );
}

pub(super) fn provider(file: &StackFile, p: &mut Problems) {
    let base = KeyPath::of(&["provider", file.provider.name()]);
    match &file.provider {
        Provider::Local(local) => {
            if let Some(size) = &local.size
                && let Some((m, h)) = size_problem(&file.provider, size)
            {
                p.add(base.key("size"), m, h);
            }
        }
        Provider::Hetzner(h) => {
            hetzner_location(&h.location, base.key("location"), p);
            if let Some((m, help)) = size_problem(&file.provider, &h.server_type) {
                p.add(base.key("server-type"), m, help);
            }
        }
        Provider::Aws(a) => {
            if !is_aws_region(&a.region) {
                p.add(
                    base.key("region"),
                    format!("`{}` is not an AWS region", a.region),
                    Some("use a region such as `eu-central-1`".to_owned()),
                );
            }
            if let Some((m, help)) = size_problem(&file.provider, &a.instance_type) {
                p.add(base.key("instance-type"), m, help);
            }
            aws_image(a, &base, p);
        }
    }
}

fn aws_image(a: &crate::wire::AwsProvider, base: &KeyPath, p: &mut Problems) {
    match (&a.ami, &a.image_name) {
        (None, None) => p.add(
            base.clone(),
            "the AWS provider needs an image",
            Some("add `ami = \"ami-...\"` or `image-name = \"debian-12-amd64-*\"`".to_owned()),
        ),
        (Some(_), Some(_)) => p.add(
            base.key("image-name"),
            "give `ami` or `image-name`, not both",
            Some("remove one of them".to_owned()),
        ),
        (Some(ami), None) if !ami.starts_with("ami-") => p.add(
            base.key("ami"),
            format!("`{ami}` is not an AMI id"),
            Some("AMI ids look like `ami-0123456789abcdef0`".to_owned()),
        ),
        _ => {}
    }
}

pub(super) fn is_aws_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|s| s.chars().all(|c| c.is_ascii_digit()))
}

pub(super) fn hosts(file: &StackFile, loaded: &LoadedStack, p: &mut Problems) {
    if file.hosts.is_empty() && !file.agents.is_empty() {
        p.add(
            KeyPath::of(&["agents"]),
            "agents are declared but there are no hosts to run them",
            Some("add a host: [hosts.main]".to_owned()),
        );
    }
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for host in &loaded.hosts {
        if let Some(first) = owner.insert(&host.name, &host.group) {
            p.add(
                KeyPath::of(&["hosts", &host.group]),
                format!(
                    "host name `{}` is used twice (by `hosts.{first}` and `hosts.{}`)",
                    host.name, host.group
                ),
                Some(
                    "hosts with `count = N` are named `<group>-1` ... `<group>-N`; rename one of \
                     them"
                        .to_owned(),
                ),
            );
        }
    }
    for (name, group) in &file.hosts {
        host_group(file, &KeyPath::of(&["hosts", name.as_str()]), group, p);
    }
}

fn host_group(file: &StackFile, path: &KeyPath, group: &crate::wire::HostGroup, p: &mut Problems) {
    if let Some(count) = group.count
        && !(1..=500).contains(&count)
    {
        p.add(
            path.key("count"),
            format!("count {count} is out of range"),
            Some("use 1 to 500 hosts per group (leave `count` out for a single host)".to_owned()),
        );
    }
    if let Some(size) = &group.size
        && let Some((m, h)) = size_problem(&file.provider, size)
    {
        p.add(path.key("size"), m, h);
    }
    match (&file.provider, group.kind, &group.location) {
        (Provider::Local(_), _, Some(_)) => p.add(
            path.key("location"),
            "local hosts have no location",
            Some("remove `location`".to_owned()),
        ),
        (Provider::Hetzner(_) | Provider::Aws(_), Some(_), _) => p.add(
            path.key("kind"),
            "`kind` (container or vm) is for local hosts only",
            Some("remove `kind`".to_owned()),
        ),
        (Provider::Hetzner(_), _, Some(l)) => hetzner_location(l, path.key("location"), p),
        _ => {}
    }
    for key in group.labels.keys() {
        if let Some(rest) = key.strip_prefix("hermes-infra/") {
            p.add_on_key(
                path.key("labels").key(key),
                format!("label `{key}` is reserved for ownership labels"),
                Some(format!(
                    "choose a key without the `hermes-infra/` prefix, such as `{rest}`"
                )),
            );
        }
    }
}

pub(super) fn ssh(file: &StackFile, p: &mut Problems) {
    let kind = file.provider.name();
    let cause = KeyPath::of(&["provider", kind]);
    if !matches!(file.provider, Provider::Local(_)) {
        if file.ssh.allow_from.is_empty() {
            p.add_or(
                KeyPath::of(&["ssh", "allow-from"]),
                cause.clone(),
                format!(
                    "`ssh.allow-from` is required for {kind} hosts: SSH is not opened to the \
                     world by default"
                ),
                Some(
                    "list your addresses under [ssh]: allow-from = [\"203.0.113.7/32\"] (or \
                     [\"0.0.0.0/0\", \"::/0\"] to allow everyone)"
                        .to_owned(),
                ),
            );
        }
        if file.ssh.authorized_keys.is_empty() {
            p.add_or(
                KeyPath::of(&["ssh", "authorized-keys"]),
                cause,
                format!("`ssh.authorized-keys` is required for {kind} hosts"),
                Some(
                    "add your public key under [ssh]: authorized-keys = [\"ssh-ed25519 AAAA... \
                     you@laptop\"]"
                        .to_owned(),
                ),
            );
        }
    }
    if file.ssh.port == 0 {
        p.add(
            KeyPath::of(&["ssh", "port"]),
            "port 0 is not a port",
            Some("use 22 or another port from 1 to 65535".to_owned()),
        );
    }
}
