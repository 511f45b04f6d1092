//! The engine's core: every Pod port's state machine, driven by inputs and producing
//! commands. Pure: no sockets, no actors, no clock (time is passed in).
//!
//! Use: feed every fact with [`Core::handle`] (`Input` in, `Vec<Command>` out) and call it with
//! [`Input::Tick`] when [`Core::poll_timeout`] is due. The shell executes the commands and
//! feeds their results back as inputs.
//!
//! The core keeps the latest *facts* per port (what OVSDB and the switch last said, what the
//! agent asked) and derives the phase from them, so duplicated messages, bursts coalesced to
//! their last message and any interleaving of the OVSDB and OpenFlow streams converge to what
//! the switch last said.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use podport_journal::{wire_name, Event, Outcome, PodRef, PortDesc, PortReason};
use podport_openflow::PortNo;

use crate::spec::{validate, AddPodError, PodSpec};

/// `ofp_port_state` bits.
pub const STATE_LINK_DOWN: u32 = 1;
pub const STATE_LIVE: u32 = 4;
/// `ofp_port_config` PORT_DOWN.
pub const CONFIG_PORT_DOWN: u32 = 1;

/// When a port counts as usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The switch reports LIVE (with any other bits).
    Live,
    /// LIVE, or LINK_DOWN: the Windows OVS workaround (ovs-issues#351).
    LiveOrLinkDown,
    /// Any allocated port number (Windows OVS may never report LIVE).
    Allocated,
}

impl std::str::FromStr for Readiness {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "live" => Ok(Readiness::Live),
            "live-or-link-down" => Ok(Readiness::LiveOrLinkDown),
            "allocated" => Ok(Readiness::Allocated),
            _ => Err(format!(
                "unknown readiness {s:?} (live, live-or-link-down, allocated)"
            )),
        }
    }
}

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
    /// Delay before retrying a failed step (flows, or an OVSDB create or type change).
    pub flow_retry: Duration,
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
        }
    }
}

/// A port's phase, derived from its facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Asked OVSDB for the Port and Interface.
    Creating,
    /// Port and Interface exist; waiting for the Pod's host interface.
    WaitingInterface,
    /// Host interface exists; the type change is requested or done, no port number yet.
    TypeChangeRequested,
    /// The switch gave a port number that is not usable yet (not LIVE).
    Allocated,
    /// Usable; flows are being installed.
    Usable,
    /// Flows confirmed by a barrier.
    Ready,
    /// Being deleted.
    Removing,
    /// Deleted.
    Gone,
}

