//! The async OVSDB client: one task owns the transport, the [`Session`], the schema and the
//! monitor [`Replica`]; cloneable [`OvsdbClient`] handles send it requests.
//!
//! On every (re)connect the task fetches the schema, checks that the tables and columns podport
//! needs exist, sets up `monitor_cond` (or `monitor` where the server lacks it) on the rows
//! podport uses, and delivers the full typed [`Snapshot`] before any change, so a consumer can
//! reconcile what changed while it was away. Requests fail at once with
//! [`OvsdbError::NotConnected`] while no session is up; pending ones fail with
//! [`OvsdbError::Disconnected`] when it drops.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use podport_ovsdb::conn::{Session, SessionConfig, SessionError, SessionEvent};
use podport_ovsdb::datum::Uuid;
use podport_ovsdb::replica::{ChangeKind, Replica, Row, RowChange};
use podport_ovsdb::rows::{BridgeRow, InterfaceRow, PortRow, RowError};
use podport_ovsdb::schema::{DbSchema, SchemaError, REQUIRED};
use podport_ovsdb::splitter::JsonSplitter;
use podport_transport::Endpoint;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, info_span, warn};

pub use crate::driver::DriverOptions;
pub use crate::driver::MAX_EVENT_BACKLOG;
use crate::driver::{self, EventSink, Link, LinkError, Requests, SinkEvent, Stopped};

pub mod ops;

/// The monitor id podport uses.
const MONITOR_ID: &str = "podport";

/// Settings of a client.
#[derive(Clone, Debug)]
pub struct OvsdbOptions {
    /// The database: `Open_vSwitch`.
    pub db: String,
    pub session: SessionConfig,
    /// The largest JSON message accepted from the server.
    pub max_message_len: usize,
    /// Reconnect, write timeout, and the bound of the event channel. When the channel is
    /// full an `InterfaceChanged` is dropped, and once there is room a whole `Snapshot` from
    /// the replica replaces what was dropped; `Connected`/`Disconnected` wait in a backlog of
    /// at most [`MAX_EVENT_BACKLOG`] (past it only the latest connection change is kept).
    pub driver: DriverOptions,
}

