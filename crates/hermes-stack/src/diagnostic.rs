//! Diagnostics: what is wrong, where (`file:line:column`), and how to fix it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a stack file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The dotted key path of the offending value, when known (`agents.acme.limits.memory`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What rule was broken.
    pub message: String,
    /// How to fix it, when we can tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Why a stack could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read stack file `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was read but breaks the format's rules.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&d.to_string());
    }
    let n = diagnostics.len();
    let plural = if n == 1 { "" } else { "s" };
    out.push('\n');
    out.push_str(&n.to_string());
    out.push_str(" error");
    out.push_str(plural);
    out.push_str(" in the stack file");
    out
}

impl LoadError {
    /// The diagnostics, when the file was read.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            LoadError::Invalid(d) => d,
            LoadError::Read { .. } => &[],
        }
    }
}

/// Turns byte offsets of one source text into 1-based line and column numbers.
pub(crate) struct LineIndex<'a> {
    source: &'a str,
    file: &'a Path,
    /// Byte offset of the start of every line.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(file: &'a Path, source: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            source,
            file,
            starts,
        }
    }

    pub(crate) fn at(
        &self,
        span: Option<Range<usize>>,
        key: Option<String>,
        message: String,
        help: Option<String>,
    ) -> Diagnostic {
        let offset = floor_char_boundary(
            self.source,
            span.map_or(0, |s| s.start.min(self.source.len())),
        );
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or_default();
        let column = self
            .source
            .get(start..offset)
            .map_or(0, |l| l.chars().count())
            + 1;
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            key,
            message,
            help,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The closest of `candidates` to `word`, when it is close enough to be a likely typo, or else
/// the one that `word` abbreviates or extends (`prod` for `production`).
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let candidates: Vec<&'c str> = candidates.into_iter().collect();
    let close = candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    close.or_else(|| {
        candidates.into_iter().find(|c| {
            c.len() >= 3 && word.len() >= 3 && (word.starts_with(c) || c.starts_with(word))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based_and_count_characters() {
        let src = "a = 1\nbé = \"x\"\n";
        let idx = LineIndex::new(Path::new("s.toml"), src);
        let d = idx.at(
            Some(src.find('"').unwrap()..src.len()),
            None,
            "m".into(),
            None,
        );
        assert_eq!((d.line, d.column), (2, 6));
        assert_eq!(idx.at(None, None, "m".into(), None).line, 1);
        let end = idx.at(Some(src.len()..src.len()), None, "m".into(), None);
        assert_eq!((end.line, end.column), (3, 1));
        let empty = LineIndex::new(Path::new("e.toml"), "");
        let d = empty.at(Some(5..6), None, "m".into(), None);
        assert_eq!((d.line, d.column), (1, 1));
    }

    #[test]
    fn typos_get_suggestions_and_nonsense_does_not() {
        assert_eq!(
            did_you_mean("memroy", ["memory", "cpus", "pids"]),
            Some("memory")
        );
        assert_eq!(
            did_you_mean("hetzer", ["local", "hetzner", "aws"]),
            Some("hetzner")
        );
        assert_eq!(did_you_mean("zzzzzz", ["memory", "cpus"]), None);
        assert_eq!(
            did_you_mean("production", ["staging", "prod"]),
            Some("prod")
        );
        assert_eq!(did_you_mean("ab", ["abcdefgh"]), None);
    }
}
