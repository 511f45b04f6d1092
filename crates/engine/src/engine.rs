//! The library API: [`Engine::start`] and the handle's methods, async and blocking.

pub use crate::error::EngineError;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::prelude::*;
use crossbeam_channel::Receiver;
use podport_journal::{now_micros, Journal, JournalConfig, JournalError};
use podport_session::openflow::{ClientOptions, OfClient};
use podport_session::ovsdb::{OvsdbClient, OvsdbOptions};
use podport_session::Endpoint;
use tracing::info;

use crate::actors::{
    AddPod, DeletePod, EngineActor, FlowProgrammer, GetHealth, GetStatus, HostInterfaceCreated,
    OvsdbActor, PanicForTest, Subscribe,
};
use crate::core::{Core, CoreConfig, PodEvent, PortStatusView};
use crate::exposition::MetricsFormat;
use crate::flows::{DefaultFlows, FlowProvider};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::spec::PodSpec;

/// Pod events a subscriber may leave unread; past it the subscriber is dropped (its
/// receiver then reports the disconnection).
pub const SUBSCRIBER_BUFFER: usize = 65_536;

/// Everything the engine needs.
#[derive(Clone)]
pub struct EngineConfig {
    pub ovsdb: Endpoint,
    pub openflow: Endpoint,
    pub bridge: String,
    pub journal_dir: PathBuf,
    pub core: CoreConfig,
    pub journal: JournalConfig,
    pub ovsdb_options: OvsdbOptions,
    pub openflow_options: ClientOptions,
    pub flows: Arc<dyn FlowProvider>,
    /// Recorded in the journal's AgentStarted record.
    pub config_digest: String,
    /// Opening the journal may take this long before it counts as damaged.
    pub journal_open_deadline: Duration,
    /// The cookie generation a new journal gets (24 bits; `None`: drawn at random, the
    /// default; `Some(0)`: none, cookies count from `POD_COOKIE_BASE + 1`).
    pub cookie_generation: Option<u32>,
}

impl EngineConfig {
    /// Defaults for everything but the endpoints, bridge and journal.
    pub fn new(ovsdb: Endpoint, openflow: Endpoint, bridge: &str, journal_dir: PathBuf) -> Self {
        EngineConfig {
            ovsdb,
            openflow,
            bridge: bridge.to_string(),
            journal_dir,
            core: CoreConfig::default(),
            journal: JournalConfig::default(),
            ovsdb_options: OvsdbOptions::default(),
            openflow_options: ClientOptions::default(),
            flows: Arc::new(DefaultFlows),
            config_digest: String::new(),
            journal_open_deadline: JOURNAL_OPEN_DEADLINE,
            cookie_generation: None,
        }
    }
}

/// How long opening the journal may take before it counts as damaged: sled has been seen to
/// spin for ever on some damage (docs/journal.md).
pub const JOURNAL_OPEN_DEADLINE: Duration = Duration::from_secs(30);

/// Opens the engine's journal. A journal that cannot be opened or replayed (damage, a format
/// this podport does not read, a store that hangs) does not keep the node down: it is moved
/// aside, kept for inspection, and a new one is started; the engine then rebuilds its Pods
/// from OVS. Only a journal held by another agent is an error.
fn open_journal(config: &EngineConfig) -> Result<(Journal, Option<PathBuf>), EngineError> {
    let dir = &config.journal_dir;
    let why = match open_within(dir, &config.journal, config.journal_open_deadline) {
        Ok(j) => match j.recovered().stopped_at.clone() {
            None => return Ok((j, None)),
            Some(bad) => {
                // Folding past a bad record would give a wrong state; OVS has the truth.
                drop(j);
                bad.to_string()
            }
        },
        Err(e @ JournalError::Locked { .. }) => return Err(e.into()),
        Err(e) => e.to_string(),
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "journal".into());
    let aside = dir.with_file_name(format!("{name}.damaged-{}", now_micros()));
    std::fs::rename(dir, &aside).map_err(|e| {
        EngineError::Start(format!(
            "journal {} is damaged ({why}) and could not be moved aside to {}: {e}",
            dir.display(),
            aside.display()
        ))
    })?;
    tracing::error!(journal = %dir.display(), kept = %aside.display(), reason = %why,
        "the journal could not be read: moved aside, starting a new one and rebuilding every Pod from OVS");
    let j = open_within(dir, &config.journal, config.journal_open_deadline)?;
    Ok((j, Some(aside)))
}

/// `Journal::open` with a deadline (on its own thread, which is left behind if it hangs).
fn open_within(
    dir: &std::path::Path,
    config: &JournalConfig,
    deadline: Duration,
) -> Result<Journal, JournalError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (d, c) = (dir.to_path_buf(), config.clone());
    std::thread::Builder::new()
        .name("podport-journal-open".into())
        .spawn(move || {
            let _ = tx.send(Journal::open(&d, c));
        })
        .map_err(|e| JournalError::Storage(format!("cannot start a thread: {e}")))?;
    rx.recv_timeout(deadline).map_err(|_| {
        JournalError::Storage(format!(
            "{}: opening took longer than {deadline:?} (a store that hangs counts as damaged)",
            dir.display()
        ))
    })?
}

