//! User data for a container host: what a cloud's metadata service hands cloud-init.

use std::fmt::Write as _;

use hermes_core::seams::ProviderError;

/// The environment variable of a host container (read by its first-boot unit from PID 1's
/// environment) that carries its [`UserData`].
pub const USER_DATA_ENV: &str = "HERMES_INFRA_USER_DATA";

/// What a host learns at creation, as cloud-init learns it from a cloud's metadata service:
/// public data only (never a secret; it stays visible in `docker inspect`).
///
/// It travels base64-encoded in [`USER_DATA_ENV`] as `key=value` lines (`v=1`, `instance_id=`,
/// `hostname=`, `user=`, `ssh_authorized_key=` repeated, `apt_proxy=`), a format the image's
/// first-boot script reads with POSIX `sh` alone: a minimal Debian image has no JSON parser, and
/// shipping one would make it differ from a cloud image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    /// Opaque, new for every created host: per-instance first-boot work (fresh host keys, the
    /// admin user) runs again when it changes, as cloud-init's per-instance modules do, so a host
    /// created from another host's snapshot gets its own host keys.
    pub instance_id: String,
    /// The host name to set (`--hostname` is set from it too).
    pub hostname: Option<String>,
    /// The admin user to create with passwordless sudo (`root`: the keys go to root, nothing is
    /// created). `None`: no user and no keys, like a cloud host created without an SSH key.
    pub user: Option<String>,
    /// Public keys for the admin user's `~/.ssh/authorized_keys` (`ssh-ed25519 AAAA... comment`).
    pub ssh_authorized_keys: Vec<String>,
    /// An apt proxy (`http://address:port`) written to
    /// `/etc/apt/apt.conf.d/90cloud-init-aptproxy`, as cloud-init's `apt.proxy` does.
    pub apt_proxy: Option<String>,
}

impl UserData {
    /// User data with only an instance id.
    pub fn new(instance_id: impl Into<String>) -> Self {
        Self {
            instance_id: instance_id.into(),
            hostname: None,
            user: None,
            ssh_authorized_keys: Vec::new(),
            apt_proxy: None,
        }
    }

    /// Sets the host name.
    #[must_use]
    pub fn with_hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// Sets the admin user and its public keys.
    #[must_use]
    pub fn with_admin(
        mut self,
        user: impl Into<String>,
        keys: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.user = Some(user.into());
        self.ssh_authorized_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the apt proxy.
    #[must_use]
    pub fn with_apt_proxy(mut self, url: impl Into<String>) -> Self {
        self.apt_proxy = Some(url.into());
        self
    }

    /// Checks every field against what the first-boot script accepts (the script checks again).
    pub fn validate(&self) -> Result<(), ProviderError> {
        let bad = |what: &str, value: &str| {
            ProviderError::Other(format!("user data: {what} `{value}` is not valid"))
        };
        if self.instance_id.is_empty()
            || self.instance_id.len() > 128
            || !self
                .instance_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(bad("instance id", &self.instance_id));
        }
        if let Some(h) = &self.hostname
            && !is_hostname(h)
        {
            return Err(bad("host name", h));
        }
        if let Some(u) = &self.user
            && !is_user_name(u)
        {
            return Err(bad("user name", u));
        }
        if self.user.is_none() && !self.ssh_authorized_keys.is_empty() {
            return Err(ProviderError::Other(
                "user data: SSH keys need a user to receive them".into(),
            ));
        }
        if let Some(k) = self.ssh_authorized_keys.iter().find(|k| !is_public_key(k)) {
            return Err(bad("public key", k));
        }
        if let Some(p) = &self.apt_proxy
            && !is_proxy_url(p)
        {
            return Err(bad("apt proxy", p));
        }
        Ok(())
    }

    /// The `key=value` text (before base64).
    pub fn to_text(&self) -> String {
        let mut text = format!("v=1\ninstance_id={}\n", self.instance_id);
        if let Some(h) = &self.hostname {
            let _ = writeln!(text, "hostname={h}");
        }
        if let Some(u) = &self.user {
            let _ = writeln!(text, "user={u}");
        }
        for k in &self.ssh_authorized_keys {
            let _ = writeln!(text, "ssh_authorized_key={}", k.trim());
        }
        if let Some(p) = &self.apt_proxy {
            let _ = writeln!(text, "apt_proxy={p}");
        }
        text
    }

    /// The validated text, base64-encoded: the value of [`USER_DATA_ENV`].
    pub fn encode(&self) -> Result<String, ProviderError> {
        self.validate()?;
        Ok(base64(self.to_text().as_bytes()))
    }

    /// `HERMES_INFRA_USER_DATA=<base64>`, for `docker run -e`.
    pub fn env_assignment(&self) -> Result<String, ProviderError> {
        Ok(format!("{USER_DATA_ENV}={}", self.encode()?))
    }
}

fn is_hostname(h: &str) -> bool {
    let b = h.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b.first() != Some(&b'-')
        && b.last() != Some(&b'-')
}

fn is_user_name(u: &str) -> bool {
    let b = u.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

fn is_public_key(k: &str) -> bool {
    let k = k.trim();
    if k.contains(['\n', '\r', '\0']) {
        return false;
    }
    let mut parts = k.splitn(3, ' ');
    let (Some(kind), Some(body)) = (parts.next(), parts.next()) else {
        return false;
    };
    (kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2") || kind.starts_with("sk-"))
        && kind
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"@.-".contains(&c))
        && !body.is_empty()
        && body
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
}

fn is_proxy_url(p: &str) -> bool {
    let rest = p
        .strip_prefix("http://")
        .or_else(|| p.strip_prefix("https://"));
    rest.is_some_and(|r| {
        let r = r.strip_suffix('/').unwrap_or(r);
        !r.is_empty()
            && r.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".:_-".contains(&c))
    })
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm6oR0cQOv4lPrQxVVmUqsJq2XNq+9/xS0A8Y5j1bCk me@laptop";

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn text_lists_every_field() {
        let ud = UserData::new("i-1")
            .with_hostname("web-1")
            .with_admin("hermes-admin", [KEY])
            .with_apt_proxy("http://172.20.0.2:3142");
        assert_eq!(
            ud.to_text(),
            format!(
                "v=1\ninstance_id=i-1\nhostname=web-1\nuser=hermes-admin\n\
                 ssh_authorized_key={KEY}\napt_proxy=http://172.20.0.2:3142\n"
            )
        );
        let env = ud.env_assignment().unwrap();
        assert!(env.starts_with("HERMES_INFRA_USER_DATA="));
        assert!(!env.contains('\n'));
    }

    #[test]
    fn rejects_what_the_script_would_refuse() {
        let ok = UserData::new("i-1").with_admin("hermes-admin", [KEY]);
        assert!(ok.validate().is_ok());
        for bad in [
            UserData::new(""),
            UserData::new("a b"),
            UserData::new("i").with_hostname("-web"),
            UserData::new("i").with_hostname("web.example.com"),
            UserData::new("i").with_admin("Admin", [KEY]),
            UserData::new("i").with_admin("a;rm", [KEY]),
            UserData::new("i").with_admin("admin", ["not a key"]),
            UserData::new("i").with_admin("admin", [format!("{KEY}\nssh-rsa AAAA")]),
            UserData::new("i").with_apt_proxy("ftp://x"),
            UserData::new("i").with_apt_proxy("http://x/\"; rm"),
            UserData {
                ssh_authorized_keys: vec![KEY.into()],
                ..UserData::new("i")
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
            assert!(bad.encode().is_err());
        }
    }
}
