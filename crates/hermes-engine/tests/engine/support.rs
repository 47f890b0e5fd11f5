//! In-memory stand-ins for the engine's seams, and helpers to build stacks and plans.
//!
//! - [`FakeProvider`]: a world behind a mutex, a shared [`Journal`] of calls (with a global
//!   sequence number at the start and the end of each), failures, delays and gates per address.
//! - [`FakeStore`]: state and lock in memory; can be locked by "another run".
//! - [`RecordingReporter`]: keeps every event.
//! - [`FakeSecrets`]: resolves references from a map.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::Notify;

use hermes_core::seams::{
    LockAttempt, LockInfo, Provider, ProviderError, SecretError, SecretSource, State, StateError,
    StateStore, StepContext,
};
use hermes_core::{Address, Kind, ObservedResource, Resource, Scope, Secret, SecretRef};
use hermes_engine::{ApplyOptions, Engine, Event, Reporter};
use hermes_plan::{Desired, Plan};

/// Bound on every wait in these tests.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);

pub(crate) fn scope() -> Scope {
    Scope::new("shop", "prod")
}

pub(crate) fn addr(kind: Kind, name: &str) -> Address {
    Address::new(kind, name)
}

/// A host and its setup: host, hardening, Docker engine (each after the one before).
pub(crate) fn host_chain(host: &str) -> Vec<Resource> {
    let h = addr(Kind::Host, host);
    let hardening = addr(Kind::HostHardening, host);
    let docker = addr(Kind::DockerEngine, host);
    vec![
        Resource::new(h.clone()).fixed_attr("size", "small"),
        Resource::new(hardening.clone())
            .attr("ssh-port", 22)
            .after(h),
        Resource::new(docker)
            .attr("source", "debian")
            .after(hardening),
    ]
}

/// An agent on `host`, after its Docker engine.
pub(crate) fn agent(name: &str, host: &str) -> Resource {
    Resource::new(addr(Kind::Agent, name))
        .fixed_attr("host", host)
        .attr("image", "hermes-agent:1")
        .after(addr(Kind::DockerEngine, host))
}

/// What a provider would observe once `resources` exist as wanted.
pub(crate) fn existing(resources: &[Resource]) -> Vec<ObservedResource> {
    resources.iter().map(observed_as).collect()
}

fn observed_as(r: &Resource) -> ObservedResource {
    ObservedResource {
        address: r.address.clone(),
        id: format!("id-{}", r.address),
        attrs: r.attrs.clone(),
        drift: BTreeMap::new(),
    }
}

/// Options for a run by "test@here (pid 1)".
pub(crate) fn options() -> ApplyOptions {
    ApplyOptions {
        allow_destroy: false,
        lock_wait: Duration::ZERO,
        holder: "test@here (pid 1)".to_owned(),
        actor: hermes_core::Actor::lossy("test@here"),
        operation: "apply".to_owned(),
        cancel: tokio_util::sync::CancellationToken::new(),
    }
}

/// One provider call.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) provider: String,
    pub(crate) op: &'static str,
    pub(crate) address: Address,
    /// Sequence number when the call began and when it ended.
    pub(crate) began: u64,
    pub(crate) ended: u64,
    /// The addresses in the world the call was given.
    pub(crate) world: BTreeSet<Address>,
}

/// Every call to every fake provider of a test, in a global order.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    seq: AtomicU64,
    calls: Mutex<Vec<Call>>,
    observes: Mutex<Vec<(String, BTreeSet<Address>)>>,
}

impl Journal {
    fn tick(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    /// Create, update and delete calls, in the order they ended.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("journal").clone()
    }

    /// Observe calls: the provider and the world it was given.
    pub(crate) fn observes(&self) -> Vec<(String, BTreeSet<Address>)> {
        self.observes.lock().expect("journal").clone()
    }

    /// The one call `op` made for `address`.
    pub(crate) fn call(&self, op: &str, address: &Address) -> Call {
        let calls = self.calls();
        let mut found = calls.iter().filter(|c| c.op == op && c.address == *address);
        let call = found
            .next()
            .unwrap_or_else(|| panic!("no {op} of {address} in {calls:#?}"));
        assert!(found.next().is_none(), "{op} of {address} called twice");
        call.clone()
    }

