//! Secrets. A stack file holds only [`SecretRef`]s (`env:NAME`, `file:PATH`, `aws-sm:ARN`,
//! `cmd:COMMAND`); values are fetched at apply time into [`Secret`], whose `Debug` and `Display`
//! print `****`, so a value cannot reach output, logs, plans or state by formatting.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A reference to a secret value, resolved only when a change needs the value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretRef {
    /// An environment variable of the process running `hermes-infra`.
    Env(String),
    /// A file on the machine running `hermes-infra` (its whole content, trailing newline removed).
    File(String),
    /// An AWS Secrets Manager secret, by ARN or name.
    AwsSm(String),
    /// The standard output of a command run on the machine running `hermes-infra`
    /// (a password manager's CLI, for example).
    Cmd(String),
}

/// Why a string is not a secret reference. Deliberately never includes the string itself: what
/// was written may be a real secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefError {
    /// No `scheme:` prefix: most likely a secret value pasted inline.
    #[error(
        "secrets cannot be written inline; reference the value instead: `env:NAME`, `file:PATH`, \
         `aws-sm:ARN` or `cmd:COMMAND` (the value written here is not shown)"
    )]
    Inline,
    /// A `scheme:` prefix that is not one of ours.
    #[error("unknown secret scheme `{0}:`; use `env:`, `file:`, `aws-sm:` or `cmd:`")]
    UnknownScheme(String),
    /// The scheme is right but what follows is empty or malformed.
    #[error("{0}")]
    Malformed(&'static str),
}

impl SecretRef {
    /// The scheme (`env`, `file`, `aws-sm`, `cmd`).
    pub fn scheme(&self) -> &'static str {
        match self {
            SecretRef::Env(_) => "env",
            SecretRef::File(_) => "file",
            SecretRef::AwsSm(_) => "aws-sm",
            SecretRef::Cmd(_) => "cmd",
        }
    }

    fn target(&self) -> &str {
        match self {
            SecretRef::Env(s) | SecretRef::File(s) | SecretRef::AwsSm(s) | SecretRef::Cmd(s) => s,
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme(), self.target())
    }
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl FromStr for SecretRef {
    type Err = SecretRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(SecretRefError::Inline);
        };
        let scheme_like = !scheme.is_empty()
            && scheme.len() <= 16
            && scheme.chars().all(|c| c.is_ascii_lowercase() || c == '-');
        match scheme {
            "env" if is_env_name(rest) => Ok(SecretRef::Env(rest.to_owned())),
            "env" => Err(SecretRefError::Malformed(
                "`env:` needs an environment variable name (letters, digits, `_`), e.g. `env:OPENAI_API_KEY`",
            )),
            "file" | "aws-sm" | "cmd" if rest.trim().is_empty() => Err(SecretRefError::Malformed(
                "the secret reference is empty after its scheme; write e.g. `file:secrets/token`",
            )),
            "file" => Ok(SecretRef::File(rest.to_owned())),
            "aws-sm" => Ok(SecretRef::AwsSm(rest.to_owned())),
            "cmd" => Ok(SecretRef::Cmd(rest.to_owned())),
            _ if scheme_like => Err(SecretRefError::UnknownScheme(scheme.to_owned())),
            _ => Err(SecretRefError::Inline),
        }
    }
}

impl Serialize for SecretRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for SecretRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretRef".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(env|file|aws-sm|cmd):.+$",
            "description": "A reference to a secret, never the value: `env:NAME`, `file:PATH`, `aws-sm:ARN` or `cmd:COMMAND`."
        })
    }
}

/// A secret value. Formatting never shows it; [`Secret::expose`] is the only way to read it, so
/// every read is greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value. Call only where it is written to its destination (a 0600 file on a host, a
    /// request body to a cloud API), never where it could be logged.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_print_back() {
        for text in [
            "env:OPENAI_API_KEY",
            "file:secrets/tg.token",
            "aws-sm:arn:aws:secretsmanager:eu-central-1:1:secret:x",
            "cmd:pass show hermes/tg",
        ] {
            assert_eq!(text.parse::<SecretRef>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn inline_values_are_refused_without_being_echoed() {
        for value in [
            "sk-live-1234567890abcdef",
            "hunter2",
            "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11",
        ] {
            let err = value.parse::<SecretRef>().unwrap_err();
            assert!(!err.to_string().contains(value), "{err} echoes the value");
        }
        assert_eq!("hunter2".parse::<SecretRef>(), Err(SecretRefError::Inline));
    }

    #[test]
    fn unknown_schemes_and_empty_targets_are_refused() {
        assert_eq!(
            "vault:kv/x".parse::<SecretRef>(),
            Err(SecretRefError::UnknownScheme("vault".into()))
        );
        assert!(matches!(
            "env:".parse::<SecretRef>(),
            Err(SecretRefError::Malformed(_))
        ));
        assert!(matches!(
            "env:1BAD".parse::<SecretRef>(),
            Err(SecretRefError::Malformed(_))
        ));
        assert!(matches!(
            "file:  ".parse::<SecretRef>(),
            Err(SecretRefError::Malformed(_))
        ));
    }

    #[test]
    fn secret_values_never_format() {
        let s = Secret::new("canary-value");
        assert_eq!(format!("{s} {s:?}"), "**** Secret(****)");
        assert_eq!(s.expose(), "canary-value");
    }
}
