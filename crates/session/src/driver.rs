//! The one reconnecting-session driver under both clients.
//!
//! A client task owns a transport stream and a protocol's per-connection state (a [`Link`]:
//! the sans-IO core plus the client's request bookkeeping). The driver does everything that
//! is not protocol: connecting through `podport-transport` with doubling backoff, reading and
//! writing at the same time with a write timeout, arming the core's timer, answering requests
//! while no connection is up, and the bounded event channel ([`EventSink`]).
//!
//! Per turn of the loop, in this order: the link's events are drained (handling one may
//! queue requests), held events move into the channel (and an owed resync is asked for),
//! outgoing bytes are taken, then the task waits for whichever comes first: a write, the
//! write timeout, a read, a request, room in the event channel, or the core's timer.

use std::collections::VecDeque;
use std::fmt::Display;
use std::time::Duration;

use bytes::BytesMut;
use podport_transport::{connect, BoxStream, Endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn, Instrument, Span};

/// The driver's settings, the same for both clients (`ClientOptions::driver`,
/// `OvsdbOptions::driver`).
#[derive(Clone, Copy, Debug)]
pub struct DriverOptions {
    /// First delay before reconnecting; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A write that makes no progress for this long ends the connection.
    pub write_timeout: Duration,
    /// The bound of the event channel (see each client's module documentation for what
    /// happens when it is full). 65 536 events hold a burst of PortStatus for thousands of
    /// ports at once in a few MiB.
    pub event_capacity: usize,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            event_capacity: 65_536,
        }
    }
}

/// What ends a connection below the protocol; each client's `DisconnectReason` has a
/// variant for each of these.
#[derive(Debug)]
pub(crate) enum LinkError {
    ConnectFailed(String),
    PeerClosed,
    Io(String),
    WriteStalled(Duration),
}

/// How an event behaves in a full channel.
pub(crate) trait SinkEvent: Send + 'static {
    /// What a full channel drops, for the log ("dropping X until there is room, then Y").
    const DROPPING: &'static str;
    /// May be dropped when the channel is full: a resync later brings the truth instead.
    fn is_droppable(&self) -> bool;
    /// When the backlog overflows, the latest such event survives beside the newest one.
    fn outlives_overflow(&self) -> bool;
}

/// A protocol's state for one connection, driven by [`start`].
pub(crate) trait Link: Send + 'static {
    type Command: Send + 'static;
    type Event: SinkEvent;
    type Reason: From<LinkError> + Clone + Display + Send + Sync + 'static;
    /// For the log: "OpenFlow", "OVSDB".
    const NAME: &'static str;

    /// Bytes arrived in `buf`: take every whole message off its front and feed the core.
    fn handle_input(
        &mut self,
        buf: &mut BytesMut,
        now: std::time::Instant,
    ) -> Result<(), Self::Reason>;
    fn handle_command(&mut self, cmd: Self::Command, events: &mut EventSink<Self::Event>);
    /// Every request queued so far has been handled.
    fn commands_done(&mut self) {}
    fn handle_timeout(&mut self, now: std::time::Instant) -> Result<(), Self::Reason>;
    /// Turns the core's events into client events and replies.
    fn poll_events(&mut self, events: &mut EventSink<Self::Event>) -> Result<(), Self::Reason>;
    /// The event channel has room again after dropping events: send the truth, or call
    /// [`EventSink::owe`] when the connection cannot tell it yet.
    fn resync(&mut self, events: &mut EventSink<Self::Event>) -> Result<(), Self::Reason>;
    /// Appends the bytes to send.
    fn poll_transmit(&mut self, out: &mut BytesMut);
    fn poll_timeout(&self) -> Option<std::time::Instant>;
    /// Whether this connection got through its handshake (the backoff then starts over).
    fn reached_ready(&self) -> bool;
    /// The connection ended: every pending request fails with `reason`.
    fn fail_all(&mut self, reason: &Self::Reason);
    /// Answers a request made while no connection is up.
    fn refuse(cmd: Self::Command);
    fn disconnected(reason: Self::Reason) -> Self::Event;
}

/// A client's error for "the client task has stopped".
pub(crate) trait Stopped {
    fn stopped() -> Self;
}

/// The sending end of a client task's requests, held by every handle of the client. The
/// task stops when the last one is dropped.
pub(crate) struct Requests<C>(mpsc::UnboundedSender<C>);

