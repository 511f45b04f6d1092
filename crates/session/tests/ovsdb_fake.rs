//! Fault cases a real ovsdb-server does not produce (garbage, truncated JSON, a huge string,
//! a reply to an id never used, a schema without podport's columns, a server without
//! monitor_cond, JSON nested deeper than ovsdb-server accepts), against a fake server on
//! loopback TCP.

use std::time::Duration;

use bytes::BytesMut;
use podport_ovsdb::conn::SessionError;
use podport_ovsdb::rpc;
use podport_ovsdb::schema::SchemaError;
use podport_ovsdb::splitter::{JsonSplitter, MAX_DEPTH};
use podport_session::ovsdb::{
    DisconnectReason, OvsdbClient, OvsdbEvent, OvsdbEventReceiver, OvsdbOptions,
};
use podport_session::DriverOptions;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BOUND: Duration = Duration::from_secs(10);

/// Just the tables and columns podport needs, in the schema's wire form.
fn schema(drop_column: Option<&str>) -> Value {
    let mut tables = serde_json::Map::new();
    let cols = |pairs: &[(&str, Value)]| {
        let mut m = serde_json::Map::new();
        for (c, t) in pairs {
            if Some(*c) != drop_column {
                m.insert(c.to_string(), json!({ "type": t }));
            }
        }
        json!({ "columns": m })
    };
    let uuid_set = json!({"key": {"type": "uuid"}, "min": 0, "max": "unlimited"});
    let str_map = json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"});
    let opt_int = json!({"key": "integer", "min": 0, "max": 1});
    let opt_str = json!({"key": "string", "min": 0, "max": 1});
    tables.insert(
        "Open_vSwitch".into(),
        cols(&[
            ("bridges", uuid_set.clone()),
            ("next_cfg", json!("integer")),
            ("cur_cfg", json!("integer")),
        ]),
    );
    tables.insert(
        "Bridge".into(),
        cols(&[
            ("name", json!("string")),
            ("ports", uuid_set.clone()),
            ("datapath_type", json!("string")),
        ]),
    );
    tables.insert(
        "Port".into(),
        cols(&[
            ("name", json!("string")),
            ("interfaces", uuid_set),
            ("external_ids", str_map.clone()),
        ]),
    );
    tables.insert(
        "Interface".into(),
        cols(&[
            ("name", json!("string")),
            ("type", json!("string")),
            ("ofport", opt_int.clone()),
            ("ofport_request", opt_int),
            ("error", opt_str.clone()),
            ("external_ids", str_map),
            ("admin_state", opt_str.clone()),
            ("link_state", opt_str),
        ]),
    );
    json!({"name": "Open_vSwitch", "version": "8.3.0", "tables": tables})
}

struct FakeServer {
    stream: TcpStream,
    buf: BytesMut,
    splitter: JsonSplitter,
}

impl FakeServer {
    async fn accept(l: &TcpListener) -> FakeServer {
        let (stream, _) = tokio::time::timeout(BOUND, l.accept())
            .await
            .expect("client did not (re)connect in time")
            .unwrap();
        FakeServer {
            stream,
            buf: BytesMut::new(),
            splitter: JsonSplitter::new(1 << 20),
        }
    }

    async fn recv(&mut self) -> Value {
        loop {
            if let Some(msg) = self.splitter.decode(&mut self.buf).unwrap() {
                // Not serde_json::from_slice: its default limit is 128 levels.
                return rpc::parse_value(&msg).unwrap();
            }
            let n = tokio::time::timeout(BOUND, self.stream.read_buf(&mut self.buf))
                .await
                .expect("client sent nothing")
                .unwrap();
            assert!(n > 0, "client closed");
        }
    }

    async fn send(&mut self, v: Value) {
        self.stream
            .write_all(v.to_string().as_bytes())
            .await
            .unwrap();
    }

    async fn reply(&mut self, req: &Value, result: Value) {
        self.send(json!({"id": req["id"], "result": result, "error": null}))
            .await;
    }

    /// Serves get_schema and the monitor request like ovsdb-server with an empty database.
    async fn handshake(&mut self) {
        let req = self.recv().await;
        assert_eq!(req["method"], "get_schema");
        self.reply(&req, schema(None)).await;
        let req = self.recv().await;
        assert_eq!(req["method"], "monitor_cond");
        assert_eq!(req["params"][1], "podport");
        assert!(req["params"][2]["Interface"][0]["columns"]
            .as_array()
            .unwrap()
            .contains(&json!("ofport")));
        self.reply(&req, json!({})).await;
    }
}

