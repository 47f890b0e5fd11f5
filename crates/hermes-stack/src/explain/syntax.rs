//! TOML syntax errors, with the key or table they are about and where it was first written.

use std::ops::Range;

/// Rewrites a parse error at `span` of `source`.
pub(crate) fn syntax_error(
    source: &str,
    span: Option<&Range<usize>>,
    message: &str,
) -> (String, Option<String>) {
    let message = message.trim();
    let start = span.map_or(0, |s| s.start.min(source.len()));
    if message == "duplicate key"
        && let Some(span) = span
        && let Some(r) = duplicate(source, span)
    {
        return r;
    }
    let help = if message.starts_with("invalid basic string")
        || message.starts_with("invalid literal string")
    {
        Some(
            "close the string on the same line; for text over several lines use `\"\"\"` ... \
             `\"\"\"`"
                .to_owned(),
        )
    } else if message.starts_with("unclosed table") || message.starts_with("unclosed array of") {
        Some("end the header with `]`, as in `[hosts.main]`".to_owned())
    } else if message.starts_with("string values must be quoted")
        || message.starts_with("invalid float")
        || message.starts_with("invalid integer")
    {
        unquoted_text(source, start)
    } else {
        None
    };
    (format!("TOML syntax: {message}"), help)
}

/// For `memory = 2g`: text values need quotes.
fn unquoted_text(source: &str, start: usize) -> Option<String> {
    let line = line_at(source, start).1;
    let (key, value) = line.split_once('=')?;
    let value = value.trim();
    let word_like = value.chars().any(|c| c.is_ascii_alphabetic())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    word_like.then(|| format!("text values need quotes: `{} = \"{value}\"`", key.trim()))
}

/// The 1-based number and the text of the line holding byte `offset`.
fn line_at(source: &str, offset: usize) -> (usize, &str) {
    let begin = source
        .get(..offset)
        .and_then(|s| s.rfind('\n'))
        .map_or(0, |i| i + 1);
    let end = source
        .get(begin..)
        .and_then(|s| s.find('\n'))
        .map_or(source.len(), |i| begin + i);
    let number = source.get(..begin).map_or(0, |s| s.matches('\n').count()) + 1;
    (number, source.get(begin..end).unwrap_or_default())
}

fn duplicate(source: &str, span: &Range<usize>) -> Option<(String, Option<String>)> {
    let (number, line) = line_at(source, span.start);
    let trimmed = line.trim();
    let lines = source.lines().take(number.saturating_sub(1)).enumerate();
    if trimmed.starts_with('[') {
        let header = trimmed.split('#').next().unwrap_or(trimmed).trim();
        let first = lines
            .filter(|(_, l)| l.split('#').next().unwrap_or(l).trim() == header)
            .map(|(i, _)| i + 1)
            .next();
        return Some((
            format!("TOML syntax: table `{header}` is defined twice"),
            Some(match first {
                Some(n) => format!("it is first defined on line {n}; merge the two into one"),
                None => "merge the two definitions into one".to_owned(),
            }),
        ));
    }
    let key = source.get(span.clone())?.trim();
    let earlier: Vec<(usize, &str)> = lines.collect();
    let first = earlier
        .iter()
        .rev()
        .take_while(|(_, l)| !l.trim_start().starts_with('['))
        .find(|(_, l)| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1);
    Some((
        format!("TOML syntax: key `{key}` is set twice in the same table"),
        Some(match first {
            Some(n) => format!("it is first set on line {n}; keep one of them"),
            None => "keep one of them".to_owned(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_and_tables_name_the_first_line() {
        let src = "[a]\nx = 1\ny = 2\nx = 3\n";
        let at = src.rfind('x').unwrap();
        let (m, h) = syntax_error(src, Some(&(at..at + 1)), "duplicate key");
        assert_eq!(m, "TOML syntax: key `x` is set twice in the same table");
        assert_eq!(h.unwrap(), "it is first set on line 2; keep one of them");
        let src = "[a.b]\nx = 1\n\n[a.b]\n";
        let at = src.rfind('b').unwrap();
        let (m, h) = syntax_error(src, Some(&(at..at + 1)), "duplicate key");
        assert_eq!(m, "TOML syntax: table `[a.b]` is defined twice");
        assert!(h.unwrap().contains("line 1"));
    }

    #[test]
    fn lines_are_found_at_the_edges() {
        assert_eq!(line_at("", 0), (1, ""));
        assert_eq!(line_at("a\nb", 3), (2, "b"));
        assert_eq!(line_at("a\nb\n", 4), (3, ""));
    }
}
