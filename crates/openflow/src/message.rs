//! Every message podport sends or reads, with one entry point each way:
//! [`decode`] (one whole frame in, header and typed message out) and [`encode`].

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use tracing::warn;

use crate::bundle::{decode_add, encode_add, BundleControl, BundleFlags};
use crate::error::{DecodeError, EncodeError};
use crate::errors::{error_code_name, error_type_name};
use crate::flow::FlowMod;
use crate::flow_desc::{decode_flow_entries, FlowDescRequest, FlowEntry, MP_FLOW_DESC};
use crate::header::{msg_type, msg_type_name, Header, HEADER_LEN};
use crate::port::{decode_port_list, Port, PortStatus};
use crate::types::{wire_version_name, PortNo, Version};
use crate::wire::{pad8, patch_len16, put_zeros, Reader};

/// HELLO. `versions` is the version bitmap (bit N set = wire version N supported), when the
/// peer sent one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub versions: Option<u32>,
}

const HELLO_ELEM_VERSIONBITMAP: u16 = 1;

impl Hello {
    /// A HELLO offering exactly `versions`.
    pub fn offering(versions: &[Version]) -> Hello {
        Hello {
            versions: Some(versions.iter().fold(0, |acc, v| acc | 1 << v.wire())),
        }
    }

    /// Reads the elements of a HELLO body. Like OVS, a malformed element does not fail the
    /// HELLO: it is skipped with a warning, and when no usable version bitmap remains the
    /// version is negotiated from the header ([`Hello::peer_versions`]). An element whose
    /// length is impossible (below 4, or past the body) ends the walk, since the next element
    /// cannot be found; a bitmap element with no whole word, a partial word, or no bit set is
    /// ignored.
    fn decode(body: &[u8]) -> Result<Hello, DecodeError> {
        let mut r = Reader::new(body, "HELLO");
        let mut versions = None;
        while !r.is_empty() {
            // Some peers pad the body with fewer than 4 bytes; nothing can follow that.
            if r.remaining() < 4 {
                break;
            }
            let mut head = Reader::new(r.bytes_peek(4)?, "HELLO element");
            let elem_type = head.u16()?;
            let len = usize::from(head.u16()?);
            if len < 4 || len > r.remaining() {
                warn!(
                    elem_type,
                    len,
                    remaining = r.remaining(),
                    "HELLO element with an impossible length: it and what follows are ignored"
                );
                break;
            }
            // An element occupies its length rounded up to 8; the last may omit the padding.
            let mut e = r.sub(pad8(len).min(r.remaining()), len, "HELLO element")?;
            e.skip(4)?;
            if elem_type != HELLO_ELEM_VERSIONBITMAP {
                continue;
            }
            let bitmap_len = len - 4;
            if bitmap_len == 0 || bitmap_len % 4 != 0 {
                warn!(
                    len,
                    "HELLO version bitmap is not whole 32-bit words: ignored"
                );
                continue;
            }
            // Only the first word matters: it covers wire versions 0 to 31.
            match e.u32()? {
                0 => warn!("HELLO version bitmap has no version set: ignored"),
                bitmap => versions = Some(bitmap),
            }
        }
        Ok(Hello { versions })
    }

    fn encode(&self, buf: &mut BytesMut) {
        if let Some(bitmap) = self.versions {
            buf.put_u16(HELLO_ELEM_VERSIONBITMAP);
            buf.put_u16(8);
            buf.put_u32(bitmap);
        }
    }

    /// The versions the sender of this HELLO accepts: its bitmap, or without one every version
    /// up to the header's.
    pub fn peer_versions(&self, header_version: u8) -> u32 {
        match self.versions {
            Some(bitmap) => bitmap,
            None if header_version >= 31 => u32::MAX,
            None => (1u32 << (header_version + 1)) - 1,
        }
    }
}

