//! `ofp_port` (port descriptions) and PORT_STATUS.
//!
//! OpenFlow 1.3 describes a port in a fixed 64-byte structure; 1.5 uses a 40-byte head plus
//! properties, of which OVS sends exactly one, the 32-byte Ethernet property. Both decode to
//! [`Port`]. Other 1.5 properties (optical, experimenter, unknown) keep their bytes in
//! [`Port::other_properties`] and are encoded back after the Ethernet property.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::types::{flag_names, MacAddr, PortConfig, PortNo, PortState, Version};
use crate::wire::{pad8, patch_len16, put_zeros, Reader};

/// Size of the 1.3 `ofp_port`.
pub const PORT_LEN_OF13: usize = 64;
/// Size of the 1.5 `ofp_port` without properties.
pub const PORT_HEAD_LEN_OF15: usize = 40;
/// Size of the 1.5 Ethernet port property.
const ETHERNET_PROP_LEN: usize = 32;
const PROP_ETHERNET: u16 = 0;
/// Port names are 16 bytes on the wire, NUL-terminated: at most 15 bytes of name.
pub const MAX_PORT_NAME_LEN: usize = 15;

/// Link properties: the fixed tail of a 1.3 port, the Ethernet property of a 1.5 port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EthernetProps {
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
    /// Current speed in kbps.
    pub curr_speed: u32,
    /// Maximum speed in kbps.
    pub max_speed: u32,
}

/// One port description, as in PORT_STATUS and PORT_DESC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub port_no: PortNo,
    pub hw_addr: MacAddr,
    /// The name as the switch sent it: cut to 15 bytes (see [`MAX_PORT_NAME_LEN`]). Bytes
    /// that are not UTF-8 (a multi-byte name cut by the switch) decode as U+FFFD.
    pub name: String,
    pub config: PortConfig,
    pub state: PortState,
    /// Always present in 1.3; in 1.5 present when the switch sent the Ethernet property.
    pub ethernet: Option<EthernetProps>,
    /// 1.5 only: the properties other than Ethernet, as sent (each with its header and
    /// padding, in their order), so they survive a round trip. Encoding puts them after the
    /// Ethernet property, where the specification and OVS place them; 1.3 has no properties,
    /// so they are not encoded there. Empty in 1.3 and when the switch sent none.
    pub other_properties: Bytes,
}

impl Port {
    /// A port with the given number and name, everything else zero: handy for tests.
    pub fn new(port_no: u32, name: &str) -> Port {
        Port {
            port_no: PortNo(port_no),
            hw_addr: MacAddr::default(),
            name: name.to_string(),
            config: PortConfig::empty(),
            state: PortState::empty(),
            ethernet: Some(EthernetProps::default()),
            other_properties: Bytes::new(),
        }
    }

