//! Checked values of the stack format. Each parses from a TOML string and refuses bad input
//! with a message that says what was expected, so the error lands on the value's own span.

macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:path, $expecting:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::schemars::JsonSchema,
        )]
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

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        // Checked inside the deserializer's own call, so that an error lands on the value
        // itself, also inside an array, rather than on the enclosing array.
        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Checked;
                impl ::serde::de::Visitor<'_> for Checked {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: ::serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        $name::try_from(s.to_owned()).map_err(E::custom)
                    }
                }
                d.deserialize_string(Checked)
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

mod net;
mod text;

pub use net::{Cidr, Hostname, ImageDigest, ImageRef, SshPublicKey, Url};
pub use text::{DurationText, EnvName, Name, Size, TimeOfDay, UnixUser};

#[cfg(test)]
mod tests;
