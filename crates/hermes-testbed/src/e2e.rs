//! Helpers for end-to-end tests of the real `hermes-infra` binary: a temporary directory with a
//! stack file under a unique stack name, a bounded run of the binary, and a guard removing what
//! `apply` created on this machine's Docker engine, also when the test fails.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use hermes_core::labels;

use crate::blocking;
use crate::cleanup::{Removed, list, remove_network};

/// The stack file's name in a [`StackDir`] (the binary's default).
pub const STACK_FILE: &str = "stack.toml";
/// Environment variables starting with this are not passed on from the test's environment.
pub const INHERITED_PREFIX_DROPPED: &str = "HERMES_INFRA_";

/// A temporary directory holding one stack, removed when dropped. Its stack name is unique
/// (`<prefix>-<8 hex>`), so that a [`LocalStackGuard`] for it touches nothing else.
#[derive(Debug)]
pub struct StackDir {
    dir: tempfile::TempDir,
    stack_name: String,
}

impl StackDir {
    /// A new directory and stack name `<prefix>-<8 hex>`. `prefix`: 1 to 31 lowercase letters,
    /// digits and `-`, starting with a letter.
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        ensure!(
            !prefix.is_empty()
                && prefix.len() <= 31
                && prefix.starts_with(|c: char| c.is_ascii_lowercase())
                && !prefix.ends_with('-')
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "`{prefix}` cannot start a stack name (1 to 31 of a-z, 0-9, `-`, from a letter)"
        );
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let stack_name = format!("{prefix}-{}", &suffix[..8]);
        let dir = tempfile::Builder::new()
            .prefix(&format!("hermes-testbed-{stack_name}-"))
            .tempdir()
            .context("creating a stack directory")?;
        Ok(Self { dir, stack_name })
    }

    /// The unique stack name (use it as the stack's `name`).
    pub fn stack_name(&self) -> &str {
        &self.stack_name
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The stack file's path.
    pub fn stack_path(&self) -> PathBuf {
        self.dir.path().join(STACK_FILE)
    }

    /// Writes the stack file; every `{{stack}}` in `text` becomes [`Self::stack_name`].
    pub fn write_stack(&self, text: &str) -> anyhow::Result<PathBuf> {
        self.write(STACK_FILE, &text.replace("{{stack}}", &self.stack_name))
    }

    /// Writes `relative` (inside the directory) with `text`, creating parent directories.
    pub fn write(&self, relative: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join(relative);
        ensure!(
            path.starts_with(self.dir.path()) && !relative.contains(".."),
            "`{relative}` is outside the stack directory"
        );
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Runs `bin ARGS` in this directory (see [`run_binary`]).
    pub fn run(
        &self,
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> anyhow::Result<Output> {
        run_in(bin, Some(self.path()), args, env, timeout)
    }

    /// A guard removing this stack's local containers, networks and volumes when dropped.
    pub fn guard(&self) -> LocalStackGuard {
        LocalStackGuard::new(&self.stack_name)
    }
}

/// Runs `bin ARGS` to its end with stdin closed and output captured, killing it (and its
/// process group) when it runs longer than `timeout`; a run that timed out is an error quoting
/// what it printed. The test's environment is passed on except `HERMES_INFRA_*` variables;
/// `env` is added on top.
pub fn run_binary(
    bin: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<Output> {
    run_in(bin, None, args, env, timeout)
}

fn run_in(
    bin: &Path,
    dir: Option<&Path>,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<Output> {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with(INHERITED_PREFIX_DROPPED) {
            cmd.env_remove(&key);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (OsStr::new(k), OsStr::new(v))));
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let done = blocking::run(cmd, timeout)?;
    if done.timed_out {
        bail!(
            "`{} {}` ran longer than {timeout:?} and was killed; it printed:\n{}\n{}",
            bin.display(),
            args.join(" "),
            String::from_utf8_lossy(&done.output.stdout),
            String::from_utf8_lossy(&done.output.stderr)
        );
    }
    Ok(done.output)
}

/// Removes, when dropped (also when the test fails), every container, network and volume the
/// local provider made for stack `name`: those labelled `hermes-infra/stack=<name>`, and the
/// networks named `hermes-<name>-<env>` that no stack label claims. Shared containers attached to those networks (the apt
/// cache) are only detached. Use it with a unique stack name ([`StackDir::stack_name`]).
#[derive(Debug)]
pub struct LocalStackGuard {
    stack: String,
    program: String,
    armed: bool,
}

impl LocalStackGuard {
    /// A guard for stack `name`, using the `docker` command on `PATH`.
    pub fn new(name: &str) -> Self {
        Self {
            stack: name.to_owned(),
            program: "docker".to_owned(),
            armed: true,
        }
    }

    /// The stack name.
    pub fn stack(&self) -> &str {
        &self.stack
    }

    /// Leaves everything in place when dropped (for debugging a test).
    pub fn disarm(&mut self) {
        self.armed = false;
    }

    /// Removes the stack's objects now (what is left then is removed again on drop).
    pub fn clean(&self) -> anyhow::Result<Removed> {
        let name = &self.stack;
        ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "`{name}` is not a stack name: refusing to remove by it"
        );
        let label = format!("label={}={name}", labels::STACK);
        let p = self.program.as_str();
        let mut removed = Removed::default();
        for id in list(p, &["ps", "-a", "-q", "--no-trunc", "--filter", &label])? {
            blocking::docker(p, &["rm", "--force", "--volumes", &id])?;
            removed.containers.push(id);
        }
        let mut networks = list(
            p,
            &["network", "ls", "-q", "--no-trunc", "--filter", &label],
        )?;
        let format = format!(
            "{{{{.ID}}}} {{{{.Name}}}} {{{{.Label \"{}\"}}}}",
            labels::STACK
        );
        let named = blocking::docker(p, &["network", "ls", "--no-trunc", "--format", &format])?;
        for id in unlabelled_by_name(&named, name) {
            if !networks.contains(&id) {
                networks.push(id);
            }
        }
        for id in networks {
            remove_network(p, &id)?;
            removed.networks.push(id);
        }
        for volume in list(p, &["volume", "ls", "-q", "--filter", &label])? {
            blocking::docker(p, &["volume", "rm", "--force", &volume])?;
            removed.volumes.push(volume);
        }
        Ok(removed)
    }
}

/// Ids of networks named `hermes-<stack>-…` that carry no stack label, from `network ls` lines
/// `ID NAME [STACK-LABEL]`. A network labelled for another stack is never one of them, even when
/// its name starts the same way (stack `a`, environment `b-dev` against stack `a-b`, `dev`).
fn unlabelled_by_name(listing: &str, stack: &str) -> Vec<String> {
    let prefix = format!("hermes-{stack}-");
    listing
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (id, name, label) = (words.next()?, words.next()?, words.next());
            (name.starts_with(&prefix) && label.is_none()).then(|| id.to_owned())
        })
        .collect()
}

