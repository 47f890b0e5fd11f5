//! Loading: parse the TOML, pick the environment, merge its overlay (keeping every value's
//! span), deserialize into [`StackFile`], validate, and expand host groups.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, LineIndex, LoadError, did_you_mean};
use crate::explain;
use crate::model::{self, LoadedStack};
use crate::validate::{self, KeyPath, Problem};
use crate::wire::StackFile;

/// The environment used when a stack declares none.
pub const DEFAULT_ENV: &str = "default";

/// Reads and loads the stack file at `path` for environment `env` (`None`: the stack's default).
pub fn load(path: &Path, env: Option<&str>) -> Result<LoadedStack, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(path, &source, env)
}

/// Reads the stack file at `path` and loads it for every environment it declares (or the one
/// implicit `default` environment), so that every overlay is checked. Problems shared by several
/// environments are reported once.
pub fn load_all(path: &Path) -> Result<Vec<LoadedStack>, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let envs = match DeTable::parse(&source) {
        Ok(root) => declared_environments(root.get_ref()),
        Err(_) => Vec::new(),
    };
    let envs = if envs.is_empty() {
        vec![DEFAULT_ENV.to_owned()]
    } else {
        envs
    };
    let mut loaded = Vec::new();
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    for env in &envs {
        match load_str(path, &source, Some(env)) {
            Ok(stack) => loaded.push(stack),
            Err(LoadError::Invalid(found)) => {
                for d in found {
                    if !diagnostics.contains(&d) {
                        diagnostics.push(d);
                    }
                }
            }
            Err(read) => return Err(read),
        }
    }
    diagnostics.sort_by_key(|d| (d.line, d.column));
    if diagnostics.is_empty() {
        Ok(loaded)
    } else {
        Err(LoadError::Invalid(diagnostics))
    }
}

/// Loads a stack from `source`, reporting problems against `path`.
pub fn load_str(path: &Path, source: &str, env: Option<&str>) -> Result<LoadedStack, LoadError> {
    let index = LineIndex::new(path, source);
    let invalid = |d: Diagnostic| LoadError::Invalid(vec![d]);

    let mut root = DeTable::parse(source).map_err(|e| {
        let span = e.span();
        let (message, help) = explain::syntax_error(source, span.as_ref(), e.message());
        invalid(index.at(span, None, message, help))
    })?;

    let declared = declared_environments(root.get_ref());
    let env = choose_env(root.get_ref(), &declared, env)
        .map_err(|(span, message, help)| invalid(index.at(span, None, message, help)))?;

    let mut problems = Vec::new();
    let overlay = take_overlay(root.get_mut(), &declared, &env, &mut problems);
    if let Some(overlay) = overlay {
        merge(root.get_mut(), overlay);
    }
    if !problems.is_empty() {
        return Err(LoadError::Invalid(
            problems
                .into_iter()
                .map(|(span, message, help)| index.at(span, None, message, help))
                .collect(),
        ));
    }

    let located = root.clone();
    let file: StackFile = serde::Deserialize::deserialize(toml::de::Deserializer::from(root))
        .map_err(|e| {
            let span = e.span();
            let x = explain::serde_error(located.get_ref(), source, span.as_ref(), e.message());
            invalid(index.at(span, x.key, x.message, x.help))
        })?;

    let expanded = model::expand(&file, env.clone());
    let problems = validate::stack(&file, &expanded);
    if !problems.is_empty() {
        return Err(LoadError::Invalid(
            problems
                .into_iter()
                .map(|p| locate(&index, located.get_ref(), p))
                .collect(),
        ));
    }
    Ok(LoadedStack {
        path: PathBuf::from(path),
        source_digest: hermes_core::digest::sha256(source.as_bytes()),
        ..expanded
    })
}

type Located = (Option<Range<usize>>, String, Option<String>);