impl Phase {
    /// Stable lower-case name (used in events, status and the journal).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Creating => "creating",
            Phase::WaitingInterface => "waiting-interface",
            Phase::TypeChangeRequested => "type-change-requested",
            Phase::Allocated => "allocated",
            Phase::Usable => "usable",
            Phase::Ready => "ready",
            Phase::Removing => "removing",
            Phase::Gone => "gone",
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
    },
    NotReady {
        ifname: String,
        phase: Phase,
        waited: Duration,
    },
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
    },
    PortCreateFailed {
        ifname: String,
        error: String,
    },
    HostInterfaceCreated {
        ifname: String,
    },
    TypeChanged {
        ifname: String,
        result: Result<(), String>,
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
        result: Result<u32, String>,
    },
    FlowsRemoved {
        ifname: String,
        result: Result<u32, String>,
    },
    PortDeleted {
        ifname: String,
        result: Result<(), String>,
    },
    /// The legacy strategy's OVSDB wait finished.
    OfportWaited {
        ifname: String,
        result: Result<i64, String>,
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
    SetInterfaceType {
        ifname: String,
        iface_type: String,
    },
    WaitOfport {
        ifname: String,
        timeout: Duration,
    },
    /// Replace the Pod's flows (delete by cookie, then add) for `port_no`, fenced by a barrier.
    InstallFlows {
        spec: PodSpec,
        port_no: u32,
        cookie: u64,
    },
    RemoveFlows {
        ifname: String,
        cookie: u64,
    },
    InstallBridgeDefaults,
    DeletePort {
        ifname: String,
    },
    Journal(Event),
    Emit(PodEvent),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flows {
    None,
    Pending(u32),
    Installed(u32),
}

#[derive(Clone, Debug)]
struct PortEntry {
    spec: PodSpec,
    cookie: u64,
    created: bool,
    attached: bool,
    /// The type change to `attached_type` succeeded (our transaction or the monitor says so).
    type_done: bool,
    ovsdb_type: Option<String>,
    /// The type OVSDB showed when the type change was asked for (journaled as `from`; by the
    /// time the reply comes the monitor already shows the new type).
    type_from: Option<String>,
    ovsdb_ofport: Option<i64>,
    ovsdb_error: Option<String>,
    /// What the switch last said: port number and state/config bits.
    of_port: Option<u32>,
    of_state: u32,
    of_config: u32,
    /// The legacy strategy's answer.
    waited_ofport: Option<u32>,
    wait_in_flight: bool,
    attach_failures: u32,
    retry_wait_at: Option<Instant>,
    flows: Flows,
    flow_retry_at: Option<Instant>,
    /// A failed OVSDB step (create or type change) is asked again at this time.
    ovsdb_retry_at: Option<Instant>,
    removing: bool,
    ready_since: Option<Instant>,
    /// Start of the current wait (attach time, or add time before the attach).
    waiting_since: Instant,
    next_not_ready: Instant,
    /// Restored from the journal and not yet checked against the switch.
    restored: bool,
    restored_port: Option<u32>,
    last_error: Option<String>,
}

/// A port as `status()` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortStatusView {
    pub ifname: String,
    pub pod: String,
    pub port_no: Option<u32>,
    pub state: u32,
    pub phase: Phase,
    pub ready: bool,
    pub ready_for: Option<Duration>,
    pub waited: Duration,
    pub last_error: Option<String>,
    pub attach_failures: u32,
}

/// Every tracked port and the switch connection. See the module documentation.
#[derive(Debug)]
pub struct Core {
    config: CoreConfig,
    ports: BTreeMap<String, PortEntry>,
    connected: bool,
    /// A PORT_DESC arrived since the last connect: port numbers are current.
    desc_synced: bool,
    next_cookie: u64,
    foreign_port_status: u64,
}

/// Reports a failed step: journaled, and told to subscribers. The engine keeps trying.
fn failed(out: &mut Vec<Command>, ifname: &str, error: String) {
    out.push(Command::Journal(Event::PodFailed {
        ifname: ifname.to_string(),
        error: error.clone(),
    }));
    out.push(Command::Emit(PodEvent::Failed {
        ifname: ifname.to_string(),
        error,
    }));
}

/// Cookies of Pod flows carry this in their top byte, so they never collide with the bridge's.
pub const POD_COOKIE_BASE: u64 = 0x00a0_0000_0000_0000;

impl Core {
    pub fn new(config: CoreConfig) -> Core {
        Core {
            config,
            ports: BTreeMap::new(),
            connected: false,
            desc_synced: false,
            next_cookie: POD_COOKIE_BASE + 1,
            foreign_port_status: 0,
        }
    }

