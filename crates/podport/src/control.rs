//! The control socket's server: how a running agent answers `podport cni`, `podport status`
//! and `podport-journal --control`. The protocol (requests, answers, the bounded line reader)
//! and the client are in `podport_control`, whose crate doc has the table of requests.
//!
//! The server serves each connection on its own task; a stream's buffers are bounded, and a
//! subscriber that falls too far behind is dropped with a log line and an error line.
//!
//! Nobody can hold the socket: a connection that sends no complete request line within the
//! idle timeout (10 s by default, counted from the connection or from its last answer) gets
//! `{"ok":false,"error":"closed: no complete request within 10s"}` and is closed; a stream
//! (`subscribe`, `journal`) is not idle while it streams. At the cap of [`MAX_CONNECTIONS`], a
//! new client is not left waiting: the connection idle the longest is closed with an error
//! line to make room (a client that sends its request right after connecting, as `podport`
//! does, is never that one). Streams may take at most [`MAX_STREAMS`] of the connections, so
//! the rest always serve short requests; a stream over that is refused with an error line.
//! Eviction was chosen over waiting for the idle timeout alone because it admits the new
//! client at once, and an idle connection holds nothing worth keeping.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use podport_control::{
    duration_text, end_line, error_line, millis, ok_line, parse_request, read_line, EventLine,
    LineRead, PortInfo, Request, Stages, MAX_REQUEST_LINE,
};
use podport_engine::{Engine, PodEvent, PodSpec, PortStatusView};
use podport_openflow::{flag_names, PortState};
use podport_transport::{BoxStream, Listener};
use serde_json::json;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::health::{engine_health, health_info};

/// Connections served at once. At the cap, the connection idle the longest makes room for a
/// new one.
pub const MAX_CONNECTIONS: usize = 256;

/// Connections that may stream (`subscribe`, `journal`) at once: the other
/// `MAX_CONNECTIONS - MAX_STREAMS` are left to request/reply clients.
pub const MAX_STREAMS: usize = MAX_CONNECTIONS - 32;

/// How long a connection may go without a complete request line, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the line that explains a close (idle, evicted, busy) may take to write.
const CLOSING_WRITE: Duration = Duration::from_secs(1);

/// At the cap with nothing idle to close, how often the accept loop looks again.
const SATURATED_POLL: Duration = Duration::from_millis(20);

/// How often, at most, the agent logs a warning about connections closed at the cap.
const EVICTION_WARN_EVERY: Duration = Duration::from_secs(10);

/// Pod events buffered per subscriber before it counts as too slow and is dropped.
const EVENT_BUFFER: usize = 1024;

/// Journal records buffered per stream between the journal's channel and the socket.
const RECORD_BUFFER: usize = 256;

/// How long one write may stall before the client counts as gone.
const WRITE_STALL: Duration = Duration::from_secs(30);

/// How often a bridge thread checks whether its connection is still there.
const BRIDGE_POLL: Duration = Duration::from_millis(250);

/// A stage list as the protocol carries it.
fn stages(stages: &[(podport_journal::Stage, Duration)]) -> Stages {
    Stages::of(stages.iter().map(|(s, d)| (s.name(), *d)))
}

/// A port of the engine's status as the protocol carries it.
fn port_info(v: &PortStatusView) -> PortInfo {
    PortInfo {
        ifname: v.ifname.clone(),
        pod: v.pod.clone(),
        ofport: v.port_no,
        phase: v.phase.name().to_string(),
        ready: v.ready,
        ready_for_ms: v.ready_for.map(millis),
        waited_ms: millis(v.waited),
        state: flag_names(&PortState::from_bits_retain(v.state)),
        last_error: v.last_error.clone(),
        attach_failures: v.attach_failures,
        stages: stages(&v.stages),
    }
}

/// A Pod event as a subscription line.
fn event_line(e: PodEvent) -> EventLine {
    match e {
        PodEvent::Ready {
            ifname,
            port_no,
            waited,
            stages: s,
        } => EventLine::Ready {
            ifname,
            port_no,
            waited_ms: millis(waited),
            stages: stages(&s),
        },
        PodEvent::NotReady {
            ifname,
            phase,
            waited,
        } => EventLine::NotReady {
            ifname,
            phase: phase.name().to_string(),
            waited_ms: millis(waited),
        },
        PodEvent::Failed { ifname, error } => EventLine::Failed { ifname, error },
        PodEvent::Removed { ifname, reason } => EventLine::Removed { ifname, reason },
    }
}

