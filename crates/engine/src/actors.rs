//! The actors: thin shells that move messages between sockets, the journal and the core.
//!
//! - [`EngineActor`] owns the [`Core`]; every fact arrives as a [`Fact`] and every command
//!   the core returns is sent to the actor that executes it.
//! - [`OvsdbActor`] owns the OVSDB client: creates ports, switches the type, deletes, waits for
//!   an ofport (legacy strategy), and feeds the monitor's Interface updates in.
//! - The OpenFlow actor is the client task of `podport-openflow` ([`OfClient`]): it owns the
//!   switch connection and hands its events to the engine actor on a bounded channel, which
//!   the engine actor reads as a stream of batches (no actor in between).
//! - [`FlowProgrammer`] installs and removes flows, confirmed by a barrier, with retries.
//!
//! The journal writer is the journal crate's own thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use crossbeam_channel::Sender;
use futures_util::StreamExt;
#[cfg(test)]
use podport_journal::FailureKind;
use podport_journal::{Event, Failure, Journal, PortDesc, PortReason, Ticket};
use podport_openflow::{FlowDescRequest, FlowEntry, FlowMod, Port, PortReason as OfReason};
use podport_session::openflow::{ClientError, ClientEvent, EventReceiver, OfClient};
use podport_session::ovsdb::ops::PodPortSpec;
use podport_session::ovsdb::{OvsdbClient, OvsdbError, OvsdbEvent, OvsdbEventReceiver};
use tracing::{debug, info, warn};

use crate::core::{Command, Core, Input, PodEvent, PortStatusView};
use crate::error::EngineError;
use crate::flows::FlowProvider;
use crate::health::{Health, LinkState};
use crate::metrics::Metrics;
use crate::spec::{AddPodError, PodSpec};
use std::collections::HashMap;

/// A fact for the core.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fact(pub Input);

/// `add_pod` from the API.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct AddPod(pub PodSpec);

/// `host_interface_created` from the API.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct HostInterfaceCreated(pub String);

/// `delete_pod` from the API.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct DeletePod {
    pub ifname: String,
    /// When given, only the Pod of this container is deleted.
    pub container_id: Option<String>,
}

/// `status` from the API.
#[derive(Message)]
#[rtype(result = "Vec<PortStatusView>")]
pub struct GetStatus;

/// `subscribe` from the API.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Sender<PodEvent>);

/// `health` from the API: the connections as the actor last heard of them.
#[derive(Message)]
#[rtype(result = "Health")]
pub struct GetHealth;

/// Makes the engine actor panic, as a bug would: for tests of what notices a dead engine
/// (`Engine::panic_for_test`). Nothing else sends it.
#[doc(hidden)]
#[derive(Message)]
#[rtype(result = "()")]
pub struct PanicForTest;

/// Commands for the OVSDB actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OvsdbCommand(pub Command);

/// Commands for the flow programmer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlowCommand(pub Command);

/// The actor around the core.
pub struct EngineActor {
    core: Core,
    journal: Arc<Journal>,
    ovsdb: Option<Addr<OvsdbActor>>,
    flows: Option<Addr<FlowProgrammer>>,
    subscribers: Vec<Sender<PodEvent>>,
    metrics: Arc<Metrics>,
    tick: Option<SpawnHandle>,
    /// Recorded in `AgentStarted` when the actor starts.
    config_digest: String,
    /// Given to a journal without a cookie generation (0: none).
    pub cookie_generation: u32,
    /// The switch client (to ask PORT_DESC again) and its endpoint's name.
    switch_client: Option<(OfClient, String)>,
    /// OVSDB's monitor events, taken as a stream of batches when the actor starts.
    ovsdb_events: Option<OvsdbEventReceiver>,
    /// Until the first OVSDB snapshot: the bridge whose podport ports the journal does not
    /// know are adopted then.
    rebuild: Option<String>,
    /// Adds of the same container's Pod while it is being removed (CNI allows ADD after DEL):
    /// carried out, and answered, once the removal completes.
    deferred_adds: HashMap<String, Vec<DeferredAdd>>,
    /// Pods just removed that have deferred adds.
    removed_now: Vec<String>,
    /// Every Interface name in OVSDB with its podport container (`None`: not podport's), so
    /// that an add of a name that is another's is refused at once.
    ovsdb_names: HashMap<String, Option<String>>,
    /// The switch connection's events (the client task is the OpenFlow actor: it owns the
    /// socket), taken as a stream of batches when the actor starts.
    switch: Option<(OfClient, EventReceiver, String)>,
    /// The OVSDB connection, from its client's Connected/Disconnected events.
    ovsdb_link: LinkState,
    /// The switch connection, likewise.
    switch_link: LinkState,
}

/// The container an Interface was made for by podport, or `None` when podport did not make it.
fn podport_owner(ids: &std::collections::BTreeMap<String, String>) -> Option<String> {
    use podport_session::ovsdb::ops::{keys, OWNER};
    (ids.get(keys::OWNER).map(String::as_str) == Some(OWNER))
        .then(|| ids.get(keys::CONTAINER_ID).cloned().unwrap_or_default())
}

/// An add waiting for its Pod's removal, and where its answer goes.
type DeferredAdd = (
    PodSpec,
    tokio::sync::oneshot::Sender<Result<(), EngineError>>,
);

/// The most switch events decided as one batch: bounds the work per wake-up so API calls
/// and OVSDB facts are not held up by a long burst.
const MAX_SWITCH_BATCH: usize = 4096;

/// A drained batch of switch events, in order.
struct SwitchBatch(Vec<ClientEvent>);

impl Message for SwitchBatch {
    type Result = ();
}

