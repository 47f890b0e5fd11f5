//! Host verbs: `status` (power state, address, pinned key, pending changes of every host),
//! `ssh HOST` (a shell or a command, with the pinned host key enforced) and `power on|off HOST`.

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use hermes_core::seams::{HostEndpoint, StateStore};
use hermes_core::{Address, Kind, ObservedResource};
use hermes_remote::HostKey;

use crate::Outcome;
use crate::cli::{OutputFormat, PowerState, StackArgs};
use crate::commands::remote_command::RemoteCommand;
use crate::output::Printer;
use crate::wiring::{self, Wired};

const SCAN_TIMEOUT: Duration = Duration::from_secs(10);

/// One agent of `status`.
#[derive(serde::Serialize)]
struct AgentRow {
    agent: String,
    host: String,
    /// `healthy`, what is wrong with its container, or `missing` (in the stack, not deployed).
    health: String,
    /// The change a plan would make to the agent, with its reason.
    pending: Option<String>,
}

/// One line of `status`.
#[derive(serde::Serialize)]
struct HostRow {
    host: String,
    /// `running`, `off`, or `missing` (in the stack, not created).
    state: String,
    address: Option<String>,
    /// `shared` (a container on this machine's kernel) or `own` (a VM or a cloud server).
    kernel: Option<String>,
    host_key_pinned: bool,
    /// The change a plan would make to the host, with its reason.
    pending: Option<String>,
}

