//! The sans-IO OpenFlow connection: all protocol state of one switch connection, no sockets,
//! no clock.
//!
//! Vocabulary (drive it in this order after every input):
//! - inputs: [`Connection::handle_frame`] (one whole frame from the framer),
//!   [`Connection::handle_timeout`] (when [`Connection::poll_timeout`] has passed);
//! - requests: [`Connection::request_port_desc`], [`Connection::request_flow_desc`],
//!   [`Connection::send_flow_mod`], [`Connection::send_flow_mods_atomic`],
//!   [`Connection::request_barrier`], then [`Connection::fence`] once per batch;
//! - outputs: [`Connection::poll_transmit`] (frames to write), [`Connection::poll_event`]
//!   (facts for the application), [`Connection::poll_timeout`] (when to call
//!   `handle_timeout` next).
//!
//! A fatal problem (bad bytes, no common version, a probe that got no answer) is returned as a
//! [`ConnError`] from the input that found it; the connection is then closed and the shell must
//! drop the transport and start over with a new `Connection`.
//!
//! Flow mods are confirmed by barriers: a flow mod is applied once a barrier sent after it is
//! answered with no ERROR carrying its xid in between. [`Connection::fence`] adds that barrier
//! automatically when flow mods are unfenced, so every flow mod gets a [`Reply::FlowModApplied`]
//! or an error.
//!
//! An atomic batch (1.5 only) is a bundle driven here step by step, every step matched by xid:
//! OPEN_REQUEST (ATOMIC | ORDERED); on OPEN_REPLY, one BUNDLE_ADD_MESSAGE per flow mod and a
//! barrier; on the barrier's reply, COMMIT_REQUEST if no add drew an ERROR, else
//! DISCARD_REQUEST. OVS validates each flow mod when it is added and drops a bad one from the
//! bundle with an ERROR while keeping the bundle open, so committing without that check would
//! apply the rest. A failure at commit comes as an ERROR naming the failed add's xid, then
//! BUNDLE_FAILED/MSG_FAILED for the commit; OVS then applies nothing. The batch ends with one
//! [`Event::Reply`] under the OPEN_REQUEST's xid: [`Reply::FlowModsCommitted`] or an error.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tracing::{debug, warn};

use crate::bundle::{BundleControl, BundleCtrlType, BundleFlags};
use crate::error::{DecodeError, EncodeError};
use crate::flow::FlowMod;
use crate::flow_desc::{FlowDescRequest, FlowEntry};
use crate::header::msg_type_name;
use crate::message::{
    bitmap_names, decode, encode, negotiate, BundleAdd, ErrorMsg, Hello, Message,
    MultipartReplyBody, MultipartRequest, SwitchConfig,
};
use crate::port::{Port, PortStatus};
use crate::types::{wire_version_name, Version};

/// Settings of a connection.
#[derive(Clone, Debug)]
pub struct ConnConfig {
    /// Versions offered in our HELLO bitmap. The highest common one is used.
    pub versions: Vec<Version>,
    /// Sent in SET_CONFIG; nonzero turns asynchronous messages (PortStatus) on for OVS
    /// service connections.
    pub miss_send_len: u16,
    /// Idle time after which we send our own ECHO_REQUEST.
    pub echo_interval: Duration,
    /// How long after a probe, with nothing received at all, the switch counts as dead.
    pub echo_timeout: Duration,
    /// Time allowed from connect to FEATURES_REPLY.
    pub handshake_timeout: Duration,
    /// Upper bound on ports assembled from one multi-part PORT_DESC reply.
    pub max_port_desc_ports: usize,
    /// Upper bound on flows assembled from one multi-part flow description reply; past it the
    /// request fails with [`ReplyError::TooManyEntries`] (the connection stays up).
    pub max_flow_desc_entries: usize,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            versions: Version::ALL.to_vec(),
            miss_send_len: 0xffff,
            echo_interval: Duration::from_secs(15),
            echo_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(30),
            max_port_desc_ports: 1 << 20,
            // About 500 bytes each once decoded, so at most some 50 MB for one reply: two
            // orders of magnitude above the flows podport installs on a node (about five per
            // Pod address), and enough for a whole busy bridge dumped without a filter.
            max_flow_desc_entries: 100_000,
        }
    }
}

/// Why a connection had to close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// The peer sent bytes that do not decode.
    #[error("bad {msg} message from switch (xid {xid:#x}): {source}")]
    Decode {
        msg: String,
        xid: u32,
        #[source]
        source: DecodeError,
    },
    /// The switch and podport share no OpenFlow version.
    #[error("no common OpenFlow version: we offer {ours}, the switch offers {theirs}")]
    NoCommonVersion { ours: String, theirs: String },
    /// The switch rejected our HELLO.
    #[error("switch refused the handshake: {0}")]
    HelloFailed(ErrorMsg),
    /// The switch rejected a handshake request (FEATURES_REQUEST or SET_CONFIG).
    #[error("switch refused {request} during the handshake: {error}")]
    HandshakeRejected {
        request: &'static str,
        error: ErrorMsg,
    },
    /// A message arrived in a version other than the negotiated one.
    #[error("switch sent a message in version {got} after {expected} was negotiated")]
    VersionMismatch { expected: Version, got: String },
    /// No HELLO and FEATURES_REPLY within the handshake timeout.
    #[error("handshake not finished within {0:?}")]
    HandshakeTimeout(Duration),
    /// Nothing at all came back within the echo timeout after our probe.
    #[error("switch silent for {0:?} after an echo probe")]
    EchoTimeout(Duration),
    /// A multi-part reply grew beyond the configured bound.
    #[error("PORT_DESC reply exceeds {0} ports")]
    TooManyPorts(usize),
    /// The frame declared a length below the header size.
    #[error("bad frame: {0}")]
    Frame(String),
}

/// A request podport cannot make right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the OpenFlow handshake has not finished")]
    NotReady,
    #[error("the connection is closed")]
    Closed,
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Why a request failed, matched by xid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The switch answered the request with this ERROR.
    #[error("switch answered with an error: {0}")]
    Switch(ErrorMsg),
    /// The switch rejected flow mod `index` of an atomic batch (when it was added, or at
    /// commit); the bundle was discarded and none of the batch applied.
    #[error("switch rejected flow mod #{index} of the atomic batch, nothing applied: {error}")]
    FlowModRejected { index: usize, error: ErrorMsg },
    /// A multi-part reply grew past the configured bound; the rest of it is dropped.
    #[error("reply has more than {limit} entries")]
    TooManyEntries { limit: usize },
    /// The switch answered with a message that does not fit the request.
    #[error("unexpected reply: {0}")]
    Unexpected(String),
}

