//! A thin async client over the sans-IO [`Connection`] of `podport-openflow`: one task (the
//! shared driver of this crate) owns the transport and the protocol core, reconnects with
//! backoff, and serves requests from cloneable [`OfClient`] handles.
//!
//! Events ([`ClientEvent`]) go out on a bounded channel (`DriverOptions::event_capacity`), and
//! the read loop never waits for the consumer (echo replies keep flowing whatever the consumer
//! does). When the channel is full, a PortStatus is dropped and counted, and as soon as there
//! is room again the client takes a PORT_DESC, delivered in stream order: the consumer gets the
//! truth back instead of an unbounded backlog. Connection events (`Connected`, `Disconnected`,
//! `PortDesc`) are never dropped: they wait in a small backlog (at most
//! [`MAX_EVENT_BACKLOG`]; past it only the latest connection change is kept, since each one
//! supersedes the ones before it).
//! Requests made while no connection is up fail at once with [`ClientError::NotConnected`]:
//! after a switch restart every flow is gone, so replaying stale requests would be wrong; the
//! caller reinstalls from its own state on `Connected`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use podport_openflow::conn::{
    ConnConfig, ConnError, Connection, Event, Reply, ReplyError, RequestError,
};
use podport_openflow::{
    EncodeError, ErrorMsg, FlowDescRequest, FlowEntry, FlowMod, FrameError, OfFramer, Port,
    PortStatus, Version,
};
use podport_transport::Endpoint;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, info_span, warn};

pub use crate::driver::DriverOptions;
pub use crate::driver::MAX_EVENT_BACKLOG;
use crate::driver::{self, EventSink, Link, LinkError, Requests, SinkEvent, Stopped};

/// Settings of a client.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    pub conn: ConnConfig,
    /// Reconnect, write timeout, and the bound of the event channel (see the module
    /// documentation for what happens when it is full).
    pub driver: DriverOptions,
    /// Take PORT_DESC right after every handshake and deliver it as
    /// [`ClientEvent::PortDesc`], ordered with the PortStatus events around it.
    pub port_desc_on_connect: bool,
}

impl ClientOptions {
    /// Options offering only `version`.
    pub fn with_versions(versions: &[Version]) -> ClientOptions {
        let mut o = ClientOptions::default();
        o.conn.versions = versions.to_vec();
        o
    }
}

/// Why a connection ended (or could not start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectReason {
    #[error("cannot connect: {0}")]
    ConnectFailed(String),
    #[error(transparent)]
    Protocol(#[from] ConnError),
    #[error("the switch closed the connection")]
    PeerClosed,
    #[error("I/O error: {0}")]
    Io(String),
    #[error("a write made no progress for {0:?}")]
    WriteStalled(Duration),
}

/// What the client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    Connected {
        version: Version,
        datapath_id: u64,
    },
    PortStatus(PortStatus),
    /// A PORT_DESC reply, in stream order: every PortStatus before it is older than the list,
    /// every one after it newer. Sent after each `Connected` when
    /// [`ClientOptions::port_desc_on_connect`] is set, and for
    /// [`OfClient::request_port_desc_event`].
    PortDesc(Result<Vec<Port>, ClientError>),
    Disconnected {
        reason: DisconnectReason,
    },
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("not connected to the switch")]
    NotConnected,
    #[error("connection lost before the reply: {0}")]
    Disconnected(DisconnectReason),
    #[error("switch answered with an error: {0}")]
    Rejected(ErrorMsg),
    /// From [`OfClient::flow_mods`]: the others may have applied. From
    /// [`OfClient::flow_mods_atomic`] over 1.5: none of the batch applied.
    #[error("switch rejected flow mod #{index} of the batch: {error}")]
    FlowModRejected { index: usize, error: ErrorMsg },
    /// A multi-part reply had more entries than the connection's bound allows.
    #[error("the reply has more than {limit} entries")]
    TooManyEntries { limit: usize },
    /// The switch answered with something that does not fit the request.
    #[error("unexpected reply from the switch: {0}")]
    UnexpectedReply(String),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("the client task has stopped")]
    Stopped,
}

