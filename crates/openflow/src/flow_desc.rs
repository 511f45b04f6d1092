//! Reading the switch's flows back: the flow statistics multipart (OpenFlow 1.3 `OFPMP_FLOW`)
//! and the flow description multipart (1.5 `OFPMP_FLOW_DESC`), both multipart type 1, plus the
//! comparison of an installed flow with the flow mod that should have installed it.
//!
//! Layouts, after the 16-byte multipart header (all big-endian):
//!
//! - request, both versions (`ofp_flow_stats_request`, 32 bytes and a match): `table_id` u8,
//!   pad\[3\], `out_port` u32, `out_group` u32, pad\[4\], `cookie` u64, `cookie_mask` u64,
//!   `ofp_match`.
//! - 1.3 reply entry (`ofp_flow_stats`, 48 bytes, a match, instructions): `length` u16,
//!   `table_id` u8, pad, `duration_sec` u32, `duration_nsec` u32, `priority` u16,
//!   `idle_timeout` u16, `hard_timeout` u16, `flags` u16, pad\[4\], `cookie` u64,
//!   `packet_count` u64, `byte_count` u64, `ofp_match`, instructions.
//! - 1.5 reply entry (`ofp_flow_desc`, 24 bytes, a match, statistics, instructions): `length`
//!   u16, pad\[2\], `table_id` u8, pad, `priority` u16, `idle_timeout` u16, `hard_timeout` u16,
//!   `flags` u16, `importance` u16, `cookie` u64, `ofp_match`, `ofp_stats` (reserved u16,
//!   `length` u16 without padding, OXS fields, padding to 8), instructions.
//!
//! Every entry's declared length must fit the reply and cover its fixed part, so a bad reply is
//! a [`DecodeError`] naming the structure, never a panic or a loop that does not advance.

use std::fmt;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::flow::{
    decode_match, encode_match, Action, FlowMod, Instruction, OxmField, GROUP_ANY, TABLE_ALL,
};
use crate::types::{FlowModFlags, MacAddr, PortNo, Version};
use crate::wire::{pad8, patch_len16, put_zeros, Reader};

/// Multipart type of flow statistics (1.3 `OFPMP_FLOW`) and flow descriptions (1.5
/// `OFPMP_FLOW_DESC`).
pub const MP_FLOW_DESC: u16 = 1;

const REQUEST_FIXED_LEN: usize = 32;
const STATS_FIXED_LEN_OF13: usize = 48;
const DESC_FIXED_LEN_OF15: usize = 24;
/// The smallest `ofp_match`: an empty OXM match padded to 8 bytes.
const MIN_MATCH_LEN: usize = 8;
/// The smallest `ofp_stats`: no field, padded to 8 bytes.
const MIN_STATS_LEN: usize = 8;

const OXS_CLASS_OPENFLOW_BASIC: u16 = 0x8002;
const OXS_DURATION: u8 = 0;
const OXS_IDLE_TIME: u8 = 1;
const OXS_FLOW_COUNT: u8 = 3;
const OXS_PACKET_COUNT: u8 = 4;
const OXS_BYTE_COUNT: u8 = 5;

/// A request for the flows of the switch that pass a filter (`ofp_flow_stats_request`, the same
/// in 1.3 and 1.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowDescRequest {
    /// One table, or [`TABLE_ALL`] for every table.
    pub table_id: u8,
    /// Only flows with an output to this port; [`PortNo::ANY`] for no filter.
    pub out_port: PortNo,
    /// Only flows with an output to this group; [`GROUP_ANY`] for no filter.
    pub out_group: u32,
    /// Only flows whose cookie equals `cookie` in the bits set in `cookie_mask`.
    pub cookie: u64,
    pub cookie_mask: u64,
    /// Only flows whose match is at least as specific as this one (empty: no filter).
    pub matches: Vec<OxmField>,
}

impl FlowDescRequest {
    /// Every flow in every table.
    pub fn all() -> FlowDescRequest {
        FlowDescRequest::by_cookie(0, 0)
    }