pub(crate) async fn status(
    args: &StackArgs,
    output: OutputFormat,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let (loaded, wired) = wiring::load(args, printer).await?;
    let scope = loaded.scope();
    let observed = wired.engine.observe(&scope).await?;
    let plan = hermes_plan::plan(&hermes_plan::desired(&loaded), &observed);
    let state = wired.store.load(&scope).await?;
    let mut names: Vec<String> = loaded.hosts.iter().map(|h| h.name.clone()).collect();
    for o in observed.iter().filter(|o| o.address.kind == Kind::Host) {
        if !names.contains(&o.address.name) {
            names.push(o.address.name.clone());
        }
    }
    let attr = |o: Option<&ObservedResource>, key: &str| {
        o.and_then(|o| o.attrs.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let rows: Vec<HostRow> = names
        .into_iter()
        .map(|name| {
            let address = Address::new(Kind::Host, &name);
            let found = observed.iter().find(|o| o.address == address);
            let change = plan.changes.iter().find(|c| c.address == address);
            HostRow {
                state: attr(found, "state").unwrap_or_else(|| "missing".to_owned()),
                address: attr(found, "address"),
                kernel: attr(found, "kernel"),
                host_key_pinned: state.host_keys.contains_key(&name),
                pending: change.map(|c| format!("{}: {}", c.action.as_str(), c.reason)),
                host: name,
            }
        })
        .collect();
    let agents: Vec<AgentRow> = loaded
        .file
        .agents
        .iter()
        .map(|(name, agent)| {
            let address = Address::new(Kind::Agent, name.as_str());
            let found = observed.iter().find(|o| o.address == address);
            let change = plan.changes.iter().find(|c| c.address == address);
            let health = match found {
                None => "missing".to_owned(),
                Some(o) => o
                    .drift
                    .get("container")
                    .map_or_else(|| "healthy".to_owned(), std::clone::Clone::clone),
            };
            AgentRow {
                agent: name.to_string(),
                host: agent.host.clone(),
                health,
                pending: change.map(|c| format!("{}: {}", c.action.as_str(), c.reason)),
            }
        })
        .collect();
    match output {
        OutputFormat::Json => {
            printer.json(&json!({
                "scope": scope,
                "hosts": rows,
                "agents": agents,
                "changes_pending": plan.changes.len(),
            }))?;
        }
        OutputFormat::Text => {
            let mut text = format!(
                "{scope}: {} host(s), {} change(s) pending\n",
                rows.len(),
                plan.changes.len()
            );
            let _ = writeln!(
                text,
                "  {:<20} {:<8} {:<16} {:<7} {:<6} PENDING",
                "HOST", "STATE", "ADDRESS", "KERNEL", "PINNED"
            );
            for r in &rows {
                let _ = writeln!(
                    text,
                    "  {:<20} {:<8} {:<16} {:<7} {:<6} {}",
                    r.host,
                    r.state,
                    r.address.as_deref().unwrap_or("-"),
                    r.kernel.as_deref().unwrap_or("-"),
                    if r.host_key_pinned { "yes" } else { "no" },
                    r.pending.as_deref().unwrap_or("up to date"),
                );
            }
            if !agents.is_empty() {
                let _ = writeln!(
                    text,
                    "  {:<20} {:<20} {:<24} PENDING",
                    "AGENT", "HOST", "HEALTH"
                );
                for a in &agents {
                    let _ = writeln!(
                        text,
                        "  {:<20} {:<20} {:<24} {}",
                        a.agent,
                        a.host,
                        a.health,
                        a.pending.as_deref().unwrap_or("up to date"),
                    );
                }
            }
            printer.out(&text);
        }
    }
    Ok(Outcome::Done)
}

/// The observed host called `host`, running, with its address.
async fn running_host(
    wired: &Wired,
    scope: &hermes_core::Scope,
    host: &str,
    stack: &Path,
) -> anyhow::Result<(ObservedResource, String)> {
    let observed = wired.observe_hosts(scope).await?;
    let address = Address::new(Kind::Host, host);
    let Some(found) = observed.into_iter().find(|o| o.address == address) else {
        bail!("host `{host}` does not exist in {scope}; `hermes-infra status` lists the hosts");
    };
    let state = found
        .attrs
        .get("state")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown");
    if state != "running" {
        bail!(
            "host `{host}` is {state}; power it on with `hermes-infra power on {} {host}`",
            stack.display()
        );
    }
    let ip = found
        .attrs
        .get("address")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let ip = ip.with_context(|| format!("host `{host}` has no address yet"))?;
    Ok((found, ip))
}

/// Runs `remote` on `host` over its pinned SSH connection; the outcome carries its exit status.
pub(crate) async fn ssh(
    args: &StackArgs,
    host: &str,
    accept_new_host_key: bool,
    remote: &RemoteCommand,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let (loaded, wired) = wiring::load(args, printer).await?;
    let target = PinnedSsh::to(
        &wired,
        &loaded.scope(),
        host,
        &args.stack,
        accept_new_host_key,
        printer,
    )
    .await?;
    let status = target
        .run(remote, std::io::stdin())
        .context("cannot run `ssh` (install openssh-client)")?;
    Ok(
        match status
            .code()
            .map_or(255, |c| u8::try_from(c).unwrap_or(255))
        {
            0 => Outcome::Done,
            n => Outcome::Code(n),
        },
    )
}

/// The system's `ssh` client aimed at a running host as its admin, trusting only the host key
/// pinned in the state (written to a `known_hosts` file of its own beside the admin key).
pub(crate) struct PinnedSsh {
    key: std::path::PathBuf,
    known_hosts: std::path::PathBuf,
    endpoint: HostEndpoint,
}

impl PinnedSsh {
    /// Checks that `host` runs and presents its pinned key (or pins the key it presents when
    /// `accept_new_host_key`, after checking it through the provider's own channel).
    pub(crate) async fn to(
        wired: &Wired,
        scope: &hermes_core::Scope,
        host: &str,
        stack: &Path,
        accept_new_host_key: bool,
        printer: Printer,
    ) -> anyhow::Result<Self> {
        let (found, ip) = running_host(wired, scope, host, stack).await?;
        let state = wired.store.load(scope).await?;
        // Where sshd listens now: the stack's port once host-hardening moved it there.
        let port = state.ssh_port(host);
        let endpoint = HostEndpoint {
            host: host.to_owned(),
            address: ip.clone(),
            port,
            user: wired.admin_user.clone(),
        };
        let presented = hermes_remote::scan_host_key(&endpoint, SCAN_TIMEOUT).await?;
        let pinned = state.host_keys.get(host).cloned();
        if accept_new_host_key {
            accept(wired, scope, host, &found, &presented, printer).await?;
        } else {
            match pinned.as_deref().map(HostKey::parse) {
                None => bail!(
                    "host `{host}` has no pinned host key in the state of {scope} (keys are pinned \
                     when hermes-infra creates a host); to trust the key it presents now, {} ",
                    hermes_remote::accept_new_key_command(host)
                ),
                Some(Err(e)) => {
                    bail!("the pinned host key of `{host}` in the state is unreadable: {e}")
                }
                Some(Ok(pin)) if pin.openssh() != presented.openssh() => bail!(
                    "host `{host}` ({ip}:{port}) presented {presented}, but {} was pinned when it \
                     was created; if the host was rebuilt on purpose, accept the new key with \
                     `{}`, otherwise treat this as a possible attack",
                    pin.fingerprint(),
                    hermes_remote::accept_new_key_command(host)
                ),
                Some(Ok(_)) => {}
            }
        }
        let key = wired
            .admin_key
            .as_deref()
            .context("this stack's provider has no admin key for ssh yet")?
            .to_path_buf();
        let known_hosts = key.with_file_name("known_hosts");
        std::fs::write(&known_hosts, format!("{ip} {}\n", presented.openssh()))
            .with_context(|| format!("cannot write `{}`", known_hosts.display()))?;
        Ok(Self {
            key,
            known_hosts,
            endpoint,
        })
    }

    /// `ssh` to the host running `remote`. A hidden command gets no terminal (`-T`, whatever
    /// the user's ssh configuration asks): its frame must reach the reader as sent.
    pub(crate) fn command(&self, remote: &RemoteCommand) -> std::process::Command {
        let mut cmd = std::process::Command::new("ssh");
        cmd.arg("-i")
            .arg(&self.key)
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args(["-p", &self.endpoint.port.to_string()]);
        if remote.frame().is_some() {
            cmd.arg("-T");
        }
        cmd.arg(format!("{}@{}", self.endpoint.user, self.endpoint.address));
        let words = remote.remote_words();
        if !words.is_empty() {
            cmd.arg("--").args(words);
        }
        cmd
    }

    /// Runs `remote` and waits for `ssh`; see [`run_framed`].
    pub(crate) fn run(
        &self,
        remote: &RemoteCommand,
        input: impl Read + Send + 'static,
    ) -> std::io::Result<ExitStatus> {
        run_framed(self.command(remote), remote.frame(), input)
    }
}

/// Runs `cmd` and waits for it. With a `frame` (a hidden command's), the frame goes first on
/// its standard input, then `input` (this process's standard input) as it comes, copied by a
/// thread that is not waited for: it may still be waiting on a terminal when the command is
/// done. The end of `input` closes the pipe, which tells the command its input ended.
fn run_framed(
    mut cmd: std::process::Command,
    frame: Option<Vec<u8>>,
    input: impl Read + Send + 'static,
) -> std::io::Result<ExitStatus> {
    let Some(frame) = frame else {
        return cmd.status();
    };
    let mut child = cmd.stdin(Stdio::piped()).spawn()?;
    let Some(mut to_child) = child.stdin.take() else {
        return child.wait();
    };
    std::thread::spawn(move || {
        let mut input = input;
        if to_child.write_all(&frame).is_ok() {
            // Ends at the end of `input`, or when the command stops reading.
            let _ = std::io::copy(&mut input, &mut to_child);
        }
    });
    child.wait()
}

/// Pins the key `host` presents now, after checking it against what the provider reads through
/// its own channel (for local hosts, the Docker engine).
async fn accept(
    wired: &Wired,
    scope: &hermes_core::Scope,
    host: &str,
    found: &ObservedResource,
    presented: &HostKey,
    printer: Printer,
) -> anyhow::Result<()> {
    if let Some(local) = &wired.local {
        let trusted =
            HostKey::parse(&local.read_host_key(&found.id).await?).map_err(anyhow::Error::msg)?;
        if trusted.openssh() != presented.openssh() {
            bail!(
                "host `{host}` presented {presented} over the network, but its own files hold {}; \
                 refusing to pin a key the host does not have",
                trusted.fingerprint()
            );
        }
    }
    let info =
        hermes_state::lock_info_for_this_process("accept-host-key", None, Duration::from_mins(1));
    match wired.store.try_lock(scope, &info).await? {
        hermes_core::seams::LockAttempt::Acquired => {}
        hermes_core::seams::LockAttempt::HeldBy(other) => {
            bail!(
                "the state of {scope} is locked by {} for `{}`; try again when it is done",
                other.holder,
                other.operation
            )
        }
    }
    let saved = async {
        let mut state = wired.store.load(scope).await?;
        state.serial += 1;
        state.host_keys.insert(host.to_owned(), presented.openssh());
        wired.store.save(scope, &state, &info.id).await
    }
    .await;
    wired.store.unlock(scope, &info.id).await?;
    saved?;
    printer.err(&format!("pinned the host key of `{host}`: {presented}\n"));
    Ok(())
}

pub(crate) async fn power(
    args: &StackArgs,
    host: &str,
    state: PowerState,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let (loaded, wired) = wiring::load(args, printer).await?;
    let local = wired
        .local
        .as_ref()
        .context("`power` is available for local hosts only in this build")?;
    let on = state == PowerState::On;
    local
        .power(&loaded.scope(), host, on)
        .await
        .map_err(|e| anyhow::anyhow!("host `{host}`: {e}"))?;
    printer.err(&format!(
        "host `{host}` powered {}\n",
        if on { "on" } else { "off" }
    ));
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned() -> PinnedSsh {
        PinnedSsh {
            key: "/keys/admin".into(),
            known_hosts: "/keys/known_hosts".into(),
            endpoint: HostEndpoint {
                host: "web-1".to_owned(),
                address: "192.0.2.7".to_owned(),
                port: 2222,
                user: "admin".to_owned(),
            },
        }
    }

    fn args(cmd: &std::process::Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_typed_command_is_in_no_argument_and_gets_no_terminal() {
        let typed = RemoteCommand::typed(&["echo".to_owned(), "s3cr3t".to_owned()]);
        let args = args(&pinned().command(&typed));
        assert!(args.contains(&"-T".to_owned()), "{args:?}");
        assert!(!args.iter().any(|a| a.contains("s3cr3t")), "{args:?}");
        let at = args.iter().position(|a| a == "admin@192.0.2.7");
        assert_eq!(
            args.get(at.map_or(0, |i| i + 1)).map(String::as_str),
            Some("--")
        );
        assert_eq!(
            args.len(),
            at.map_or(0, |i| i + 3),
            "one reader word: {args:?}"
        );
    }

    #[test]
    fn shells_and_fixed_words_keep_today_s_arguments() {
        let shell = args(&pinned().command(&RemoteCommand::Shell));
        assert!(!shell.contains(&"-T".to_owned()) && !shell.contains(&"--".to_owned()));
        assert_eq!(shell.last().map(String::as_str), Some("admin@192.0.2.7"));
        let logs = RemoteCommand::Words(vec!["sudo".to_owned(), "docker".to_owned()]);
        let logs = args(&pinned().command(&logs));
        assert!(!logs.contains(&"-T".to_owned()));
        assert!(logs.ends_with(&["admin@192.0.2.7", "--", "sudo", "docker"].map(String::from)));
    }

    #[test]
    fn the_frame_goes_first_then_the_input() {
        // `cat` stands in for ssh: what reaches its standard input lands in a file.
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = dir.path().join("out");
        let mut cat = std::process::Command::new("cat");
        cat.stdout(std::fs::File::create(&out).expect("create"));
        let typed = RemoteCommand::typed(&["ls".to_owned()]);
        let input = std::io::Cursor::new(b"typed input".to_vec());
        let status = run_framed(cat, typed.frame(), input).expect("cat runs");
        assert!(status.success());
        assert_eq!(std::fs::read(&out).expect("read"), b"2\nls\ntyped input");
    }
}
