//! Byte-level tests of every message in OpenFlow 1.3 (0x04) and 1.5 (0x06): expected bytes,
//! round trips, and truncated / bad-length frames beside each message.
//!
//! The FLOW_MOD and PORT_STATUS fixtures are written out by hand with one comment per field, so
//! the layout is checked independently of the encoder.

use std::net::Ipv4Addr;

use bytes::{Bytes, BytesMut};
use podport_openflow::{
    decode, encode, encode_into, msg_type, negotiate, Action, DecodeError, EncodeError, ErrorMsg,
    EthernetProps, FeaturesReply, FlowMod, FlowModCommand, FlowModFlags, Header, Hello,
    Instruction, MacAddr, Message, MultipartReply, MultipartReplyBody, MultipartRequest, OxmField,
    Port, PortConfig, PortNo, PortReason, PortState, PortStatus, SwitchConfig, Version,
    ETH_TYPE_ARP, ETH_TYPE_IPV4, GROUP_ANY, NO_BUFFER, TABLE_ALL,
};

const VERSIONS: [u8; 2] = [0x04, 0x06];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A frame with a correct header length around `body`.
fn frame(version: u8, msg_type: u8, xid: u32, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + body.len()).unwrap();
    let mut f = vec![version, msg_type];
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&xid.to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn set_len(f: &mut [u8]) {
    let len = u16::try_from(f.len()).unwrap();
    f[2..4].copy_from_slice(&len.to_be_bytes());
}

/// Encodes `msg` (also after a 0xa5 filler, which must stay untouched), checks that it decodes
/// back to the same header and message, and returns the bytes.
fn round_trip(msg: &Message, version: u8, xid: u32) -> Vec<u8> {
    let bytes = encode(msg, version, xid).unwrap_or_else(|e| panic!("{msg:?}: {e}"));
    let mut buf = BytesMut::from(&[0xa5u8; 16][..]);
    encode_into(msg, version, xid, &mut buf).unwrap();
    assert!(buf[..16].iter().all(|&b| b == 0xa5), "filler overwritten");
    assert_eq!(&buf[16..], &bytes[..], "encode_into differs from encode");
    let (h, back) = decode(&bytes).unwrap_or_else(|e| panic!("{msg:?} in {version:#x}: {e}"));
    assert_eq!(
        h,
        Header {
            version,
            msg_type: msg.msg_type(),
            length: u16::try_from(bytes.len()).unwrap(),
            xid,
        }
    );
    assert_eq!(&back, msg, "round trip in version {version:#x}");
    bytes.to_vec()
}

/// The prefix lengths (shorter than the whole frame) that decode without error when the header
/// length is patched to the prefix length. Decoding must never panic.
fn ok_prefixes(full: &[u8]) -> Vec<usize> {
    let mut ok = Vec::new();
    for n in 0..full.len() {
        let mut f = full[..n].to_vec();
        if n >= 4 {
            set_len(&mut f);
        }
        if decode(&f).is_ok() {
            ok.push(n);
        }
    }
    ok
}

/// Every strict prefix of `full` is rejected.
fn assert_every_prefix_rejected(full: &[u8]) {
    assert_eq!(
        ok_prefixes(full),
        Vec::<usize>::new(),
        "{}",
        hex::encode(full)
    );
}

/// A header length that disagrees with the frame is a BadLength on the header.
fn assert_length_mismatch_rejected(full: &[u8]) {
    let declared = full.len();
    let mut longer = full.to_vec();
    longer.push(0);
    assert_eq!(
        decode(&longer).unwrap_err(),
        DecodeError::BadLength {
            what: "ofp_header",
            declared,
            min: 8,
            max: declared + 1,
        }
    );
    let shorter = &full[..full.len() - 1];
    if shorter.len() >= 8 {
        assert!(matches!(
            decode(shorter),
            Err(DecodeError::BadLength { what: "ofp_header", declared: d, .. }) if d == declared
        ));
    } else {
        assert!(matches!(
            decode(shorter),
            Err(DecodeError::Truncated {
                what: "ofp_header",
                ..
            })
        ));
    }
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------------------------

#[test]
fn header_parses_fields_big_endian() {
    let h = Header::parse(&[0x06, 0x13, 0x01, 0x30, 0xde, 0xad, 0xbe, 0xef]).unwrap();
    assert_eq!(
        h,
        Header {
            version: 6,
            msg_type: 19,
            length: 0x130,
            xid: 0xdead_beef,
        }
    );
    for n in 0..8 {
        assert!(matches!(
            Header::parse(&[0u8; 8][..n]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&[0x04, 0, 0, 8, 0, 0, 0, 0][..n]),
            Err(DecodeError::Truncated { .. })
        ));
    }
}

#[test]
fn header_length_must_equal_frame_length() {
    for v in VERSIONS {
        assert_length_mismatch_rejected(&frame(v, msg_type::BARRIER_REQUEST, 1, &[]));
        assert_length_mismatch_rejected(&frame(v, msg_type::ECHO_REQUEST, 1, b"ping"));
        // Declared below the header size.
        for declared in 0..8u8 {
            let f = [v, msg_type::ECHO_REQUEST, 0, declared, 0, 0, 0, 1];
            assert!(matches!(
                decode(&f),
                Err(DecodeError::BadLength {
                    what: "ofp_header",
                    ..
                })
            ));
        }
    }
}

#[test]
fn unknown_message_type_is_kept() {
    for v in [0x01, 0x04, 0x06] {
        let f = frame(v, 0x63, 77, &[1, 2, 3, 4, 5]);
        let (h, msg) = decode(&f).unwrap();
        assert_eq!(h.msg_type, 0x63);
        assert_eq!(
            msg,
            Message::Unknown {
                msg_type: 0x63,
                body: Bytes::from_static(&[1, 2, 3, 4, 5]),
            }
        );
        assert_eq!(msg.name(), "UNKNOWN");
        assert_eq!(&encode(&msg, v, 77).unwrap()[..], &f[..]);
        // Any prefix is a (shorter) unknown message.
        assert_eq!(ok_prefixes(&f), (8..f.len()).collect::<Vec<_>>());
    }
}

#[test]
fn version_dependent_messages_reject_other_versions() {
    use msg_type::*;
    // Bodies that are valid in 1.3, so only the version can be the reason.
    let features = [0u8; 24];
    let config = [0, 0, 0xff, 0xff];
    let mut port_status = vec![0u8; 8];
    port_status.extend_from_slice(&[0u8; 64]);
    let mut flow_mod = vec![0u8; 40];
    flow_mod.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 0]);
    let mp = [0, 13, 0, 0, 0, 0, 0, 0];
    let cases: [(u8, &[u8]); 11] = [
        (FEATURES_REQUEST, &[]),
        (FEATURES_REPLY, &features),
        (GET_CONFIG_REQUEST, &[]),
        (GET_CONFIG_REPLY, &config),
        (SET_CONFIG, &config),
        (PORT_STATUS, &port_status),
        (FLOW_MOD, &flow_mod),
        (MULTIPART_REQUEST, &mp),
        (MULTIPART_REPLY, &mp),
        (BARRIER_REQUEST, &[]),
        (BARRIER_REPLY, &[]),
    ];
    for (t, body) in cases {
        assert!(
            decode(&frame(0x04, t, 1, body)).is_ok(),
            "type {t} should decode in 1.3"
        );
        for version in [0x00, 0x01, 0x02, 0x03, 0x05, 0x07, 0xff] {
            assert_eq!(
                decode(&frame(version, t, 1, body)).unwrap_err(),
                DecodeError::UnsupportedVersion {
                    what: "message",
                    version
                },
                "type {t} in version {version:#x}"
            );
        }
    }
    // Encoding refuses them too.
    for msg in [
        Message::FeaturesRequest,
        Message::BarrierRequest,
        Message::SetConfig(SwitchConfig {
            flags: 0,
            miss_send_len: 128,
        }),
        Message::FlowMod(FlowMod::add(0)),
        Message::MultipartRequest(MultipartRequest::PortDesc { more: false }),
    ] {
        assert!(
            matches!(
                encode(&msg, 0x01, 1),
                Err(EncodeError::UnsupportedVersion { version: 0x01, .. })
            ),
            "{msg:?}"
        );
    }
    // HELLO, ERROR and ECHO are how versions are agreed: any version decodes.
    for version in [0x01, 0x05] {
        assert!(decode(&frame(version, HELLO, 1, &[])).is_ok());
        assert!(decode(&frame(version, ERROR, 1, &[0, 0, 0, 0])).is_ok());
        assert!(decode(&frame(version, ECHO_REQUEST, 1, b"x")).is_ok());
        assert!(decode(&frame(version, ECHO_REPLY, 1, b"x")).is_ok());
    }
}

// ---------------------------------------------------------------------------------------------
// HELLO
// ---------------------------------------------------------------------------------------------