    /// Every flow in every table whose cookie equals `cookie` in the bits of `mask`, with no
    /// port, group or match filter.
    pub fn by_cookie(cookie: u64, mask: u64) -> FlowDescRequest {
        FlowDescRequest {
            table_id: TABLE_ALL,
            out_port: PortNo::ANY,
            out_group: GROUP_ANY,
            cookie,
            cookie_mask: mask,
            matches: Vec::new(),
        }
    }

    /// The same filter limited to one table.
    pub fn table(mut self, table_id: u8) -> FlowDescRequest {
        self.table_id = table_id;
        self
    }

    pub(crate) fn decode(body: &[u8]) -> Result<FlowDescRequest, DecodeError> {
        const WHAT: &str = "ofp_flow_stats_request";
        let mut r = Reader::new(body, WHAT);
        if r.remaining() < REQUEST_FIXED_LEN + MIN_MATCH_LEN {
            return Err(DecodeError::Truncated {
                what: WHAT,
                need: REQUEST_FIXED_LEN + MIN_MATCH_LEN,
                have: r.remaining(),
            });
        }
        let table_id = r.u8()?;
        r.skip(3)?;
        let out_port = PortNo(r.u32()?);
        let out_group = r.u32()?;
        r.skip(4)?;
        let cookie = r.u64()?;
        let cookie_mask = r.u64()?;
        let matches = decode_match(&mut r)?;
        if !r.is_empty() {
            let used = body.len() - r.remaining();
            return Err(DecodeError::BadLength {
                what: WHAT,
                declared: body.len(),
                min: used,
                max: used,
            });
        }
        Ok(FlowDescRequest {
            table_id,
            out_port,
            out_group,
            cookie,
            cookie_mask,
            matches,
        })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u8(self.table_id);
        put_zeros(buf, 3);
        buf.put_u32(self.out_port.0);
        buf.put_u32(self.out_group);
        put_zeros(buf, 4);
        buf.put_u64(self.cookie);
        buf.put_u64(self.cookie_mask);
        encode_match(buf, &self.matches)
    }
}

/// The counters of a flow. 1.3 always carries duration, packet and byte counts (a count of all
/// ones means "not available" and decodes as `None`); 1.5 carries whichever OXS fields the
/// switch chose (OVS 3.1: duration, idle time, packet and byte counts).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FlowCounters {
    /// Time since the flow was installed. Nanoseconds beyond a second are cut to 999999999.
    pub duration: Option<Duration>,
    /// Time since a packet last matched (1.5 only).
    pub idle_time: Option<Duration>,
    /// Number of flows aggregated (1.5 only; OVS does not send it for flow descriptions).
    pub flow_count: Option<u32>,
    pub packet_count: Option<u64>,
    pub byte_count: Option<u64>,
    /// 1.5 OXS fields this codec does not type, each kept whole (header included).
    pub unknown: Vec<Bytes>,
}

/// One installed flow, from a 1.3 `ofp_flow_stats` or a 1.5 `ofp_flow_desc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowEntry {
    pub table_id: u8,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    /// As the switch reports them: OVS keeps SEND_FLOW_REM, NO_PKT_COUNTS and NO_BYT_COUNTS,
    /// not CHECK_OVERLAP or RESET_COUNTS.
    pub flags: FlowModFlags,
    /// 1.5 only (a 1.3 entry has no such field and decodes as 0).
    pub importance: u16,
    pub cookie: u64,
    /// In the switch's order, which need not be the order they were installed in.
    pub matches: Vec<OxmField>,
    pub instructions: Vec<Instruction>,
    /// Kept for logs and metrics; [`FlowEntry::matches_flow_mod`] ignores them.
    pub counters: FlowCounters,
}

