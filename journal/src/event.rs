//! The journal's records: one typed [`Event`] per state change, with its sequence number and
//! wall-clock time.
//!
//! The archived layout of these types is the on-disk format of FORMAT_VERSION 2 (see
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

/// Whether retrying can help.
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
pub enum FailureKind {
    /// OVS or the switch was away, busy or slow: asked again with backoff.
    Transient,
    /// Retrying cannot help (the name belongs to another container, OVSDB refused the
    /// transaction, the spec is invalid): the Pod fails once, with this reason.
    Permanent,
}

/// A typed failure, as it crosses from the actors to the core and into the journal.
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
pub struct Failure {
    pub kind: FailureKind,
    pub reason: String,
}

impl Failure {
    pub fn transient(reason: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Transient,
            reason: reason.into(),
        }
    }
    pub fn permanent(reason: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Permanent,
            reason: reason.into(),
        }
    }
    pub fn is_permanent(&self) -> bool {
        self.kind == FailureKind::Permanent
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            FailureKind::Transient => f.write_str(&self.reason),
            FailureKind::Permanent => write!(f, "{} (permanent)", self.reason),
        }
    }
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
    Failed(Failure),
}

/// The step of a Pod's life that failed.
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
#[serde(rename_all = "kebab-case")]
pub enum Step {
    CreatePort,
    TypeChange,
    /// OVS could not open the interface (`ofport` -1 with `error`) after the type change.
    OpenInterface,
    /// The Interface row was deleted from OVSDB by someone else.
    InterfaceDeleted,
    /// The legacy strategy's OVSDB `wait` for the ofport.
    OvsdbWait,
    InstallFlows,
    RemoveFlows,
    DeletePort,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::CreatePort => "create-port",
            Step::TypeChange => "type-change",
            Step::OpenInterface => "open-interface",
            Step::InterfaceDeleted => "interface-deleted",
            Step::OvsdbWait => "ovsdb-wait",
            Step::InstallFlows => "install-flows",
            Step::RemoveFlows => "remove-flows",
            Step::DeletePort => "delete-port",
        }
    }
}

/// A port's phase. One model for the engine, status, metrics, the journal and the dump tool.
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
    PartialOrd,
    Ord,
    Hash,
)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Asked OVSDB for the Port and Interface.
    Creating,
    /// Port and Interface exist; waiting for the Pod's host interface.
    WaitingInterface,
    /// Host interface exists; the type change is requested or done, and the switch has not
    /// shown the port as it is after the change.
    TypeChangeRequested,
    /// The switch gave the port (after the type change) a number; not usable yet.
    Allocated,
    /// Usable; flows are being installed.
    Usable,
    /// Flows confirmed by a barrier.
    Ready,
    /// A step failed for good (see the Pod's error); nothing more is tried until it is deleted.
    Failed,
    /// Being deleted.
    Removing,
}

impl Phase {
    /// Stable lower-case name (status, logs, the dump tool).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Creating => "creating",
            Phase::WaitingInterface => "waiting-interface",
            Phase::TypeChangeRequested => "type-change-requested",
            Phase::Allocated => "allocated",
            Phase::Usable => "usable",
            Phase::Ready => "ready",
            Phase::Failed => "failed",
            Phase::Removing => "removing",
        }
    }

    /// Every phase, in life order.
    pub const ALL: [Phase; 8] = [
        Phase::Creating,
        Phase::WaitingInterface,
        Phase::TypeChangeRequested,
        Phase::Allocated,
        Phase::Usable,
        Phase::Ready,
        Phase::Failed,
        Phase::Removing,
    ];
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Phase, String> {
        Phase::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown phase {s:?}"))
    }
}

/// When a port counts as usable.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
)]
#[serde(rename_all = "kebab-case")]
pub enum Readiness {
    /// The switch reports LIVE (with any other bits).
    #[default]
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

/// The rules the fold needs to derive phases: recorded by every `AgentStarted`, so a replay
/// derives what the agent derived, whatever the dump tool's own settings.
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
pub struct Policy {
    pub readiness: Readiness,
    /// The legacy strategy: the port number comes from an OVSDB `wait`, not from PortStatus.
    pub ovsdb_wait: bool,
    /// The Interface type set once the host interface exists (`internal`).
    pub attached_type: String,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            readiness: Readiness::Live,
            ovsdb_wait: false,
            attached_type: "internal".into(),
        }
    }
}

/// What a restart's (or reconnect's) check of a port against the switch concluded.
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
#[serde(tag = "finding", rename_all = "kebab-case")]
pub enum Finding {
    /// The port has the number the journal said.
    Present { port_no: u32 },
    /// The port has a new number.
    Renumbered { from: u32, to: u32 },
    /// The port got a number while the agent was away.
    Allocated { port_no: u32 },
    /// The switch has no port of that name (yet).
    Waiting,
    /// The Interface is gone from OVSDB: the Pod is dropped.
    Vanished,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Present { port_no } => write!(f, "present on {port_no}"),
            Finding::Renumbered { from, to } => write!(f, "renumbered {from} -> {to}"),
            Finding::Allocated { port_no } => write!(f, "allocated {port_no}"),
            Finding::Waiting => f.write_str("waiting"),
            Finding::Vanished => f.write_str("vanished"),
        }
    }
}