/// A drained batch of OVSDB monitor events, in order.
struct OvsdbBatch(Vec<OvsdbEvent>);

impl Message for OvsdbBatch {
    type Result = ();
}

/// The events of a bounded channel as batches: everything already queued (up to
/// [`MAX_SWITCH_BATCH`]) after the first, in order.
fn batches_of<T: 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = Vec<T>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        let first = rx.recv().await?;
        let mut batch = vec![first];
        while batch.len() < MAX_SWITCH_BATCH {
            match rx.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(_) => break,
            }
        }
        Some((batch, rx))
    })
}

impl EngineActor {
    pub fn new(
        core: Core,
        config_digest: String,
        journal: Arc<Journal>,
        metrics: Arc<Metrics>,
    ) -> Self {
        EngineActor {
            core,
            journal,
            ovsdb: None,
            flows: None,
            subscribers: Vec::new(),
            metrics,
            tick: None,
            config_digest,
            cookie_generation: 0,
            switch_client: None,
            switch: None,
            ovsdb_events: None,
            ovsdb_names: HashMap::new(),
            rebuild: None,
            deferred_adds: HashMap::new(),
            removed_now: Vec::new(),
            ovsdb_link: LinkState::new(),
            switch_link: LinkState::new(),
        }
    }

    /// The switch connection whose events this actor decides on, straight from the client's
    /// bounded channel (no actor in between).
    pub fn switch_events(&mut self, client: OfClient, events: EventReceiver, endpoint: String) {
        self.switch = Some((client, events, endpoint));
    }

    /// At the first OVSDB snapshot, adopt every Pod podport made on `bridge` that the
    /// journal does not know: all of them when the journal is new because the old one could
    /// not be read, any that a silently shortened journal lost otherwise.
    pub fn rebuild_from_ovs(&mut self, bridge: String) {
        self.rebuild = Some(bridge);
    }

    /// The Pods podport made on `bridge`, as OVSDB holds them: their specs from the
    /// Interface's `external_ids`, and whether the attach had come (the attached type).
    fn pods_in(
        &self,
        snap: &podport_session::ovsdb::Snapshot,
        bridge: &str,
    ) -> Vec<(PodSpec, bool)> {
        use podport_session::ovsdb::ops::keys;
        let Some(br) = snap.bridges.iter().find(|b| b.name == bridge) else {
            return Vec::new();
        };
        let ifaces: std::collections::HashSet<_> = snap
            .ports
            .iter()
            .filter(|p| br.ports.contains(&p.uuid))
            .flat_map(|p| p.interfaces.iter().copied())
            .collect();
        let attached_type = &self.core.config().attached_type;
        let mut out = Vec::new();
        for i in snap.interfaces.iter().filter(|i| ifaces.contains(&i.uuid)) {
            let Some(container_id) = podport_owner(&i.external_ids) else {
                continue;
            };
            let id = |k: &str| i.external_ids.get(k).cloned().unwrap_or_default();
            let spec = PodSpec {
                namespace: id(keys::POD_NAMESPACE),
                name: id(keys::POD_NAME),
                container_id,
                ifname: i.name.clone(),
                ips: id(keys::IP)
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                mac: id(keys::MAC).parse().unwrap_or_default(),
            };
            match crate::spec::validate(&spec) {
                Ok(()) => out.push((spec, i.iface_type == *attached_type)),
                Err(e) => {
                    warn!(ifname = %i.name, error = %e, "podport's port in OVSDB has an invalid spec; not rebuilt")
                }
            }
        }
        out
    }

    /// A Pod event subscriber from before the actor starts.
    pub fn add_subscriber(&mut self, tx: Sender<PodEvent>) {
        self.subscribers.push(tx);
    }

    /// OVSDB's monitor updates, straight from the client's bounded channel.
    pub fn ovsdb_events(&mut self, events: OvsdbEventReceiver) {
        self.ovsdb_events = Some(events);
    }