/// The highest version in both `ours` and what the peer's HELLO accepts, if any.
pub fn negotiate(ours: &[Version], peer: &Hello, peer_header_version: u8) -> Option<Version> {
    let theirs = peer.peer_versions(peer_header_version);
    ours.iter()
        .copied()
        .filter(|v| theirs & (1 << v.wire()) != 0)
        .max()
}

/// Lists the wire versions in a bitmap, for error messages: `1.0, 1.5`.
pub fn bitmap_names(bitmap: u32) -> String {
    (0u8..32)
        .filter(|v| bitmap & (1 << v) != 0)
        .map(wire_version_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// ERROR: type, code and the data (usually the start of the offending request, or text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMsg {
    pub err_type: u16,
    pub code: u16,
    pub data: Bytes,
}

impl ErrorMsg {
    /// `BAD_INSTRUCTION` or the number when unknown.
    pub fn type_name(&self) -> String {
        error_type_name(self.err_type)
            .map(str::to_string)
            .unwrap_or_else(|| format!("type {}", self.err_type))
    }

    /// `BAD_TABLE_ID` or the number when unknown.
    pub fn code_name(&self) -> String {
        error_code_name(self.err_type, self.code)
            .map(str::to_string)
            .unwrap_or_else(|| format!("code {}", self.code))
    }

    /// The data as text when it is printable ASCII (HELLO_FAILED carries an explanation).
    pub fn text(&self) -> Option<String> {
        let trimmed: &[u8] = match self.data.iter().rposition(|&b| b != 0) {
            Some(end) => &self.data[..=end],
            None => return None,
        };
        trimmed
            .iter()
            .all(|&b| b.is_ascii_graphic() || b == b' ' || b == b'\n')
            .then(|| String::from_utf8_lossy(trimmed).trim().to_string())
    }

    fn decode(body: &[u8]) -> Result<ErrorMsg, DecodeError> {
        let mut r = Reader::new(body, "ERROR");
        Ok(ErrorMsg {
            err_type: r.u16()?,
            code: r.u16()?,
            data: Bytes::copy_from_slice(r.rest()),
        })
    }
}

impl fmt::Display for ErrorMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.type_name(), self.code_name())?;
        if let Some(text) = self.text() {
            write!(f, ": {text}")?;
        }
        Ok(())
    }
}

/// FEATURES_REPLY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeaturesReply {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    pub auxiliary_id: u8,
    pub capabilities: u32,
}

impl FeaturesReply {
    fn decode(body: &[u8]) -> Result<FeaturesReply, DecodeError> {
        let mut r = Reader::new(body, "FEATURES_REPLY");
        let out = FeaturesReply {
            datapath_id: r.u64()?,
            n_buffers: r.u32()?,
            n_tables: r.u8()?,
            auxiliary_id: r.u8()?,
            capabilities: {
                r.skip(2)?;
                r.u32()?
            },
        };
        r.skip(4)?; // reserved
                    // In 1.3 and later the ports are no longer part of FEATURES_REPLY.
        r.finish("FEATURES_REPLY")?;
        Ok(out)
    }

    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64(self.datapath_id);
        buf.put_u32(self.n_buffers);
        buf.put_u8(self.n_tables);
        buf.put_u8(self.auxiliary_id);
        put_zeros(buf, 2);
        buf.put_u32(self.capabilities);
        put_zeros(buf, 4);
    }
}

/// SET_CONFIG and GET_CONFIG_REPLY body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchConfig {
    pub flags: u16,
    /// Bytes of a packet sent to the controller; OVS sends a service connection no asynchronous
    /// message at all while this is 0.
    pub miss_send_len: u16,
}

impl SwitchConfig {
    fn decode(body: &[u8], what: &'static str) -> Result<SwitchConfig, DecodeError> {
        let mut r = Reader::new(body, what);
        let out = SwitchConfig {
            flags: r.u16()?,
            miss_send_len: r.u16()?,
        };
        r.finish(what)?;
        Ok(out)
    }
}