/// The outcome of a request, matched by xid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Every port, all parts of a multi-part reply assembled, in wire order.
    PortDesc(Vec<Port>),
    /// Every flow passing the request's filter, all parts assembled, in wire order.
    FlowDesc(Vec<FlowEntry>),
    /// Every flow mod of an atomic batch was committed at once.
    FlowModsCommitted,
    /// The barrier was answered: everything sent before it is processed.
    Barrier,
    /// A barrier after this flow mod was answered and no ERROR named it.
    FlowModApplied,
}

/// Facts for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Handshake done: requests may be made, asynchronous messages are on.
    Connected { version: Version, datapath_id: u64 },
    /// The switch reported a port change on its own.
    PortStatus(PortStatus),
    /// A request finished: its reply, or why it failed.
    Reply {
        xid: u32,
        result: Result<Reply, ReplyError>,
    },
    /// An ERROR for an xid we were not waiting on.
    UnsolicitedError { xid: u32, error: ErrorMsg },
}

#[derive(Debug)]
enum Phase {
    AwaitHello,
    AwaitFeatures { features_xid: u32, config_xid: u32 },
    Ready,
    Closed,
}

#[derive(Debug)]
enum Pending {
    PortDesc(Vec<Port>),
    FlowDesc(Vec<FlowEntry>),
    /// A flow description that outgrew the bound (already reported): its remaining parts are
    /// dropped.
    FlowDescOverflowed,
    Barrier {
        automatic: bool,
    },
    FlowMod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchStep {
    Opening,
    Adding,
    Committing,
    Discarding,
}

/// One atomic batch of flow mods in a bundle (see the module documentation).
#[derive(Debug)]
struct AtomicBatch {
    /// The OPEN_REQUEST's xid, under which the outcome is reported.
    request_xid: u32,
    bundle_id: u32,
    step: BatchStep,
    /// The xid whose answer moves the batch on: the open, the barrier after the adds, the
    /// commit or the discard.
    awaiting: u32,
    /// BUNDLE_ADD_MESSAGE frames, encoded up front so that an encoding error fails the request
    /// before anything is sent; sent once the bundle is open.
    adds: Vec<BytesMut>,
    /// The xid of each add, in flow mod order.
    add_xids: Vec<u32>,
    /// The rejected flow mod with the lowest index, and its ERROR.
    rejected: Option<(usize, ErrorMsg)>,
}

const BATCH_FLAGS: BundleFlags = BundleFlags::ATOMIC.union(BundleFlags::ORDERED);

/// One OpenFlow connection's protocol state. See the module documentation for the call order.
#[derive(Debug)]
pub struct Connection {
    config: ConnConfig,
    phase: Phase,
    version: Option<Version>,
    datapath_id: Option<u64>,
    next_xid: u32,
    /// Requests in the order they were sent, so a barrier reply can confirm what preceded it.
    pending: VecDeque<(u32, Pending)>,
    /// Atomic batches under way, in request order.
    batches: Vec<AtomicBatch>,
    next_bundle_id: u32,
    unfenced_flow_mods: bool,
    transmit: VecDeque<BytesMut>,
    events: VecDeque<Event>,
    started: Instant,
    last_rx: Instant,
    probe_sent: Option<Instant>,
}

impl Connection {
    /// A new connection whose transport has just been opened at `now`. Our HELLO is queued.
    pub fn new(config: ConnConfig, now: Instant) -> Connection {
        let mut conn = Connection {
            config,
            phase: Phase::AwaitHello,
            version: None,
            datapath_id: None,
            next_xid: 1,
            pending: VecDeque::new(),
            batches: Vec::new(),
            next_bundle_id: 1,
            unfenced_flow_mods: false,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            started: now,
            last_rx: now,
            probe_sent: None,
        };
        let highest = conn.config.versions.iter().max().copied();
        let header_version = highest.map_or(Version::Of15.wire(), Version::wire);
        let hello = Message::Hello(Hello::offering(&conn.config.versions));
        conn.queue_raw(&hello, header_version);
        conn
    }

    /// The negotiated version, once the switch's HELLO arrived.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The datapath id from FEATURES_REPLY.
    pub fn datapath_id(&self) -> Option<u64> {
        self.datapath_id
    }

