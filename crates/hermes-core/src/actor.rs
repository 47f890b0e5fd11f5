//! Who applies: the operator's identity that hosts record in their audit log
//! (`/var/log/hermes-infra/audit.log`, `who="..."`).
//!
//! An [`Actor`] holds only letters, digits and `.` `_` `@` `+` `-`, at most
//! [`ACTOR_MAX_LEN`] of them: host scripts may write it between double or single quotes (the
//! revert script of a phase embeds it in a single-quoted word) without any escaping, and it
//! cannot forge a second audit field or line.

use std::fmt;
use std::str::FromStr;

/// The most characters an actor may hold.
pub const ACTOR_MAX_LEN: usize = 64;

/// The characters an actor may hold besides ASCII letters and digits.
pub const ACTOR_PUNCTUATION: &str = "._@+-";

/// An operator's identity as recorded on hosts (`alice@laptop`, `ci+deploy@runner-7`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Actor(String);

/// Why a name is not an [`Actor`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActorError {
    /// Nothing was given.
    #[error("it is empty")]
    Empty,
    /// More than [`ACTOR_MAX_LEN`] characters.
    #[error("it is {0} characters long")]
    TooLong(usize),
    /// A character outside the accepted set.
    #[error("it holds {}", shown(*.0))]
    Forbidden(char),
}

/// `c` for a message: between backticks when it can be seen, else as `U+XXXX`.
fn shown(c: char) -> String {
    if c.is_ascii_graphic() || (!c.is_ascii() && !c.is_control() && !c.is_whitespace()) {
        format!("`{c}`")
    } else {
        format!("U+{:04X}", u32::from(c))
    }
}

impl Actor {
    /// `name` if it is a valid actor: 1 to [`ACTOR_MAX_LEN`] characters, each an ASCII letter,
    /// a digit or one of [`ACTOR_PUNCTUATION`].
    pub fn new(name: &str) -> Result<Self, ActorError> {
        if name.is_empty() {
            return Err(ActorError::Empty);
        }
        if let Some(bad) = name.chars().find(|c| !Self::allows(*c)) {
            return Err(ActorError::Forbidden(bad));
        }
        if name.len() > ACTOR_MAX_LEN {
            return Err(ActorError::TooLong(name.len()));
        }
        Ok(Self(name.to_owned()))
    }

    /// `name` made into an actor, for names found rather than given (a user name, a host
    /// name): each character outside the accepted set becomes `_`, the result is cut to
    /// [`ACTOR_MAX_LEN`] characters, and an empty name becomes `unknown`.
    pub fn lossy(name: &str) -> Self {
        let cleaned: String = name
            .chars()
            .map(|c| if Self::allows(c) { c } else { '_' })
            .take(ACTOR_MAX_LEN)
            .collect();
        if cleaned.is_empty() {
            Self::default()
        } else {
            Self(cleaned)
        }
    }

    /// Whether an actor may hold `c`.
    pub fn allows(c: char) -> bool {
        c.is_ascii_alphanumeric() || ACTOR_PUNCTUATION.contains(c)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `unknown`: no one could be named.
impl Default for Actor {
    fn default() -> Self {
        Self("unknown".to_owned())
    }
}

impl FromStr for Actor {
    type Err = ActorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Actor {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_accepted() {
        for name in [
            "alice",
            "alice@laptop",
            "ci+deploy@runner-7.example",
            "a_b.c-d",
            "x",
        ] {
            assert_eq!(Actor::new(name).map(|a| a.to_string()), Ok(name.to_owned()));
        }
        let longest = "a".repeat(ACTOR_MAX_LEN);
        assert!(Actor::new(&longest).is_ok());
    }

    #[test]
    fn empty_long_and_unsafe_names_are_refused() {
        assert_eq!(Actor::new(""), Err(ActorError::Empty));
        assert_eq!(
            Actor::new(&"a".repeat(ACTOR_MAX_LEN + 1)),
            Err(ActorError::TooLong(ACTOR_MAX_LEN + 1))
        );
        for (name, bad) in [
            ("o'brien", '\''),
            ("say \"hi\"", ' '),
            ("a\"b", '"'),
            ("a\\b", '\\'),
            ("a\nresult=ok", '\n'),
            ("a\tb", '\t'),
            ("a\u{7f}", '\u{7f}'),
            ("$(reboot)", '$'),
            ("a`id`", '`'),
            ("a;b", ';'),
            ("josé", 'é'),
        ] {
            assert_eq!(
                Actor::new(name),
                Err(ActorError::Forbidden(bad)),
                "{name:?}"
            );
        }
    }

    #[test]
    fn messages_show_the_character_refused() {
        assert_eq!(
            Actor::new("o'brien").unwrap_err().to_string(),
            "it holds `'`"
        );
        assert_eq!(
            Actor::new("a b").unwrap_err().to_string(),
            "it holds U+0020"
        );
        assert_eq!(
            Actor::new("a\nb").unwrap_err().to_string(),
            "it holds U+000A"
        );
        assert_eq!(Actor::new("josé").unwrap_err().to_string(), "it holds `é`");
    }

    #[test]
    fn found_names_are_cleaned_not_refused() {
        assert_eq!(Actor::lossy("alice@laptop").as_str(), "alice@laptop");
        assert_eq!(Actor::lossy("O'Brien Jr\n@x").as_str(), "O_Brien_Jr_@x");
        assert_eq!(Actor::lossy("a\\b\"c\u{1b}[31m").as_str(), "a_b_c__31m");
        assert_eq!(Actor::lossy("").as_str(), "unknown");
        assert_eq!(
            Actor::lossy(&"é".repeat(100)).as_str(),
            "_".repeat(ACTOR_MAX_LEN)
        );
        // Whatever goes in, what comes out is itself a valid actor.
        for name in ["", "a b", "'\"\\\n\r\0", &"x'".repeat(80)] {
            let actor = Actor::lossy(name);
            assert_eq!(Actor::new(actor.as_str()), Ok(actor.clone()), "{name:?}");
        }
    }
}