    /// A core rebuilt from the journal's folded state at restart. Nothing is programmed until
    /// the switch's PORT_DESC (and OVSDB's snapshot) confirm or correct what the journal says.
    pub fn restore(
        config: CoreConfig,
        state: &podport_journal::State,
        now: Instant,
    ) -> (Core, Vec<Command>) {
        let mut core = Core::new(config);
        let mut cmds = Vec::new();
        for view in state.ports.values() {
            let Ok(mac) = view.mac.parse() else { continue };
            let spec = PodSpec {
                namespace: view.pod.namespace.clone(),
                name: view.pod.name.clone(),
                container_id: view.container_id.clone(),
                ifname: view.ifname.clone(),
                ips: view.ips.clone(),
                mac,
            };
            let attached = view.phase != "created";
            let type_done = view.iface_type == core.config.attached_type;
            let cookie = core.alloc_cookie();
            let entry = PortEntry {
                created: true,
                attached,
                type_done,
                ovsdb_ofport: view.ofport,
                ovsdb_error: view.ovsdb_error.clone(),
                restored: true,
                restored_port: view.port_no,
                ..PortEntry::new(spec, cookie, now, &core.config)
            };
            if attached && !type_done {
                // The agent may have died between the attach and the type change.
                cmds.push(Command::SetInterfaceType {
                    ifname: view.ifname.clone(),
                    iface_type: core.config.attached_type.clone(),
                });
            }
            core.ports.insert(view.ifname.clone(), entry);
        }
        (core, cmds)
    }

    /// Checks that `spec` may be added: valid on its own, and its wire name collides with no
    /// tracked port. Adding the same Pod twice is fine (idempotent).
    pub fn check_new_pod(&self, spec: &PodSpec) -> Result<(), AddPodError> {
        validate(spec)?;
        if let Some(p) = self.ports.get(&spec.ifname) {
            if p.spec.container_id != spec.container_id {
                return Err(AddPodError::AlreadyTracked {
                    ifname: spec.ifname.clone(),
                    pod: p.spec.pod(),
                    container_id: p.spec.container_id.clone(),
                });
            }
            return Ok(());
        }
        // Names from the journal may predate the length check, so compare wire names.
        let wire = wire_name(&spec.ifname);
        if let Some(other) = self
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
        self.connected && self.desc_synced
    }

    /// How many ports are ready. Cheap (no views built): the engine updates its gauge with
    /// it after every input.
    pub fn ready_count(&self) -> usize {
        self.ports.values().filter(|p| p.is_ready()).count()
    }

    /// PortStatus messages seen for ports no Pod owns.
    pub fn foreign_port_status(&self) -> u64 {
        self.foreign_port_status
    }

    /// Ifnames of every tracked port.
    pub fn ifnames(&self) -> impl Iterator<Item = &str> {
        self.ports.keys().map(String::as_str)
    }