/// Multipart type of PORT_DESC.
pub const MP_PORT_DESC: u16 = 13;
/// `OFPMPF_REPLY_MORE` / `OFPMPF_REQ_MORE`.
pub const MPF_MORE: u16 = 1;

/// MULTIPART_REQUEST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipartRequest {
    /// Every port (`OFPP_ANY`). In 1.5 the request carries an 8-byte body that OVS requires.
    /// `more` is `OFPMPF_REQ_MORE` (more request parts follow under the same xid); podport
    /// never sets it, but a decoded request keeps it. Any other flag bit makes the request
    /// `Other`, which keeps the flags as sent.
    PortDesc { more: bool },
    /// Flows passing a filter: `OFPMP_FLOW` in 1.3, `OFPMP_FLOW_DESC` in 1.5 (same body). A
    /// type-1 request whose body is not a valid `ofp_flow_stats_request` is a decode error.
    FlowDesc(FlowDescRequest),
    /// Any other multipart request, kept as sent.
    Other {
        mp_type: u16,
        flags: u16,
        body: Bytes,
    },
}

/// MULTIPART_REPLY: one part. Assemble parts with `more` set into one list (the connection does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartReply {
    /// True when more parts follow under the same xid (`OFPMPF_REPLY_MORE`).
    pub more: bool,
    pub body: MultipartReplyBody,
}

/// What a multipart reply part holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipartReplyBody {
    PortDesc(Vec<Port>),
    /// The flows of one part of a flow statistics (1.3) or flow description (1.5) reply.
    FlowDesc(Vec<FlowEntry>),
    Other {
        mp_type: u16,
        body: Bytes,
    },
}

/// Every message podport understands. Anything else is `Unknown` and is skipped by the
/// connection, not treated as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    Error(ErrorMsg),
    EchoRequest(Bytes),
    EchoReply(Bytes),
    FeaturesRequest,
    FeaturesReply(FeaturesReply),
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    PortStatus(PortStatus),
    FlowMod(FlowMod),
    MultipartRequest(MultipartRequest),
    MultipartReply(MultipartReply),
    BarrierRequest,
    BarrierReply,
    /// 1.5 only: in 1.3 frames type 33 decodes as `Unknown` and encoding refuses it.
    BundleControl(BundleControl),
    /// 1.5 only, like `BundleControl`.
    BundleAdd(BundleAdd),
    /// A message type this codec does not decode, kept as sent.
    Unknown {
        msg_type: u8,
        body: Bytes,
    },
}

impl Message {
    /// The `ofp_type` of this message.
    pub fn msg_type(&self) -> u8 {
        use msg_type::*;
        match self {
            Message::Hello(_) => HELLO,
            Message::Error(_) => ERROR,
            Message::EchoRequest(_) => ECHO_REQUEST,
            Message::EchoReply(_) => ECHO_REPLY,
            Message::FeaturesRequest => FEATURES_REQUEST,
            Message::FeaturesReply(_) => FEATURES_REPLY,
            Message::GetConfigRequest => GET_CONFIG_REQUEST,
            Message::GetConfigReply(_) => GET_CONFIG_REPLY,
            Message::SetConfig(_) => SET_CONFIG,
            Message::PortStatus(_) => PORT_STATUS,
            Message::FlowMod(_) => FLOW_MOD,
            Message::MultipartRequest(_) => MULTIPART_REQUEST,
            Message::MultipartReply(_) => MULTIPART_REPLY,
            Message::BarrierRequest => BARRIER_REQUEST,
            Message::BarrierReply => BARRIER_REPLY,
            Message::BundleControl(_) => BUNDLE_CONTROL,
            Message::BundleAdd(_) => BUNDLE_ADD_MESSAGE,
            Message::Unknown { msg_type, .. } => *msg_type,
        }
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        msg_type_name(self.msg_type()).unwrap_or("UNKNOWN")
    }
}

