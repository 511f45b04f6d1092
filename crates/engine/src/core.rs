//! The engine's core: decides, for every Pod port, what to do next. Pure: no sockets, no
//! actors, no clock (time is passed in).
//!
//! Deciding is split from applying (the event-sourcing shape): an input gives events and
//! commands; every change of the durable [`State`] happens only by applying a journaled event
//! with the journal's one fold, [`apply_event`], live here and at replay. So the state a
//! restart rebuilds from the journal is the live state, by construction.
//!
//! Use: feed every fact with [`Core::handle`] (`Input` in, `Vec<Command>` out), in order, and
//! call it with [`Input::Tick`] when [`Core::poll_timeout`] is due. Execute the commands in
//! order: a [`Command::Journal`] carries the event *and* the time it was applied at, which is
//! what the journal must record. Results of commands come back as inputs.
//!
//! What is not durable is only what a restart cannot carry over anyway: requests in flight
//! (a restarted core asks again for whatever the state still needs), retry timers and the
//! next "not ready yet" report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use podport_journal::{
    apply_event, wire_name, Event, Failure, Finding, Outcome, Phase, PodPort, PodRef, Policy,
    PortDesc, PortReason, Readiness, Stage, State, Step,
};

use crate::spec::{validate, AddPodError, PodSpec};

/// How the engine learns that a port has its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// React to PortStatus (and PORT_DESC); never give up.
    PortStatus,
    /// The legacy behaviour: after the type change, one OVSDB `wait` for the ofport with
    /// `timeout`; on timeout the attach fails and is retried every `retry_every`.
    OvsdbWait {
        timeout: Duration,
        retry_every: Duration,
    },
}

/// Settings of the core.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    pub readiness: Readiness,
    /// A port not ready after this long gets a "not ready yet" event, again at every interval.
    pub not_ready_every: Duration,
    pub strategy: Strategy,
    /// The Interface type set once the host interface exists.
    pub attached_type: String,
    /// The Interface type a port is created with, before its vNIC exists: empty (`system`),
    /// as agents do. A sandbox whose dummy devices open any type at once can use a type OVS
    /// cannot open (`ofport` -1 until the attach), which is what Windows nodes see.
    pub initial_type: String,
    /// First delay before a transient failure is retried; doubled per attempt up to
    /// `retry_cap`, with up to a quarter added as jitter.
    pub flow_retry: Duration,
    pub retry_cap: Duration,
    /// How long OVS's "could not open" (`ofport` -1 for the attached type) must hold before
    /// it is reported: OVS writes the old type's -1 late, then the port's number.
    pub open_failure_grace: Duration,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            readiness: Readiness::Live,
            not_ready_every: Duration::from_secs(30),
            strategy: Strategy::PortStatus,
            attached_type: "internal".into(),
            initial_type: String::new(),
            flow_retry: Duration::from_secs(1),
            retry_cap: Duration::from_secs(30),
            open_failure_grace: Duration::from_secs(2),
        }
    }
}

impl CoreConfig {
    /// The rules the fold needs, journaled in `AgentStarted`.
    pub fn policy(&self) -> Policy {
        Policy {
            readiness: self.readiness,
            ovsdb_wait: matches!(self.strategy, Strategy::OvsdbWait { .. }),
            attached_type: self.attached_type.clone(),
        }
    }
}

/// What subscribers of the engine hear about Pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodEvent {
    Ready {
        ifname: String,
        port_no: u32,
        waited: Duration,
        /// The stages this wait went through, each with the time since the one before it
        /// (see [`podport_journal::StageTimes::this_wait`]).
        stages: Vec<(Stage, Duration)>,
    },
    NotReady {
        ifname: String,
        phase: Phase,
        waited: Duration,
    },
    /// A step failed; `error` ends in "(permanent)" when nothing more will be tried.
    Failed {
        ifname: String,
        error: String,
    },
    Removed {
        ifname: String,
        reason: String,
    },
}

/// Results and facts the shell feeds in.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    AddPod(PodSpec),
    PortCreated {
        ifname: String,
        port_uuid: String,
        interface_uuid: String,
        /// The port existed already, made by podport for this container (a restart on a new
        /// journal, or an add repeated by the runtime): it is adopted.
        adopted: bool,
    },
    PortCreateFailed {
        ifname: String,
        error: Failure,
    },
    HostInterfaceCreated {
        ifname: String,
    },
    TypeChanged {
        ifname: String,
        result: Result<(), Failure>,
    },
    OvsdbInterface {
        ifname: String,
        iface_type: String,
        ofport: Option<i64>,
        error: Option<String>,
    },
    OvsdbInterfaceGone {
        ifname: String,
    },
    /// The full Interface table after an OVSDB (re)connect: (name, type, ofport, error).
    OvsdbSnapshot {
        interfaces: Vec<(String, String, Option<i64>, Option<String>)>,
    },
    PortStatus {
        reason: PortReason,
        port: PortDesc,
    },
    PortDesc {
        ports: Vec<PortDesc>,
    },
    SwitchConnected {
        endpoint: String,
        datapath_id: u64,
        of_version: String,
    },
    SwitchDisconnected {
        endpoint: String,
        reason: String,
    },
    FlowsInstalled {
        ifname: String,
        port_no: u32,
        result: Result<u32, Failure>,
    },
    FlowsRemoved {
        ifname: String,
        result: Result<u32, Failure>,
    },
    PortDeleted {
        ifname: String,
        result: Result<(), Failure>,
    },
    /// The legacy strategy's OVSDB wait finished.
    OfportWaited {
        ifname: String,
        result: Result<i64, Failure>,
    },
    DeletePod {
        ifname: String,
    },
    Tick,
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    CreatePort(PodSpec),
    /// Only the Interface podport made for `container_id` is changed.
    SetInterfaceType {
        ifname: String,
        iface_type: String,
        container_id: String,
    },
    WaitOfport {
        ifname: String,
        timeout: Duration,
    },
    /// Make the switch hold exactly the Pod's flows for `port_no` under `cookie`, confirmed by
    /// a barrier. With `verify`, what the switch already holds is read first and a Pod whose
    /// flows are right is left untouched (after a restart or a reconnect). With `replace`,
    /// flows of the Pod were confirmed before (on another number): they are swapped in one
    /// bundle so its traffic never sees neither; without, nothing of the Pod's can carry
    /// traffic yet, and a plain batch and its barrier (one round trip, where a bundle takes
    /// three) does the same.
    InstallFlows {
        spec: PodSpec,
        port_no: u32,
        cookie: u64,
        verify: bool,
        replace: bool,
    },
    RemoveFlows {
        ifname: String,
        cookie: u64,
    },
    InstallBridgeDefaults,
    /// Take the switch's port list again (delivered as `Input::PortDesc`, in stream order).
    RequestPortDesc,
    /// Remove flows under Pod cookies below `below` that are not in `keep` (Pods that went
    /// away while the agent was not there to remove their flows).
    SweepFlows {
        keep: Vec<u64>,
        below: u64,
    },
    /// Only the Port podport made for `container_id` is deleted.
    DeletePort {
        ifname: String,
        container_id: String,
    },
    /// Append `event`, applied at `ts_micros` (µs since the epoch), to the journal.
    Journal {
        ts_micros: u64,
        event: Event,
    },
    Emit(PodEvent),
}

