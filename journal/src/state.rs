//! The one fold: `apply(&mut State, ts, &Event)`.
//!
//! Pure and deterministic: the same events at the same times give the same state, whether
//! folded live by the engine (which applies every event it journals, and changes its state in
//! no other way) or replayed from the journal, from the first record or from a snapshot plus
//! the records after it. The phase of a port is derived from the state ([`State::phase`]),
//! never stored as a second truth.

use std::collections::BTreeMap;

use podport_openflow::{PortNo, PortState};

use crate::event::{
    wire_name, Event, Failure, Finding, Outcome, Phase, PodRef, Policy, PortDesc, PortReason,
    Readiness, Record,
};
use crate::stages::{Stage, StageTimes};

/// Cookies of Pod flows carry 0xa0 in their second byte (under [`POD_COOKIE_MASK`]), so they
/// never collide with the bridge's (0xb0). Layout: `00 a0 GG GG GG NN NN NN`: the journal's
/// generation G (see [`Event::CookieGeneration`]), then a counter N.
pub const POD_COOKIE_BASE: u64 = 0x00a0_0000_0000_0000;

/// The marker byte of a Pod cookie.
pub const POD_COOKIE_MASK: u64 = 0x00ff_0000_0000_0000;

/// The bits of a Pod cookie that hold its journal's generation.
pub const COOKIE_GENERATION_MASK: u64 = 0x0000_ffff_ff00_0000;

/// The generation of a cookie (0: a journal without one).
pub fn cookie_generation(cookie: u64) -> u32 {
    ((cookie & COOKIE_GENERATION_MASK) >> 24) as u32
}

/// The Pod's flows as last confirmed on the switch.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
)]
pub struct InstalledFlows {
    pub port_no: u32,
    pub count: u32,
}

/// A Ready that was announced, and for which port number.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
)]
pub struct ReadyMark {
    pub port_no: u32,
    /// When it was announced, µs since the epoch.
    pub since: u64,
}

/// Everything podport knows about one Pod port.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Debug,
    PartialEq,
    Eq,
)]
pub struct PodPort {
    pub ifname: String,
    pub pod: PodRef,
    pub container_id: String,
    pub ips: Vec<String>,
    pub mac: String,
    /// The cookie of every flow of this Pod: handed out once, at the add, and journaled.
    pub cookie: u64,
    /// µs since the epoch of the add.
    pub added_at: u64,
    /// OVSDB's UUIDs, once the Port and Interface exist.
    pub port_uuid: Option<String>,
    pub interface_uuid: Option<String>,
    /// The host interface exists (the attach came).
    pub attached: bool,
    /// The type change to the attached type is committed (our reply or the monitor).
    pub type_changed: bool,
    /// Since the type change was requested, the switch's port is the old instance that OVS
    /// is about to destroy: it does not count until the switch shows the new one (an ADD, or
    /// a PORT_DESC after the change committed).
    pub awaiting_new_port: bool,
    /// OVSDB's view of the Interface: type, `ofport` and `error`.
    pub iface_type: Option<String>,
    pub ofport: Option<i64>,
    pub ovsdb_error: Option<String>,
    /// The switch's view: OpenFlow port number and `ofp_port_state`/`ofp_port_config` bits.
    pub port_no: Option<u32>,
    pub state: u32,
    pub config: u32,
    /// The legacy strategy's answer.
    pub waited_ofport: Option<u32>,
    /// Failed attaches of the legacy strategy.
    pub attach_failures: u32,
    pub flows: Option<InstalledFlows>,
    /// Set by `PodReady`, cleared as soon as the facts no longer hold it up.
    pub ready: Option<ReadyMark>,
    /// Start of the current wait, µs since the epoch (the add, the attach, or a lost Ready).
    pub waiting_since: u64,
    /// The deletion was asked for.
    pub removing: bool,
    /// A permanent failure: the Pod stays failed until it is deleted.
    pub failed: Option<Failure>,
    /// The last failure, until the Pod becomes ready.
    pub last_error: Option<String>,
    /// When each stage of the current attach ended.
    pub stages: StageTimes,
}

impl PodPort {
    /// The port number flows may use now under `policy`, if any. Reserved numbers never.
    pub fn usable_port(&self, policy: &Policy) -> Option<u32> {
        if !self.attached || !self.type_changed || self.failed.is_some() || self.removing {
            return None;
        }
        if policy.ovsdb_wait {
            return self.waited_ofport;
        }
        if self.awaiting_new_port {
            return None;
        }
        let n = self.port_no.filter(|n| !PortNo(*n).is_reserved())?;
        let state = PortState::from_bits_retain(self.state);
        let ok = match policy.readiness {
            Readiness::Live => state.contains(PortState::LIVE),
            Readiness::LiveOrLinkDown => {
                state.contains(PortState::LIVE) || state.contains(PortState::LINK_DOWN)
            }
            Readiness::Allocated => true,
        };
        ok.then_some(n)
    }

