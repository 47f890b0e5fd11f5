//! Checked values of the stack format. Each parses from a TOML string and refuses bad input
//! with a message that says what was expected, so the error lands on the value's own span.

use std::fmt;
use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The text as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $check(&s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Whether `s` is a DNS label: 1 to 63 lowercase letters, digits and `-`, not starting or ending
/// with `-`.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

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
    check_hostname
);

impl Hostname {
    /// Whether this is a `*.` wildcard.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }
}

fn check_name(s: &str) -> Result<(), String> {
    if is_dns_label(s) && s.len() <= 40 {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a valid name: use 1 to 40 lowercase letters, digits and `-`, not starting \
             or ending with `-` (names become host, container and network names)"
        ))
    }
}

checked_string!(
    /// A name of a stack, environment, host or agent: a DNS label of at most 40 characters.
    Name,
    check_name
);

fn parse_size(s: &str) -> Result<u64, String> {
    let hint = || {
        format!(
            "`{s}` is not a size; write a whole number with a unit `k`, `m` or `g` and no space, \
             such as `512m` or `2g`"
        )
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(hint)?;
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| hint())?;
    let factor: u64 = match unit {
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return Err(hint()),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{s}` is too large"))
}

checked_string!(
    /// A memory size in Docker's notation: `512m`, `2g`.
    Size,
    check_size
);

fn check_size(s: &str) -> Result<(), String> {
    parse_size(s).map(|_| ())
}

impl Size {
    /// The size in bytes.
    pub fn bytes(&self) -> u64 {
        parse_size(&self.0).unwrap_or_default()
    }
}

fn parse_duration(s: &str) -> Result<u64, String> {
    let hint = || {
        format!(
            "`{s}` is not a duration; write a whole number with a unit `s`, `m`, `h`, `d` or `w` \
             and no space, such as `10m` or `1h`"
        )
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(hint)?;
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| hint())?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(hint()),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{s}` is too long"))
}

fn check_duration(s: &str) -> Result<(), String> {
    parse_duration(s).map(|_| ())
}

checked_string!(
    /// A duration: `30s`, `10m`, `1h`, `1d`, `1w`.
    DurationText,
    check_duration
);

impl DurationText {
    /// The duration in seconds.
    pub fn seconds(&self) -> u64 {
        parse_duration(&self.0).unwrap_or_default()
    }
}

fn check_time_of_day(s: &str) -> Result<(), String> {
    let ok = s.len() == 5
        && s.as_bytes()[2] == b':'
        && s[..2].parse::<u8>().is_ok_and(|h| h < 24)
        && s[3..].parse::<u8>().is_ok_and(|m| m < 60);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a time of day; write `HH:MM` (24 h), such as `03:30`"
        ))
    }
}

checked_string!(
    /// A time of day, `HH:MM` in 24-hour form (host local time).
    TimeOfDay,
    check_time_of_day
);

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
    Err(format!(
        "`{s}` is not a CIDR block; write an address with a prefix length, such as `203.0.113.7/32` \
         or `2001:db8::/48`"
    ))
}

checked_string!(
    /// A CIDR block: `203.0.113.7/32`, `10.0.0.0/8`, `::/0`.
    Cidr,
    check_cidr
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
    check_ssh_key
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
    check_image_ref
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
    check_digest
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
        return Err(format!("`{s}` has no host"));
    }
    if rest.contains('@') {
        return Err(format!(
            "`{s}` carries credentials; put them in a secret reference instead"
        ));
    }
    Ok(())
}

checked_string!(
    /// An `http(s)://` URL without credentials.
    Url,
    check_url
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

fn check_env_name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not an environment variable name; use `UPPER_CASE` letters, digits and `_`"
        ))
    }
}

checked_string!(
    /// An environment variable name: `UPPER_CASE`.
    EnvName,
    check_env_name
);

fn check_unix_user(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let ok = s.len() <= 32
        && matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        return Err(format!(
            "`{s}` is not a valid user name; use lowercase letters, digits, `_` and `-` (at most 32)"
        ));
    }
    if s == "root" {
        return Err(
            "root login is always disabled; name an admin user such as `hermes-admin`".to_owned(),
        );
    }
    Ok(())
}

checked_string!(
    /// A Unix user name (never `root`).
    UnixUser,
    check_unix_user
);

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<T: TryFrom<String, Error = String>>(s: &str) -> T {
        T::try_from(s.to_owned()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err<T: TryFrom<String, Error = String> + fmt::Debug>(s: &str) -> String {
        T::try_from(s.to_owned()).unwrap_err()
    }

    #[test]
    fn sizes() {
        assert_eq!(ok::<Size>("2g").bytes(), 2 << 30);
        assert_eq!(ok::<Size>("512m").bytes(), 512 << 20);
        assert!(err::<Size>("2 gigs").contains("`2g`"));
        assert!(err::<Size>("2").contains("unit"));
        assert!(err::<Size>("99999999999999999g").contains("too large"));
    }

    #[test]
    fn hostnames() {
        ok::<Hostname>("api.openai.com");
        ok::<Hostname>("*.example.com");
        ok::<Hostname>("acme.hermes.localhost");
        assert!(err::<Hostname>("https://api.openai.com/v1").contains("write `api.openai.com`"));
        assert!(err::<Hostname>("api.openai.com:443").contains("write `api.openai.com`"));
        assert!(err::<Hostname>("10.0.0.1").contains("IP address"));
        assert!(err::<Hostname>("bad_host.example.com").contains("`bad_host`"));
        assert!(err::<Hostname>("intranet").contains("fully qualified"));
    }

    #[test]
    fn cidrs() {
        ok::<Cidr>("203.0.113.7/32");
        ok::<Cidr>("::/0");
        assert!(err::<Cidr>("203.0.113.7").contains("`203.0.113.7/32`"));
        assert!(err::<Cidr>("300.1.1.1/32").contains("not a CIDR"));
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(ok::<DurationText>("10m").seconds(), 600);
        assert_eq!(ok::<DurationText>("1w").seconds(), 604_800);
        assert!(err::<DurationText>("10 minutes").contains("duration"));
        ok::<TimeOfDay>("03:30");
        assert!(err::<TimeOfDay>("25:00").contains("HH:MM"));
    }

    #[test]
    fn urls_and_images() {
        assert_eq!(
            ok::<Url>("https://api.openai.com/v1").host(),
            "api.openai.com"
        );
        assert_eq!(ok::<Url>("http://fake-llm:8080/v1").host(), "fake-llm");
        assert!(err::<Url>("api.openai.com/v1").contains("https://"));
        assert!(err::<Url>("https://user:pw@example.com").contains("credentials"));
        assert!(
            ok::<ImageRef>(&format!(
                "docker.io/nousresearch/hermes-agent@sha256:{}",
                "a".repeat(64)
            ))
            .is_pinned()
        );
        assert!(err::<ImageRef>("nousresearch/hermes-agent@sha256:abc").contains("digest"));
    }

    #[test]
    fn names_users_and_keys() {
        ok::<Name>("acme-1");
        assert!(err::<Name>("Acme").contains("lowercase"));
        assert!(err::<UnixUser>("root").contains("disabled"));
        assert!(
            err::<SshPublicKey>("-----BEGIN OPENSSH PRIVATE KEY----- abc").contains("private key")
        );
        ok::<SshPublicKey>(&format!("ssh-ed25519 {} ops@laptop", "A".repeat(68)));
        assert!(err::<EnvName>("lower").contains("UPPER_CASE"));
    }
}