/// Writes one line; gives up when the client stops reading for too long, so a client that
/// sends requests and never reads the answers holds no task forever.
async fn write_line<W: AsyncWrite + Unpin>(w: &mut W, line: &str) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let write = async {
        w.write_all(&bytes).await?;
        w.flush().await
    };
    match tokio::time::timeout(WRITE_STALL, write).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {WRITE_STALL:?}"),
        )),
    }
}

/// Where a connection is, for the accept loop's choice of which to close at the cap.
const IDLE: u8 = 0;
const BUSY: u8 = 1;
const STREAMING: u8 = 2;
/// Being closed (evicted or timed out): no longer counted against the cap.
const CLOSING: u8 = 3;

/// One connection as the accept loop sees it.
struct ConnState {
    phase: AtomicU8,
    /// When it last became idle (accepted, or its last answer sent).
    idle_since: Mutex<Instant>,
    /// Told when the accept loop closes it to make room.
    evicted: Notify,
}

impl ConnState {
    fn new() -> ConnState {
        ConnState {
            phase: AtomicU8::new(IDLE),
            idle_since: Mutex::new(Instant::now()),
            evicted: Notify::new(),
        }
    }

    fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waiting for a request again (only the connection's own task calls this, and never
    /// once it is closing).
    fn enter_idle(&self) {
        *self.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        let _ = self
            .phase
            .compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Acquire);
        let _ = self
            .phase
            .compare_exchange(STREAMING, IDLE, Ordering::AcqRel, Ordering::Acquire);
    }

    /// A request arrived: `false` when the accept loop closed this connection first.
    fn enter(&self, phase: u8) -> bool {
        self.phase
            .compare_exchange(IDLE, phase, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Closing for a reason of its own (idle timeout): stops counting against the cap.
    fn close(&self) {
        self.phase.store(CLOSING, Ordering::Release);
    }
}

/// Every open connection, and how many stream.
struct Conns {
    max: usize,
    max_streams: usize,
    table: Mutex<HashMap<u64, Arc<ConnState>>>,
    streams: AtomicUsize,
}

impl Conns {
    fn new(max: usize, max_streams: usize) -> Conns {
        Conns {
            max,
            max_streams,
            table: Mutex::new(HashMap::new()),
            streams: AtomicUsize::new(0),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(self: &Arc<Self>, id: u64) -> Registered {
        let state = Arc::new(ConnState::new());
        self.table().insert(id, state.clone());
        Registered {
            conns: self.clone(),
            id,
            state,
        }
    }

    /// Connections that count against the cap (every one not being closed).
    fn occupied(&self) -> usize {
        self.table()
            .values()
            .filter(|c| c.phase.load(Ordering::Acquire) != CLOSING)
            .count()
    }

    /// Whether one more connection may be accepted: below the cap, or one is idle.
    fn can_admit(&self) -> bool {
        let table = self.table();
        let mut occupied = 0;
        for c in table.values() {
            match c.phase.load(Ordering::Acquire) {
                IDLE => return true,
                CLOSING => {}
                _ => occupied += 1,
            }
        }
        occupied < self.max
    }

    /// Closes the connection idle the longest (it writes its error line and ends); its id,
    /// or `None` when none is idle.
    fn evict_oldest_idle(&self) -> Option<u64> {
        let table = self.table();
        let mut idle: Vec<(Instant, u64, &Arc<ConnState>)> = table
            .iter()
            .filter(|(_, c)| c.phase.load(Ordering::Acquire) == IDLE)
            .map(|(id, c)| (c.idle_since(), *id, c))
            .collect();
        idle.sort_by_key(|(since, id, _)| (*since, *id));
        // One that turned busy since the look is skipped: a request in flight is never cut.
        idle.into_iter().find_map(|(_, id, c)| {
            c.phase
                .compare_exchange(IDLE, CLOSING, Ordering::AcqRel, Ordering::Acquire)
                .ok()
                .map(|_| {
                    c.evicted.notify_one();
                    id
                })
        })
    }

    /// A stream slot, or `None` when [`Conns::max_streams`] stream already.
    fn start_stream(self: &Arc<Self>) -> Option<StreamSlot> {
        self.streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_streams).then_some(n + 1)
            })
            .ok()
            .map(|_| StreamSlot(self.clone()))
    }
}

/// A connection's entry in [`Conns`], removed when its task ends (however it ends).
struct Registered {
    conns: Arc<Conns>,
    id: u64,
    state: Arc<ConnState>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conns.table().remove(&self.id);
    }
}