    /// Ready: usable and its flows confirmed on that number, announced.
    pub fn is_ready(&self) -> bool {
        self.ready.is_some()
    }

    fn still_ready(&self, policy: &Policy) -> bool {
        match self.ready {
            None => true,
            Some(mark) => {
                self.usable_port(policy) == Some(mark.port_no)
                    && self.flows.is_some_and(|f| f.port_no == mark.port_no)
            }
        }
    }
}

/// The switch connection while it is up.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Debug,
    PartialEq,
    Eq,
)]
pub struct SwitchInfo {
    pub endpoint: String,
    pub datapath_id: u64,
    pub of_version: String,
}

/// The whole folded journal.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Debug,
    PartialEq,
    Eq,
)]
pub struct State {
    /// The rules of the last `AgentStarted`.
    pub policy: Policy,
    /// Tracked Pod ports by interface name.
    pub ports: BTreeMap<String, PodPort>,
    /// The switch connection while connected.
    pub switch: Option<SwitchInfo>,
    /// A PORT_DESC was taken on the current connection: port numbers are current.
    pub desc_synced: bool,
    /// The last PORT_DESC.
    pub last_port_desc: Vec<PortDesc>,
    /// PortStatus messages for ports no Pod owns (journaled, otherwise ignored).
    pub foreign_port_status: u64,
    /// The cookie the next Pod gets.
    pub next_cookie: u64,
}

impl Default for State {
    fn default() -> Self {
        State {
            policy: Policy::default(),
            ports: BTreeMap::new(),
            switch: None,
            desc_synced: false,
            last_port_desc: Vec::new(),
            foreign_port_status: 0,
            next_cookie: POD_COOKIE_BASE + 1,
        }
    }
}

impl State {
    /// The tracked port whose wire name (first 15 bytes) is `name`.
    pub fn by_wire_name(&self, name: &str) -> Option<&str> {
        // Exact match first; add_pod rejects names whose first 15 bytes collide.
        if let Some((k, _)) = self.ports.get_key_value(name) {
            return Some(k);
        }
        self.ports
            .keys()
            .find(|k| wire_name(k) == name)
            .map(String::as_str)
    }

    /// Whether the switch connection is up and its port list is current.
    pub fn switch_ready(&self) -> bool {
        self.switch.is_some() && self.desc_synced
    }

    /// The phase of a port, derived from its facts.
    pub fn phase_of(&self, p: &PodPort) -> Phase {
        if p.removing {
            return Phase::Removing;
        }
        if p.failed.is_some() {
            return Phase::Failed;
        }
        if p.port_uuid.is_none() {
            return Phase::Creating;
        }
        if !p.attached {
            return Phase::WaitingInterface;
        }
        if p.is_ready() {
            return Phase::Ready;
        }
        if p.usable_port(&self.policy).is_some() && self.switch_ready() {
            return Phase::Usable;
        }
        let allocated = if self.policy.ovsdb_wait {
            p.waited_ofport.is_some()
        } else {
            p.port_no.is_some() && !p.awaiting_new_port
        };
        if allocated && p.type_changed {
            Phase::Allocated
        } else {
            Phase::TypeChangeRequested
        }
    }

    /// The phase of the port `ifname`, if tracked.
    pub fn phase(&self, ifname: &str) -> Option<Phase> {
        self.ports.get(ifname).map(|p| self.phase_of(p))
    }
}

/// Folds one record into the state.
pub fn apply(state: &mut State, record: &Record) {
    apply_event(state, record.ts_micros, &record.event);
}

