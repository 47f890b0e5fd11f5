//! The human form of a plan: a diff in the style people know from Terraform, colour optional.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use serde_json::Value;

use crate::model::{Action, Change, Plan};

fn style(color: bool, c: AnsiColor) -> Style {
    if color {
        Style::new().fg_color(Some(c.into()))
    } else {
        Style::new()
    }
}

fn symbol(action: Action) -> (&'static str, AnsiColor) {
    match action {
        Action::Replace => ("-/+", AnsiColor::Magenta),
        Action::Delete => ("-", AnsiColor::Red),
        Action::Create => ("+", AnsiColor::Green),
        Action::Update => ("~", AnsiColor::Yellow),
    }
}

/// Renders `plan` as text; `color` adds ANSI colours (only on a terminal).
pub fn render(plan: &Plan, color: bool) -> String {
    let mut out = String::new();
    let bold = if color {
        Style::new().bold()
    } else {
        Style::new()
    };
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "{bold}No changes.{bold:#} {} is as the stack describes ({} resources).",
            plan.scope, plan.summary.unchanged
        );
        return out;
    }
    let _ = writeln!(
        out,
        "{bold}Plan for {}{bold:#}  (plan {})\n",
        plan.scope,
        short(&plan.hash())
    );
    for change in &plan.changes {
        render_change(&mut out, change, color);
    }
    let s = plan.summary;
    let _ = writeln!(
        out,
        "{bold}Plan:{bold:#} {} to create, {} to update, {} to replace, {} to delete, {} unchanged.",
        s.create, s.update, s.replace, s.delete, s.unchanged
    );
    let destructive = s.replace + s.delete;
    if destructive > 0 {
        let warn = style(color, AnsiColor::Red);
        let _ = writeln!(
            out,
            "{warn}{destructive} change(s) destroy something (listed first); apply needs --allow-destroy.{warn:#}"
        );
    }
    out
}

fn short(hash: &str) -> &str {
    let hex = hash.strip_prefix("sha256:").unwrap_or(hash);
    &hex[..hex.len().min(12)]
}

fn render_change(out: &mut String, change: &Change, color: bool) {
    let (sym, c) = symbol(change.action);
    let st = style(color, c);
    let dim = if color {
        Style::new().dimmed()
    } else {
        Style::new()
    };
    let verb = change.action.as_str();
    let _ = writeln!(
        out,
        "  {st}{sym:<3} {}{st:#}  {dim}({verb}: {}){dim:#}",
        change.address, change.reason
    );
    match change.action {
        Action::Create => {
            if let Some(desired) = &change.desired {
                for (key, value) in &desired.attrs {
                    let _ = writeln!(out, "        {key} = {}", show(value));
                }
            }
        }
        Action::Update | Action::Replace => {
            for d in &change.diffs {
                let before = d.before.as_ref().map_or_else(|| "(none)".to_owned(), show);
                let after = d.after.as_ref().map_or_else(|| "(none)".to_owned(), show);
                let note = if d.forces_replacement {
                    "   # forces replacement"
                } else {
                    ""
                };
                let _ = writeln!(out, "        {}: {before} -> {after}{note}", d.key);
            }
        }
        Action::Delete => {
            if let Some(observed) = &change.observed {
                let _ = writeln!(out, "        id = {}", observed.id);
            }
        }
    }
    out.push('\n');
}

/// One-line JSON of a value.
fn show(value: &Value) -> String {
    value.to_string()
}