/// One of the [`MAX_STREAMS`] stream slots, given back on drop.
struct StreamSlot(Arc<Conns>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What every connection task shares.
struct Shared {
    engine: Arc<Engine>,
    conns: Arc<Conns>,
    idle_timeout: Duration,
}

/// The control server: accepts connections and serves each on its own task.
pub struct ControlServer {
    listener: Listener,
    engine: Arc<Engine>,
    idle_timeout: Duration,
}

impl ControlServer {
    pub fn new(listener: Listener, engine: Arc<Engine>) -> Self {
        ControlServer {
            listener,
            engine,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// How long a connection may go without a complete request line before it is closed.
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = t;
        self
    }

    /// Serves until `stop` resolves, then closes the listener (removing a Unix socket file)
    /// and ends every connection. When this returns, no task holds the engine any more.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) {
        let ControlServer {
            listener,
            engine,
            idle_timeout,
        } = self;
        let endpoint = listener.endpoint().to_string();
        let conns = Arc::new(Conns::new(MAX_CONNECTIONS, MAX_STREAMS));
        let shared = Arc::new(Shared {
            engine,
            conns: conns.clone(),
            idle_timeout,
        });
        let mut tasks = JoinSet::new();
        let mut next_id: u64 = 0;
        let mut evictions = Evictions::default();
        tokio::pin!(stop);
        loop {
            // At the cap with every connection busy or streaming, a new client waits in the
            // listen backlog for the moment one is idle (requests are short, and streams
            // cannot fill the table).
            let admit = conns.can_admit();
            tokio::select! {
                () = &mut stop => break,
                accepted = listener.accept(), if admit => match accepted {
                    Ok(stream) => {
                        next_id += 1;
                        let id = next_id;
                        if conns.occupied() >= MAX_CONNECTIONS {
                            match conns.evict_oldest_idle() {
                                Some(victim) => {
                                    debug!(conn = victim, for_conn = id, "closing the connection idle the longest to make room");
                                    evictions.note(&endpoint);
                                }
                                None => {
                                    // Every idle one turned busy since the look: rare, and
                                    // the client is told rather than left waiting.
                                    let msg = format!(
                                        "the agent is serving its maximum of {MAX_CONNECTIONS} control connections and none is idle; try again"
                                    );
                                    warn!(%endpoint, conn = id, "{msg}");
                                    tasks.spawn(refuse(stream, msg));
                                    continue;
                                }
                            }
                        }
                        debug!(conn = id, "control connection accepted");
                        let registered = conns.register(id);
                        tasks.spawn(serve_connection(stream, shared.clone(), registered));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: the condition may pass, and
                        // retrying at once would spin.
                        warn!(%endpoint, error = %e, "accepting a control connection failed; retrying shortly");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                () = tokio::time::sleep(SATURATED_POLL), if !admit => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(e) = done {
                        if e.is_panic() {
                            warn!(error = %e, "a control connection task panicked");
                        }
                    }
                }
            }
        }
        drop(listener);
        let open = tasks.len();
        tasks.shutdown().await;
        info!(%endpoint, closed_connections = open, "control socket closed");
    }
}

/// Counts connections closed at the cap, and warns about them now and then (not once per
/// connection: a client leaking connections would flood the log).
#[derive(Default)]
struct Evictions {
    total: u64,
    since_warning: u64,
    warned: Option<Instant>,
}

impl Evictions {
    fn note(&mut self, endpoint: &str) {
        self.total += 1;
        self.since_warning += 1;
        if self
            .warned
            .is_none_or(|at| at.elapsed() >= EVICTION_WARN_EVERY)
        {
            warn!(
                %endpoint,
                max = MAX_CONNECTIONS,
                closed = self.since_warning,
                closed_total = self.total,
                "control connections at their cap: closing the ones idle the longest to admit new clients (a client is leaking connections?)"
            );
            self.warned = Some(Instant::now());
            self.since_warning = 0;
        }
    }
}

/// Writes one error line, with a short bound, and closes.
async fn refuse(stream: BoxStream, msg: String) {
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = BufReader::new(rd);
    close_with(&mut rd, &mut wr, &msg).await;
}

/// Writes `msg` as an error line (giving up after [`CLOSING_WRITE`]), then lingers and closes.
async fn close_with<R, W>(rd: &mut R, wr: &mut W, msg: &str)
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let line = error_line(msg);
    if let Ok(Ok(())) = tokio::time::timeout(CLOSING_WRITE, write_line(wr, &line)).await {
        linger(rd, wr).await;
    }
}

/// What the request loop does after a request.
enum Next {
    Continue,
    Close,
}

/// What the wait for a request line ended with.
enum Waited {
    Read(io::Result<LineRead>),
    IdleTimeout,
    Evicted,
}

async fn serve_connection(stream: BoxStream, shared: Arc<Shared>, conn: Registered) {
    let id = conn.id;
    let state = &conn.state;
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    let idle = shared.idle_timeout;
    // The idle clock starts at the connection and again at each answer; blank lines do not
    // restart it.
    let mut answered = true;
    let mut deadline = tokio::time::Instant::now();
    loop {
        if answered {
            state.enter_idle();
            deadline = tokio::time::Instant::now() + idle;
            answered = false;
        }
        let waited = tokio::select! {
            r = tokio::time::timeout_at(deadline, read_line(&mut rd, &mut buf, MAX_REQUEST_LINE)) => match r {
                Ok(r) => Waited::Read(r),
                Err(_) => Waited::IdleTimeout,
            },
            () = state.evicted.notified() => Waited::Evicted,
        };
        let read = match waited {
            Waited::Read(r) => r,
            Waited::IdleTimeout => {
                state.close();
                let msg = format!("closed: no complete request within {}", duration_text(idle));
                debug!(conn = id, "{msg}");
                close_with(&mut rd, &mut wr, &msg).await;
                break;
            }
            Waited::Evicted => {
                close_with(&mut rd, &mut wr, &evicted_message()).await;
                break;
            }
        };
        match read {
            Err(e) => {
                debug!(conn = id, error = %e, "control connection read failed");
                break;
            }
            Ok(LineRead::Eof) => break,
            Ok(LineRead::TooLong) => {
                state.close();
                let msg = format!(
                    "request line longer than {MAX_REQUEST_LINE} bytes; closing the connection"
                );
                warn!(conn = id, "{msg}");
                if write_line(&mut wr, &error_line(&msg)).await.is_ok() {
                    linger(&mut rd, &mut wr).await;
                }
                break;
            }
            Ok(LineRead::Line) => {}
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let request = match parse_request(&buf) {
            Ok(r) => r,
            Err(msg) => {
                if !state.enter(BUSY) {
                    close_with(&mut rd, &mut wr, &evicted_message()).await;
                    break;
                }
                warn!(conn = id, error = %msg, "bad control request");
                if write_line(&mut wr, &error_line(&msg)).await.is_err() {
                    break;
                }
                answered = true;
                continue;
            }
        };
        let streams = request.streams();
        if !state.enter(if streams { STREAMING } else { BUSY }) {
            // Closed to make room just as the request arrived: it is not carried out, and
            // the client is told so.
            close_with(&mut rd, &mut wr, &evicted_message()).await;
            break;
        }
        let slot = if streams {
            match shared.conns.start_stream() {
                Some(slot) => Some(slot),
                None => {
                    let msg = format!(
                        "too many streams: {} connections already subscribe or read the journal; try again later",
                        shared.conns.max_streams
                    );
                    warn!(conn = id, op = request.op(), "{msg}");
                    if write_line(&mut wr, &error_line(&msg)).await.is_err() {
                        break;
                    }
                    answered = true;
                    continue;
                }
            }
        } else {
            None
        };
        let served = serve_request(request, &shared.engine, &mut rd, &mut wr, id).await;
        drop(slot);
        answered = true;
        match served {
            Ok(Next::Continue) => {}
            Ok(Next::Close) => break,
            Err(e) => {
                debug!(conn = id, error = %e, "control connection write failed");
                break;
            }
        }
    }
    debug!(conn = id, "control connection closed");
}

fn evicted_message() -> String {
    format!(
        "closed: the agent is at its maximum of {MAX_CONNECTIONS} control connections and this one was idle the longest"
    )
}

/// How much of an abandoned request a closing connection still reads, and for how long.
const LINGER_BYTES: usize = 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);

/// Closes our side, then reads (and drops) what the client is still sending, for a bounded
/// time and amount. Closing a socket with unread input makes the kernel reset the
/// connection, and the client could lose the error line that explains the close.
async fn linger<R, W>(rd: &mut R, wr: &mut W)
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _ = wr.shutdown().await;
    let drain = async {
        let mut n = 0;
        while n < LINGER_BYTES {
            match rd.fill_buf().await {
                Ok([]) | Err(_) => return,
                Ok(b) => {
                    let len = b.len();
                    rd.consume(len);
                    n += len;
                }
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

async fn serve_request<R, W>(
    request: Request,
    engine: &Arc<Engine>,
    rd: &mut R,
    wr: &mut W,
    id: u64,
) -> io::Result<Next>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let op = request.op();
    let answer = match request {
        Request::Add {
            namespace,
            name,
            container_id,
            ifname,
            ips,
            mac,
        } => match podport_engine::spec::parse_mac(&mac) {
            // Named like every other refusal of a spec: `mac "zz" is not a MAC address ...`.
            Err(e) => Err(e.to_string()),
            Ok(mac) => {
                let spec = PodSpec {
                    namespace,
                    name,
                    container_id,
                    ifname: ifname.clone(),
                    ips,
                    mac,
                };
                let pod = spec.pod();
                engine
                    .add_pod(spec)
                    .await
                    .map(|()| (json!({"ok": true}), format!("{ifname} ({pod})")))
                    .map_err(|e| e.to_string())
            }
        },
        Request::Attach { ifname } => engine
            .host_interface_created(&ifname)
            .await
            .map(|()| (json!({"ok": true}), ifname))
            .map_err(|e| e.to_string()),
        Request::Del {
            ifname,
            container_id,
        } => match &container_id {
            Some(c) => engine.delete_pod_of(&ifname, c).await,
            None => engine.delete_pod(&ifname).await,
        }
        .map(|()| (json!({"ok": true}), ifname))
        .map_err(|e| e.to_string()),
        Request::Status => {
            let health = health_info(&engine_health(engine).await);
            engine
                .status()
                .await
                .map(|ports| {
                    let ports: Vec<PortInfo> = ports.iter().map(port_info).collect();
                    let n = ports.len();
                    (
                        json!({"ok": true, "ports": ports, "health": health}),
                        format!("{n} ports"),
                    )
                })
                .map_err(|e| e.to_string())
        }
        Request::Health => {
            let health = health_info(&engine_health(engine).await);
            let about = if health.ready {
                "ready".to_string()
            } else {
                health.problems.join("; ")
            };
            Ok((json!({"ok": true, "health": health}), about))
        }
        Request::Subscribe => {
            stream_events(engine, rd, wr, id).await?;
            return Ok(Next::Close);
        }
        Request::Journal { from, follow } => {
            return stream_journal(engine, from, follow, rd, wr, id).await;
        }
    };
    match answer {
        Ok((reply, about)) => {
            info!(conn = id, op, about = %about, "request served");
            write_line(wr, &reply.to_string()).await?;
        }
        Err(msg) => {
            warn!(conn = id, op, error = %msg, "request refused");
            write_line(wr, &error_line(&msg)).await?;
        }
    }
    Ok(Next::Continue)
}

/// Resolves when the client hangs up (or its stream fails); anything it sends meanwhile is
/// read and ignored, so a chatty client cannot fill a buffer.
async fn client_gone<R: AsyncBufRead + Unpin>(rd: &mut R) {
    loop {
        match rd.fill_buf().await {
            Ok([]) | Err(_) => return,
            Ok(b) => {
                let n = b.len();
                rd.consume(n);
            }
        }
    }
}

/// Pod events until the client hangs up, it falls too far behind, or the engine stops.
async fn stream_events<R, W>(engine: &Engine, rd: &mut R, wr: &mut W, id: u64) -> io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let events = engine.subscribe();
    // The engine's channel holds SUBSCRIBER_BUFFER events; this thread moves its events into a
    // smaller one and drops the subscription when that one is full, so a slow client costs at most
    // EVENT_BUFFER events (the engine forgets a subscriber whose receiver is gone).
    let (tx, mut rx) = mpsc::channel::<EventLine>(EVENT_BUFFER);
    let bridge = std::thread::Builder::new()
        .name(format!("podport-events-{id}"))
        .spawn(move || loop {
            match events.recv_timeout(BRIDGE_POLL) {
                Ok(ev) => match tx.try_send(event_line(ev)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        warn!(
                            conn = id,
                            buffered = EVENT_BUFFER,
                            "dropping a Pod event subscriber that fell behind"
                        );
                        return;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                },
                Err(crossbeam_channel::RecvTimeoutError::Timeout) if tx.is_closed() => return,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
        });
    if let Err(e) = bridge {
        let msg = format!("cannot start the subscription: {e}");
        warn!(conn = id, "{msg}");
        return write_line(wr, &error_line(&msg)).await;
    }
    info!(
        conn = id,
        op = "subscribe",
        "request served; streaming Pod events"
    );
    write_line(wr, &ok_line()).await?;
    let mut sent = 0u64;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => {
                    // Plain data: it always serialises.
                    let line = serde_json::to_string(&ev).unwrap_or_default();
                    if let Err(e) = write_line(wr, &line).await {
                        info!(conn = id, sent, error = %e, "Pod event subscriber hung up");
                        return Ok(());
                    }
                    sent += 1;
                }
                None => {
                    let msg = format!(
                        "subscription ended: this client fell more than {EVENT_BUFFER} events behind, or the engine stopped"
                    );
                    info!(conn = id, sent, "{msg}");
                    let _ = write_line(wr, &error_line(&msg)).await;
                    return Ok(());
                }
            },
            () = client_gone(rd) => {
                info!(conn = id, sent, "Pod event subscriber hung up");
                return Ok(());
            }
        }
    }
}