#[test]
fn hello_without_and_with_bitmap() {
    for v in VERSIONS {
        let bare = round_trip(&Message::Hello(Hello { versions: None }), v, 1);
        assert_eq!(bare, [v, 0x00, 0x00, 0x08, 0, 0, 0, 1]);

        let offered = Message::Hello(Hello::offering(&[Version::Of13, Version::Of15]));
        let bytes = round_trip(&offered, v, 0x0102_0304);
        #[rustfmt::skip]
        let expected = [
            v, 0x00, 0x00, 0x10, 0x01, 0x02, 0x03, 0x04, // header, length 16
            0x00, 0x01, // element type VERSIONBITMAP
            0x00, 0x08, // element length 8
            0x00, 0x00, 0x00, 0x50, // bitmap: bits 4 (1.3) and 6 (1.5)
        ];
        assert_eq!(bytes, expected);
        assert_length_mismatch_rejected(&bytes);
        // A body shorter than an element header is tolerated padding; a cut element is
        // skipped (the version then comes from the header), so every prefix decodes.
        assert_eq!(ok_prefixes(&bytes), (8..bytes.len()).collect::<Vec<_>>());
    }
}

#[test]
fn hello_elements_skip_unknown_and_read_the_first_bitmap_word() {
    #[rustfmt::skip]
    let body = [
        0x00, 0x07, 0x00, 0x06, 0xaa, 0xbb, 0x00, 0x00, // unknown element, length 6, padded to 8
        0x00, 0x01, 0x00, 0x0c, // VERSIONBITMAP, length 12 (two words)
        0x00, 0x00, 0x00, 0x52, // word 0: 1.0, 1.3, 1.5
        0x00, 0x00, 0x00, 0x01, // word 1: version 32
        0x00, 0x00, 0x00, 0x00, // padding to 8
    ];
    let (_, msg) = decode(&frame(0x06, msg_type::HELLO, 1, &body)).unwrap();
    assert_eq!(
        msg,
        Message::Hello(Hello {
            versions: Some(0x52)
        })
    );

    // The last element may omit its padding.
    let (_, msg) = decode(&frame(0x06, msg_type::HELLO, 1, &body[..20])).unwrap();
    assert_eq!(
        msg,
        Message::Hello(Hello {
            versions: Some(0x52)
        })
    );
}