/// Folds one event, journaled at `ts` (µs since the epoch), into the state.
pub fn apply_event(state: &mut State, ts: u64, event: &Event) {
    let touched: Option<String> = match event {
        Event::AgentStarted { policy, .. } => {
            // A new process: no switch connection yet. Flows and Ready marks stay: the switch
            // still holds what the previous process installed, until it says otherwise.
            state.policy = policy.clone();
            state.switch = None;
            state.desc_synced = false;
            let keys: Vec<String> = state.ports.keys().cloned().collect();
            for k in keys {
                settle(state, &k, ts);
            }
            None
        }
        Event::SwitchConnected {
            endpoint,
            datapath_id,
            of_version,
        } => {
            state.switch = Some(SwitchInfo {
                endpoint: endpoint.clone(),
                datapath_id: *datapath_id,
                of_version: of_version.clone(),
            });
            state.desc_synced = false;
            None
        }
        Event::SwitchDisconnected { .. } => {
            state.switch = None;
            state.desc_synced = false;
            // A new connection may follow a switch restart, which drops every flow.
            let keys: Vec<String> = state.ports.keys().cloned().collect();
            for k in keys {
                if let Some(p) = state.ports.get_mut(&k) {
                    p.flows = None;
                }
                settle(state, &k, ts);
            }
            None
        }
        Event::PodAdded {
            pod,
            container_id,
            ifname,
            ips,
            mac,
            cookie,
        } => {
            state.next_cookie = state.next_cookie.max(cookie.saturating_add(1));
            state.ports.insert(
                ifname.clone(),
                PodPort {
                    ifname: ifname.clone(),
                    pod: pod.clone(),
                    container_id: container_id.clone(),
                    ips: ips.clone(),
                    mac: mac.clone(),
                    cookie: *cookie,
                    added_at: ts,
                    port_uuid: None,
                    interface_uuid: None,
                    attached: false,
                    type_changed: false,
                    awaiting_new_port: false,
                    iface_type: None,
                    ofport: None,
                    ovsdb_error: None,
                    port_no: None,
                    state: 0,
                    config: 0,
                    waited_ofport: None,
                    attach_failures: 0,
                    flows: None,
                    ready: None,
                    waiting_since: ts,
                    removing: false,
                    failed: None,
                    last_error: None,
                    stages: StageTimes::default(),
                },
            );
            if let Some(p) = state.ports.get_mut(ifname) {
                p.stages.reach(Stage::Added, ts);
            }
            None
        }
        Event::PodPortCreated {
            ifname,
            port_uuid,
            interface_uuid,
        } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.port_uuid = Some(port_uuid.clone());
                p.interface_uuid = Some(interface_uuid.clone());
                p.stages.reach(Stage::PortCommitted, ts);
            }
            Some(ifname.clone())
        }
        Event::HostInterfaceCreated { ifname } => {
            let attached_type = state.policy.attached_type.clone();
            if let Some(p) = state.ports.get_mut(ifname) {
                if !p.attached {
                    p.attached = true;
                    p.waiting_since = ts;
                    // The port the switch shows now is of the old type: unless OVSDB already
                    // has the attached type, OVS destroys it and creates a new one.
                    p.awaiting_new_port = p.iface_type.as_deref() != Some(&attached_type);
                    p.type_changed = !p.awaiting_new_port;
                    p.stages.reach(Stage::HostAttached, ts);
                    if p.type_changed {
                        p.stages.reach(Stage::TypeChanged, ts);
                    }
                }
            }
            Some(ifname.clone())
        }
        Event::InterfaceTypeChanged {
            ifname, outcome, ..
        } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                match outcome {
                    Outcome::Ok => {
                        p.type_changed = true;
                        p.stages.reach(Stage::TypeChanged, ts);
                    }
                    Outcome::Failed(f) => fail(p, f),
                }
            }
            Some(ifname.clone())
        }
        Event::OvsdbInterfaceUpdate {
            ifname,
            iface_type,
            ofport,
            error,
        } => {
            let attached_type = &state.policy.attached_type;
            if let Some(p) = state.ports.get_mut(ifname) {
                if p.attached && iface_type == attached_type {
                    p.type_changed = true;
                    p.stages.reach(Stage::TypeChanged, ts);
                }
                p.iface_type = Some(iface_type.clone());
                p.ofport = *ofport;
                p.ovsdb_error = error.clone();
            }
            Some(ifname.clone())
        }
        Event::OfportWaited { ifname, ofport } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.waited_ofport = u32::try_from(*ofport)
                    .ok()
                    .filter(|n| !PortNo(*n).is_reserved());
            }
            Some(ifname.clone())
        }
        Event::PortStatusReceived { reason, port } => {
            let Some(name) = state.by_wire_name(&port.name).map(str::to_string) else {
                state.foreign_port_status += 1;
                return;
            };
            if PortNo(port.port_no).is_reserved() {
                return;
            }
            if let Some(p) = state.ports.get_mut(&name) {
                match reason {
                    PortReason::Delete => {
                        // Only a DELETE of the number we hold removes it: a stale DELETE of
                        // an old number must not undo a newer ADD.
                        if p.port_no == Some(port.port_no) {
                            p.port_no = None;
                            p.state = 0;
                            p.config = 0;
                        }
                    }
                    _ => {
                        if *reason == PortReason::Add {
                            // An ADD after the type change was requested is the new port.
                            p.awaiting_new_port = false;
                        }
                        p.port_no = Some(port.port_no);
                        p.state = port.state;
                        p.config = port.config;
                    }
                }
            }
            Some(name)
        }
        Event::PortDescSynced { ports } => {
            state.desc_synced = true;
            let keys: Vec<String> = state.ports.keys().cloned().collect();
            for k in &keys {
                let Some(p) = state.ports.get_mut(k) else {
                    continue;
                };
                let wire = wire_name(&p.ifname);
                match ports
                    .iter()
                    .find(|d| d.name == wire && !PortNo(d.port_no).is_reserved())
                {
                    Some(d) => {
                        p.port_no = Some(d.port_no);
                        p.state = d.state;
                        p.config = d.config;
                        // Listed after the change committed: this is the new port.
                        if p.type_changed {
                            p.awaiting_new_port = false;
                        }
                    }
                    None => {
                        p.port_no = None;
                        p.state = 0;
                        p.config = 0;
                    }
                }
                settle(state, k, ts);
            }
            state.last_port_desc = ports.clone();
            None
        }
        Event::FlowsInstalled {
            ifname,
            port_no,
            count,
            ..
        } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.flows = Some(InstalledFlows {
                    port_no: *port_no,
                    count: *count,
                });
                p.stages.reach(Stage::FlowsConfirmed, ts);
            }
            Some(ifname.clone())
        }
        Event::FlowsRemoved { ifname, .. } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.flows = None;
            }
            Some(ifname.clone())
        }
        Event::PodReady {
            ifname, port_no, ..
        } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.ready = Some(ReadyMark {
                    port_no: *port_no,
                    since: ts,
                });
                p.last_error = None;
                p.stages.reach(Stage::Ready, ts);
            }
            Some(ifname.clone())
        }
        Event::PodNotReady { .. } => None,
        Event::PodFailed {
            ifname,
            step,
            error,
        } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                if *step == crate::event::Step::OvsdbWait {
                    p.attach_failures = p.attach_failures.saturating_add(1);
                }
                fail(p, error);
            }
            Some(ifname.clone())
        }
        Event::Reconciled { ifname, finding } => {
            if *finding == Finding::Vanished {
                state.ports.remove(ifname);
                return;
            }
            None
        }
        Event::DeleteRequested { ifname } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.removing = true;
                p.ready = None;
            }
            None
        }
        Event::PodDeleted { ifname } => {
            state.ports.remove(ifname);
            None
        }
        Event::FlowsSent { ifname, .. } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.stages.reach(Stage::FlowsSent, ts);
            }
            None
        }
        Event::CookieGeneration { generation } => {
            // Only a journal without one takes it; cookies handed out already keep theirs.
            if cookie_generation(state.next_cookie) == 0 {
                let g = u64::from(*generation & 0x00ff_ffff) << 24;
                state.next_cookie = POD_COOKIE_BASE | g | (state.next_cookie & 0x00ff_ffff);
            }
            None
        }
    };
    if let Some(name) = touched {
        settle(state, &name, ts);
    }
}

fn fail(p: &mut PodPort, f: &Failure) {
    p.last_error = Some(f.reason.clone());
    if f.is_permanent() {
        p.failed = Some(f.clone());
        p.ready = None;
    }
}

/// A Ready whose facts no longer hold (port gone, renumbered, not usable, flows gone) is
/// withdrawn, and a new wait starts. Then the stages the facts show are marked: the port's
/// number known, the port usable.
fn settle(state: &mut State, ifname: &str, ts: u64) {
    let switch_ready = state.switch_ready();
    let policy = &state.policy;
    if let Some(p) = state.ports.get_mut(ifname) {
        if !p.still_ready(policy) {
            p.ready = None;
            p.waiting_since = ts;
            p.stages.rewait(ts);
        }
        let known = if policy.ovsdb_wait {
            p.waited_ofport.is_some()
        } else {
            switch_ready && p.port_no.is_some() && !p.awaiting_new_port
        };
        if known && p.attached && p.type_changed {
            p.stages.reach(Stage::PortKnown, ts);
        }
        if switch_ready && p.usable_port(policy).is_some() {
            p.stages.reach(Stage::Usable, ts);
        }
    }
}