/// Decodes one complete frame (exactly one message, as the framer yields it).
///
/// HELLO, ERROR and ECHO decode in any version, since they are how versions are agreed and
/// disagreements reported; every other message must be 1.3 or 1.5. The bundle messages are
/// typed in 1.5 only and are `Unknown` in other versions, like every type this codec does not
/// decode. The header's length must equal the frame's length.
pub fn decode(frame: &[u8]) -> Result<(Header, Message), DecodeError> {
    use msg_type::*;
    let header = Header::parse(frame)?;
    let declared = usize::from(header.length);
    if declared != frame.len() || declared < HEADER_LEN {
        return Err(DecodeError::BadLength {
            what: "ofp_header",
            declared,
            min: HEADER_LEN,
            max: frame.len(),
        });
    }
    let body = &frame[HEADER_LEN..];
    let version = || {
        Version::from_wire(header.version).ok_or(DecodeError::UnsupportedVersion {
            what: "message",
            version: header.version,
        })
    };
    let msg = match header.msg_type {
        HELLO => Message::Hello(Hello::decode(body)?),
        ERROR => Message::Error(ErrorMsg::decode(body)?),
        ECHO_REQUEST => Message::EchoRequest(Bytes::copy_from_slice(body)),
        ECHO_REPLY => Message::EchoReply(Bytes::copy_from_slice(body)),
        FEATURES_REQUEST => {
            version()?;
            empty_body(body, "FEATURES_REQUEST")?;
            Message::FeaturesRequest
        }
        FEATURES_REPLY => {
            version()?;
            Message::FeaturesReply(FeaturesReply::decode(body)?)
        }
        GET_CONFIG_REQUEST => {
            version()?;
            empty_body(body, "GET_CONFIG_REQUEST")?;
            Message::GetConfigRequest
        }
        GET_CONFIG_REPLY => {
            version()?;
            Message::GetConfigReply(SwitchConfig::decode(body, "GET_CONFIG_REPLY")?)
        }
        SET_CONFIG => {
            version()?;
            Message::SetConfig(SwitchConfig::decode(body, "SET_CONFIG")?)
        }
        PORT_STATUS => Message::PortStatus(PortStatus::decode(body, version()?)?),
        FLOW_MOD => Message::FlowMod(FlowMod::decode(body, version()?)?),
        MULTIPART_REQUEST => Message::MultipartRequest(decode_mp_request(body, version()?)?),
        MULTIPART_REPLY => Message::MultipartReply(decode_mp_reply(body, version()?)?),
        BARRIER_REQUEST => {
            version()?;
            empty_body(body, "BARRIER_REQUEST")?;
            Message::BarrierRequest
        }
        BARRIER_REPLY => {
            version()?;
            empty_body(body, "BARRIER_REPLY")?;
            Message::BarrierReply
        }
        BUNDLE_CONTROL if header.version == Version::Of15.wire() => {
            Message::BundleControl(BundleControl::decode(body)?)
        }
        BUNDLE_ADD_MESSAGE if header.version == Version::Of15.wire() => {
            Message::BundleAdd(BundleAdd::decode(body, &header)?)
        }
        other => Message::Unknown {
            msg_type: other,
            body: Bytes::copy_from_slice(body),
        },
    };
    Ok((header, msg))
}

/// Messages without a body (OVS's "void") must have none: OVS answers `OFPBRC_BAD_LEN`.
fn empty_body(body: &[u8], what: &'static str) -> Result<(), DecodeError> {
    Reader::new(body, what).finish(what)
}

