//! Host keys: their OpenSSH forms, fingerprints, and the pinning policy the connector consults.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

/// Where the connector finds pinned host keys and records new ones (trust on first use).
///
/// The caller backs this with its state (`State::host_keys`): keys are OpenSSH public-key lines
/// such as `ssh-ed25519 AAAA...`.
pub trait HostKeys: Send + Sync {
    /// The key pinned for `host`, if it was contacted before.
    fn pinned(&self, host: &str) -> Option<String>;
    /// Records `key` for `host` at first contact (called only after the connection was
    /// authenticated). An `Err` refuses the connection with that message.
    fn pin(&self, host: &str, key: &str) -> Result<(), String>;
}

/// A [`HostKeys`] kept in memory: seed it from state, save [`PinnedHostKeys::snapshot`] back.
#[derive(Debug, Default)]
pub struct PinnedHostKeys {
    keys: Mutex<BTreeMap<String, String>>,
    learned: Mutex<BTreeMap<String, String>>,
}

impl PinnedHostKeys {
    /// Pins the keys already known, by host name.
    pub fn new(keys: BTreeMap<String, String>) -> Self {
        Self {
            keys: Mutex::new(keys),
            learned: Mutex::default(),
        }
    }

    /// Every pinned key, old and new, by host name (what the state should hold).
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The keys pinned during this run only.
    pub fn learned(&self) -> BTreeMap<String, String> {
        self.learned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the key of `host`, so the next contact pins the key it presents (how a
    /// deliberate `--accept-new-host-key` is carried out). Returns the forgotten key.
    pub fn forget(&self, host: &str) -> Option<String> {
        self.learned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(host);
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(host)
    }
}

impl HostKeys for PinnedHostKeys {
    fn pinned(&self, host: &str) -> Option<String> {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(host)
            .cloned()
    }

    fn pin(&self, host: &str, key: &str) -> Result<(), String> {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(host.to_owned(), key.to_owned());
        self.learned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(host.to_owned(), key.to_owned());
        Ok(())
    }
}

/// A public key in SSH wire form (the "blob"), as a host presents it or a state file pins it.
#[derive(Clone, PartialEq, Eq)]
pub struct HostKey {
    algorithm: String,
    blob: Vec<u8>,
}

impl HostKey {
    /// Reads the key type out of an SSH public-key blob.
    pub fn from_blob(blob: &[u8]) -> Result<Self, String> {
        let algorithm = blob
            .get(..4)
            .and_then(|len| {
                let len =
                    usize::try_from(u32::from_be_bytes([len[0], len[1], len[2], len[3]])).ok()?;
                blob.get(4..4 + len)
            })
            .and_then(|name| std::str::from_utf8(name).ok())
            .filter(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| "the key blob does not start with a key type".to_owned())?;
        Ok(Self {
            algorithm: algorithm.to_owned(),
            blob: blob.to_vec(),
        })
    }

    /// Parses an OpenSSH public-key line (`ssh-ed25519 AAAA... [comment]`); the comment is
    /// ignored.
    pub fn parse(line: &str) -> Result<Self, String> {
        let mut fields = line.split_whitespace();
        let (Some(kind), Some(data)) = (fields.next(), fields.next()) else {
            return Err(format!(
                "`{line}` is not an OpenSSH public key (expected `TYPE BASE64 [COMMENT]`)"
            ));
        };
        let blob = STANDARD
            .decode(data)
            .map_err(|err| format!("the key data of `{kind}` is not base64: {err}"))?;
        let key = Self::from_blob(&blob)?;
        if key.algorithm != kind {
            return Err(format!(
                "the key is labelled `{kind}` but its data says `{}`",
                key.algorithm
            ));
        }
        Ok(key)
    }

    /// The key type (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ...).
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The OpenSSH public-key line, without comment (`ssh-ed25519 AAAA...`).
    pub fn openssh(&self) -> String {
        format!("{} {}", self.algorithm, STANDARD.encode(&self.blob))
    }

    /// The fingerprint as OpenSSH prints it (`SHA256:` and unpadded base64).
    pub fn fingerprint(&self) -> String {
        format!(
            "SHA256:{}",
            STANDARD_NO_PAD.encode(Sha256::digest(&self.blob))
        )
    }

    /// The host-key algorithm names to offer in the handshake, this key's kind first.
    pub(crate) fn method_names(&self) -> &'static [&'static str] {
        match self.algorithm.as_str() {
            "ssh-ed25519" => &["ssh-ed25519"],
            "ecdsa-sha2-nistp256" => &["ecdsa-sha2-nistp256"],
            "ecdsa-sha2-nistp384" => &["ecdsa-sha2-nistp384"],
            "ecdsa-sha2-nistp521" => &["ecdsa-sha2-nistp521"],
            "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            _ => &[],
        }
    }
}

impl fmt::Display for HostKey {
    /// `ssh-ed25519 SHA256:...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.algorithm, self.fingerprint())
    }
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostKey({self})")
    }
}