/// Every state change podport records. The fold ([`crate::apply`]) is the only place where
/// these change state, live in the engine and at replay.
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
    /// The agent (re)started: no switch connection yet; the rules of the fold.
    AgentStarted {
        version: String,
        config_digest: String,
        policy: Policy,
    },
    /// The OpenFlow connection came up.
    SwitchConnected {
        endpoint: String,
        datapath_id: u64,
        of_version: String,
    },
    /// The OpenFlow connection went down.
    SwitchDisconnected { endpoint: String, reason: String },
    /// A Pod is tracked from now on (its port is requested), with its flow cookie.
    PodAdded {
        pod: PodRef,
        container_id: String,
        ifname: String,
        ips: Vec<String>,
        mac: String,
        cookie: u64,
    },
    /// The Pod's Port and Interface exist in OVSDB.
    PodPortCreated {
        ifname: String,
        port_uuid: String,
        interface_uuid: String,
    },
    /// The Pod's host interface (vNIC) appeared: the type change is requested.
    HostInterfaceCreated { ifname: String },
    /// The Interface type change, with its result.
    InterfaceTypeChanged {
        ifname: String,
        from: String,
        to: String,
        outcome: Outcome,
    },
    /// The OVSDB monitor reported the Interface's type, `ofport` and `error`.
    OvsdbInterfaceUpdate {
        ifname: String,
        iface_type: String,
        ofport: Option<i64>,
        error: Option<String>,
    },
    /// The legacy strategy's OVSDB `wait` answered with a port number.
    OfportWaited { ifname: String, ofport: i64 },
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
        phase: Phase,
        waited_ms: u64,
    },
    /// A step failed: retried with backoff when transient, the Pod fails when permanent.
    PodFailed {
        ifname: String,
        step: Step,
        error: Failure,
    },
    /// What a check of a port against OVS concluded.
    Reconciled { ifname: String, finding: Finding },
    /// The Pod's deletion was asked for.
    DeleteRequested { ifname: String },
    /// The Pod was deleted.
    PodDeleted { ifname: String },
    /// This journal's cookie generation, drawn at random when the journal is new: every
    /// cookie it hands out carries it (bits 24..48), so a journal that replaces a lost one
    /// never reuses a cookie that the switch may still hold flows under. (Last in the enum:
    /// appending a small variant keeps the archived layout of the others.)
    CookieGeneration { generation: u32 },
    /// The Pod's flows were sent to the switch for `port_no` (their confirmation is
    /// `FlowsInstalled`): the `flows_sent` stage.
    FlowsSent { ifname: String, port_no: u32 },
}

impl Event {
    /// The variant's name: `PortStatus`, `PodReady`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Event::AgentStarted { .. } => "AgentStarted",
            Event::SwitchConnected { .. } => "SwitchConnected",
            Event::SwitchDisconnected { .. } => "SwitchDisconnected",
            Event::PodAdded { .. } => "PodAdded",
            Event::PodPortCreated { .. } => "PodPortCreated",
            Event::HostInterfaceCreated { .. } => "HostInterfaceCreated",
            Event::InterfaceTypeChanged { .. } => "InterfaceTypeChanged",
            Event::OvsdbInterfaceUpdate { .. } => "OvsdbInterfaceUpdate",
            Event::OfportWaited { .. } => "OfportWaited",
            Event::PortStatusReceived { .. } => "PortStatus",
            Event::PortDescSynced { .. } => "PortDescSynced",
            Event::FlowsInstalled { .. } => "FlowsInstalled",
            Event::FlowsRemoved { .. } => "FlowsRemoved",
            Event::PodReady { .. } => "PodReady",
            Event::PodNotReady { .. } => "PodNotReady",
            Event::PodFailed { .. } => "PodFailed",
            Event::Reconciled { .. } => "Reconciled",
            Event::DeleteRequested { .. } => "DeleteRequested",
            Event::PodDeleted { .. } => "PodDeleted",
            Event::CookieGeneration { .. } => "CookieGeneration",
            Event::FlowsSent { .. } => "FlowsSent",
        }
    }

    /// The interface the event is about, when it is about one. PortStatus carries the wire
    /// name (cut to 15 bytes); compare with [`wire_name`].
    pub fn ifname(&self) -> Option<&str> {
        match self {
            Event::PodAdded { ifname, .. }
            | Event::PodPortCreated { ifname, .. }
            | Event::HostInterfaceCreated { ifname }
            | Event::OfportWaited { ifname, .. }
            | Event::DeleteRequested { ifname }
            | Event::InterfaceTypeChanged { ifname, .. }
            | Event::OvsdbInterfaceUpdate { ifname, .. }
            | Event::FlowsInstalled { ifname, .. }
            | Event::FlowsRemoved { ifname, .. }
            | Event::PodReady { ifname, .. }
            | Event::PodNotReady { ifname, .. }
            | Event::PodFailed { ifname, .. }
            | Event::Reconciled { ifname, .. }
            | Event::FlowsSent { ifname, .. }
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