    fn on_ovsdb_batch(&mut self, batch: Vec<OvsdbEvent>, ctx: &mut Context<Self>) {
        let mut inputs = Vec::with_capacity(batch.len());
        for ev in batch {
            match &ev {
                OvsdbEvent::Snapshot(s) => {
                    self.ovsdb_names = s
                        .interfaces
                        .iter()
                        .map(|i| (i.name.clone(), podport_owner(&i.external_ids)))
                        .collect();
                }
                OvsdbEvent::InterfaceChanged(c) => match (&c.new, &c.old) {
                    (Some(n), _) => {
                        self.ovsdb_names
                            .insert(n.name.clone(), podport_owner(&n.external_ids));
                    }
                    (None, Some(o)) => {
                        self.ovsdb_names.remove(&o.name);
                    }
                    (None, None) => {}
                },
                _ => {}
            }
            if let (OvsdbEvent::Snapshot(snap), Some(bridge)) = (&ev, &self.rebuild) {
                let bridge = bridge.clone();
                self.rebuild = None;
                // Every Pod podport made on the bridge has a PodAdded in its journal before
                // its port exists; one the journal does not know was lost with it (a journal
                // moved aside, or one sled opened shorter without an error): adopted.
                let all = self.pods_in(snap, &bridge);
                // Only an attach switches the type: a Pod the journal has as waiting for its
                // interface while OVSDB shows the attached type lost that record.
                let initial_differs =
                    self.core.config().initial_type != self.core.config().attached_type;
                for (spec, attached) in &all {
                    if *attached
                        && initial_differs
                        && self
                            .core
                            .state()
                            .ports
                            .get(&spec.ifname)
                            .is_some_and(|p| !p.attached && !p.removing)
                    {
                        warn!(ifname = %spec.ifname, "OVSDB shows the attached type for a Pod the journal has as not attached: its attach is taken");
                        inputs.push(Input::HostInterfaceCreated {
                            ifname: spec.ifname.clone(),
                        });
                    }
                }
                let pods: Vec<(PodSpec, bool)> = all
                    .into_iter()
                    .filter(|(spec, _)| self.core.phase(&spec.ifname).is_none())
                    .collect();
                if !pods.is_empty() {
                    warn!(pods = pods.len(), %bridge,
                        "the journal does not know Pods podport made on this bridge: adopting them from OVSDB");
                }
                for (spec, attached) in pods {
                    let ifname = spec.ifname.clone();
                    inputs.push(Input::AddPod(spec));
                    if attached {
                        inputs.push(Input::HostInterfaceCreated { ifname });
                    }
                }
            }
            match ev {
                OvsdbEvent::Snapshot(s) => inputs.push(Input::OvsdbSnapshot {
                    interfaces: s
                        .interfaces
                        .into_iter()
                        .map(|i| (i.name, i.iface_type, i.ofport, i.error))
                        .collect(),
                }),
                OvsdbEvent::InterfaceChanged(c) => match (c.new, c.old) {
                    (Some(n), _) => inputs.push(Input::OvsdbInterface {
                        ifname: n.name,
                        iface_type: n.iface_type,
                        ofport: n.ofport,
                        error: n.error,
                    }),
                    (None, Some(o)) => inputs.push(Input::OvsdbInterfaceGone { ifname: o.name }),
                    (None, None) => {}
                },
                OvsdbEvent::Connected { schema_version } => {
                    info!(%schema_version, "OVSDB connected");
                    self.ovsdb_link.went_up();
                    self.metrics.ovsdb_up.set(1);
                }
                OvsdbEvent::Disconnected { reason } => {
                    warn!(%reason, "OVSDB disconnected; reconnecting");
                    self.ovsdb_link.went_down(reason.to_string());
                    self.metrics.ovsdb_up.set(0);
                }
            }
        }
        if inputs.is_empty() {
            return;
        }
        let cmds = self.core.handle_batch(inputs, Instant::now());
        self.execute(cmds);
        self.arm_tick(ctx);
        self.run_deferred_adds(ctx);
    }

    fn on_switch_batch(&mut self, batch: Vec<ClientEvent>, ctx: &mut Context<Self>) {
        let Some((client, endpoint)) = self.switch_client.clone() else {
            return;
        };
        // The client takes PORT_DESC on every connect and delivers it in stream order
        // (PortStatus is sent only for changes: the list is how existing ports become
        // known). A failed one is asked again.
        for ev in &batch {
            if let ClientEvent::PortDesc(Err(e)) = ev {
                warn!(error = %e, "PORT_DESC failed; asking again");
                if let Err(e) = client.request_port_desc_event() {
                    warn!(error = %e, "cannot ask for PORT_DESC; the next connect will");
                }
            }
        }
        // The connection's health, from the client's own events (in order: the last wins).
        for ev in &batch {
            match ev {
                ClientEvent::Connected { .. } => self.switch_link.went_up(),
                ClientEvent::Disconnected { reason } => {
                    self.switch_link.went_down(reason.to_string())
                }
                _ => {}
            }
        }
        self.metrics
            .switch_up
            .set(i64::from(self.switch_link.is_up()));
        let inputs = facts(batch, &endpoint);
        let n = inputs
            .iter()
            .filter(|i| matches!(i, Input::PortStatus { .. }))
            .count();
        if n > 1 {
            self.metrics.port_status_coalesced.inc_by(n as u64 - 1);
        }
        let cmds = self.core.handle_batch(inputs, Instant::now());
        self.execute(cmds);
        self.arm_tick(ctx);
    }

    /// Wires the other actors in (they need the engine's address first).
    pub fn connect(&mut self, ovsdb: Addr<OvsdbActor>, flows: Addr<FlowProgrammer>) {
        self.ovsdb = Some(ovsdb);
        self.flows = Some(flows);
    }

    /// Handles one input; returns the ticket of the last record it journaled.
    fn input(&mut self, input: Input, ctx: &mut Context<Self>) -> Option<Ticket> {
        let cmds = self.core.handle(input, Instant::now());
        let ticket = self.execute(cmds);
        self.arm_tick(ctx);
        self.run_deferred_adds(ctx);
        ticket
    }

    /// Carries out the adds that waited for their Pod's removal, and answers them.
    fn run_deferred_adds(&mut self, ctx: &mut Context<Self>) {
        for ifname in std::mem::take(&mut self.removed_now) {
            for (spec, tx) in self.deferred_adds.remove(&ifname).unwrap_or_default() {
                let answer = self.add_pod_now(spec, ctx);
                ctx.spawn(
                    async move {
                        let _ = tx.send(answer.await);
                    }
                    .into_actor(self),
                );
            }
        }
    }

