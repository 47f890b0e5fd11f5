//! Wires real implementations into the engine for one loaded stack: the provider of its
//! hosts, its state store, secret resolution, and a reporter that prints progress.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use hermes_core::seams::Provider;
use hermes_engine::{Engine, Event, Reporter};
use hermes_stack::LoadedStack;
use hermes_stack::wire::{Provider as ProviderConfig, State as StateConfig};

use crate::output::Printer;
use crate::secrets::LocalSecrets;

/// Per-call timeout of the local Docker client.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(30);

/// The folder a stack file lives in (relative paths in the stack start there).
pub(crate) fn stack_dir(stack: &LoadedStack) -> PathBuf {
    stack
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn providers(stack: &LoadedStack) -> anyhow::Result<Vec<Arc<dyn Provider>>> {
    match &stack.file.provider {
        ProviderConfig::Local(_) => Ok(vec![Arc::new(hermes_provider_local::LocalProvider::new(
            DOCKER_TIMEOUT,
        ))]),
        other => bail!(
            "the `{}` provider is not available in this build of hermes-infra yet: `validate` checks \
             this stack, but `plan` and `apply` need to observe its hosts",
            other.name()
        ),
    }
}

fn state_root(stack: &LoadedStack) -> anyhow::Result<PathBuf> {
    match &stack.file.state {
        StateConfig::Local(local) => Ok(stack_dir(stack).join(&local.path).join("state")),
        StateConfig::S3(s3) => bail!(
            "the S3 state backend (bucket `{}`) is not available in this build yet; use [state.local]",
            s3.bucket
        ),
    }
}

/// The engine for `stack`.
pub(crate) fn engine(stack: &LoadedStack, printer: Printer) -> anyhow::Result<Engine> {
    let store = Arc::new(hermes_state::LocalStateStore::new(state_root(stack)?));
    let secrets = Arc::new(LocalSecrets {
        base: stack_dir(stack),
        cmd_timeout: Duration::from_secs(30),
    });
    let reporter = Arc::new(TextReporter { printer });
    Ok(Engine::new(providers(stack)?, store, reporter, secrets))
}

/// Prints engine progress on standard error.
struct TextReporter {
    printer: Printer,
}

impl Reporter for TextReporter {
    fn event(&self, event: &Event) {
        let line = match event {
            Event::LockWaiting {
                holder,
                operation,
                age,
            } => {
                format!(
                    "waiting for the lock held by {holder} for `{operation}` ({} old)\n",
                    humantime::format_duration(Duration::from_secs(age.as_secs()))
                )
            }
            Event::StepStarted { address, action } => format!("  {action:?} {address} ...\n"),
            Event::StepFinished {
                address,
                action,
                elapsed,
            } => {
                format!(
                    "  {action:?} {address} done ({:.1}s)\n",
                    elapsed.as_secs_f64()
                )
            }
            Event::StepFailed {
                address,
                action,
                error,
            } => format!("  {action:?} {address} FAILED: {error}\n"),
            Event::Cancelled { not_started } => {
                format!("interrupted: {not_started} step(s) not started\n")
            }
            _ => return,
        };
        self.printer.err(&line);
    }
}
