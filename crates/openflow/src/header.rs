//! The OpenFlow header (`ofp_header`) and the message type numbers: what the framer, the
//! message codec and the bundle envelope all read first.

use crate::error::DecodeError;
use crate::wire::Reader;

/// Size of `ofp_header`.
pub const HEADER_LEN: usize = 8;

/// Message type numbers (the same in 1.3 and 1.5 for everything podport uses).
pub mod msg_type {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const PORT_STATUS: u8 = 12;
    pub const FLOW_MOD: u8 = 14;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
    pub const BARRIER_REQUEST: u8 = 20;
    pub const BARRIER_REPLY: u8 = 21;
    /// OpenFlow 1.4 and later; podport types it in 1.5 only.
    pub const BUNDLE_CONTROL: u8 = 33;
    /// OpenFlow 1.4 and later; podport types it in 1.5 only.
    pub const BUNDLE_ADD_MESSAGE: u8 = 34;
}

/// The name of a message type, for logs and errors.
pub fn msg_type_name(t: u8) -> Option<&'static str> {
    use msg_type::*;
    Some(match t {
        HELLO => "HELLO",
        ERROR => "ERROR",
        ECHO_REQUEST => "ECHO_REQUEST",
        ECHO_REPLY => "ECHO_REPLY",
        FEATURES_REQUEST => "FEATURES_REQUEST",
        FEATURES_REPLY => "FEATURES_REPLY",
        GET_CONFIG_REQUEST => "GET_CONFIG_REQUEST",
        GET_CONFIG_REPLY => "GET_CONFIG_REPLY",
        SET_CONFIG => "SET_CONFIG",
        PORT_STATUS => "PORT_STATUS",
        FLOW_MOD => "FLOW_MOD",
        MULTIPART_REQUEST => "MULTIPART_REQUEST",
        MULTIPART_REPLY => "MULTIPART_REPLY",
        BARRIER_REQUEST => "BARRIER_REQUEST",
        BARRIER_REPLY => "BARRIER_REPLY",
        BUNDLE_CONTROL => "BUNDLE_CONTROL",
        BUNDLE_ADD_MESSAGE => "BUNDLE_ADD_MESSAGE",
        _ => return None,
    })
}

/// `ofp_header`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub msg_type: u8,
    /// Length of the whole message, header included.
    pub length: u16,
    pub xid: u32,
}

impl Header {
    /// Parses the first 8 bytes of `buf`; checks only that they are there.
    pub fn parse(buf: &[u8]) -> Result<Header, DecodeError> {
        let mut r = Reader::new(buf, "ofp_header");
        Ok(Header {
            version: r.u8()?,
            msg_type: r.u8()?,
            length: r.u16()?,
            xid: r.u32()?,
        })
    }
}