impl<C> Clone for Requests<C> {
    fn clone(&self) -> Self {
        Requests(self.0.clone())
    }
}

impl<C> Requests<C> {
    /// Hands `cmd` to the task without waiting for anything.
    pub(crate) fn send<E: Stopped>(&self, cmd: C) -> Result<(), E> {
        self.0.send(cmd).map_err(|_| E::stopped())
    }

    /// Sends the request that `make` builds around a reply channel, and waits for the reply.
    pub(crate) async fn call<T, E: Stopped>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, E>>) -> C,
    ) -> Result<T, E> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| E::stopped())?
    }
}

/// Connection events waiting for room in a full event channel, at most.
pub const MAX_EVENT_BACKLOG: usize = 64;

/// The client's end of the bounded event channel. The read loop never waits for the
/// consumer: a droppable event that finds the channel full is dropped and a resync is owed;
/// other events wait in a backlog of at most [`MAX_EVENT_BACKLOG`].
pub(crate) struct EventSink<E> {
    tx: mpsc::Sender<E>,
    /// Events that found the channel full, in order.
    backlog: VecDeque<E>,
    /// Events dropped since the last resync.
    dropped: u64,
    /// A resync is owed to the consumer once there is room.
    resync: bool,
}

impl<E: SinkEvent> EventSink<E> {
    fn new(tx: mpsc::Sender<E>) -> EventSink<E> {
        EventSink {
            tx,
            backlog: VecDeque::new(),
            dropped: 0,
            resync: false,
        }
    }

    pub(crate) fn send(&mut self, ev: E) {
        // Nothing overtakes the backlog: events stay in order.
        if !self.backlog.is_empty() {
            return self.hold(ev);
        }
        match self.tx.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => self.hold(ev),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// The resync still waits: the connection cannot tell the truth yet (its handshake's
    /// own resync will).
    pub(crate) fn owe(&mut self) {
        self.resync = true;
    }

    /// The event just sent (or asked for) is the truth a resync would bring.
    pub(crate) fn paid(&mut self) {
        self.resync = false;
    }

    /// How many events were dropped since the last call.
    pub(crate) fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    fn hold(&mut self, ev: E) {
        if ev.is_droppable() {
            if self.dropped == 0 {
                warn!("event channel full: {}", E::DROPPING);
            }
            self.dropped += 1;
            self.resync = true;
            return;
        }
        self.backlog.push_back(ev);
        if self.backlog.len() > MAX_EVENT_BACKLOG {
            // Each connection change supersedes the ones before it: keep the latest (and
            // the latest one that outlives an overflow), then resynchronise after it.
            let last = self.backlog.pop_back();
            let kept = self.backlog.drain(..).rfind(SinkEvent::outlives_overflow);
            self.backlog.extend(kept);
            self.backlog.extend(last);
            self.resync = true;
        }
    }

    /// True while held events wait for room, or a resync waits for a free slot.
    fn needs_room(&self) -> bool {
        !self.backlog.is_empty() || (self.resync && self.tx.capacity() == 0)
    }

    /// Moves held events into the channel while it has room. Returns false when the channel
    /// is full (or gone) before the backlog is empty.
    fn flush_backlog(&mut self) -> bool {
        while let Some(ev) = self.backlog.pop_front() {
            match self.tx.try_send(ev) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(ev)) => {
                    self.backlog.push_front(ev);
                    return false;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.backlog.clear();
                    return false;
                }
            }
        }
        true
    }

    /// [`EventSink::flush_backlog`], then true when the owed resync should happen now.
    fn flush(&mut self) -> bool {
        if self.flush_backlog() && self.resync && self.tx.capacity() > 0 {
            self.resync = false;
            return true;
        }
        false
    }
}

/// Resolves when the event channel has room (never, while nothing waits for it).
async fn room<E>(tx: &mpsc::Sender<E>, waiting: bool) {
    if !waiting {
        return std::future::pending().await;
    }
    // The permit is released at once: this only waits for a free slot.
    let _ = tx.reserve().await;
}

/// Starts a client task for `endpoint` on the current tokio runtime, in `span`. It connects
/// at once, makes a new link with `open` for every connection, and keeps reconnecting until
/// every clone of the returned [`Requests`] is dropped.
pub(crate) fn start<L: Link>(
    endpoint: Endpoint,
    options: DriverOptions,
    span: Span,
    open: impl FnMut(std::time::Instant) -> L + Send + 'static,
) -> (Requests<L::Command>, mpsc::Receiver<L::Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::channel(options.event_capacity.max(1));
    tokio::spawn(run(endpoint, options, open, rx, ev_tx).instrument(span));
    (Requests(tx), ev_rx)
}