enum Command {
    PortDesc(oneshot::Sender<Result<Vec<Port>, ClientError>>),
    PortDescEvent,
    FlowMods(Vec<FlowMod>, oneshot::Sender<Result<(), ClientError>>),
    FlowModsAtomic(Vec<FlowMod>, oneshot::Sender<Result<(), ClientError>>),
    FlowDesc(
        FlowDescRequest,
        oneshot::Sender<Result<Vec<FlowEntry>, ClientError>>,
    ),
    Barrier(oneshot::Sender<Result<(), ClientError>>),
}

/// A handle to the client task. Cloneable; the task stops when every handle is dropped.
#[derive(Clone)]
pub struct OfClient {
    requests: Requests<Command>,
}

/// The receiving end of the client's events (bounded: see the module documentation).
pub type EventReceiver = mpsc::Receiver<ClientEvent>;

impl OfClient {
    /// Starts a client task for `endpoint` on the current tokio runtime. It connects at once
    /// and keeps reconnecting until every handle is dropped.
    pub fn start(endpoint: Endpoint, options: ClientOptions) -> (OfClient, EventReceiver) {
        let span = info_span!("openflow", endpoint = %endpoint);
        let (requests, ev_rx) = driver::start(endpoint, options.driver, span, move |now| OfLink {
            conn: Connection::new(options.conn.clone(), now),
            waiters: Waiters::default(),
            port_desc_on_connect: options.port_desc_on_connect,
            ready: false,
        });
        (OfClient { requests }, ev_rx)
    }

    /// Every port of the switch (PORT_DESC, all parts assembled).
    pub async fn port_desc(&self) -> Result<Vec<Port>, ClientError> {
        self.requests.call(Command::PortDesc).await
    }

    /// Asks for PORT_DESC; the reply arrives as [`ClientEvent::PortDesc`] in the event stream,
    /// in order with PortStatus (a list taken with [`OfClient::port_desc`] cannot be ordered
    /// against the events received around it).
    pub fn request_port_desc_event(&self) -> Result<(), ClientError> {
        self.requests.send(Command::PortDescEvent)
    }

    /// Sends one flow mod and waits until a barrier confirms it (or its ERROR arrives).
    pub async fn flow_mod(&self, flow_mod: FlowMod) -> Result<(), ClientError> {
        self.flow_mods(vec![flow_mod]).await.map_err(|e| match e {
            ClientError::FlowModRejected { error, .. } => ClientError::Rejected(error),
            other => other,
        })
    }

    /// Sends flow mods back to back and waits until all are confirmed by one barrier. The
    /// first rejected one is reported with its index; the others may still have applied.
    pub async fn flow_mods(&self, flow_mods: Vec<FlowMod>) -> Result<(), ClientError> {
        if flow_mods.is_empty() {
            return Ok(());
        }
        self.requests
            .call(|tx| Command::FlowMods(flow_mods, tx))
            .await
    }

    /// Applies `flow_mods` all at once or not at all.
    ///
    /// Over OpenFlow 1.5 they go in one bundle (ATOMIC | ORDERED): if the switch rejects any,
    /// the call fails with [`ClientError::FlowModRejected`] naming the first rejected one (or
    /// [`ClientError::Rejected`] when the bundle itself is refused) and none is applied.
    /// Over 1.3, which has no bundles, this is [`OfClient::flow_mods`]: one batch fenced by a
    /// barrier, *not* atomic (the flow mods other than a rejected one may have applied).
    pub async fn flow_mods_atomic(&self, flow_mods: Vec<FlowMod>) -> Result<(), ClientError> {
        if flow_mods.is_empty() {
            return Ok(());
        }
        self.requests
            .call(|tx| Command::FlowModsAtomic(flow_mods, tx))
            .await
    }

    /// The installed flows that pass `request`'s filter (flow statistics in 1.3, flow
    /// descriptions in 1.5; all parts assembled, in the switch's order).
    pub async fn flow_desc(&self, request: FlowDescRequest) -> Result<Vec<FlowEntry>, ClientError> {
        self.requests
            .call(|tx| Command::FlowDesc(request, tx))
            .await
    }

    /// Sends a barrier and waits for its reply.
    pub async fn barrier(&self) -> Result<(), ClientError> {
        self.requests.call(Command::Barrier).await
    }
}

/// Where a reply goes.
enum Waiter {
    PortDesc(oneshot::Sender<Result<Vec<Port>, ClientError>>),
    PortDescEvent,
    Barrier(oneshot::Sender<Result<(), ClientError>>),
    BatchMember { batch: u64, index: usize },
    FlowDesc(oneshot::Sender<Result<Vec<FlowEntry>, ClientError>>),
    Atomic(oneshot::Sender<Result<(), ClientError>>),
}

