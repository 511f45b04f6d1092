//! Bundles, OpenFlow 1.5 only: BUNDLE_CONTROL (type 33) and BUNDLE_ADD_MESSAGE (type 34).
//!
//! Layouts after the 8-byte header (big-endian):
//!
//! - BUNDLE_CONTROL (`ofp_bundle_ctrl_msg`, 8 bytes and properties): `bundle_id` u32, `type`
//!   u16, `flags` u16, then a property list, kept as raw bytes.
//! - BUNDLE_ADD_MESSAGE (`ofp_bundle_add_msg`, 8 bytes, a message, properties): `bundle_id`
//!   u32, pad\[2\], `flags` u16, then one whole OpenFlow message (its own header included),
//!   which must carry the outer message's version and xid; when properties follow, the inner
//!   message is padded to 8 bytes first.
//!
//! This file reads and writes the envelope; `BundleAdd`, which holds a typed `Message`, lives
//! with the message types and hands the inner bytes to the ordinary decoder. A bundle message
//! inside a bundle message is refused both ways, so decoding never recurses more than once.

use bitflags::bitflags;
use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::header::{msg_type, Header, HEADER_LEN};
use crate::wire::{pad8, put_zeros, Reader};

/// `ofp_bundle_ctrl_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BundleCtrlType {
    OpenRequest,
    OpenReply,
    CloseRequest,
    CloseReply,
    CommitRequest,
    CommitReply,
    DiscardRequest,
    DiscardReply,
    Unknown(u16),
}

impl BundleCtrlType {
    pub fn wire(self) -> u16 {
        match self {
            BundleCtrlType::OpenRequest => 0,
            BundleCtrlType::OpenReply => 1,
            BundleCtrlType::CloseRequest => 2,
            BundleCtrlType::CloseReply => 3,
            BundleCtrlType::CommitRequest => 4,
            BundleCtrlType::CommitReply => 5,
            BundleCtrlType::DiscardRequest => 6,
            BundleCtrlType::DiscardReply => 7,
            BundleCtrlType::Unknown(v) => v,
        }
    }

    pub fn from_wire(v: u16) -> BundleCtrlType {
        match v {
            0 => BundleCtrlType::OpenRequest,
            1 => BundleCtrlType::OpenReply,
            2 => BundleCtrlType::CloseRequest,
            3 => BundleCtrlType::CloseReply,
            4 => BundleCtrlType::CommitRequest,
            5 => BundleCtrlType::CommitReply,
            6 => BundleCtrlType::DiscardRequest,
            7 => BundleCtrlType::DiscardReply,
            other => BundleCtrlType::Unknown(other),
        }
    }
}

bitflags! {
    /// `ofp_bundle_flags`. Unknown bits are kept.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct BundleFlags: u16 {
        /// All or nothing: if one message fails at commit, none is applied.
        const ATOMIC = 1 << 0;
        /// Messages are applied in the order they were added.
        const ORDERED = 1 << 1;
        /// The commit is scheduled (a time property follows); podport never sets it.
        const TIME = 1 << 2;
    }
}

/// BUNDLE_CONTROL: open, close, commit or discard a bundle, and the switch's replies.
///
/// OVS 3.1 answers with the flags set to 0 whatever the request carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleControl {
    pub bundle_id: u32,
    pub kind: BundleCtrlType,
    pub flags: BundleFlags,
    /// The property list as sent (`ofp_bundle_prop_*`); podport sends none.
    pub properties: Bytes,
}

impl BundleControl {
    /// A control message without properties.
    pub fn new(bundle_id: u32, kind: BundleCtrlType, flags: BundleFlags) -> BundleControl {
        BundleControl {
            bundle_id,
            kind,
            flags,
            properties: Bytes::new(),
        }
    }