    /// An add, checked and journaled; answers once it is durable.
    fn add_pod_now(
        &mut self,
        spec: PodSpec,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<(), EngineError>> {
        if let Err(e) = self.core.check_new_pod(&spec) {
            return Box::pin(async move { Err(e.into()) });
        }
        // What OVSDB showed last: another's port of that name is refused now. (While OVSDB
        // is away the create finds out instead, and the Pod fails with the same reason.)
        let untracked = self.core.phase(&spec.ifname).is_none();
        let refused = match self.ovsdb_names.get(&spec.ifname) {
            Some(None) if untracked => Some(AddPodError::NotOurs {
                ifname: spec.ifname.clone(),
            }),
            Some(Some(c)) if untracked && *c != spec.container_id => Some(AddPodError::NameTaken {
                ifname: spec.ifname.clone(),
                container_id: c.clone(),
            }),
            _ => None,
        };
        if let Some(e) = refused {
            warn!(ifname = %spec.ifname, error = %e, "add refused");
            return Box::pin(async move { Err(e.into()) });
        }
        info!(ifname = %spec.ifname, pod = %spec.pod(), "Pod added");
        let ticket = self.input(Input::AddPod(spec), ctx);
        self.acknowledge(ticket)
    }

    /// Executes commands in order; returns the ticket of the last record appended.
    fn execute(&mut self, cmds: Vec<Command>) -> Option<Ticket> {
        let mut last = None;
        for cmd in cmds {
            match cmd {
                Command::Journal { ts_micros, event } => {
                    if matches!(event, Event::PortStatusReceived { .. }) {
                        self.metrics.port_status_received.inc();
                    }
                    last = Some(self.journal.append_at(ts_micros, event));
                }
                Command::Emit(ev) => {
                    match &ev {
                        PodEvent::Ready {
                            ifname,
                            port_no,
                            waited,
                            stages,
                        } => {
                            info!(%ifname, port_no, waited_ms = waited.as_millis() as u64,
                                stages = %podport_journal::stages::durations_text(stages), "Pod ready");
                            self.metrics.time_to_ready.observe(waited.as_secs_f64());
                            self.metrics.observe_stages(stages);
                        }
                        PodEvent::NotReady {
                            ifname,
                            phase,
                            waited,
                        } => {
                            warn!(%ifname, phase = phase.name(), waited_s = waited.as_secs(), "Pod not ready yet; still waiting")
                        }
                        PodEvent::Failed { ifname, error } => {
                            warn!(%ifname, %error, "Pod step failed; will keep trying")
                        }
                        PodEvent::Removed { ifname, reason } => {
                            info!(%ifname, %reason, "Pod removed");
                            if self.deferred_adds.contains_key(ifname) {
                                self.removed_now.push(ifname.clone());
                            }
                        }
                    }
                    self.subscribers.retain(|s| match s.try_send(ev.clone()) {
                        Ok(()) => true,
                        // Bounded (SUBSCRIBER_BUFFER): a subscriber that stopped reading is
                        // dropped, never waited for.
                        Err(crossbeam_channel::TrySendError::Full(_)) => {
                            warn!("dropping a Pod event subscriber that fell behind");
                            false
                        }
                        Err(crossbeam_channel::TrySendError::Disconnected(_)) => false,
                    });
                }
                c @ (Command::CreatePort(_)
                | Command::SetInterfaceType { .. }
                | Command::DeletePort { .. }
                | Command::WaitOfport { .. }) => {
                    if let Some(a) = &self.ovsdb {
                        a.do_send(OvsdbCommand(c));
                    }
                }
                Command::RequestPortDesc => {
                    if let Some((client, _)) = &self.switch_client {
                        if let Err(e) = client.request_port_desc_event() {
                            warn!(error = %e, "cannot ask for PORT_DESC; the next connect will");
                        }
                    }
                }
                c @ (Command::InstallFlows { .. }
                | Command::RemoveFlows { .. }
                | Command::SweepFlows { .. }
                | Command::InstallBridgeDefaults) => {
                    if let Some(a) = &self.flows {
                        a.do_send(FlowCommand(c));
                    }
                }
            }
        }
        // Not `status()`: it builds a view of every port (strings cloned), and doing that
        // after every input made a burst of N Pods cost O(N²) (2 ms of engine CPU per Pod at
        // 1000 Pods; 0.35 ms with the count, see docs/benchmarks.md).
        self.metrics.journal_lag.set(self.journal.pending() as i64);
        let ready = self.core.ready_count();
        self.metrics.pods_ready.set(ready as i64);
        last
    }

    /// Answers a request once what it changed is durable: the ticket of its last record, or,
    /// when it journaled nothing (a repeated request), once everything before it is.
    fn acknowledge(&self, ticket: Option<Ticket>) -> ResponseFuture<Result<(), EngineError>> {
        let ticket = ticket.unwrap_or_else(|| self.journal.sync());
        Box::pin(async move { ticket.await.map(drop).map_err(EngineError::Journal) })
    }

    /// Schedules the next tick (not-ready reports, retries) for when the core wants it.
    fn arm_tick(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.tick.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = self.core.poll_timeout() {
            let delay = at.saturating_duration_since(Instant::now());
            self.tick = Some(ctx.run_later(delay, |act, ctx| {
                act.tick = None;
                act.input(Input::Tick, ctx);
            }));
        }
    }
}

impl Actor for EngineActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The default mailbox (16) is too small for bursts of facts.
        ctx.set_mailbox_capacity(4096);
        let cmds = self.core.start_with_generation(
            env!("CARGO_PKG_VERSION"),
            &self.config_digest,
            Instant::now(),
            self.cookie_generation,
        );
        self.execute(cmds);
        if let Some((client, rx, endpoint)) = self.switch.take() {
            self.switch_client = Some((client, endpoint));
            ctx.add_stream(batches_of(rx).map(SwitchBatch));
        }
        if let Some(rx) = self.ovsdb_events.take() {
            ctx.add_stream(batches_of(rx).map(OvsdbBatch));
        }
        self.arm_tick(ctx);
    }
}

impl StreamHandler<SwitchBatch> for EngineActor {
    fn handle(&mut self, batch: SwitchBatch, ctx: &mut Context<Self>) {
        self.on_switch_batch(batch.0, ctx);
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The client task ended (the engine is stopping): nothing more will come.
        debug!("switch event stream ended");
    }
}