/// A random non-zero 24-bit generation: the standard library's per-process hash keys, the
/// clock and the process id, mixed (no cryptographic need: it only has to differ from the
/// lost journal's).
fn random_generation() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    let g = (h.finish() & 0x00ff_ffff) as u32;
    g.max(1)
}

/// A running engine. Cheap to share by reference; [`Engine::shutdown`] stops it and flushes
/// the journal (dropping it does the same).
pub struct Engine {
    addr: Addr<EngineActor>,
    system: actix::System,
    thread: Option<JoinHandle<()>>,
    journal: Arc<Journal>,
    metrics: Arc<Metrics>,
    started: Instant,
}

impl Engine {
    /// Opens the journal (failing at once if another agent holds it), rebuilds the state of
    /// existing ports from it, and starts the actors on a dedicated thread.
    pub fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        Engine::start_inner(config, None)
    }

    /// [`Engine::start`], with a subscriber registered before anything runs: it hears every
    /// Pod event from the start (a restart's `Removed` for a port that vanished, say), which
    /// [`Engine::subscribe`] after the start may miss.
    pub fn start_subscribed(
        config: EngineConfig,
    ) -> Result<(Engine, Receiver<PodEvent>), EngineError> {
        let (tx, rx) = crossbeam_channel::bounded(SUBSCRIBER_BUFFER);
        Ok((Engine::start_inner(config, Some(tx))?, rx))
    }

    fn start_inner(
        config: EngineConfig,
        subscriber: Option<crossbeam_channel::Sender<PodEvent>>,
    ) -> Result<Engine, EngineError> {
        // Both go to OVSDB with every create: nothing it would refuse may reach it.
        crate::spec::validate_config(&config.bridge, &config.core.initial_type)
            .map_err(EngineError::Start)?;
        let (journal, moved_aside) = open_journal(&config)?;
        let journal = Arc::new(journal);
        let recovered = journal.recovered().clone();
        info!(
            restored = recovered.state.ports.len(),
            last_seq = recovered.last_seq,
            "engine state rebuilt from the journal"
        );
        // The journal's fold is the core's state: nothing is translated.
        let core = Core::restore(
            config.core.clone(),
            recovered.state,
            Instant::now(),
            now_micros(),
        );
        let metrics = Arc::new(Metrics::default());
        if moved_aside.is_some() {
            metrics.journal_rebuilds.inc();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let j = journal.clone();
        let m = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("podport-engine".into())
            .spawn(move || {
                let sys = actix::System::new();
                sys.block_on(async move {
                    let ctx = Context::<EngineActor>::new();
                    let engine_addr = ctx.address();
                    let (ovsdb_client, ovsdb_events) =
                        OvsdbClient::start(config.ovsdb.clone(), config.ovsdb_options.clone());
                    // The port list must be ordered with the PortStatus around it.
                    let mut of_options = config.openflow_options.clone();
                    of_options.port_desc_on_connect = true;
                    let (of_client, of_events) =
                        OfClient::start(config.openflow.clone(), of_options);
                    let bridge = config.bridge.clone();
                    let initial_type = config.core.initial_type.clone();
                    let ea = engine_addr.clone();
                    let ovsdb = Supervisor::start(move |_| {
                        OvsdbActor::new(ovsdb_client, bridge, initial_type, ea)
                    });
                    let endpoint = config.openflow.to_string();
                    let (c, ea, mm, fp) = (
                        of_client.clone(),
                        engine_addr.clone(),
                        m.clone(),
                        config.flows.clone(),
                    );
                    let flows = Supervisor::start(move |_| FlowProgrammer::new(c, fp, ea, mm));
                    let mut actor = EngineActor::new(core, config.config_digest.clone(), j, m);
                    actor.cookie_generation =
                        config.cookie_generation.unwrap_or_else(random_generation);
                    if let Some(tx) = subscriber {
                        actor.add_subscriber(tx);
                    }
                    actor.rebuild_from_ovs(config.bridge.clone());
                    actor.connect(ovsdb, flows);
                    actor.switch_events(of_client, of_events, endpoint);
                    actor.ovsdb_events(ovsdb_events);
                    ctx.run(actor);
                    let _ = tx.send((engine_addr, actix::System::current()));
                });
                sys.run().ok();
            })
            .map_err(|e| EngineError::Start(e.to_string()))?;
        let (addr, system) = rx
            .recv()
            .map_err(|_| EngineError::Start("the engine thread died while starting".into()))?;
        Ok(Engine {
            addr,
            system,
            thread: Some(thread),
            journal,
            metrics,
            started: Instant::now(),
        })
    }

    /// Starts tracking a Pod: creates its Port and Interface (type empty) in OVSDB. Rejects an
    /// interface name over 15 bytes or one whose wire name collides with a tracked port.
    /// Returns once the add is in the journal, durably (fdatasync): a crash or power cut after
    /// the return does not lose it, and OVSDB being away only delays the create.
    pub async fn add_pod(&self, spec: PodSpec) -> Result<(), EngineError> {
        self.addr
            .send(AddPod(spec))
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// The Pod's host interface exists: switch the Interface type and wait for the port.
    /// Returns once the attach is in the journal, durably.
    pub async fn host_interface_created(&self, ifname: &str) -> Result<(), EngineError> {
        self.addr
            .send(HostInterfaceCreated(ifname.to_string()))
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// Removes the Pod's flows and port. Returns once the deletion is in the journal, durably
    /// (it is carried out, also after a restart). Idempotent, as CNI DEL must be: a Pod that is
    /// not tracked (gone, or never added) is deleted already.
    pub async fn delete_pod(&self, ifname: &str) -> Result<(), EngineError> {
        self.addr
            .send(DeletePod {
                ifname: ifname.to_string(),
                container_id: None,
            })
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// [`Engine::delete_pod`] for the Pod of `container_id` only (what a CNI DEL means): a
    /// tracked Pod of that name that belongs to another container is left alone, and the
    /// call succeeds (that container's Pod is gone).
    pub async fn delete_pod_of(&self, ifname: &str, container_id: &str) -> Result<(), EngineError> {
        self.addr
            .send(DeletePod {
                ifname: ifname.to_string(),
                container_id: Some(container_id.to_string()),
            })
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// Every tracked port.
    pub async fn status(&self) -> Result<Vec<PortStatusView>, EngineError> {
        self.addr
            .send(GetStatus)
            .await
            .map_err(|_| EngineError::Stopped)
    }

    /// The engine's connections to OVSDB and to the switch (each up or down, since when, the
    /// last error). One round trip through the engine actor's mailbox and no look at any
    /// port, so it is cheap, and an answer also says that the actor runs:
    /// `Err(EngineError::Stopped)` when it does not (it panicked, or its thread ended). A
    /// caller that must not wait on a stuck engine bounds the call with a timer of its own.
    pub async fn health(&self) -> Result<Health, EngineError> {
        self.addr
            .send(GetHealth)
            .await
            .map_err(|_| EngineError::Stopped)
    }

    /// Whether the engine actor and its thread are alive, without asking the actor (so it
    /// does not notice an actor that is stuck; [`Engine::health`] does).
    pub fn is_running(&self) -> bool {
        self.addr.connected() && self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Makes the engine actor panic, as a bug would. For tests of what notices a dead engine
    /// (`podport agent`'s watchdog); nothing in podport calls it otherwise.
    #[doc(hidden)]
    pub fn panic_for_test(&self) {
        self.addr.do_send(PanicForTest);
    }

    /// A stream of Pod events (Ready, NotReady, Failed, Removed) from now on. Bounded: a
    /// subscriber that leaves [`SUBSCRIBER_BUFFER`] events unread is dropped.
    pub fn subscribe(&self) -> Receiver<PodEvent> {
        let (tx, rx) = crossbeam_channel::bounded(SUBSCRIBER_BUFFER);
        self.addr.do_send(Subscribe(tx));
        rx
    }

    /// The journal (to subscribe to its records, or snapshot it).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The engine's metrics as OpenMetrics text (see [`crate::exposition`]).
    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
    }

    /// The engine's metrics in `format`; serve them with `format.content_type()`.
    pub fn metrics_exposition(&self, format: MetricsFormat) -> String {
        match format {
            MetricsFormat::OpenMetrics => self.metrics.encode(),
            MetricsFormat::PrometheusText => {
                crate::exposition::prometheus_text(&self.metrics.encode())
            }
        }
    }

    /// The metrics themselves.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Time since start.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// A blocking facade for callers without an async runtime.
    pub fn blocking(&self) -> BlockingEngine<'_> {
        BlockingEngine { engine: self }
    }

    /// Stops the actors and flushes the journal.
    pub fn shutdown(mut self) -> Result<(), EngineError> {
        self.stop();
        Ok(())
    }

    fn stop(&mut self) {
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The engine's API for threads that may block (not for use inside an async runtime).
pub struct BlockingEngine<'a> {
    engine: &'a Engine,
}

impl BlockingEngine<'_> {
    fn run<T>(&self, fut: impl std::future::Future<Output = T>) -> T {
        // A private current-thread runtime just to wait on the actor's reply channel.
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime without drivers always builds")
            .block_on(fut)
    }

    pub fn add_pod(&self, spec: PodSpec) -> Result<(), EngineError> {
        self.run(self.engine.add_pod(spec))
    }

    pub fn host_interface_created(&self, ifname: &str) -> Result<(), EngineError> {
        self.run(self.engine.host_interface_created(ifname))
    }

    pub fn delete_pod(&self, ifname: &str) -> Result<(), EngineError> {
        self.run(self.engine.delete_pod(ifname))
    }

    pub fn delete_pod_of(&self, ifname: &str, container_id: &str) -> Result<(), EngineError> {
        self.run(self.engine.delete_pod_of(ifname, container_id))
    }

    pub fn status(&self) -> Result<Vec<PortStatusView>, EngineError> {
        self.run(self.engine.status())
    }

    pub fn health(&self) -> Result<Health, EngineError> {
        self.run(self.engine.health())
    }
}