/// A malformed HELLO element does not fail the HELLO: as in OVS, it is skipped (with a
/// warning) and, without a usable bitmap, the version is negotiated from the header.
#[test]
fn hello_malformed_elements_are_skipped_and_the_header_version_negotiates() {
    let ours = [Version::Of13, Version::Of15];
    #[rustfmt::skip]
    let cases: [(&str, &str, Option<u32>, Option<Version>); 8] = [
        // 1.3 header, element of length 0.
        ("length 0", "04000010000000010001000000000000", None, Some(Version::Of13)),
        // 1.5 header, element of length 3.
        ("length 3", "06000010000000010001000300000000", None, Some(Version::Of15)),
        // 1.3 header, element of length 16 in an 8-byte body.
        ("past the message", "04000010000000010001001000000010", None, Some(Version::Of13)),
        // 1.5 header, bitmap element of length 6: half a word.
        ("half a bitmap word", "06000010000000010001000600500000", None, Some(Version::Of15)),
        // 1.5 header, bitmap element of length 10: a word and a half.
        ("bitmap 1.5 words", "06000018000000010001000a000000500000000000000000", None,
         Some(Version::Of15)),
        // 1.5 header, a bitmap with no version set.
        ("zero bitmap", "06000010000000010001000800000000", None, Some(Version::Of15)),
        // 1.5 header, a valid bitmap (1.3 only) and then an element of length 2: the bitmap
        // read before the bad element stands.
        ("bad after bitmap", "060000180000000100010008000000100007000200000000",
         Some(0x10), Some(Version::Of13)),
        // 1.3 header, a bad element first: the walk stops there, the header decides.
        ("bad before bitmap", "040000180000000100070002000000000001000800000040",
         None, Some(Version::Of13)),
    ];
    for (what, hex_frame, versions, negotiated) in cases {
        let f = hex::decode(hex_frame).unwrap();
        let (header, msg) = decode(&f).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(msg, Message::Hello(Hello { versions }), "{what}");
        let Message::Hello(hello) = msg else {
            unreachable!()
        };
        if let Some(want) = negotiated {
            assert_eq!(
                negotiate(&ours, &hello, header.version),
                Some(want),
                "{what}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ERROR
// ---------------------------------------------------------------------------------------------

#[test]
fn error_message() {
    for v in VERSIONS {
        let msg = Message::Error(ErrorMsg {
            err_type: 1,
            code: 6,
            data: Bytes::copy_from_slice(&[v, 0x0e, 0x00, 0x50]),
        });
        let bytes = round_trip(&msg, v, 9);
        #[rustfmt::skip]
        assert_eq!(bytes, [
            v, 0x01, 0x00, 0x10, 0, 0, 0, 9, // header: ERROR, length 16, xid 9
            0x00, 0x01, // type BAD_REQUEST
            0x00, 0x06, // code BAD_LEN
            v, 0x0e, 0x00, 0x50, // data: start of the offending request
        ]);
        let Message::Error(e) = &msg else {
            unreachable!()
        };
        assert_eq!(e.type_name(), "BAD_REQUEST");
        assert_eq!(e.code_name(), "BAD_LEN");
        assert_eq!(e.text(), None, "binary data is not text");
        assert_eq!(e.to_string(), "BAD_REQUEST/BAD_LEN");
        // Type and code are required; the data is free-form.
        assert_eq!(ok_prefixes(&bytes), vec![12, 13, 14, 15]);
        assert_length_mismatch_rejected(&bytes);
    }
    let unknown = ErrorMsg {
        err_type: 99,
        code: 42,
        data: Bytes::from_static(b"some text\0\0"),
    };
    assert_eq!(unknown.type_name(), "type 99");
    assert_eq!(unknown.code_name(), "code 42");
    assert_eq!(unknown.text().as_deref(), Some("some text"));
    assert_eq!(unknown.to_string(), "type 99/code 42: some text");
    let flow_mod_failed = ErrorMsg {
        err_type: 5,
        code: 2,
        data: Bytes::new(),
    };
    assert_eq!(flow_mod_failed.to_string(), "FLOW_MOD_FAILED/BAD_TABLE_ID");
    assert_eq!(flow_mod_failed.text(), None);
}

// ---------------------------------------------------------------------------------------------
// ECHO
// ---------------------------------------------------------------------------------------------

#[test]
fn echo_request_and_reply() {
    for v in VERSIONS {
        for (t, make) in [
            (
                msg_type::ECHO_REQUEST,
                Message::EchoRequest as fn(Bytes) -> Message,
            ),
            (
                msg_type::ECHO_REPLY,
                Message::EchoReply as fn(Bytes) -> Message,
            ),
        ] {
            let empty = round_trip(&make(Bytes::new()), v, 3);
            assert_eq!(empty, [v, t, 0x00, 0x08, 0, 0, 0, 3]);
            let bytes = round_trip(&make(Bytes::from_static(b"abcd")), v, 3);
            assert_eq!(
                bytes,
                [v, t, 0x00, 0x0c, 0, 0, 0, 3, b'a', b'b', b'c', b'd']
            );
            assert_length_mismatch_rejected(&bytes);
            // The payload is opaque: every prefix is an echo with less data.
            for n in 8..bytes.len() {
                let mut f = bytes[..n].to_vec();
                set_len(&mut f);
                assert_eq!(
                    decode(&f).unwrap().1,
                    make(Bytes::copy_from_slice(&bytes[8..n]))
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// FEATURES, CONFIG, BARRIER
// ---------------------------------------------------------------------------------------------

#[test]
fn features_request_and_reply() {
    for v in VERSIONS {
        assert_eq!(
            round_trip(&Message::FeaturesRequest, v, 4),
            [v, 0x05, 0x00, 0x08, 0, 0, 0, 4]
        );
        let reply = Message::FeaturesReply(FeaturesReply {
            datapath_id: 0x0000_1a93_4674_3a42,
            n_buffers: 0x100,
            n_tables: 254,
            auxiliary_id: 1,
            capabilities: 0x0000_004f,
        });
        let bytes = round_trip(&reply, v, 4);
        #[rustfmt::skip]
        assert_eq!(bytes, [
            v, 0x06, 0x00, 0x20, 0, 0, 0, 4, // header: FEATURES_REPLY, length 32
            0x00, 0x00, 0x1a, 0x93, 0x46, 0x74, 0x3a, 0x42, // datapath_id
            0x00, 0x00, 0x01, 0x00, // n_buffers 256
            0xfe, // n_tables 254
            0x01, // auxiliary_id 1
            0x00, 0x00, // pad[2]
            0x00, 0x00, 0x00, 0x4f, // capabilities
            0x00, 0x00, 0x00, 0x00, // reserved
        ]);
        assert_every_prefix_rejected(&bytes);
        assert_length_mismatch_rejected(&bytes);
    }
}

#[test]
fn get_config_and_set_config() {
    for v in VERSIONS {
        assert_eq!(
            round_trip(&Message::GetConfigRequest, v, 5),
            [v, 0x07, 0x00, 0x08, 0, 0, 0, 5]
        );
        let cfg = SwitchConfig {
            flags: 0x0002,
            miss_send_len: 0x0080,
        };
        for (t, msg) in [
            (msg_type::GET_CONFIG_REPLY, Message::GetConfigReply(cfg)),
            (msg_type::SET_CONFIG, Message::SetConfig(cfg)),
        ] {
            let bytes = round_trip(&msg, v, 5);
            #[rustfmt::skip]
            assert_eq!(bytes, [
                v, t, 0x00, 0x0c, 0, 0, 0, 5, // header, length 12
                0x00, 0x02, // flags
                0x00, 0x80, // miss_send_len 128
            ]);
            assert_every_prefix_rejected(&bytes);
            assert_length_mismatch_rejected(&bytes);
        }
    }
}

#[test]
fn barrier_request_and_reply() {
    for v in VERSIONS {
        assert_eq!(
            round_trip(&Message::BarrierRequest, v, 0xffff_ffff),
            [v, 0x14, 0x00, 0x08, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            round_trip(&Message::BarrierReply, v, 0x10),
            [v, 0x15, 0x00, 0x08, 0, 0, 0, 0x10]
        );
        assert_every_prefix_rejected(&[v, 0x15, 0x00, 0x08, 0, 0, 0, 0x10]);
    }
}

// ---------------------------------------------------------------------------------------------
// PORT_STATUS
// ---------------------------------------------------------------------------------------------

/// OF1.3 PORT_STATUS MODIFY with every field nonzero and distinct.
#[rustfmt::skip]
static PORT_STATUS_OF13: [u8; 80] = [
    0x04,                   // version 1.3
    0x0c,                   // type PORT_STATUS (12)
    0x00, 0x50,             // length 80
    0x00, 0x00, 0x00, 0x00, // xid 0 (asynchronous)
    0x02,                   // reason MODIFY
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // pad[7]
    // ofp_port (64 bytes)
    0x00, 0x00, 0x00, 0x07, // port_no 7
    0x00, 0x00, 0x00, 0x00, // pad[4]
    0x02, 0x11, 0x22, 0x33, 0x44, 0x55, // hw_addr 02:11:22:33:44:55
    0x00, 0x00,             // pad[2]
    b'v', b'e', b't', b'h', b'0', 0x00, 0x00, 0x00, // name "veth0", NUL-padded to 16
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x21, // config PORT_DOWN | NO_FWD
    0x00, 0x00, 0x00, 0x05, // state LINK_DOWN | LIVE
    0x00, 0x00, 0x28, 0x40, // curr
    0x00, 0x00, 0x28, 0x41, // advertised
    0x00, 0x00, 0x28, 0x7f, // supported
    0x00, 0x00, 0x00, 0x08, // peer
    0x00, 0x98, 0x96, 0x80, // curr_speed 10_000_000 kbps
    0x01, 0x7d, 0x78, 0x40, // max_speed 25_000_000 kbps
];

/// OF1.5 PORT_STATUS ADD of the same port: 40-byte head plus the Ethernet property.
#[rustfmt::skip]
static PORT_STATUS_OF15: [u8; 88] = [
    0x06,                   // version 1.5
    0x0c,                   // type PORT_STATUS (12)
    0x00, 0x58,             // length 88
    0x00, 0x00, 0x00, 0x00, // xid 0
    0x00,                   // reason ADD
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // pad[7]
    // ofp_port head (40 bytes)
    0x00, 0x00, 0x00, 0x07, // port_no 7
    0x00, 0x48,             // length 72 (head + property)
    0x00, 0x00,             // pad[2]
    0x02, 0x11, 0x22, 0x33, 0x44, 0x55, // hw_addr
    0x00, 0x00,             // pad[2]
    b'v', b'e', b't', b'h', b'0', 0x00, 0x00, 0x00, // name "veth0"
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x21, // config PORT_DOWN | NO_FWD
    0x00, 0x00, 0x00, 0x05, // state LINK_DOWN | LIVE
    // ofp_port_desc_prop_ethernet (32 bytes)
    0x00, 0x00,             // type ETHERNET (0)
    0x00, 0x20,             // length 32
    0x00, 0x00, 0x00, 0x00, // pad[4]
    0x00, 0x00, 0x28, 0x40, // curr
    0x00, 0x00, 0x28, 0x41, // advertised
    0x00, 0x00, 0x28, 0x7f, // supported
    0x00, 0x00, 0x00, 0x08, // peer
    0x00, 0x98, 0x96, 0x80, // curr_speed
    0x01, 0x7d, 0x78, 0x40, // max_speed
];

fn veth0(reason: PortReason) -> PortStatus {
    PortStatus {
        reason,
        port: Port {
            port_no: PortNo(7),
            hw_addr: mac("02:11:22:33:44:55"),
            name: "veth0".to_string(),
            config: PortConfig::PORT_DOWN | PortConfig::NO_FWD,
            state: PortState::LINK_DOWN | PortState::LIVE,
            ethernet: Some(EthernetProps {
                curr: 0x2840,
                advertised: 0x2841,
                supported: 0x287f,
                peer: 0x8,
                curr_speed: 10_000_000,
                max_speed: 25_000_000,
            }),
            other_properties: Bytes::new(),
        },
    }
}

#[test]
fn port_status_fixtures() {
    let of13 = Message::PortStatus(veth0(PortReason::Modify));
    assert_eq!(round_trip(&of13, 0x04, 0), PORT_STATUS_OF13);
    let of15 = Message::PortStatus(veth0(PortReason::Add));
    assert_eq!(round_trip(&of15, 0x06, 0), PORT_STATUS_OF15);
    for f in [&PORT_STATUS_OF13[..], &PORT_STATUS_OF15[..]] {
        assert_every_prefix_rejected(f);
        assert_length_mismatch_rejected(f);
    }
}

#[test]
fn port_status_reasons_and_flags_round_trip() {
    for v in VERSIONS {
        for reason in [
            PortReason::Add,
            PortReason::Delete,
            PortReason::Modify,
            PortReason::Unknown(9),
        ] {
            let mut ps = veth0(reason);
            // Unknown bits survive.
            ps.port.config = PortConfig::from_bits_retain(0x8000_0045);
            ps.port.state = PortState::from_bits_retain(0x0000_0302);
            let bytes = round_trip(&Message::PortStatus(ps), v, 0);
            assert_eq!(bytes[8], reason.wire());
        }
    }
    assert_eq!(PortReason::from_wire(9), PortReason::Unknown(9));
    assert_eq!(PortReason::Unknown(9).name(), "unknown(9)");
}

#[test]
fn port_names_are_cut_to_15_bytes_and_nul_terminated() {
    for v in VERSIONS {
        let mut ps = veth0(PortReason::Add);
        ps.port.name = "0123456789abcdefXYZ".to_string();
        let bytes = encode(&Message::PortStatus(ps), v, 0).unwrap();
        let name_at = 16 + 16;
        assert_eq!(&bytes[name_at..name_at + 16], b"0123456789abcde\0");
        let Message::PortStatus(back) = decode(&bytes).unwrap().1 else {
            panic!()
        };
        assert_eq!(back.port.name, "0123456789abcde");
    }
    // A name with no NUL in 16 bytes (not what a switch should send) is read as its first 15
    // bytes, as OVS reads it, so it re-encodes to the same port.
    for fixture in [&PORT_STATUS_OF13[..], &PORT_STATUS_OF15[..]] {
        let mut f = fixture.to_vec();
        f[32..48].copy_from_slice(b"0123456789abcdef");
        let (h, msg) = decode(&f).unwrap();
        let Message::PortStatus(ps) = &msg else {
            panic!()
        };
        assert_eq!(ps.port.name, "0123456789abcde");
        let again = encode(&msg, h.version, h.xid).unwrap();
        assert_eq!(decode(&again).unwrap().1, msg);
    }
}

/// Offset of the 1.5 port's length field in a PORT_STATUS frame.
const PORT_LEN_AT: usize = 8 + 8 + 4;

#[test]
fn of15_port_length_must_fit_the_message() {
    for declared in [0u16, 8, 39, 41, 48, 71, 73, 80, 200, 0xffff] {
        let mut f = PORT_STATUS_OF15;
        f[PORT_LEN_AT..PORT_LEN_AT + 2].copy_from_slice(&declared.to_be_bytes());
        let err = decode(&f).unwrap_err();
        // Either the port does not fit, or it ends inside its own property.
        assert!(
            matches!(
                err,
                DecodeError::BadLength { .. } | DecodeError::Truncated { .. }
            ),
            "port length {declared}: {err:?}"
        );
    }
}

#[test]
fn of15_port_property_lengths() {
    const PROP_LEN_AT: usize = 16 + 40 + 2;
    for declared in [0u16, 3] {
        let mut f = PORT_STATUS_OF15;
        f[PROP_LEN_AT..PROP_LEN_AT + 2].copy_from_slice(&declared.to_be_bytes());
        assert!(
            matches!(
                decode(&f),
                Err(DecodeError::BadLength {
                    what: "port property",
                    ..
                })
            ),
            "property length {declared}: {:?}",
            decode(&f)
        );
    }
    // The Ethernet property must be exactly 32 bytes.
    let mut f = PORT_STATUS_OF15;
    f[PROP_LEN_AT..PROP_LEN_AT + 2].copy_from_slice(&24u16.to_be_bytes());
    assert!(matches!(
        decode(&f),
        Err(DecodeError::BadLength {
            what: "port Ethernet property",
            declared: 24,
            ..
        })
    ));
    // A property longer than the port.
    let mut f = PORT_STATUS_OF15;
    f[PROP_LEN_AT..PROP_LEN_AT + 2].copy_from_slice(&40u16.to_be_bytes());
    assert!(matches!(decode(&f), Err(DecodeError::BadLength { .. })));
}

#[test]
fn of15_unknown_port_property_before_ethernet_is_kept() {
    // Head (40) + experimenter property (12, padded to 16) + Ethernet property (32) = 88.
    let mut port = PORT_STATUS_OF15[16..56].to_vec();
    port[4..6].copy_from_slice(&88u16.to_be_bytes());
    #[rustfmt::skip]
    port.extend_from_slice(&[
        0xff, 0xff,             // type EXPERIMENTER
        0x00, 0x0c,             // length 12
        0x00, 0x00, 0x23, 0x20, // experimenter id
        0x00, 0x00, 0x00, 0x01, // exp_type
        0x00, 0x00, 0x00, 0x00, // padding to 16
    ]);
    port.extend_from_slice(&PORT_STATUS_OF15[56..88]);
    let mut body = vec![0x00; 8]; // reason ADD, pad
    body.extend_from_slice(&port);
    let f = frame(0x06, msg_type::PORT_STATUS, 0, &body);
    assert_eq!(f.len(), 104);
    let (_, msg) = decode(&f).unwrap();
    let mut expected = veth0(PortReason::Add);
    expected.port.other_properties = Bytes::copy_from_slice(&port[40..56]);
    assert_eq!(msg, Message::PortStatus(expected));
    // Encoding puts the Ethernet property first, then the kept one: same bytes, that order.
    let mut ethernet_first = port[..40].to_vec();
    ethernet_first.extend_from_slice(&PORT_STATUS_OF15[56..88]);
    ethernet_first.extend_from_slice(&port[40..56]);
    assert_eq!(&encode(&msg, 0x06, 0).unwrap()[16..], &ethernet_first[..]);

    // A 1.5 port with no property at all has no Ethernet data.
    let mut head = PORT_STATUS_OF15[16..56].to_vec();
    head[4..6].copy_from_slice(&40u16.to_be_bytes());
    let mut body = vec![0x02; 1];
    body.extend_from_slice(&[0; 7]);
    body.extend_from_slice(&head);
    let (_, msg) = decode(&frame(0x06, msg_type::PORT_STATUS, 0, &body)).unwrap();
    let mut expected = veth0(PortReason::Modify);
    expected.port.ethernet = None;
    assert_eq!(msg, Message::PortStatus(expected.clone()));
    // ...and it encodes back to a 40-byte port.
    assert_eq!(
        round_trip(&Message::PortStatus(expected), 0x06, 0).len(),
        8 + 8 + 40
    );
}

/// Properties other than Ethernet keep their bytes (header, body and padding) and a port as
/// OVS orders it (Ethernet first) encodes back to exactly the bytes it came from, in
/// PORT_STATUS and in a PORT_DESC reply; a last property without its padding too.
#[test]
fn of15_unknown_port_properties_round_trip_byte_for_byte() {
    #[rustfmt::skip]
    let mut port = hex::decode(concat!(
        "00000007", "0068", "0000", "021122334455", "0000",     // port 7, length 104
        "7665746830000000", "0000000000000000",                 // name "veth0"
        "00000021", "00000005",                                 // config, state
        "0000002000000000", "0000284000002841",                 // Ethernet (32 bytes)
        "0000287f00000008", "00989680017d7840",
        "ffff000c00002320", "0000000100000000",                 // experimenter: 12, pad 4
        "0001000e00000000", "0102030405060000",                 // optical (1): 14, pad 2
    ))
    .unwrap();
    assert_eq!(port.len(), 104);
    let others = port[72..].to_vec();

    let mut status = vec![0u8; 8]; // reason ADD, pad
    status.extend_from_slice(&port);
    let f = frame(0x06, msg_type::PORT_STATUS, 9, &status);
    let (_, msg) = decode(&f).unwrap();
    let mut expected = veth0(PortReason::Add);
    expected.port.other_properties = Bytes::from(others.clone());
    assert_eq!(msg, Message::PortStatus(expected.clone()));
    assert_eq!(&encode(&msg, 0x06, 9).unwrap()[..], &f[..]);

    let mut reply = hex::decode("000d000000000000").unwrap(); // PORT_DESC, no flags, pad
    reply.extend_from_slice(&port);
    reply.extend_from_slice(&PORT_STATUS_OF15[16..]); // a second port without others
    let f = frame(0x06, msg_type::MULTIPART_REPLY, 3, &reply);
    let (_, msg) = decode(&f).unwrap();
    let Message::MultipartReply(MultipartReply {
        body: MultipartReplyBody::PortDesc(ports),
        ..
    }) = &msg
    else {
        panic!("{msg:?}")
    };
    assert_eq!(ports[0].other_properties, others);
    assert!(ports[1].other_properties.is_empty());
    assert_eq!(&encode(&msg, 0x06, 3).unwrap()[..], &f[..]);

    // The last property may omit its padding: kept as sent, and sent back the same.
    port.truncate(102);
    port[4..6].copy_from_slice(&102u16.to_be_bytes());
    let mut status = vec![0u8; 8];
    status.extend_from_slice(&port);
    let f = frame(0x06, msg_type::PORT_STATUS, 9, &status);
    let (_, msg) = decode(&f).unwrap();
    let Message::PortStatus(ps) = &msg else {
        panic!("{msg:?}")
    };
    assert_eq!(ps.port.other_properties, port[72..]);
    assert_eq!(&encode(&msg, 0x06, 9).unwrap()[..], &f[..]);
}

// ---------------------------------------------------------------------------------------------
// MULTIPART PORT_DESC
// ---------------------------------------------------------------------------------------------

#[test]
fn port_desc_request() {
    let req = Message::MultipartRequest(MultipartRequest::PortDesc { more: false });
    #[rustfmt::skip]
    let of13 = [
        0x04, 0x12, 0x00, 0x10, 0x00, 0x00, 0x00, 0x04, // header: MULTIPART_REQUEST, length 16
        0x00, 0x0d,             // type PORT_DESC
        0x00, 0x00,             // flags
        0x00, 0x00, 0x00, 0x00, // pad[4]
    ];
    assert_eq!(round_trip(&req, 0x04, 4), of13);
    assert_every_prefix_rejected(&of13);
    assert_length_mismatch_rejected(&of13);

    #[rustfmt::skip]
    let of15 = [
        0x06, 0x12, 0x00, 0x18, 0x00, 0x00, 0x00, 0x04, // header, length 24
        0x00, 0x0d,             // type PORT_DESC
        0x00, 0x00,             // flags
        0x00, 0x00, 0x00, 0x00, // pad[4]
        0xff, 0xff, 0xff, 0xff, // port_no ANY
        0x00, 0x00, 0x00, 0x00, // pad[4]
    ];
    assert_eq!(round_trip(&req, 0x06, 4), of15);
    assert_length_mismatch_rejected(&of15);
    // Shorter 1.5 bodies are not the every-port request any more: they stay `Other`, so a
    // request OVS would reject with BAD_LEN is never mistaken for ours.
    for n in ok_prefixes(&of15) {
        let mut f = of15[..n].to_vec();
        set_len(&mut f);
        assert!(
            matches!(
                decode(&f).unwrap().1,
                Message::MultipartRequest(MultipartRequest::Other { mp_type: 13, .. })
            ),
            "prefix {n}"
        );
    }
    assert_eq!(ok_prefixes(&of15), (16..24).collect::<Vec<_>>());
    // 1.5 request for a single port is not `PortDesc` either.
    let mut one = of15;
    one[16..20].copy_from_slice(&5u32.to_be_bytes());
    assert_eq!(
        decode(&one).unwrap().1,
        Message::MultipartRequest(MultipartRequest::Other {
            mp_type: 13,
            flags: 0,
            body: Bytes::from_static(&[0, 0, 0, 5, 0, 0, 0, 0]),
        })
    );
}

/// OFPMPF_REQ_MORE on a PORT_DESC request survives decoding and encoding; another flag bit
/// leaves the request `Other`, flags and all.
#[test]
fn port_desc_request_keeps_req_more() {
    let more = Message::MultipartRequest(MultipartRequest::PortDesc { more: true });
    for (v, hex_frame) in [
        // 1.3: MULTIPART_REQUEST, length 16, xid 4, type PORT_DESC, flags REQ_MORE, pad.
        (0x04, "0412001000000004000d000100000000"),
        // 1.5: the same with port_no ANY and pad.
        (0x06, "0612001800000004000d000100000000ffffffff00000000"),
    ] {
        let f = hex::decode(hex_frame).unwrap();
        assert_eq!(decode(&f).unwrap().1, more, "{v:#x}");
        assert_eq!(&encode(&more, v, 4).unwrap()[..], &f[..], "{v:#x}");
    }
    // Flags 0x0002 (not defined): the request is kept as sent.
    let f = hex::decode("0412001000000004000d000200000000").unwrap();
    let (_, msg) = decode(&f).unwrap();
    assert_eq!(
        msg,
        Message::MultipartRequest(MultipartRequest::Other {
            mp_type: 13,
            flags: 2,
            body: Bytes::new(),
        })
    );
    assert_eq!(&encode(&msg, 0x04, 4).unwrap()[..], &f[..]);
}

#[test]
fn other_multipart_request_round_trips() {
    for v in VERSIONS {
        // Type 0 (DESC) is not typed; type 1 (flows) would have to be a valid flow request.
        let msg = Message::MultipartRequest(MultipartRequest::Other {
            mp_type: 0,
            flags: 1,
            body: Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8]),
        });
        let bytes = round_trip(&msg, v, 8);
        assert_eq!(&bytes[8..12], &[0x00, 0x00, 0x00, 0x01]);
    }
}

fn two_ports() -> Vec<Port> {
    let mut a = veth0(PortReason::Add).port;
    a.port_no = PortNo::LOCAL;
    a.name = "br-int".to_string();
    let mut b = Port::new(8, "bad1");
    b.hw_addr = mac("aa:55:aa:55:00:15");
    b.state = PortState::LIVE;
    vec![a, b]
}

#[test]
fn port_desc_reply_of13() {
    let msg = Message::MultipartReply(MultipartReply {
        more: true,
        body: MultipartReplyBody::PortDesc(two_ports()),
    });
    let bytes = round_trip(&msg, 0x04, 4);
    assert_eq!(bytes.len(), 16 + 2 * 64);
    #[rustfmt::skip]
    assert_eq!(&bytes[..16], &[
        0x04, 0x13, 0x00, 0x90, 0x00, 0x00, 0x00, 0x04, // header: MULTIPART_REPLY, length 144
        0x00, 0x0d,             // type PORT_DESC
        0x00, 0x01,             // flags REPLY_MORE
        0x00, 0x00, 0x00, 0x00, // pad[4]
    ]);
    // First port: LOCAL.
    assert_eq!(&bytes[16..20], &[0xff, 0xff, 0xff, 0xfe]);
    // The second port is a whole 1.3 `ofp_port`.
    assert_eq!(&bytes[80..84], &[0, 0, 0, 8]);
    assert_eq!(&bytes[88..94], &[0xaa, 0x55, 0xaa, 0x55, 0x00, 0x15]);
    assert_eq!(&bytes[96..112], b"bad1\0\0\0\0\0\0\0\0\0\0\0\0");
    assert_eq!(&bytes[116..120], &[0, 0, 0, 4]);
    // Prefixes end cleanly only between ports.
    assert_eq!(ok_prefixes(&bytes), vec![16, 80]);
    assert_length_mismatch_rejected(&bytes);

    let last = Message::MultipartReply(MultipartReply {
        more: false,
        body: MultipartReplyBody::PortDesc(Vec::new()),
    });
    assert_eq!(
        round_trip(&last, 0x04, 4),
        [0x04, 0x13, 0x00, 0x10, 0, 0, 0, 4, 0x00, 0x0d, 0x00, 0x00, 0, 0, 0, 0]
    );
}

#[test]
fn port_desc_reply_of15() {
    let mut ports = two_ports();
    // A 1.5 port without the Ethernet property is 40 bytes.
    ports[1].ethernet = None;
    let msg = Message::MultipartReply(MultipartReply {
        more: false,
        body: MultipartReplyBody::PortDesc(ports),
    });
    let bytes = round_trip(&msg, 0x06, 0x44);
    assert_eq!(bytes.len(), 16 + 72 + 40);
    assert_eq!(&bytes[2..4], &[0x00, 0x80]);
    assert_eq!(&bytes[10..12], &[0x00, 0x00], "flags");
    assert_eq!(
        &bytes[16 + 4..16 + 6],
        &[0x00, 0x48],
        "first port length 72"
    );
    assert_eq!(
        &bytes[88 + 4..88 + 6],
        &[0x00, 0x28],
        "second port length 40"
    );
    // The first port is the PORT_STATUS fixture's port with another number and name.
    let mut first = PORT_STATUS_OF15[16..88].to_vec();
    first[0..4].copy_from_slice(&[0xff, 0xff, 0xff, 0xfe]);
    first[16..32].copy_from_slice(b"br-int\0\0\0\0\0\0\0\0\0\0");
    assert_eq!(&bytes[16..88], &first[..]);
    assert_eq!(ok_prefixes(&bytes), vec![16, 88]);
    assert_length_mismatch_rejected(&bytes);
}

#[test]
fn port_desc_reply_bad_port_lengths() {
    // 1.3: a body that is not a whole number of 64-byte ports.
    let mut body = vec![0x00, 0x0d, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&PORT_STATUS_OF13[16..80]);
    body.extend_from_slice(&[0; 10]);
    assert!(matches!(
        decode(&frame(0x04, msg_type::MULTIPART_REPLY, 1, &body)),
        Err(DecodeError::BadLength {
            what: "ofp_port (1.3)",
            ..
        } | DecodeError::Truncated {
            what: "ofp_port (1.3)",
            ..
        })
    ));
    // 1.5: a port whose length is 0 (would never advance) or beyond the message.
    for declared in [0u16, 39, 73, 1000] {
        let mut body = vec![0x00, 0x0d, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&PORT_STATUS_OF15[16..88]);
        body[8 + 4..8 + 6].copy_from_slice(&declared.to_be_bytes());
        assert!(
            matches!(
                decode(&frame(0x06, msg_type::MULTIPART_REPLY, 1, &body)),
                Err(DecodeError::BadLength { .. })
            ),
            "port length {declared}"
        );
    }
    // 1.5: fewer than 8 bytes left for the next port.
    let mut body = vec![0x00, 0x0d, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&PORT_STATUS_OF15[16..88]);
    body.extend_from_slice(&[0, 0, 0, 1, 0]);
    assert!(decode(&frame(0x06, msg_type::MULTIPART_REPLY, 1, &body)).is_err());
}

#[test]
fn other_multipart_reply_round_trips() {
    for v in VERSIONS {
        let msg = Message::MultipartReply(MultipartReply {
            more: true,
            body: MultipartReplyBody::Other {
                mp_type: 0,
                body: Bytes::from_static(b"switch description"),
            },
        });
        let bytes = round_trip(&msg, v, 8);
        assert_eq!(&bytes[8..12], &[0x00, 0x00, 0x00, 0x01]);
        assert_every_prefix_rejected(&bytes[..16]);
    }
}

#[test]
fn too_long_reply_is_an_encode_error_and_leaves_the_buffer_alone() {
    // 16 + 1100 × 64 bytes does not fit the 16-bit length.
    let ports: Vec<Port> = (1..=1100).map(|i| Port::new(i, "x")).collect();
    let msg = Message::MultipartReply(MultipartReply {
        more: false,
        body: MultipartReplyBody::PortDesc(ports),
    });
    assert!(matches!(
        encode(&msg, 0x04, 1),
        Err(EncodeError::TooLong { len: 70_416, .. })
    ));
    let mut buf = BytesMut::from(&[0xa5u8; 5][..]);
    encode_into(&msg, 0x04, 1, &mut buf).unwrap_err();
    assert_eq!(&buf[..], &[0xa5; 5]);
    // Exactly 65535 bytes is fine: 16 + 1023 × 64 = 65488.
    let ports: Vec<Port> = (1..=1023).map(|i| Port::new(i, "x")).collect();
    let msg = Message::MultipartReply(MultipartReply {
        more: true,
        body: MultipartReplyBody::PortDesc(ports),
    });
    assert_eq!(round_trip(&msg, 0x04, 1).len(), 65_488);
}

// ---------------------------------------------------------------------------------------------
// FLOW_MOD
// ---------------------------------------------------------------------------------------------

/// OF1.3 ADD: in_port, eth_type, ipv4_src, masked ipv4_dst; apply-actions (set eth_dst, output)
/// and goto-table.
#[rustfmt::skip]
static FLOW_MOD_OF13: [u8; 136] = [
    0x04,                   // version 1.3
    0x0e,                   // type FLOW_MOD (14)
    0x00, 0x88,             // length 136
    0x00, 0x00, 0x00, 0x2a, // xid 42
    0x00, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, // cookie
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // cookie_mask
    0x05,                   // table_id 5
    0x00,                   // command ADD
    0x00, 0x3c,             // idle_timeout 60
    0x01, 0x2c,             // hard_timeout 300
    0x01, 0xf4,             // priority 500
    0xff, 0xff, 0xff, 0xff, // buffer_id NO_BUFFER
    0xff, 0xff, 0xff, 0xff, // out_port ANY
    0xff, 0xff, 0xff, 0xff, // out_group ANY
    0x00, 0x03,             // flags SEND_FLOW_REM | CHECK_OVERLAP
    0x00, 0x00,             // pad[2] (importance in 1.5)
    // ofp_match
    0x00, 0x01,             // type OXM
    0x00, 0x26,             // length 38, without padding
    0x80, 0x00, 0x00, 0x04, // OXM OPENFLOW_BASIC in_port, length 4
    0x00, 0x00, 0x00, 0x07, //   port 7
    0x80, 0x00, 0x0a, 0x02, // OXM eth_type, length 2
    0x08, 0x00,             //   IPv4
    0x80, 0x00, 0x16, 0x04, // OXM ipv4_src, length 4
    0x0a, 0x00, 0x00, 0x02, //   10.0.0.2
    0x80, 0x00, 0x19, 0x08, // OXM ipv4_dst with mask, length 8
    0x0a, 0x00, 0x01, 0x00, //   10.0.1.0
    0xff, 0xff, 0xff, 0x00, //   mask 255.255.255.0
    0x00, 0x00,             // padding of the match to 40
    // instruction APPLY_ACTIONS
    0x00, 0x04,             // type APPLY_ACTIONS (4)
    0x00, 0x28,             // length 40
    0x00, 0x00, 0x00, 0x00, // pad[4]
    0x00, 0x19,             //   action SET_FIELD (25)
    0x00, 0x10,             //   length 16
    0x80, 0x00, 0x06, 0x06, //   OXM eth_dst, length 6
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // 02:00:00:00:00:01
    0x00, 0x00,             //   padding to 16
    0x00, 0x00,             //   action OUTPUT (0)
    0x00, 0x10,             //   length 16
    0x00, 0x00, 0x00, 0x03, //   port 3
    0x00, 0x80,             //   max_len 128
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // pad[6]
    // instruction GOTO_TABLE
    0x00, 0x01,             // type GOTO_TABLE (1)
    0x00, 0x08,             // length 8
    0x0a,                   // table 10
    0x00, 0x00, 0x00,       // pad[3]
];

fn flow_mod_of13() -> FlowMod {
    FlowMod {
        cookie: 0xdead_beef,
        cookie_mask: u64::MAX,
        table_id: 5,
        command: FlowModCommand::Add,
        idle_timeout: 60,
        hard_timeout: 300,
        priority: 500,
        buffer_id: NO_BUFFER,
        out_port: PortNo::ANY,
        out_group: GROUP_ANY,
        flags: FlowModFlags::SEND_FLOW_REM | FlowModFlags::CHECK_OVERLAP,
        importance: 0,
        matches: vec![
            OxmField::InPort(PortNo(7)),
            OxmField::EthType(ETH_TYPE_IPV4),
            OxmField::Ipv4Src {
                addr: ip("10.0.0.2"),
                mask: None,
            },
            OxmField::Ipv4Dst {
                addr: ip("10.0.1.0"),
                mask: Some(ip("255.255.255.0")),
            },
        ],
        instructions: vec![
            Instruction::ApplyActions(vec![
                Action::SetField(OxmField::EthDst {
                    addr: mac("02:00:00:00:00:01"),
                    mask: None,
                }),
                Action::Output {
                    port: PortNo(3),
                    max_len: 128,
                },
            ]),
            Instruction::GotoTable(10),
        ],
    }
}

/// OF1.5 MODIFY with importance: eth_src, masked eth_dst, eth_type ARP, arp_spa, arp_tpa;
/// apply-actions (output CONTROLLER) and goto-table.
#[rustfmt::skip]
static FLOW_MOD_OF15: [u8; 136] = [
    0x06,                   // version 1.5
    0x0e,                   // type FLOW_MOD (14)
    0x00, 0x88,             // length 136
    0x00, 0x00, 0x01, 0x00, // xid 256
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // cookie
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie_mask 0
    0x00,                   // table_id 0
    0x01,                   // command MODIFY
    0x00, 0x00,             // idle_timeout 0
    0x00, 0x00,             // hard_timeout 0
    0x80, 0x00,             // priority 0x8000
    0xff, 0xff, 0xff, 0xff, // buffer_id NO_BUFFER
    0xff, 0xff, 0xff, 0xff, // out_port ANY
    0xff, 0xff, 0xff, 0xff, // out_group ANY
    0x00, 0x01,             // flags SEND_FLOW_REM
    0x00, 0x07,             // importance 7
    // ofp_match
    0x00, 0x01,             // type OXM
    0x00, 0x34,             // length 52, without padding
    0x80, 0x00, 0x08, 0x06, // OXM eth_src, length 6
    0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, // 02:aa:bb:cc:dd:ee
    0x80, 0x00, 0x07, 0x0c, // OXM eth_dst with mask, length 12
    0x01, 0x00, 0x5e, 0x00, 0x00, 0x00, // 01:00:5e:00:00:00
    0xff, 0xff, 0xff, 0x80, 0x00, 0x00, // mask ff:ff:ff:80:00:00
    0x80, 0x00, 0x0a, 0x02, // OXM eth_type, length 2
    0x08, 0x06,             //   ARP
    0x80, 0x00, 0x2c, 0x04, // OXM arp_spa, length 4
    0xc0, 0xa8, 0x00, 0x01, //   192.168.0.1
    0x80, 0x00, 0x2e, 0x04, // OXM arp_tpa, length 4
    0xc0, 0xa8, 0x00, 0x02, //   192.168.0.2
    0x00, 0x00, 0x00, 0x00, // padding of the match to 56
    // instruction APPLY_ACTIONS
    0x00, 0x04,             // type APPLY_ACTIONS
    0x00, 0x18,             // length 24
    0x00, 0x00, 0x00, 0x00, // pad[4]
    0x00, 0x00,             //   action OUTPUT
    0x00, 0x10,             //   length 16
    0xff, 0xff, 0xff, 0xfd, //   port CONTROLLER
    0xff, 0xff,             //   max_len 0xffff (no buffer)
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // pad[6]
    // instruction GOTO_TABLE
    0x00, 0x01,             // type GOTO_TABLE
    0x00, 0x08,             // length 8
    0x03,                   // table 3
    0x00, 0x00, 0x00,       // pad[3]
];

fn flow_mod_of15() -> FlowMod {
    FlowMod::modify(0)
        .cookie(0x0102_0304_0506_0708, 0)
        .flags(FlowModFlags::SEND_FLOW_REM)
        .matching(OxmField::EthSrc {
            addr: mac("02:aa:bb:cc:dd:ee"),
            mask: None,
        })
        .matching(OxmField::EthDst {
            addr: mac("01:00:5e:00:00:00"),
            mask: Some(mac("ff:ff:ff:80:00:00")),
        })
        .matching(OxmField::EthType(ETH_TYPE_ARP))
        .matching(OxmField::ArpSpa {
            addr: ip("192.168.0.1"),
            mask: None,
        })
        .matching(OxmField::ArpTpa {
            addr: ip("192.168.0.2"),
            mask: None,
        })
        .apply(vec![Action::Output {
            port: PortNo::CONTROLLER,
            max_len: 0xffff,
        }])
        .goto_table(3)
}

#[test]
fn flow_mod_of13_fixture() {
    let msg = Message::FlowMod(flow_mod_of13());
    assert_eq!(round_trip(&msg, 0x04, 42), FLOW_MOD_OF13);
    assert_eq!(decode(&FLOW_MOD_OF13).unwrap().1, msg);
    // A frame may end after the match or after a whole instruction, nowhere else.
    assert_eq!(ok_prefixes(&FLOW_MOD_OF13), vec![88, 128]);
    assert_length_mismatch_rejected(&FLOW_MOD_OF13);
}

#[test]
fn flow_mod_of15_fixture() {
    let mut fm = flow_mod_of15();
    fm.importance = 7;
    let msg = Message::FlowMod(fm);
    assert_eq!(round_trip(&msg, 0x06, 256), FLOW_MOD_OF15);
    assert_eq!(decode(&FLOW_MOD_OF15).unwrap().1, msg);
    assert_eq!(ok_prefixes(&FLOW_MOD_OF15), vec![104, 128]);
    assert_length_mismatch_rejected(&FLOW_MOD_OF15);
}

#[test]
fn flow_mod_importance_is_a_pad_in_of13() {
    let mut fm = flow_mod_of15();
    fm.importance = 0x1234;
    let of15 = encode(&Message::FlowMod(fm.clone()), 0x06, 1).unwrap();
    assert_eq!(&of15[46..48], &[0x12, 0x34]);
    let of13 = encode(&Message::FlowMod(fm.clone()), 0x04, 1).unwrap();
    assert_eq!(&of13[46..48], &[0x00, 0x00]);
    assert_eq!(of13.len(), of15.len(), "only that field differs in size");
    assert_eq!(
        &of13[1..],
        &{
            let mut v = of15.to_vec();
            v[46..48].copy_from_slice(&[0, 0]);
            v
        }[1..]
    );
    // Whatever is in the 1.3 pad, importance decodes as 0.
    let mut patched = of13.to_vec();
    patched[46..48].copy_from_slice(&[0xab, 0xcd]);
    let Message::FlowMod(back) = decode(&patched).unwrap().1 else {
        panic!()
    };
    assert_eq!(back.importance, 0);
    fm.importance = 0;
    assert_eq!(back, fm);
}

#[test]
fn flow_mod_commands_round_trip() {
    let cookie = 0x00c0_ffee_0000_0001;
    let cases = [
        (
            FlowMod::add(2).cookie(cookie, 0).priority(100),
            0u8,
            FlowModCommand::Add,
        ),
        (
            FlowMod::modify(2).cookie(cookie, u64::MAX),
            1,
            FlowModCommand::Modify,
        ),
        (
            FlowMod {
                command: FlowModCommand::ModifyStrict,
                ..FlowMod::add(2)
            },
            2,
            FlowModCommand::ModifyStrict,
        ),
        (FlowMod::delete_by_cookie(cookie), 3, FlowModCommand::Delete),
        (
            FlowMod::delete_strict(7)
                .priority(9)
                .matching(OxmField::InPort(PortNo(1))),
            4,
            FlowModCommand::DeleteStrict,
        ),
        (
            FlowMod {
                command: FlowModCommand::Unknown(0x42),
                ..FlowMod::add(0)
            },
            0x42,
            FlowModCommand::Unknown(0x42),
        ),
    ];
    for v in VERSIONS {
        for (fm, wire, command) in &cases {
            assert_eq!(fm.command, *command);
            let bytes = round_trip(&Message::FlowMod(fm.clone()), v, 1);
            assert_eq!(bytes[8 + 16 + 1], *wire, "{command:?}");
            assert_eq!(&bytes[8..16], &fm.cookie.to_be_bytes());
            assert_eq!(&bytes[16..24], &fm.cookie_mask.to_be_bytes());
            assert_eq!(bytes[24], fm.table_id);
            assert_eq!(&bytes[30..32], &fm.priority.to_be_bytes());
            // No match fields: the empty match is 4 bytes padded to 8.
            if fm.matches.is_empty() {
                assert_eq!(&bytes[48..56], &[0, 1, 0, 4, 0, 0, 0, 0]);
            }
        }
    }
    let del = FlowMod::delete_by_cookie(cookie);
    assert_eq!(del.table_id, TABLE_ALL);
    assert_eq!((del.cookie, del.cookie_mask), (cookie, u64::MAX));
    // Every flag bit, known or not, survives.
    for v in VERSIONS {
        let fm = FlowMod::add(0).flags(FlowModFlags::from_bits_retain(0xffff));
        let bytes = round_trip(&Message::FlowMod(fm), v, 1);
        assert_eq!(&bytes[44..46], &[0xff, 0xff]);
    }
}

/// Every typed OXM field with its exact header and value bytes.
fn oxm_cases() -> Vec<(OxmField, [u8; 4], Vec<u8>)> {
    let m1 = mac("02:00:00:00:00:01");
    let m2 = mac("ff:ff:ff:00:00:00");
    let a = ip("10.1.2.3");
    let m = ip("255.255.0.0");
    let cat = |x: &[u8], y: &[u8]| [x, y].concat();
    vec![
        (
            OxmField::InPort(PortNo(7)),
            [0x80, 0x00, 0x00, 0x04],
            vec![0, 0, 0, 7],
        ),
        (
            OxmField::InPort(PortNo::LOCAL),
            [0x80, 0x00, 0x00, 0x04],
            vec![0xff, 0xff, 0xff, 0xfe],
        ),
        (
            OxmField::EthDst {
                addr: m1,
                mask: None,
            },
            [0x80, 0x00, 0x06, 0x06],
            m1.0.to_vec(),
        ),
        (
            OxmField::EthDst {
                addr: m1,
                mask: Some(m2),
            },
            [0x80, 0x00, 0x07, 0x0c],
            cat(&m1.0, &m2.0),
        ),
        (
            OxmField::EthSrc {
                addr: m1,
                mask: None,
            },
            [0x80, 0x00, 0x08, 0x06],
            m1.0.to_vec(),
        ),
        (
            OxmField::EthSrc {
                addr: m1,
                mask: Some(m2),
            },
            [0x80, 0x00, 0x09, 0x0c],
            cat(&m1.0, &m2.0),
        ),
        (
            OxmField::EthType(ETH_TYPE_ARP),
            [0x80, 0x00, 0x0a, 0x02],
            vec![0x08, 0x06],
        ),
        (
            OxmField::Ipv4Src {
                addr: a,
                mask: None,
            },
            [0x80, 0x00, 0x16, 0x04],
            a.octets().to_vec(),
        ),
        (
            OxmField::Ipv4Src {
                addr: a,
                mask: Some(m),
            },
            [0x80, 0x00, 0x17, 0x08],
            cat(&a.octets(), &m.octets()),
        ),
        (
            OxmField::Ipv4Dst {
                addr: a,
                mask: None,
            },
            [0x80, 0x00, 0x18, 0x04],
            a.octets().to_vec(),
        ),
        (
            OxmField::Ipv4Dst {
                addr: a,
                mask: Some(m),
            },
            [0x80, 0x00, 0x19, 0x08],
            cat(&a.octets(), &m.octets()),
        ),
        (
            OxmField::ArpSpa {
                addr: a,
                mask: None,
            },
            [0x80, 0x00, 0x2c, 0x04],
            a.octets().to_vec(),
        ),
        (
            OxmField::ArpSpa {
                addr: a,
                mask: Some(m),
            },
            [0x80, 0x00, 0x2d, 0x08],
            cat(&a.octets(), &m.octets()),
        ),
        (
            OxmField::ArpTpa {
                addr: a,
                mask: None,
            },
            [0x80, 0x00, 0x2e, 0x04],
            a.octets().to_vec(),
        ),
        (
            OxmField::ArpTpa {
                addr: a,
                mask: Some(m),
            },
            [0x80, 0x00, 0x2f, 0x08],
            cat(&a.octets(), &m.octets()),
        ),
    ]
}

#[test]
fn every_oxm_field_encodes_with_its_header_and_pads_the_match() {
    for v in VERSIONS {
        for (field, header, value) in oxm_cases() {
            let fm = FlowMod::add(0).matching(field.clone());
            let bytes = round_trip(&Message::FlowMod(fm), v, 1);
            let match_len = 4 + 4 + value.len();
            assert_eq!(&bytes[48..50], &[0x00, 0x01], "{field}: OXM match type");
            assert_eq!(
                &bytes[50..52],
                &u16::try_from(match_len).unwrap().to_be_bytes(),
                "{field}: match length excludes padding"
            );
            assert_eq!(&bytes[52..56], &header, "{field}: OXM header");
            assert_eq!(&bytes[56..56 + value.len()], &value[..], "{field}: value");
            let padded = match_len.div_ceil(8) * 8;
            assert!(
                bytes[48 + match_len..48 + padded].iter().all(|&b| b == 0),
                "{field}: padding"
            );
            assert_eq!(bytes.len(), 48 + padded, "{field}: no instructions");
            assert_eq!(bytes.len() % 8, 0);
        }
    }
}

#[test]
fn every_oxm_field_as_set_field_action() {
    for v in VERSIONS {
        for (field, header, value) in oxm_cases() {
            let fm = FlowMod::add(0).apply(vec![Action::SetField(field.clone())]);
            let bytes = round_trip(&Message::FlowMod(fm), v, 1);
            // Header 8 + fixed 40 + empty match 8, then the instruction.
            let action_len = (4 + 4 + value.len()).div_ceil(8) * 8;
            assert_eq!(&bytes[56..58], &[0x00, 0x04]);
            assert_eq!(
                &bytes[58..60],
                &u16::try_from(8 + action_len).unwrap().to_be_bytes()
            );
            assert_eq!(&bytes[64..66], &[0x00, 0x19], "{field}: SET_FIELD");
            assert_eq!(
                &bytes[66..68],
                &u16::try_from(action_len).unwrap().to_be_bytes(),
                "{field}: action length is a multiple of 8"
            );
            assert_eq!(&bytes[68..72], &header, "{field}");
            assert_eq!(&bytes[72..72 + value.len()], &value[..], "{field}");
            assert_eq!(bytes.len(), 64 + action_len);
        }
    }
}

#[test]
fn unknown_oxm_instruction_and_action_survive_a_round_trip() {
    let fm = FlowMod::add(1)
        .matching(OxmField::Unknown {
            class: 0x8000,
            field: 6, // VLAN_VID
            has_mask: true,
            value: Bytes::from_static(&[0x10, 0x05, 0x1f, 0xff]),
        })
        .matching(OxmField::Unknown {
            class: 0x0001, // NXM_1
            field: 33,
            has_mask: false,
            value: Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8]),
        })
        .instruction(Instruction::Unknown {
            instruction_type: 2, // WRITE_METADATA
            raw: Bytes::from_static(&[
                0, 2, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff,
            ]),
        })
        .apply(vec![
            Action::Unknown {
                action_type: 17, // PUSH_VLAN
                raw: Bytes::from_static(&[0, 17, 0, 8, 0x81, 0x00, 0, 0]),
            },
            Action::output(PortNo::NORMAL),
        ]);
    for v in VERSIONS {
        let bytes = round_trip(&Message::FlowMod(fm.clone()), v, 1);
        assert_eq!(&bytes[52..56], &[0x80, 0x00, 0x0d, 0x04]);
        assert_eq!(&bytes[60..64], &[0x00, 0x01, 0x42, 0x08]);
    }
    assert_eq!(
        fm.to_string(),
        "Add table=1 priority=32768 cookie=0x0/0x0 match=[oxm(0x8000:6),oxm(0x1:33)] \
         instructions=[instruction(2),apply_actions(action(17),output:NORMAL)]"
    );
}

/// A FLOW_MOD frame with an all-zero fixed part around hand-made match fields and
/// instructions. The match is padded to 8.
fn flow_mod_frame(version: u8, oxm: &[u8], instructions: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8; 40];
    let match_len = u16::try_from(4 + oxm.len()).unwrap();
    body.extend_from_slice(&[0x00, 0x01]);
    body.extend_from_slice(&match_len.to_be_bytes());
    body.extend_from_slice(oxm);
    while !(body.len() - 40).is_multiple_of(8) {
        body.push(0);
    }
    body.extend_from_slice(instructions);
    frame(version, msg_type::FLOW_MOD, 1, &body)
}

#[test]
fn oxm_fields_with_wrong_lengths_are_rejected() {
    #[rustfmt::skip]
    let cases: [(&str, Vec<u8>); 6] = [
        ("in_port length 5", vec![0x80, 0x00, 0x00, 0x05, 0, 0, 0, 1, 0]),
        ("in_port length 2", vec![0x80, 0x00, 0x00, 0x02, 0, 1]),
        ("eth_dst length 7", vec![0x80, 0x00, 0x06, 0x07, 1, 2, 3, 4, 5, 6, 7]),
        ("eth_src masked length 6", vec![0x80, 0x00, 0x09, 0x06, 1, 2, 3, 4, 5, 6]),
        ("ipv4_dst length 3", vec![0x80, 0x00, 0x18, 0x03, 10, 0, 0]),
        ("arp_spa masked length 4", vec![0x80, 0x00, 0x2d, 0x04, 10, 0, 0, 1]),
    ];
    for v in VERSIONS {
        for (what, oxm) in &cases {
            let err = decode(&flow_mod_frame(v, oxm, &[])).unwrap_err();
            assert!(
                matches!(
                    err,
                    DecodeError::BadLength {
                        what: "OXM field",
                        ..
                    }
                ),
                "{what}: {err:?}"
            );
        }
        // A field that runs past the end of the match.
        let err = decode(&flow_mod_frame(
            v,
            &[0x80, 0x00, 0x00, 0x08, 0, 0, 0, 1],
            &[],
        ))
        .unwrap_err();
        assert!(matches!(err, DecodeError::BadLength { .. }), "{err:?}");
        // A field header cut by the end of the match.
        assert!(decode(&flow_mod_frame(v, &[0x80, 0x00], &[])).is_err());
        // The same fields with the right lengths decode.
        assert!(decode(&flow_mod_frame(
            v,
            &[0x80, 0x00, 0x00, 0x04, 0, 0, 0, 1],
            &[]
        ))
        .is_ok());
    }
}

/// The length error of a masked field gives the masked length (value and mask), and a mask on
/// a field that takes none is its own error rather than a length error.
#[test]
fn oxm_errors_say_what_is_wrong_with_a_mask() {
    #[rustfmt::skip]
    let cases: [(&str, Vec<u8>, DecodeError); 6] = [
        // eth_src with the has-mask bit and only 6 bytes: a masked MAC takes 12.
        ("eth_src masked length 6", vec![0x80, 0x00, 0x09, 0x06, 1, 2, 3, 4, 5, 6],
         DecodeError::BadLength { what: "OXM field", declared: 6, min: 12, max: 12 }),
        // arp_spa masked with 4 bytes: a masked IPv4 address takes 8.
        ("arp_spa masked length 4", vec![0x80, 0x00, 0x2d, 0x04, 10, 0, 0, 1],
         DecodeError::BadLength { what: "OXM field", declared: 4, min: 8, max: 8 }),
        // ipv4_src masked with 12 bytes: too long, still reported against 8.
        ("ipv4_src masked length 12",
         vec![0x80, 0x00, 0x17, 0x0c, 10, 0, 0, 1, 255, 255, 255, 0, 0, 0, 0, 0],
         DecodeError::BadLength { what: "OXM field", declared: 12, min: 8, max: 8 }),
        // Unmasked lengths are still reported against the value length.
        ("eth_dst length 7", vec![0x80, 0x00, 0x06, 0x07, 1, 2, 3, 4, 5, 6, 7],
         DecodeError::BadLength { what: "OXM field", declared: 7, min: 6, max: 6 }),
        // in_port and eth_type have no mask in OpenFlow, whatever the length.
        ("in_port masked", vec![0x80, 0x00, 0x01, 0x08, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
         DecodeError::MaskNotAllowed { field: "in_port" }),
        ("eth_type masked", vec![0x80, 0x00, 0x0b, 0x04, 0x08, 0x00, 0xff, 0xff],
         DecodeError::MaskNotAllowed { field: "eth_type" }),
    ];
    for v in VERSIONS {
        for (what, oxm, want) in &cases {
            let err = decode(&flow_mod_frame(v, oxm, &[])).unwrap_err();
            assert_eq!(&err, want, "{what}");
        }
    }
    assert_eq!(
        DecodeError::MaskNotAllowed { field: "in_port" }.to_string(),
        "OXM field in_port takes no mask"
    );
    // The exact frame of the first case, in full.
    #[rustfmt::skip]
    let f: [u8; 64] = [
        0x04, 0x0e, 0x00, 0x40, 0x00, 0x00, 0x00, 0x01, // 1.3 FLOW_MOD, length 64, xid 1
        0, 0, 0, 0, 0, 0, 0, 0,                         // cookie
        0, 0, 0, 0, 0, 0, 0, 0,                         // cookie_mask
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // table, command, idle, hard
        0x00, 0x00,                                     // priority
        0xff, 0xff, 0xff, 0xff,                         // buffer_id
        0xff, 0xff, 0xff, 0xff,                         // out_port
        0xff, 0xff, 0xff, 0xff,                         // out_group
        0x00, 0x00, 0x00, 0x00,                         // flags, importance
        0x00, 0x01, 0x00, 0x0e,                         // match OXM, length 14
        0x80, 0x00, 0x09, 0x06, 1, 2, 3, 4, 5, 6,       // eth_src, has-mask, length 6
        0, 0,                                           // pad to 8
    ];
    assert_eq!(
        decode(&f).unwrap_err().to_string(),
        "bad length in OXM field: declared 6, allowed 12..=12"
    );
}

#[test]
fn bad_match_headers_are_rejected() {
    for v in VERSIONS {
        // Match type 0 (OF1.0-style standard match) is not OXM.
        let mut f = flow_mod_frame(v, &[], &[]);
        f[48..50].copy_from_slice(&[0x00, 0x00]);
        assert_eq!(
            decode(&f).unwrap_err(),
            DecodeError::BadValue {
                what: "ofp_match type (only OXM is supported)",
                value: 0
            }
        );
        // Match length below its own header, and beyond the message.
        for declared in [0u16, 3, 9, 200] {
            let mut f = flow_mod_frame(v, &[], &[]);
            f[50..52].copy_from_slice(&declared.to_be_bytes());
            assert!(
                matches!(decode(&f), Err(DecodeError::BadLength { .. })),
                "match length {declared}: {:?}",
                decode(&f)
            );
        }
        // Missing padding after the match.
        let mut f = flow_mod_frame(v, &[0x80, 0x00, 0x0a, 0x02, 0x08, 0x00], &[]);
        f.truncate(f.len() - 2);
        set_len(&mut f);
        assert!(decode(&f).is_err());
        // Fixed part shorter than 40 bytes.
        let f = frame(v, msg_type::FLOW_MOD, 1, &[0u8; 39]);
        assert_eq!(
            decode(&f).unwrap_err(),
            DecodeError::Truncated {
                what: "FLOW_MOD",
                need: 40,
                have: 39
            }
        );
    }
}

#[test]
fn bad_action_and_instruction_lengths_are_rejected() {
    let apply = |actions: &[u8]| {
        let mut i = vec![0x00, 0x04];
        i.extend_from_slice(&u16::try_from(8 + actions.len()).unwrap().to_be_bytes());
        i.extend_from_slice(&[0; 4]);
        i.extend_from_slice(actions);
        i
    };
    #[rustfmt::skip]
    let output = [0x00, 0x00, 0x00, 0x10, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
    for v in VERSIONS {
        assert!(decode(&flow_mod_frame(v, &[], &apply(&output))).is_ok());
        // Action lengths that are not a multiple of 8.
        for len in [4u16, 12, 15, 17] {
            let mut a = output.to_vec();
            a[2..4].copy_from_slice(&len.to_be_bytes());
            let err = decode(&flow_mod_frame(v, &[], &apply(&a))).unwrap_err();
            assert!(
                matches!(
                    err,
                    DecodeError::BadLength { what: "action (not a multiple of 8)", declared, .. }
                        if declared == usize::from(len)
                ),
                "action length {len}: {err:?}"
            );
        }
        // Action length 0 would never advance.
        let mut a = output.to_vec();
        a[2..4].copy_from_slice(&[0, 0]);
        assert!(matches!(
            decode(&flow_mod_frame(v, &[], &apply(&a))),
            Err(DecodeError::BadLength { what: "action", .. })
        ));
        // An output action must be exactly 16 bytes.
        let mut long_output = output.to_vec();
        long_output[2..4].copy_from_slice(&24u16.to_be_bytes());
        long_output.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decode(&flow_mod_frame(v, &[], &apply(&long_output))),
            Err(DecodeError::BadLength {
                what: "output action",
                ..
            })
        ));
        // An action longer than its instruction.
        let mut a = output.to_vec();
        a[2..4].copy_from_slice(&24u16.to_be_bytes());
        assert!(decode(&flow_mod_frame(v, &[], &apply(&a))).is_err());
        // A set-field whose OXM has a wrong length.
        #[rustfmt::skip]
        let set_field = [0x00, 0x19, 0x00, 0x10, 0x80, 0x00, 0x06, 0x05, 1, 2, 3, 4, 5, 0, 0, 0];
        assert!(matches!(
            decode(&flow_mod_frame(v, &[], &apply(&set_field))),
            Err(DecodeError::BadLength {
                what: "OXM field",
                ..
            })
        ));
        // Instruction lengths: 0, beyond the message, a goto-table of the wrong size.
        for instr in [
            vec![0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0],
            vec![0x00, 0x04, 0x00, 0x10, 0, 0, 0, 0],
            vec![0x00, 0x01, 0x00, 0x10, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            vec![0x00, 0x01, 0x00, 0x08, 3, 0, 0],
        ] {
            assert!(
                decode(&flow_mod_frame(v, &[], &instr)).is_err(),
                "{instr:?}"
            );
        }
    }
}

#[test]
fn flow_mod_display() {
    assert_eq!(
        flow_mod_of13().to_string(),
        "Add table=5 priority=500 cookie=0xdeadbeef/0xffffffffffffffff \
         match=[in_port=7,eth_type=0x0800,ipv4_src=10.0.0.2,ipv4_dst=10.0.1.0/255.255.255.0] \
         instructions=[apply_actions(set_field:eth_dst=02:00:00:00:00:01,output:3),goto_table:10]"
    );
}