struct Batch {
    remaining: usize,
    first_error: Option<(usize, ReplyError)>,
    tx: oneshot::Sender<Result<(), ClientError>>,
}

#[derive(Default)]
struct Waiters {
    by_xid: HashMap<u32, Waiter>,
    batches: HashMap<u64, Batch>,
    next_batch: u64,
}

impl Waiters {
    fn complete(
        &mut self,
        xid: u32,
        result: Result<Reply, ReplyError>,
        events: &mut EventSink<ClientEvent>,
    ) {
        let Some(waiter) = self.by_xid.remove(&xid) else {
            debug!(xid, "reply for a request nobody waits on");
            return;
        };
        match (waiter, result) {
            (Waiter::PortDesc(tx), Ok(Reply::PortDesc(ports))) => {
                let _ = tx.send(Ok(ports));
            }
            (Waiter::PortDescEvent, result) => {
                let r = match result {
                    Ok(Reply::PortDesc(ports)) => Ok(ports),
                    Ok(other) => Err(ClientError::Disconnected(DisconnectReason::Io(format!(
                        "unexpected reply: {other}"
                    )))),
                    Err(e) => Err(reply_error(e)),
                };
                events.send(ClientEvent::PortDesc(r));
            }
            (Waiter::PortDesc(tx), Err(e)) => {
                let _ = tx.send(Err(reply_error(e)));
            }
            (Waiter::Barrier(tx), Ok(_)) => {
                let _ = tx.send(Ok(()));
            }
            (Waiter::Barrier(tx), Err(e)) => {
                let _ = tx.send(Err(reply_error(e)));
            }
            (Waiter::FlowDesc(tx), result) => {
                let _ = tx.send(match result {
                    Ok(Reply::FlowDesc(entries)) => Ok(entries),
                    Ok(other) => Err(ClientError::UnexpectedReply(other.to_string())),
                    Err(e) => Err(reply_error(e)),
                });
            }
            (Waiter::Atomic(tx), result) => {
                let _ = tx.send(match result {
                    Ok(Reply::FlowModsCommitted) => Ok(()),
                    Ok(other) => Err(ClientError::UnexpectedReply(other.to_string())),
                    Err(e) => Err(reply_error(e)),
                });
            }
            (Waiter::BatchMember { batch, index }, result) => {
                let Some(b) = self.batches.get_mut(&batch) else {
                    return;
                };
                b.remaining -= 1;
                if let Err(e) = result {
                    if b.first_error.as_ref().is_none_or(|(i, _)| index < *i) {
                        b.first_error = Some((index, e));
                    }
                }
                if b.remaining == 0 {
                    if let Some(b) = self.batches.remove(&batch) {
                        let _ = b.tx.send(match b.first_error {
                            None => Ok(()),
                            Some((index, ReplyError::Switch(error))) => {
                                Err(ClientError::FlowModRejected { index, error })
                            }
                            Some((_, other)) => Err(reply_error(other)),
                        });
                    }
                }
            }
            (Waiter::PortDesc(tx), Ok(other)) => {
                let _ = tx.send(Err(ClientError::Disconnected(DisconnectReason::Io(
                    format!("unexpected reply: {other}"),
                ))));
            }
        }
    }

    fn fail_all(&mut self, reason: &DisconnectReason) {
        for (_, w) in self.by_xid.drain() {
            let err = Err(ClientError::Disconnected(reason.clone()));
            match w {
                Waiter::PortDesc(tx) => {
                    let _ = tx.send(Err(ClientError::Disconnected(reason.clone())));
                }
                // The Disconnected event that follows says it all.
                Waiter::PortDescEvent => {}
                Waiter::Barrier(tx) | Waiter::Atomic(tx) => {
                    let _ = tx.send(err);
                }
                Waiter::FlowDesc(tx) => {
                    let _ = tx.send(Err(ClientError::Disconnected(reason.clone())));
                }
                Waiter::BatchMember { .. } => {}
            }
        }
        for (_, b) in self.batches.drain() {
            let _ = b.tx.send(Err(ClientError::Disconnected(reason.clone())));
        }
    }
}

