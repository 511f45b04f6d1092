//! The fold of the journal into per-port state: `apply(&mut State, &Record)`.
//!
//! Pure and deterministic: the same records give the same state, whether replayed from the
//! first record or from a snapshot plus the records after it. The engine uses the same
//! function at restart to rebuild ports that will never get a PortStatus again.

use std::collections::BTreeMap;

use crate::event::{wire_name, Event, Outcome, PodRef, PortDesc, PortReason, Record};

/// `ofp_port_state` LIVE bit.
pub const STATE_LIVE: u32 = 4;

/// What the journal says about one Pod port.
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
pub struct PortView {
    pub ifname: String,
    pub pod: PodRef,
    pub container_id: String,
    pub ips: Vec<String>,
    pub mac: String,
    pub port_uuid: String,
    pub interface_uuid: String,
    /// Interface type as last changed (empty until the type change).
    pub iface_type: String,
    /// OpenFlow port number the switch last reported (PortStatus or PORT_DESC).
    pub port_no: Option<u32>,
    /// `ofp_port_state` bits last reported.
    pub state: u32,
    /// `ofp_port_config` bits last reported.
    pub config: u32,
    /// OVSDB's view: `ofport` and `error`.
    pub ofport: Option<i64>,
    pub ovsdb_error: Option<String>,
    /// Installed flows: (cookie, count).
    pub flows: Option<(u64, u32)>,
    /// When the Pod last became ready (µs since the epoch); `None` while not ready.
    pub ready_since: Option<u64>,
    /// The last phase the engine reported (`created`, `attached`, `ready`, a not-ready phase).
    pub phase: String,
    /// The last failure, until the Pod becomes ready.
    pub last_error: Option<String>,
    pub created_at: u64,
    /// The sequence number of the last record that changed this port.
    pub last_seq: u64,
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
    Default,
    PartialEq,
    Eq,
)]
pub struct State {
    /// Tracked Pod ports by interface name.
    pub ports: BTreeMap<String, PortView>,
    /// The switch connection: (endpoint, datapath id, OpenFlow version) while connected.
    pub switch: Option<(String, u64, String)>,
    /// The last PORT_DESC, so a restart can compare it with the switch's list.
    pub last_port_desc: Vec<PortDesc>,
    /// PortStatus messages for ports no Pod owns (journaled, otherwise ignored).
    pub foreign_port_status: u64,
    /// The sequence number of the last record folded in.
    pub last_seq: u64,
}

impl State {
    /// The tracked port whose wire name (first 15 bytes) is `name`.
    pub fn port_by_wire_name_mut(&mut self, name: &str) -> Option<&mut PortView> {
        // Exact match first; add_pod rejects names whose first 15 bytes collide.
        if self.ports.contains_key(name) {
            return self.ports.get_mut(name);
        }
        self.ports
            .values_mut()
            .find(|p| wire_name(&p.ifname) == name)
    }
}

/// Folds one record into the state.
pub fn apply(state: &mut State, record: &Record) {
    state.last_seq = record.seq;
    let seq = record.seq;
    let ts = record.ts_micros;
    match &record.event {
        Event::AgentStarted { .. } => {}
        Event::SwitchConnected {
            endpoint,
            datapath_id,
            of_version,
        } => state.switch = Some((endpoint.clone(), *datapath_id, of_version.clone())),
        Event::SwitchDisconnected { .. } => {
            state.switch = None;
            // A new connection may follow a switch restart, which drops every flow.
            for p in state.ports.values_mut() {
                p.flows = None;
                p.ready_since = None;
                p.last_seq = seq;
            }
        }
        Event::PodPortCreated {
            pod,
            container_id,
            ifname,
            port_uuid,
            interface_uuid,
            ips,
            mac,
        } => {
            state.ports.insert(
                ifname.clone(),
                PortView {
                    ifname: ifname.clone(),
                    pod: pod.clone(),
                    container_id: container_id.clone(),
                    ips: ips.clone(),
                    mac: mac.clone(),
                    port_uuid: port_uuid.clone(),
                    interface_uuid: interface_uuid.clone(),
                    iface_type: String::new(),
                    port_no: None,
                    state: 0,
                    config: 0,
                    ofport: None,
                    ovsdb_error: None,
                    flows: None,
                    ready_since: None,
                    phase: "created".into(),
                    last_error: None,
                    created_at: ts,
                    last_seq: seq,
                },
            );
        }
        Event::HostInterfaceCreated { ifname } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.phase = "attached".into();
                p.last_seq = seq;
            }
        }
        Event::InterfaceTypeChanged {
            ifname,
            to,
            outcome,
            ..
        } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                match outcome {
                    Outcome::Ok => p.iface_type = to.clone(),
                    Outcome::Failed(e) => p.last_error = Some(e.clone()),
                }
                p.last_seq = seq;
            }
        }
        Event::OvsdbInterfaceUpdate {
            ifname,
            ofport,
            error,
        } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.ofport = *ofport;
                p.ovsdb_error = error.clone();
                p.last_seq = seq;
            }
        }
        Event::PortStatusReceived { reason, port } => {
            match state.port_by_wire_name_mut(&port.name) {
                Some(p) => {
                    match reason {
                        PortReason::Delete => {
                            // Only a DELETE of the number we hold removes it: a stale DELETE
                            // of an old number must not undo a newer ADD.
                            if p.port_no == Some(port.port_no) {
                                p.port_no = None;
                                p.state = 0;
                                p.config = 0;
                            }
                        }
                        _ => {
                            p.port_no = Some(port.port_no);
                            p.state = port.state;
                            p.config = port.config;
                        }
                    }
                    p.last_seq = seq;
                }
                None => state.foreign_port_status += 1,
            }
        }
        Event::PortDescSynced { ports } => {
            for p in state.ports.values_mut() {
                let wire = wire_name(&p.ifname);
                match ports.iter().find(|d| d.name == wire) {
                    Some(d) => {
                        p.port_no = Some(d.port_no);
                        p.state = d.state;
                        p.config = d.config;
                    }
                    None => {
                        p.port_no = None;
                        p.state = 0;
                        p.config = 0;
                    }
                }
                p.last_seq = seq;
            }
            state.last_port_desc = ports.clone();
        }
        Event::FlowsInstalled {
            ifname,
            cookie,
            count,
            ..
        } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.flows = Some((*cookie, *count));
                p.last_seq = seq;
            }
        }
        Event::FlowsRemoved { ifname, .. } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.flows = None;
                p.ready_since = None;
                p.last_seq = seq;
            }
        }
        Event::PodReady {
            ifname, port_no, ..
        } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.ready_since = Some(ts);
                p.port_no = Some(*port_no);
                p.phase = "ready".into();
                p.last_error = None;
                p.last_seq = seq;
            }
        }
        Event::PodNotReady { ifname, phase, .. } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.phase = phase.clone();
                p.ready_since = None;
                p.last_seq = seq;
            }
        }
        Event::PodFailed { ifname, error } => {
            if let Some(p) = state.ports.get_mut(ifname) {
                p.last_error = Some(error.clone());
                p.last_seq = seq;
            }
        }
        Event::Reconciled { ifname, finding } => {
            if finding == "vanished" {
                state.ports.remove(ifname);
            } else if let Some(p) = state.ports.get_mut(ifname) {
                p.last_seq = seq;
            }
        }
        Event::PodDeleted { ifname } => {
            state.ports.remove(ifname);
        }
    }
}

/// True when the port's last reported state includes LIVE.
pub fn is_live(p: &PortView) -> bool {
    p.state & STATE_LIVE != 0
}