    /// Decodes one port from the front of `r`.
    pub(crate) fn decode(r: &mut Reader<'_>, version: Version) -> Result<Port, DecodeError> {
        match version {
            Version::Of13 => {
                let mut p = r.fixed(PORT_LEN_OF13, "ofp_port (1.3)")?;
                let port_no = PortNo(p.u32()?);
                p.skip(4)?;
                let hw_addr = MacAddr(p.array()?);
                p.skip(2)?;
                let name = decode_name(&p.array::<16>()?);
                let config = PortConfig::from_bits_retain(p.u32()?);
                let state = PortState::from_bits_retain(p.u32()?);
                let ethernet = Some(decode_ethernet_fields(&mut p)?);
                Ok(Port {
                    port_no,
                    hw_addr,
                    name,
                    config,
                    state,
                    ethernet,
                    other_properties: Bytes::new(),
                })
            }
            Version::Of15 => {
                // The length is the second field: peek it before splitting the structure off.
                let mut peek = Reader::new(r.bytes_peek(8)?, "ofp_port (1.5)");
                peek.skip(4)?;
                let len = usize::from(peek.u16()?);
                let mut p = r.sub(len, PORT_HEAD_LEN_OF15, "ofp_port (1.5)")?;
                let port_no = PortNo(p.u32()?);
                p.skip(4)?; // length, pad
                let hw_addr = MacAddr(p.array()?);
                p.skip(2)?;
                let name = decode_name(&p.array::<16>()?);
                let config = PortConfig::from_bits_retain(p.u32()?);
                let state = PortState::from_bits_retain(p.u32()?);
                let mut ethernet = None;
                let mut other = Vec::new();
                while !p.is_empty() {
                    let mut head = Reader::new(p.bytes_peek(4)?, "port property");
                    let ptype = head.u16()?;
                    let plen = usize::from(head.u16()?);
                    // A property occupies its length rounded up to 8, but the last one may
                    // omit its padding.
                    let span = pad8(plen).min(p.remaining()).max(plen);
                    let mut prop = p.sub(span, 4, "port property")?;
                    if plen < 4 {
                        return Err(DecodeError::BadLength {
                            what: "port property",
                            declared: plen,
                            min: 4,
                            max: span,
                        });
                    }
                    if ptype == PROP_ETHERNET {
                        if plen != ETHERNET_PROP_LEN {
                            return Err(DecodeError::BadLength {
                                what: "port Ethernet property",
                                declared: plen,
                                min: ETHERNET_PROP_LEN,
                                max: ETHERNET_PROP_LEN,
                            });
                        }
                        prop.skip(8)?; // type, length, pad
                        ethernet = Some(decode_ethernet_fields(&mut prop)?);
                    } else {
                        // Optical, experimenter or unknown: kept as sent, padding included.
                        other.extend_from_slice(prop.clone_slice());
                    }
                }
                Ok(Port {
                    port_no,
                    hw_addr,
                    name,
                    config,
                    state,
                    ethernet,
                    other_properties: Bytes::from(other),
                })
            }
        }
    }

    /// Encodes this port for `version`. Names longer than 15 bytes are cut, as OVS does.
    pub(crate) fn encode(&self, buf: &mut BytesMut, version: Version) -> Result<(), EncodeError> {
        let start = buf.len();
        buf.put_u32(self.port_no.0);
        match version {
            Version::Of13 => put_zeros(buf, 4),
            Version::Of15 => {
                buf.put_u16(0); // length, patched below
                put_zeros(buf, 2);
            }
        }
        buf.put_slice(&self.hw_addr.0);
        put_zeros(buf, 2);
        buf.put_slice(&encode_name(&self.name));
        buf.put_u32(self.config.bits());
        buf.put_u32(self.state.bits());
        match version {
            Version::Of13 => {
                let e = self.ethernet.unwrap_or_default();
                encode_ethernet_fields(buf, &e);
            }
            Version::Of15 => {
                if let Some(e) = &self.ethernet {
                    buf.put_u16(PROP_ETHERNET);
                    buf.put_u16(ETHERNET_PROP_LEN as u16);
                    put_zeros(buf, 4);
                    encode_ethernet_fields(buf, e);
                }
                buf.put_slice(&self.other_properties);
                patch_len16(buf, start, 4, "ofp_port")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "port={} name={} hw_addr={} state={} config={}",
            self.port_no,
            self.name,
            self.hw_addr,
            flags_or_none(&flag_names(&self.state)),
            flags_or_none(&flag_names(&self.config)),
        )
    }
}

fn flags_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "0".to_string()
    } else {
        names.join("|")
    }
}