    /// Asserts that `first`'s call ended before `then`'s began.
    pub(crate) fn assert_before(&self, first: (&str, &Address), then: (&str, &Address)) {
        let a = self.call(first.0, first.1);
        let b = self.call(then.0, then.1);
        assert!(
            a.ended < b.began,
            "{} {} should have ended before {} {} began",
            first.0,
            first.1,
            then.0,
            then.1
        );
    }
}

/// A step held until the test releases it.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    entered: Notify,
    release: Notify,
}

impl Gate {
    /// Waits (bounded) until the held step has started.
    pub(crate) async fn entered(&self) {
        tokio::time::timeout(PATIENCE, self.entered.notified())
            .await
            .expect("the gated step never started");
    }

    /// Lets the held step go on.
    pub(crate) fn release(&self) {
        self.release.notify_one();
    }
}

/// A provider of some kinds, with its world in memory.
pub(crate) struct FakeProvider {
    name: String,
    kinds: Vec<Kind>,
    journal: Arc<Journal>,
    world: Mutex<BTreeMap<Address, ObservedResource>>,
    failing: Mutex<BTreeSet<Address>>,
    observe_error: Mutex<Option<ProviderError>>,
    delays: Mutex<BTreeMap<Address, Duration>>,
    gates: Mutex<BTreeMap<Address, Arc<Gate>>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Where resolved secrets are "written" (an agent's 0600 env file on its host).
    env_files: Mutex<BTreeMap<Address, String>>,
}

impl FakeProvider {
    pub(crate) fn new(name: &str, kinds: &[Kind], journal: &Arc<Journal>) -> Self {
        Self {
            name: name.to_owned(),
            kinds: kinds.to_vec(),
            journal: Arc::clone(journal),
            world: Mutex::default(),
            failing: Mutex::default(),
            observe_error: Mutex::default(),
            delays: Mutex::default(),
            gates: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            env_files: Mutex::default(),
        }
    }

    /// Puts `resource` in this provider's world as it is (even of a kind it does not manage).
    pub(crate) fn put(&self, resource: ObservedResource) {
        let mut world = self.world.lock().expect("world");
        world.insert(resource.address.clone(), resource);
    }

    pub(crate) fn world(&self) -> BTreeMap<Address, ObservedResource> {
        self.world.lock().expect("world").clone()
    }

    /// Every create, update or delete of `address` fails.
    pub(crate) fn fail(&self, address: Address) {
        self.failing.lock().expect("failing").insert(address);
    }

    /// Observation fails with `error`.
    pub(crate) fn fail_observe(&self, error: ProviderError) {
        *self.observe_error.lock().expect("observe error") = Some(error);
    }

    /// Every call for `address` takes `delay`.
    pub(crate) fn delay(&self, address: Address, delay: Duration) {
        self.delays.lock().expect("delays").insert(address, delay);
    }

    /// Calls for `address` wait for the returned gate.
    pub(crate) fn gate(&self, address: Address) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        self.gates
            .lock()
            .expect("gates")
            .insert(address, Arc::clone(&gate));
        gate
    }

