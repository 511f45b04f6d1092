//! Decodes every message captured from a real Open vSwitch 3.1.0 (see `tests/data/README.md`)
//! and checks exact field values, byte-exact re-encoding, and multi-part assembly through the
//! sans-IO connection.

use std::time::Instant;

use podport_openflow::conn::{ConnConfig, ConnError, Connection, Event, Reply};
use podport_openflow::{
    decode, encode, msg_type, negotiate, EthernetProps, FeaturesReply, Header, Hello, MacAddr,
    Message, MultipartReply, MultipartReplyBody, MultipartRequest, Port, PortConfig, PortNo,
    PortReason, PortState, PortStatus, SwitchConfig, Version, MAX_PORT_NAME_LEN, MPF_MORE,
};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// The bytes of one captured vector.
fn vector(name: &str) -> Vec<u8> {
    let path = format!("{DATA}/{name}.hex");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    hex::decode(text.trim()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn decoded(name: &str) -> (Header, Message) {
    let bytes = vector(name);
    decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn port_status(name: &str) -> (Header, PortStatus) {
    match decoded(name) {
        (h, Message::PortStatus(ps)) => (h, ps),
        (_, other) => panic!("{name}: expected PORT_STATUS, got {other:?}"),
    }
}

fn port_desc_reply(name: &str) -> (Header, bool, Vec<Port>) {
    match decoded(name) {
        (
            h,
            Message::MultipartReply(MultipartReply {
                more,
                body: MultipartReplyBody::PortDesc(ports),
            }),
        ) => (h, more, ports),
        (_, other) => panic!("{name}: expected a PORT_DESC reply, got {other:?}"),
    }
}

/// Every `.hex` file in the data folder, by stem.
fn all_vector_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(DATA)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|f| f.strip_suffix(".hex").map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn all_34_vectors_are_present_and_decode() {
    let names = all_vector_names();
    assert_eq!(names.len(), 34, "{names:?}");
    for name in &names {
        let bytes = vector(name);
        let (h, msg) = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(usize::from(h.length), bytes.len(), "{name}");
        assert_eq!(h.msg_type, msg.msg_type(), "{name}");
        assert!(
            h.version == 0x04 || h.version == 0x06,
            "{name}: version {}",
            h.version
        );
        if name.starts_with("of13") {
            assert_eq!(h.version, 0x04, "{name}");
        }
        if name.starts_with("of15") {
            assert_eq!(h.version, 0x06, "{name}");
        }
    }
}

/// file, version, reason, port_no, name, hw_addr, config bits, state bits (README table and the
/// independent decoder's output).
type PortStatusRow = (
    &'static str,
    u8,
    PortReason,
    u32,
    &'static str,
    &'static str,
    u32,
    u32,
);

const PORT_STATUS_VECTORS: &[PortStatusRow] = &[
    (
        "of13-port-status-add",
        4,
        PortReason::Add,
        5,
        "p4",
        "aa:55:aa:55:00:14",
        0,
        0,
    ),
    (
        "of13-port-status-modify-live",
        4,
        PortReason::Modify,
        5,
        "p4",
        "aa:55:aa:55:00:14",
        0,
        4,
    ),
    (
        "of13-port-status-delete",
        4,
        PortReason::Delete,
        5,
        "p4",
        "aa:55:aa:55:00:14",
        0,
        4,
    ),
    (
        "of15-port-status-add",
        6,
        PortReason::Add,
        5,
        "p4",
        "aa:55:aa:55:00:14",
        0,
        0,
    ),
    (
        "of15-port-status-modify-live",
        6,
        PortReason::Modify,
        5,
        "p4",
        "aa:55:aa:55:00:14",
        0,
        4,
    ),
    (
        "of15-port-status-delete",
        6,
        PortReason::Delete,
        5,
        "p4",
        "aa:55:aa:55:00:14",
        0,
        4,
    ),
    (
        "of13-port-status-modify-admin-down-1",
        4,
        PortReason::Modify,
        3,
        "p2",
        "aa:55:aa:55:00:12",
        0,
        0,
    ),
    (
        "of13-port-status-modify-admin-down-2",
        4,
        PortReason::Modify,
        3,
        "p2",
        "aa:55:aa:55:00:12",
        1,
        1,
    ),
    (
        "of13-port-status-modify-admin-up",
        4,
        PortReason::Modify,
        3,
        "p2",
        "aa:55:aa:55:00:12",
        0,
        4,
    ),
    (
        "of15-port-status-modify-admin-down-2",
        6,
        PortReason::Modify,
        3,
        "p2",
        "aa:55:aa:55:00:12",
        1,
        1,
    ),
    (
        "of13-port-status-typechange-delete",
        4,
        PortReason::Delete,
        5,
        "p2",
        "aa:55:aa:55:00:12",
        0,
        4,
    ),
    (
        "of13-port-status-typechange-add",
        4,
        PortReason::Add,
        5,
        "p2",
        "aa:55:aa:55:00:19",
        0,
        0,
    ),
    (
        "of13-port-status-typechange-modify",
        4,
        PortReason::Modify,
        5,
        "p2",
        "aa:55:aa:55:00:19",
        0,
        4,
    ),
    (
        "of15-port-status-typechange-delete",
        6,
        PortReason::Delete,
        5,
        "p2",
        "aa:55:aa:55:00:12",
        0,
        4,
    ),
    (
        "of15-port-status-typechange-add",
        6,
        PortReason::Add,
        5,
        "p2",
        "aa:55:aa:55:00:19",
        0,
        0,
    ),
    (
        "of15-port-status-typechange-modify",
        6,
        PortReason::Modify,
        5,
        "p2",
        "aa:55:aa:55:00:19",
        0,
        4,
    ),
    (
        "of15-port-status-add-truncated-name",
        6,
        PortReason::Add,
        11,
        "abcdefghijklmno",
        "aa:55:aa:55:00:1a",
        0,
        0,
    ),
];

#[test]
fn port_status_vectors_have_the_captured_fields() {
    for &(name, version, reason, port_no, port_name, hw, config, state) in PORT_STATUS_VECTORS {
        let (h, ps) = port_status(name);
        let expected_len = if version == 4 { 80 } else { 88 };
        assert_eq!(
            h,
            Header {
                version,
                msg_type: msg_type::PORT_STATUS,
                length: expected_len,
                xid: 0,
            },
            "{name}"
        );
        assert_eq!(
            ps,
            PortStatus {
                reason,
                port: Port {
                    port_no: PortNo(port_no),
                    hw_addr: mac(hw),
                    name: port_name.to_string(),
                    config: PortConfig::from_bits_retain(config),
                    state: PortState::from_bits_retain(state),
                    // Dummy netdevs report no features and speed 0; OVS always sends the
                    // Ethernet property in 1.5.
                    ethernet: Some(EthernetProps::default()),
                    other_properties: Default::default(),
                },
            },
            "{name}"
        );
    }
}

#[test]
fn port_status_add_then_modify_live() {
    let (_, add) = port_status("of13-port-status-add");
    assert_eq!(add.reason, PortReason::Add);
    assert_eq!(add.port.port_no, PortNo(5));
    assert_eq!(add.port.name, "p4");
    assert_eq!(add.port.hw_addr.0, [0xaa, 0x55, 0xaa, 0x55, 0x00, 0x14]);
    assert!(add.port.config.is_empty());
    assert!(add.port.state.is_empty(), "no LIVE yet on ADD");

    for name in [
        "of13-port-status-modify-live",
        "of15-port-status-modify-live",
    ] {
        let (_, live) = port_status(name);
        assert_eq!(live.reason, PortReason::Modify);
        assert_eq!(live.port.state, PortState::LIVE, "{name}");
        assert!(live.port.config.is_empty(), "{name}");
    }
}

#[test]
fn admin_down_sets_port_down_and_link_down() {
    let (_, first) = port_status("of13-port-status-modify-admin-down-1");
    assert!(first.port.config.is_empty());
    assert!(first.port.state.is_empty());
    for name in [
        "of13-port-status-modify-admin-down-2",
        "of15-port-status-modify-admin-down-2",
    ] {
        let (_, ps) = port_status(name);
        assert_eq!(ps.reason, PortReason::Modify, "{name}");
        assert_eq!(ps.port.config, PortConfig::PORT_DOWN, "{name}");
        assert_eq!(ps.port.state, PortState::LINK_DOWN, "{name}");
        assert!(!ps.port.state.contains(PortState::LIVE), "{name}");
    }
    let (_, up) = port_status("of13-port-status-modify-admin-up");
    assert!(up.port.config.is_empty());
    assert_eq!(up.port.state, PortState::LIVE);
}

#[test]
fn typechange_keeps_the_port_number_and_changes_the_mac() {
    for v in ["of13", "of15"] {
        let (_, del) = port_status(&format!("{v}-port-status-typechange-delete"));
        let (_, add) = port_status(&format!("{v}-port-status-typechange-add"));
        let (_, modify) = port_status(&format!("{v}-port-status-typechange-modify"));
        assert_eq!(
            [del.reason, add.reason, modify.reason],
            [PortReason::Delete, PortReason::Add, PortReason::Modify],
            "{v}"
        );
        assert_eq!(del.port.port_no, PortNo(5), "{v}");
        assert_eq!(add.port.port_no, del.port.port_no, "{v}");
        assert_eq!(modify.port.port_no, del.port.port_no, "{v}");
        assert_ne!(add.port.hw_addr, del.port.hw_addr, "{v}");
        assert_eq!(del.port.hw_addr, mac("aa:55:aa:55:00:12"), "{v}");
        assert_eq!(add.port.hw_addr, mac("aa:55:aa:55:00:19"), "{v}");
        assert_eq!(modify.port.hw_addr, add.port.hw_addr, "{v}");
        assert!(add.port.state.is_empty(), "{v}");
        assert_eq!(modify.port.state, PortState::LIVE, "{v}");
    }
}

#[test]
fn of15_truncated_name_is_15_bytes() {
    let (h, ps) = port_status("of15-port-status-add-truncated-name");
    assert_eq!(h.version, 0x06);
    assert_eq!(ps.reason, PortReason::Add);
    assert_eq!(ps.port.port_no, PortNo(11));
    assert_eq!(ps.port.name, "abcdefghijklmno");
    assert_eq!(ps.port.name.len(), 15);
    assert_eq!(ps.port.name.len(), MAX_PORT_NAME_LEN);
    // Encoding the full interface name cuts it the way OVS did.
    let mut long = ps.clone();
    long.port.name = "abcdefghijklmnopqrst".to_string();
    assert_eq!(
        &encode(&Message::PortStatus(long), 0x06, 0).unwrap()[..],
        &vector("of15-port-status-add-truncated-name")[..]
    );
}

/// port_no, name, hw_addr of the four-port replies, in wire (hash) order.
const FOUR_PORTS: [(u32, &str, &str); 4] = [
    (0xffff_fffe, "br-int", "1a:93:46:74:3a:42"),
    (8, "bad1", "aa:55:aa:55:00:15"),
    (5, "p2", "aa:55:aa:55:00:12"),
    (4, "p3", "aa:55:aa:55:00:0e"),
];

#[test]
fn port_desc_replies_list_ports_in_wire_order() {
    for (name, version, len) in [
        ("of13-port-desc-reply", 0x04, 272),
        ("of15-port-desc-reply", 0x06, 304),
    ] {
        let (h, more, ports) = port_desc_reply(name);
        assert_eq!(h.version, version, "{name}");
        assert_eq!(h.msg_type, msg_type::MULTIPART_REPLY, "{name}");
        assert_eq!(h.length, len, "{name}");
        assert_eq!(h.xid, 4, "{name}");
        assert!(!more, "{name}");
        let expected: Vec<Port> = FOUR_PORTS
            .iter()
            .map(|&(no, port_name, hw)| Port {
                port_no: PortNo(no),
                hw_addr: mac(hw),
                name: port_name.to_string(),
                config: PortConfig::empty(),
                state: PortState::LIVE,
                ethernet: Some(EthernetProps::default()),
                other_properties: Default::default(),
            })
            .collect();
        assert_eq!(ports, expected, "{name}");
        assert_eq!(ports[0].port_no, PortNo::LOCAL, "{name}");
    }
}

#[test]
fn reply_more_parts() {
    for (name, more, n_ports, first) in [
        ("of13-port-desc-reply-more-part1", true, 1023, (8, "q819")),
        ("of13-port-desc-reply-more-part2", false, 78, (445, "q354")),
        ("of15-port-desc-reply-more-part1", true, 909, (8, "q819")),
        ("of15-port-desc-reply-more-part2", false, 192, (867, "q16")),
    ] {
        let (h, got_more, ports) = port_desc_reply(name);
        assert_eq!(got_more, more, "{name}");
        assert_eq!(ports.len(), n_ports, "{name}");
        assert_eq!(h.xid, 4, "{name}");
        assert_eq!(ports[0].port_no, PortNo(first.0), "{name}");
        assert_eq!(ports[0].name, first.1, "{name}");
        // The flag is really on the wire where the decoder says so.
        let bytes = vector(name);
        let flags = u16::from_be_bytes([bytes[10], bytes[11]]);
        assert_eq!(flags & MPF_MORE != 0, more, "{name}");
    }
    // Every port of the 1101-port bridge appears exactly once across the two parts.
    for v in ["of13", "of15"] {
        let (_, _, mut all) = port_desc_reply(&format!("{v}-port-desc-reply-more-part1"));
        all.extend(port_desc_reply(&format!("{v}-port-desc-reply-more-part2")).2);
        assert_eq!(all.len(), 1101, "{v}");
        let mut numbers: Vec<u32> = all.iter().map(|p| p.port_no.0).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), 1101, "{v}: duplicate port numbers");
    }
}

/// Drives a new connection through the handshake with a HELLO and FEATURES_REPLY built by
/// `encode`, draining what it sends. Returns it in the Ready state.
fn ready_connection(version: Version, now: Instant) -> Connection {
    let config = ConnConfig {
        versions: vec![version],
        ..ConnConfig::default()
    };
    let mut conn = Connection::new(config, now);
    let hello = conn.poll_transmit().expect("our HELLO");
    assert!(matches!(decode(&hello).unwrap().1, Message::Hello(_)));
    let peer_hello = encode(
        &Message::Hello(Hello::offering(&[version])),
        version.wire(),
        1,
    )
    .unwrap();
    conn.handle_frame(&peer_hello, now).unwrap();
    assert_eq!(conn.version(), Some(version));
    let mut features_xid = None;
    while let Some(frame) = conn.poll_transmit() {
        let (h, msg) = decode(&frame).unwrap();
        assert_eq!(h.version, version.wire());
        if msg == Message::FeaturesRequest {
            features_xid = Some(h.xid);
        }
    }
    let features = Message::FeaturesReply(FeaturesReply {
        datapath_id: 0x0000_1a93_4674_3a42,
        n_buffers: 0,
        n_tables: 254,
        auxiliary_id: 0,
        capabilities: 0x4f,
    });
    let frame = encode(
        &features,
        version.wire(),
        features_xid.expect("FEATURES_REQUEST"),
    )
    .unwrap();
    conn.handle_frame(&frame, now).unwrap();
    assert!(conn.is_ready());
    assert_eq!(
        conn.poll_event(),
        Some(Event::Connected {
            version,
            datapath_id: 0x0000_1a93_4674_3a42,
        })
    );
    conn
}

fn with_xid(mut frame: Vec<u8>, xid: u32) -> Vec<u8> {
    frame[4..8].copy_from_slice(&xid.to_be_bytes());
    frame
}

#[test]
fn connection_assembles_two_part_port_desc_into_1101_ports() {
    for (version, v) in [(Version::Of13, "of13"), (Version::Of15, "of15")] {
        let now = Instant::now();
        let mut conn = ready_connection(version, now);
        let xid = conn.request_port_desc().unwrap();
        // The request the connection sends is the captured one, with its own xid.
        let sent = conn.poll_transmit().expect("PORT_DESC request");
        assert_eq!(
            &sent[..],
            &with_xid(vector(&format!("{v}-port-desc-request")), xid)[..],
            "{v}"
        );
        let part1 = with_xid(vector(&format!("{v}-port-desc-reply-more-part1")), xid);
        let part2 = with_xid(vector(&format!("{v}-port-desc-reply-more-part2")), xid);
        conn.handle_frame(&part1, now).unwrap();
        assert_eq!(conn.poll_event(), None, "{v}: reply after part 1 only");
        assert_eq!(conn.pending_requests(), 1, "{v}");
        conn.handle_frame(&part2, now).unwrap();
        let Some(Event::Reply {
            xid: got,
            result: Ok(Reply::PortDesc(ports)),
        }) = conn.poll_event()
        else {
            panic!("{v}: expected the assembled PORT_DESC reply");
        };
        assert_eq!(got, xid, "{v}");
        assert_eq!(ports.len(), 1101, "{v}");
        // Wire order: all of part 1, then all of part 2.
        let (_, _, p1) = port_desc_reply(&format!("{v}-port-desc-reply-more-part1"));
        let (_, _, p2) = port_desc_reply(&format!("{v}-port-desc-reply-more-part2"));
        assert_eq!(ports[..p1.len()], p1[..], "{v}");
        assert_eq!(ports[p1.len()..], p2[..], "{v}");
        assert_eq!(conn.pending_requests(), 0, "{v}");
        assert_eq!(conn.poll_event(), None, "{v}");
    }
}

#[test]
fn connection_reports_port_status_vectors() {
    let now = Instant::now();
    for (version, v) in [(Version::Of13, "of13"), (Version::Of15, "of15")] {
        let mut conn = ready_connection(version, now);
        for suffix in ["add", "modify-live", "delete"] {
            let name = format!("{v}-port-status-{suffix}");
            conn.handle_frame(&vector(&name), now).unwrap();
            let Some(Event::PortStatus(ps)) = conn.poll_event() else {
                panic!("{name}: no PortStatus event");
            };
            assert_eq!(ps, port_status(&name).1, "{name}");
        }
    }
}

#[test]
fn hello_vectors_negotiate() {
    let ours = [Version::Of13, Version::Of15];
    let (h, msg) = decoded("ovs-hello-no-bitmap");
    assert_eq!((h.version, h.length, h.xid), (0x06, 8, 1));
    let Message::Hello(no_bitmap) = msg else {
        panic!("not a HELLO");
    };
    assert_eq!(no_bitmap.versions, None);
    // No bitmap from version 0x06 means every version up to 0x06.
    assert_eq!(no_bitmap.peer_versions(h.version), 0b111_1111);
    assert_eq!(negotiate(&ours, &no_bitmap, h.version), Some(Version::Of15));
    assert_eq!(
        negotiate(&[Version::Of13], &no_bitmap, h.version),
        Some(Version::Of13)
    );

    let (h, msg) = decoded("ovs-hello-bitmap-of10-of15");
    assert_eq!((h.version, h.length, h.xid), (0x06, 16, 20));
    let Message::Hello(bitmap) = msg else {
        panic!("not a HELLO");
    };
    assert_eq!(bitmap.versions, Some(0x42));
    assert_eq!(negotiate(&ours, &bitmap, h.version), Some(Version::Of15));
    assert_eq!(negotiate(&[Version::Of13], &bitmap, h.version), None);
}

#[test]
fn connection_with_only_of13_refuses_the_of10_of15_bridge() {
    let now = Instant::now();
    let config = ConnConfig {
        versions: vec![Version::Of13],
        ..ConnConfig::default()
    };
    let mut conn = Connection::new(config, now);
    let ours = conn.poll_transmit().unwrap();
    // Byte for byte the captured 1.3-only client HELLO, whatever xid the connection chose.
    let xid = decode(&ours).unwrap().0.xid;
    assert_eq!(
        &ours[..],
        &with_xid(vector("client-hello-of13-bitmap"), xid)[..]
    );
    let err = conn
        .handle_frame(&vector("ovs-hello-bitmap-of10-of15"), now)
        .unwrap_err();
    assert!(matches!(err, ConnError::NoCommonVersion { .. }), "{err:?}");
    // It tells the switch why, as HELLO_FAILED / INCOMPATIBLE.
    let (_, msg) = decode(&conn.poll_transmit().expect("an ERROR for the switch")).unwrap();
    let Message::Error(e) = msg else {
        panic!("expected ERROR, got {msg:?}");
    };
    assert_eq!((e.err_type, e.code), (0, 0));
    assert!(!conn.is_ready());
}

#[test]
fn connection_fails_on_the_captured_hello_failed() {
    let now = Instant::now();
    let config = ConnConfig {
        versions: vec![Version::Of13],
        ..ConnConfig::default()
    };
    let mut conn = Connection::new(config, now);
    let err = conn
        .handle_frame(&vector("ovs-error-hello-incompatible"), now)
        .unwrap_err();
    let ConnError::HelloFailed(e) = err else {
        panic!("expected HelloFailed, got {err:?}");
    };
    assert_eq!(e.code_name(), "INCOMPATIBLE");
}

#[test]
fn connection_negotiates_of15_with_the_no_bitmap_hello() {
    let now = Instant::now();
    let mut conn = Connection::new(ConnConfig::default(), now);
    let ours = conn.poll_transmit().unwrap();
    // Default config offers 1.3 and 1.5: bitmap 0x50 in a 1.5 header.
    let (h, msg) = decode(&ours).unwrap();
    assert_eq!(h.version, 0x06);
    assert_eq!(
        msg,
        Message::Hello(Hello {
            versions: Some(0x50)
        })
    );
    conn.handle_frame(&vector("ovs-hello-no-bitmap"), now)
        .unwrap();
    assert_eq!(conn.version(), Some(Version::Of15));
}

#[test]
fn hello_failed_error_vector() {
    let (h, msg) = decoded("ovs-error-hello-incompatible");
    assert_eq!(
        h,
        Header {
            version: 0x04,
            msg_type: msg_type::ERROR,
            length: 89,
            xid: 0,
        }
    );
    let Message::Error(e) = msg else {
        panic!("not an ERROR: {msg:?}");
    };
    assert_eq!((e.err_type, e.code), (0, 0));
    assert_eq!(e.type_name(), "HELLO_FAILED");
    assert_eq!(e.code_name(), "INCOMPATIBLE");
    assert_eq!(e.data.len(), 89 - 12);
    assert_eq!(
        e.text().as_deref(),
        Some("We support versions 0x01, 0x06, you support version 0x04, no common versions.")
    );
    assert_eq!(
        e.to_string(),
        "HELLO_FAILED/INCOMPATIBLE: We support versions 0x01, 0x06, you support version 0x04, \
         no common versions."
    );
}

#[test]
fn client_messages_encode_to_the_captured_bytes() {
    let cases: Vec<(&str, Message, u8, u32)> = vec![
        (
            "client-hello-of13-bitmap",
            Message::Hello(Hello::offering(&[Version::Of13])),
            0x04,
            1,
        ),
        (
            "client-hello-of15-bitmap",
            Message::Hello(Hello::offering(&[Version::Of15])),
            0x06,
            1,
        ),
        (
            "client-set-config-of13",
            Message::SetConfig(SwitchConfig {
                flags: 0,
                miss_send_len: 0xffff,
            }),
            0x04,
            2,
        ),
        (
            "client-set-config-of15",
            Message::SetConfig(SwitchConfig {
                flags: 0,
                miss_send_len: 0xffff,
            }),
            0x06,
            2,
        ),
        (
            "of13-port-desc-request",
            Message::MultipartRequest(MultipartRequest::PortDesc { more: false }),
            0x04,
            4,
        ),
        (
            "of15-port-desc-request",
            Message::MultipartRequest(MultipartRequest::PortDesc { more: false }),
            0x06,
            4,
        ),
    ];
    for (name, msg, version, xid) in cases {
        let bytes = vector(name);
        assert_eq!(
            &encode(&msg, version, xid).unwrap()[..],
            &bytes[..],
            "{name}: encode"
        );
        let (h, back) = decode(&bytes).unwrap();
        assert_eq!((h.version, h.xid), (version, xid), "{name}");
        assert_eq!(back, msg, "{name}: decode");
    }
}

#[test]
fn port_status_and_port_desc_vectors_re_encode_byte_exactly() {
    let names: Vec<String> = all_vector_names()
        .into_iter()
        .filter(|n| n.contains("port-status") || n.contains("port-desc-reply"))
        .collect();
    // 17 PortStatus, 2 four-port replies, 4 REPLY_MORE parts.
    assert_eq!(names.len(), 23, "{names:?}");
    for name in &names {
        let bytes = vector(name);
        let (h, msg) = decode(&bytes).unwrap();
        let again = encode(&msg, h.version, h.xid).unwrap();
        assert!(again[..] == bytes[..], "{name}: re-encoding differs");
    }
}

#[test]
fn set_async_vectors_are_unknown_and_survive_a_round_trip() {
    for (name, version, len) in [
        ("client-set-async-of13", 0x04, 32usize),
        ("client-set-async-of15", 0x06, 24),
    ] {
        let bytes = vector(name);
        let (h, msg) = decode(&bytes).unwrap();
        assert_eq!(h.version, version, "{name}");
        assert_eq!(h.xid, 3, "{name}");
        let Message::Unknown { msg_type: 28, body } = &msg else {
            panic!("{name}: expected Unknown type 28, got {msg:?}");
        };
        assert_eq!(body.len(), len - 8, "{name}");
        assert_eq!(&body[..], &bytes[8..], "{name}");
        assert_eq!(
            &encode(&msg, h.version, h.xid).unwrap()[..],
            &bytes[..],
            "{name}"
        );
    }
}

/// `bytes` with `extra` appended and the header length patched.
fn with_trailing(mut bytes: Vec<u8>, extra: &[u8]) -> Vec<u8> {
    bytes.extend_from_slice(extra);
    let len = u16::try_from(bytes.len()).unwrap();
    bytes[2..4].copy_from_slice(&len.to_be_bytes());
    bytes
}

/// Messages whose body has a fixed size reject bytes after it, naming the message and the
/// count, as OVS answers them with OFPBRC_BAD_LEN. 1.5 PORT_STATUS follows OVS's layout
/// (head and port, then any multiple of 8 bytes): 8 more bytes are ignored, 3 are an error.
#[test]
fn trailing_bytes_after_a_fixed_size_body_are_a_typed_error() {
    use podport_openflow::DecodeError;
    #[rustfmt::skip]
    let cases: [(&str, &str, &'static str, usize); 12] = [
        // 1.3 FEATURES_REQUEST, BARRIER_REQUEST/REPLY, GET_CONFIG_REQUEST: no body at all.
        ("features request +1", "040500090000000100", "FEATURES_REQUEST", 1),
        ("get config request +4", "0407000c0000000100000000", "GET_CONFIG_REQUEST", 4),
        ("barrier request +1", "061400090000000100", "BARRIER_REQUEST", 1),
        ("barrier reply +8", "04150010000000010000000000000000", "BARRIER_REPLY", 8),
        // 1.3 FEATURES_REPLY: 24 bytes, then 8 more (the 1.0 port list has no place in 1.3).
        ("features reply +8",
         "0406002800000001000000000000000100000100fe00000000000047000000000000000000000000",
         "FEATURES_REPLY", 8),
        ("features reply +1 (1.5)",
         "0606002100000001000000000000000100000100fe000000000000470000000000",
         "FEATURES_REPLY", 1),
        // GET_CONFIG_REPLY / SET_CONFIG: 4 bytes, then 2 or 4 more.
        ("get config reply +2", "0408000e00000001000000800000", "GET_CONFIG_REPLY", 2),
        ("set config +4", "0409001000000001000000800000ffff", "SET_CONFIG", 4),
        ("set config +1 (1.5)", "0609000d00000001000000800a", "SET_CONFIG", 1),
        ("barrier reply +2 (1.5)", "0615000a000000010000", "BARRIER_REPLY", 2),
        ("get config request +1 (1.5)", "060700090000000100", "GET_CONFIG_REQUEST", 1),
        ("features request +3 (1.5)", "0605000b00000001000000", "FEATURES_REQUEST", 3),
    ];
    for (name, hex_frame, what, extra) in cases {
        let f = hex::decode(hex_frame).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            decode(&f).unwrap_err(),
            DecodeError::TrailingBytes { what, extra },
            "{name}"
        );
        // Without the extra bytes the same frame decodes.
        let fixed = with_trailing(f[..f.len() - extra].to_vec(), &[]);
        assert!(decode(&fixed).is_ok(), "{name}: {:?}", decode(&fixed));
    }
    assert_eq!(
        DecodeError::TrailingBytes {
            what: "BARRIER_REPLY",
            extra: 8
        }
        .to_string(),
        "BARRIER_REPLY has 8 trailing bytes after its fixed-size body"
    );

    // PORT_STATUS 1.3: reason, pad and one 64-byte port; anything after is an error.
    for extra in [&[0u8][..], &[0; 8]] {
        let f = with_trailing(vector("of13-port-status-add"), extra);
        assert_eq!(
            decode(&f).unwrap_err(),
            DecodeError::TrailingBytes {
                what: "PORT_STATUS",
                extra: extra.len()
            }
        );
    }
    // PORT_STATUS 1.5: 8 trailing bytes keep OVS's shape and are ignored; 3 are an error.
    let (_, add) = port_status("of15-port-status-add");
    let f = with_trailing(vector("of15-port-status-add"), &[0; 8]);
    assert_eq!(decode(&f).unwrap().1, Message::PortStatus(add));
    let f = with_trailing(vector("of15-port-status-add"), &[0; 3]);
    assert_eq!(
        decode(&f).unwrap_err(),
        DecodeError::TrailingBytes {
            what: "PORT_STATUS",
            extra: 3
        }
    );
}