/// What a journal stream's bridge thread hands over.
enum Streamed {
    Record(String),
    /// The history up to the bound was sent (non-following streams).
    End(u64),
    /// The journal dropped this subscriber (it fell behind) or stopped.
    Lost,
}

/// The journal's records from `from`: up to the last record stored when the request came
/// (then `end_line`), or with `follow` every new one until the client hangs up.
async fn stream_journal<R, W>(
    engine: &Arc<Engine>,
    from: u64,
    follow: bool,
    rd: &mut R,
    wr: &mut W,
    id: u64,
) -> io::Result<Next>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Both calls wait on the journal's writer thread.
    let e = engine.clone();
    let subscribed = tokio::task::spawn_blocking(move || {
        let records = e.journal().subscribe(from)?;
        // The writer hands a subscriber every stored record before it answers any later
        // command, so once this returns every record up to `bound` is already queued.
        let (bound, _) = e.journal().state()?;
        Ok::<_, podport_journal::JournalError>((records, bound))
    })
    .await;
    let (records, bound) = match subscribed {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            let msg = format!("cannot read the journal: {e}");
            warn!(conn = id, "{msg}");
            write_line(wr, &error_line(&msg)).await?;
            return Ok(Next::Continue);
        }
        Err(e) => {
            let msg = format!("cannot read the journal: {e}");
            warn!(conn = id, "{msg}");
            write_line(wr, &error_line(&msg)).await?;
            return Ok(Next::Continue);
        }
    };
    info!(
        conn = id,
        op = "journal",
        from,
        follow,
        bound,
        "request served; streaming records"
    );
    let (tx, mut rx) = mpsc::channel::<Streamed>(RECORD_BUFFER);
    // Blocking sends give back-pressure: a slow reader slows this thread, and the journal's
    // own bound (`subscriber_buffer`) drops the subscription if it falls too far behind.
    let bridge = std::thread::Builder::new()
        .name(format!("podport-journal-{id}"))
        .spawn(move || {
            if !follow {
                loop {
                    match records.try_recv() {
                        Ok(r) if r.seq <= bound => {
                            let line = podport_journal::dump::record_json(&r);
                            if tx.blocking_send(Streamed::Record(line)).is_err() {
                                return;
                            }
                        }
                        // A record after the bound, or none left: the history is complete.
                        Ok(_)
                        | Err(crossbeam_channel::TryRecvError::Empty)
                        | Err(crossbeam_channel::TryRecvError::Disconnected) => {
                            let _ = tx.blocking_send(Streamed::End(bound));
                            return;
                        }
                    }
                }
            }
            loop {
                match records.recv_timeout(BRIDGE_POLL) {
                    Ok(r) => {
                        let line = podport_journal::dump::record_json(&r);
                        if tx.blocking_send(Streamed::Record(line)).is_err() {
                            return;
                        }
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) if tx.is_closed() => return,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                        let _ = tx.blocking_send(Streamed::Lost);
                        return;
                    }
                }
            }
        });
    if let Err(e) = bridge {
        let msg = format!("cannot start the journal stream: {e}");
        warn!(conn = id, "{msg}");
        write_line(wr, &error_line(&msg)).await?;
        return Ok(Next::Continue);
    }
    let mut sent = 0u64;
    loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some(Streamed::Record(line)) => {
                    if let Err(e) = write_line(wr, &line).await {
                        info!(conn = id, sent, error = %e, "journal reader hung up");
                        return Ok(Next::Close);
                    }
                    sent += 1;
                }
                Some(Streamed::End(last)) => {
                    write_line(wr, &end_line(last)).await?;
                    info!(conn = id, sent, last_seq = last, "journal history sent");
                    return Ok(Next::Continue);
                }
                Some(Streamed::Lost) | None => {
                    let msg = "journal stream ended: this reader fell too far behind, or the journal stopped";
                    info!(conn = id, sent, "{msg}");
                    let _ = write_line(wr, &error_line(msg)).await;
                    return Ok(Next::Close);
                }
            },
            // Only a following stream waits on the client; a bounded one ends by itself (and a
            // client pipelining its next request must not have it swallowed).
            () = client_gone(rd), if follow => {
                info!(conn = id, sent, "journal reader hung up");
                return Ok(Next::Close);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_connection_idle_the_longest_makes_room() {
        let conns = Arc::new(Conns::new(3, 2));
        let a = conns.register(1);
        std::thread::sleep(Duration::from_millis(2));
        let b = conns.register(2);
        std::thread::sleep(Duration::from_millis(2));
        let c = conns.register(3);
        assert_eq!(conns.occupied(), 3);
        assert!(conns.can_admit(), "idle ones can make room");
        // The oldest idle one is busy serving: never cut; the next oldest goes.
        assert!(a.state.enter(BUSY));
        assert_eq!(conns.evict_oldest_idle(), Some(2));
        assert_eq!(conns.occupied(), 2, "a closing connection does not count");
        // Evicted just as its request came: the request is not served.
        assert!(!b.state.enter(BUSY));
        drop(b);
        let d = conns.register(4);
        // Idle again after its answer, `a`'s clock starts over: of c, d and a, c has been
        // idle the longest.
        a.state.enter_idle();
        assert_eq!(conns.evict_oldest_idle(), Some(3));
        drop(c);
        // Two streaming and one busy: nothing to close, and no room.
        let e = conns.register(5);
        assert!(a.state.enter(STREAMING) && d.state.enter(STREAMING) && e.state.enter(BUSY));
        assert!(!conns.can_admit());
        assert_eq!(conns.evict_oldest_idle(), None);
        // Stream slots are bounded and given back.
        let s1 = conns.start_stream().unwrap();
        let _s2 = conns.start_stream().unwrap();
        assert!(conns.start_stream().is_none());
        drop(s1);
        assert!(conns.start_stream().is_some());
        // A task's end removes its entry.
        drop((a, d, e));
        assert_eq!(conns.occupied(), 0);
        assert!(conns.table().is_empty());
    }
}
