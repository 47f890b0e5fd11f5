//! Deserialization errors: unknown keys and values, missing keys, wrong types.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::types::{invalid_type, invalid_value, untagged};
use super::{Explained, Found, find, in_table, keys_of, suggest};
use crate::validate::KeyPath;

/// Top-level tables of named entries, one `[<table>.<name>]` section each.
pub(super) const NAMED: [&str; 2] = ["hosts", "agents"];

/// Tables that hold exactly one of several kinds, and the kinds.
const ONE_OF: [(&str, &[&str]); 3] = [
    ("provider", &["local", "hetzner", "aws"]),
    ("registry", &["ecr", "generic"]),
    ("state", &["local", "s3"]),
];

/// Rewrites a deserialization error at `span` of the (merged) file `root`.
pub(crate) fn serde_error(
    root: &DeTable<'_>,
    source: &str,
    span: Option<&Range<usize>>,
    message: &str,
) -> Explained {
    let message = message.trim();
    let found = span.and_then(|s| find(root, s));
    let at_top = found.is_none() && span.is_none_or(|s| s.start == 0);
    let cx = Cx {
        found: found.as_ref(),
        source,
        at_top,
    };
    let (text, help) = rewrite(&cx, message).unwrap_or_else(|| (message.to_owned(), None));
    Explained {
        key: found.map(|f| f.path.to_string()).filter(|k| !k.is_empty()),
        message: text,
        help,
    }
}

pub(super) struct Cx<'a, 'b, 'i> {
    pub(super) found: Option<&'a Found<'b, 'i>>,
    pub(super) source: &'a str,
    at_top: bool,
}

impl Cx<'_, '_, '_> {
    pub(super) fn path(&self) -> Option<&KeyPath> {
        self.found.map(|f| &f.path)
    }

    pub(super) fn value(&self) -> Option<&DeValue<'_>> {
        self.found.map(|f| f.value.get_ref())
    }

    /// The file's text of the found value.
    pub(super) fn raw(&self) -> Option<&str> {
        self.found.and_then(|f| self.source.get(f.value.span()))
    }

    /// " for `path`", or nothing.
    pub(super) fn for_key(&self) -> String {
        self.path()
            .filter(|p| !p.is_empty())
            .map(|p| format!(" for `{p}`"))
            .unwrap_or_default()
    }

    pub(super) fn last_key(&self) -> &str {
        self.path().and_then(KeyPath::last_key).unwrap_or("key")
    }
}

pub(super) type Rewritten = (String, Option<String>);

fn rewrite(cx: &Cx<'_, '_, '_>, message: &str) -> Option<Rewritten> {
    if let Some(r) = one_of_table(cx, message) {
        return Some(r);
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (word, expected) = rest.split_once('`')?;
        return Some(unknown_field(cx, word, &backticked(expected)));
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (word, expected) = rest.split_once('`')?;
        return Some(unknown_variant(cx, word, &backticked(expected)));
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        return Some(missing_field(cx, rest.trim_end_matches('`')));
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (_, expected) = rest.rsplit_once(", expected ")?;
        return Some(invalid_type(cx, expected));
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        return Some(invalid_value(cx, rest));
    }
    if let Some(name) = message.strip_prefix("data did not match any variant of untagged enum ") {
        return Some(untagged(cx, name));
    }
    None
}