    /// When `Input::Tick` is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ports
            .values()
            .flat_map(|p| {
                let not_ready = (!p.is_ready() && !p.removing).then_some(p.next_not_ready);
                [
                    not_ready,
                    p.retry_wait_at,
                    p.flow_retry_at,
                    p.ovsdb_retry_at,
                ]
            })
            .flatten()
            .min()
    }

    /// Every tracked port.
    pub fn status(&self, now: Instant) -> Vec<PortStatusView> {
        self.ports
            .values()
            .map(|p| PortStatusView {
                ifname: p.spec.ifname.clone(),
                pod: p.spec.pod(),
                port_no: p.usable_port(&self.config).or(p.of_port),
                state: p.of_state,
                phase: p.phase(&self.config, self.switch_ready()),
                ready: p.is_ready(),
                ready_for: p.ready_since.map(|t| now.saturating_duration_since(t)),
                waited: now.saturating_duration_since(p.waiting_since),
                last_error: p.last_error.clone(),
                attach_failures: p.attach_failures,
            })
            .collect()
    }

    /// The phase of one port.
    pub fn phase(&self, ifname: &str) -> Option<Phase> {
        self.ports
            .get(ifname)
            .map(|p| p.phase(&self.config, self.switch_ready()))
    }

    fn alloc_cookie(&mut self) -> u64 {
        let c = self.next_cookie;
        self.next_cookie += 1;
        c
    }

    /// Handles one input at `now`; returns the commands to execute, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Command> {
        let mut out = Vec::new();
        match input {
            Input::AddPod(spec) => {
                if self.ports.contains_key(&spec.ifname) {
                    // Idempotent: make sure OVSDB has it, nothing else changes.
                    out.push(Command::CreatePort(spec));
                    return out;
                }
                let cookie = self.alloc_cookie();
                let ifname = spec.ifname.clone();
                self.ports.insert(
                    ifname,
                    PortEntry::new(spec.clone(), cookie, now, &self.config),
                );
                out.push(Command::CreatePort(spec));
            }
            Input::PortCreated {
                ifname,
                port_uuid,
                interface_uuid,
            } => {
                if let Some(p) = self.ports.get_mut(&ifname) {
                    let first = !p.created;
                    p.created = true;
                    if first {
                        out.push(Command::Journal(Event::PodPortCreated {
                            pod: PodRef {
                                namespace: p.spec.namespace.clone(),
                                name: p.spec.name.clone(),
                            },
                            container_id: p.spec.container_id.clone(),
                            ifname: ifname.clone(),
                            port_uuid,
                            interface_uuid,
                            ips: p.spec.ips.clone(),
                            mac: p.spec.mac.to_string(),
                        }));
                        if p.ovsdb_type.is_some() {
                            // The monitor was faster than the create's reply.
                            out.push(Command::Journal(Event::OvsdbInterfaceUpdate {
                                ifname: ifname.clone(),
                                ofport: p.ovsdb_ofport,
                                error: p.ovsdb_error.clone(),
                            }));
                        }
                        if p.attached {
                            // The attach came before the port existed: do the type change now.
                            p.type_from = p.ovsdb_type.clone();
                            out.push(Command::Journal(Event::HostInterfaceCreated {
                                ifname: ifname.clone(),
                            }));
                            out.push(Command::SetInterfaceType {
                                ifname: ifname.clone(),
                                iface_type: self.config.attached_type.clone(),
                            });
                        }
                    }
                }
            }
            Input::PortCreateFailed { ifname, error } => {
                if let Some(p) = self.ports.get_mut(&ifname) {
                    p.last_error = Some(error.clone());
                    // Asked again later: a Pod is never left behind by one failed step.
                    p.ovsdb_retry_at = Some(now + self.config.flow_retry);
                    failed(&mut out, &ifname, error);
                }
            }
            Input::HostInterfaceCreated { ifname } => {
                if let Some(p) = self.ports.get_mut(&ifname) {
                    if p.attached || p.removing {
                        return out;
                    }
                    p.attached = true;
                    p.waiting_since = now;
                    p.next_not_ready = now + self.config.not_ready_every;
                    if p.created {
                        p.type_from = p.ovsdb_type.clone();
                        out.push(Command::Journal(Event::HostInterfaceCreated {
                            ifname: ifname.clone(),
                        }));
                        out.push(Command::SetInterfaceType {
                            ifname: ifname.clone(),
                            iface_type: self.config.attached_type.clone(),
                        });
                    }
                }
            }
            Input::TypeChanged { ifname, result } => {
                let to = self.config.attached_type.clone();
                let strategy = self.config.strategy;
                if let Some(p) = self.ports.get_mut(&ifname) {
                    let from = p
                        .type_from
                        .take()
                        .or_else(|| p.ovsdb_type.clone())
                        .unwrap_or_default();
                    match result {
                        Ok(()) => {
                            p.type_done = true;
                            out.push(Command::Journal(Event::InterfaceTypeChanged {
                                ifname: ifname.clone(),
                                from,
                                to,
                                outcome: Outcome::Ok,
                            }));
                            if let Strategy::OvsdbWait { timeout, .. } = strategy {
                                p.wait_in_flight = true;
                                out.push(Command::WaitOfport {
                                    ifname: ifname.clone(),
                                    timeout,
                                });
                            }
                        }
                        Err(e) => {
                            p.last_error = Some(e.clone());
                            p.ovsdb_retry_at = Some(now + self.config.flow_retry);
                            out.push(Command::Journal(Event::InterfaceTypeChanged {
                                ifname: ifname.clone(),
                                from,
                                to,
                                outcome: Outcome::Failed(e.clone()),
                            }));
                            out.push(Command::Emit(PodEvent::Failed {
                                ifname: ifname.clone(),
                                error: e,
                            }));
                        }
                    }
                }
            }
            Input::OvsdbInterface {
                ifname,
                iface_type,
                ofport,
                error,
            } => self.on_ovsdb(&ifname, iface_type, ofport, error, &mut out),
            Input::OvsdbInterfaceGone { ifname } => {
                if let Some(p) = self.ports.get_mut(&ifname) {
                    if !p.removing && p.created {
                        p.ovsdb_ofport = None;
                        p.last_error = Some("the Interface row was deleted from OVSDB".into());
                    }
                }
            }
            Input::OvsdbSnapshot { interfaces } => {
                let present: BTreeMap<&str, _> =
                    interfaces.iter().map(|i| (i.0.as_str(), i)).collect();
                let mut vanished = Vec::new();
                for (name, p) in &self.ports {
                    if p.created && !p.removing && !present.contains_key(name.as_str()) {
                        vanished.push(name.clone());
                    }
                }
                for (name, ty, ofport, error) in &interfaces {
                    if self.ports.contains_key(name) {
                        self.on_ovsdb(name, ty.clone(), *ofport, error.clone(), &mut out);
                    }
                }
                for name in vanished {
                    // Deleted from OVS while we were away (or by someone else): report it.
                    self.ports.remove(&name);
                    out.push(Command::Journal(Event::Reconciled {
                        ifname: name.clone(),
                        finding: "vanished".into(),
                    }));
                    out.push(Command::Emit(PodEvent::Removed {
                        ifname: name,
                        reason: "its port vanished from OVSDB".into(),
                    }));
                }
            }
            Input::PortStatus { reason, port } => {
                out.push(Command::Journal(Event::PortStatusReceived {
                    reason,
                    port: port.clone(),
                }));
                let Some(name) = self.by_wire_name(&port.name) else {
                    self.foreign_port_status += 1;
                    return out;
                };
                if PortNo(port.port_no).is_reserved() {
                    return out;
                }
                let p = self.ports.get_mut(&name).expect("looked up above");
                match reason {
                    PortReason::Delete => {
                        // A DELETE of another number than the one we hold is stale.
                        if p.of_port == Some(port.port_no) {
                            p.of_port = None;
                            p.of_state = 0;
                            p.of_config = 0;
                        }
                    }
                    _ => {
                        p.of_port = Some(port.port_no);
                        p.of_state = port.state;
                        p.of_config = port.config;
                    }
                }
            }
            Input::PortDesc { ports } => {
                out.push(Command::Journal(Event::PortDescSynced {
                    ports: ports.clone(),
                }));
                let first_after_connect = !self.desc_synced;
                self.desc_synced = true;
                for p in self.ports.values_mut() {
                    let wire = wire_name(&p.spec.ifname);
                    match ports
                        .iter()
                        .find(|d| d.name == wire && !PortNo(d.port_no).is_reserved())
                    {
                        Some(d) => {
                            p.of_port = Some(d.port_no);
                            p.of_state = d.state;
                            p.of_config = d.config;
                        }
                        None => {
                            p.of_port = None;
                            p.of_state = 0;
                            p.of_config = 0;
                        }
                    }
                    if p.restored {
                        p.restored = false;
                        let finding = match (p.restored_port, p.of_port) {
                            (Some(a), Some(b)) if a == b => "present".to_string(),
                            (Some(a), Some(b)) => format!("renumbered {a} -> {b}"),
                            (None, Some(b)) => format!("allocated {b}"),
                            (_, None) => "waiting".to_string(),
                        };
                        out.push(Command::Journal(Event::Reconciled {
                            ifname: p.spec.ifname.clone(),
                            finding,
                        }));
                    }
                }
                if first_after_connect {
                    out.push(Command::InstallBridgeDefaults);
                }
            }
            Input::SwitchConnected {
                endpoint,
                datapath_id,
                of_version,
            } => {
                self.connected = true;
                self.desc_synced = false;
                out.push(Command::Journal(Event::SwitchConnected {
                    endpoint,
                    datapath_id,
                    of_version,
                }));
            }
            Input::SwitchDisconnected { endpoint, reason } => {
                self.connected = false;
                self.desc_synced = false;
                for p in self.ports.values_mut() {
                    // A restarted switch has no flows and may renumber ports: everything is
                    // re-learned from PORT_DESC and reinstalled.
                    p.flows = Flows::None;
                    if p.ready_since.take().is_some() {
                        p.waiting_since = now;
                        p.next_not_ready = now + self.config.not_ready_every;
                    }
                }
                out.push(Command::Journal(Event::SwitchDisconnected {
                    endpoint,
                    reason,
                }));
            }
            Input::FlowsInstalled {
                ifname,
                port_no,
                result,
            } => {
                if let Some(p) = self.ports.get_mut(&ifname) {
                    if p.flows != Flows::Pending(port_no) {
                        // Superseded by a newer install (the number changed meanwhile).
                        return out;
                    }
                    match result {
                        Ok(count) => {
                            p.flows = Flows::Installed(port_no);
                            p.flow_retry_at = None;
                            out.push(Command::Journal(Event::FlowsInstalled {
                                ifname: ifname.clone(),
                                port_no,
                                cookie: p.cookie,
                                count,
                            }));
                        }
                        Err(e) => {
                            p.flows = Flows::None;
                            p.flow_retry_at = Some(now + self.config.flow_retry);
                            p.last_error = Some(e.clone());
                            failed(&mut out, &ifname, e);
                        }
                    }
                }
            }
            Input::FlowsRemoved { ifname, result } => {
                if let Some(p) = self.ports.get(&ifname) {
                    match result {
                        Ok(count) => out.push(Command::Journal(Event::FlowsRemoved {
                            ifname: ifname.clone(),
                            cookie: p.cookie,
                            count,
                        })),
                        Err(e) => out.push(Command::Journal(Event::PodFailed {
                            ifname: ifname.clone(),
                            error: format!("removing flows: {e}"),
                        })),
                    }
                }
            }
            Input::PortDeleted { ifname, result } => match result {
                Ok(()) => {
                    if self.ports.remove(&ifname).is_some() {
                        out.push(Command::Journal(Event::PodDeleted {
                            ifname: ifname.clone(),
                        }));
                        out.push(Command::Emit(PodEvent::Removed {
                            ifname,
                            reason: "deleted".into(),
                        }));
                    }
                }
                Err(e) => {
                    if let Some(p) = self.ports.get_mut(&ifname) {
                        p.last_error = Some(e.clone());
                    }
                    failed(&mut out, &ifname, format!("deleting the port: {e}"));
                }
            },
            Input::OfportWaited { ifname, result } => {
                let retry = match self.config.strategy {
                    Strategy::OvsdbWait { retry_every, .. } => retry_every,
                    Strategy::PortStatus => Duration::from_secs(5),
                };
                if let Some(p) = self.ports.get_mut(&ifname) {
                    p.wait_in_flight = false;
                    match result {
                        Ok(n) if n > 0 => p.waited_ofport = u32::try_from(n).ok(),
                        Ok(n) => {
                            let e = format!(
                                "ofport {n}: {}",
                                p.ovsdb_error.clone().unwrap_or_default()
                            );
                            p.attach_failures += 1;
                            p.retry_wait_at = Some(now + retry);
                            p.last_error = Some(e.clone());
                            failed(&mut out, &ifname, e);
                        }
                        Err(e) => {
                            // The legacy failure: the attach failed, retried later.
                            p.attach_failures += 1;
                            p.retry_wait_at = Some(now + retry);
                            p.last_error = Some(e.clone());
                            failed(&mut out, &ifname, e);
                        }
                    }
                }
            }
            Input::DeletePod { ifname } => {
                if let Some(p) = self.ports.get_mut(&ifname) {
                    if !p.removing {
                        p.removing = true;
                        p.ready_since = None;
                        out.push(Command::RemoveFlows {
                            ifname: ifname.clone(),
                            cookie: p.cookie,
                        });
                        out.push(Command::DeletePort { ifname });
                    }
                }
            }
            Input::Tick => {}
        }
        self.evaluate(now, &mut out);
        out
    }

    fn by_wire_name(&self, name: &str) -> Option<String> {
        if self.ports.contains_key(name) {
            return Some(name.to_string());
        }
        self.ports.keys().find(|k| wire_name(k) == name).cloned()
    }

    fn on_ovsdb(
        &mut self,
        ifname: &str,
        iface_type: String,
        ofport: Option<i64>,
        error: Option<String>,
        out: &mut Vec<Command>,
    ) {
        let attached_type = self.config.attached_type.clone();
        let Some(p) = self.ports.get_mut(ifname) else {
            return;
        };
        let changed = p.ovsdb_ofport != ofport || p.ovsdb_error != error;
        let on_attached_type = p.attached && iface_type == attached_type;
        if on_attached_type {
            p.type_done = true;
        }
        p.ovsdb_type = Some(iface_type);
        p.ovsdb_ofport = ofport;
        p.ovsdb_error = error.clone();
        // Before the create's reply the journal has no PodPortCreated for the fold to attach
        // this to; the PortCreated input journals the facts right after it.
        if changed && p.created {
            out.push(Command::Journal(Event::OvsdbInterfaceUpdate {
                ifname: ifname.to_string(),
                ofport,
                error: error.clone(),
            }));
        }
        // A -1 that OVS writes for the attached type is a failure: reported, and watched
        // (OVS retries at every reconfiguration). Before the type change is applied, a port
        // that cannot be opened is expected (no vNIC yet), whenever that update arrives, and
        // the update that only carries our own type change repeats the old -1 unchanged.
        if changed && p.created && on_attached_type && ofport == Some(-1) {
            let e = format!(
                "OVS could not open the interface: {}",
                error.unwrap_or_else(|| "no error text".into())
            );
            p.last_error = Some(e.clone());
            failed(out, ifname, e);
        }
    }

    /// Derives what to do for every port from its facts.
    fn evaluate(&mut self, now: Instant, out: &mut Vec<Command>) {
        let switch_ready = self.switch_ready();
        let config = &self.config;
        for p in self.ports.values_mut() {
            if p.removing {
                continue;
            }
            // Legacy strategy: retry the OVSDB wait when due.
            if let Strategy::OvsdbWait { timeout, .. } = config.strategy {
                if p.type_done
                    && p.waited_ofport.is_none()
                    && !p.wait_in_flight
                    && p.retry_wait_at.is_some_and(|t| now >= t)
                {
                    p.retry_wait_at = None;
                    p.wait_in_flight = true;
                    out.push(Command::WaitOfport {
                        ifname: p.spec.ifname.clone(),
                        timeout,
                    });
                }
            }
            // Failed OVSDB steps are asked again when due.
            if p.ovsdb_retry_at.is_some_and(|t| now >= t) {
                p.ovsdb_retry_at = None;
                if !p.created {
                    out.push(Command::CreatePort(p.spec.clone()));
                } else if p.attached && !p.type_done {
                    p.type_from = p.ovsdb_type.clone();
                    out.push(Command::SetInterfaceType {
                        ifname: p.spec.ifname.clone(),
                        iface_type: config.attached_type.clone(),
                    });
                }
            }
            let usable = p.usable_port(config);
            // Flows follow the usable port number; nothing is programmed until the port
            // list after a (re)connect is known.
            if let (Some(n), true) = (usable, switch_ready) {
                let retry_due = p.flow_retry_at.is_none_or(|t| now >= t);
                match p.flows {
                    Flows::Installed(m) | Flows::Pending(m) if m == n => {}
                    _ if retry_due => {
                        p.flows = Flows::Pending(n);
                        p.flow_retry_at = None;
                        out.push(Command::InstallFlows {
                            spec: p.spec.clone(),
                            port_no: n,
                            cookie: p.cookie,
                        });
                    }
                    _ => {}
                }
            }
            let ready = matches!((usable, p.flows), (Some(n), Flows::Installed(m)) if n == m)
                && switch_ready;
            match (ready, p.ready_since) {
                (true, None) => {
                    p.ready_since = Some(now);
                    p.last_error = None;
                    let waited = now.saturating_duration_since(p.waiting_since);
                    let port_no = usable.unwrap_or_default();
                    let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
                    out.push(Command::Journal(Event::PodReady {
                        ifname: p.spec.ifname.clone(),
                        port_no,
                        waited_ms: ms,
                    }));
                    out.push(Command::Emit(PodEvent::Ready {
                        ifname: p.spec.ifname.clone(),
                        port_no,
                        waited,
                    }));
                }
                (false, Some(_)) => {
                    // Lost readiness (port gone or renumbered): a new wait starts.
                    p.ready_since = None;
                    p.waiting_since = now;
                    p.next_not_ready = now + config.not_ready_every;
                }
                (false, None) if now >= p.next_not_ready => {
                    let phase = p.phase(config, switch_ready);
                    let waited = now.saturating_duration_since(p.waiting_since);
                    p.next_not_ready = now + config.not_ready_every;
                    out.push(Command::Journal(Event::PodNotReady {
                        ifname: p.spec.ifname.clone(),
                        phase: phase.name().into(),
                        waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                    }));
                    out.push(Command::Emit(PodEvent::NotReady {
                        ifname: p.spec.ifname.clone(),
                        phase,
                        waited,
                    }));
                }
                _ => {}
            }
        }
    }
}

