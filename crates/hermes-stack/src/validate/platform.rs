//! Image, registry, Bedrock and the reverse proxy.

use super::hosts::is_aws_region;
use super::{KeyPath, Problems, unknown_host};
use crate::model::LoadedStack;
use crate::wire::{Provider, ProxyListen, Registry, StackFile, TlsMode};

pub(super) fn platform(file: &StackFile, loaded: &LoadedStack, p: &mut Problems) {
    if !hermes_core::version::is_plain_release(&file.image.hermes_version) {
        p.add(
            KeyPath::of(&["image", "hermes-version"]),
            format!(
                "`{}` is not a plain Hermes Agent release number",
                file.image.hermes_version
            ),
            Some(
                "pin one release, such as `hermes-version = \"0.19.0\"` (no range, no \
                 pre-release)"
                    .to_owned(),
            ),
        );
    }
    if let Some(upstream) = &file.image.upstream
        && !upstream.is_pinned()
    {
        let repo = upstream
            .as_str()
            .rsplit_once(':')
            .filter(|(_, tag)| !tag.contains('/'))
            .map_or(upstream.as_str(), |(repo, _)| repo);
        p.add(
            KeyPath::of(&["image", "upstream"]),
            format!("upstream image `{upstream}` is not pinned by digest"),
            Some(format!(
                "write `{repo}@sha256:<digest>` so that every host runs the same bytes (a tag \
                 can move)"
            )),
        );
    }
    if let Some(Registry::Ecr(_)) = &file.registry
        && file.aws.is_none()
    {
        p.add(
            KeyPath::of(&["registry", "ecr"]),
            "an ECR registry needs the AWS account",
            Some(
                "add [aws] with `region = \"eu-central-1\"` (the account that owns the repository)"
                    .to_owned(),
            ),
        );
    }
    if let Some(Registry::Generic(generic)) = &file.registry
        && generic.username.is_some() != generic.password.is_some()
    {
        p.add(
            KeyPath::of(&["registry", "generic"]),
            "a registry login needs both `username` and `password`",
            Some("add the one missing, or remove both for a registry without login".to_owned()),
        );
    }
    bedrock(file, loaded, p);
    proxy(file, p);
}

fn bedrock(file: &StackFile, loaded: &LoadedStack, p: &mut Problems) {
    let Some(bedrock) = &file.bedrock else {
        return;
    };
    let path = KeyPath::of(&["bedrock"]);
    if bedrock.models.is_empty() {
        p.add(
            path.key("models"),
            "no Bedrock models are allowed",
            Some("list the model ids the agents use".to_owned()),
        );
    }
    if !is_aws_region(&bedrock.region) {
        p.add(
            path.key("region"),
            format!("`{}` is not an AWS region", bedrock.region),
            Some("use a region such as `eu-central-1`".to_owned()),
        );
    }
    for (i, host) in bedrock.hosts.iter().enumerate() {
        unknown_host(loaded, host, path.key("hosts").index(i), p);
    }
}

fn proxy(file: &StackFile, p: &mut Problems) {
    let proxy = KeyPath::of(&["proxy"]);
    match file.proxy.tls {
        TlsMode::Acme
            if matches!(file.provider, Provider::Local(_))
                && file.proxy.acme_directory.is_none() =>
        {
            p.add(
                proxy.key("tls"),
                "ACME cannot issue certificates for local hosts (Let's Encrypt cannot reach them)",
                Some(
                    "use tls = \"self-signed\" on local stacks, or the `acme-directory` of a \
                     private ACME server that reaches the hosts"
                        .to_owned(),
                ),
            );
        }
        TlsMode::Acme if file.proxy.acme_email.is_none() => {
            p.add(
                proxy.key("acme-email"),
                "ACME needs a contact address",
                Some("add `acme-email = \"ops@example.com\"` to [proxy]".to_owned()),
            );
        }
        TlsMode::Off if file.proxy.listen == ProxyListen::Public => {
            p.add(
                proxy.key("tls"),
                "plain HTTP on public addresses would send API keys in clear text",
                Some(
                    "use tls = \"acme\" or \"self-signed\", or `listen = \"private\"` for a \
                     private network"
                        .to_owned(),
                ),
            );
        }
        _ => {}
    }
    if file.proxy.tls != TlsMode::Acme {
        for (key, set) in [
            ("acme-email", file.proxy.acme_email.is_some()),
            ("acme-directory", file.proxy.acme_directory.is_some()),
            ("acme-ca", file.proxy.acme_ca.is_some()),
        ] {
            if set {
                p.add(
                    proxy.key(key),
                    format!("`{key}` is set but the proxy does not use ACME"),
                    Some(format!("add tls = \"acme\" to [proxy], or remove `{key}`")),
                );
            }
        }
    }
}