    /// The most calls that were running at once.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    pub(crate) fn env_file(&self, address: &Address) -> Option<String> {
        self.env_files
            .lock()
            .expect("env files")
            .get(address)
            .cloned()
    }

    /// The shared part of every create, update and delete.
    async fn call(
        &self,
        op: &'static str,
        address: &Address,
        secrets: Option<&serde_json::Value>,
        ctx: &StepContext,
    ) -> Result<(), ProviderError> {
        let began = self.journal.tick();
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tracing::trace!(provider = %self.name, op, %address, "fake call");

        let resolved = match secrets {
            Some(secrets) => self.write_secrets(address, secrets, ctx).await,
            None => Ok(()),
        };
        let gate = self.gates.lock().expect("gates").get(address).cloned();
        if let Some(gate) = gate {
            gate.entered.notify_one();
            gate.release.notified().await;
        }
        let delay = self.delays.lock().expect("delays").get(address).copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let fails = self.failing.lock().expect("failing").contains(address);

        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let ended = self.journal.tick();
        self.journal.calls.lock().expect("journal").push(Call {
            provider: self.name.clone(),
            op,
            address: address.clone(),
            began,
            ended,
            world: ctx.world.keys().cloned().collect(),
        });
        resolved?;
        if fails {
            return Err(ProviderError::Other(format!(
                "the fake refuses to {op} `{address}`"
            )));
        }
        Ok(())
    }

    /// Resolves the `secrets` attribute (`{"NAME": "env:VAR"}`) and writes the values to the
    /// agent's env file, as a real provider would on the host.
    async fn write_secrets(
        &self,
        address: &Address,
        secrets: &serde_json::Value,
        ctx: &StepContext,
    ) -> Result<(), ProviderError> {
        let mut file = String::new();
        for (name, reference) in secrets.as_object().into_iter().flatten() {
            let reference: SecretRef = reference
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| ProviderError::Other(format!("{e}")))?;
            let secret = ctx
                .secrets
                .resolve(&reference)
                .await
                .map_err(|e| ProviderError::Other(e.to_string()))?;
            tracing::debug!(%reference, value = ?secret, "resolved a secret for {name}");
            writeln!(file, "{name}={}", secret.expose()).expect("writing to a String");
        }
        self.env_files
            .lock()
            .expect("env files")
            .insert(address.clone(), file);
        Ok(())
    }
}

#[async_trait]
impl Provider for FakeProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    async fn observe(
        &self,
        _scope: &Scope,
        world: &BTreeMap<Address, ObservedResource>,
    ) -> Result<Vec<ObservedResource>, ProviderError> {
        self.journal
            .observes
            .lock()
            .expect("journal")
            .push((self.name.clone(), world.keys().cloned().collect()));
        if let Some(error) = self.observe_error.lock().expect("observe error").clone() {
            return Err(error);
        }
        Ok(self.world().into_values().collect())
    }

    async fn create(
        &self,
        desired: &Resource,
        ctx: &StepContext,
    ) -> Result<ObservedResource, ProviderError> {
        let secrets = desired.attrs.get("secrets");
        self.call("create", &desired.address, secrets, ctx).await?;
        let observed = observed_as(desired);
        self.put(observed.clone());
        Ok(observed)
    }

    async fn update(
        &self,
        desired: &Resource,
        observed: &ObservedResource,
        ctx: &StepContext,
    ) -> Result<ObservedResource, ProviderError> {
        let secrets = desired.attrs.get("secrets");
        self.call("update", &observed.address, secrets, ctx).await?;
        let mut now = observed_as(desired);
        now.id.clone_from(&observed.id);
        self.put(now.clone());
        Ok(now)
    }

    async fn delete(
        &self,
        observed: &ObservedResource,
        ctx: &StepContext,
    ) -> Result<(), ProviderError> {
        self.call("delete", &observed.address, None, ctx).await?;
        self.world.lock().expect("world").remove(&observed.address);
        Ok(())
    }
}

#[derive(Debug, Default)]
struct StoreInner {
    state: State,
    lock: Option<LockInfo>,
    attempts: usize,
    taken: Vec<LockInfo>,
    saves: usize,
    fail_save: bool,
}

/// State and lock in memory.
#[derive(Debug, Default)]
pub(crate) struct FakeStore {
    inner: Mutex<StoreInner>,
}

impl FakeStore {
    /// A store whose lock is held by another run, taken `age` ago with a 15 minute TTL.
    pub(crate) fn locked_by(holder: &str, operation: &str, age: Duration) -> Self {
        let store = Self::default();
        store.inner.lock().expect("store").lock = Some(LockInfo {
            id: "other-run".to_owned(),
            holder: holder.to_owned(),
            operation: operation.to_owned(),
            created_unix: unix_now() - age.as_secs(),
            ttl_secs: 15 * 60,
            plan_hash: Some(format!("sha256:{}", "ab".repeat(32))),
        });
        store
    }

    /// The other run ends and releases its lock.
    pub(crate) fn release_other(&self) {
        let mut inner = self.inner.lock().expect("store");
        if inner.lock.as_ref().is_some_and(|l| l.id == "other-run") {
            inner.lock = None;
        }
    }

    pub(crate) fn fail_saves(&self) {
        self.inner.lock().expect("store").fail_save = true;
    }