impl From<LinkError> for DisconnectReason {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::ConnectFailed(what) => DisconnectReason::ConnectFailed(what),
            LinkError::PeerClosed => DisconnectReason::PeerClosed,
            LinkError::Io(what) => DisconnectReason::Io(what),
            LinkError::WriteStalled(after) => DisconnectReason::WriteStalled(after),
        }
    }
}

impl Stopped for ClientError {
    fn stopped() -> Self {
        ClientError::Stopped
    }
}

impl SinkEvent for ClientEvent {
    const DROPPING: &'static str = "dropping PortStatus until there is room, then taking PORT_DESC";

    fn is_droppable(&self) -> bool {
        matches!(self, ClientEvent::PortStatus(_))
    }

    fn outlives_overflow(&self) -> bool {
        matches!(self, ClientEvent::Disconnected { .. })
    }
}

/// One OpenFlow connection: the protocol core and who waits for which reply.
struct OfLink {
    conn: Connection,
    waiters: Waiters,
    port_desc_on_connect: bool,
    /// The handshake finished on this connection.
    ready: bool,
}

impl Link for OfLink {
    type Command = Command;
    type Event = ClientEvent;
    type Reason = DisconnectReason;
    const NAME: &'static str = "OpenFlow";

    fn handle_input(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), DisconnectReason> {
        loop {
            match OfFramer.decode(buf) {
                Ok(Some(frame)) => self.conn.handle_frame(&frame, now)?,
                Ok(None) => return Ok(()),
                Err(e @ FrameError::BadLength { .. }) => {
                    return Err(DisconnectReason::Protocol(ConnError::Frame(e.to_string())))
                }
            }
        }
    }

    fn handle_command(&mut self, cmd: Command, events: &mut EventSink<ClientEvent>) {
        handle_command(&mut self.conn, &mut self.waiters, cmd, events);
    }

