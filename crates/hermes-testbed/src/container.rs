//! Testbed service containers: a Python script from this crate run in the tools image on a
//! testbed network, with a DNS alias, waited for until it answers, removed by id when dropped.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::{TestNetwork, Testbed, blocking, http};

/// How long a started service may take to answer its readiness request.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// Pause between readiness attempts.
const READY_POLL: Duration = Duration::from_millis(100);

/// A container of this run, removed (with its anonymous volumes) when dropped.
#[derive(Debug)]
pub(crate) struct ContainerGuard {
    program: String,
    id: String,
    armed: bool,
}

impl ContainerGuard {
    pub(crate) fn new(program: &str, id: &str) -> Self {
        Self {
            program: program.to_owned(),
            id: id.to_owned(),
            armed: true,
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Removes the container now.
    pub(crate) async fn remove(mut self) -> anyhow::Result<()> {
        self.armed = false;
        let (program, id) = (self.program.clone(), self.id.clone());
        tokio::task::spawn_blocking(move || {
            blocking::docker(&program, &["rm", "--force", "--volumes", &id]).map(drop)
        })
        .await
        .context("container removal thread")?
    }

    /// The last lines the container printed (for error messages).
    pub(crate) async fn logs(&self) -> String {
        let (program, id) = (self.program.clone(), self.id.clone());
        let logs = tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(program);
            cmd.args(["logs", "--tail", "30", &id]);
            blocking::run(cmd, blocking::DOCKER_TIMEOUT)
        })
        .await;
        match logs {
            Ok(Ok(done)) => format!(
                "{}{}",
                String::from_utf8_lossy(&done.output.stdout),
                String::from_utf8_lossy(&done.output.stderr)
            ),
            Ok(Err(e)) => format!("(no logs: {e:#})"),
            Err(e) => format!("(no logs: {e})"),
        }
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if self.armed
            && !crate::testbed::keep()
            && let Err(e) =
                blocking::docker(&self.program, &["rm", "--force", "--volumes", &self.id])
        {
            tracing::warn!(container = %self.id, "cannot remove testbed container: {e:#}");
        }
    }
}

/// Runs `docker ARGS` (a `run` with `--name=`, without `-d`) to its end, bounded by `timeout`,
/// then removes the container by that name whatever happened.
pub(crate) async fn run_once(
    program: &str,
    args: Vec<String>,
    timeout: Duration,
) -> anyhow::Result<std::process::Output> {
    let name = args
        .iter()
        .find_map(|a| a.strip_prefix("--name="))
        .context("a one-shot container needs a name")?
        .to_owned();
    let program = program.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(&program);
        cmd.args(&args);
        let done = blocking::run(cmd, timeout);
        let _ = blocking::docker(&program, &["rm", "--force", "--volumes", &name]);
        let done = done?;
        if done.timed_out {
            bail!(
                "one-shot container {name} ran longer than {timeout:?}; it printed:\n{}{}",
                String::from_utf8_lossy(&done.output.stdout),
                String::from_utf8_lossy(&done.output.stderr)
            );
        }
        Ok(done.output)
    })
    .await
    .context("one-shot container thread")?
}

/// A Python service to start.
pub(crate) struct Service<'a> {
    /// The [`crate::ROLE_LABEL`] value and name part (`fake-llm`, `forbidden`).
    pub(crate) role: &'a str,
    /// DNS name on the network (`--network-alias`).
    pub(crate) alias: &'a str,
    /// The script, run with `python3 -c`.
    pub(crate) script: &'static str,
    /// Its environment.
    pub(crate) env: Vec<(String, String)>,
    /// Port and path answering 200 once it is up.
    pub(crate) ready: (u16, &'a str),
}

/// A started service: its container and address on the network.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) container: ContainerGuard,
    pub(crate) ip: IpAddr,
}

/// Starts `service` on `network` and waits (bounded) until it answers its readiness request.
pub(crate) async fn start(
    testbed: &Testbed,
    network: &TestNetwork,
    service: Service<'_>,
) -> anyhow::Result<Started> {
    let image = testbed.tools_image().await?;
    let mut args = vec![
        "run".to_owned(),
        "-d".to_owned(),
        "--pull=never".to_owned(),
        format!("--name={}", testbed.unique_name(service.role)),
    ];
    args.extend(testbed.label_args(Some(service.role)));
    args.push(format!("--network={}", network.name()));
    args.push(format!("--network-alias={}", service.alias));
    for (k, v) in &service.env {
        args.push("--env".to_owned());
        args.push(format!("{k}={v}"));
    }
    args.extend([
        image,
        "python3".to_owned(),
        "-c".to_owned(),
        service.script.to_owned(),
    ]);
    let id = testbed.docker().run(&args).await?.trim().to_owned();
    let container = ContainerGuard::new(testbed.program(), &id);
    let ip = container_ip(testbed, &id, network.name()).await?;
    let (port, path) = service.ready;
    wait_ready(&container, SocketAddr::new(ip, port), path).await?;
    Ok(Started { container, ip })
}

/// The container's address on `network`.
pub(crate) async fn container_ip(
    testbed: &Testbed,
    id: &str,
    network: &str,
) -> anyhow::Result<IpAddr> {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    let ip = testbed
        .docker()
        .run(["inspect", "--format", &format, id])
        .await?;
    ip.trim().parse().with_context(|| {
        format!(
            "container {id} has no address on {network}: `{}`",
            ip.trim()
        )
    })
}

async fn wait_ready(
    container: &ContainerGuard,
    addr: SocketAddr,
    path: &str,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_error = String::new();
    while started.elapsed() < READY_WITHIN {
        match http::request(addr, "GET", path, &[], None, Duration::from_secs(2)).await {
            Ok(r) if r.status == 200 => return Ok(()),
            Ok(r) => last_error = format!("status {}", r.status),
            Err(e) => last_error = format!("{e:#}"),
        }
        tokio::time::sleep(READY_POLL).await;
    }
    let logs = container.logs().await;
    bail!(
        "testbed container {} did not answer GET http://{addr}{path} within {READY_WITHIN:?} \
         (last: {last_error}); its last lines:\n{logs}",
        container.id()
    )
}