enum SessionEnd<R> {
    /// Every handle was dropped.
    Stop,
    Lost(R),
}

async fn run<L: Link>(
    endpoint: Endpoint,
    timing: DriverOptions,
    mut open: impl FnMut(std::time::Instant) -> L,
    mut commands: mpsc::UnboundedReceiver<L::Command>,
    events: mpsc::Sender<L::Event>,
) {
    let room_tx = events.clone();
    let mut events = EventSink::new(events);
    let mut backoff = timing.backoff_initial;
    let mut announced_down = false;
    loop {
        // While down only the backlog of connection events moves: a resync owed is paid by
        // the next connection's handshake.
        let attempt = loop {
            tokio::select! {
                r = connect(&endpoint) => break r,
                () = refuse_while_down::<L>(&mut commands) => return,
                _ = room(&room_tx, !events.backlog.is_empty()) => { events.flush_backlog(); }
            }
        };
        match attempt {
            Ok(stream) => {
                debug!("transport connected");
                let mut link = open(Instant::now().into_std());
                match session(
                    stream,
                    &mut link,
                    &timing,
                    &mut commands,
                    &mut events,
                    &room_tx,
                )
                .await
                {
                    SessionEnd::Stop => return,
                    SessionEnd::Lost(reason) => {
                        if link.reached_ready() {
                            backoff = timing.backoff_initial;
                        }
                        warn!(%reason, "{} connection ended", L::NAME);
                        events.send(L::disconnected(reason));
                        announced_down = true;
                    }
                }
            }
            Err(e) => {
                let reason = L::Reason::from(LinkError::ConnectFailed(format!("{endpoint}: {e}")));
                // One event per outage, not one per retry.
                if !announced_down {
                    warn!(%reason, "cannot reach the {} peer; retrying with backoff", L::NAME);
                    events.send(L::disconnected(reason));
                    announced_down = true;
                } else {
                    debug!(%reason, "reconnect attempt failed");
                }
            }
        }
        debug!(?backoff, "waiting before reconnecting");
        let wake = tokio::time::sleep(backoff);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                _ = &mut wake => break,
                () = refuse_while_down::<L>(&mut commands) => return,
                _ = room(&room_tx, !events.backlog.is_empty()) => { events.flush_backlog(); }
            }
        }
        backoff = (backoff * 2).min(timing.backoff_max);
    }
}

/// Refuses requests until the command channel closes (then returns).
async fn refuse_while_down<L: Link>(commands: &mut mpsc::UnboundedReceiver<L::Command>) {
    while let Some(cmd) = commands.recv().await {
        L::refuse(cmd);
    }
}