/// Host-key algorithms in order of preference: ed25519 first.
const PREFERRED_METHODS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
];

/// The `method_pref` list for the handshake: the pinned key's kind first (so the host shows the
/// key we can compare), then ed25519 and the rest.
pub(crate) fn method_preference(pinned: Option<&HostKey>) -> String {
    let mut names: Vec<&str> = pinned
        .map(|key| key.method_names().to_vec())
        .unwrap_or_default();
    for name in PREFERRED_METHODS {
        if !names.contains(name) {
            names.push(name);
        }
    }
    names.join(",")
}

/// The command that accepts a changed host key on purpose.
pub fn accept_new_key_command(host: &str) -> String {
    format!("hermes-infra ssh {host} --accept-new-host-key")
}

/// The message for a host presenting another key than the one pinned.
pub(crate) fn mismatch_message(
    host: &str,
    address: &str,
    presented: &HostKey,
    pinned: &HostKey,
) -> String {
    let pinned_desc = if pinned.algorithm == presented.algorithm {
        pinned.fingerprint()
    } else {
        pinned.to_string()
    };
    format!(
        "host `{host}` ({address}) presented {presented}, but {pinned_desc} was pinned at first \
         contact; if the host was rebuilt on purpose, accept the new key with `{}`, otherwise \
         treat it as a possible attack (nothing was sent to or run on it)",
        accept_new_key_command(host)
    )
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a failed unwrap is a failed test"
    )]

    use super::*;

    // Made with `ssh-keygen -t ed25519`; fingerprint from `ssh-keygen -lf`.
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBfmCtuJu3sUhnoj/lyphJoEaw01iVxHq3Hb4XF8Ph8C test@example";
    const FINGERPRINT: &str = "SHA256:NmNo1K4aWoYiNqaazty5dVKenJWM1BTeKgK3Ppi1qUE";

    #[test]
    fn parses_and_fingerprints_like_openssh() {
        let key = HostKey::parse(KEY).unwrap();
        assert_eq!(key.algorithm(), "ssh-ed25519");
        assert_eq!(key.fingerprint(), FINGERPRINT);
        assert_eq!(
            key.openssh(),
            KEY.rsplit_once(' ').unwrap().0,
            "the comment is dropped"
        );
        assert_eq!(key.to_string(), format!("ssh-ed25519 {FINGERPRINT}"));
    }

    #[test]
    fn refuses_malformed_lines() {
        assert!(HostKey::parse("ssh-ed25519").is_err());
        assert!(HostKey::parse("ssh-ed25519 !!!").is_err());
        let relabelled = KEY.replacen("ssh-ed25519", "ssh-rsa", 1);
        let err = HostKey::parse(&relabelled).unwrap_err();
        assert!(err.contains("labelled `ssh-rsa`"), "{err}");
        assert!(HostKey::from_blob(&[0, 0, 0, 9, b'x']).is_err());
    }

    #[test]
    fn mismatch_names_both_keys_and_the_way_out() {
        let presented = HostKey::parse(KEY).unwrap();
        let mut other_blob = presented.blob.clone();
        let last = other_blob.len() - 1;
        other_blob[last] ^= 1;
        let pinned = HostKey::from_blob(&other_blob).unwrap();
        let message = mismatch_message("web-1", "10.0.0.5:22", &presented, &pinned);
        assert_eq!(
            message,
            format!(
                "host `web-1` (10.0.0.5:22) presented ssh-ed25519 {FINGERPRINT}, but {} was \
                 pinned at first contact; if the host was rebuilt on purpose, accept the new key \
                 with `hermes-infra ssh web-1 --accept-new-host-key`, otherwise treat it as a \
                 possible attack (nothing was sent to or run on it)",
                pinned.fingerprint()
            )
        );
    }

    #[test]
    fn preference_puts_the_pinned_kind_first() {
        assert!(method_preference(None).starts_with("ssh-ed25519,"));
        let rsa_blob = [&[0, 0, 0, 7][..], b"ssh-rsa", &[0, 0, 0, 1, 1]].concat();
        let rsa = HostKey::from_blob(&rsa_blob).unwrap();
        let pref = method_preference(Some(&rsa));
        assert!(
            pref.starts_with("rsa-sha2-512,rsa-sha2-256,ssh-rsa,ssh-ed25519"),
            "{pref}"
        );
    }

    #[test]
    fn pinned_keys_learn_and_forget() {
        let keys = PinnedHostKeys::new(BTreeMap::from([("a".to_owned(), KEY.to_owned())]));
        assert_eq!(keys.pinned("a").as_deref(), Some(KEY));
        assert_eq!(keys.pinned("b"), None);
        keys.pin("b", "ssh-ed25519 BBBB").unwrap();
        assert_eq!(keys.learned().len(), 1);
        assert_eq!(keys.snapshot().len(), 2);
        assert_eq!(keys.forget("a").as_deref(), Some(KEY));
        assert_eq!(keys.pinned("a"), None);
    }
}