/// A retry timer with its attempt count (for the backoff).
#[derive(Clone, Copy, Debug, Default)]
struct Backoff {
    at: Option<Instant>,
    attempts: u32,
}

impl Backoff {
    fn due(&self, now: Instant) -> bool {
        self.at.is_none_or(|t| now >= t)
    }

    /// Schedules the next attempt: `base * 2^attempts`, capped, plus a jitter of up to a
    /// quarter that is derived from the port's name and the attempt (pure, yet spread).
    fn schedule(&mut self, now: Instant, config: &CoreConfig, salt: &str) {
        let exp = config
            .flow_retry
            .saturating_mul(1u32 << self.attempts.min(16))
            .min(config.retry_cap);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in salt.bytes().chain(self.attempts.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        let jitter = exp.mul_f64((h % 1000) as f64 / 4000.0);
        self.at = Some(now + exp + jitter);
        self.attempts = self.attempts.saturating_add(1);
    }

    fn reset(&mut self) {
        *self = Backoff::default();
    }
}

/// What a port's process holds besides the durable state: requests in flight and timers.
#[derive(Clone, Debug)]
struct Runtime {
    create_in_flight: bool,
    type_in_flight: bool,
    /// The type OVSDB showed when the type change was asked for (journaled as `from`).
    type_from: Option<String>,
    wait_in_flight: bool,
    delete_in_flight: bool,
    /// A removal of the Pod's flows is in flight / was confirmed (a deletion's first step).
    remove_in_flight: bool,
    flows_removed: bool,
    /// An install in flight, for this port number.
    flows_pending: Option<u32>,
    /// The flows the state believes in were installed by an earlier process or connection:
    /// check them against the switch before relying on them.
    verify_flows: bool,
    ovsdb: Backoff,
    flows: Backoff,
    wait: Backoff,
    next_not_ready: Instant,
    /// Rebuilt from the journal and not yet checked against the switch's port list.
    restored: Option<Option<u32>>,
    /// OVS could not open the interface (attached type, `ofport` -1): reported at this time
    /// if it still holds, with this text.
    open_failure: Option<(Instant, String)>,
    /// The switch's port of a ready Pod went away (a PortStatus DELETE, or missing from the
    /// port list after a reconnect or a restart): reported at this time, naming this number,
    /// if it is still gone. This does not wait for OVSDB's `ofport` -1, which Windows OVS
    /// never writes for a vanished vNIC (ovs-issues#353).
    port_gone: Option<(Instant, u32)>,
    /// The number the Pod was last ready on, until its loss is reported: the flows (and the
    /// Ready mark) may be gone before the port list shows the port gone (a reconnect).
    ready_port: Option<u32>,
    /// The switch's ADD of the port after the type change may never reach this core: it was
    /// rebuilt from the journal (the previous process may have seen the change committed and
    /// died), or the switch connection dropped since (an ADD in flight is lost with it).
    add_may_be_lost: bool,
    was_ready: bool,
}

impl Runtime {
    fn new(now: Instant, config: &CoreConfig) -> Runtime {
        Runtime {
            create_in_flight: false,
            type_in_flight: false,
            type_from: None,
            wait_in_flight: false,
            delete_in_flight: false,
            remove_in_flight: false,
            flows_removed: false,
            flows_pending: None,
            verify_flows: false,
            ovsdb: Backoff::default(),
            flows: Backoff::default(),
            wait: Backoff::default(),
            next_not_ready: now + config.not_ready_every,
            restored: None,
            open_failure: None,
            port_gone: None,
            ready_port: None,
            add_may_be_lost: false,
            was_ready: false,
        }
    }
}

/// A port as `status()` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortStatusView {
    pub ifname: String,
    pub pod: String,
    pub cookie: u64,
    pub port_no: Option<u32>,
    pub state: u32,
    pub phase: Phase,
    pub ready: bool,
    pub ready_for: Option<Duration>,
    pub waited: Duration,
    pub last_error: Option<String>,
    pub attach_failures: u32,
    /// Each stage of the current attach reached, with the time since the one before it.
    pub stages: Vec<(Stage, Duration)>,
}

