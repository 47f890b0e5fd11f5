//! `hermes-infra tunnel STACK AGENT`: the agent's web dashboard on this machine's loopback,
//! through its host's pinned SSH connection. The dashboard listens on the container's own
//! loopback only; each connection made to the local port becomes one `ssh` session running a
//! byte relay inside the container (`docker exec`), so sshd keeps TCP forwarding off and
//! nothing listens on the host. Runs until Ctrl-C.

use std::process::Stdio;

use anyhow::{Context as _, bail};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

use crate::Outcome;
use crate::cli::StackArgs;
use crate::commands::hosts::PinnedSsh;
use crate::commands::remote_command::{RemoteCommand, shell_word};
use crate::output::Printer;
use crate::wiring;

/// Copies standard input to the dashboard and the dashboard to standard output, inside the
/// agent's container (its Python), until either side closes.
const RELAY: &str = r#"import os, socket, sys, threading
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def up():
    while True:
        data = os.read(0, 65536)
        if not data:
            break
        s.sendall(data)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
out = sys.stdout.buffer
while True:
    data = s.recv(65536)
    if not data:
        break
    out.write(data)
    out.flush()
"#;

pub(crate) async fn tunnel(
    args: &StackArgs,
    agent: &str,
    port: u16,
    printer: Printer,
) -> anyhow::Result<Outcome> {
    let (loaded, wired) = wiring::load(args, printer).await?;
    let Some((_, spec)) = loaded
        .file
        .agents
        .iter()
        .find(|(name, _)| name.as_str() == agent)
    else {
        bail!("{}: no agent `{agent}`", args.stack.display());
    };
    if !spec.dashboard.enabled {
        bail!(
            "agent `{agent}` runs no dashboard; add `dashboard = {{ enabled = true }}` to \
             [agents.{agent}] in {} and apply",
            args.stack.display()
        );
    }
    let host = spec.host.clone();
    let ssh = PinnedSsh::to(&wired, &loaded.scope(), &host, &args.stack, false, printer).await?;
    let remote = RemoteCommand::Words(
        [
            "sudo",
            "docker",
            "exec",
            "-i",
            &format!("hermes-agent-{agent}"),
            "python3",
            "-c",
            RELAY,
            &hermes_render::DASHBOARD_PORT.to_string(),
        ]
        .iter()
        .map(|w| shell_word(w))
        .collect(),
    );
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| {
            format!("cannot listen on 127.0.0.1:{port}; choose another with --port")
        })?;
    let local = listener.local_addr()?;
    printer.err(&format!(
        "the dashboard of agent `{agent}` (host `{host}`): http://{local}/ on this machine only; \
         Ctrl-C closes it\n"
    ));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted.context("accepting a connection")?;
                let command = ssh.command(&remote);
                tokio::spawn(async move {
                    if let Err(e) = relay(stream, command).await {
                        tracing::warn!(error = %e, "a dashboard connection ended with an error");
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    printer.err("tunnel closed\n");
    Ok(Outcome::Done)
}

/// One connection: `command` (the relay over ssh) between the socket and the container.
async fn relay(stream: TcpStream, command: std::process::Command) -> anyhow::Result<()> {
    let mut child = tokio::process::Command::from(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run `ssh` (install openssh-client)")?;
    let mut to_host = child.stdin.take().context("ssh's standard input")?;
    let mut from_host = child.stdout.take().context("ssh's standard output")?;
    let (mut reader, mut writer) = stream.into_split();
    let up = async {
        tokio::io::copy(&mut reader, &mut to_host).await?;
        to_host.shutdown().await
    };
    let down = async {
        tokio::io::copy(&mut from_host, &mut writer).await?;
        writer.shutdown().await
    };
    let (up, down) = tokio::join!(up, down);
    let _ = child.kill().await;
    up.and(down).context("relaying the dashboard")
}