/// The words in backticks of serde's "expected one of `a`, `b`".
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn list(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_field(cx: &Cx<'_, '_, '_>, word: &str, expected: &[&str]) -> Rewritten {
    let table = cx.path().map(KeyPath::parent).unwrap_or_default();
    let help = if expected.is_empty() {
        format!("`{table}` takes no keys")
    } else {
        format!("{}: {}", keys_of(&table), list(expected))
    };
    let message = match suggest(word, expected) {
        Some(m) => format!("unknown key `{word}`, did you mean `{m}`?"),
        None => format!("unknown key `{word}`{}", in_table(&table)),
    };
    (message, Some(help))
}

fn unknown_variant(cx: &Cx<'_, '_, '_>, word: &str, expected: &[&str]) -> Rewritten {
    let on_key = cx.found.is_some_and(|f| f.on_key);
    let path = cx.path().cloned().unwrap_or_default();
    let (what, owner) = if on_key {
        ("kind", path.parent())
    } else {
        ("value", path)
    };
    let owner_text = if owner.is_empty() {
        String::new()
    } else {
        format!(" for `{owner}`")
    };
    let message = match suggest(word, expected) {
        Some(m) => format!("unknown {what} `{word}`{owner_text}, did you mean `{m}`?"),
        None => format!("unknown {what} `{word}`{owner_text}"),
    };
    let choices = if on_key {
        expected
            .iter()
            .map(|e| format!("[{owner}.{e}]"))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        list(expected)
    };
    let help = if owner.is_empty() {
        format!("expected one of: {choices}")
    } else {
        format!("`{owner}` is one of: {choices}")
    };
    (message, Some(help))
}

fn missing_field(cx: &Cx<'_, '_, '_>, field: &str) -> Rewritten {
    let table = match cx.path() {
        Some(p) => in_table(p),
        None if cx.at_top => in_table(&KeyPath::default()),
        None => String::new(),
    };
    let message = format!("missing key `{field}`{table}");
    let parent = cx.path().and_then(KeyPath::last_key);
    let help = match example(parent, field) {
        Some((line, note)) => format!("add `{line}`{note}"),
        None => format!("add `{field} = ...`"),
    };
    (message, Some(help))
}

/// An example line for a required key, and a note about it.
fn example(parent: Option<&str>, field: &str) -> Option<(&'static str, &'static str)> {
    let line = match (parent, field) {
        (Some("model" | "fallback-model"), "model") => "model = \"gpt-4.1\"",
        (_, "model") => {
            "model = { provider = \"openai\", model = \"gpt-4.1\", api-key = \"env:OPENAI_API_KEY\" }"
        }
        (_, "host") => {
            return Some((
                "host = \"main\"",
                ", naming a host from [hosts] (a group with `count = N` makes `<group>-1` ... \
                 `<group>-N`)",
            ));
        }
        (_, "provider") => "provider = \"openai\"",
        (_, "version") => "version = 1",
        (_, "name") => "name = \"my-stack\"",
        (Some("telegram"), "bot-token") => "bot-token = \"env:TELEGRAM_BOT_TOKEN\"",
        (Some("discord"), "bot-token") => "bot-token = \"env:DISCORD_BOT_TOKEN\"",
        (_, "bot-token") => "bot-token = \"env:SLACK_BOT_TOKEN\"",
        (_, "app-token") => "app-token = \"env:SLACK_APP_TOKEN\"",
        (_, "password") => "password = \"env:DASHBOARD_PASSWORD\"",
        (_, "region") => "region = \"eu-central-1\"",
        (_, "location") => "location = \"fsn1\"",
        (_, "server-type") => "server-type = \"cpx22\"",
        (_, "instance-type") => "instance-type = \"t3.medium\"",
        (_, "models") => "models = [\"anthropic.claude-sonnet-4-20250514-v1:0\"]",
        (_, "from") => "from = [\"0.0.0.0/0\", \"::/0\"]",
        (_, "port") => "port = 8080",
        _ => return None,
    };
    let note = if field.ends_with("token") || field == "password" {
        " (a reference to the secret, never the secret itself)"
    } else {
        ""
    };
    Some((line, note))
}

/// `provider`, `registry` and `state`: one table naming exactly one kind.
fn one_of_table(cx: &Cx<'_, '_, '_>, message: &str) -> Option<Rewritten> {
    let shape_error = [
        "wanted exactly 1 element",
        "expected table with exactly 1 entry",
        "invalid type: unit variant",
        "wanted string or table",
        "expected table, found",
    ]
    .iter()
    .any(|m| message.starts_with(m));
    let found = cx.found.filter(|_| shape_error)?;
    let name = match found.path.segments() {
        [crate::validate::Seg::Key(k)] => k.as_str(),
        _ => return None,
    };
    let (_, kinds) = ONE_OF.iter().find(|(n, _)| *n == name)?;
    let tables: Vec<String> = kinds.iter().map(|k| format!("[{name}.{k}]")).collect();
    let choices = tables.join(", ");
    Some(match found.value.get_ref() {
        DeValue::Table(t) if t.len() > 1 => {
            let named: Vec<String> = t
                .keys()
                .map(|k| format!("[{name}.{}]", k.get_ref()))
                .collect();
            (
                format!(
                    "`{name}` has {} kinds ({}), but a stack has exactly one",
                    t.len(),
                    named.join(", ")
                ),
                Some(format!(
                    "keep one of {}; for another {name} too, write a second stack",
                    named.join(" and ")
                )),
            )
        }
        DeValue::String(s) if kinds.contains(&s.as_ref()) => (
            format!("`{name}` is a table, not a string"),
            Some(format!(
                "write [{name}.{s}] with its settings on the lines below it"
            )),
        ),
        _ => (
            format!("`{name}` must name exactly one kind"),
            Some(format!("write one of: {choices}")),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explain(source: &str, at: &str, message: &str) -> Explained {
        let root = DeTable::parse(source).unwrap();
        let start = source.find(at).unwrap();
        serde_error(
            root.get_ref(),
            source,
            Some(&(start..start + at.len())),
            message,
        )
    }

    #[test]
    fn unknown_keys_suggest_and_list_the_table_keys() {
        let x = explain(
            "[agents.a.limits]\nmemroy = \"2g\"\n",
            "memroy",
            "unknown field `memroy`, expected one of `memory`, `cpus`, `pids`",
        );
        assert_eq!(x.message, "unknown key `memroy`, did you mean `memory`?");
        assert_eq!(
            x.help.unwrap(),
            "keys of `agents.a.limits`: `memory`, `cpus`, `pids`"
        );
        assert_eq!(x.key.unwrap(), "agents.a.limits.memroy");
    }

    #[test]
    fn missing_keys_name_their_table() {
        let src = "[agents.a]\nhost = \"main\"\n";
        let root = DeTable::parse(src).unwrap();
        let table = root.get_ref()["agents"].get_ref().as_table().unwrap()["a"].span();
        let x = serde_error(root.get_ref(), src, Some(&table), "missing field `model`");
        assert_eq!(x.message, "missing key `model` in `agents.a`");
        let x = serde_error(root.get_ref(), src, None, "missing field `version`");
        assert_eq!(x.message, "missing key `version` at the top level");
    }

    #[test]
    fn wrong_types_never_echo_strings() {
        let x = explain(
            "[agents.a.messaging]\ntelegram = \"123:hunter2\"\n",
            "\"123:hunter2\"",
            "invalid type: string \"123:hunter2\", expected struct Telegram",
        );
        assert_eq!(
            x.message,
            "wrong type for `agents.a.messaging.telegram`: expected a table, found a string"
        );
        assert!(!format!("{x:?}").contains("hunter2"));
        let x = explain(
            "version = \"1\"\n",
            "\"1\"",
            "invalid type: string \"1\", expected u32",
        );
        assert_eq!(x.help.unwrap(), "remove the quotes: `version = 1`");
    }

    #[test]
    fn unknown_messages_pass_through() {
        let x = explain("a = 1\n", "1", "something new");
        assert_eq!(x.message, "something new");
        assert_eq!(x.help, None);
    }
}
