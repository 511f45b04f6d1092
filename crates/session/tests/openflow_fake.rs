//! Fault cases a real OVS cannot produce (malformed bytes, a switch that vanishes mid-request),
//! against a fake switch on loopback TCP. Everything a real OVS can do is tested against a real
//! OVS in the workspace's `tests/` package.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use podport_openflow::{
    decode, encode, ConnError, FeaturesReply, FlowMod, Header, Hello, Message, OfFramer, Version,
};
use podport_session::openflow::{
    ClientError, ClientEvent, ClientOptions, DisconnectReason, EventReceiver, OfClient,
};
use podport_session::{DriverOptions, Endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BOUND: Duration = Duration::from_secs(10);

struct FakeSwitch {
    stream: TcpStream,
    buf: BytesMut,
}

impl FakeSwitch {
    async fn accept(listener: &TcpListener) -> FakeSwitch {
        let (stream, _) = tokio::time::timeout(BOUND, listener.accept())
            .await
            .expect("client did not (re)connect in time")
            .unwrap();
        FakeSwitch {
            stream,
            buf: BytesMut::new(),
        }
    }

    async fn recv(&mut self) -> Option<(Header, Message)> {
        loop {
            if let Some(frame) = OfFramer.decode(&mut self.buf).unwrap() {
                return Some(decode(&frame).unwrap());
            }
            let n = tokio::time::timeout(BOUND, self.stream.read_buf(&mut self.buf))
                .await
                .expect("client sent nothing")
                .unwrap();
            if n == 0 {
                return None;
            }
        }
    }

    async fn send(&mut self, msg: &Message, version: Version, xid: u32) {
        let f = encode(msg, version.wire(), xid).unwrap();
        self.stream.write_all(&f).await.unwrap();
    }

    /// Plays OVS's side of the handshake in `v`.
    async fn handshake(&mut self, v: Version) {
        self.send(&Message::Hello(Hello { versions: None }), v, 1)
            .await;
        loop {
            let (h, m) = self.recv().await.expect("client closed during handshake");
            if m == Message::FeaturesRequest {
                let reply = Message::FeaturesReply(FeaturesReply {
                    datapath_id: 42,
                    n_buffers: 0,
                    n_tables: 254,
                    auxiliary_id: 0,
                    capabilities: 0,
                });
                self.send(&reply, v, h.xid).await;
                return;
            }
        }
    }

    /// Reads until the client closes the connection; panics if it does not within the bound.
    async fn expect_closed(&mut self) {
        let mut sink = [0u8; 1024];
        loop {
            match tokio::time::timeout(BOUND, self.stream.read(&mut sink)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => {}
                Err(_) => panic!("client kept the connection open after bad bytes"),
            }
        }
    }
}

/// A loopback TCP listener: the fault cases are the client's, not the transport's, so they run
/// the same on Linux and (under Wine) on Windows.
fn listener(_name: &str) -> (TcpListener, Endpoint) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let ep = Endpoint::Tcp(l.local_addr().unwrap().to_string());
    (TcpListener::from_std(l).unwrap(), ep)
}

fn fast_options() -> ClientOptions {
    ClientOptions {
        driver: DriverOptions {
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            ..DriverOptions::default()
        },
        ..ClientOptions::default()
    }
}

async fn next(rx: &mut EventReceiver) -> ClientEvent {
    tokio::time::timeout(BOUND, rx.recv())
        .await
        .expect("no client event in time")
        .expect("event stream ended")
}

async fn connected(rx: &mut EventReceiver) {
    match next(rx).await {
        ClientEvent::Connected { datapath_id, .. } => assert_eq!(datapath_id, 42),
        other => panic!("expected Connected, got {other:?}"),
    }
}

