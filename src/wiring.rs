//! Wires real implementations into the engine for one loaded stack: the provider of its
//! hosts, the SSH provider of their setup, its state store, secret resolution, and a reporter
//! that prints progress. Local stacks also get `hermes-infra`'s own admin key, kept beside the
//! state.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use hermes_core::seams::{Provider, StateStore as _};
use hermes_engine::{Engine, Event, Reporter};
use hermes_provider_local::{Admin, LocalProvider};
use hermes_provider_ssh::{KnownHosts, RegistryAccess, SshHostProvider, SshSettings};
use hermes_remote::SshConfig;
use hermes_stack::LoadedStack;
use hermes_stack::wire::{
    GenericRegistry, Provider as ProviderConfig, Registry, State as StateConfig,
};

use crate::output::Printer;
use crate::secrets::LocalSecrets;

/// Limit for one script on a host (a phase that installs packages included).
const SSH_OP_TIMEOUT: Duration = Duration::from_mins(30);
/// Per-call timeout of the local Docker client (an image import can take a minute or two).
const DOCKER_TIMEOUT: Duration = Duration::from_mins(5);

/// The folder a stack file lives in (relative paths in the stack start there).
/// The stack's secret references resolved on this machine (`file:` paths from the stack's
/// folder).
pub(crate) fn secrets(stack: &LoadedStack) -> LocalSecrets {
    LocalSecrets {
        base: stack_dir(stack),
        cmd_timeout: Duration::from_secs(30),
    }
}

pub(crate) fn stack_dir(stack: &LoadedStack) -> PathBuf {
    stack
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Everything a command needs to act on one stack and environment.
pub(crate) struct Wired {
    pub(crate) engine: Engine,
    pub(crate) store: Arc<hermes_state::LocalStateStore>,
    /// The local provider, for local stacks (power, host keys, addresses).
    pub(crate) local: Option<Arc<LocalProvider>>,
    /// The provider of host setup over SSH (hardening, Docker), for its per-host report.
    pub(crate) hosts: Option<SshHostProvider>,
    /// The private key `hermes-infra` logs in with.
    pub(crate) admin_key: Option<PathBuf>,
    /// The admin user on every host.
    pub(crate) admin_user: String,
}

fn data_dir(stack: &LoadedStack) -> anyhow::Result<PathBuf> {
    match &stack.file.state {
        StateConfig::Local(local) => Ok(stack_dir(stack).join(&local.path)),
        StateConfig::S3(s3) => bail!(
            "the S3 state backend (bucket `{}`) is not available in this build yet; use [state.local]",
            s3.bucket
        ),
    }
}

/// The stack's own admin key: `<state dir>/keys/<stack>/<env>/id_ed25519`, made on first use.
fn admin_key(stack: &LoadedStack) -> anyhow::Result<hermes_remote::AdminKey> {
    let path = data_dir(stack)?
        .join("keys")
        .join(stack.name())
        .join(&stack.env)
        .join("id_ed25519");
    hermes_remote::ensure_admin_key(
        &path,
        &format!("hermes-infra {}/{}", stack.name(), stack.env),
    )
    .with_context(|| format!("the admin key `{}`", path.display()))
}

impl Wired {
    /// The hosts alone, as their own provider sees them (not their setup over SSH): what verbs
    /// that act on single hosts need, and reaching one host never depends on reaching the others.
    pub(crate) async fn observe_hosts(
        &self,
        scope: &hermes_core::Scope,
    ) -> anyhow::Result<Vec<hermes_core::ObservedResource>> {
        match &self.local {
            Some(local) => {
                Provider::observe(local.as_ref(), scope, &std::collections::BTreeMap::new())
                    .await
                    .with_context(|| format!("observing the hosts of {scope}"))
            }
            None => Ok(self.engine.observe(scope).await?),
        }
    }
}

/// Loads the stack named by `args` and wires the engine for it.
pub(crate) async fn load(
    args: &crate::cli::StackArgs,
    printer: Printer,
) -> anyhow::Result<(LoadedStack, Wired)> {
    let loaded = hermes_stack::load(&args.stack, args.env.as_deref())?;
    let wired = wire(&loaded, printer).await?;
    Ok((loaded, wired))
}

/// Wires the engine for `stack`.
pub(crate) async fn wire(stack: &LoadedStack, printer: Printer) -> anyhow::Result<Wired> {
    let store = Arc::new(hermes_state::LocalStateStore::new(
        data_dir(stack)?.join("state"),
    ));
    let secrets = Arc::new(secrets(stack));
    let reporter = Arc::new(TextReporter { printer });
    let admin_user = stack.file.ssh.admin_user.to_string();
    let (providers, local, admin_key): (Vec<Arc<dyn Provider>>, _, _) = match &stack.file.provider {
        ProviderConfig::Local(_) => {
            let key = admin_key(stack)?;
            let mut public_keys: Vec<String> = stack
                .file
                .ssh
                .authorized_keys
                .iter()
                .map(ToString::to_string)
                .collect();
            public_keys.push(key.public_key.clone());
            let admin = Admin {
                user: admin_user.clone(),
                public_keys,
            };
            let progress: hermes_provider_local::Progress =
                Arc::new(move |m: &str| printer.err(&format!("  local: {m}\n")));
            let local = Arc::new(LocalProvider::new(DOCKER_TIMEOUT, admin, progress));
            let provider: Arc<dyn Provider> = local.clone();
            (vec![provider], Some(local), Some(key))
        }
        other => bail!(
            "the `{}` provider is not available in this build of hermes-infra yet: `validate` checks \
             this stack, but `plan` and `apply` need to observe its hosts",
            other.name()
        ),
    };
    let mut providers = providers;
    let mut hosts = None;
    if let Some(key) = &admin_key {
        let known = KnownHosts::from_state(&store.load(&stack.scope()).await?);
        let mut ssh_config = SshConfig::new(key.private_key.clone());
        // A cold hardening installs packages: minutes on a slow host (a VM under software
        // emulation took over ten).
        ssh_config.op_timeout = SSH_OP_TIMEOUT;
        let local_egress = hermes_provider_local::image::ImageRecipe::egress_proxy().tag();
        let (egress_image, registry) = match &stack.file.registry {
            Some(Registry::Generic(generic)) => (
                GenericRegistry::reference(&generic.egress_repository(), &local_egress),
                Some(RegistryAccess {
                    server: generic.server.clone(),
                    username: generic.username.clone(),
                    password: generic.password.clone(),
                    ca: generic.ca.clone(),
                }),
            ),
            _ => (local_egress, None),
        };
        let ssh = SshHostProvider::new(
            ssh_config,
            known,
            SshSettings {
                admin_user: admin_user.clone(),
                port: stack.file.ssh.port,
                extra_keys: vec![key.public_key.clone()],
                concurrency: hermes_provider_ssh::DEFAULT_CONCURRENCY,
                revert_after: hermes_provider_ssh::DEFAULT_REVERT_AFTER,
                egress_image,
                registry: registry.clone(),
            },
            // With a registry hosts pull; without, this machine's images go to them.
            if registry.is_some() {
                None
            } else {
                Some(Arc::new(crate::local_images::LocalImages::new(printer)))
            },
        );
        providers.push(Arc::new(ssh.clone()));
        hosts = Some(ssh);
    }
    let engine = Engine::new(providers, store.clone(), reporter, secrets);
    Ok(Wired {
        engine,
        store,
        local,
        hosts,
        admin_key: admin_key.map(|k| k.private_key),
        admin_user,
    })
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
            } => format!(
                "waiting for the lock held by {holder} for `{operation}` ({} old)\n",
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            ),
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
