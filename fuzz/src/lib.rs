//! Shared parts of the fuzz targets: the invariants every stack text must satisfy
//! ([`check`]) and a generator of mostly-valid stack texts ([`structured::stack`]).

pub mod structured;

use std::path::Path;

use hermes_plan::Action;
use hermes_stack::LoadError;

/// The environments every input is loaded for: the stack's default, and `prod`.
const ENVS: [Option<&str>; 2] = [None, Some("prod")];

/// Loads `source` for each of [`ENVS`] and asserts the loader's and planner's invariants.
/// Panics (and so makes libFuzzer report a crash) when one does not hold.
pub fn check(source: &str) {
    for env in ENVS {
        match hermes_stack::load_str(Path::new("fuzz.toml"), source, env) {
            Err(err) => check_error(source, env, &err),
            Ok(stack) => {
                if let Some(env) = env {
                    assert_eq!(stack.env, env, "loaded for another environment than asked");
                }
                let desired = hermes_plan::desired(&stack);
                let plan = hermes_plan::plan(&desired, &[]);
                assert_eq!(
                    plan.changes.len(),
                    desired.resources.len(),
                    "a plan against nothing must create each desired resource exactly once \
                     (duplicate addresses?)"
                );
                assert!(
                    plan.changes.iter().all(|c| c.action == Action::Create),
                    "a plan against nothing may only create"
                );
                assert_eq!(plan.summary.create, desired.resources.len());
                assert_eq!(plan.summary.unchanged, 0);
                let text = hermes_plan::text::render(&plan, false);
                assert!(!text.is_empty());
            }
        }
    }
}

fn check_error(source: &str, env: Option<&str>, err: &LoadError) {
    let rendered = err.to_string();
    assert!(!rendered.trim().is_empty(), "empty error message");
    let diagnostics = err.diagnostics();
    assert!(
        !diagnostics.is_empty(),
        "an error for an in-memory source must carry diagnostics: {rendered}"
    );
    let lines = source.lines().count();
    for d in diagnostics {
        assert_eq!(d.file, Path::new("fuzz.toml"), "{d}");
        assert!(d.line >= 1, "line 0 in `{d}` (env {env:?})");
        assert!(d.column >= 1, "column 0 in `{d}` (env {env:?})");
        assert!(
            d.line <= lines + 1,
            "line {} past the end of a {lines}-line input in `{d}` (env {env:?})",
            d.line
        );
        // The column counts characters, so it lies within its line (or just past its end).
        let line_chars = source
            .split('\n')
            .nth(d.line - 1)
            .map_or(0, |l| l.chars().count());
        assert!(
            d.column <= line_chars + 1,
            "column {} past the end of line {} ({line_chars} characters) in `{d}` (env {env:?})",
            d.column,
            d.line
        );
        assert!(
            !d.message.trim().is_empty(),
            "diagnostic without a message at {}:{} (env {env:?})",
            d.line,
            d.column
        );
    }
}

/// The input as text: UTF-8 when it is, otherwise with invalid sequences replaced.
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use arbitrary::Unstructured;

    /// Deterministic pseudo-random bytes (xorshift64*).
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn the_example_stacks_hold_the_invariants() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                super::check(&std::fs::read_to_string(path).unwrap());
            }
        }
    }

    #[test]
    fn an_empty_input_generates_a_valid_stack() {
        let text = super::structured::stack(&mut Unstructured::new(&[])).unwrap();
        hermes_stack::load_str(Path::new("fuzz.toml"), &text, None)
            .unwrap_or_else(|e| panic!("{text}\n{e}"));
    }

    /// The structured generator must reach the planner often, and the rules often.
    #[test]
    fn generated_stacks_are_mostly_valid_and_hold_the_invariants() {
        let (mut ok, mut syntax, mut other) = (0, 0, 0);
        let mut messages = std::collections::BTreeMap::<String, usize>::new();
        for seed in 0..3000 {
            let data = bytes(seed, 64 + (seed as usize % 7) * 64);
            let text = super::structured::stack(&mut Unstructured::new(&data)).unwrap();
            super::check(&text);
            let load = |env| hermes_stack::load_str(Path::new("fuzz.toml"), &text, env);
            match load(None).or_else(|_| load(Some("prod"))) {
                Ok(_) => ok += 1,
                Err(e) if e.to_string().contains("TOML syntax") => {
                    syntax += 1;
                    *messages
                        .entry(e.diagnostics()[0].message.clone())
                        .or_default() += 1;
                }
                Err(e) => {
                    other += 1;
                    *messages
                        .entry(e.diagnostics()[0].message.clone())
                        .or_default() += 1;
                }
            }
        }
        if std::env::var_os("SHOW").is_some() {
            let mut m: Vec<_> = messages.into_iter().collect();
            m.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
            for (msg, n) in m.iter().take(40) {
                eprintln!("{n:5} {msg}");
            }
        }
        eprintln!("ok {ok}, syntax {syntax}, other {other}");
        assert!(ok >= 300, "only {ok} of 3000 generated stacks load");
        assert!(
            syntax <= 600,
            "{syntax} of 3000 generated stacks are not TOML"
        );
    }
}

/// How deep the saved corpora reach: `cargo test --release -- --ignored --nocapture`.
#[cfg(test)]
mod corpus_depth {
    use std::path::Path;

    use arbitrary::Unstructured;

    fn report(target: &str, text_of: impl Fn(&[u8]) -> Option<String>) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("{target}: no corpus at {}", dir.display());
            return;
        };
        let (mut total, mut syntax, mut rules, mut loads) = (0, 0, 0, 0);
        for entry in entries {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            let Some(text) = text_of(&data) else { continue };
            total += 1;
            let load = |env| hermes_stack::load_str(Path::new("fuzz.toml"), &text, env);
            match load(None).or_else(|_| load(Some("prod"))) {
                Ok(_) => loads += 1,
                Err(e) if e.to_string().contains("TOML syntax") => syntax += 1,
                Err(_) => rules += 1,
            }
        }
        eprintln!(
            "{target}: {total} inputs: {loads} load and plan, {rules} fail a format rule, \
             {syntax} are not TOML"
        );
    }

    #[test]
    #[ignore = "reads the local corpus, which is not in git"]
    fn corpus_depth() {
        report("stack_loader", |d| Some(super::text(d).into_owned()));
        report("stack_structured", |d| {
            super::structured::stack(&mut Unstructured::new(d)).ok()
        });
    }
}