async fn disconnected(rx: &mut EventReceiver) -> DisconnectReason {
    match next(rx).await {
        ClientEvent::Disconnected { reason } => reason,
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_frame_shorter_than_its_header_ends_the_connection_and_the_client_reconnects() {
    let (l, ep) = listener("short");
    let (_client, mut rx) = OfClient::start(ep, fast_options());
    let mut sw = FakeSwitch::accept(&l).await;
    sw.handshake(Version::Of15).await;
    connected(&mut rx).await;
    // Declared length 3: a naive length-delimited codec would spin or desynchronise here.
    sw.stream
        .write_all(&[0x06, 12, 0, 3, 0, 0, 0, 0])
        .await
        .unwrap();
    let reason = disconnected(&mut rx).await;
    assert!(
        matches!(reason, DisconnectReason::Protocol(ConnError::Frame(_))),
        "{reason:?}"
    );
    sw.expect_closed().await;
    let mut sw2 = FakeSwitch::accept(&l).await;
    sw2.handshake(Version::Of15).await;
    connected(&mut rx).await;
}

#[tokio::test]
async fn a_malformed_port_status_is_a_decode_error_then_a_reconnect() {
    let (l, ep) = listener("badps");
    let (_client, mut rx) = OfClient::start(ep, fast_options());
    let mut sw = FakeSwitch::accept(&l).await;
    sw.handshake(Version::Of13).await;
    connected(&mut rx).await;
    // A PORT_STATUS of 40 bytes: its 64-byte ofp_port is cut short.
    let mut bad = vec![0x04, 12, 0, 40, 0, 0, 0, 0];
    bad.resize(40, 0xee);
    sw.stream.write_all(&bad).await.unwrap();
    let reason = disconnected(&mut rx).await;
    match &reason {
        DisconnectReason::Protocol(ConnError::Decode { msg, .. }) => assert_eq!(msg, "PORT_STATUS"),
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert!(reason.to_string().contains("truncated"), "{reason}");
    FakeSwitch::accept(&l).await.handshake(Version::Of13).await;
    connected(&mut rx).await;
}

#[tokio::test]
async fn garbage_before_the_handshake_is_rejected() {
    let (l, ep) = listener("garbage");
    let (_client, mut rx) = OfClient::start(ep, fast_options());
    let mut sw = FakeSwitch::accept(&l).await;
    // An HTTP request is not OpenFlow: "GE" is version 0x47, type 0x45, length 0x5420.
    sw.stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    sw.stream.shutdown().await.unwrap();
    let reason = disconnected(&mut rx).await;
    // The declared length (21536) is more than was sent, so the client waits for the rest
    // and then sees the peer close: no huge allocation, no panic.
    assert_eq!(reason, DisconnectReason::PeerClosed);
    FakeSwitch::accept(&l).await.handshake(Version::Of15).await;
    connected(&mut rx).await;
}

#[tokio::test]
async fn echo_requests_from_the_switch_are_answered() {
    let (l, ep) = listener("echo");
    let (_client, mut rx) = OfClient::start(ep, fast_options());
    let mut sw = FakeSwitch::accept(&l).await;
    sw.handshake(Version::Of15).await;
    connected(&mut rx).await;
    let data = Bytes::from_static(b"are you there");
    sw.send(&Message::EchoRequest(data.clone()), Version::Of15, 0x1234)
        .await;
    loop {
        let (h, m) = sw.recv().await.expect("client closed");
        if let Message::EchoReply(d) = m {
            assert_eq!(h.xid, 0x1234);
            assert_eq!(d, data);
            break;
        }
    }
}

#[tokio::test]
async fn a_silent_switch_is_probed_then_dropped() {
    let (l, ep) = listener("silent");
    let mut opts = fast_options();
    opts.conn.echo_interval = Duration::from_millis(100);
    opts.conn.echo_timeout = Duration::from_millis(200);
    let (_client, mut rx) = OfClient::start(ep, opts);
    let mut sw = FakeSwitch::accept(&l).await;
    sw.handshake(Version::Of13).await;
    connected(&mut rx).await;
    // The fake switch reads the probe but never answers.
    loop {
        let (_, m) = sw.recv().await.expect("client closed before probing");
        if matches!(m, Message::EchoRequest(_)) {
            break;
        }
    }
    let reason = disconnected(&mut rx).await;
    assert!(
        matches!(
            reason,
            DisconnectReason::Protocol(ConnError::EchoTimeout(_))
        ),
        "{reason:?}"
    );
}

#[tokio::test]
async fn requests_fail_clearly_when_disconnected_or_when_the_switch_vanishes() {
    let (l, ep) = listener("vanish");
    let (client, mut rx) = OfClient::start(ep, fast_options());
    let mut sw = FakeSwitch::accept(&l).await;
    sw.handshake(Version::Of15).await;
    connected(&mut rx).await;
    // The switch reads the request, then goes away without answering.
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.port_desc().await }
    });
    loop {
        let (_, m) = sw.recv().await.expect("client closed");
        if matches!(m, Message::MultipartRequest(_)) {
            break;
        }
    }
    drop(sw);
    drop(l);
    let result = tokio::time::timeout(BOUND, pending).await.unwrap().unwrap();
    assert_eq!(
        result,
        Err(ClientError::Disconnected(DisconnectReason::PeerClosed))
    );
    assert_eq!(disconnected(&mut rx).await, DisconnectReason::PeerClosed);
    // Nothing listens any more: requests fail at once instead of queueing.
    assert_eq!(
        client.flow_mod(FlowMod::add(0)).await,
        Err(ClientError::NotConnected)
    );
}