/// Every tracked port and the switch connection. See the module documentation.
#[derive(Debug)]
pub struct Core {
    config: CoreConfig,
    state: State,
    runtime: BTreeMap<String, Runtime>,
    /// The wall clock at `epoch`: journal times are derived from `now`, so the core stays pure.
    epoch: Instant,
    epoch_micros: u64,
    /// Ports to decide on again at the next evaluation, or all of them.
    dirty: std::collections::BTreeSet<String>,
    all_dirty: bool,
    /// Tests: decide on every port after every input (what the dirty set must equal).
    always_all: bool,
    /// A PORT_DESC was asked for and has not arrived yet.
    desc_requested: bool,
}

impl Core {
    /// A core with no history (tests; an engine always starts from its journal).
    pub fn new(config: CoreConfig, now: Instant, wall_micros: u64) -> Core {
        Core::restore(config, State::default(), now, wall_micros)
    }

    /// A core whose state is the journal's fold. Nothing is in flight: whatever the state
    /// still needs is asked for again by [`Core::start`].
    pub fn restore(config: CoreConfig, state: State, now: Instant, wall_micros: u64) -> Core {
        let runtime = state
            .ports
            .iter()
            .map(|(k, p)| {
                let mut rt = Runtime::new(now, &config);
                rt.restored = Some(p.port_no);
                rt.add_may_be_lost = true;
                rt.verify_flows = p.flows.is_some();
                rt.was_ready = p.is_ready();
                (k.clone(), rt)
            })
            .collect();
        Core {
            config,
            state,
            runtime,
            epoch: now,
            epoch_micros: wall_micros,
            dirty: std::collections::BTreeSet::new(),
            all_dirty: true,
            always_all: false,
            desc_requested: false,
        }
    }

    /// Journals `AgentStarted` (the rules of the fold) and asks for what the restored state
    /// still needs (a create, a type change, a deletion that had not completed).
    pub fn start(&mut self, version: &str, config_digest: &str, now: Instant) -> Vec<Command> {
        self.start_with_generation(version, config_digest, now, 0)
    }

    /// [`Core::start`], giving a journal that has no cookie generation yet `generation`
    /// (non-zero; drawn at random by the shell, so the core stays pure): a journal that
    /// replaces a lost one then never hands out a cookie the switch holds flows under.
    pub fn start_with_generation(
        &mut self,
        version: &str,
        config_digest: &str,
        now: Instant,
        generation: u32,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        self.emit(
            Event::AgentStarted {
                version: version.into(),
                config_digest: config_digest.into(),
                policy: self.config.policy(),
            },
            now,
            &mut out,
        );
        if generation & 0x00ff_ffff != 0
            && podport_journal::cookie_generation(self.state.next_cookie) == 0
        {
            self.emit(Event::CookieGeneration { generation }, now, &mut out);
        }
        // A journal written before today's checks may hold a spec OVSDB would refuse (a NUL
        // in a name drops the connection): such a Pod never reaches OVSDB. Nothing of it can
        // exist there, so a deletion of it is complete at once.
        let invalid: Vec<(String, bool, String)> = self
            .state
            .ports
            .values()
            .filter(|p| p.failed.is_none() || p.removing)
            .filter_map(|p| {
                let e = validate(&spec_of(p)).err()?;
                Some((p.ifname.clone(), p.removing, e.to_string()))
            })
            .collect();
        for (ifname, removing, reason) in invalid {
            self.runtime.remove(&ifname);
            if removing {
                self.emit(Event::PodDeleted { ifname }, now, &mut out);
                continue;
            }
            let error = Failure::permanent(format!("the journaled spec is invalid: {reason}"));
            self.fail(&ifname, Step::CreatePort, error, now, &mut out);
        }
        self.evaluate(now, &mut out);
        out
    }

    /// Tests only: decide on every port after every input instead of the ports the input
    /// touched. The result must be the same; `tests/replay.rs` checks it.
    #[doc(hidden)]
    pub fn decide_on_every_port(&mut self, on: bool) {
        self.always_all = on;
    }

    /// The settings.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// The durable state (the journal's fold).
    pub fn state(&self) -> &State {
        &self.state
    }