/// A loopback TCP listener: the fault cases are the client's, not the transport's, so they run
/// the same on Linux and (under Wine) on Windows.
fn listener() -> (TcpListener, podport_transport::Endpoint) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let ep = podport_transport::Endpoint::Tcp(l.local_addr().unwrap().to_string());
    (TcpListener::from_std(l).unwrap(), ep)
}

fn options() -> OvsdbOptions {
    OvsdbOptions {
        driver: DriverOptions {
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            ..DriverOptions::default()
        },
        max_message_len: 4096,
        ..OvsdbOptions::default()
    }
}

async fn next(rx: &mut OvsdbEventReceiver) -> OvsdbEvent {
    tokio::time::timeout(BOUND, rx.recv())
        .await
        .expect("no event in time")
        .expect("stream ended")
}

async fn connected(rx: &mut OvsdbEventReceiver) {
    assert!(matches!(next(rx).await, OvsdbEvent::Connected { .. }));
    assert!(matches!(next(rx).await, OvsdbEvent::Snapshot(_)));
}

async fn disconnected(rx: &mut OvsdbEventReceiver) -> DisconnectReason {
    match next(rx).await {
        OvsdbEvent::Disconnected { reason } => reason,
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_is_a_clear_error_then_a_reconnect() {
    let (l, ep) = listener();
    let (_c, mut rx) = OvsdbClient::start(ep, options());
    let mut s = FakeServer::accept(&l).await;
    s.handshake().await;
    connected(&mut rx).await;
    s.stream.write_all(b"hello, I am not JSON").await.unwrap();
    let reason = disconnected(&mut rx).await;
    assert!(
        matches!(reason, DisconnectReason::Framing(ref m) if m.contains("not")),
        "{reason:?}"
    );
    FakeServer::accept(&l).await.handshake().await;
    connected(&mut rx).await;
}

#[tokio::test]
async fn invalid_json_inside_balanced_braces_is_rejected() {
    let (l, ep) = listener();
    let (_c, mut rx) = OvsdbClient::start(ep, options());
    let mut s = FakeServer::accept(&l).await;
    s.handshake().await;
    connected(&mut rx).await;
    s.stream.write_all(b"{\"id\": nope}").await.unwrap();
    let reason = disconnected(&mut rx).await;
    assert!(
        matches!(reason, DisconnectReason::Session(SessionError::Rpc(_))),
        "{reason:?}"
    );
}

#[tokio::test]
async fn truncated_json_then_close_is_peer_closed() {
    let (l, ep) = listener();
    let (_c, mut rx) = OvsdbClient::start(ep, options());
    let mut s = FakeServer::accept(&l).await;
    s.handshake().await;
    connected(&mut rx).await;
    s.stream
        .write_all(b"{\"id\":null,\"method\":\"update2\",\"params\":[\"podport\",{\"Inter")
        .await
        .unwrap();
    drop(s);
    assert_eq!(disconnected(&mut rx).await, DisconnectReason::PeerClosed);
    FakeServer::accept(&l).await.handshake().await;
    connected(&mut rx).await;
}

#[tokio::test]
async fn a_huge_string_is_cut_off_at_the_bound() {
    let (l, ep) = listener();
    let (_c, mut rx) = OvsdbClient::start(ep, options());
    let mut s = FakeServer::accept(&l).await;
    s.handshake().await;
    connected(&mut rx).await;
    // 1 MiB of string against a 4 KiB bound; the writer may see the client hang up.
    let huge = format!(
        "{{\"id\":null,\"method\":\"update2\",\"params\":[\"{}",
        "x".repeat(1 << 20)
    );
    let _ = s.stream.write_all(huge.as_bytes()).await;
    let reason = disconnected(&mut rx).await;
    assert!(
        matches!(reason, DisconnectReason::Framing(ref m) if m.contains("4096")),
        "{reason:?}"
    );
    FakeServer::accept(&l).await.handshake().await;
    connected(&mut rx).await;
}

#[tokio::test]
async fn a_reply_with_an_unknown_id_ends_the_session() {
    let (l, ep) = listener();
    let (_c, mut rx) = OvsdbClient::start(ep, options());
    let mut s = FakeServer::accept(&l).await;
    s.handshake().await;
    connected(&mut rx).await;
    s.send(json!({"id": 9999, "result": [], "error": null}))
        .await;
    assert_eq!(
        disconnected(&mut rx).await,
        DisconnectReason::Session(SessionError::UnknownId("9999".into()))
    );
    FakeServer::accept(&l).await.handshake().await;
    connected(&mut rx).await;
}

#[tokio::test]
async fn a_schema_without_podports_columns_is_refused_clearly() {
    let (l, ep) = listener();
    let (_c, mut rx) = OvsdbClient::start(ep, options());
    let mut s = FakeServer::accept(&l).await;
    let req = s.recv().await;
    s.reply(&req, schema(Some("ofport"))).await;
    let reason = disconnected(&mut rx).await;
    match &reason {
        DisconnectReason::Schema(SchemaError::MissingColumn { table, column, .. }) => {
            assert_eq!((table.as_str(), column.as_str()), ("Interface", "ofport"));
        }
        other => panic!("expected MissingColumn, got {other:?}"),
    }
    assert!(reason.to_string().contains("ofport"), "{reason}");
}

#[tokio::test]
async fn falls_back_to_monitor_when_monitor_cond_is_unknown() {
    let (l, ep) = listener();
    let (client, mut rx) = OvsdbClient::start(ep, options());
    let mut s = FakeServer::accept(&l).await;
    let req = s.recv().await;
    s.reply(&req, schema(None)).await;
    let req = s.recv().await;
    assert_eq!(req["method"], "monitor_cond");
    s.send(json!({"id": req["id"], "result": null, "error": {"error": "unknown method"}}))
        .await;
    let req = s.recv().await;
    assert_eq!(req["method"], "monitor");
    let iface = "6f1d2a3b-0000-4000-8000-000000000001";
    s.reply(&req, json!({"Interface": {iface: {"new": {"name": "vnic-a", "type": "", "ofport": ["set", []]}}}})).await;
    connected(&mut rx).await;
    // An old-style update: ofport assigned.
    s.send(json!({"id": null, "method": "update", "params": ["podport",
        {"Interface": {iface: {"old": {"ofport": ["set", []]}, "new": {"name": "vnic-a", "type": "", "ofport": 7}}}}]}))
        .await;
    match next(&mut rx).await {
        OvsdbEvent::InterfaceChanged(c) => assert_eq!(c.new.unwrap().ofport, Some(7)),
        other => panic!("{other:?}"),
    }
    let snap = client.snapshot().await.unwrap();
    assert_eq!(snap.interfaces[0].ofport, Some(7));
}

#[tokio::test]
async fn requests_fail_clearly_when_the_server_vanishes() {
    let (l, ep) = listener();
    let (client, mut rx) = OvsdbClient::start(ep, options());
    let mut s = FakeServer::accept(&l).await;
    s.handshake().await;
    connected(&mut rx).await;
    let pending = tokio::spawn({
        let c = client.clone();
        async move { c.list_dbs().await }
    });
    let req = s.recv().await;
    assert_eq!(req["method"], "list_dbs");
    drop(s);
    drop(l);
    let r = tokio::time::timeout(BOUND, pending).await.unwrap().unwrap();
    assert_eq!(
        r,
        Err(podport_session::ovsdb::OvsdbError::Disconnected(
            DisconnectReason::PeerClosed
        ))
    );
    assert_eq!(disconnected(&mut rx).await, DisconnectReason::PeerClosed);
    assert_eq!(
        client.echo().await,
        Err(podport_session::ovsdb::OvsdbError::NotConnected)
    );
}

#[tokio::test]
async fn a_full_event_channel_drops_changes_then_sends_a_snapshot_with_every_row() {
    let (l, ep) = listener();
    let mut opts = options();
    opts.driver.event_capacity = 3;
    opts.max_message_len = 1 << 20;
    let (_client, mut rx) = OvsdbClient::start(ep, opts);
    let mut srv = FakeServer::accept(&l).await;
    srv.handshake().await;
    // Nobody reads: Connected and the (empty) snapshot take two slots, one insert the third,
    // the other nineteen are dropped.
    for i in 0..20 {
        let uuid = format!("00000000-0000-4000-8000-{i:012}");
        srv.send(
            json!({"id": null, "method": "update2", "params": ["podport", {
                "Interface": { uuid: { "insert": {
                    "name": format!("p{i}"), "type": "internal", "ofport": i + 1
                }}}
            }]}),
        )
        .await;
    }
    // The client keeps serving the session meanwhile: it answers an echo.
    srv.send(json!({"id": "e1", "method": "echo", "params": []}))
        .await;
    loop {
        let v = srv.recv().await;
        if v["id"] == "e1" {
            break;
        }
    }
    async fn next(rx: &mut OvsdbEventReceiver) -> OvsdbEvent {
        tokio::time::timeout(BOUND, rx.recv())
            .await
            .expect("no event in time")
            .expect("stream ended")
    }
    assert!(matches!(next(&mut rx).await, OvsdbEvent::Connected { .. }));
    assert!(matches!(next(&mut rx).await, OvsdbEvent::Snapshot(s) if s.interfaces.is_empty()));
    assert!(matches!(
        next(&mut rx).await,
        OvsdbEvent::InterfaceChanged(_)
    ));
    // Room again: one snapshot with all twenty rows replaces the dropped changes.
    match next(&mut rx).await {
        OvsdbEvent::Snapshot(s) => assert_eq!(s.interfaces.len(), 20),
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

/// An `echo` request whose params nest so that the message is `depth` levels deep in all.
fn deep_echo(depth: usize) -> Vec<u8> {
    let mut text = br#"{"id":"deep","method":"echo","params":"#.to_vec();
    text.extend(std::iter::repeat_n(b'[', depth - 1));
    text.extend(std::iter::repeat_n(b']', depth - 1));
    text.push(b'}');
    text
}

/// Depth of the first-element chain of `v`.
fn depth_of(mut v: &Value) -> usize {
    let mut d = 1;
    while let Some(inner) = v.as_array().and_then(|a| a.first()) {
        d += 1;
        v = inner;
    }
    d
}

/// Runs in the test thread (2 MiB of stack) with the current-thread runtime, so the client's
/// parsing of the deep message runs on that stack too, in debug builds as well.
#[tokio::test]
async fn a_message_nested_as_deep_as_ovsdb_server_accepts_is_served() {
    let (l, ep) = listener();
    let (_c, mut rx) = OvsdbClient::start(ep, options());
    let mut s = FakeServer::accept(&l).await;
    s.handshake().await;
    connected(&mut rx).await;
    for depth in [128, 999, MAX_DEPTH] {
        s.stream.write_all(&deep_echo(depth)).await.unwrap();
        let reply = s.recv().await;
        assert_eq!(reply["id"], "deep");
        assert_eq!(depth_of(&reply["result"]) + 1, depth);
    }
    // Still the same session: a plain echo is answered, and no event (no Disconnected).
    s.send(json!({"id": "after", "method": "echo", "params": []}))
        .await;
    assert_eq!(s.recv().await["id"], "after");
    assert!(rx.try_recv().is_err(), "no event: the session went on");
}

/// A writer into a shared buffer, for the client's log lines.
#[derive(Clone, Default)]
struct LogBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_message_nested_deeper_is_a_logged_error_then_a_reconnect() {
    let log = LogBuf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .with_ansi(false)
        .finish();
    // The current-thread runtime runs the client's task on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let (l, ep) = listener();
    let (_c, mut rx) = OvsdbClient::start(ep, options());
    let mut s = FakeServer::accept(&l).await;
    s.handshake().await;
    connected(&mut rx).await;
    let _ = s.stream.write_all(&deep_echo(MAX_DEPTH + 1)).await;
    let reason = disconnected(&mut rx).await;
    assert!(
        matches!(reason, DisconnectReason::Framing(ref m) if m.contains("deeper than 1000")),
        "{reason:?}"
    );
    FakeServer::accept(&l).await.handshake().await;
    connected(&mut rx).await;
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("OVSDB connection ended"))
        .unwrap_or_else(|| panic!("no log line for the end of the session in:\n{log}"));
    assert!(
        line.contains("WARN") && line.contains("deeper than 1000"),
        "{line}"
    );
}