#[tokio::test]
async fn the_port_list_taken_on_connect_is_ordered_with_the_port_status_around_it() {
    use podport_openflow::{MultipartReply, MultipartReplyBody, Port, PortReason, PortStatus};
    let (l, ep) = listener("ordered");
    let mut opts = fast_options();
    opts.port_desc_on_connect = true;
    let (_client, mut rx) = OfClient::start(ep, opts);
    let mut sw = FakeSwitch::accept(&l).await;
    sw.handshake(Version::Of15).await;
    connected(&mut rx).await;
    let status = |no: u32, name: &str| {
        Message::PortStatus(PortStatus {
            reason: PortReason::Add,
            port: Port::new(no, name),
        })
    };
    // The request comes at once; a PortStatus generated before the reply precedes it on
    // the wire, one generated after follows it.
    let xid = loop {
        let (h, m) = sw.recv().await.expect("client closed");
        if matches!(m, Message::MultipartRequest(_)) {
            break h.xid;
        }
    };
    sw.send(&status(1, "before"), Version::Of15, 0).await;
    let reply = Message::MultipartReply(MultipartReply {
        more: false,
        body: MultipartReplyBody::PortDesc(vec![Port::new(1, "before")]),
    });
    sw.send(&reply, Version::Of15, xid).await;
    sw.send(&status(2, "after"), Version::Of15, 0).await;
    let order: Vec<String> = [
        next(&mut rx).await,
        next(&mut rx).await,
        next(&mut rx).await,
    ]
    .into_iter()
    .map(|e| match e {
        ClientEvent::PortStatus(ps) => format!("status {}", ps.port.name),
        ClientEvent::PortDesc(Ok(ports)) => format!("desc {}", ports.len()),
        other => format!("{other:?}"),
    })
    .collect();
    assert_eq!(order, ["status before", "desc 1", "status after"]);
}

#[tokio::test]
async fn a_full_event_channel_drops_port_status_then_owes_and_delivers_a_port_list() {
    use podport_openflow::{MultipartReply, MultipartReplyBody, Port, PortReason, PortStatus};
    let (l, ep) = listener("full");
    let mut opts = fast_options();
    opts.driver.event_capacity = 4;
    let (_client, mut rx) = OfClient::start(ep, opts);
    let mut sw = FakeSwitch::accept(&l).await;
    sw.handshake(Version::Of15).await;
    // Nobody reads: Connected takes one slot, three PortStatus fill the rest, 17 are dropped.
    for no in 1..=20u32 {
        let ps = Message::PortStatus(PortStatus {
            reason: PortReason::Add,
            port: Port::new(no, &format!("p{no}")),
        });
        sw.send(&ps, Version::Of15, 0).await;
    }
    // The client keeps reading meanwhile: it still answers an echo.
    sw.send(
        &Message::EchoRequest(Bytes::from_static(b"hi")),
        Version::Of15,
        77,
    )
    .await;
    loop {
        let (h, m) = sw.recv().await.expect("client closed");
        if matches!(m, Message::EchoReply(_)) {
            assert_eq!(h.xid, 77);
            break;
        }
    }
    connected(&mut rx).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        match next(&mut rx).await {
            ClientEvent::PortStatus(ps) => got.push(ps.port.port_no.0),
            other => panic!("expected a PortStatus, got {other:?}"),
        }
    }
    assert_eq!(got, [1, 2, 3], "the first ones fit, in order");
    // Room again: the client asks for the whole list, which brings the truth back.
    let xid = loop {
        let (h, m) = sw.recv().await.expect("client closed");
        if matches!(m, Message::MultipartRequest(_)) {
            break h.xid;
        }
    };
    let all: Vec<Port> = (1..=20u32)
        .map(|no| Port::new(no, &format!("p{no}")))
        .collect();
    let reply = Message::MultipartReply(MultipartReply {
        more: false,
        body: MultipartReplyBody::PortDesc(all),
    });
    sw.send(&reply, Version::Of15, xid).await;
    match next(&mut rx).await {
        ClientEvent::PortDesc(Ok(ports)) => assert_eq!(ports.len(), 20),
        other => panic!("expected the port list, got {other:?}"),
    }
    assert!(
        rx.try_recv().is_err(),
        "nothing else: the dropped ones are not delivered"
    );
}