fn declared_environments(root: &DeTable<'_>) -> Vec<String> {
    root.get("environments")
        .and_then(|v| v.get_ref().as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.get_ref().as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn choose_env(
    root: &DeTable<'_>,
    declared: &[String],
    wanted: Option<&str>,
) -> Result<String, Located> {
    let envs_span = root.get("environments").map(Spanned::span);
    let require = root
        .get("require-env")
        .and_then(|v| v.get_ref().as_bool())
        .unwrap_or(false);
    match wanted {
        Some(env) if declared.iter().any(|d| d == env) => Ok(env.to_owned()),
        Some(env) if declared.is_empty() && env == DEFAULT_ENV => Ok(env.to_owned()),
        Some(env) if declared.is_empty() => Err((
            None,
            format!("this stack declares no environments, so `--env {env}` names nothing"),
            Some(format!(
                "declare it: environments = [\"{env}\"], or leave out --env"
            )),
        )),
        Some(env) => Err((
            envs_span,
            format!(
                "environment `{env}` is not declared (declared: {})",
                declared.join(", ")
            ),
            did_you_mean(env, declared.iter().map(String::as_str))
                .map(|m| format!("did you mean `--env {m}`?"))
                .or_else(|| Some(format!("add \"{env}\" to `environments`"))),
        )),
        None if require && declared.is_empty() => Err((
            root.get("require-env").map(Spanned::span),
            "`require-env = true` but no environments are declared".to_owned(),
            Some(
                "declare them: environments = [\"staging\", \"prod\"], or remove `require-env`"
                    .to_owned(),
            ),
        )),
        None if require => Err((
            root.get("require-env").map(Spanned::span),
            "this stack requires an explicit environment (`require-env = true`)".to_owned(),
            Some(format!("pass --env with one of: {}", declared.join(", "))),
        )),
        None => Ok(root
            .get("default-env")
            .and_then(|v| v.get_ref().as_str().map(str::to_owned))
            .or_else(|| declared.first().cloned())
            .unwrap_or_else(|| DEFAULT_ENV.to_owned())),
    }
}

/// Removes the `overlay` table, checks that each overlay names a declared environment, and
/// returns the overlay of `env`.
fn take_overlay<'i>(
    root: &mut DeTable<'i>,
    declared: &[String],
    env: &str,
    problems: &mut Vec<Located>,
) -> Option<DeTable<'i>> {
    let overlays = root.remove("overlay")?;
    let span = overlays.span();
    let DeValue::Table(overlays) = overlays.into_inner() else {
        problems.push((
            Some(span),
            "`overlay` must be a table of environments: [overlay.<env>]".to_owned(),
            None,
        ));
        return None;
    };
    let mut chosen = None;
    for (key, value) in overlays {
        let name = key.get_ref().to_string();
        if !declared.contains(&name) {
            problems.push((
                Some(key.span()),
                format!("overlay for undeclared environment `{name}`"),
                Some(
                    match did_you_mean(&name, declared.iter().map(String::as_str)) {
                        Some(m) => format!("did you mean `{m}`? Declared: {}", declared.join(", ")),
                        None => format!("declare it: add \"{name}\" to `environments`"),
                    },
                ),
            ));
            continue;
        }
        let value_span = value.span();
        match value.into_inner() {
            DeValue::Table(t) if name == env => chosen = Some(t),
            DeValue::Table(_) => {}
            _ => problems.push((
                Some(value_span),
                format!("`overlay.{name}` must be a table"),
                Some(format!("write it as a section: [overlay.{name}]")),
            )),
        }
    }
    chosen
}

/// Deep-merges `overlay` into `base`: tables merge key by key, anything else replaces.
fn merge<'i>(base: &mut DeTable<'i>, overlay: DeTable<'i>) {
    for (key, value) in overlay {
        match (base.get_mut(key.get_ref().as_ref()), value) {
            (Some(existing), value)
                if existing.get_ref().is_table() && value.get_ref().is_table() =>
            {
                if let (DeValue::Table(into), DeValue::Table(from)) =
                    (existing.get_mut(), value.into_inner())
                {
                    merge(into, from);
                }
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn locate(index: &LineIndex<'_>, root: &DeTable<'_>, problem: Problem) -> Diagnostic {
    let span = match span_of(root, &problem.path, problem.on_key) {
        None => problem
            .fallback
            .as_ref()
            .and_then(|f| span_of(root, f, false)),
        found => found,
    };
    index.at(
        span,
        Some(problem.path.to_string()),
        problem.message,
        problem.help,
    )
}

/// The span of the deepest value along `path` that exists, or of the last key of `path` when
/// `on_key` and the whole path exists.
fn span_of(root: &DeTable<'_>, path: &KeyPath, on_key: bool) -> Option<Range<usize>> {
    let mut span = None;
    let mut table = Some(root);
    let mut array: Option<&[Spanned<DeValue<'_>>]> = None;
    let mut whole = true;
    let mut key_span = None;
    for seg in path.segments() {
        let next = match (seg, table, array) {
            (validate::Seg::Key(k), Some(t), _) => t.get_key_value(k.as_str()).map(|(key, v)| {
                key_span = Some(key.span());
                v
            }),
            (validate::Seg::Index(i), _, Some(a)) => {
                key_span = None;
                a.get(*i)
            }
            _ => None,
        };
        let Some(next) = next else {
            whole = false;
            break;
        };
        span = Some(next.span());
        table = next.get_ref().as_table();
        array = next.get_ref().as_array().map(|a| &a[..]);
    }
    match key_span {
        Some(k) if on_key && whole => Some(k),
        _ => span,
    }
}