fn decode_name(raw: &[u8; 16]) -> String {
    // The 16th byte is the terminator: a switch that fills all 16 bytes gets read as 15, as
    // OVS reads it, so `name` never exceeds what `encode_name` can put back.
    let raw = &raw[..MAX_PORT_NAME_LEN];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn encode_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let bytes = name.as_bytes();
    // Cut at a character boundary so the wire never carries half a UTF-8 character.
    let mut n = bytes.len().min(MAX_PORT_NAME_LEN);
    while !name.is_char_boundary(n) {
        n -= 1;
    }
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

fn decode_ethernet_fields(r: &mut Reader<'_>) -> Result<EthernetProps, DecodeError> {
    Ok(EthernetProps {
        curr: r.u32()?,
        advertised: r.u32()?,
        supported: r.u32()?,
        peer: r.u32()?,
        curr_speed: r.u32()?,
        max_speed: r.u32()?,
    })
}

fn encode_ethernet_fields(buf: &mut BytesMut, e: &EthernetProps) {
    for v in [
        e.curr,
        e.advertised,
        e.supported,
        e.peer,
        e.curr_speed,
        e.max_speed,
    ] {
        buf.put_u32(v);
    }
}

/// Why the switch sent a PORT_STATUS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortReason {
    Add,
    Delete,
    Modify,
    /// A reason code this codec does not know, kept as sent.
    Unknown(u8),
}

impl PortReason {
    pub fn from_wire(v: u8) -> PortReason {
        match v {
            0 => PortReason::Add,
            1 => PortReason::Delete,
            2 => PortReason::Modify,
            other => PortReason::Unknown(other),
        }
    }

    pub fn wire(self) -> u8 {
        match self {
            PortReason::Add => 0,
            PortReason::Delete => 1,
            PortReason::Modify => 2,
            PortReason::Unknown(v) => v,
        }
    }

    /// Lower-case name: `add`, `delete`, `modify`, or `unknown(N)`.
    pub fn name(self) -> String {
        match self {
            PortReason::Add => "add".into(),
            PortReason::Delete => "delete".into(),
            PortReason::Modify => "modify".into(),
            PortReason::Unknown(v) => format!("unknown({v})"),
        }
    }
}

/// A PORT_STATUS message: the switch's own report that a port was added, changed or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortStatus {
    pub reason: PortReason,
    pub port: Port,
}

impl PortStatus {
    pub(crate) fn decode(body: &[u8], version: Version) -> Result<PortStatus, DecodeError> {
        let mut r = Reader::new(body, "PORT_STATUS");
        let reason = PortReason::from_wire(r.u8()?);
        r.skip(7)?;
        let port = Port::decode(&mut r, version)?;
        match version {
            // The 1.3 body is fixed: reason, pad and one 64-byte port.
            Version::Of13 => r.finish("PORT_STATUS")?,
            // In 1.5 OVS's layout is the 48-byte head and port then any multiple of 8 bytes
            // (the port's properties); bytes after the port that keep that shape are ignored
            // as OVS ignores them, any other count is an error as in OVS.
            Version::Of15 => {
                if !(body.len() - (8 + PORT_HEAD_LEN_OF15)).is_multiple_of(8) {
                    r.finish("PORT_STATUS")?;
                }
            }
        }
        Ok(PortStatus { reason, port })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut, version: Version) -> Result<(), EncodeError> {
        buf.put_u8(self.reason.wire());
        put_zeros(buf, 7);
        self.port.encode(buf, version)
    }
}

impl fmt::Display for PortStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PortStatus {} {}",
            self.reason.name().to_uppercase(),
            self.port
        )
    }
}

/// Decodes a PORT_DESC reply body: an array of ports.
pub(crate) fn decode_port_list(body: &[u8], version: Version) -> Result<Vec<Port>, DecodeError> {
    let mut r = Reader::new(body, "PORT_DESC reply");
    // No capacity from the declared size: the vector grows only with ports actually decoded.
    let mut ports = Vec::new();
    while !r.is_empty() {
        ports.push(Port::decode(&mut r, version)?);
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_to_15_bytes_at_a_character_boundary() {
        assert_eq!(
            &encode_name("abcdefghijklmnopqrst")[..16],
            b"abcdefghijklmno\0"
        );
        // 'é' is two bytes: 14 ASCII bytes + 'é' would end at byte 16, so it is left out.
        let n = encode_name("abcdefghijklmné");
        assert_eq!(&n[..], b"abcdefghijklmn\0\0");
        assert_eq!(decode_name(&n), "abcdefghijklmn");
    }
}