    /// The lock held now.
    pub(crate) fn lock(&self) -> Option<LockInfo> {
        self.inner.lock().expect("store").lock.clone()
    }

    /// How many times `try_lock` was called.
    pub(crate) fn attempts(&self) -> usize {
        self.inner.lock().expect("store").attempts
    }

    /// Every lock this store granted.
    pub(crate) fn taken(&self) -> Vec<LockInfo> {
        self.inner.lock().expect("store").taken.clone()
    }

    pub(crate) fn state(&self) -> State {
        self.inner.lock().expect("store").state.clone()
    }

    pub(crate) fn saves(&self) -> usize {
        self.inner.lock().expect("store").saves
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn store_error(message: &str) -> StateError {
    StateError {
        backend: "fake".to_owned(),
        message: message.to_owned(),
    }
}

#[async_trait]
impl StateStore for FakeStore {
    fn describe(&self, scope: &Scope) -> String {
        format!("fake store for {scope}")
    }

    async fn try_lock(&self, _scope: &Scope, info: &LockInfo) -> Result<LockAttempt, StateError> {
        let mut inner = self.inner.lock().expect("store");
        inner.attempts += 1;
        if let Some(held) = &inner.lock {
            let expired = held.created_unix + held.ttl_secs <= unix_now();
            if held.id != info.id && !expired {
                return Ok(LockAttempt::HeldBy(held.clone()));
            }
        }
        inner.lock = Some(info.clone());
        inner.taken.push(info.clone());
        Ok(LockAttempt::Acquired)
    }

    async fn unlock(&self, _scope: &Scope, lock_id: &str) -> Result<(), StateError> {
        let mut inner = self.inner.lock().expect("store");
        if inner.lock.as_ref().is_some_and(|l| l.id == lock_id) {
            inner.lock = None;
        }
        Ok(())
    }

    async fn load(&self, _scope: &Scope) -> Result<State, StateError> {
        Ok(self.state())
    }

    async fn save(&self, _scope: &Scope, state: &State, lock_id: &str) -> Result<(), StateError> {
        let mut inner = self.inner.lock().expect("store");
        if inner.fail_save {
            return Err(store_error("the disk is full"));
        }
        if inner.lock.as_ref().is_none_or(|l| l.id != lock_id) {
            return Err(store_error("saved without holding the lock"));
        }
        inner.state = state.clone();
        inner.saves += 1;
        Ok(())
    }
}

/// Keeps every event.
#[derive(Debug, Default)]
pub(crate) struct RecordingReporter {
    events: Mutex<Vec<Event>>,
}

impl RecordingReporter {
    pub(crate) fn events(&self) -> Vec<Event> {
        self.events.lock().expect("events").clone()
    }

    /// The events as JSON lines, as `--output json` would print them.
    pub(crate) fn json(&self) -> String {
        self.events()
            .iter()
            .map(|e| serde_json::to_string(e).expect("event serializes"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Reporter for RecordingReporter {
    fn event(&self, event: &Event) {
        self.events.lock().expect("events").push(event.clone());
    }
}

/// Resolves references from a map.
#[derive(Debug, Default)]
pub(crate) struct FakeSecrets {
    values: BTreeMap<SecretRef, String>,
}

impl FakeSecrets {
    pub(crate) fn with(reference: &str, value: &str) -> Self {
        let reference = reference.parse().expect("a secret reference");
        Self {
            values: BTreeMap::from([(reference, value.to_owned())]),
        }
    }
}

#[async_trait]
impl SecretSource for FakeSecrets {
    async fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
        self.values
            .get(reference)
            .map(Secret::new)
            .ok_or_else(|| SecretError {
                reference: reference.clone(),
                reason: "not set in the fake".to_owned(),
            })
    }
}

/// Two providers ("cloud": hosts and account objects; "ssh": host setup and agents) sharing a
/// journal, a store, a reporter and secrets; builds engines and plans over them.
pub(crate) struct Harness {
    pub(crate) journal: Arc<Journal>,
    pub(crate) cloud: Arc<FakeProvider>,
    pub(crate) ssh: Arc<FakeProvider>,
    pub(crate) store: Arc<FakeStore>,
    pub(crate) reporter: Arc<RecordingReporter>,
    pub(crate) secrets: Arc<FakeSecrets>,
    pub(crate) concurrency: usize,
}

impl Harness {
    /// A harness whose world holds `existing` (each resource at the provider of its kind).
    pub(crate) fn new(existing: Vec<ObservedResource>) -> Self {
        Self::with_store(existing, FakeStore::default())
    }

    pub(crate) fn with_store(existing: Vec<ObservedResource>, store: FakeStore) -> Self {
        logs();
        let journal = Arc::new(Journal::default());
        let cloud = FakeProvider::new(
            "cloud",
            &[
                Kind::SshKey,
                Kind::CloudFirewall,
                Kind::IamRole,
                Kind::IamUser,
                Kind::ImageRepository,
                Kind::Host,
            ],
            &journal,
        );
        let ssh = FakeProvider::new(
            "ssh",
            &[
                Kind::HostHardening,
                Kind::DockerEngine,
                Kind::ReverseProxy,
                Kind::Agent,
            ],
            &journal,
        );
        for resource in existing {
            if resource.address.kind.layer() <= 1 {
                cloud.put(resource);
            } else {
                ssh.put(resource);
            }
        }
        Self {
            journal,
            cloud: Arc::new(cloud),
            ssh: Arc::new(ssh),
            store: Arc::new(store),
            reporter: Arc::new(RecordingReporter::default()),
            secrets: Arc::new(FakeSecrets::default()),
            concurrency: hermes_engine::DEFAULT_CONCURRENCY,
        }
    }

    /// An engine over both providers, polling locks every 2 ms.
    pub(crate) fn engine(&self) -> Engine {
        let cloud: Arc<dyn Provider> = self.cloud.clone();
        let ssh: Arc<dyn Provider> = self.ssh.clone();
        self.engine_with(vec![cloud, ssh])
    }

    pub(crate) fn engine_with(&self, providers: Vec<Arc<dyn Provider>>) -> Engine {
        Engine::new(
            providers,
            self.store.clone(),
            self.reporter.clone(),
            self.secrets.clone(),
        )
        .with_concurrency(self.concurrency)
        .with_lock_poll(Duration::from_millis(2))
    }

    /// Every call for each of `resources` takes `delay` (so that steps overlap in time and an
    /// ordering mistake would show in the journal).
    pub(crate) fn slow(&self, resources: &[Resource], delay: Duration) {
        for r in resources {
            self.provider_of(r.address.kind)
                .delay(r.address.clone(), delay);
        }
    }

    fn provider_of(&self, kind: Kind) -> &FakeProvider {
        if self.cloud.kinds.contains(&kind) {
            &self.cloud
        } else {
            &self.ssh
        }
    }

    /// Everything both providers hold now.
    pub(crate) fn world(&self) -> Vec<ObservedResource> {
        let mut all: Vec<ObservedResource> = self.cloud.world().into_values().collect();
        all.extend(self.ssh.world().into_values());
        all
    }

    /// The plan from the world as it is now to `wanted`.
    pub(crate) fn plan(&self, wanted: Vec<Resource>) -> Plan {
        let desired = Desired {
            scope: scope(),
            stack_digest: "sha256:stack".to_owned(),
            resources: wanted,
        };
        hermes_plan::plan(&desired, &self.world())
    }

    /// Asserts that no create, update or delete happened.
    pub(crate) fn assert_nothing_changed(&self) {
        assert!(
            self.journal.calls().is_empty(),
            "{:#?}",
            self.journal.calls()
        );
    }

    /// Asserts that the lock is free (released, or never taken).
    pub(crate) fn assert_unlocked(&self) {
        assert_eq!(self.store.lock(), None, "the lock is still held");
    }
}

/// Every log line of this test binary, at TRACE level.
///
/// One global subscriber, installed by the first [`Harness`] before any engine code runs: a
/// subscriber scoped to one test (`set_default`) loses events when other tests running in
/// parallel hit a log call site first and `tracing` caches that nobody listens there.
pub(crate) fn logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(logs.clone())
            .try_init()
            .expect("the only global subscriber of the test binary");
        logs
    })
}

/// A `tracing` writer into memory, to read the logs back.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

impl io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
