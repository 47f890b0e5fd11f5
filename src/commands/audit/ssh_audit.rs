//! ssh-audit, run from this machine against a host's SSH port: found in the pinned tools folder
//! that `scripts/install-deps` fills, or on `PATH`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::parse::{self, SshAudit};

/// One ssh-audit run (its rate test skipped) is a handful of connections.
const TIMEOUT: Duration = Duration::from_secs(90);

/// The tools folder: `$HERMES_INFRA_TOOLS`, else `$HOME/.cache/hermes-infra/tools`.
fn tools_dir() -> Option<PathBuf> {
    std::env::var_os("HERMES_INFRA_TOOLS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/hermes-infra/tools"))
        })
}

/// The ssh-audit to run: the pinned one first (Debian's package is too old to judge modern
/// algorithms), then one on `PATH`.
pub(crate) fn locate() -> Option<PathBuf> {
    let pinned = tools_dir().map(|dir| dir.join("bin/ssh-audit"));
    let on_path: Vec<PathBuf> = std::env::var_os("PATH").map_or_else(Vec::new, |path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("ssh-audit"))
            .collect()
    });
    pinned.into_iter().chain(on_path).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What to say when ssh-audit is missing.
pub(crate) fn missing() -> String {
    let place = tools_dir().map_or_else(
        || "$HERMES_INFRA_TOOLS/bin".to_owned(),
        |d| d.join("bin").display().to_string(),
    );
    format!(
        "ssh-audit is not installed (looked in {place} and on PATH); run `scripts/install-deps`, \
         which installs the pinned ssh-audit 3.9.0"
    )
}

/// `ssh-audit -j --skip-rate-test -p PORT ADDRESS`, read into its figures.
pub(crate) async fn run(tool: &Path, address: &str, port: u16) -> Result<SshAudit, String> {
    let child = tokio::process::Command::new(tool)
        .args(["-j", "--skip-rate-test", "-p", &port.to_string(), address])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(TIMEOUT, child).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("cannot run `{}`: {e}", tool.display())),
        Err(_) => {
            return Err(format!(
                "ssh-audit did not finish within {} s against {address}:{port}",
                TIMEOUT.as_secs()
            ));
        }
    };
    let exit = output.status.code().unwrap_or(-1);
    parse::ssh_audit(&output.stdout, exit).map_err(|e| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => format!("{e}; {address}:{port}: {}", last.trim()),
            None => format!("{e}; {address}:{port}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ssh_audit_names_the_install_script() {
        assert!(missing().contains("scripts/install-deps"));
        assert!(missing().contains("3.9.0"));
    }
}