impl PortEntry {
    fn new(spec: PodSpec, cookie: u64, now: Instant, config: &CoreConfig) -> PortEntry {
        PortEntry {
            spec,
            cookie,
            created: false,
            attached: false,
            type_done: false,
            ovsdb_type: None,
            type_from: None,
            ovsdb_ofport: None,
            ovsdb_error: None,
            of_port: None,
            of_state: 0,
            of_config: 0,
            waited_ofport: None,
            wait_in_flight: false,
            attach_failures: 0,
            retry_wait_at: None,
            flows: Flows::None,
            flow_retry_at: None,
            ovsdb_retry_at: None,
            removing: false,
            ready_since: None,
            waiting_since: now,
            next_not_ready: now + config.not_ready_every,
            restored: false,
            restored_port: None,
            last_error: None,
        }
    }

    fn is_ready(&self) -> bool {
        self.ready_since.is_some()
    }

    /// The port number flows may use now, if any.
    fn usable_port(&self, config: &CoreConfig) -> Option<u32> {
        if !self.attached || !self.type_done {
            return None;
        }
        match config.strategy {
            Strategy::OvsdbWait { .. } => self.waited_ofport,
            Strategy::PortStatus => {
                let n = self.of_port.filter(|n| !PortNo(*n).is_reserved())?;
                let live = self.of_state & STATE_LIVE != 0;
                let ok = match config.readiness {
                    Readiness::Live => live,
                    Readiness::LiveOrLinkDown => live || self.of_state & STATE_LINK_DOWN != 0,
                    Readiness::Allocated => true,
                };
                ok.then_some(n)
            }
        }
    }

    fn phase(&self, config: &CoreConfig, switch_ready: bool) -> Phase {
        if self.removing {
            return Phase::Removing;
        }
        if !self.created {
            return Phase::Creating;
        }
        if !self.attached {
            return Phase::WaitingInterface;
        }
        if self.is_ready() {
            return Phase::Ready;
        }
        if self.usable_port(config).is_some() && switch_ready {
            return Phase::Usable;
        }
        let allocated = match config.strategy {
            Strategy::PortStatus => self.of_port.is_some(),
            Strategy::OvsdbWait { .. } => self.waited_ofport.is_some(),
        };
        if allocated && self.type_done {
            Phase::Allocated
        } else {
            Phase::TypeChangeRequested
        }
    }
}