fn decode_mp_request(body: &[u8], version: Version) -> Result<MultipartRequest, DecodeError> {
    let mut r = Reader::new(body, "MULTIPART_REQUEST");
    let mp_type = r.u16()?;
    let flags = r.u16()?;
    r.skip(4)?;
    let rest = r.rest();
    if mp_type == MP_FLOW_DESC {
        return Ok(MultipartRequest::FlowDesc(FlowDescRequest::decode(rest)?));
    }
    if mp_type == MP_PORT_DESC && flags & !MPF_MORE == 0 {
        let more = flags & MPF_MORE != 0;
        match version {
            Version::Of13 if rest.is_empty() => return Ok(MultipartRequest::PortDesc { more }),
            Version::Of15 if rest.len() == 8 && rest[..4] == PortNo::ANY.0.to_be_bytes() => {
                return Ok(MultipartRequest::PortDesc { more })
            }
            _ => {}
        }
    }
    Ok(MultipartRequest::Other {
        mp_type,
        flags,
        body: Bytes::copy_from_slice(rest),
    })
}

fn decode_mp_reply(body: &[u8], version: Version) -> Result<MultipartReply, DecodeError> {
    let mut r = Reader::new(body, "MULTIPART_REPLY");
    let mp_type = r.u16()?;
    let flags = r.u16()?;
    r.skip(4)?;
    let rest = r.rest();
    let body = if mp_type == MP_PORT_DESC {
        MultipartReplyBody::PortDesc(decode_port_list(rest, version)?)
    } else if mp_type == MP_FLOW_DESC {
        MultipartReplyBody::FlowDesc(decode_flow_entries(rest, version)?)
    } else {
        MultipartReplyBody::Other {
            mp_type,
            body: Bytes::copy_from_slice(rest),
        }
    };
    Ok(MultipartReply {
        more: flags & MPF_MORE != 0,
        body,
    })
}

/// Encodes `msg` as one frame with the given wire version and xid.
///
/// HELLO, ERROR and ECHO may use any wire version; the others need 1.3 or 1.5.
pub fn encode(msg: &Message, version: u8, xid: u32) -> Result<BytesMut, EncodeError> {
    let mut buf = BytesMut::with_capacity(64);
    encode_into(msg, version, xid, &mut buf)?;
    Ok(buf)
}

/// Like [`encode`], appending to `buf` (so several messages can share one write).
pub fn encode_into(
    msg: &Message,
    version: u8,
    xid: u32,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let start = buf.len();
    buf.put_u8(version);
    buf.put_u8(msg.msg_type());
    buf.put_u16(0);
    buf.put_u32(xid);
    let v = || {
        Version::from_wire(version).ok_or(EncodeError::UnsupportedVersion {
            what: msg.name(),
            version,
        })
    };
    let result = (|| {
        match msg {
            Message::Hello(h) => h.encode(buf),
            Message::Error(e) => {
                buf.put_u16(e.err_type);
                buf.put_u16(e.code);
                buf.put_slice(&e.data);
            }
            Message::EchoRequest(d) | Message::EchoReply(d) => buf.put_slice(d),
            Message::FeaturesRequest
            | Message::GetConfigRequest
            | Message::BarrierRequest
            | Message::BarrierReply => {
                v()?;
            }
            Message::FeaturesReply(f) => {
                v()?;
                f.encode(buf)
            }
            Message::GetConfigReply(c) | Message::SetConfig(c) => {
                v()?;
                buf.put_u16(c.flags);
                buf.put_u16(c.miss_send_len);
            }
            Message::PortStatus(ps) => ps.encode(buf, v()?)?,
            Message::FlowMod(fm) => fm.encode(buf, v()?)?,
            Message::MultipartRequest(req) => {
                let ver = v()?;
                match req {
                    MultipartRequest::PortDesc { more } => {
                        buf.put_u16(MP_PORT_DESC);
                        buf.put_u16(if *more { MPF_MORE } else { 0 });
                        put_zeros(buf, 4);
                        if ver == Version::Of15 {
                            buf.put_u32(PortNo::ANY.0);
                            put_zeros(buf, 4);
                        }
                    }
                    MultipartRequest::FlowDesc(req) => {
                        buf.put_u16(MP_FLOW_DESC);
                        buf.put_u16(0);
                        put_zeros(buf, 4);
                        req.encode(buf)?;
                    }
                    MultipartRequest::Other {
                        mp_type,
                        flags,
                        body,
                    } => {
                        buf.put_u16(*mp_type);
                        buf.put_u16(*flags);
                        put_zeros(buf, 4);
                        buf.put_slice(body);
                    }
                }
            }
            Message::MultipartReply(rep) => {
                let ver = v()?;
                let flags = if rep.more { MPF_MORE } else { 0 };
                match &rep.body {
                    MultipartReplyBody::PortDesc(ports) => {
                        buf.put_u16(MP_PORT_DESC);
                        buf.put_u16(flags);
                        put_zeros(buf, 4);
                        for p in ports {
                            p.encode(buf, ver)?;
                        }
                    }
                    MultipartReplyBody::FlowDesc(entries) => {
                        buf.put_u16(MP_FLOW_DESC);
                        buf.put_u16(flags);
                        put_zeros(buf, 4);
                        for e in entries {
                            e.encode(buf, ver)?;
                        }
                    }
                    MultipartReplyBody::Other { mp_type, body } => {
                        buf.put_u16(*mp_type);
                        buf.put_u16(flags);
                        put_zeros(buf, 4);
                        buf.put_slice(body);
                    }
                }
            }
            Message::BundleControl(c) => {
                bundle_version(v()?, msg)?;
                c.encode(buf);
            }
            Message::BundleAdd(a) => {
                let ver = bundle_version(v()?, msg)?;
                a.encode(buf, ver, xid)?;
            }
            Message::Unknown { body, .. } => buf.put_slice(body),
        }
        Ok(())
    })();
    if let Err(e) = result.and_then(|()| patch_len16(buf, start, 2, msg.name()).map(|_| ())) {
        // Leave `buf` as it was so a caller batching messages can carry on.
        buf.truncate(start);
        return Err(e);
    }
    Ok(())
}