    fn ts(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.epoch).as_micros();
        self.epoch_micros
            .saturating_add(u64::try_from(d).unwrap_or(u64::MAX))
    }

    /// The only way state changes: apply the event, then journal it with the same time.
    fn emit(&mut self, event: Event, now: Instant, out: &mut Vec<Command>) {
        let ts = self.ts(now);
        // Marked before the fold: a port the event removes needs no decision, and a port's
        // wire name is looked up while it still exists.
        self.touch(&event);
        apply_event(&mut self.state, ts, &event);
        out.push(Command::Journal {
            ts_micros: ts,
            event,
        });
    }

    /// Checks that `spec` may be added: valid on its own, and its wire name collides with no
    /// tracked port. Adding the same Pod twice is fine (idempotent).
    pub fn check_new_pod(&self, spec: &PodSpec) -> Result<(), AddPodError> {
        validate(spec)?;
        if let Some(p) = self.state.ports.get(&spec.ifname) {
            if p.container_id != spec.container_id {
                return Err(AddPodError::AlreadyTracked {
                    ifname: spec.ifname.clone(),
                    pod: p.pod.to_string(),
                    container_id: p.container_id.clone(),
                });
            }
            return Ok(());
        }
        let wire = wire_name(&spec.ifname);
        if let Some(other) = self
            .state
            .ports
            .keys()
            .find(|k| k.as_str() != spec.ifname && wire_name(k) == wire)
        {
            return Err(AddPodError::WireNameCollision {
                ifname: spec.ifname.clone(),
                other: other.clone(),
            });
        }
        Ok(())
    }

    /// Whether the switch connection is up and its port list is current.
    pub fn switch_ready(&self) -> bool {
        self.state.switch_ready()
    }

    /// How many ports are ready.
    pub fn ready_count(&self) -> usize {
        self.state.ports.values().filter(|p| p.is_ready()).count()
    }

    /// PortStatus messages seen for ports no Pod owns.
    pub fn foreign_port_status(&self) -> u64 {
        self.state.foreign_port_status
    }

    /// Ifnames of every tracked port.
    pub fn ifnames(&self) -> impl Iterator<Item = &str> {
        self.state.ports.keys().map(String::as_str)
    }

    /// When `Input::Tick` is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.state
            .ports
            .iter()
            .filter_map(|(k, p)| Some((p, self.runtime.get(k)?)))
            .flat_map(|(p, rt)| {
                let waiting = !p.is_ready() && !p.removing && p.failed.is_none();
                [
                    waiting.then_some(rt.next_not_ready),
                    rt.ovsdb.at,
                    rt.flows.at,
                    rt.wait.at,
                    rt.open_failure.as_ref().map(|(at, _)| *at),
                    rt.port_gone.map(|(at, _)| at),
                ]
            })
            .flatten()
            .min()
    }

    /// Every tracked port.
    pub fn status(&self, now: Instant) -> Vec<PortStatusView> {
        let ts = self.ts(now);
        self.state
            .ports
            .values()
            .map(|p| PortStatusView {
                ifname: p.ifname.clone(),
                pod: p.pod.to_string(),
                cookie: p.cookie,
                port_no: p.usable_port(&self.state.policy).or(p.port_no),
                state: p.state,
                phase: self.state.phase_of(p),
                ready: p.is_ready(),
                ready_for: p
                    .ready
                    .map(|r| Duration::from_micros(ts.saturating_sub(r.since))),
                waited: Duration::from_micros(ts.saturating_sub(p.waiting_since)),
                last_error: p
                    .failed
                    .as_ref()
                    .map(|f| f.to_string())
                    .or_else(|| p.last_error.clone()),
                attach_failures: p.attach_failures,
                stages: p.stages.durations(),
            })
            .collect()
    }

    /// The container of a tracked Pod.
    pub fn container_of(&self, ifname: &str) -> Option<String> {
        self.state.ports.get(ifname).map(|p| p.container_id.clone())
    }

    /// The phase of one port.
    pub fn phase(&self, ifname: &str) -> Option<Phase> {
        self.state.phase(ifname)
    }

    /// Handles one input at `now`; returns the commands to execute, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Command> {
        let mut out = Vec::new();
        self.decide(input, now, &mut out);
        self.evaluate(now, &mut out);
        out
    }

    /// Handles several inputs, deciding what follows once at the end (a drained batch).
    pub fn handle_batch(&mut self, inputs: Vec<Input>, now: Instant) -> Vec<Command> {
        let mut out = Vec::new();
        for i in inputs {
            self.decide(i, now, &mut out);
        }
        self.evaluate(now, &mut out);
        out
    }

    fn rt(&mut self, ifname: &str) -> Option<&mut Runtime> {
        self.runtime.get_mut(ifname)
    }

    fn port(&self, ifname: &str) -> Option<&PodPort> {
        self.state.ports.get(ifname)
    }

    fn fail(
        &mut self,
        ifname: &str,
        step: Step,
        error: Failure,
        now: Instant,
        out: &mut Vec<Command>,
    ) {
        let text = error.to_string();
        self.emit(
            Event::PodFailed {
                ifname: ifname.to_string(),
                step,
                error,
            },
            now,
            out,
        );
        out.push(Command::Emit(PodEvent::Failed {
            ifname: ifname.to_string(),
            error: text,
        }));
    }

    fn decide(&mut self, input: Input, now: Instant, out: &mut Vec<Command>) {
        match input {
            Input::AddPod(spec) => {
                if self.state.ports.contains_key(&spec.ifname) {
                    // Idempotent: the state already drives the create where it is missing.
                    return;
                }
                let cookie = self.state.next_cookie;
                let ifname = spec.ifname.clone();
                self.runtime
                    .insert(ifname.clone(), Runtime::new(now, &self.config));
                self.emit(
                    Event::PodAdded {
                        pod: PodRef {
                            namespace: spec.namespace.clone(),
                            name: spec.name.clone(),
                        },
                        container_id: spec.container_id.clone(),
                        ifname,
                        ips: spec.ips.clone(),
                        mac: spec.mac.to_string(),
                        cookie,
                    },
                    now,
                    out,
                );
            }
            Input::PortCreated {
                ifname,
                port_uuid,
                interface_uuid,
                adopted,
            } => {
                let Some(rt) = self.rt(&ifname) else { return };
                rt.create_in_flight = false;
                rt.ovsdb.reset();
                if adopted {
                    // Its port was announced (and listed) before it was ours to track.
                    rt.add_may_be_lost = true;
                }
                // A deletion waits for the create in flight (see `evaluate_port`).
                self.dirty.insert(ifname.clone());
                if self.port(&ifname).is_some_and(|p| p.port_uuid.is_none()) {
                    self.emit(
                        Event::PodPortCreated {
                            ifname,
                            port_uuid,
                            interface_uuid,
                        },
                        now,
                        out,
                    );
                }
            }
            Input::PortCreateFailed { ifname, error } => {
                let config = self.config.clone();
                let Some(rt) = self.rt(&ifname) else { return };
                rt.create_in_flight = false;
                if !error.is_permanent() {
                    rt.ovsdb.schedule(now, &config, &ifname);
                }
                self.fail(&ifname, Step::CreatePort, error, now, out);
            }
            Input::HostInterfaceCreated { ifname } => {
                if self
                    .port(&ifname)
                    .is_some_and(|p| !p.attached && !p.removing)
                {
                    self.emit(Event::HostInterfaceCreated { ifname }, now, out);
                }
            }
            Input::TypeChanged { ifname, result } => {
                let config = self.config.clone();
                let Some(rt) = self.rt(&ifname) else { return };
                rt.type_in_flight = false;
                let from = rt.type_from.take();
                let outcome = match result {
                    Ok(()) => {
                        rt.ovsdb.reset();
                        Outcome::Ok
                    }
                    Err(e) => {
                        if !e.is_permanent() {
                            rt.ovsdb.schedule(now, &config, &ifname);
                        }
                        Outcome::Failed(e)
                    }
                };
                let from = from
                    .or_else(|| self.port(&ifname).and_then(|p| p.iface_type.clone()))
                    .unwrap_or_default();
                let failed = match &outcome {
                    Outcome::Failed(e) => Some(e.to_string()),
                    Outcome::Ok => None,
                };
                self.emit(
                    Event::InterfaceTypeChanged {
                        ifname: ifname.clone(),
                        from,
                        to: config.attached_type.clone(),
                        outcome,
                    },
                    now,
                    out,
                );
                if let Some(error) = failed {
                    out.push(Command::Emit(PodEvent::Failed { ifname, error }));
                }
            }
            Input::OvsdbInterface {
                ifname,
                iface_type,
                ofport,
                error,
            } => self.on_ovsdb(&ifname, iface_type, ofport, error, now, out),
            Input::OvsdbInterfaceGone { ifname } => {
                if self
                    .port(&ifname)
                    .is_some_and(|p| !p.removing && p.port_uuid.is_some())
                {
                    self.fail(
                        &ifname,
                        Step::InterfaceDeleted,
                        Failure::transient("the Interface row was deleted from OVSDB"),
                        now,
                        out,
                    );
                }
            }
            Input::OvsdbSnapshot { interfaces } => {
                let present: BTreeMap<&str, _> =
                    interfaces.iter().map(|i| (i.0.as_str(), i)).collect();
                let vanished: Vec<String> = self
                    .state
                    .ports
                    .values()
                    .filter(|p| {
                        p.port_uuid.is_some()
                            && !p.removing
                            && !present.contains_key(p.ifname.as_str())
                    })
                    .map(|p| p.ifname.clone())
                    .collect();
                for (name, ty, ofport, error) in &interfaces {
                    if self.state.ports.contains_key(name) {
                        self.on_ovsdb(name, ty.clone(), *ofport, error.clone(), now, out);
                    }
                }
                for name in vanished {
                    // Deleted from OVS while we were away (or by someone else): its flows go
                    // too, and it is reported.
                    let cookie = self.port(&name).map(|p| p.cookie);
                    self.runtime.remove(&name);
                    self.emit(
                        Event::Reconciled {
                            ifname: name.clone(),
                            finding: Finding::Vanished,
                        },
                        now,
                        out,
                    );
                    if let Some(cookie) = cookie {
                        out.push(Command::RemoveFlows {
                            ifname: name.clone(),
                            cookie,
                        });
                    }
                    out.push(Command::Emit(PodEvent::Removed {
                        ifname: name,
                        reason: "its port vanished from OVSDB".into(),
                    }));
                }
            }
            Input::PortStatus { reason, port } => {
                self.emit(Event::PortStatusReceived { reason, port }, now, out);
            }
            Input::PortDesc { ports } => {
                self.desc_requested = false;
                let first_after_connect = !self.state.desc_synced;
                self.emit(Event::PortDescSynced { ports }, now, out);
                // A list taken with the type change committed shows the port as it is now
                // (or its ADD comes live after it).
                for (k, rt) in self.runtime.iter_mut() {
                    if self.state.ports.get(k).is_some_and(|p| p.type_changed) {
                        rt.add_may_be_lost = false;
                    }
                }
                let restored: Vec<(String, Option<u32>)> = self
                    .runtime
                    .iter_mut()
                    .filter_map(|(k, rt)| Some((k.clone(), rt.restored.take()?)))
                    .collect();
                for (ifname, before) in restored {
                    let now_no = self.port(&ifname).and_then(|p| p.port_no);
                    let finding = match (before, now_no) {
                        (Some(a), Some(b)) if a == b => Finding::Present { port_no: b },
                        (Some(a), Some(b)) => Finding::Renumbered { from: a, to: b },
                        (None, Some(b)) => Finding::Allocated { port_no: b },
                        (_, None) => Finding::Waiting,
                    };
                    self.emit(Event::Reconciled { ifname, finding }, now, out);
                }
                if first_after_connect {
                    out.push(Command::InstallBridgeDefaults);
                    out.push(Command::SweepFlows {
                        keep: self.state.ports.values().map(|p| p.cookie).collect(),
                        below: self.state.next_cookie,
                    });
                }
            }
            Input::SwitchConnected {
                endpoint,
                datapath_id,
                of_version,
            } => {
                self.desc_requested = false;
                self.emit(
                    Event::SwitchConnected {
                        endpoint,
                        datapath_id,
                        of_version,
                    },
                    now,
                    out,
                );
            }
            Input::SwitchDisconnected { endpoint, reason } => {
                for (k, rt) in self.runtime.iter_mut() {
                    // Replies to what was sent on the old connection never come; flows may
                    // have survived (the switch did not restart): check before replacing.
                    rt.flows_pending = None;
                    rt.remove_in_flight = false;
                    rt.flows.reset();
                    rt.add_may_be_lost = true;
                    if self.state.ports.get(k).is_some_and(|p| p.flows.is_some()) {
                        rt.verify_flows = true;
                    }
                }
                self.emit(Event::SwitchDisconnected { endpoint, reason }, now, out);
            }
            Input::FlowsInstalled {
                ifname,
                port_no,
                result,
            } => {
                let config = self.config.clone();
                let Some(rt) = self.rt(&ifname) else { return };
                if rt.flows_pending != Some(port_no) {
                    // Superseded by a newer install (the number changed meanwhile).
                    return;
                }
                rt.flows_pending = None;
                match result {
                    Ok(count) => {
                        rt.flows.reset();
                        rt.verify_flows = false;
                        let cookie = self.port(&ifname).map_or(0, |p| p.cookie);
                        self.emit(
                            Event::FlowsInstalled {
                                ifname,
                                port_no,
                                cookie,
                                count,
                            },
                            now,
                            out,
                        );
                    }
                    Err(e) => {
                        if !e.is_permanent() {
                            rt.flows.schedule(now, &config, &ifname);
                        }
                        self.fail(&ifname, Step::InstallFlows, e, now, out);
                    }
                }
            }
            Input::FlowsRemoved { ifname, result } => {
                let Some(cookie) = self.port(&ifname).map(|p| p.cookie) else {
                    return;
                };
                let config = self.config.clone();
                if let Some(rt) = self.rt(&ifname) {
                    rt.remove_in_flight = false;
                    match &result {
                        Ok(_) => rt.flows_removed = true,
                        Err(_) => rt.flows.schedule(now, &config, &ifname),
                    }
                }
                match result {
                    Ok(count) => self.emit(
                        Event::FlowsRemoved {
                            ifname,
                            cookie,
                            count,
                        },
                        now,
                        out,
                    ),
                    Err(e) => {
                        // Asked again (with backoff) before the port may go.
                        let e = Failure {
                            kind: e.kind,
                            reason: format!("removing flows: {}", e.reason),
                        };
                        self.emit(
                            Event::PodFailed {
                                ifname,
                                step: Step::RemoveFlows,
                                error: e,
                            },
                            now,
                            out,
                        );
                    }
                }
            }
            Input::PortDeleted { ifname, result } => {
                let config = self.config.clone();
                let Some(rt) = self.rt(&ifname) else { return };
                rt.delete_in_flight = false;
                match result {
                    Ok(()) => {
                        self.runtime.remove(&ifname);
                        self.emit(
                            Event::PodDeleted {
                                ifname: ifname.clone(),
                            },
                            now,
                            out,
                        );
                        out.push(Command::Emit(PodEvent::Removed {
                            ifname,
                            reason: "deleted".into(),
                        }));
                    }
                    Err(e) => {
                        // A deletion is always retried: the Pod is going away whatever OVSDB
                        // said, and a permanent error here would leave its port behind.
                        rt.ovsdb.schedule(now, &config, &ifname);
                        let e = Failure::transient(format!("deleting the port: {}", e.reason));
                        let text = e.to_string();
                        self.emit(
                            Event::PodFailed {
                                ifname: ifname.clone(),
                                step: Step::DeletePort,
                                error: e,
                            },
                            now,
                            out,
                        );
                        out.push(Command::Emit(PodEvent::Failed {
                            ifname,
                            error: text,
                        }));
                    }
                }
            }
            Input::OfportWaited { ifname, result } => {
                let retry = match self.config.strategy {
                    Strategy::OvsdbWait { retry_every, .. } => retry_every,
                    Strategy::PortStatus => Duration::from_secs(5),
                };
                let Some(rt) = self.rt(&ifname) else { return };
                rt.wait_in_flight = false;
                match result {
                    Ok(n) if n > 0 => {
                        rt.wait.reset();
                        self.emit(Event::OfportWaited { ifname, ofport: n }, now, out);
                    }
                    other => {
                        // The legacy failure: the attach failed, retried later.
                        rt.wait.at = Some(now + retry);
                        let e = match other {
                            Ok(n) => {
                                let err = self
                                    .port(&ifname)
                                    .and_then(|p| p.ovsdb_error.clone())
                                    .unwrap_or_default();
                                Failure::transient(format!("ofport {n}: {err}"))
                            }
                            Err(e) => Failure::transient(e.reason),
                        };
                        self.fail(&ifname, Step::OvsdbWait, e, now, out);
                    }
                }
            }
            Input::DeletePod { ifname } => {
                if self.port(&ifname).is_some_and(|p| !p.removing) {
                    if let Some(rt) = self.rt(&ifname) {
                        rt.ovsdb.reset();
                    }
                    self.emit(Event::DeleteRequested { ifname }, now, out);
                }
            }
            // Timers (retries, "not ready yet") are per port: look at every one.
            Input::Tick => self.all_dirty = true,
        }
    }

    fn on_ovsdb(
        &mut self,
        ifname: &str,
        iface_type: String,
        ofport: Option<i64>,
        error: Option<String>,
        now: Instant,
        out: &mut Vec<Command>,
    ) {
        let attached_type = self.config.attached_type.clone();
        let Some(p) = self.port(ifname) else { return };
        let changed = p.iface_type.as_deref() != Some(iface_type.as_str())
            || p.ofport != ofport
            || p.ovsdb_error != error;
        if !changed {
            return;
        }
        let on_attached_type = p.attached && iface_type == attached_type;
        let created = p.port_uuid.is_some();
        let new_failure = p.ofport != ofport || p.ovsdb_error != error;
        self.emit(
            Event::OvsdbInterfaceUpdate {
                ifname: ifname.to_string(),
                iface_type,
                ofport,
                error: error.clone(),
            },
            now,
            out,
        );
        // A -1 that OVS writes for the attached type is a failure, and watched (OVS retries at
        // every reconfiguration); before the type change is applied, a port that cannot be
        // opened is expected (no vNIC yet). OVS may also write the old type's -1 just after
        // our change (its reconfiguration for the old type finishing late; the next one gives
        // the port its number), so it is reported only if it still holds `open_failure_grace`
        // later: a state that the next update fixes is no failure.
        let grace = self.config.open_failure_grace;
        if let Some(rt) = self.runtime.get_mut(ifname) {
            if ofport != Some(-1) {
                rt.open_failure = None;
            } else if new_failure && created && on_attached_type {
                let e = format!(
                    "OVS could not open the interface: {}",
                    error.unwrap_or_else(|| "no error text".into())
                );
                rt.open_failure = Some((now + grace, e));
            }
        }
    }

    /// A failure to open the interface that outlived its grace: reported once.
    fn report_open_failure(&mut self, name: &str, now: Instant, out: &mut Vec<Command>) {
        let Some(rt) = self.runtime.get_mut(name) else {
            return;
        };
        let due = rt.open_failure.as_ref().is_some_and(|(at, _)| now >= *at);
        if !due {
            return;
        }
        let Some((_, e)) = rt.open_failure.take() else {
            return;
        };
        if self
            .port(name)
            .is_some_and(|p| p.ofport == Some(-1) && !p.removing)
        {
            self.fail(name, Step::OpenInterface, Failure::transient(e), now, out);
        }
    }

    /// A ready Pod's switch port that went away and stayed away for `open_failure_grace`:
    /// reported once, as a transient failure of its interface (the Pod is not ready; it is
    /// ready again when the port comes back). Where OVS also writes `ofport` -1 (Linux), that
    /// report, which carries OVS's own error text, is the one given.
    fn report_port_gone(&mut self, name: &str, now: Instant, out: &mut Vec<Command>) {
        let Some(rt) = self.runtime.get_mut(name) else {
            return;
        };
        let Some((at, port_no)) = rt.port_gone else {
            return;
        };
        if now < at {
            return;
        }
        rt.port_gone = None;
        rt.ready_port = None;
        let Some(p) = self.port(name) else { return };
        if p.port_no.is_some() || p.removing || p.failed.is_some() || p.ofport == Some(-1) {
            return;
        }
        let ofport = p
            .ofport
            .map_or_else(|| "no ofport".to_string(), |n| format!("ofport {n}"));
        let e = format!(
            "its port {port_no} is gone from the switch (PortStatus DELETE, or not in the \
             switch's port list) while OVSDB still shows {ofport}: the vNIC was removed or \
             disconnected"
        );
        self.fail(name, Step::OpenInterface, Failure::transient(e), now, out);
    }

    /// Derives what to do for the ports the last inputs touched (all of them after a change
    /// of the switch connection, at a tick, or at start): a burst of N inputs costs O(N),
    /// not O(N²).
    fn evaluate(&mut self, now: Instant, out: &mut Vec<Command>) {
        let names: Vec<String> = if std::mem::take(&mut self.all_dirty) || self.always_all {
            self.dirty.clear();
            self.state.ports.keys().cloned().collect()
        } else {
            std::mem::take(&mut self.dirty).into_iter().collect()
        };
        for name in names {
            self.evaluate_port(&name, now, out);
        }
    }

    /// Marks what an event makes worth deciding on again.
    fn touch(&mut self, event: &Event) {
        match event {
            Event::AgentStarted { .. }
            | Event::SwitchConnected { .. }
            | Event::SwitchDisconnected { .. }
            | Event::PortDescSynced { .. } => self.all_dirty = true,
            Event::PortStatusReceived { port, .. } => {
                if let Some(n) = self.state.by_wire_name(&port.name) {
                    self.dirty.insert(n.to_string());
                }
            }
            other => {
                if let Some(n) = other.ifname() {
                    self.dirty.insert(n.to_string());
                }
            }
        }
    }

    fn evaluate_port(&mut self, name: &str, now: Instant, out: &mut Vec<Command>) {
        let start = out.len();
        self.decide_port(name, now, out);
        // Flows sent now for a number they are not installed on are the `flows_sent` stage:
        // journaled (and folded) at this instant, after the decision that sent them.
        let sent: Vec<u32> = out[start..]
            .iter()
            .filter_map(|c| match c {
                Command::InstallFlows { port_no, .. } => Some(*port_no),
                _ => None,
            })
            .filter(|n| {
                self.state
                    .ports
                    .get(name)
                    .is_some_and(|p| p.flows.is_none_or(|f| f.port_no != *n))
            })
            .collect();
        for port_no in sent {
            self.emit(
                Event::FlowsSent {
                    ifname: name.to_string(),
                    port_no,
                },
                now,
                out,
            );
        }
    }

    fn decide_port(&mut self, name: &str, now: Instant, out: &mut Vec<Command>) {
        self.report_open_failure(name, now, out);
        self.report_port_gone(name, now, out);
        let ts_now = self.ts(now);
        let switch_ready = self.state.switch_ready();
        let Some(p) = self.state.ports.get(name) else {
            return;
        };
        // Disjoint borrows: the state is read, the runtime written, nothing cloned unless a
        // command needs it.
        let config = &self.config;
        let policy = &self.state.policy;
        let rt = self
            .runtime
            .entry(name.to_string())
            .or_insert_with(|| Runtime::new(now, config));
        if p.removing {
            // First the flows, on a switch that is there to confirm it, then the port: a port
            // deleted first would leave its Pod's flows behind for good once the Pod is gone.
            // Not while a flow install is in flight (its bundle could reach the switch after
            // the delete by cookie), nor the port while its create is (a create that commits
            // after the delete would leave a port that nobody tracks).
            if !rt.flows_removed {
                if switch_ready
                    && !rt.remove_in_flight
                    && rt.flows_pending.is_none()
                    && rt.flows.due(now)
                {
                    rt.remove_in_flight = true;
                    rt.flows.at = None;
                    out.push(Command::RemoveFlows {
                        ifname: name.to_string(),
                        cookie: p.cookie,
                    });
                }
            } else if !rt.delete_in_flight && !rt.create_in_flight && rt.ovsdb.due(now) {
                rt.delete_in_flight = true;
                rt.ovsdb.at = None;
                out.push(Command::DeletePort {
                    ifname: name.to_string(),
                    container_id: p.container_id.clone(),
                });
            }
            return;
        }
        if p.failed.is_some() {
            return;
        }
        // OVSDB steps: the create, then (once attached) the type change.
        if p.port_uuid.is_none() {
            if !rt.create_in_flight && rt.ovsdb.due(now) {
                rt.create_in_flight = true;
                rt.ovsdb.at = None;
                out.push(Command::CreatePort(spec_of(p)));
            }
        } else if p.attached && !p.type_changed && !rt.type_in_flight && rt.ovsdb.due(now) {
            rt.type_in_flight = true;
            rt.ovsdb.at = None;
            rt.type_from = p.iface_type.clone();
            out.push(Command::SetInterfaceType {
                ifname: name.to_string(),
                iface_type: config.attached_type.clone(),
                container_id: p.container_id.clone(),
            });
        }
        // Legacy strategy: the OVSDB wait, again when due.
        if let Strategy::OvsdbWait { timeout, .. } = config.strategy {
            if p.type_changed && p.waited_ofport.is_none() && !rt.wait_in_flight && rt.wait.due(now)
            {
                rt.wait.at = None;
                rt.wait_in_flight = true;
                out.push(Command::WaitOfport {
                    ifname: name.to_string(),
                    timeout,
                });
            }
        }
        // The type change is committed, the switch's ADD of the new port may be lost (see
        // `add_may_be_lost`) and the last port list may predate the change (or the port was
        // adopted after it): a list taken now shows the port.
        if rt.add_may_be_lost
            && p.attached
            && p.type_changed
            && (p.awaiting_new_port || p.port_no.is_none())
            && switch_ready
            && !self.desc_requested
        {
            self.desc_requested = true;
            out.push(Command::RequestPortDesc);
        }
        // Flows follow the usable port number; nothing is programmed until the port list
        // after a (re)connect is known.
        let usable = p.usable_port(policy);
        if let (Some(n), true) = (usable, switch_ready) {
            let installed = p.flows.is_some_and(|f| f.port_no == n);
            if (!installed || rt.verify_flows) && rt.flows_pending != Some(n) && rt.flows.due(now) {
                rt.flows_pending = Some(n);
                rt.flows.at = None;
                out.push(Command::InstallFlows {
                    spec: spec_of(p),
                    port_no: n,
                    cookie: p.cookie,
                    verify: rt.verify_flows,
                    replace: p.flows.is_some(),
                });
            }
        }
        // A Pod that was ready, whose port the switch's current port list lacks: its port is
        // gone, whatever OVSDB's `ofport` says (Windows OVS keeps the old number,
        // ovs-issues#353). Reported after the grace, since a renumbering (DELETE, then ADD)
        // brings a number back at once. Not for the legacy strategy, whose readiness is
        // OVSDB's number and not the switch's port.
        if p.port_no.is_some() || p.removing || policy.ovsdb_wait {
            rt.port_gone = None;
        } else if let (Some(n), true, None) = (rt.ready_port, switch_ready, rt.port_gone) {
            rt.port_gone = Some((now + config.open_failure_grace, n));
        }
        if let Some(mark) = p.ready {
            rt.ready_port = Some(mark.port_no);
            rt.was_ready = true;
            return;
        }
        if rt.was_ready {
            // Lost readiness (port gone or renumbered, flows gone): a new wait starts.
            rt.was_ready = false;
            rt.next_not_ready = now + config.not_ready_every;
        }
        let ready_now = switch_ready
            && usable.is_some()
            && p.flows.is_some_and(|f| Some(f.port_no) == usable)
            && rt.flows_pending.is_none();
        let waited = Duration::from_micros(ts_now.saturating_sub(p.waiting_since));
        let waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        if ready_now {
            rt.was_ready = true;
            let port_no = usable.unwrap_or_default();
            rt.ready_port = Some(port_no);
            self.emit(
                Event::PodReady {
                    ifname: name.to_string(),
                    port_no,
                    waited_ms,
                },
                now,
                out,
            );
            let stages = self
                .state
                .ports
                .get(name)
                .map(|p| p.stages.this_wait())
                .unwrap_or_default();
            out.push(Command::Emit(PodEvent::Ready {
                ifname: name.to_string(),
                port_no,
                waited,
                stages,
            }));
        } else if now >= rt.next_not_ready {
            rt.next_not_ready = now + config.not_ready_every;
            let phase = self.state.phase_of(p);
            self.emit(
                Event::PodNotReady {
                    ifname: name.to_string(),
                    phase,
                    waited_ms,
                },
                now,
                out,
            );
            out.push(Command::Emit(PodEvent::NotReady {
                ifname: name.to_string(),
                phase,
                waited,
            }));
        }
    }
}

/// The spec of a tracked port, as the agent gave it (validated at the add).
fn spec_of(p: &PodPort) -> PodSpec {
    PodSpec {
        namespace: p.pod.namespace.clone(),
        name: p.pod.name.clone(),
        container_id: p.container_id.clone(),
        ifname: p.ifname.clone(),
        ips: p.ips.clone(),
        // Validated at the add; a journal edited by hand gets the zero MAC and fails the
        // flows' checks rather than the engine.
        mac: p.mac.parse().unwrap_or_default(),
    }
}