impl FlowEntry {
    /// An entry for what `flow_mod` installs, with no counters: what a switch reports for it,
    /// up to field order and the normalisation that [`FlowEntry::matches_flow_mod`] allows.
    pub fn from_flow_mod(flow_mod: &FlowMod) -> FlowEntry {
        FlowEntry {
            table_id: flow_mod.table_id,
            priority: flow_mod.priority,
            idle_timeout: flow_mod.idle_timeout,
            hard_timeout: flow_mod.hard_timeout,
            flags: flow_mod.flags,
            importance: flow_mod.importance,
            cookie: flow_mod.cookie,
            matches: flow_mod.matches.clone(),
            instructions: flow_mod.instructions.clone(),
            counters: FlowCounters::default(),
        }
    }

    /// True when this installed flow is the one an ADD of `flow_mod` installs: same table,
    /// priority, cookie and idle and hard timeouts, the same match as a *set* of fields, and
    /// the same instructions as a set, each apply-actions list in the same order.
    ///
    /// Differences that a switch introduces on its own are allowed: OVS returns match fields
    /// in its own order (in_port, eth_src, eth_dst, eth_type, then layer 3), drops a mask of
    /// all ones (and a field whose mask is all zeros), clears value bits outside a mask, omits
    /// an empty apply-actions instruction (a drop) and orders instructions by type; an output
    /// action's `max_len` only counts for the CONTROLLER port. The flow mod's command, flags,
    /// importance, buffer, out_port/out_group and cookie mask are not compared.
    pub fn matches_flow_mod(&self, flow_mod: &FlowMod) -> bool {
        self.table_id == flow_mod.table_id
            && self.priority == flow_mod.priority
            && self.cookie == flow_mod.cookie
            && self.idle_timeout == flow_mod.idle_timeout
            && self.hard_timeout == flow_mod.hard_timeout
            && same_canonical(
                canonical_match(&self.matches),
                canonical_match(&flow_mod.matches),
            )
            && same_canonical(
                canonical_instructions(&self.instructions),
                canonical_instructions(&flow_mod.instructions),
            )
    }

    fn decode(r: &mut Reader<'_>, version: Version) -> Result<FlowEntry, DecodeError> {
        match version {
            Version::Of13 => {
                r.skip(2)?; // length, already checked by the caller
                let table_id = r.u8()?;
                r.skip(1)?;
                let duration_sec = r.u32()?;
                let duration_nsec = r.u32()?;
                let priority = r.u16()?;
                let idle_timeout = r.u16()?;
                let hard_timeout = r.u16()?;
                let flags = FlowModFlags::from_bits_retain(r.u16()?);
                r.skip(4)?;
                let cookie = r.u64()?;
                let packet_count = r.u64()?;
                let byte_count = r.u64()?;
                let matches = decode_match(r)?;
                let instructions = decode_instructions(r)?;
                let available = |n: u64| (n != u64::MAX).then_some(n);
                Ok(FlowEntry {
                    table_id,
                    priority,
                    idle_timeout,
                    hard_timeout,
                    flags,
                    importance: 0,
                    cookie,
                    matches,
                    instructions,
                    counters: FlowCounters {
                        duration: (duration_sec != u32::MAX)
                            .then(|| duration(duration_sec, duration_nsec)),
                        packet_count: available(packet_count),
                        byte_count: available(byte_count),
                        ..FlowCounters::default()
                    },
                })
            }
            Version::Of15 => {
                r.skip(4)?; // length (checked by the caller), pad[2]
                let table_id = r.u8()?;
                r.skip(1)?;
                let priority = r.u16()?;
                let idle_timeout = r.u16()?;
                let hard_timeout = r.u16()?;
                let flags = FlowModFlags::from_bits_retain(r.u16()?);
                let importance = r.u16()?;
                let cookie = r.u64()?;
                let matches = decode_match(r)?;
                let counters = decode_oxs_stats(r)?;
                let instructions = decode_instructions(r)?;
                Ok(FlowEntry {
                    table_id,
                    priority,
                    idle_timeout,
                    hard_timeout,
                    flags,
                    importance,
                    cookie,
                    matches,
                    instructions,
                    counters,
                })
            }
        }
    }