/// BUNDLE_ADD_MESSAGE: one message added to an open bundle. It is encoded with the outer
/// message's version and xid, as the specification requires (OVS answers MSG_BAD_XID
/// otherwise), so an ERROR for it names that xid. Its envelope is `bundle.rs`'s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleAdd {
    pub bundle_id: u32,
    /// Must equal the flags the bundle was opened with.
    pub flags: BundleFlags,
    /// The message added: a flow mod for podport. Never a bundle message.
    pub message: Box<Message>,
    /// The property list as sent; podport sends none.
    pub properties: Bytes,
}

impl BundleAdd {
    /// Adds `flow_mod` to bundle `bundle_id` opened with `flags`.
    pub fn flow_mod(bundle_id: u32, flags: BundleFlags, flow_mod: FlowMod) -> BundleAdd {
        BundleAdd {
            bundle_id,
            flags,
            message: Box::new(Message::FlowMod(flow_mod)),
            properties: Bytes::new(),
        }
    }

    fn decode(body: &[u8], outer: &Header) -> Result<BundleAdd, DecodeError> {
        let env = decode_add(body, outer)?;
        let (_, message) = decode(env.inner)?;
        Ok(BundleAdd {
            bundle_id: env.bundle_id,
            flags: env.flags,
            message: Box::new(message),
            properties: env.properties,
        })
    }

    fn encode(&self, buf: &mut BytesMut, version: Version, xid: u32) -> Result<(), EncodeError> {
        encode_add(
            buf,
            self.bundle_id,
            self.flags,
            &self.properties,
            self.message.msg_type(),
            |buf| encode_into(&self.message, version.wire(), xid, buf),
        )
    }
}

/// Bundles exist since 1.4; of the versions podport speaks, only 1.5 has them.
fn bundle_version(version: Version, msg: &Message) -> Result<Version, EncodeError> {
    match version {
        Version::Of15 => Ok(version),
        Version::Of13 => Err(EncodeError::UnsupportedVersion {
            what: msg.name(),
            version: version.wire(),
        }),
    }
}