impl StreamHandler<OvsdbBatch> for EngineActor {
    fn handle(&mut self, batch: OvsdbBatch, ctx: &mut Context<Self>) {
        self.on_ovsdb_batch(batch.0, ctx);
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        debug!("OVSDB event stream ended");
    }
}

impl Handler<Fact> for EngineActor {
    type Result = ();
    fn handle(&mut self, msg: Fact, ctx: &mut Context<Self>) {
        self.input(msg.0, ctx);
    }
}

impl Handler<AddPod> for EngineActor {
    type Result = ResponseFuture<Result<(), EngineError>>;
    fn handle(&mut self, msg: AddPod, ctx: &mut Context<Self>) -> Self::Result {
        let spec = msg.0;
        let removing = self.core.phase(&spec.ifname) == Some(podport_journal::Phase::Removing);
        if removing && self.core.container_of(&spec.ifname).as_deref() == Some(&spec.container_id) {
            // The same container's ADD after its DEL: the Pod comes back once it is gone.
            info!(ifname = %spec.ifname, "add of a Pod being removed: carried out when the removal completes");
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.deferred_adds
                .entry(spec.ifname.clone())
                .or_default()
                .push((spec, tx));
            return Box::pin(async move { rx.await.unwrap_or(Err(EngineError::Stopped)) });
        }
        self.add_pod_now(spec, ctx)
    }
}

impl Handler<HostInterfaceCreated> for EngineActor {
    type Result = ResponseFuture<Result<(), EngineError>>;
    fn handle(&mut self, msg: HostInterfaceCreated, ctx: &mut Context<Self>) -> Self::Result {
        if self.core.phase(&msg.0).is_none() {
            let e = format!("interface {} is not tracked (add the Pod first)", msg.0);
            return Box::pin(async move { Err(EngineError::Refused(e)) });
        }
        info!(ifname = %msg.0, "host interface created; switching the type");
        let ticket = self.input(Input::HostInterfaceCreated { ifname: msg.0 }, ctx);
        self.acknowledge(ticket)
    }
}

impl Handler<DeletePod> for EngineActor {
    type Result = ResponseFuture<Result<(), EngineError>>;
    fn handle(&mut self, msg: DeletePod, ctx: &mut Context<Self>) -> Self::Result {
        let DeletePod {
            ifname,
            container_id,
        } = msg;
        let Some(owner) = self.core.container_of(&ifname) else {
            // CNI DEL is idempotent: a Pod that is gone, or never was, is deleted.
            debug!(%ifname, "delete of a Pod that is not tracked: nothing to do");
            return self.acknowledge(None);
        };
        if let Some(c) = container_id.filter(|c| *c != owner) {
            // A DEL for another container of the same name (a runtime retrying an old
            // sandbox's DEL): that container's Pod is gone already; this one stays.
            info!(%ifname, container = %c, tracked = %owner, "delete for another container: the tracked Pod stays");
            return self.acknowledge(None);
        }
        info!(%ifname, "deleting Pod");
        let ticket = self.input(Input::DeletePod { ifname }, ctx);
        self.acknowledge(ticket)
    }
}

impl Handler<GetStatus> for EngineActor {
    type Result = MessageResult<GetStatus>;
    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.status(Instant::now()))
    }
}

impl Handler<Subscribe> for EngineActor {
    type Result = ();
    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        self.subscribers.push(msg.0);
    }
}

impl Handler<GetHealth> for EngineActor {
    type Result = MessageResult<GetHealth>;
    fn handle(&mut self, _: GetHealth, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Health {
            engine_running: true,
            ovsdb: self.ovsdb_link.view(),
            switch: self.switch_link.view(),
        })
    }
}

impl Handler<PanicForTest> for EngineActor {
    type Result = ();
    fn handle(&mut self, _: PanicForTest, _: &mut Context<Self>) {
        panic!("the engine actor was told to panic (a test of what notices a dead engine)");
    }
}

/// Is this OVSDB error worth waiting out here (the server is away)? Everything else goes
/// to the core, typed.
fn server_away(e: &OvsdbError) -> bool {
    matches!(e, OvsdbError::NotConnected | OvsdbError::Disconnected(_))
}

/// An OVSDB error as the core sees it: retrying helps, or not.
fn ovsdb_failure(e: OvsdbError) -> Failure {
    if e.is_transient() {
        Failure::transient(e.to_string())
    } else {
        Failure::permanent(e.to_string())
    }
}

/// A switch error as the core sees it. A flow the switch rejects (bad match, bad action) is
/// rejected again on every retry; a full table or a lost connection may pass.
fn switch_failure(e: &ClientError) -> Failure {
    let transient = match e {
        ClientError::NotConnected | ClientError::Disconnected(_) | ClientError::Stopped => true,
        // OFPET_FLOW_MOD_FAILED (5) / OFPFMFC_TABLE_FULL (1).
        ClientError::Rejected(m) | ClientError::FlowModRejected { error: m, .. } => {
            m.err_type == 5 && m.code == 1
        }
        _ => false,
    };
    if transient {
        Failure::transient(e.to_string())
    } else {
        Failure::permanent(e.to_string())
    }
}