impl Default for OvsdbOptions {
    fn default() -> Self {
        OvsdbOptions {
            db: "Open_vSwitch".into(),
            session: SessionConfig::default(),
            max_message_len: JsonSplitter::DEFAULT_MAX_LEN,
            driver: DriverOptions::default(),
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DisconnectReason {
    #[error("cannot connect: {0}")]
    ConnectFailed(String),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("bad bytes from the OVSDB server: {0}")]
    Framing(String),
    #[error("the OVSDB server closed the connection")]
    PeerClosed,
    #[error("I/O error: {0}")]
    Io(String),
    #[error("a write made no progress for {0:?}")]
    WriteStalled(Duration),
    #[error("the server's schema does not fit podport: {0}")]
    Schema(#[from] SchemaError),
    #[error("setting up the monitor failed: {0}")]
    Monitor(String),
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OvsdbError {
    #[error("not connected to the OVSDB server")]
    NotConnected,
    #[error("connection lost before the reply: {0}")]
    Disconnected(DisconnectReason),
    #[error("the OVSDB server answered with an error: {0}")]
    Server(Value),
    #[error("operation #{index} ({op}) failed: {error}{}", details.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    OpFailed {
        index: usize,
        op: String,
        error: String,
        details: Option<String>,
    },
    #[error("OVSDB \"wait\" for {what} timed out after {after:?}: {details}")]
    WaitTimedOut {
        what: String,
        after: Duration,
        details: String,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error("interface {name} failed: ofport -1, error {error:?}")]
    InterfaceFailed { name: String, error: Option<String> },
    #[error("{name} is already used by another Pod (container {owner})")]
    NameTaken { name: String, owner: String },
    #[error("{name} is an OVS port podport did not create (no external_ids:podport-owner); it is left alone")]
    NotOurs { name: String },
    #[error(transparent)]
    Row(#[from] RowError),
    #[error("unexpected reply: {0}")]
    Unexpected(String),
    #[error("the client task has stopped")]
    Stopped,
}

impl OvsdbError {
    /// Whether asking again can succeed: the server was away or slow, or a row it needs
    /// (the bridge) may appear. False when the same request would be refused again: the
    /// name belongs to another container, the server refused the transaction (constraint
    /// or referential integrity violation, syntax error), or a row did not have its schema.
    pub fn is_transient(&self) -> bool {
        match self {
            OvsdbError::NotConnected
            | OvsdbError::Disconnected(_)
            | OvsdbError::WaitTimedOut { .. }
            | OvsdbError::NotFound(_)
            | OvsdbError::InterfaceFailed { .. }
            | OvsdbError::Unexpected(_)
            | OvsdbError::Stopped => true,
            // A `wait` with timeout 0 fails with "timed out" when its condition is false
            // now: that is the bridge missing, which may change.
            OvsdbError::OpFailed { error, .. } => error == "timed out",
            OvsdbError::Server(_)
            | OvsdbError::NameTaken { .. }
            | OvsdbError::NotOurs { .. }
            | OvsdbError::Row(_) => false,
        }
    }
}

/// The monitored rows podport uses, typed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub bridges: Vec<BridgeRow>,
    pub ports: Vec<PortRow>,
    pub interfaces: Vec<InterfaceRow>,
    /// `Open_vSwitch.cur_cfg`: the last configuration ovs-vswitchd applied.
    pub cur_cfg: i64,
    pub next_cfg: i64,
}

/// A change of an Interface row.
#[derive(Clone, Debug, PartialEq)]
pub struct InterfaceChange {
    pub uuid: Uuid,
    pub kind: ChangeKind,
    pub old: Option<InterfaceRow>,
    pub new: Option<InterfaceRow>,
}

/// What the client reports.
#[derive(Clone, Debug, PartialEq)]
pub enum OvsdbEvent {
    /// Schema checked, monitor set up; the full snapshot follows at once.
    Connected {
        schema_version: String,
    },
    /// Every monitored row, after each (re)connect.
    Snapshot(Snapshot),
    /// An Interface row was inserted, modified or deleted (an `ofport` of -1 with `error` set
    /// is a failed interface; see [`InterfaceRow::is_failed`]).
    InterfaceChanged(Box<InterfaceChange>),
    Disconnected {
        reason: DisconnectReason,
    },
}

enum Command {
    Call {
        method: &'static str,
        params: Value,
        reply: oneshot::Sender<Result<Value, OvsdbError>>,
    },
    Snapshot(oneshot::Sender<Result<Snapshot, OvsdbError>>),
    WaitCfg {
        target: i64,
        reply: oneshot::Sender<Result<i64, OvsdbError>>,
    },
    CancelMonitor(oneshot::Sender<Result<(), OvsdbError>>),
}

/// A handle to the client task. Cloneable; the task stops when every handle is dropped.
#[derive(Clone)]
pub struct OvsdbClient {
    requests: Requests<Command>,
    pub(crate) db: String,
}

/// The receiving end of the client's events (bounded: see [`OvsdbOptions::driver`]).
pub type OvsdbEventReceiver = mpsc::Receiver<OvsdbEvent>;

impl OvsdbClient {
    /// Starts a client task for `endpoint` on the current tokio runtime.
    pub fn start(endpoint: Endpoint, options: OvsdbOptions) -> (OvsdbClient, OvsdbEventReceiver) {
        let db = options.db.clone();
        let span = info_span!("ovsdb", endpoint = %endpoint);
        let (requests, ev_rx) = driver::start(endpoint, options.driver, span, move |now| {
            Live::new(&options, now)
        });
        (OvsdbClient { requests, db }, ev_rx)
    }

    /// Sends a raw JSON-RPC request and returns its result.
    pub async fn call(&self, method: &'static str, params: Value) -> Result<Value, OvsdbError> {
        self.requests
            .call(|reply| Command::Call {
                method,
                params,
                reply,
            })
            .await
    }

    /// `echo`: a round trip to the server.
    pub async fn echo(&self) -> Result<(), OvsdbError> {
        self.call("echo", json!(["podport"])).await.map(drop)
    }

    /// `list_dbs`.
    pub async fn list_dbs(&self) -> Result<Vec<String>, OvsdbError> {
        let v = self.call("list_dbs", json!([])).await?;
        serde_json::from_value(v.clone())
            .map_err(|_| OvsdbError::Unexpected(format!("list_dbs result {v}")))
    }

    /// `get_schema` of `db`.
    pub async fn get_schema(&self, db: &str) -> Result<DbSchema, OvsdbError> {
        let v = self.call("get_schema", json!([db])).await?;
        DbSchema::from_json(&v).map_err(|e| OvsdbError::Unexpected(e.to_string()))
    }

    /// `transact` with `ops`; returns one result per operation, or the first operation's
    /// error (a timed-out `wait` is [`OvsdbError::WaitTimedOut`]).
    pub async fn transact(&self, ops: Vec<Value>) -> Result<Vec<Value>, OvsdbError> {
        let mut params = vec![json!(self.db)];
        params.extend(ops.iter().cloned());
        let v = self.call("transact", Value::Array(params)).await?;
        check_transact(&ops, v)
    }

    /// The monitored rows as the client's replica holds them now.
    pub async fn snapshot(&self) -> Result<Snapshot, OvsdbError> {
        self.requests.call(Command::Snapshot).await
    }

    /// Waits until the monitor shows `Open_vSwitch.cur_cfg >= target`; returns `cur_cfg`.
    /// No timeout of its own: wrap it in one.
    pub async fn wait_cfg(&self, target: i64) -> Result<i64, OvsdbError> {
        self.requests
            .call(|reply| Command::WaitCfg { target, reply })
            .await
    }

    /// `monitor_cancel` of podport's monitor: no more updates until the next reconnect.
    pub async fn monitor_cancel(&self) -> Result<(), OvsdbError> {
        self.requests.call(Command::CancelMonitor).await
    }
}

/// Maps a `transact` result array to per-operation results or the first error.
fn check_transact(ops: &[Value], result: Value) -> Result<Vec<Value>, OvsdbError> {
    let Value::Array(results) = result else {
        return Err(OvsdbError::Unexpected(format!("transact result {result}")));
    };
    for (index, r) in results.iter().enumerate() {
        let Some(error) = r.get("error").and_then(Value::as_str) else {
            continue;
        };
        let details = r.get("details").and_then(Value::as_str).map(str::to_string);
        let op = ops
            .get(index)
            .and_then(|o| o.get("op"))
            .and_then(Value::as_str)
            .unwrap_or("commit")
            .to_string();
        if error == "timed out" && op == "wait" {
            let what = ops[index]
                .get("table")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            let after = Duration::from_millis(
                ops[index]
                    .get("timeout")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            );
            return Err(OvsdbError::WaitTimedOut {
                what,
                after,
                details: details.unwrap_or_else(|| error.to_string()),
            });
        }
        return Err(OvsdbError::OpFailed {
            index,
            op,
            error: error.to_string(),
            details,
        });
    }
    if results.len() < ops.len() {
        return Err(OvsdbError::Unexpected(format!(
            "{} results for {} operations",
            results.len(),
            ops.len()
        )));
    }
    Ok(results)
}

/// The columns podport monitors.
fn monitor_requests() -> Value {
    let mut m = serde_json::Map::new();
    for (table, columns) in REQUIRED {
        m.insert(table.to_string(), json!([{ "columns": columns }]));
    }
    Value::Object(m)
}

enum Phase {
    AwaitSchema(u64),
    AwaitMonitor { id: u64, v1: bool },
    Ready,
}

enum Waiter {
    Call(oneshot::Sender<Result<Value, OvsdbError>>),
    Cancel(oneshot::Sender<Result<(), OvsdbError>>),
}

/// One OVSDB connection: the protocol core, the startup chain, the replica and who waits for
/// which reply.
struct Live {
    session: Session,
    db: String,
    splitter: JsonSplitter,
    phase: Phase,
    /// The monitor is set up on this connection.
    ready: bool,
    schema: Option<DbSchema>,
    replica: Replica,
    waiters: HashMap<u64, Waiter>,
    cfg_waiters: Vec<(i64, oneshot::Sender<Result<i64, OvsdbError>>)>,
}

impl Live {
    /// A new connection: asks for the schema at once.
    fn new(options: &OvsdbOptions, now: Instant) -> Live {
        let mut session = Session::new(options.session.clone(), now);
        let schema_id = session.call("get_schema", json!([options.db]));
        Live {
            session,
            db: options.db.clone(),
            splitter: JsonSplitter::new(options.max_message_len),
            phase: Phase::AwaitSchema(schema_id),
            ready: false,
            schema: None,
            // Only the monitored columns: rows stay small (see docs/benchmarks.md).
            replica: Replica::with_columns(REQUIRED),
            waiters: HashMap::new(),
            cfg_waiters: Vec::new(),
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

impl Stopped for OvsdbError {
    fn stopped() -> Self {
        OvsdbError::Stopped
    }
}

impl SinkEvent for OvsdbEvent {
    const DROPPING: &'static str =
        "dropping Interface changes until there is room, then sending a snapshot";

    /// The replica has every row: a snapshot later says what these would have.
    fn is_droppable(&self) -> bool {
        matches!(
            self,
            OvsdbEvent::InterfaceChanged(_) | OvsdbEvent::Snapshot(_)
        )
    }

    /// A `Connected` is followed by a snapshot anyway: only the newest event is kept.
    fn outlives_overflow(&self) -> bool {
        false
    }
}

impl Link for Live {
    type Command = Command;
    type Event = OvsdbEvent;
    type Reason = DisconnectReason;
    const NAME: &'static str = "OVSDB";

    fn handle_input(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), DisconnectReason> {
        loop {
            match self.splitter.decode(buf) {
                Ok(Some(msg)) => self.session.handle_message(&msg, now)?,
                Ok(None) => return Ok(()),
                Err(e) => return Err(DisconnectReason::Framing(e.to_string())),
            }
        }
    }

    fn handle_command(&mut self, cmd: Command, _events: &mut EventSink<OvsdbEvent>) {
        handle_command(self, cmd);
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DisconnectReason> {
        Ok(self.session.handle_timeout(now)?)
    }

    fn poll_events(&mut self, events: &mut EventSink<OvsdbEvent>) -> Result<(), DisconnectReason> {
        drain_events(self, events)
    }

    fn resync(&mut self, events: &mut EventSink<OvsdbEvent>) -> Result<(), DisconnectReason> {
        if !matches!(self.phase, Phase::Ready) {
            // The monitor's own snapshot, once ready, pays it.
            events.owe();
            return Ok(());
        }
        let snap =
            snapshot_of(&self.replica).map_err(|e| DisconnectReason::Monitor(e.to_string()))?;
        warn!(
            dropped = events.take_dropped(),
            "event channel has room again; sending a snapshot for the changes dropped"
        );
        events.send(OvsdbEvent::Snapshot(snap));
        Ok(())
    }

    fn poll_transmit(&mut self, out: &mut BytesMut) {
        while let Some(msg) = self.session.poll_transmit() {
            out.extend_from_slice(&msg);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.session.poll_timeout())
    }

    fn reached_ready(&self) -> bool {
        self.ready
    }

    fn fail_all(&mut self, reason: &DisconnectReason) {
        fail_live(self, reason);
    }

    fn refuse(cmd: Command) {
        refuse(cmd, OvsdbError::NotConnected);
    }

    fn disconnected(reason: DisconnectReason) -> OvsdbEvent {
        OvsdbEvent::Disconnected { reason }
    }
}

fn refuse(cmd: Command, err: OvsdbError) {
    match cmd {
        Command::Call { reply, .. } => drop(reply.send(Err(err))),
        Command::Snapshot(tx) => drop(tx.send(Err(err))),
        Command::WaitCfg { reply, .. } => drop(reply.send(Err(err))),
        Command::CancelMonitor(tx) => drop(tx.send(Err(err))),
    }
}

fn fail_live(live: &mut Live, reason: &DisconnectReason) {
    for (_, w) in live.waiters.drain() {
        let err = Err(OvsdbError::Disconnected(reason.clone()));
        match w {
            Waiter::Call(tx) => drop(tx.send(err)),
            Waiter::Cancel(tx) => drop(tx.send(Err(OvsdbError::Disconnected(reason.clone())))),
        }
    }
    for (_, tx) in live.cfg_waiters.drain(..) {
        let _ = tx.send(Err(OvsdbError::Disconnected(reason.clone())));
    }
}

fn handle_command(live: &mut Live, cmd: Command) {
    if !matches!(live.phase, Phase::Ready) {
        return refuse(cmd, OvsdbError::NotConnected);
    }
    match cmd {
        Command::Call {
            method,
            params,
            reply,
        } => {
            let id = live.session.call(method, params);
            live.waiters.insert(id, Waiter::Call(reply));
        }
        Command::Snapshot(tx) => {
            let _ = tx.send(snapshot_of(&live.replica));
        }
        Command::WaitCfg { target, reply } => {
            let cur = cfg_of(&live.replica).0;
            if cur >= target {
                let _ = reply.send(Ok(cur));
            } else {
                live.cfg_waiters.push((target, reply));
            }
        }
        Command::CancelMonitor(tx) => {
            let id = live.session.call("monitor_cancel", json!([MONITOR_ID]));
            live.waiters.insert(id, Waiter::Cancel(tx));
        }
    }
}

/// Processes the session's events: the startup chain (schema, monitor), replies, updates.
fn drain_events(
    live: &mut Live,
    events: &mut EventSink<OvsdbEvent>,
) -> Result<(), DisconnectReason> {
    while let Some(ev) = live.session.poll_event() {
        match ev {
            SessionEvent::Reply { id, result } => match live.phase {
                Phase::AwaitSchema(sid) if sid == id => {
                    let v = result.map_err(|e| {
                        DisconnectReason::Monitor(format!("get_schema failed: {e}"))
                    })?;
                    let schema = DbSchema::from_json(&v)?;
                    schema.check(REQUIRED)?;
                    debug!(version = %schema.version, "schema checked");
                    live.schema = Some(schema);
                    let id = live.session.call(
                        "monitor_cond",
                        json!([live.db, MONITOR_ID, monitor_requests()]),
                    );
                    live.phase = Phase::AwaitMonitor { id, v1: false };
                }
                Phase::AwaitMonitor { id: mid, v1 } if mid == id => match result {
                    Ok(initial) => {
                        let schema = live
                            .schema
                            .as_ref()
                            .ok_or_else(|| DisconnectReason::Monitor("no schema".into()))?;
                        live.replica.clear();
                        let applied = if v1 {
                            live.replica.apply_update(schema, &initial)
                        } else {
                            live.replica.apply_update2(schema, &initial)
                        };
                        applied.map_err(|e| DisconnectReason::Monitor(e.to_string()))?;
                        live.phase = Phase::Ready;
                        live.ready = true;
                        info!(version = %schema.version, monitor = if v1 { "monitor" } else { "monitor_cond" }, "connected to OVSDB");
                        events.send(OvsdbEvent::Connected {
                            schema_version: schema.version.clone(),
                        });
                        let snap = snapshot_of(&live.replica)
                            .map_err(|e| DisconnectReason::Monitor(e.to_string()))?;
                        // This snapshot is the truth a resync would bring.
                        events.paid();
                        events.send(OvsdbEvent::Snapshot(snap));
                        check_cfg_waiters(live);
                    }
                    Err(e) if !v1 && is_unknown_method(&e) => {
                        info!("server lacks monitor_cond; using monitor");
                        let id = live
                            .session
                            .call("monitor", json!([live.db, MONITOR_ID, monitor_requests()]));
                        live.phase = Phase::AwaitMonitor { id, v1: true };
                    }
                    Err(e) => return Err(DisconnectReason::Monitor(e.to_string())),
                },
                _ => match live.waiters.remove(&id) {
                    Some(Waiter::Call(tx)) => {
                        let _ = tx.send(result.map_err(OvsdbError::Server));
                    }
                    Some(Waiter::Cancel(tx)) => {
                        let _ = tx.send(result.map(drop).map_err(OvsdbError::Server));
                    }
                    None => debug!(id, "reply nobody waits for"),
                },
            },
            SessionEvent::Notification { method, params } => {
                let v1 = match (&live.phase, method.as_str()) {
                    (Phase::Ready, "update2") => false,
                    (Phase::Ready, "update") => true,
                    _ => {
                        debug!(%method, "ignoring notification");
                        continue;
                    }
                };
                let Some(updates) = params.get(1) else {
                    return Err(DisconnectReason::Framing(format!(
                        "{method} notification without table updates"
                    )));
                };
                let Some(schema) = live.schema.as_ref() else {
                    continue;
                };
                let changes = if v1 {
                    live.replica.apply_update(schema, updates)
                } else {
                    live.replica.apply_update2(schema, updates)
                }
                .map_err(|e| DisconnectReason::Framing(format!("bad {method}: {e}")))?;
                for change in changes {
                    if let Some(ev) = interface_change(&change) {
                        events.send(OvsdbEvent::InterfaceChanged(ev));
                    }
                }
                check_cfg_waiters(live);
            }
        }
    }
    Ok(())
}

fn is_unknown_method(e: &Value) -> bool {
    e.to_string().contains("unknown method")
}

fn interface_change(change: &RowChange) -> Option<Box<InterfaceChange>> {
    if change.table != "Interface" {
        return None;
    }
    let typed = |row: &Option<Row>| {
        row.as_ref()
            .and_then(|r| match InterfaceRow::from_row(change.uuid, r) {
                Ok(i) => Some(i),
                Err(e) => {
                    warn!(error = %e, "Interface row does not convert; change skipped");
                    None
                }
            })
    };
    Some(Box::new(InterfaceChange {
        uuid: change.uuid,
        kind: change.kind.clone(),
        old: typed(&change.old),
        new: typed(&change.new),
    }))
}

fn cfg_of(replica: &Replica) -> (i64, i64) {
    replica
        .table("Open_vSwitch")
        .next()
        .map(|(_, row)| {
            let get = |c: &str| row.get(c).and_then(|d| d.as_integer()).unwrap_or(0);
            (get("cur_cfg"), get("next_cfg"))
        })
        .unwrap_or((0, 0))
}

fn check_cfg_waiters(live: &mut Live) {
    let cur = cfg_of(&live.replica).0;
    let (done, waiting): (Vec<_>, Vec<_>) = live
        .cfg_waiters
        .drain(..)
        .partition(|(target, _)| cur >= *target);
    live.cfg_waiters = waiting;
    for (_, tx) in done {
        let _ = tx.send(Ok(cur));
    }
}

fn snapshot_of(replica: &Replica) -> Result<Snapshot, OvsdbError> {
    let (cur_cfg, next_cfg) = cfg_of(replica);
    Ok(Snapshot {
        bridges: replica
            .table("Bridge")
            .map(|(u, r)| BridgeRow::from_row(*u, r))
            .collect::<Result<_, _>>()?,
        ports: replica
            .table("Port")
            .map(|(u, r)| PortRow::from_row(*u, r))
            .collect::<Result<_, _>>()?,
        interfaces: replica
            .table("Interface")
            .map(|(u, r)| InterfaceRow::from_row(*u, r))
            .collect::<Result<_, _>>()?,
        cur_cfg,
        next_cfg,
    })
}
