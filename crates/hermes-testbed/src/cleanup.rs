//! Removing what one testbed run created, and nothing else: containers (with their anonymous
//! volumes), firewall rules, networks and volumes carrying `hermes-infra.testbed.run=<run id>`.
//! Objects are found by that label and removed by id.

use anyhow::{Context as _, ensure};

use crate::blocking;
use crate::latency::firewall;
use crate::{RUN_LABEL, TESTBED_LABEL};

/// What a cleanup removed (ids, or firewall rules as `iptables -S` prints them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Container ids.
    pub containers: Vec<String>,
    /// Firewall rules (the latency's `NFQUEUE` rules).
    pub firewall_rules: Vec<String>,
    /// Network ids.
    pub networks: Vec<String>,
    /// Volume names.
    pub volumes: Vec<String>,
}

impl Removed {
    /// Whether nothing was there to remove.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.firewall_rules.is_empty()
            && self.networks.is_empty()
            && self.volumes.is_empty()
    }
}

/// Removes every container, firewall rule, network and volume labelled with testbed run
/// `run_id` (a UUID), using the Docker command line `program`. Runs the blocking variant on a
/// blocking thread.
pub async fn remove_everything_labelled(program: &str, run_id: &str) -> anyhow::Result<Removed> {
    let (program, run_id) = (program.to_owned(), run_id.to_owned());
    tokio::task::spawn_blocking(move || remove_everything_labelled_blocking(&program, &run_id))
        .await
        .context("cleanup thread")?
}

/// [`remove_everything_labelled`] for places that cannot await (`Drop`). Every step is tried
/// even when an earlier one failed; the first error is returned after all of them.
pub fn remove_everything_labelled_blocking(program: &str, run_id: &str) -> anyhow::Result<Removed> {
    ensure!(
        uuid::Uuid::parse_str(run_id).is_ok(),
        "`{run_id}` is not a testbed run id (a UUID): refusing to remove by it"
    );
    let run = format!("label={RUN_LABEL}={run_id}");
    let testbed = format!("label={TESTBED_LABEL}=1");
    let mut removed = Removed::default();
    let mut first_error: Option<anyhow::Error> = None;
    let mut note = |r: anyhow::Result<()>| {
        if let Err(e) = r
            && first_error.is_none()
        {
            first_error = Some(e);
        }
    };

    note((|| {
        let ids = list(
            program,
            &[
                "ps",
                "-a",
                "-q",
                "--no-trunc",
                "--filter",
                &testbed,
                "--filter",
                &run,
            ],
        )?;
        for id in ids {
            blocking::docker(program, &["rm", "--force", "--volumes", &id])?;
            removed.containers.push(id);
        }
        Ok(())
    })());
    note((|| {
        removed.firewall_rules = firewall::remove_labelled(&format!("{RUN_LABEL}={run_id}"))?;
        Ok(())
    })());
    note((|| {
        let ids = list(
            program,
            &[
                "network",
                "ls",
                "-q",
                "--no-trunc",
                "--filter",
                &testbed,
                "--filter",
                &run,
            ],
        )?;
        for id in ids {
            remove_network(program, &id)?;
            removed.networks.push(id);
        }
        Ok(())
    })());
    note((|| {
        let names = list(
            program,
            &["volume", "ls", "-q", "--filter", &testbed, "--filter", &run],
        )?;
        for name in names {
            blocking::docker(program, &["volume", "rm", "--force", &name])?;
            removed.volumes.push(name);
        }
        Ok(())
    })());
    match first_error {
        Some(e) => Err(e.context(format!(
            "cleaning up testbed run {run_id} (removed so far: {removed:?})"
        ))),
        None => Ok(removed),
    }
}

/// The words `docker ARGS` printed.
pub(crate) fn list(program: &str, args: &[&str]) -> anyhow::Result<Vec<String>> {
    Ok(blocking::docker(program, args)?
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

/// Removes network `id`, first detaching containers still on it (only their attachment to this
/// network: a shared container such as the apt cache keeps running).
pub(crate) fn remove_network(program: &str, id: &str) -> anyhow::Result<()> {
    let attached = list(
        program,
        &[
            "network",
            "inspect",
            "--format",
            "{{range $k, $v := .Containers}}{{$k}} {{end}}",
            id,
        ],
    )?;
    for container in attached {
        blocking::docker(
            program,
            &["network", "disconnect", "--force", id, &container],
        )?;
    }
    blocking::docker(program, &["network", "rm", id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_anything_but_a_run_id() {
        for bad in ["", "*", "x", "1"] {
            assert!(
                remove_everything_labelled_blocking("docker", bad).is_err(),
                "{bad}"
            );
        }
    }
}
