//! The body of the fuzz target in `crates/openflow/fuzz`, here so that the corpus replay test
//! (the workspace's `tests/fuzz_corpus.rs`) runs the same code on stable. Not an API.

use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::conn::{ConnConfig, Connection};
use crate::{
    decode, encode, FeaturesReply, FlowMod, Hello, Message, MultipartReply, MultipartReplyBody,
    OfFramer, OxmField, PortNo, Version,
};

/// The `frame_decoder` target: the OpenFlow input path as a switch connection sees it: a byte stream split by
/// `OfFramer`, each frame decoded with `podport_openflow::decode` and handed to a sans-IO
/// `Connection`.
///
/// Input layout: the first byte picks the mode, the rest is the stream.
/// - bit 0 set: the connection is first taken through a clean handshake (HELLO and
///   FEATURES_REPLY) and has a PORT_DESC request, a flow mod and a barrier pending, so fuzzed
///   replies and errors meet real state; clear: the fuzzed bytes start right after connect.
/// - bits 1..=7: the size of the chunks the stream is fed in (1 to 127 bytes), so the framer's
///   partial-frame handling is exercised.
///
/// Checked: nothing panics; every frame the framer yields has a length of at least 8 that
/// equals its header's; every message that decodes re-encodes and decodes to itself (except
/// port names that were not UTF-8 on the wire, which decode lossily).
pub fn frame_decoder(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let mut conn = Connection::new(ConnConfig::default(), now);
    if mode & 1 == 1 {
        handshake(&mut conn, now);
    }
    drain(&mut conn);
    let chunk = usize::from(mode >> 1).max(1);

    let mut framer = OfFramer;
    let mut buf = BytesMut::new();
    for part in stream.chunks(chunk) {
        buf.extend_from_slice(part);
        loop {
            match framer.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() >= 8);
                    assert_eq!(
                        usize::from(u16::from_be_bytes([frame[2], frame[3]])),
                        frame.len()
                    );
                    check_codec(&frame);
                    // A fatal error closes the connection; later frames must be ignored
                    // without panicking, so keep feeding.
                    let _ = conn.handle_frame(&frame, now);
                    drain(&mut conn);
                }
                Ok(None) => break,
                // A declared length below 8 ends the stream, as it ends a connection.
                Err(_) => return,
            }
        }
    }
    let _ = conn.handle_timeout(now + Duration::from_secs(3600));
    drain(&mut conn);
}

/// Decoding must not panic, and what decodes must survive a round trip.
fn check_codec(frame: &[u8]) {
    let Ok((header, msg)) = decode(frame) else {
        return;
    };
    let lossy_name = match &msg {
        Message::PortStatus(ps) => ps.port.name.contains('\u{fffd}'),
        Message::MultipartReply(MultipartReply {
            body: MultipartReplyBody::PortDesc(ports),
            ..
        }) => ports.iter().any(|p| p.name.contains('\u{fffd}')),
        _ => false,
    };
    // A decoded message is never longer once re-encoded (unknown properties are dropped,
    // padding is minimal), so encoding cannot fail.
    let again = encode(&msg, header.version, header.xid).expect("decoded message re-encodes");
    assert!(again.len() <= frame.len());
    let (header2, back) = decode(&again).expect("re-encoded message decodes");
    assert_eq!(header2.xid, header.xid);
    if !lossy_name {
        assert_eq!(back, msg);
    }
}

/// Takes the connection through HELLO and FEATURES_REPLY and leaves requests pending.
fn handshake(conn: &mut Connection, now: Instant) {
    let hello =
        encode(&Message::Hello(Hello::offering(&Version::ALL)), 0x06, 1).expect("HELLO encodes");
    conn.handle_frame(&hello, now).expect("HELLO accepted");
    let mut features_xid = None;
    while let Some(frame) = conn.poll_transmit() {
        if let Ok((h, Message::FeaturesRequest)) = decode(&frame) {
            features_xid = Some(h.xid);
        }
    }
    let reply = Message::FeaturesReply(FeaturesReply {
        datapath_id: 0x42,
        n_buffers: 0,
        n_tables: 254,
        auxiliary_id: 0,
        capabilities: 0,
    });
    let xid = features_xid.expect("FEATURES_REQUEST sent");
    conn.handle_frame(&encode(&reply, 0x06, xid).expect("encodes"), now)
        .expect("FEATURES_REPLY accepted");
    // Small xids (4, 5, 6, ...) that fuzzed replies can hit.
    let _ = conn.request_port_desc();
    let _ = conn.send_flow_mod(&FlowMod::add(0).matching(OxmField::InPort(PortNo(1))));
    let _ = conn.fence();
}

fn drain(conn: &mut Connection) {
    while conn.poll_transmit().is_some() {}
    while conn.poll_event().is_some() {}
}
