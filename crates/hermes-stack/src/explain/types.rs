//! Values of the wrong type or out of range.

use toml::de::DeValue;

use super::serde_errors::{Cx, NAMED, Rewritten};

/// "a string", "an integer", ... for the value found, or from serde's description.
fn kind_of(value: Option<&DeValue<'_>>) -> &'static str {
    match value {
        Some(DeValue::String(_)) => "a string",
        Some(DeValue::Integer(_)) => "an integer",
        Some(DeValue::Float(_)) => "a float",
        Some(DeValue::Boolean(_)) => "a boolean",
        Some(DeValue::Datetime(_)) => "a date-time",
        Some(DeValue::Array(_)) => "an array",
        Some(DeValue::Table(_)) => "a table",
        None => "a value of another type",
    }
}

/// Serde's name of an expected type, in the words of the stack format.
fn expected_words(expected: &str) -> &str {
    match expected {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" | "u64" | "usize" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "`true` or `false`",
        "a sequence" => "an array",
        "a map" => "a table",
        e if e.starts_with("struct ") => "a table",
        e => e,
    }
}

pub(super) fn invalid_type(cx: &Cx<'_, '_, '_>, expected: &str) -> Rewritten {
    let wanted = expected_words(expected);
    let message = format!(
        "wrong type{}: expected {wanted}, found {}",
        cx.for_key(),
        kind_of(cx.value())
    );
    (message, type_help(cx, wanted))
}

fn type_help(cx: &Cx<'_, '_, '_>, wanted: &str) -> Option<String> {
    let key = cx.last_key();
    let numeric = wanted.contains("number");
    match cx.value()? {
        DeValue::String(s) if numeric && s.trim().parse::<f64>().is_ok() => {
            Some(format!("remove the quotes: `{key} = {}`", s.trim()))
        }
        DeValue::String(s)
            if wanted == "`true` or `false`"
                && ["true", "false", "yes", "no", "on", "off"]
                    .contains(&s.trim().to_ascii_lowercase().as_str()) =>
        {
            Some(format!(
                "write `{key} = true` or `{key} = false`, without quotes"
            ))
        }
        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) if wanted == "a string" => {
            cx.raw().map(|raw| format!("put it in quotes: \"{raw}\""))
        }
        DeValue::Array(items) if wanted == "a table" && NAMED.contains(&key) => {
            let names: Vec<String> = items
                .iter()
                .filter_map(|i| i.get_ref().as_str())
                .take(3)
                .map(|n| format!("[{key}.{n}]"))
                .collect();
            Some(if names.is_empty() {
                format!("write one section per entry, such as [{key}.main]")
            } else {
                format!("write one section per entry: {}", names.join(", "))
            })
        }
        DeValue::Array(_) | DeValue::String(_) if wanted == "a table" => {
            let path = cx.path()?;
            Some(format!(
                "`{key}` takes a table: write [{path}] with its keys on the lines below it, or \
                 `{key} = {{ key = value, ... }}`"
            ))
        }
        _ => None,
    }
}

pub(super) fn invalid_value(cx: &Cx<'_, '_, '_>, rest: &str) -> Rewritten {
    let (found, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, ""));
    let wanted = expected_words(expected);
    let number = found
        .strip_prefix("integer ")
        .or_else(|| found.strip_prefix("floating point "))
        .map(|n| n.trim_matches('`'));
    let message = match number {
        Some(n) => format!("{n} is out of range{}: expected {wanted}", cx.for_key()),
        None => format!("invalid value{}: expected {wanted}", cx.for_key()),
    };
    (message, None)
}

pub(super) fn untagged(cx: &Cx<'_, '_, '_>, name: &str) -> Rewritten {
    let found = kind_of(cx.value());
    match name {
        "SysctlValue" => {
            let message = format!(
                "sysctl values are numbers or strings, but{} is {found}",
                cx.path().map(|p| format!(" `{p}`")).unwrap_or_default()
            );
            (message, dotted_sysctl(cx))
        }
        "PortRange" => (
            format!(
                "a port is a number, such as `8080`, or a range in quotes, such as \
                 `\"8000-8010\"`; found {found}"
            ),
            None,
        ),
        _ => (format!("wrong type{}: found {found}", cx.for_key()), None),
    }
}

/// For `net.ipv4.tcp_syncookies = 1` written without quotes: the quoted line to write.
fn dotted_sysctl(cx: &Cx<'_, '_, '_>) -> Option<String> {
    let found = cx.found?;
    let mut keys = vec![found.path.last_key()?.to_owned()];
    let mut value = found.value;
    while let DeValue::Table(t) = value.get_ref() {
        let (k, v) = t.iter().next().filter(|_| t.len() == 1)?;
        keys.push(k.get_ref().to_string());
        value = v;
    }
    let raw = cx.source.get(value.span())?;
    Some(format!(
        "sysctl keys contain dots, so quote the whole key: \"{}\" = {raw}",
        keys.join(".")
    ))
}
