//! Saved plans: `plan --out FILE` writes one, `apply FILE` applies exactly it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// What `plan --out` writes: the plan and the stack file it came from.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SavedPlan {
    /// Marks the file as a saved plan and gives its format version.
    #[serde(rename = "hermes-infra-plan")]
    pub(crate) format: u32,
    /// The stack file, as given on the command line when the plan was made.
    pub(crate) stack: PathBuf,
    /// The plan.
    pub(crate) plan: hermes_plan::Plan,
}

impl SavedPlan {
    pub(crate) fn write(path: &Path, stack: &Path, plan: &hermes_plan::Plan) -> anyhow::Result<()> {
        let saved = SavedPlan {
            format: hermes_plan::PLAN_FORMAT,
            stack: stack.to_path_buf(),
            plan: plan.clone(),
        };
        let text = serde_json::to_string_pretty(&saved)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write the plan to `{}`", path.display()))
    }

    /// Reads `path` if it is a saved plan; `Ok(None)` when it is something else (a stack file).
    pub(crate) fn read_if_plan(path: &Path) -> anyhow::Result<Option<SavedPlan>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        if !text.trim_start().starts_with('{') {
            return Ok(None);
        }
        let saved: SavedPlan = serde_json::from_str(&text).with_context(|| {
            format!(
                "`{}` looks like JSON but is not a plan saved by `hermes-infra plan --out`",
                path.display()
            )
        })?;
        if saved.format != hermes_plan::PLAN_FORMAT {
            bail!(
                "`{}` is a plan of format {}, this hermes-infra reads format {}; make a new plan",
                path.display(),
                saved.format,
                hermes_plan::PLAN_FORMAT
            );
        }
        Ok(Some(saved))
    }
}