    /// True once FEATURES_REPLY arrived and the connection is usable.
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready)
    }

    /// Number of requests waiting for a reply (an atomic batch counts as one).
    pub fn pending_requests(&self) -> usize {
        self.pending.len() + self.batches.len()
    }

    /// Next frame to write, if any.
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        self.transmit.pop_front()
    }

    /// Next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Closed => None,
            Phase::AwaitHello | Phase::AwaitFeatures { .. } => {
                Some(self.started + self.config.handshake_timeout)
            }
            Phase::Ready => Some(match self.probe_sent {
                Some(sent) => sent + self.config.echo_timeout,
                None => self.last_rx + self.config.echo_interval,
            }),
        }
    }

    /// Handles the passage of time: handshake deadline, echo probe and its timeout.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ConnError> {
        match self.phase {
            Phase::Closed => Ok(()),
            Phase::AwaitHello | Phase::AwaitFeatures { .. } => {
                if now >= self.started + self.config.handshake_timeout {
                    self.fail(ConnError::HandshakeTimeout(self.config.handshake_timeout))
                } else {
                    Ok(())
                }
            }
            Phase::Ready => match self.probe_sent {
                Some(sent) if now >= sent + self.config.echo_timeout => {
                    self.fail(ConnError::EchoTimeout(now - self.last_rx))
                }
                Some(_) => Ok(()),
                None if now >= self.last_rx + self.config.echo_interval => {
                    debug!("switch idle, sending echo probe");
                    self.queue(&Message::EchoRequest(Bytes::new()));
                    self.probe_sent = Some(now);
                    Ok(())
                }
                None => Ok(()),
            },
        }
    }

    /// Handles one whole frame received at `now`.
    pub fn handle_frame(&mut self, frame: &[u8], now: Instant) -> Result<(), ConnError> {
        if matches!(self.phase, Phase::Closed) {
            return Ok(());
        }
        // Any byte from the switch proves it is alive.
        self.last_rx = now;
        self.probe_sent = None;
        let (header, msg) = match decode(frame) {
            Ok(ok) => ok,
            Err(source) => {
                let msg = match frame.get(1) {
                    Some(&t) => {
                        msg_type_name(t).map_or_else(|| format!("type {t}"), str::to_string)
                    }
                    None => "?".to_string(),
                };
                let xid = frame
                    .get(4..8)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                return self.fail(ConnError::Decode { msg, xid, source });
            }
        };
        let xid = header.xid;
        // HELLO, ERROR and ECHO may legitimately come in another version (HELLO_FAILED is
        // sent in the peer's version); everything else must use the negotiated one.
        if let Some(v) = self.version {
            let version_free = matches!(
                msg,
                Message::Hello(_)
                    | Message::Error(_)
                    | Message::EchoRequest(_)
                    | Message::EchoReply(_)
            );
            if header.version != v.wire() && !version_free {
                return self.fail(ConnError::VersionMismatch {
                    expected: v,
                    got: wire_version_name(header.version),
                });
            }
        }
        match msg {
            Message::Hello(hello) => self.on_hello(&hello, header.version),
            Message::EchoRequest(data) => {
                // Answer in the request's version: before negotiation that is all we know.
                let v = self.version.map_or(header.version, Version::wire);
                self.queue_raw_xid(&Message::EchoReply(data), v, xid);
                Ok(())
            }
            Message::EchoReply(_) => Ok(()),
            Message::Error(error) => self.on_error(xid, error),
            Message::FeaturesReply(f) => {
                match self.phase {
                    Phase::AwaitFeatures { features_xid, .. } if features_xid == xid => {
                        self.datapath_id = Some(f.datapath_id);
                        self.phase = Phase::Ready;
                        let version = self.version.unwrap_or(Version::Of15);
                        debug!(dpid = format_args!("{:016x}", f.datapath_id), %version, "OpenFlow handshake done");
                        self.events.push_back(Event::Connected {
                            version,
                            datapath_id: f.datapath_id,
                        });
                    }
                    _ => warn!(xid, "unexpected FEATURES_REPLY ignored"),
                }
                Ok(())
            }
            Message::PortStatus(ps) => {
                // Delivered even before FEATURES_REPLY: SET_CONFIG already switched them on,
                // and each is a real report that no PORT_DESC taken later would repeat.
                self.events.push_back(Event::PortStatus(ps));
                Ok(())
            }
            Message::MultipartReply(rep) => self.on_multipart_reply(xid, rep.more, rep.body),
            Message::BarrierReply => {
                if !self.on_batch_barrier_reply(xid) {
                    self.on_barrier_reply(xid);
                }
                Ok(())
            }
            Message::BundleControl(reply) => {
                self.on_bundle_control(xid, &reply);
                Ok(())
            }
            Message::Unknown { msg_type, .. } => {
                debug!(msg_type, xid, "skipping unknown OpenFlow message type");
                Ok(())
            }
            other => {
                debug!(
                    msg = other.name(),
                    xid, "skipping unexpected message from switch"
                );
                Ok(())
            }
        }
    }

    /// Asks for every port. The reply comes as `Event::Reply { xid, Reply::PortDesc }`.
    pub fn request_port_desc(&mut self) -> Result<u32, RequestError> {
        let xid = self.send_request(&Message::MultipartRequest(MultipartRequest::PortDesc {
            more: false,
        }))?;
        self.pending.push_back((xid, Pending::PortDesc(Vec::new())));
        Ok(xid)
    }

    /// Asks for the flows passing `request`'s filter. The reply, all parts assembled, comes as
    /// `Event::Reply { xid, Reply::FlowDesc }`, or fails with
    /// [`ReplyError::TooManyEntries`] past [`ConnConfig::max_flow_desc_entries`].
    pub fn request_flow_desc(&mut self, request: FlowDescRequest) -> Result<u32, RequestError> {
        let xid = self.send_request(&Message::MultipartRequest(MultipartRequest::FlowDesc(
            request,
        )))?;
        self.pending.push_back((xid, Pending::FlowDesc(Vec::new())));
        Ok(xid)
    }

    /// Applies `flow_mods` all at once or not at all, in one bundle (OpenFlow 1.5 only; in
    /// 1.3 this fails with an `UnsupportedVersion` encode error and sends nothing). The
    /// outcome comes as one `Event::Reply` under the returned xid: [`Reply::FlowModsCommitted`],
    /// or [`ReplyError::FlowModRejected`] naming the first rejected flow mod, or
    /// [`ReplyError::Switch`] when the bundle itself was refused.
    pub fn send_flow_mods_atomic(&mut self, flow_mods: &[FlowMod]) -> Result<u32, RequestError> {
        let version = self.ready_version()?;
        if version != Version::Of15 {
            return Err(RequestError::Encode(EncodeError::UnsupportedVersion {
                what: "BUNDLE_CONTROL",
                version: version.wire(),
            }));
        }
        let bundle_id = self.next_bundle_id;
        self.next_bundle_id = self.next_bundle_id.wrapping_add(1).max(1);
        let open = Message::BundleControl(BundleControl::new(
            bundle_id,
            BundleCtrlType::OpenRequest,
            BATCH_FLAGS,
        ));
        let request_xid = self.alloc_xid();
        let open = encode(&open, version.wire(), request_xid)?;
        let mut adds = Vec::with_capacity(flow_mods.len());
        let mut add_xids = Vec::with_capacity(flow_mods.len());
        for fm in flow_mods {
            let xid = self.alloc_xid();
            let add = Message::BundleAdd(BundleAdd::flow_mod(bundle_id, BATCH_FLAGS, fm.clone()));
            adds.push(encode(&add, version.wire(), xid)?);
            add_xids.push(xid);
        }
        self.transmit.push_back(open);
        self.batches.push(AtomicBatch {
            request_xid,
            bundle_id,
            step: BatchStep::Opening,
            awaiting: request_xid,
            adds,
            add_xids,
            rejected: None,
        });
        Ok(request_xid)
    }

    /// Sends a flow mod. It is confirmed (or failed) once a later barrier is answered; call
    /// [`Connection::fence`] after a batch so that barrier is sent.
    pub fn send_flow_mod(&mut self, flow_mod: &FlowMod) -> Result<u32, RequestError> {
        let xid = self.send_request(&Message::FlowMod(flow_mod.clone()))?;
        self.pending.push_back((xid, Pending::FlowMod));
        self.unfenced_flow_mods = true;
        Ok(xid)
    }

    /// Sends a barrier; its reply is `Event::Reply { xid, Reply::Barrier }`.
    pub fn request_barrier(&mut self) -> Result<u32, RequestError> {
        let xid = self.send_request(&Message::BarrierRequest)?;
        self.pending
            .push_back((xid, Pending::Barrier { automatic: false }));
        self.unfenced_flow_mods = false;
        Ok(xid)
    }

    /// Sends a barrier if flow mods were sent since the last one, so each gets confirmed.
    pub fn fence(&mut self) -> Result<(), RequestError> {
        if self.unfenced_flow_mods {
            let xid = self.send_request(&Message::BarrierRequest)?;
            self.pending
                .push_back((xid, Pending::Barrier { automatic: true }));
            self.unfenced_flow_mods = false;
        }
        Ok(())
    }

    /// The xids of requests still waiting (so a shell can fail them on close): single requests
    /// in send order, then atomic batches by their request xid.
    pub fn pending_xids(&self) -> impl Iterator<Item = u32> + '_ {
        self.pending
            .iter()
            .map(|(xid, _)| *xid)
            .chain(self.batches.iter().map(|b| b.request_xid))
    }

    fn ready_version(&self) -> Result<Version, RequestError> {
        match self.phase {
            Phase::Ready => self.version.ok_or(RequestError::NotReady),
            Phase::Closed => Err(RequestError::Closed),
            _ => Err(RequestError::NotReady),
        }
    }

    fn send_request(&mut self, msg: &Message) -> Result<u32, RequestError> {
        let version = self.ready_version()?;
        let xid = self.alloc_xid();
        let frame = encode(msg, version.wire(), xid)?;
        self.transmit.push_back(frame);
        Ok(xid)
    }

    fn alloc_xid(&mut self) -> u32 {
        let xid = self.next_xid;
        // Skip 0: OVS uses xid 0 for asynchronous messages.
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        xid
    }

    fn queue(&mut self, msg: &Message) {
        let v = self.version.map_or(Version::Of15.wire(), Version::wire);
        let xid = self.alloc_xid();
        self.queue_raw_xid(msg, v, xid);
    }

    fn queue_raw(&mut self, msg: &Message, version: u8) {
        let xid = self.alloc_xid();
        self.queue_raw_xid(msg, version, xid);
    }

    fn queue_raw_xid(&mut self, msg: &Message, version: u8, xid: u32) {
        match encode(msg, version, xid) {
            Ok(frame) => self.transmit.push_back(frame),
            // Only our own fixed-size control messages pass through here.
            Err(e) => warn!(error = %e, msg = msg.name(), "could not encode control message"),
        }
    }

    fn on_hello(&mut self, hello: &Hello, header_version: u8) -> Result<(), ConnError> {
        if !matches!(self.phase, Phase::AwaitHello) {
            debug!("ignoring a second HELLO");
            return Ok(());
        }
        let Some(version) = negotiate(&self.config.versions, hello, header_version) else {
            let ours = self
                .config
                .versions
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let theirs = bitmap_names(hello.peer_versions(header_version));
            let text = format!("podport supports OpenFlow {ours}; switch offers {theirs}");
            let err = Message::Error(ErrorMsg {
                err_type: 0,
                code: 0,
                data: Bytes::from(text.into_bytes()),
            });
            self.queue_raw(&err, header_version);
            return self.fail(ConnError::NoCommonVersion { ours, theirs });
        };
        self.version = Some(version);
        // SET_CONFIG first: OVS handles messages in order, so once FEATURES_REPLY arrives
        // asynchronous messages are already on and no PortStatus can slip past `Connected`.
        let config_xid = self.alloc_xid();
        self.queue_raw_xid(
            &Message::SetConfig(SwitchConfig {
                flags: 0,
                miss_send_len: self.config.miss_send_len,
            }),
            version.wire(),
            config_xid,
        );
        let features_xid = self.alloc_xid();
        self.queue_raw_xid(&Message::FeaturesRequest, version.wire(), features_xid);
        self.phase = Phase::AwaitFeatures {
            features_xid,
            config_xid,
        };
        Ok(())
    }

    fn on_error(&mut self, xid: u32, error: ErrorMsg) -> Result<(), ConnError> {
        const HELLO_FAILED: u16 = 0;
        match self.phase {
            Phase::AwaitHello | Phase::AwaitFeatures { .. } if error.err_type == HELLO_FAILED => {
                return self.fail(ConnError::HelloFailed(error));
            }
            Phase::AwaitFeatures {
                features_xid,
                config_xid,
            } if xid == features_xid || xid == config_xid => {
                let request = if xid == features_xid {
                    "FEATURES_REQUEST"
                } else {
                    "SET_CONFIG"
                };
                return self.fail(ConnError::HandshakeRejected { request, error });
            }
            _ => {}
        }
        let error = match self.on_batch_error(xid, error) {
            Some(error) => error,
            None => return Ok(()),
        };
        match self.pending.iter().position(|(x, _)| *x == xid) {
            Some(i) => {
                // A flow description that overflowed was already reported.
                if let Some((_, Pending::FlowDescOverflowed)) = self.pending.remove(i) {
                    debug!(xid, %error, "ERROR for an abandoned flow description");
                    return Ok(());
                }
                self.events.push_back(Event::Reply {
                    xid,
                    result: Err(ReplyError::Switch(error)),
                });
            }
            None => {
                warn!(xid, %error, "switch sent an ERROR for no pending request");
                self.events
                    .push_back(Event::UnsolicitedError { xid, error });
            }
        }
        Ok(())
    }

    fn on_multipart_reply(
        &mut self,
        xid: u32,
        more: bool,
        body: MultipartReplyBody,
    ) -> Result<(), ConnError> {
        let Some(i) = self.pending.iter().position(|(x, _)| *x == xid) else {
            warn!(xid, "MULTIPART_REPLY for no pending request ignored");
            return Ok(());
        };
        match body {
            MultipartReplyBody::PortDesc(ports) => self.on_port_desc_part(i, xid, more, ports),
            MultipartReplyBody::FlowDesc(entries) => {
                self.on_flow_desc_part(i, xid, more, entries);
                Ok(())
            }
            MultipartReplyBody::Other { mp_type, .. } => {
                warn!(xid, mp_type, "unexpected multipart reply type ignored");
                Ok(())
            }
        }
    }

    fn on_port_desc_part(
        &mut self,
        i: usize,
        xid: u32,
        more: bool,
        ports: Vec<Port>,
    ) -> Result<(), ConnError> {
        let max = self.config.max_port_desc_ports;
        let Some((_, Pending::PortDesc(acc))) = self.pending.get_mut(i) else {
            warn!(xid, "PORT_DESC reply for a request of another kind ignored");
            return Ok(());
        };
        if acc.len() + ports.len() > max {
            return self.fail(ConnError::TooManyPorts(max));
        }
        acc.extend(ports);
        if !more {
            if let Some((_, Pending::PortDesc(all))) = self.pending.remove(i) {
                self.events.push_back(Event::Reply {
                    xid,
                    result: Ok(Reply::PortDesc(all)),
                });
            }
        }
        Ok(())
    }

    fn on_flow_desc_part(&mut self, i: usize, xid: u32, more: bool, entries: Vec<FlowEntry>) {
        let limit = self.config.max_flow_desc_entries;
        match self.pending.get_mut(i) {
            Some((_, Pending::FlowDesc(acc))) => {
                if acc.len() + entries.len() > limit {
                    // Only this request fails: the connection and its other requests go on.
                    warn!(
                        xid,
                        limit, "flow description reply too long; dropping the rest"
                    );
                    self.pending[i].1 = Pending::FlowDescOverflowed;
                    self.events.push_back(Event::Reply {
                        xid,
                        result: Err(ReplyError::TooManyEntries { limit }),
                    });
                } else {
                    acc.extend(entries);
                }
            }
            Some((_, Pending::FlowDescOverflowed)) => {}
            _ => {
                warn!(
                    xid,
                    "flow description reply for a request of another kind ignored"
                );
                return;
            }
        }
        if !more {
            if let Some((_, Pending::FlowDesc(all))) = self.pending.remove(i) {
                self.events.push_back(Event::Reply {
                    xid,
                    result: Ok(Reply::FlowDesc(all)),
                });
            }
        }
    }

    /// Handles an ERROR that belongs to an atomic batch; gives the error back when it does not.
    fn on_batch_error(&mut self, xid: u32, error: ErrorMsg) -> Option<ErrorMsg> {
        let Some(i) = self
            .batches
            .iter()
            .position(|b| b.awaiting == xid || b.add_xids.contains(&xid))
        else {
            return Some(error);
        };
        let batch = &mut self.batches[i];
        if let Some(index) = batch.add_xids.iter().position(|x| *x == xid) {
            // A flow mod refused when added (the barrier decides what follows) or at commit
            // (BUNDLE_FAILED for the commit follows).
            debug!(xid, index, bundle_id = batch.bundle_id, %error, "bundled flow mod rejected");
            if batch
                .rejected
                .as_ref()
                .is_none_or(|(first, _)| index < *first)
            {
                batch.rejected = Some((index, error));
            }
            return None;
        }
        let result = match (batch.step, batch.rejected.take()) {
            (BatchStep::Committing | BatchStep::Discarding, Some((index, rejected))) => {
                ReplyError::FlowModRejected {
                    index,
                    error: rejected,
                }
            }
            (step, _) => {
                if step == BatchStep::Adding {
                    // The barrier itself failed: close the open bundle on a best-effort basis.
                    let bundle_id = batch.bundle_id;
                    self.queue(&Message::BundleControl(BundleControl::new(
                        bundle_id,
                        BundleCtrlType::DiscardRequest,
                        BATCH_FLAGS,
                    )));
                }
                ReplyError::Switch(error)
            }
        };
        self.finish_batch(i, Err(result));
        None
    }

    /// Moves a batch on when `xid` is the barrier sent after its adds; false otherwise.
    fn on_batch_barrier_reply(&mut self, xid: u32) -> bool {
        let Some(i) = self
            .batches
            .iter()
            .position(|b| b.awaiting == xid && b.step == BatchStep::Adding)
        else {
            return false;
        };
        let (bundle_id, rejected) = {
            let b = &self.batches[i];
            (b.bundle_id, b.rejected.is_some())
        };
        let (kind, step) = if rejected {
            (BundleCtrlType::DiscardRequest, BatchStep::Discarding)
        } else {
            (BundleCtrlType::CommitRequest, BatchStep::Committing)
        };
        let xid = self.alloc_xid();
        let msg = Message::BundleControl(BundleControl::new(bundle_id, kind, BATCH_FLAGS));
        self.queue_raw_xid(&msg, Version::Of15.wire(), xid);
        let b = &mut self.batches[i];
        b.step = step;
        b.awaiting = xid;
        true
    }

    fn on_bundle_control(&mut self, xid: u32, reply: &BundleControl) {
        let Some(i) = self.batches.iter().position(|b| b.awaiting == xid) else {
            debug!(xid, kind = ?reply.kind, "BUNDLE_CONTROL for no batch ignored");
            return;
        };
        let b = &mut self.batches[i];
        // While the adds are fenced, the switch owes us a BARRIER_REPLY, not a bundle reply.
        let expected = match b.step {
            BatchStep::Opening => Some(BundleCtrlType::OpenReply),
            BatchStep::Adding => None,
            BatchStep::Committing => Some(BundleCtrlType::CommitReply),
            BatchStep::Discarding => Some(BundleCtrlType::DiscardReply),
        };
        if expected != Some(reply.kind) || reply.bundle_id != b.bundle_id {
            let what = format!(
                "{:?} for bundle {} while waiting for {:?} for bundle {}",
                reply.kind, reply.bundle_id, expected, b.bundle_id
            );
            self.finish_batch(i, Err(ReplyError::Unexpected(what)));
            return;
        }
        match b.step {
            BatchStep::Opening => {
                let adds = std::mem::take(&mut b.adds);
                self.transmit.extend(adds);
                let barrier_xid = self.alloc_xid();
                self.queue_raw_xid(&Message::BarrierRequest, Version::Of15.wire(), barrier_xid);
                let b = &mut self.batches[i];
                b.step = BatchStep::Adding;
                b.awaiting = barrier_xid;
            }
            BatchStep::Committing => {
                let result = match b.rejected.take() {
                    None => Ok(Reply::FlowModsCommitted),
                    // OVS never does this (a failed commit ends with BUNDLE_FAILED); neither
                    // "applied" nor "nothing applied" can be told, so say what was seen.
                    Some((index, error)) => Err(ReplyError::Unexpected(format!(
                        "COMMIT_REPLY after an ERROR for flow mod #{index}: {error}"
                    ))),
                };
                self.finish_batch(i, result);
            }
            BatchStep::Discarding | BatchStep::Adding => {
                let result = match b.rejected.take() {
                    Some((index, error)) => ReplyError::FlowModRejected { index, error },
                    None => ReplyError::Unexpected("bundle discarded".into()),
                };
                self.finish_batch(i, Err(result));
            }
        }
    }

    fn finish_batch(&mut self, i: usize, result: Result<Reply, ReplyError>) {
        let b = self.batches.remove(i);
        self.events.push_back(Event::Reply {
            xid: b.request_xid,
            result,
        });
    }

    fn on_barrier_reply(&mut self, xid: u32) {
        let Some(i) = self.pending.iter().position(|(x, _)| *x == xid) else {
            warn!(xid, "BARRIER_REPLY for no pending barrier ignored");
            return;
        };
        // Everything sent before the barrier is done; flow mods that drew no ERROR applied.
        // Earlier PORT_DESC requests keep waiting: their replies may still be in flight.
        let mut kept = VecDeque::new();
        for (x, p) in self.pending.drain(..i) {
            match p {
                Pending::FlowMod => self.events.push_back(Event::Reply {
                    xid: x,
                    result: Ok(Reply::FlowModApplied),
                }),
                other => kept.push_back((x, other)),
            }
        }
        if let Some((_, Pending::Barrier { automatic })) = self.pending.pop_front() {
            if !automatic {
                self.events.push_back(Event::Reply {
                    xid,
                    result: Ok(Reply::Barrier),
                });
            }
        }
        kept.extend(self.pending.drain(..));
        self.pending = kept;
    }

    fn fail(&mut self, error: ConnError) -> Result<(), ConnError> {
        self.phase = Phase::Closed;
        Err(error)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::PortDesc(p) => write!(f, "PORT_DESC reply with {} ports", p.len()),
            Reply::FlowDesc(e) => write!(f, "flow description reply with {} flows", e.len()),
            Reply::FlowModsCommitted => f.write_str("atomic flow mods committed"),
            Reply::Barrier => f.write_str("BARRIER_REPLY"),
            Reply::FlowModApplied => f.write_str("flow mod applied"),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The core driven by hand-made switch frames and a virtual clock: no sockets.

    use super::*;
    use crate::message::{FeaturesReply, MultipartReply};
    use crate::port::PortReason;
    use crate::types::{PortState, Version};

    const DPID: u64 = 0x0000_c6b7_1f8c_d247;

    fn frame(msg: &Message, version: u8, xid: u32) -> BytesMut {
        encode(msg, version, xid).unwrap()
    }

    fn sent(conn: &mut Connection) -> Vec<(u8, u32, Message)> {
        std::iter::from_fn(|| conn.poll_transmit())
            .map(|f| {
                let (h, m) = decode(&f).unwrap();
                (h.version, h.xid, m)
            })
            .collect()
    }

    fn events(conn: &mut Connection) -> Vec<Event> {
        std::iter::from_fn(|| conn.poll_event()).collect()
    }

    /// A connection through HELLO and FEATURES_REPLY in `v`.
    fn ready(v: Version, now: Instant) -> Connection {
        let mut c = Connection::new(ConnConfig::default(), now);
        let hello = sent(&mut c);
        assert_eq!(hello.len(), 1);
        c.handle_frame(
            &frame(&Message::Hello(Hello::offering(&[v])), v.wire(), 1),
            now,
        )
        .unwrap();
        let out = sent(&mut c);
        let features_xid = out
            .iter()
            .find(|(_, _, m)| *m == Message::FeaturesRequest)
            .map(|(_, x, _)| *x)
            .expect("FEATURES_REQUEST sent");
        let reply = Message::FeaturesReply(FeaturesReply {
            datapath_id: DPID,
            n_buffers: 0,
            n_tables: 254,
            auxiliary_id: 0,
            capabilities: 0,
        });
        c.handle_frame(&frame(&reply, v.wire(), features_xid), now)
            .unwrap();
        assert!(c.is_ready());
        assert_eq!(
            events(&mut c),
            vec![Event::Connected {
                version: v,
                datapath_id: DPID
            }]
        );
        c
    }

    #[test]
    fn hello_offers_a_bitmap_and_config_precedes_features() {
        let now = Instant::now();
        let mut c = Connection::new(ConnConfig::default(), now);
        let out = sent(&mut c);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 0x06, "header carries our highest version");
        assert_eq!(
            out[0].2,
            Message::Hello(Hello {
                versions: Some(0x50)
            })
        );
        // OVS's HELLO for a default bridge: no bitmap, version 1.5 = "up to 1.5".
        c.handle_frame(
            &frame(&Message::Hello(Hello { versions: None }), 0x06, 9),
            now,
        )
        .unwrap();
        assert_eq!(c.version(), Some(Version::Of15));
        let out = sent(&mut c);
        let kinds: Vec<_> = out.iter().map(|(v, _, m)| (*v, m.name())).collect();
        assert_eq!(kinds, [(0x06, "SET_CONFIG"), (0x06, "FEATURES_REQUEST")]);
        assert_eq!(
            out[0].2,
            Message::SetConfig(SwitchConfig {
                flags: 0,
                miss_send_len: 0xffff
            })
        );
        assert_eq!(
            c.request_port_desc(),
            Err(RequestError::NotReady),
            "no requests before FEATURES_REPLY"
        );
    }

    #[test]
    fn no_common_version_answers_hello_failed_and_closes() {
        let now = Instant::now();
        let mut c = Connection::new(
            ConnConfig {
                versions: vec![Version::Of13],
                ..ConnConfig::default()
            },
            now,
        );
        sent(&mut c);
        // Antrea's bridge: protocols=OpenFlow10,OpenFlow15 (bitmap 0x42).
        let err = c
            .handle_frame(
                &frame(
                    &Message::Hello(Hello {
                        versions: Some(0x42),
                    }),
                    0x06,
                    1,
                ),
                now,
            )
            .unwrap_err();
        assert_eq!(
            err,
            ConnError::NoCommonVersion {
                ours: "1.3".into(),
                theirs: "1.0, 1.5".into()
            }
        );
        let out = sent(&mut c);
        match &out[..] {
            [(_, _, Message::Error(e))] => {
                assert_eq!((e.err_type, e.code), (0, 0));
                assert!(e.text().unwrap().contains("1.3"));
            }
            other => panic!("expected HELLO_FAILED, got {other:?}"),
        }
        assert_eq!(c.poll_timeout(), None, "closed");
    }

    #[test]
    fn hello_failed_from_the_switch_is_fatal() {
        let now = Instant::now();
        let mut c = Connection::new(ConnConfig::default(), now);
        let e = ErrorMsg {
            err_type: 0,
            code: 0,
            data: Bytes::from_static(b"no version"),
        };
        let err = c
            .handle_frame(&frame(&Message::Error(e.clone()), 0x04, 0), now)
            .unwrap_err();
        assert_eq!(err, ConnError::HelloFailed(e));
    }

    #[test]
    fn answers_echo_requests_with_the_same_xid_and_data() {
        let now = Instant::now();
        let mut c = ready(Version::Of13, now);
        let data = Bytes::from_static(b"ping");
        c.handle_frame(&frame(&Message::EchoRequest(data.clone()), 0x04, 77), now)
            .unwrap();
        assert_eq!(sent(&mut c), vec![(0x04, 77, Message::EchoReply(data))]);
    }

    #[test]
    fn probes_when_idle_and_closes_when_the_probe_is_unanswered() {
        let t0 = Instant::now();
        let cfg = ConnConfig::default();
        let mut c = ready(Version::Of15, t0);
        assert_eq!(c.poll_timeout(), Some(t0 + cfg.echo_interval));
        c.handle_timeout(t0 + cfg.echo_interval / 2).unwrap();
        assert!(sent(&mut c).is_empty(), "not idle long enough");
        let t1 = t0 + cfg.echo_interval;
        c.handle_timeout(t1).unwrap();
        let out = sent(&mut c);
        assert!(
            matches!(&out[..], [(_, _, Message::EchoRequest(_))]),
            "{out:?}"
        );
        assert_eq!(c.poll_timeout(), Some(t1 + cfg.echo_timeout));
        let err = c.handle_timeout(t1 + cfg.echo_timeout).unwrap_err();
        assert!(matches!(err, ConnError::EchoTimeout(_)), "{err:?}");
    }

    #[test]
    fn any_message_from_the_switch_answers_a_probe() {
        let t0 = Instant::now();
        let cfg = ConnConfig::default();
        let mut c = ready(Version::Of15, t0);
        let t1 = t0 + cfg.echo_interval;
        c.handle_timeout(t1).unwrap();
        sent(&mut c);
        let t2 = t1 + cfg.echo_timeout / 2;
        c.handle_frame(&frame(&Message::BarrierReply, 0x06, 999), t2)
            .unwrap();
        // The old probe's deadline no longer applies; the next probe is due a full
        // interval after the last message.
        assert_eq!(c.poll_timeout(), Some(t2 + cfg.echo_interval));
        c.handle_timeout(t2 + Duration::from_secs(1)).unwrap();
        assert!(sent(&mut c).is_empty());
    }

    #[test]
    fn handshake_times_out() {
        let t0 = Instant::now();
        let cfg = ConnConfig::default();
        let mut c = Connection::new(cfg.clone(), t0);
        assert_eq!(c.poll_timeout(), Some(t0 + cfg.handshake_timeout));
        let err = c.handle_timeout(t0 + cfg.handshake_timeout).unwrap_err();
        assert_eq!(err, ConnError::HandshakeTimeout(cfg.handshake_timeout));
    }

    #[test]
    fn port_status_becomes_an_event() {
        let now = Instant::now();
        let mut c = ready(Version::Of13, now);
        let mut port = Port::new(5, "p4");
        port.state = PortState::LIVE;
        let ps = PortStatus {
            reason: PortReason::Modify,
            port,
        };
        c.handle_frame(&frame(&Message::PortStatus(ps.clone()), 0x04, 0), now)
            .unwrap();
        assert_eq!(events(&mut c), vec![Event::PortStatus(ps)]);
    }

    #[test]
    fn multipart_port_desc_is_assembled_under_one_xid() {
        let now = Instant::now();
        let mut c = ready(Version::Of15, now);
        let xid = c.request_port_desc().unwrap();
        let out = sent(&mut c);
        assert_eq!(
            out,
            vec![(
                0x06,
                xid,
                Message::MultipartRequest(MultipartRequest::PortDesc { more: false })
            )]
        );
        let part = |more, ports: Vec<Port>| {
            Message::MultipartReply(MultipartReply {
                more,
                body: MultipartReplyBody::PortDesc(ports),
            })
        };
        c.handle_frame(&frame(&part(true, vec![Port::new(1, "a")]), 0x06, xid), now)
            .unwrap();
        assert!(events(&mut c).is_empty(), "no reply before the last part");
        // A stray reply for another xid changes nothing.
        c.handle_frame(
            &frame(&part(false, vec![Port::new(9, "x")]), 0x06, xid + 100),
            now,
        )
        .unwrap();
        c.handle_frame(
            &frame(
                &part(false, vec![Port::new(2, "b"), Port::new(3, "c")]),
                0x06,
                xid,
            ),
            now,
        )
        .unwrap();
        match &events(&mut c)[..] {
            [Event::Reply {
                xid: x,
                result: Ok(Reply::PortDesc(ports)),
            }] => {
                assert_eq!(*x, xid);
                let names: Vec<_> = ports.iter().map(|p| p.name.as_str()).collect();
                assert_eq!(names, ["a", "b", "c"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.pending_requests(), 0);
    }

    #[test]
    fn an_endless_multipart_reply_is_cut_off() {
        let now = Instant::now();
        let mut c = Connection::new(
            ConnConfig {
                max_port_desc_ports: 3,
                ..ConnConfig::default()
            },
            now,
        );
        sent(&mut c);
        c.handle_frame(
            &frame(&Message::Hello(Hello { versions: None }), 0x04, 1),
            now,
        )
        .unwrap();
        let fx = sent(&mut c)[1].1;
        let reply = Message::FeaturesReply(FeaturesReply {
            datapath_id: 1,
            n_buffers: 0,
            n_tables: 1,
            auxiliary_id: 0,
            capabilities: 0,
        });
        c.handle_frame(&frame(&reply, 0x04, fx), now).unwrap();
        let xid = c.request_port_desc().unwrap();
        let part = Message::MultipartReply(MultipartReply {
            more: true,
            body: MultipartReplyBody::PortDesc(vec![Port::new(1, "a"), Port::new(2, "b")]),
        });
        c.handle_frame(&frame(&part, 0x04, xid), now).unwrap();
        let err = c.handle_frame(&frame(&part, 0x04, xid), now).unwrap_err();
        assert_eq!(err, ConnError::TooManyPorts(3));
    }

    #[test]
    fn a_barrier_confirms_the_flow_mods_before_it_and_errors_name_theirs() {
        let now = Instant::now();
        let mut c = ready(Version::Of13, now);
        let good = c.send_flow_mod(&FlowMod::add(0)).unwrap();
        let bad = c.send_flow_mod(&FlowMod::add(1).goto_table(0)).unwrap();
        let desc = c.request_port_desc().unwrap();
        c.fence().unwrap();
        let out = sent(&mut c);
        let names: Vec<_> = out.iter().map(|(_, _, m)| m.name()).collect();
        assert_eq!(
            names,
            [
                "FLOW_MOD",
                "FLOW_MOD",
                "MULTIPART_REQUEST",
                "BARRIER_REQUEST"
            ]
        );
        let barrier = out[3].1;
        c.fence().unwrap();
        assert!(sent(&mut c).is_empty(), "one barrier per batch");

        let error = ErrorMsg {
            err_type: 3,
            code: 2,
            data: Bytes::new(),
        };
        c.handle_frame(&frame(&Message::Error(error.clone()), 0x04, bad), now)
            .unwrap();
        c.handle_frame(&frame(&Message::BarrierReply, 0x04, barrier), now)
            .unwrap();
        assert_eq!(
            events(&mut c),
            vec![
                Event::Reply {
                    xid: bad,
                    result: Err(ReplyError::Switch(error))
                },
                Event::Reply {
                    xid: good,
                    result: Ok(Reply::FlowModApplied)
                },
            ],
            "the automatic barrier itself is not reported"
        );
        // The PORT_DESC sent before the barrier still waits for its own reply.
        assert_eq!(c.pending_xids().collect::<Vec<_>>(), vec![desc]);
    }

    #[test]
    fn an_explicit_barrier_is_reported() {
        let now = Instant::now();
        let mut c = ready(Version::Of15, now);
        let xid = c.request_barrier().unwrap();
        sent(&mut c);
        c.handle_frame(&frame(&Message::BarrierReply, 0x06, xid), now)
            .unwrap();
        assert_eq!(
            events(&mut c),
            vec![Event::Reply {
                xid,
                result: Ok(Reply::Barrier)
            }]
        );
    }

    #[test]
    fn an_error_for_nothing_pending_is_unsolicited() {
        let now = Instant::now();
        let mut c = ready(Version::Of15, now);
        let error = ErrorMsg {
            err_type: 1,
            code: 6,
            data: Bytes::new(),
        };
        c.handle_frame(&frame(&Message::Error(error.clone()), 0x06, 4242), now)
            .unwrap();
        assert_eq!(
            events(&mut c),
            vec![Event::UnsolicitedError { xid: 4242, error }]
        );
    }

    #[test]
    fn a_message_in_another_version_after_negotiation_is_fatal() {
        let now = Instant::now();
        let mut c = ready(Version::Of15, now);
        let ps = PortStatus {
            reason: PortReason::Add,
            port: Port::new(1, "p"),
        };
        let err = c
            .handle_frame(&frame(&Message::PortStatus(ps), 0x04, 0), now)
            .unwrap_err();
        assert_eq!(
            err,
            ConnError::VersionMismatch {
                expected: Version::Of15,
                got: "1.3".into()
            }
        );
        assert_eq!(
            c.request_barrier(),
            Err(RequestError::Closed),
            "closed after a fatal error"
        );
    }

    #[test]
    fn bad_bytes_are_a_typed_error_not_a_panic() {
        let now = Instant::now();
        let mut c = ready(Version::Of13, now);
        // A PORT_STATUS whose ofp_port is cut short.
        let mut f = frame(
            &Message::PortStatus(PortStatus {
                reason: PortReason::Add,
                port: Port::new(1, "p"),
            }),
            0x04,
            0,
        );
        f.truncate(40);
        f[2..4].copy_from_slice(&40u16.to_be_bytes());
        let err = c.handle_frame(&f, now).unwrap_err();
        assert!(
            matches!(err, ConnError::Decode { ref msg, .. } if msg == "PORT_STATUS"),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_messages_are_skipped() {
        let now = Instant::now();
        let mut c = ready(Version::Of13, now);
        let unknown = Message::Unknown {
            msg_type: 99,
            body: Bytes::from_static(&[1, 2, 3]),
        };
        c.handle_frame(&frame(&unknown, 0x04, 5), now).unwrap();
        assert!(events(&mut c).is_empty());
        assert!(c.is_ready());
    }

    #[test]
    fn xids_are_never_zero_and_wrap() {
        let now = Instant::now();
        let mut c = ready(Version::Of13, now);
        c.next_xid = u32::MAX;
        assert_eq!(c.request_barrier().unwrap(), u32::MAX);
        assert_eq!(c.request_barrier().unwrap(), 1);
    }
}
