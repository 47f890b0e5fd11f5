//! `hermes-infra init`: writes a commented starter stack.

use std::path::Path;

use anyhow::{Context, bail};

use crate::Outcome;
use crate::output::Printer;

const TEMPLATE: &str = include_str!("../../templates/init/stack.toml");

/// The starter stack for `name`, referring to itself as `file`.
pub(crate) fn starter(name: &str, file: &str) -> String {
    TEMPLATE.replace("{{name}}", name).replace("{{file}}", file)
}

/// A stack name made from a file name: `Shop Prod.toml` gives `shop-prod`.
fn name_from_file_stem(stem: &str) -> String {
    let cleaned: String = stem
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let cleaned = cleaned.trim_matches('-').to_owned();
    if cleaned.is_empty() || cleaned == "stack" {
        "my-stack".to_owned()
    } else {
        cleaned
    }
}

pub(crate) fn run(
    path: &Path,
    name: Option<&str>,
    force: bool,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    if path.exists() && !force {
        bail!(
            "`{}` already exists; pass --force to overwrite it",
            path.display()
        );
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name.map_or_else(|| name_from_file_stem(&stem), str::to_owned);
    let text = starter(&name, &path.display().to_string());
    hermes_stack::load_str(path, &text, None)
        .with_context(|| format!("the name `{name}` does not make a valid stack; pass --name"))?;
    std::fs::write(path, text).with_context(|| format!("cannot write `{}`", path.display()))?;
    printer.out(&format!(
        "Wrote {}: stack `{name}`.\nNext: hermes-infra validate {0}, then hermes-infra plan {0}\n",
        path.display()
    ));
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_file_names() {
        assert_eq!(name_from_file_stem("Shop Prod"), "shop-prod");
        assert_eq!(name_from_file_stem("stack"), "my-stack");
        assert_eq!(name_from_file_stem("__"), "my-stack");
    }
}