async fn session<L: Link>(
    stream: BoxStream,
    link: &mut L,
    timing: &DriverOptions,
    commands: &mut mpsc::UnboundedReceiver<L::Command>,
    events: &mut EventSink<L::Event>,
    room_tx: &mpsc::Sender<L::Event>,
) -> SessionEnd<L::Reason> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    // Bytes not yet written are written while reading goes on: ovs-vswitchd and ovsdb-server
    // both stop reading a connection that has output queued for it, so a client that waited
    // for its own write before reading again could deadlock with them under a burst.
    let mut wbuf = BytesMut::new();
    let mut write_progress = Instant::now();
    let end: L::Reason = loop {
        // Events first: handling them may make requests, whose bytes the drain below takes.
        if let Err(reason) = link.poll_events(events) {
            break reason;
        }
        if events.flush() {
            if let Err(reason) = link.resync(events) {
                break reason;
            }
        }
        if wbuf.is_empty() {
            write_progress = Instant::now();
        }
        link.poll_transmit(&mut wbuf);
        let deadline = link.poll_timeout().map(Instant::from_std);
        tokio::select! {
            written = wr.write(&wbuf), if !wbuf.is_empty() => {
                match written {
                    Ok(0) => break LinkError::Io("the socket accepted no bytes".into()).into(),
                    Ok(n) => {
                        let _ = wbuf.split_to(n);
                        write_progress = Instant::now();
                    }
                    Err(e) => break LinkError::Io(e.to_string()).into(),
                }
            }
            _ = tokio::time::sleep_until(write_progress + timing.write_timeout), if !wbuf.is_empty() => {
                break LinkError::WriteStalled(timing.write_timeout).into();
            }
            read = rd.read_buf(&mut rbuf) => {
                match read {
                    Ok(0) => break LinkError::PeerClosed.into(),
                    Ok(_) => {}
                    Err(e) => break LinkError::Io(e.to_string()).into(),
                }
                if let Err(reason) = link.handle_input(&mut rbuf, Instant::now().into_std()) {
                    // Best effort: when the core queued a goodbye (OpenFlow's HELLO_FAILED),
                    // let the peer see why before hanging up.
                    let queued = wbuf.len();
                    link.poll_transmit(&mut wbuf);
                    if wbuf.len() > queued {
                        let _ = tokio::time::timeout(Duration::from_millis(100), wr.write_all(&wbuf)).await;
                    }
                    break reason;
                }
            }
            cmd = commands.recv() => {
                let Some(cmd) = cmd else {
                    link.fail_all(&LinkError::Io("client stopped".into()).into());
                    return SessionEnd::Stop;
                };
                link.handle_command(cmd, events);
                // Take everything already queued, so that the link sees a burst as one.
                while let Ok(cmd) = commands.try_recv() {
                    link.handle_command(cmd, events);
                }
                link.commands_done();
            }
            _ = room(room_tx, events.needs_room()) => {}
            _ = sleep_until_opt(deadline) => {
                if let Err(reason) = link.handle_timeout(Instant::now().into_std()) {
                    break reason;
                }
            }
        }
    };
    link.fail_all(&end);
    SessionEnd::Lost(end)
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Ev {
        Up(u32),
        Down(u32),
        Change(u32),
    }

    impl SinkEvent for Ev {
        const DROPPING: &'static str = "dropping changes";
        fn is_droppable(&self) -> bool {
            matches!(self, Ev::Change(_))
        }
        fn outlives_overflow(&self) -> bool {
            matches!(self, Ev::Down(_))
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Ev>) -> Vec<Ev> {
        let mut out = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            out.push(ev);
        }
        out
    }

    #[test]
    fn a_full_channel_drops_changes_and_owes_a_resync() {
        let (tx, mut rx) = mpsc::channel(2);
        let mut sink = EventSink::new(tx);
        sink.send(Ev::Change(1));
        sink.send(Ev::Change(2));
        sink.send(Ev::Change(3));
        sink.send(Ev::Change(4));
        assert_eq!(sink.take_dropped(), 2);
        // No room yet: nothing to do.
        assert!(!sink.flush());
        assert_eq!(drain(&mut rx), [Ev::Change(1), Ev::Change(2)]);
        assert!(sink.flush(), "room again: the resync is due");
        assert!(!sink.flush(), "and due once");
    }

    #[test]
    fn connection_events_wait_in_order_and_nothing_overtakes_them() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut sink = EventSink::new(tx);
        sink.send(Ev::Up(1));
        sink.send(Ev::Down(1));
        sink.send(Ev::Change(1));
        sink.send(Ev::Up(2));
        assert_eq!(drain(&mut rx), [Ev::Up(1)]);
        assert!(sink.needs_room());
        sink.flush();
        assert_eq!(drain(&mut rx), [Ev::Down(1)]);
        sink.flush();
        assert_eq!(drain(&mut rx), [Ev::Up(2)]);
        assert!(
            sink.flush(),
            "the change dropped behind the backlog is owed"
        );
    }

    #[test]
    fn an_overflowing_backlog_keeps_the_latest_survivor_and_the_newest() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut sink = EventSink::new(tx);
        sink.send(Ev::Change(0));
        // One more connection event than the backlog holds, the newest an `Up`.
        for i in 0..=MAX_EVENT_BACKLOG as u32 {
            sink.send(if i % 2 == 1 { Ev::Down(i) } else { Ev::Up(i) });
        }
        let n = MAX_EVENT_BACKLOG as u32;
        assert_eq!(
            Vec::from(std::mem::take(&mut sink.backlog)),
            [Ev::Down(n - 1), Ev::Up(n)]
        );
        assert_eq!(drain(&mut rx), [Ev::Change(0)]);
        assert!(sink.flush(), "a resync follows the overflow");
    }

    #[test]
    fn a_closed_channel_swallows_events() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut sink = EventSink::new(tx);
        sink.send(Ev::Up(1));
        sink.send(Ev::Down(1));
        assert!(!sink.needs_room());
    }
}
