//! Turns the messages of the TOML parser and of serde into ours: named after the key they are
//! about, with what was expected and, where we can tell, what was probably meant. Values are
//! not echoed back unless they are plainly harmless (numbers, booleans), because the value may
//! be a secret pasted in the wrong place.

mod serde_errors;
mod syntax;
mod types;

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::validate::KeyPath;

pub(crate) use serde_errors::serde_error;
pub(crate) use syntax::syntax_error;

/// A rewritten message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Explained {
    /// The key path the message is about, when known.
    pub(crate) key: Option<String>,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
}

/// The key or value of the file at a span reported by the deserializer.
pub(crate) struct Found<'a, 'i> {
    pub(crate) path: KeyPath,
    /// The span is the key's, not the value's.
    pub(crate) on_key: bool,
    pub(crate) value: &'a Spanned<DeValue<'i>>,
}

/// The deepest key or value whose span is exactly `span`.
pub(crate) fn find<'a, 'i>(root: &'a DeTable<'i>, span: &Range<usize>) -> Option<Found<'a, 'i>> {
    let mut best = None;
    walk_table(root, &KeyPath::default(), span, &mut best);
    best
}

fn walk_table<'a, 'i>(
    table: &'a DeTable<'i>,
    path: &KeyPath,
    span: &Range<usize>,
    best: &mut Option<Found<'a, 'i>>,
) {
    for (key, value) in table {
        let path = path.key(key.get_ref());
        if key.span() == *span || value.span() == *span {
            *best = Some(Found {
                path: path.clone(),
                on_key: key.span() == *span,
                value,
            });
        }
        walk_value(value, &path, span, best);
    }
}

fn walk_value<'a, 'i>(
    value: &'a Spanned<DeValue<'i>>,
    path: &KeyPath,
    span: &Range<usize>,
    best: &mut Option<Found<'a, 'i>>,
) {
    match value.get_ref() {
        DeValue::Table(table) => walk_table(table, path, span, best),
        DeValue::Array(array) => {
            for (i, item) in array.iter().enumerate() {
                let path = path.index(i);
                if item.span() == *span {
                    *best = Some(Found {
                        path: path.clone(),
                        on_key: false,
                        value: item,
                    });
                }
                walk_value(item, &path, span, best);
            }
        }
        _ => {}
    }
}

/// " in `agents.acme`", or " at the top level".
pub(crate) fn in_table(path: &KeyPath) -> String {
    if path.is_empty() {
        " at the top level".to_owned()
    } else {
        format!(" in `{path}`")
    }
}

/// "keys of `agents.acme`", or "top-level keys".
pub(crate) fn keys_of(path: &KeyPath) -> String {
    if path.is_empty() {
        "top-level keys".to_owned()
    } else {
        format!("keys of `{path}`")
    }
}

/// Words the format does not use, mapped to what they most likely mean.
const ALIASES: [(&str, &str); 14] = [
    ("letsencrypt", "acme"),
    ("lets-encrypt", "acme"),
    ("le", "acme"),
    ("none", "off"),
    ("http", "off"),
    ("claude", "anthropic"),
    ("gpt", "openai"),
    ("chatgpt", "openai"),
    ("ec2", "aws"),
    ("hcloud", "hetzner"),
    ("docker", "local"),
    ("ollama", "custom"),
    ("vllm", "custom"),
    ("openai-compatible", "custom"),
];

/// The candidate `word` most likely stands for: a close spelling, or a known alias.
pub(crate) fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    crate::diagnostic::did_you_mean(word, candidates.iter().copied()).or_else(|| {
        let lower = word.to_ascii_lowercase();
        let (_, meant) = ALIASES.iter().find(|(alias, _)| *alias == lower)?;
        candidates.iter().copied().find(|c| c == meant)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_values_by_span() {
        let src = "a = 1\n[b.c]\nd = [\"x\", \"y\"]\n";
        let root = DeTable::parse(src).unwrap();
        let y = src.find("\"y\"").unwrap();
        let found = find(root.get_ref(), &(y..y + 3)).unwrap();
        assert_eq!(found.path.to_string(), "b.c.d[1]");
        assert!(!found.on_key);
        let d = src.find('d').unwrap();
        let found = find(root.get_ref(), &(d..d + 1)).unwrap();
        assert_eq!(found.path.to_string(), "b.c.d");
        assert!(found.on_key);
    }

    #[test]
    fn aliases_suggest_the_word_we_use() {
        assert_eq!(
            suggest("letsencrypt", &["acme", "self-signed", "off"]),
            Some("acme")
        );
        assert_eq!(
            suggest("claude", &["openai", "anthropic"]),
            Some("anthropic")
        );
        assert_eq!(suggest("claude", &["local", "aws"]), None);
    }
}
