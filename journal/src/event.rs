//! The journal's records: one typed [`Event`] per state change, with its sequence number and
//! wall-clock time.
//!
//! The archived layout of these types is the on-disk format of FORMAT_VERSION 1 (see
//! `docs/journal.md`): changing a type here means a new format version and a reader for the
//! old one.

/// A Pod's identity.
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
    Hash,
    PartialOrd,
    Ord,
)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a PortStatus was sent (`ofp_port_reason`).
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
#[serde(rename_all = "lowercase")]
pub enum PortReason {
    Add,
    Delete,
    Modify,
    Other(u8),
}

impl PortReason {
    /// `ADD`, `DELETE`, `MODIFY`, `REASON(n)`.
    pub fn label(self) -> String {
        match self {
            PortReason::Add => "ADD".into(),
            PortReason::Delete => "DELETE".into(),
            PortReason::Modify => "MODIFY".into(),
            PortReason::Other(n) => format!("REASON({n})"),
        }
    }
}

/// One port as a PORT_DESC reply (or a PortStatus) describes it.
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
pub struct PortDesc {
    pub port_no: u32,
    /// The name as on the wire: at most 15 bytes.
    pub name: String,
    /// `ofp_port_state` bits (LINK_DOWN 1, BLOCKED 2, LIVE 4).
    pub state: u32,
    /// `ofp_port_config` bits (PORT_DOWN 1, NO_RECV 4, NO_FWD 0x20, NO_PACKET_IN 0x40).
    pub config: u32,
    pub hw_addr: [u8; 6],
}

/// The result of an operation the engine asked OVS for.
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
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed(String),
}

/// Every state change podport records.
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
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The agent (re)started.
    AgentStarted {
        version: String,
        config_digest: String,
    },
    /// The OpenFlow connection came up.
    SwitchConnected {
        endpoint: String,
        datapath_id: u64,
        of_version: String,
    },
    /// The OpenFlow connection went down.
    SwitchDisconnected { endpoint: String, reason: String },
    /// The Pod's Port and Interface exist in OVSDB.
    PodPortCreated {
        pod: PodRef,
        container_id: String,
        ifname: String,
        port_uuid: String,
        interface_uuid: String,
        ips: Vec<String>,
        mac: String,
    },
    /// The Pod's host interface (vNIC) appeared: the hook that switches the type.
    HostInterfaceCreated { ifname: String },
    /// An Interface type change was asked for, with its result.
    InterfaceTypeChanged {
        ifname: String,
        from: String,
        to: String,
        outcome: Outcome,
    },
    /// The OVSDB monitor reported the Interface's `ofport` / `error`.
    OvsdbInterfaceUpdate {
        ifname: String,
        ofport: Option<i64>,
        error: Option<String>,
    },
    /// The switch sent a PortStatus.
    PortStatusReceived { reason: PortReason, port: PortDesc },
    /// A PORT_DESC reply was taken (on every connect): the switch's whole port list.
    PortDescSynced { ports: Vec<PortDesc> },
    /// The Pod's flows were installed and confirmed by a barrier.
    FlowsInstalled {
        ifname: String,
        port_no: u32,
        cookie: u64,
        count: u32,
    },
    /// The Pod's flows were removed.
    FlowsRemoved {
        ifname: String,
        cookie: u64,
        count: u32,
    },
    /// The Pod's port is usable and its flows are in place.
    PodReady {
        ifname: String,
        port_no: u32,
        waited_ms: u64,
    },
    /// Still waiting, reported at every interval.
    PodNotReady {
        ifname: String,
        phase: String,
        waited_ms: u64,
    },
    /// Something failed for this Pod (with the error); the engine keeps trying.
    PodFailed { ifname: String, error: String },
    /// What a restart's reconciliation concluded for a port (`ready`, `vanished`,
    /// `renumbered 5 -> 7`, `waiting`).
    Reconciled { ifname: String, finding: String },
    /// The Pod was deleted.
    PodDeleted { ifname: String },
}

impl Event {
    /// The variant's name: `PortStatus`, `PodReady`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Event::AgentStarted { .. } => "AgentStarted",
            Event::SwitchConnected { .. } => "SwitchConnected",
            Event::SwitchDisconnected { .. } => "SwitchDisconnected",
            Event::PodPortCreated { .. } => "PodPortCreated",
            Event::HostInterfaceCreated { .. } => "HostInterfaceCreated",
            Event::InterfaceTypeChanged { .. } => "InterfaceTypeChanged",
            Event::OvsdbInterfaceUpdate { .. } => "OvsdbInterfaceUpdate",
            Event::PortStatusReceived { .. } => "PortStatus",
            Event::PortDescSynced { .. } => "PortDescSynced",
            Event::FlowsInstalled { .. } => "FlowsInstalled",
            Event::FlowsRemoved { .. } => "FlowsRemoved",
            Event::PodReady { .. } => "PodReady",
            Event::PodNotReady { .. } => "PodNotReady",
            Event::PodFailed { .. } => "PodFailed",
            Event::Reconciled { .. } => "Reconciled",
            Event::PodDeleted { .. } => "PodDeleted",
        }
    }

    /// The interface the event is about, when it is about one. PortStatus carries the wire
    /// name (cut to 15 bytes); compare with [`wire_name`].
    pub fn ifname(&self) -> Option<&str> {
        match self {
            Event::PodPortCreated { ifname, .. }
            | Event::HostInterfaceCreated { ifname }
            | Event::InterfaceTypeChanged { ifname, .. }
            | Event::OvsdbInterfaceUpdate { ifname, .. }
            | Event::FlowsInstalled { ifname, .. }
            | Event::FlowsRemoved { ifname, .. }
            | Event::PodReady { ifname, .. }
            | Event::PodNotReady { ifname, .. }
            | Event::PodFailed { ifname, .. }
            | Event::Reconciled { ifname, .. }
            | Event::PodDeleted { ifname } => Some(ifname),
            Event::PortStatusReceived { port, .. } => Some(&port.name),
            _ => None,
        }
    }
}

/// An interface name as OpenFlow carries it: the first 15 bytes.
pub fn wire_name(ifname: &str) -> &str {
    let mut n = ifname.len().min(15);
    while !ifname.is_char_boundary(n) {
        n -= 1;
    }
    &ifname[..n]
}

/// What is stored under a sequence number (the sequence number is the key).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    pub ts_micros: u64,
    pub event: Event,
}

/// One journal record.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Strictly increasing, the sled key.
    pub seq: u64,
    /// Wall-clock time of the append, microseconds since the Unix epoch.
    pub ts_micros: u64,
    pub event: Event,
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