/// Runs an OVSDB operation, retrying while the server is away, so no Pod is lost to an
/// OVSDB restart.
async fn with_retry<T, F, Fut>(what: String, mut op: F) -> Result<T, OvsdbError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, OvsdbError>>,
{
    let mut delay = Duration::from_millis(50);
    loop {
        match op().await {
            Err(e) if server_away(&e) => {
                debug!(%what, error = %e, "OVSDB away; retrying");
                actix_rt::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// The OVSDB actor.
pub struct OvsdbActor {
    client: OvsdbClient,
    bridge: String,
    initial_type: String,
    engine: Addr<EngineActor>,
}

impl OvsdbActor {
    pub fn new(
        client: OvsdbClient,
        bridge: String,
        initial_type: String,
        engine: Addr<EngineActor>,
    ) -> Self {
        OvsdbActor {
            client,
            bridge,
            initial_type,
            engine,
        }
    }
}

impl Actor for OvsdbActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Handler<OvsdbCommand> for OvsdbActor {
    type Result = ();
    fn handle(&mut self, msg: OvsdbCommand, ctx: &mut Context<Self>) {
        let client = self.client.clone();
        let engine = self.engine.clone();
        let bridge = self.bridge.clone();
        let initial_type = self.initial_type.clone();
        let fut = async move {
            match msg.0 {
                Command::CreatePort(spec) => {
                    let ovs_spec = PodPortSpec {
                        namespace: spec.namespace.clone(),
                        name: spec.name.clone(),
                        container_id: spec.container_id.clone(),
                        ifname: spec.ifname.clone(),
                        ips: spec.ips.clone(),
                        mac: spec.mac.to_string(),
                        initial_type,
                    };
                    let r = with_retry(format!("create {}", spec.ifname), || {
                        client.create_pod_port(&bridge, &ovs_spec)
                    })
                    .await;
                    if let Ok(u) = &r {
                        if !u.created {
                            // Adopted: the monitor announced its Interface before the Pod
                            // was tracked, so hand the core what OVSDB holds now.
                            match client.snapshot().await {
                                Ok(snap) => {
                                    if let Some(i) =
                                        snap.interfaces.into_iter().find(|i| i.name == spec.ifname)
                                    {
                                        engine.do_send(Fact(Input::OvsdbInterface {
                                            ifname: i.name,
                                            iface_type: i.iface_type,
                                            ofport: i.ofport,
                                            error: i.error,
                                        }));
                                    }
                                }
                                Err(e) => warn!(ifname = %spec.ifname, error = %e,
                                    "cannot read the adopted port's Interface; the monitor's next update brings it"),
                            }
                        }
                    }
                    engine.do_send(Fact(match r {
                        Ok(u) => Input::PortCreated {
                            ifname: spec.ifname,
                            port_uuid: u.port.to_string(),
                            interface_uuid: u.interface.to_string(),
                            adopted: !u.created,
                        },
                        Err(e) => Input::PortCreateFailed {
                            ifname: spec.ifname,
                            error: ovsdb_failure(e),
                        },
                    }));
                }
                Command::SetInterfaceType {
                    ifname,
                    iface_type,
                    container_id,
                } => {
                    let r = with_retry(format!("set type of {ifname}"), || {
                        client.set_interface_type(&ifname, &iface_type, &container_id)
                    })
                    .await;
                    engine.do_send(Fact(Input::TypeChanged {
                        ifname,
                        result: r.map_err(ovsdb_failure),
                    }));
                }
                Command::DeletePort {
                    ifname,
                    container_id,
                } => {
                    let r = with_retry(format!("delete {ifname}"), || {
                        client.delete_pod_port(&bridge, &ifname, &container_id)
                    })
                    .await;
                    if let Ok(false) = r {
                        info!(%ifname, %container_id, "no port of podport's for this Pod in OVSDB (gone, or another's): nothing deleted");
                    }
                    engine.do_send(Fact(Input::PortDeleted {
                        ifname,
                        result: r.map(drop).map_err(ovsdb_failure),
                    }));
                }
                Command::WaitOfport { ifname, timeout } => {
                    let r = client.wait_for_ofport(&ifname, timeout).await;
                    engine.do_send(Fact(Input::OfportWaited {
                        ifname,
                        result: r.map_err(|e| Failure::transient(e.to_string())),
                    }));
                }
                other => warn!(?other, "OVSDB actor got a command that is not its own"),
            }
        };
        ctx.spawn(fut.into_actor(self));
    }
}

impl Supervised for OvsdbActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        warn!("OVSDB actor restarting");
    }
}

fn port_desc(p: &Port) -> PortDesc {
    PortDesc {
        port_no: p.port_no.0,
        name: p.name.clone(),
        state: p.state.bits(),
        config: p.config.bits(),
        hw_addr: p.hw_addr.0,
    }
}

fn reason(r: OfReason) -> PortReason {
    match r {
        OfReason::Add => PortReason::Add,
        OfReason::Delete => PortReason::Delete,
        OfReason::Modify => PortReason::Modify,
        OfReason::Unknown(n) => PortReason::Other(n),
    }
}

/// Turns drained client events into facts, in order. Every PortStatus is kept: each is
/// journaled and applied (cheap), and the core decides once per batch, which is where a
/// backlog collapses.
fn facts(events: Vec<ClientEvent>, endpoint: &str) -> Vec<Input> {
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        match ev {
            ClientEvent::PortStatus(ps) => out.push(Input::PortStatus {
                reason: reason(ps.reason),
                port: port_desc(&ps.port),
            }),
            ClientEvent::Connected {
                version,
                datapath_id,
            } => out.push(Input::SwitchConnected {
                endpoint: endpoint.to_string(),
                datapath_id,
                of_version: version.to_string(),
            }),
            ClientEvent::PortDesc(Ok(ports)) => {
                info!(ports = ports.len(), "PORT_DESC taken");
                out.push(Input::PortDesc {
                    ports: ports.iter().map(port_desc).collect(),
                });
            }
            ClientEvent::PortDesc(Err(_)) => {}
            ClientEvent::Disconnected { reason } => out.push(Input::SwitchDisconnected {
                endpoint: endpoint.to_string(),
                reason: reason.to_string(),
            }),
        }
    }
    out
}

/// Installs and removes flows.
/// It owns the checks of installed flows: after a restart or a reconnect every Pod's flows
/// are to be verified, and one read of every Pod flow on the switch (by the Pod cookie
/// prefix) answers all the checks queued meanwhile, instead of one read per Pod.
pub struct FlowProgrammer {
    client: OfClient,
    provider: Arc<dyn FlowProvider>,
    engine: Addr<EngineActor>,
    metrics: Arc<Metrics>,
    /// Checks waiting for the next read: (spec, port number, cookie). At most one per Pod
    /// (the core sends one install per Pod at a time).
    to_verify: Vec<(PodSpec, u32, u64)>,
    /// A read of the switch's Pod flows is in flight.
    reading: bool,
}

impl FlowProgrammer {
    pub fn new(
        client: OfClient,
        provider: Arc<dyn FlowProvider>,
        engine: Addr<EngineActor>,
        metrics: Arc<Metrics>,
    ) -> Self {
        FlowProgrammer {
            client,
            provider,
            engine,
            metrics,
            to_verify: Vec::new(),
            reading: false,
        }
    }

    /// Reads every Pod flow once and settles every queued check against it: a Pod whose
    /// flows are exactly right is left untouched, any other gets its flows replaced.
    fn verify_queued(&mut self, ctx: &mut Context<Self>) {
        if self.reading || self.to_verify.is_empty() {
            return;
        }
        self.reading = true;
        let batch = std::mem::take(&mut self.to_verify);
        let client = self.client.clone();
        let engine = self.engine.clone();
        let provider = self.provider.clone();
        let metrics = self.metrics.clone();
        let fut = async move {
            let read = client
                .flow_desc(FlowDescRequest::by_cookie(
                    podport_journal::POD_COOKIE_BASE,
                    podport_journal::POD_COOKIE_MASK,
                ))
                .await;
            let mut by_cookie: HashMap<u64, Vec<FlowEntry>> = HashMap::new();
            match read {
                Ok(entries) => {
                    for e in entries {
                        by_cookie.entry(e.cookie).or_default().push(e);
                    }
                }
                Err(e) => warn!(error = %e, "cannot read the switch's flows; replacing them"),
            }
            debug!(
                pods = batch.len(),
                "checking Pod flows against one read of the switch"
            );
            let installs = batch.into_iter().map(|(spec, port_no, cookie)| {
                let flows = provider.pod_flows(&spec, port_no, cookie);
                let right = by_cookie
                    .get(&cookie)
                    .is_some_and(|installed| same_flows(installed, &flows));
                let (client, engine, metrics) = (client.clone(), engine.clone(), metrics.clone());
                async move {
                    let count = flows.len() as u32;
                    let r = if right {
                        debug!(ifname = %spec.ifname, cookie, "flows already right on the switch");
                        Ok(count)
                    } else {
                        // A restarted agent's Pods may carry traffic on what is there now.
                        replace_flows(&client, cookie, flows, true).await
                    };
                    report_install(&engine, &metrics, spec.ifname, port_no, r);
                }
            });
            futures_util::future::join_all(installs).await;
        };
        ctx.spawn(fut.into_actor(self).map(|(), act, ctx| {
            act.reading = false;
            act.verify_queued(ctx);
        }));
    }
}

/// Replaces whatever the Pod had (maybe on an old number) in one bundle: the switch never
/// holds a mix, nor a moment without the Pod's flows.
async fn replace_flows(
    client: &OfClient,
    cookie: u64,
    flows: Vec<FlowMod>,
    atomic: bool,
) -> Result<u32, Failure> {
    let count = flows.len() as u32;
    // The delete by cookie first, in either form: whatever an earlier attempt left goes.
    let mut batch = vec![FlowMod::delete_by_cookie(cookie)];
    batch.extend(flows);
    send_flows(client, batch, atomic).await.map(|_| count)
}

fn report_install(
    engine: &Addr<EngineActor>,
    metrics: &Metrics,
    ifname: String,
    port_no: u32,
    result: Result<u32, Failure>,
) {
    match &result {
        Ok(_) => metrics.flow_installs.inc(),
        Err(_) => metrics.flow_failures.inc(),
    };
    engine.do_send(Fact(Input::FlowsInstalled {
        ifname,
        port_no,
        result,
    }));
}

impl Actor for FlowProgrammer {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Supervised for FlowProgrammer {
    fn restarting(&mut self, _: &mut Context<Self>) {
        warn!("flow programmer restarting");
    }
}

/// Sends a batch (fenced by one barrier), retrying with backoff while the error is a
/// rejection that may pass later; a lost connection is not retried here: the engine
/// reinstalls everything after the reconnect.
async fn send_flows(client: &OfClient, flows: Vec<FlowMod>, atomic: bool) -> Result<u32, Failure> {
    let n = flows.len() as u32;
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=3 {
        let r = if atomic {
            client.flow_mods_atomic(flows.clone()).await
        } else {
            client.flow_mods(flows.clone()).await
        };
        match r {
            Ok(()) => return Ok(n),
            Err(
                e @ (ClientError::NotConnected
                | ClientError::Disconnected(_)
                | ClientError::Stopped),
            ) => return Err(switch_failure(&e)),
            Err(e) if attempt == 3 => return Err(switch_failure(&e)),
            Err(e) => {
                warn!(error = %e, attempt, "flow batch failed; retrying");
                actix_rt::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    Err(Failure::transient("no attempt was made"))
}

/// Set equality of installed entries and desired flow mods (OVS keeps one flow per match and
/// priority, so equal counts and mutual inclusion mean the same table).
fn same_flows(installed: &[FlowEntry], desired: &[FlowMod]) -> bool {
    installed.len() == desired.len()
        && desired
            .iter()
            .all(|d| installed.iter().any(|e| e.matches_flow_mod(d)))
        && installed
            .iter()
            .all(|e| desired.iter().any(|d| e.matches_flow_mod(d)))
}

/// Removes flows under Pod cookies that no tracked Pod has (Pods deleted while the agent was
/// away, or never journaled): only cookies handed out before the sweep was decided, so a
/// Pod added meanwhile is never touched.
async fn sweep_flows(client: &OfClient, keep: &[u64], below: u64) {
    let base = podport_journal::POD_COOKIE_BASE;
    let entries = match client
        .flow_desc(FlowDescRequest::by_cookie(
            base,
            podport_journal::POD_COOKIE_MASK,
        ))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "cannot read the switch's flows; no sweep this time");
            return;
        }
    };
    let mut stale: Vec<u64> = entries
        .iter()
        .map(|e| e.cookie)
        .filter(|c| {
            // Only this journal's generation: another's cookies belong to a lost journal
            // whose Pods may still run.
            podport_journal::cookie_generation(*c) == podport_journal::cookie_generation(below)
                && *c < below
                && !keep.contains(c)
        })
        .collect();
    stale.sort_unstable();
    stale.dedup();
    for cookie in stale {
        match send_flows(client, vec![FlowMod::delete_by_cookie(cookie)], false).await {
            Ok(_) => info!(
                cookie = format_args!("{cookie:#x}"),
                "removed flows of a Pod podport no longer tracks"
            ),
            Err(e) => warn!(cookie, error = %e, "could not remove stale flows"),
        }
    }
}

impl Handler<FlowCommand> for FlowProgrammer {
    type Result = ();
    fn handle(&mut self, msg: FlowCommand, ctx: &mut Context<Self>) {
        if let Command::InstallFlows {
            spec,
            port_no,
            cookie,
            verify: true,
            ..
        } = msg.0
        {
            self.to_verify.push((spec, port_no, cookie));
            self.verify_queued(ctx);
            return;
        }
        let client = self.client.clone();
        let engine = self.engine.clone();
        let provider = self.provider.clone();
        let metrics = self.metrics.clone();
        let fut = async move {
            match msg.0 {
                Command::InstallFlows {
                    spec,
                    port_no,
                    cookie,
                    replace,
                    ..
                } => {
                    let flows = provider.pod_flows(&spec, port_no, cookie);
                    let r = replace_flows(&client, cookie, flows, replace).await;
                    report_install(&engine, &metrics, spec.ifname, port_no, r);
                }
                Command::RemoveFlows { ifname, cookie } => {
                    let r =
                        send_flows(&client, vec![FlowMod::delete_by_cookie(cookie)], false).await;
                    engine.do_send(Fact(Input::FlowsRemoved { ifname, result: r }));
                }
                Command::SweepFlows { keep, below } => {
                    sweep_flows(&client, &keep, below).await;
                }
                Command::InstallBridgeDefaults => {
                    if let Err(e) = send_flows(&client, provider.bridge_flows(), false).await {
                        warn!(error = %e, "bridge default flows failed; the next connect retries");
                    }
                }
                other => warn!(?other, "flow programmer got a command that is not its own"),
            }
        };
        ctx.spawn(fut.into_actor(self));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podport_openflow::{MacAddr, PortConfig, PortState, PortStatus, Version};

    fn ps(reason: OfReason, no: u32) -> ClientEvent {
        ClientEvent::PortStatus(PortStatus {
            reason,
            port: Port {
                port_no: podport_openflow::PortNo(no),
                hw_addr: MacAddr::default(),
                name: format!("p{no}"),
                config: PortConfig::empty(),
                state: PortState::LIVE,
                ethernet: None,
                other_properties: Default::default(),
            },
        })
    }

    fn kind(i: &Input) -> String {
        match i {
            Input::PortStatus { reason, port } => format!("{}:{}", reason.label(), port.port_no),
            Input::SwitchConnected { .. } => "connected".into(),
            Input::SwitchDisconnected { .. } => "disconnected".into(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn a_batch_keeps_every_port_status_in_order() {
        // A type change is DELETE, ADD, MODIFY for one number: merging them to the last one
        // would lose the ADD that says the port is the new one.
        let events = vec![
            ClientEvent::Connected {
                version: Version::Of15,
                datapath_id: 1,
            },
            ps(OfReason::Delete, 5),
            ps(OfReason::Add, 5),
            ps(OfReason::Modify, 5),
            ClientEvent::Disconnected {
                reason: podport_session::openflow::DisconnectReason::PeerClosed,
            },
        ];
        let kinds: Vec<String> = facts(events, "unix:/x").iter().map(kind).collect();
        assert_eq!(
            kinds,
            ["connected", "DELETE:5", "ADD:5", "MODIFY:5", "disconnected"]
        );
    }

    #[test]
    fn a_rejected_flow_is_permanent_and_a_full_table_or_lost_switch_is_not() {
        let err = |t, c| podport_openflow::ErrorMsg {
            err_type: t,
            code: c,
            data: Default::default(),
        };
        assert!(switch_failure(&ClientError::Rejected(err(5, 1))).kind == FailureKind::Transient);
        assert!(switch_failure(&ClientError::Rejected(err(4, 2))).is_permanent());
        assert!(!switch_failure(&ClientError::NotConnected).is_permanent());
    }
}
