//! Network-facing values: hostnames, CIDR blocks, URLs, SSH keys and image references.

use std::net::IpAddr;

use super::is_dns_label;

fn check_hostname(s: &str) -> Result<(), String> {
    if let Some((scheme, rest)) = s.split_once("://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        return Err(format!(
            "`{s}` is a URL ({scheme}://...), but a hostname belongs here; write `{host}`"
        ));
    }
    if s.contains('/') || s.contains(':') {
        let host = s.split(['/', ':']).next().unwrap_or_default();
        return Err(format!(
            "`{s}` has a path or port, but a hostname belongs here; write `{host}`"
        ));
    }
    if s.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "`{s}` is an IP address; a DNS hostname belongs here"
        ));
    }
    let body = s.strip_prefix("*.").unwrap_or(s);
    if s.len() > 253 || !body.contains('.') && body != "localhost" {
        return Err(format!(
            "`{s}` is not a fully qualified hostname (expected something like `api.example.com`)"
        ));
    }
    if let Some(bad) = body
        .split('.')
        .find(|l| !is_dns_label(&l.to_ascii_lowercase()))
    {
        return Err(format!(
            "`{s}` is not a valid hostname: the part `{bad}` may hold only letters, digits and `-` \
             (1 to 63 of them, not starting or ending with `-`)"
        ));
    }
    Ok(())
}

checked_string!(
    /// A DNS hostname such as `api.openai.com`. In egress allowlists a leading `*.` allows every
    /// subdomain.
    Hostname,
    check_hostname,
    "a hostname in quotes, such as `api.example.com`"
);

impl Hostname {
    /// Whether this is a `*.` wildcard.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }
}

fn check_cidr(s: &str) -> Result<(), String> {
    if s.parse::<ipnet::IpNet>().is_ok() {
        return Ok(());
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        return Err(format!(
            "`{s}` is an address without a prefix length; write `{s}/{bits}` for this one address"
        ));
    }
    if let Some((addr, prefix)) = s.split_once('/')
        && let Ok(ip) = addr.parse::<IpAddr>()
    {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        return Err(match prefix.parse::<u8>() {
            Ok(n) => format!(
                "`{s}` has prefix length {n}, but an {} address has at most {bits} bits",
                if ip.is_ipv4() { "IPv4" } else { "IPv6" }
            ),
            Err(_) => {
                format!("`{s}` has no valid prefix length; write `{addr}/{bits}` for one address")
            }
        });
    }
    Err(format!(
        "`{s}` is not a CIDR block; write an address with a prefix length, such as `203.0.113.7/32` \
         or `2001:db8::/48`"
    ))
}

checked_string!(
    /// A CIDR block: `203.0.113.7/32`, `10.0.0.0/8`, `::/0`.
    Cidr,
    check_cidr,
    "a CIDR block in quotes, such as `\"203.0.113.7/32\"`"
);

impl Cidr {
    /// The parsed network.
    pub fn net(&self) -> Option<ipnet::IpNet> {
        self.0.parse().ok()
    }
}

fn check_ssh_key(s: &str) -> Result<(), String> {
    const TYPES: [&str; 6] = [
        "ssh-ed25519",
        "sk-ssh-ed25519@openssh.com",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
    ];
    if s.contains("PRIVATE KEY") {
        return Err(
            "this is a private key; put only public keys (`ssh-ed25519 AAAA... comment`) in the \
             stack (the text written here is not shown)"
                .to_owned(),
        );
    }
    let mut parts = s.split_whitespace();
    let kind = parts.next().unwrap_or_default();
    let blob = parts.next().unwrap_or_default();
    if !TYPES.contains(&kind) {
        return Err(format!(
            "not an OpenSSH public key: it should start with a key type such as `ssh-ed25519`, \
             found `{}`",
            kind.chars().take(24).collect::<String>()
        ));
    }
    let base64ish = blob.len() >= 60
        && blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if !base64ish {
        return Err(format!(
            "the `{kind}` key's base64 body is missing or damaged"
        ));
    }
    Ok(())
}

checked_string!(
    /// An OpenSSH public key line: `ssh-ed25519 AAAA... comment`.
    SshPublicKey,
    check_ssh_key,
    "an OpenSSH public key in quotes"
);

fn check_image_ref(s: &str) -> Result<(), String> {
    let valid_chars = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"./-_:@".contains(&b))
        && !s.contains("://");
    if !valid_chars {
        return Err(format!(
            "`{s}` is not an image reference; write `registry/repository@sha256:<digest>` or \
             `repository:tag` (no scheme such as https://)"
        ));
    }
    if let Some((_, digest)) = s.split_once('@') {
        check_digest(digest)?;
    }
    Ok(())
}

checked_string!(
    /// A container image reference: `repo:tag` or `registry/repo@sha256:<64 hex>`.
    ImageRef,
    check_image_ref,
    "an image reference in quotes"
);

impl ImageRef {
    /// Whether the reference pins a digest.
    pub fn is_pinned(&self) -> bool {
        self.0.contains("@sha256:")
    }
}

fn check_digest(s: &str) -> Result<(), String> {
    let ok = s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not an image digest; write `sha256:` and 64 lowercase hex digits"
        ))
    }
}

checked_string!(
    /// An image digest: `sha256:<64 lowercase hex>`.
    ImageDigest,
    check_digest,
    "an image digest in quotes, `\"sha256:...\"`"
);

fn check_url(s: &str) -> Result<(), String> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!(
            "`{s}` is not a URL; write it with its scheme, such as `https://{s}`"
        ));
    };
    if scheme != "https" && scheme != "http" {
        return Err(format!(
            "`{s}` has scheme `{scheme}`; use `https://` (or `http://` inside a private network)"
        ));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() {
        return Err(format!("`{scheme}://` has no host after it"));
    }
    if let Some((_, after)) = rest.split_once('@') {
        return Err(format!(
            "this URL carries credentials before `@`; write `{scheme}://{after}` and give the \
             credentials as a secret reference such as `api-key = \"env:NAME\"` (the URL \
             written here is not shown)"
        ));
    }
    Ok(())
}

checked_string!(
    /// An `http(s)://` URL without credentials.
    Url,
    check_url,
    "a URL in quotes, such as `\"https://llm.example.com/v1\"`"
);

impl Url {
    /// The host part (without port).
    pub fn host(&self) -> &str {
        let rest = self.0.split_once("://").map_or(self.0.as_str(), |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if let Some(v6) = authority.strip_prefix('[') {
            return v6.split(']').next().unwrap_or_default();
        }
        authority.split(':').next().unwrap_or_default()
    }
}
