//! The bad-input corpus in `tests/bad-stacks/`: every file is refused with diagnostics that name
//! `file:line:column`, say what rule was broken, never echo an inline secret, and match their
//! snapshots.
//!
//! Each corpus file starts with comment lines that say what to expect:
//!
//! ```toml
//! # expect: <a substring of one diagnostic>
//! # at: LINE:COLUMN          (where that diagnostic points)
//! # env: NAME                (optional: load with `--env NAME`)
//! # secret: VALUE            (optional, repeatable: an inline secret that must never be echoed)
//! ```

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use hermes_stack::{Diagnostic, LoadError};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bad-stacks")
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// What a corpus file's header comments promise.
#[derive(Debug, Default)]
struct Header {
    expect: Option<String>,
    at: Option<(usize, usize)>,
    env: Option<String>,
    secrets: Vec<String>,
}

fn header(path: &Path) -> Header {
    let text = std::fs::read_to_string(path).unwrap();
    let mut h = Header::default();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let Some((tag, value)) = line.trim_start_matches('#').split_once(':') else {
            continue;
        };
        let value = value.trim().to_owned();
        match tag.trim() {
            "expect" => h.expect = Some(value),
            "at" => h.at = Some(parse_at(path, &value)),
            "env" => h.env = Some(value),
            "secret" => h.secrets.push(value),
            _ => {}
        }
    }
    h
}

fn parse_at(path: &Path, value: &str) -> (usize, usize) {
    let parsed = value
        .split_once(':')
        .and_then(|(l, c)| Some((l.trim().parse().ok()?, c.trim().parse().ok()?)));
    parsed.unwrap_or_else(|| panic!("{}: `# at: {value}` is not LINE:COLUMN", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Loads a corpus file, failing the test on a panic, a success or an unreadable file.
fn load_invalid(path: &Path, env: Option<&str>) -> Vec<Diagnostic> {
    let name = file_name(path);
    let Ok(result) = catch_unwind(AssertUnwindSafe(|| hermes_stack::load(path, env))) else {
        panic!("{name}: the loader panicked");
    };
    match result {
        Ok(_) => panic!("{name}: loaded without error, but it is in the bad corpus"),
        Err(LoadError::Read { source, .. }) => panic!("{name}: could not be read: {source}"),
        Err(LoadError::Invalid(diagnostics)) => diagnostics,
    }
}

/// The rendered error with the machine-specific directory of `path` replaced, so snapshots are
/// portable.
fn rendered(path: &Path, diagnostics: Vec<Diagnostic>) -> String {
    let dir = format!("{}/", path.parent().unwrap().display());
    LoadError::Invalid(diagnostics)
        .to_string()
        .replace(&dir, "tests/bad-stacks/")
}

fn check(path: &Path, header: &Header, diagnostics: &[Diagnostic]) {
    let name = file_name(path);
    assert!(!diagnostics.is_empty(), "{name}: no diagnostics");
    for d in diagnostics {
        assert!(d.line >= 1 && d.column >= 1, "{name}: {d} has no location");
        assert_eq!(d.file, path, "{name}: {d} names another file");
        assert!(!d.message.trim().is_empty(), "{name}: empty message");
    }
    let expect = header
        .expect
        .as_deref()
        .unwrap_or_else(|| panic!("{name}: the first line must be `# expect: ...`"));
    let all = diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    let matching: Vec<&Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.to_string().contains(expect))
        .collect();
    assert!(
        !matching.is_empty(),
        "{name}: no diagnostic contains {expect:?}:\n{}",
        all.join("\n")
    );
    let (line, column) = header
        .at
        .unwrap_or_else(|| panic!("{name}: add `# at: LINE:COLUMN`"));
    assert!(
        matching
            .iter()
            .any(|d| (d.line, d.column) == (line, column)),
        "{name}: expected the diagnostic at {line}:{column}:\n{}",
        all.join("\n")
    );
    let located = format!("{name}:{line}:{column}: error: ");
    assert!(
        all.iter().any(|d| d.contains(&located)),
        "{name}: the message does not name {located:?}"
    );
}

#[test]
fn every_bad_stack_is_refused_with_a_located_message() {
    insta::glob!("../../../tests/bad-stacks", "*.toml", |path| {
        let header = header(path);
        let diagnostics = load_invalid(path, header.env.as_deref());
        check(path, &header, &diagnostics);
        let message = rendered(path, diagnostics);
        let prefix = format!("tests/bad-stacks/{}:", file_name(path));
        for line in message.lines() {
            assert!(
                line.starts_with(&prefix)
                    || line.starts_with("  help: ")
                    || line.ends_with(" in the stack file"),
                "unexpected line in the message: {line}"
            );
        }
        insta::assert_snapshot!("message", message);
    });
}

#[test]
fn the_corpus_is_large_and_numbered() {
    let files = corpus();
    assert!(files.len() >= 45, "only {} bad stacks", files.len());
    for path in &files {
        let name = file_name(path);
        let (number, rest) = name.split_once('-').unwrap_or_default();
        assert!(
            number.len() == 2 && number.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty(),
            "{name}: name it NN-short-name.toml"
        );
    }
}

#[test]
fn inline_secrets_are_never_echoed() {
    let mut checked = 0;
    for path in corpus() {
        let header = header(&path);
        let name = file_name(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let diagnostics = load_invalid(&path, header.env.as_deref());
        let debug = format!("{diagnostics:?}");
        let message = rendered(&path, diagnostics);
        for secret in &header.secrets {
            assert!(body.contains(secret.as_str()), "{name}: secret not used");
            assert!(
                !message.contains(secret.as_str()),
                "{name} echoes a secret:\n{message}"
            );
            assert!(
                !debug.contains(secret.as_str()),
                "{name}: Debug echoes a secret"
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} inline secrets in the corpus");
}