    pub(crate) fn decode(body: &[u8]) -> Result<BundleControl, DecodeError> {
        let mut r = Reader::new(body, "BUNDLE_CONTROL");
        let bundle_id = r.u32()?;
        let kind = BundleCtrlType::from_wire(r.u16()?);
        let flags = BundleFlags::from_bits_retain(r.u16()?);
        Ok(BundleControl {
            bundle_id,
            kind,
            flags,
            properties: Bytes::copy_from_slice(r.rest()),
        })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32(self.bundle_id);
        buf.put_u16(self.kind.wire());
        buf.put_u16(self.flags.bits());
        buf.put_slice(&self.properties);
    }
}

/// The envelope of a BUNDLE_ADD_MESSAGE, read: the inner message is left as bytes for the
/// message decoder (which owns the message types), after its header has been checked against
/// the outer one.
pub(crate) struct AddEnvelope<'a> {
    pub bundle_id: u32,
    pub flags: BundleFlags,
    /// The whole inner message, its header included.
    pub inner: &'a [u8],
    pub properties: Bytes,
}

/// Reads a BUNDLE_ADD_MESSAGE body: the inner message must carry the outer version and xid and
/// must not be a bundle message itself, so decoding never recurses more than once.
pub(crate) fn decode_add<'a>(
    body: &'a [u8],
    outer: &Header,
) -> Result<AddEnvelope<'a>, DecodeError> {
    const WHAT: &str = "BUNDLE_ADD_MESSAGE";
    const INNER: &str = "BUNDLE_ADD_MESSAGE inner message";
    let mut r = Reader::new(body, WHAT);
    let bundle_id = r.u32()?;
    r.skip(2)?;
    let flags = BundleFlags::from_bits_retain(r.u16()?);
    let inner_header = Header::parse(r.bytes_peek(HEADER_LEN)?)?;
    let len = usize::from(inner_header.length);
    let inner = r.sub(len, HEADER_LEN, INNER)?;
    if inner_header.version != outer.version {
        return Err(DecodeError::BadValue {
            what: "BUNDLE_ADD_MESSAGE inner version (must equal the outer one)",
            value: u64::from(inner_header.version),
        });
    }
    if inner_header.xid != outer.xid {
        return Err(DecodeError::BadValue {
            what: "BUNDLE_ADD_MESSAGE inner xid (must equal the outer one)",
            value: u64::from(inner_header.xid),
        });
    }
    if is_bundle_type(inner_header.msg_type) {
        return Err(DecodeError::BadValue {
            what: "BUNDLE_ADD_MESSAGE inner type (bundle messages do not nest)",
            value: u64::from(inner_header.msg_type),
        });
    }
    let inner = inner.clone_slice();
    // Padding of the inner message to 8 comes only before properties.
    let pad = (pad8(len) - len).min(r.remaining());
    r.skip(pad)?;
    Ok(AddEnvelope {
        bundle_id,
        flags,
        inner,
        properties: Bytes::copy_from_slice(r.rest()),
    })
}

/// Writes a BUNDLE_ADD_MESSAGE body around the inner message that `inner` encodes (of type
/// `inner_type`, which must not be a bundle message).
pub(crate) fn encode_add(
    buf: &mut BytesMut,
    bundle_id: u32,
    flags: BundleFlags,
    properties: &[u8],
    inner_type: u8,
    inner: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    if is_bundle_type(inner_type) {
        return Err(EncodeError::NotAllowed {
            what: "a bundle message inside BUNDLE_ADD_MESSAGE",
        });
    }
    buf.put_u32(bundle_id);
    put_zeros(buf, 2);
    buf.put_u16(flags.bits());
    let inner_start = buf.len();
    inner(buf)?;
    if !properties.is_empty() {
        let len = buf.len() - inner_start;
        put_zeros(buf, pad8(len) - len);
        buf.put_slice(properties);
    }
    Ok(())
}

fn is_bundle_type(t: u8) -> bool {
    t == msg_type::BUNDLE_CONTROL || t == msg_type::BUNDLE_ADD_MESSAGE
}