    /// Encodes one entry. In 1.3 the counters missing from `counters` are sent as "not
    /// available" (all ones) and `importance`, `idle_time`, `flow_count` and unknown OXS
    /// fields, which 1.3 cannot carry, are left out.
    pub(crate) fn encode(&self, buf: &mut BytesMut, version: Version) -> Result<(), EncodeError> {
        let start = buf.len();
        match version {
            Version::Of13 => {
                let c = &self.counters;
                let (sec, nsec) = c
                    .duration
                    .map_or((u32::MAX, u32::MAX), |d| (secs32(d), d.subsec_nanos()));
                buf.put_u16(0);
                buf.put_u8(self.table_id);
                put_zeros(buf, 1);
                buf.put_u32(sec);
                buf.put_u32(nsec);
                buf.put_u16(self.priority);
                buf.put_u16(self.idle_timeout);
                buf.put_u16(self.hard_timeout);
                buf.put_u16(self.flags.bits());
                put_zeros(buf, 4);
                buf.put_u64(self.cookie);
                buf.put_u64(c.packet_count.unwrap_or(u64::MAX));
                buf.put_u64(c.byte_count.unwrap_or(u64::MAX));
                encode_match(buf, &self.matches)?;
            }
            Version::Of15 => {
                buf.put_u16(0);
                put_zeros(buf, 2);
                buf.put_u8(self.table_id);
                put_zeros(buf, 1);
                buf.put_u16(self.priority);
                buf.put_u16(self.idle_timeout);
                buf.put_u16(self.hard_timeout);
                buf.put_u16(self.flags.bits());
                buf.put_u16(self.importance);
                buf.put_u64(self.cookie);
                encode_match(buf, &self.matches)?;
                encode_oxs_stats(buf, &self.counters)?;
            }
        }
        for i in &self.instructions {
            i.encode(buf)?;
        }
        let what = match version {
            Version::Of13 => "ofp_flow_stats",
            Version::Of15 => "ofp_flow_desc",
        };
        patch_len16(buf, start, 0, what)?;
        Ok(())
    }
}

impl fmt::Display for FlowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m: Vec<String> = self.matches.iter().map(|m| m.to_string()).collect();
        let i: Vec<String> = self.instructions.iter().map(|i| i.to_string()).collect();
        write!(
            f,
            "table={} priority={} cookie={:#x} match=[{}] instructions=[{}]",
            self.table_id,
            self.priority,
            self.cookie,
            m.join(","),
            i.join(",")
        )
    }
}

/// Decodes the entries of one multipart reply part.
pub(crate) fn decode_flow_entries(
    body: &[u8],
    version: Version,
) -> Result<Vec<FlowEntry>, DecodeError> {
    let (what, min) = match version {
        Version::Of13 => ("ofp_flow_stats", STATS_FIXED_LEN_OF13 + MIN_MATCH_LEN),
        Version::Of15 => (
            "ofp_flow_desc",
            DESC_FIXED_LEN_OF15 + MIN_MATCH_LEN + MIN_STATS_LEN,
        ),
    };
    let mut r = Reader::new(body, what);
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = usize::from(Reader::new(r.bytes_peek(2)?, what).u16()?);
        // At least `min` bytes each, so the list cannot outgrow the frame.
        let mut entry = r.sub(len, min, what)?;
        out.push(FlowEntry::decode(&mut entry, version)?);
    }
    Ok(out)
}

fn decode_instructions(r: &mut Reader<'_>) -> Result<Vec<Instruction>, DecodeError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(Instruction::decode(r)?);
    }
    Ok(out)
}

fn duration(sec: u32, nsec: u32) -> Duration {
    Duration::new(u64::from(sec), nsec.min(999_999_999))
}

fn secs32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// OXS time values are seconds in the upper 32 bits and nanoseconds in the lower.
fn oxs_time(d: Duration) -> u64 {
    u64::from(secs32(d)) << 32 | u64::from(d.subsec_nanos())
}

fn from_oxs_time(v: u64) -> Duration {
    // The shift and mask leave exactly 32 bits each.
    duration((v >> 32) as u32, (v & 0xffff_ffff) as u32)
}