impl Drop for LocalStackGuard {
    fn drop(&mut self) {
        if !self.armed || crate::testbed::keep() {
            return;
        }
        match self.clean() {
            Ok(r) if !r.is_empty() => {
                tracing::info!(stack = %self.stack, removed = ?r, "stack cleaned up");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(stack = %self.stack, "stack cleanup failed: {e:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn stack_dirs_have_unique_valid_names_and_stay_inside() {
        let a = StackDir::new("e2e").unwrap();
        let b = StackDir::new("e2e").unwrap();
        assert_ne!(a.stack_name(), b.stack_name());
        assert_eq!(a.stack_name().len(), "e2e-".len() + 8);
        let path = a.write_stack("name = \"{{stack}}\"\n").unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(text, format!("name = \"{}\"\n", a.stack_name()));
        assert!(a.write("../escape", "x").is_err());
        for bad in ["", "E2E", "-x", "x-", "a_b", &"x".repeat(32)] {
            assert!(StackDir::new(bad).is_err(), "{bad}");
        }
        let kept = a.path().to_owned();
        drop(a);
        assert!(!kept.exists());
    }

    #[test]
    fn run_binary_captures_passes_env_and_times_out() {
        let sh = Path::new("/bin/sh");
        let out = run_binary(
            sh,
            &[
                "-c",
                "echo \"$GREETING ${HERMES_INFRA_LEAK:-none}\"; exit 4",
            ],
            &[("GREETING", "hi")],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi none\n");
        assert_eq!(out.status.code(), Some(4));
        let err = run_binary(
            sh,
            &["-c", "echo partial; sleep 20"],
            &[],
            Duration::from_millis(300),
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("was killed") && text.contains("partial"),
            "{text}"
        );
    }

    #[test]
    fn networks_by_name_only_when_no_stack_claims_them() {
        let listing = "n1 hermes-a-dev \nn2 hermes-a-b-dev a-b\nn3 hermes-ab-dev \nn4 bridge \n";
        assert_eq!(unlabelled_by_name(listing, "a"), ["n1"]);
    }

    #[test]
    fn the_guard_refuses_a_pattern_for_a_name() {
        let mut guard = LocalStackGuard::new("a,b");
        assert!(guard.clean().is_err());
        guard.disarm();
    }
}

/// An image made on this machine's Docker engine for one test or benchmark: `base` with one
/// Dockerfile instruction more, under a new id (what a new release would bring). Its tag is
/// removed on drop.
#[derive(Debug)]
pub struct DerivedImage {
    /// Its id (`sha256:...`).
    pub id: String,
    tag: String,
}

impl DerivedImage {
    /// `base` with `change` (a `docker commit --change` instruction, such as `LABEL a=b`),
    /// tagged `hermes-infra-test/derived:<pid>-<digest of change>`.
    pub fn of(base: &str, change: &str) -> anyhow::Result<Self> {
        let pid = std::process::id();
        let hex = hermes_core::digest::of_json(&change);
        let tag = format!(
            "hermes-infra-test/derived:{pid}-{}",
            hex.get(7..19).unwrap_or("0")
        );
        let name = format!("hermes-infra-test-commit-{pid}");
        let docker = |args: &[&str]| -> anyhow::Result<String> {
            let out = Command::new("docker")
                .args(args)
                .output()
                .context("running docker")?;
            ensure!(out.status.success(), "docker {args:?}: {out:?}");
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        docker(&["create", "--name", &name, base])?;
        let committed = docker(&["commit", "--change", change, &name, &tag]);
        docker(&["rm", &name])?;
        committed?;
        let id = docker(&["image", "inspect", "--format", "{{.Id}}", &tag])?;
        Ok(Self { id, tag })
    }
}

impl Drop for DerivedImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["image", "rm", &self.tag])
            .output();
    }
}
