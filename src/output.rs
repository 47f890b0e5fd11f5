//! The one place that prints. Results go to standard output, everything else (progress,
//! warnings, errors) to standard error. Colour only on a terminal, and never with `NO_COLOR`.

use std::io::{IsTerminal, Write};

use crate::cli::ColorChoice;

/// Writes results and messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Printer {
    color_out: bool,
    color_err: bool,
}

impl Printer {
    pub(crate) fn new(choice: ColorChoice) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let pick = |tty: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color,
        };
        Self {
            color_out: pick(std::io::stdout().is_terminal()),
            color_err: pick(std::io::stderr().is_terminal()),
        }
    }

    /// Whether results may carry colour.
    pub(crate) fn color(self) -> bool {
        self.color_out
    }

    /// Whether messages may carry colour.
    pub(crate) fn color_err(self) -> bool {
        self.color_err
    }

    /// A result, on standard output. A closed pipe is not an error.
    #[expect(
        clippy::unused_self,
        reason = "all output goes through the one Printer, so that output settings apply everywhere"
    )]
    pub(crate) fn out(self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }

    /// A message, on standard error.
    #[expect(
        clippy::unused_self,
        reason = "all output goes through the one Printer, so that output settings apply everywhere"
    )]
    pub(crate) fn err(self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
    }

    /// A JSON result on standard output.
    pub(crate) fn json<T: serde::Serialize>(self, value: &T) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        self.out(&text);
        Ok(())
    }
}