/// `ofp_stats`: reserved, length (without padding), OXS fields, padding to 8.
fn decode_oxs_stats(r: &mut Reader<'_>) -> Result<FlowCounters, DecodeError> {
    let mut head = Reader::new(r.bytes_peek(4)?, "ofp_stats");
    head.skip(2)?; // reserved
    let len = usize::from(head.u16()?);
    if len < 4 {
        return Err(DecodeError::BadLength {
            what: "ofp_stats",
            declared: len,
            min: 4,
            max: r.remaining(),
        });
    }
    let mut s = r.sub(pad8(len), 4, "ofp_stats")?;
    s.skip(4)?;
    let mut fields = s.sub(len - 4, 0, "ofp_stats fields")?;
    let mut c = FlowCounters::default();
    while !fields.is_empty() {
        let mut head = Reader::new(fields.bytes_peek(4)?, "OXS field");
        let class = head.u16()?;
        let field_byte = head.u8()?;
        let len = usize::from(head.u8()?);
        let whole = fields.sub(4 + len, 4, "OXS field")?;
        let raw = whole.clone_slice();
        let mut v = Reader::new(&raw[4..], "OXS field");
        // The low bit of the field byte is reserved; a field with it set is not one we know.
        let field =
            (class == OXS_CLASS_OPENFLOW_BASIC && field_byte & 1 == 0).then_some(field_byte >> 1);
        let want = match field {
            Some(OXS_DURATION | OXS_IDLE_TIME | OXS_PACKET_COUNT | OXS_BYTE_COUNT) => 8,
            Some(OXS_FLOW_COUNT) => 4,
            _ => {
                c.unknown.push(Bytes::copy_from_slice(raw));
                continue;
            }
        };
        if len != want {
            return Err(DecodeError::BadLength {
                what: "OXS field",
                declared: len,
                min: want,
                max: want,
            });
        }
        match field {
            Some(OXS_DURATION) => c.duration = Some(from_oxs_time(v.u64()?)),
            Some(OXS_IDLE_TIME) => c.idle_time = Some(from_oxs_time(v.u64()?)),
            Some(OXS_PACKET_COUNT) => c.packet_count = Some(v.u64()?),
            Some(OXS_BYTE_COUNT) => c.byte_count = Some(v.u64()?),
            _ => c.flow_count = Some(v.u32()?),
        }
    }
    Ok(c)
}

/// Writes the counters in the order OVS 3.1 uses (duration, idle time, packets, bytes, flow
/// count), then the unknown fields as they came.
fn encode_oxs_stats(buf: &mut BytesMut, c: &FlowCounters) -> Result<(), EncodeError> {
    let start = buf.len();
    buf.put_u16(0);
    buf.put_u16(0);
    let header = |buf: &mut BytesMut, field: u8, len: u8| {
        buf.put_u16(OXS_CLASS_OPENFLOW_BASIC);
        buf.put_u8(field << 1);
        buf.put_u8(len);
    };
    if let Some(d) = c.duration {
        header(buf, OXS_DURATION, 8);
        buf.put_u64(oxs_time(d));
    }
    if let Some(d) = c.idle_time {
        header(buf, OXS_IDLE_TIME, 8);
        buf.put_u64(oxs_time(d));
    }
    if let Some(n) = c.packet_count {
        header(buf, OXS_PACKET_COUNT, 8);
        buf.put_u64(n);
    }
    if let Some(n) = c.byte_count {
        header(buf, OXS_BYTE_COUNT, 8);
        buf.put_u64(n);
    }
    if let Some(n) = c.flow_count {
        header(buf, OXS_FLOW_COUNT, 4);
        buf.put_u32(n);
    }
    for raw in &c.unknown {
        buf.put_slice(raw);
    }
    let len = patch_len16(buf, start, 2, "ofp_stats")?;
    put_zeros(buf, pad8(len) - len);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Canonical forms for comparing an installed flow with a flow mod
// ---------------------------------------------------------------------------------------------

/// Both sides could be put in canonical form and are equal.
fn same_canonical(a: Option<Vec<Vec<u8>>>, b: Option<Vec<Vec<u8>>>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a == b)
}