    /// One barrier fences the whole burst of flow mods.
    fn commands_done(&mut self) {
        if let Err(e) = self.conn.fence() {
            warn!(error = %e, "could not send the barrier that confirms flow mods");
        }
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DisconnectReason> {
        Ok(self.conn.handle_timeout(now)?)
    }

    fn poll_events(&mut self, events: &mut EventSink<ClientEvent>) -> Result<(), DisconnectReason> {
        while let Some(ev) = self.conn.poll_event() {
            match ev {
                Event::Connected {
                    version,
                    datapath_id,
                } => {
                    self.ready = true;
                    info!(%version, dpid = format_args!("{datapath_id:016x}"), "connected to switch");
                    events.send(ClientEvent::Connected {
                        version,
                        datapath_id,
                    });
                    if self.port_desc_on_connect {
                        // Asked now, so its reply lands in the stream right where it belongs.
                        self.handle_command(Command::PortDescEvent, events);
                    }
                }
                Event::PortStatus(ps) => events.send(ClientEvent::PortStatus(ps)),
                Event::Reply { xid, result } => self.waiters.complete(xid, result, events),
                Event::UnsolicitedError { xid, error } => {
                    warn!(xid, %error, "switch reported an error for no pending request")
                }
            }
        }
        Ok(())
    }

    fn resync(&mut self, events: &mut EventSink<ClientEvent>) -> Result<(), DisconnectReason> {
        if self.conn.is_ready() {
            warn!(
                dropped = events.take_dropped(),
                "event channel has room again; taking PORT_DESC for the PortStatus dropped"
            );
            self.handle_command(Command::PortDescEvent, events);
        } else {
            // The handshake's own PORT_DESC (or this, once ready) pays it.
            events.owe();
        }
        Ok(())
    }

    fn poll_transmit(&mut self, out: &mut BytesMut) {
        while let Some(frame) = self.conn.poll_transmit() {
            out.extend_from_slice(&frame);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.conn.poll_timeout()
    }

    fn reached_ready(&self) -> bool {
        self.ready
    }

    fn fail_all(&mut self, reason: &DisconnectReason) {
        self.waiters.fail_all(reason);
    }

    fn refuse(cmd: Command) {
        match cmd {
            Command::PortDesc(tx) => {
                let _ = tx.send(Err(ClientError::NotConnected));
            }
            // The next connection's `Connected` is the cue to ask again.
            Command::PortDescEvent => {}
            Command::FlowMods(_, tx) | Command::FlowModsAtomic(_, tx) | Command::Barrier(tx) => {
                let _ = tx.send(Err(ClientError::NotConnected));
            }
            Command::FlowDesc(_, tx) => {
                let _ = tx.send(Err(ClientError::NotConnected));
            }
        }
    }

    fn disconnected(reason: DisconnectReason) -> ClientEvent {
        ClientEvent::Disconnected { reason }
    }
}

fn reply_error(e: ReplyError) -> ClientError {
    match e {
        ReplyError::Switch(error) => ClientError::Rejected(error),
        ReplyError::FlowModRejected { index, error } => {
            ClientError::FlowModRejected { index, error }
        }
        ReplyError::TooManyEntries { limit } => ClientError::TooManyEntries { limit },
        ReplyError::Unexpected(what) => ClientError::UnexpectedReply(what),
    }
}

fn request_error(e: RequestError) -> ClientError {
    match e {
        RequestError::NotReady | RequestError::Closed => ClientError::NotConnected,
        RequestError::Encode(e) => ClientError::Encode(e),
    }
}

fn handle_command(
    conn: &mut Connection,
    waiters: &mut Waiters,
    cmd: Command,
    events: &mut EventSink<ClientEvent>,
) {
    match cmd {
        Command::PortDescEvent => match conn.request_port_desc() {
            Ok(xid) => {
                // This list is the truth a resync would bring.
                events.paid();
                waiters.by_xid.insert(xid, Waiter::PortDescEvent);
            }
            Err(e) => {
                events.send(ClientEvent::PortDesc(Err(request_error(e))));
            }
        },
        Command::PortDesc(tx) => match conn.request_port_desc() {
            Ok(xid) => {
                waiters.by_xid.insert(xid, Waiter::PortDesc(tx));
            }
            Err(e) => {
                let _ = tx.send(Err(request_error(e)));
            }
        },
        Command::Barrier(tx) => match conn.request_barrier() {
            Ok(xid) => {
                waiters.by_xid.insert(xid, Waiter::Barrier(tx));
            }
            Err(e) => {
                let _ = tx.send(Err(request_error(e)));
            }
        },
        Command::FlowDesc(request, tx) => match conn.request_flow_desc(request) {
            Ok(xid) => {
                waiters.by_xid.insert(xid, Waiter::FlowDesc(tx));
            }
            Err(e) => {
                let _ = tx.send(Err(request_error(e)));
            }
        },
        Command::FlowModsAtomic(flow_mods, tx) if conn.version() == Some(Version::Of15) => {
            match conn.send_flow_mods_atomic(&flow_mods) {
                Ok(xid) => {
                    waiters.by_xid.insert(xid, Waiter::Atomic(tx));
                }
                Err(e) => {
                    let _ = tx.send(Err(request_error(e)));
                }
            }
        }
        // 1.3 has no bundles: one batch fenced by a barrier, not atomic (see the method).
        Command::FlowModsAtomic(flow_mods, tx) | Command::FlowMods(flow_mods, tx) => {
            send_batch(conn, waiters, &flow_mods, tx)
        }
    }
}

/// Sends flow mods back to back; the barrier that `fence` adds confirms them all.
fn send_batch(
    conn: &mut Connection,
    waiters: &mut Waiters,
    flow_mods: &[FlowMod],
    tx: oneshot::Sender<Result<(), ClientError>>,
) {
    let batch = waiters.next_batch;
    waiters.next_batch += 1;
    let mut sent = 0;
    for (index, fm) in flow_mods.iter().enumerate() {
        match conn.send_flow_mod(fm) {
            Ok(xid) => {
                waiters
                    .by_xid
                    .insert(xid, Waiter::BatchMember { batch, index });
                sent += 1;
            }
            Err(e) => {
                // The ones already sent stay tracked but nobody waits on them.
                for xid in waiters
                    .by_xid
                    .iter()
                    .filter(
                        |(_, w)| matches!(w, Waiter::BatchMember { batch: b, .. } if *b == batch),
                    )
                    .map(|(x, _)| *x)
                    .collect::<Vec<_>>()
                {
                    waiters.by_xid.remove(&xid);
                }
                let _ = tx.send(Err(request_error(e)));
                return;
            }
        }
    }
    waiters.batches.insert(
        batch,
        Batch {
            remaining: sent,
            first_error: None,
            tx,
        },
    );
}