fn mac_masked(addr: MacAddr, mask: MacAddr) -> Option<(MacAddr, Option<MacAddr>)> {
    if mask.0 == [0; 6] {
        return None;
    }
    if mask.0 == [0xff; 6] {
        return Some((addr, None));
    }
    let mut out = addr.0;
    for (b, m) in out.iter_mut().zip(mask.0) {
        *b &= m;
    }
    Some((MacAddr(out), Some(mask)))
}

fn ip_masked(
    addr: std::net::Ipv4Addr,
    mask: std::net::Ipv4Addr,
) -> Option<(std::net::Ipv4Addr, Option<std::net::Ipv4Addr>)> {
    let (a, m) = (u32::from(addr), u32::from(mask));
    match m {
        0 => None,
        u32::MAX => Some((addr, None)),
        _ => Some(((a & m).into(), Some(mask))),
    }
}

/// The field as a switch keeps it: a mask of all ones dropped, bits outside the mask cleared;
/// `None` for a field whose mask is all zeros (it matches anything).
fn normalize_field(field: &OxmField) -> Option<OxmField> {
    use OxmField::*;
    Some(match field {
        EthDst {
            addr,
            mask: Some(m),
        } => {
            let (addr, mask) = mac_masked(*addr, *m)?;
            EthDst { addr, mask }
        }
        EthSrc {
            addr,
            mask: Some(m),
        } => {
            let (addr, mask) = mac_masked(*addr, *m)?;
            EthSrc { addr, mask }
        }
        Ipv4Src {
            addr,
            mask: Some(m),
        } => {
            let (addr, mask) = ip_masked(*addr, *m)?;
            Ipv4Src { addr, mask }
        }
        Ipv4Dst {
            addr,
            mask: Some(m),
        } => {
            let (addr, mask) = ip_masked(*addr, *m)?;
            Ipv4Dst { addr, mask }
        }
        ArpSpa {
            addr,
            mask: Some(m),
        } => {
            let (addr, mask) = ip_masked(*addr, *m)?;
            ArpSpa { addr, mask }
        }
        ArpTpa {
            addr,
            mask: Some(m),
        } => {
            let (addr, mask) = ip_masked(*addr, *m)?;
            ArpTpa { addr, mask }
        }
        other => other.clone(),
    })
}

/// The match as a sorted list of encoded, normalised fields (a multiset); `None` when a field
/// cannot be encoded.
fn canonical_match(fields: &[OxmField]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::with_capacity(fields.len());
    for f in fields.iter().filter_map(normalize_field) {
        let mut buf = BytesMut::new();
        f.encode(&mut buf).ok()?;
        out.push(buf.to_vec());
    }
    out.sort_unstable();
    Some(out)
}

fn normalize_action(action: &Action) -> Action {
    match action {
        Action::Output { port, .. } if *port != PortNo::CONTROLLER => Action::Output {
            port: *port,
            max_len: 0,
        },
        Action::SetField(field) => match normalize_field(field) {
            Some(f) => Action::SetField(f),
            None => action.clone(),
        },
        other => other.clone(),
    }
}

/// The instructions, each encoded, sorted (so by type first): an empty apply-actions is left
/// out, since it does nothing and OVS does not report it.
fn canonical_instructions(instructions: &[Instruction]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::with_capacity(instructions.len());
    for i in instructions {
        let i = match i {
            Instruction::ApplyActions(actions) if actions.is_empty() => continue,
            Instruction::ApplyActions(actions) => {
                Instruction::ApplyActions(actions.iter().map(normalize_action).collect())
            }
            other => other.clone(),
        };
        let mut buf = BytesMut::new();
        i.encode(&mut buf).ok()?;
        out.push(buf.to_vec());
    }
    out.sort_unstable();
    Some(out)
}
