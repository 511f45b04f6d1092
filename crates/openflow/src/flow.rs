//! FLOW_MOD with OXM matches, instructions and actions.
//!
//! Only what podport programs is typed: matches on in_port, eth_src, eth_dst, eth_type,
//! ipv4_src, ipv4_dst, arp_spa, arp_tpa (addresses optionally masked); instructions
//! apply-actions and goto-table; actions output and set-field. Anything else decodes to an
//! `Unknown` variant that keeps its bytes, so it survives a round trip.

use std::fmt;
use std::net::Ipv4Addr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::types::{FlowModFlags, MacAddr, PortNo, Version};
use crate::wire::{pad8, patch_len16, put_zeros, Reader};

const OXM_CLASS_OPENFLOW_BASIC: u16 = 0x8000;
const OXM_IN_PORT: u8 = 0;
const OXM_ETH_DST: u8 = 3;
const OXM_ETH_SRC: u8 = 4;
const OXM_ETH_TYPE: u8 = 5;
const OXM_IPV4_SRC: u8 = 11;
const OXM_IPV4_DST: u8 = 12;
const OXM_ARP_SPA: u8 = 22;
const OXM_ARP_TPA: u8 = 23;

const MATCH_TYPE_OXM: u16 = 1;
const INSTR_GOTO_TABLE: u16 = 1;
const INSTR_APPLY_ACTIONS: u16 = 4;
const ACTION_OUTPUT: u16 = 0;
const ACTION_SET_FIELD: u16 = 25;

/// EtherType of IPv4.
pub const ETH_TYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETH_TYPE_ARP: u16 = 0x0806;
/// `buffer_id` meaning "no buffered packet".
pub const NO_BUFFER: u32 = 0xffff_ffff;
/// `out_group` meaning "any group" (no filtering on delete).
pub const GROUP_ANY: u32 = 0xffff_ffff;

/// One OXM match field (also the payload of a set-field action).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OxmField {
    InPort(PortNo),
    EthDst {
        addr: MacAddr,
        mask: Option<MacAddr>,
    },
    EthSrc {
        addr: MacAddr,
        mask: Option<MacAddr>,
    },
    EthType(u16),
    Ipv4Src {
        addr: Ipv4Addr,
        mask: Option<Ipv4Addr>,
    },
    Ipv4Dst {
        addr: Ipv4Addr,
        mask: Option<Ipv4Addr>,
    },
    ArpSpa {
        addr: Ipv4Addr,
        mask: Option<Ipv4Addr>,
    },
    ArpTpa {
        addr: Ipv4Addr,
        mask: Option<Ipv4Addr>,
    },
    /// Any other field, kept as sent (value includes the mask when `has_mask`).
    Unknown {
        class: u16,
        field: u8,
        has_mask: bool,
        value: Bytes,
    },
}

impl OxmField {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<OxmField, DecodeError> {
        let class = r.u16()?;
        let fh = r.u8()?;
        let len = usize::from(r.u8()?);
        let field = fh >> 1;
        let has_mask = fh & 1 == 1;
        let mut v = r.sub(len, 0, "OXM field")?;
        if class != OXM_CLASS_OPENFLOW_BASIC {
            return Ok(OxmField::Unknown {
                class,
                field,
                has_mask,
                value: Bytes::copy_from_slice(v.rest()),
            });
        }
        let value_len = match field {
            OXM_IN_PORT => 4,
            OXM_ETH_DST | OXM_ETH_SRC => 6,
            OXM_ETH_TYPE => 2,
            OXM_IPV4_SRC | OXM_IPV4_DST | OXM_ARP_SPA | OXM_ARP_TPA => 4,
            _ => {
                return Ok(OxmField::Unknown {
                    class,
                    field,
                    has_mask,
                    value: Bytes::copy_from_slice(v.rest()),
                })
            }
        };
        if has_mask {
            match field {
                OXM_IN_PORT => return Err(DecodeError::MaskNotAllowed { field: "in_port" }),
                OXM_ETH_TYPE => return Err(DecodeError::MaskNotAllowed { field: "eth_type" }),
                _ => {}
            }
        }
        // A masked field carries the value and then a mask of the same size.
        let want = if has_mask { value_len * 2 } else { value_len };
        if len != want {
            return Err(DecodeError::BadLength {
                what: "OXM field",
                declared: len,
                min: want,
                max: want,
            });
        }
        let mac = |v: &mut Reader<'_>| -> Result<(MacAddr, Option<MacAddr>), DecodeError> {
            let addr = MacAddr(v.array()?);
            let mask = if has_mask {
                Some(MacAddr(v.array()?))
            } else {
                None
            };
            Ok((addr, mask))
        };
        let ip = |v: &mut Reader<'_>| -> Result<(Ipv4Addr, Option<Ipv4Addr>), DecodeError> {
            let addr = Ipv4Addr::from(v.u32()?);
            let mask = if has_mask {
                Some(Ipv4Addr::from(v.u32()?))
            } else {
                None
            };
            Ok((addr, mask))
        };
        Ok(match field {
            OXM_IN_PORT => OxmField::InPort(PortNo(v.u32()?)),
            OXM_ETH_TYPE => OxmField::EthType(v.u16()?),
            OXM_ETH_DST => {
                let (addr, mask) = mac(&mut v)?;
                OxmField::EthDst { addr, mask }
            }
            OXM_ETH_SRC => {
                let (addr, mask) = mac(&mut v)?;
                OxmField::EthSrc { addr, mask }
            }
            OXM_IPV4_SRC => {
                let (addr, mask) = ip(&mut v)?;
                OxmField::Ipv4Src { addr, mask }
            }
            OXM_IPV4_DST => {
                let (addr, mask) = ip(&mut v)?;
                OxmField::Ipv4Dst { addr, mask }
            }
            OXM_ARP_SPA => {
                let (addr, mask) = ip(&mut v)?;
                OxmField::ArpSpa { addr, mask }
            }
            _ => {
                let (addr, mask) = ip(&mut v)?;
                OxmField::ArpTpa { addr, mask }
            }
        })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let basic = |buf: &mut BytesMut, field: u8, has_mask: bool, len: usize| {
            buf.put_u16(OXM_CLASS_OPENFLOW_BASIC);
            buf.put_u8(field << 1 | u8::from(has_mask));
            // Lengths here are at most 12 bytes, so the cast cannot truncate.
            buf.put_u8(len as u8);
        };
        match self {
            OxmField::InPort(p) => {
                basic(buf, OXM_IN_PORT, false, 4);
                buf.put_u32(p.0);
            }
            OxmField::EthType(t) => {
                basic(buf, OXM_ETH_TYPE, false, 2);
                buf.put_u16(*t);
            }
            OxmField::EthDst { addr, mask } | OxmField::EthSrc { addr, mask } => {
                let field = if matches!(self, OxmField::EthDst { .. }) {
                    OXM_ETH_DST
                } else {
                    OXM_ETH_SRC
                };
                basic(
                    buf,
                    field,
                    mask.is_some(),
                    if mask.is_some() { 12 } else { 6 },
                );
                buf.put_slice(&addr.0);
                if let Some(m) = mask {
                    buf.put_slice(&m.0);
                }
            }
            OxmField::Ipv4Src { addr, mask }
            | OxmField::Ipv4Dst { addr, mask }
            | OxmField::ArpSpa { addr, mask }
            | OxmField::ArpTpa { addr, mask } => {
                let field = match self {
                    OxmField::Ipv4Src { .. } => OXM_IPV4_SRC,
                    OxmField::Ipv4Dst { .. } => OXM_IPV4_DST,
                    OxmField::ArpSpa { .. } => OXM_ARP_SPA,
                    _ => OXM_ARP_TPA,
                };
                basic(
                    buf,
                    field,
                    mask.is_some(),
                    if mask.is_some() { 8 } else { 4 },
                );
                buf.put_slice(&addr.octets());
                if let Some(m) = mask {
                    buf.put_slice(&m.octets());
                }
            }
            OxmField::Unknown {
                class,
                field,
                has_mask,
                value,
            } => {
                let len = u8::try_from(value.len()).map_err(|_| EncodeError::TooLong {
                    what: "OXM field",
                    len: value.len(),
                })?;
                // The field number has 7 bits on the wire; decode never yields more.
                if *field > 0x7f {
                    return Err(EncodeError::TooLong {
                        what: "OXM field number (7 bits)",
                        len: usize::from(*field),
                    });
                }
                buf.put_u16(*class);
                buf.put_u8(field << 1 | u8::from(*has_mask));
                buf.put_u8(len);
                buf.put_slice(value);
            }
        }
        Ok(())
    }
}

impl fmt::Display for OxmField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn masked<T: fmt::Display>(
            f: &mut fmt::Formatter<'_>,
            name: &str,
            a: &T,
            m: &Option<T>,
        ) -> fmt::Result {
            match m {
                Some(m) => write!(f, "{name}={a}/{m}"),
                None => write!(f, "{name}={a}"),
            }
        }
        match self {
            OxmField::InPort(p) => write!(f, "in_port={p}"),
            OxmField::EthType(t) => write!(f, "eth_type=0x{t:04x}"),
            OxmField::EthDst { addr, mask } => masked(f, "eth_dst", addr, mask),
            OxmField::EthSrc { addr, mask } => masked(f, "eth_src", addr, mask),
            OxmField::Ipv4Src { addr, mask } => masked(f, "ipv4_src", addr, mask),
            OxmField::Ipv4Dst { addr, mask } => masked(f, "ipv4_dst", addr, mask),
            OxmField::ArpSpa { addr, mask } => masked(f, "arp_spa", addr, mask),
            OxmField::ArpTpa { addr, mask } => masked(f, "arp_tpa", addr, mask),
            OxmField::Unknown { class, field, .. } => write!(f, "oxm({class:#x}:{field})"),
        }
    }
}

/// One action inside an apply-actions instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the packet to a port. `max_len` matters only for the CONTROLLER port.
    Output { port: PortNo, max_len: u16 },
    /// Rewrite a header field (podport uses eth_dst).
    SetField(OxmField),
    /// Any other action, kept as sent (the whole action, header included).
    Unknown { action_type: u16, raw: Bytes },
}

impl Action {
    /// Output to `port`.
    pub fn output(port: PortNo) -> Action {
        Action::Output { port, max_len: 0 }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Action, DecodeError> {
        let mut head = Reader::new(r.bytes_peek(4)?, "action");
        let action_type = head.u16()?;
        let len = usize::from(head.u16()?);
        if len % 8 != 0 {
            return Err(DecodeError::BadLength {
                what: "action (not a multiple of 8)",
                declared: len,
                min: 8,
                max: r.remaining(),
            });
        }
        let raw = r.sub(len, 8, "action")?;
        let mut a = Reader::new(raw.clone_slice(), "action");
        a.skip(4)?;
        match action_type {
            ACTION_OUTPUT => {
                if len != 16 {
                    return Err(DecodeError::BadLength {
                        what: "output action",
                        declared: len,
                        min: 16,
                        max: 16,
                    });
                }
                let port = PortNo(a.u32()?);
                let max_len = a.u16()?;
                Ok(Action::Output { port, max_len })
            }
            ACTION_SET_FIELD => Ok(Action::SetField(OxmField::decode(&mut a)?)),
            _ => Ok(Action::Unknown {
                action_type,
                raw: Bytes::copy_from_slice(raw.clone_slice()),
            }),
        }
    }

    fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let start = buf.len();
        match self {
            Action::Output { port, max_len } => {
                buf.put_u16(ACTION_OUTPUT);
                buf.put_u16(16);
                buf.put_u32(port.0);
                buf.put_u16(*max_len);
                put_zeros(buf, 6);
            }
            Action::SetField(field) => {
                buf.put_u16(ACTION_SET_FIELD);
                buf.put_u16(0);
                field.encode(buf)?;
                let len = buf.len() - start;
                put_zeros(buf, pad8(len) - len);
                patch_len16(buf, start, 2, "set-field action")?;
            }
            Action::Unknown { raw, .. } => buf.put_slice(raw),
        }
        Ok(())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Output { port, .. } => write!(f, "output:{port}"),
            Action::SetField(field) => write!(f, "set_field:{field}"),
            Action::Unknown { action_type, .. } => write!(f, "action({action_type})"),
        }
    }
}

/// One instruction of a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    GotoTable(u8),
    ApplyActions(Vec<Action>),
    /// Any other instruction, kept as sent (header included).
    Unknown {
        instruction_type: u16,
        raw: Bytes,
    },
}

impl Instruction {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Instruction, DecodeError> {
        let mut head = Reader::new(r.bytes_peek(4)?, "instruction");
        let instruction_type = head.u16()?;
        let len = usize::from(head.u16()?);
        let raw = r.sub(len, 8, "instruction")?;
        let mut i = Reader::new(raw.clone_slice(), "instruction");
        i.skip(4)?;
        match instruction_type {
            INSTR_GOTO_TABLE => {
                if len != 8 {
                    return Err(DecodeError::BadLength {
                        what: "goto-table instruction",
                        declared: len,
                        min: 8,
                        max: 8,
                    });
                }
                Ok(Instruction::GotoTable(i.u8()?))
            }
            INSTR_APPLY_ACTIONS => {
                i.skip(4)?;
                let mut actions = Vec::new();
                while !i.is_empty() {
                    actions.push(Action::decode(&mut i)?);
                }
                Ok(Instruction::ApplyActions(actions))
            }
            _ => Ok(Instruction::Unknown {
                instruction_type,
                raw: Bytes::copy_from_slice(raw.clone_slice()),
            }),
        }
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let start = buf.len();
        match self {
            Instruction::GotoTable(t) => {
                buf.put_u16(INSTR_GOTO_TABLE);
                buf.put_u16(8);
                buf.put_u8(*t);
                put_zeros(buf, 3);
            }
            Instruction::ApplyActions(actions) => {
                buf.put_u16(INSTR_APPLY_ACTIONS);
                buf.put_u16(0);
                put_zeros(buf, 4);
                for a in actions {
                    a.encode(buf)?;
                }
                patch_len16(buf, start, 2, "apply-actions instruction")?;
            }
            Instruction::Unknown { raw, .. } => buf.put_slice(raw),
        }
        Ok(())
    }
}

impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Instruction::GotoTable(t) => write!(f, "goto_table:{t}"),
            Instruction::ApplyActions(actions) => {
                let parts: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
                write!(f, "apply_actions({})", parts.join(","))
            }
            Instruction::Unknown {
                instruction_type, ..
            } => write!(f, "instruction({instruction_type})"),
        }
    }
}

/// `ofp_flow_mod_command`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowModCommand {
    Add,
    Modify,
    ModifyStrict,
    Delete,
    DeleteStrict,
    Unknown(u8),
}

impl FlowModCommand {
    fn wire(self) -> u8 {
        match self {
            FlowModCommand::Add => 0,
            FlowModCommand::Modify => 1,
            FlowModCommand::ModifyStrict => 2,
            FlowModCommand::Delete => 3,
            FlowModCommand::DeleteStrict => 4,
            FlowModCommand::Unknown(v) => v,
        }
    }

    fn from_wire(v: u8) -> FlowModCommand {
        match v {
            0 => FlowModCommand::Add,
            1 => FlowModCommand::Modify,
            2 => FlowModCommand::ModifyStrict,
            3 => FlowModCommand::Delete,
            4 => FlowModCommand::DeleteStrict,
            other => FlowModCommand::Unknown(other),
        }
    }
}

/// A FLOW_MOD. Build one with [`FlowMod::add`] or [`FlowMod::delete`] and the builder methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowMod {
    pub cookie: u64,
    pub cookie_mask: u64,
    pub table_id: u8,
    pub command: FlowModCommand,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub buffer_id: u32,
    pub out_port: PortNo,
    pub out_group: u32,
    pub flags: FlowModFlags,
    /// Only on the wire in 1.5 (a pad in 1.3); decoded as 0 from 1.3.
    pub importance: u16,
    pub matches: Vec<OxmField>,
    pub instructions: Vec<Instruction>,
}

/// FLOW_MOD fixed part after the header.
const FLOW_MOD_FIXED_LEN: usize = 40;
/// Table id meaning "every table" (for deletes).
pub const TABLE_ALL: u8 = 0xff;

impl FlowMod {
    fn base(command: FlowModCommand, table_id: u8) -> FlowMod {
        FlowMod {
            cookie: 0,
            cookie_mask: 0,
            table_id,
            command,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: 0x8000,
            buffer_id: NO_BUFFER,
            out_port: PortNo::ANY,
            out_group: GROUP_ANY,
            flags: FlowModFlags::empty(),
            importance: 0,
            matches: Vec::new(),
            instructions: Vec::new(),
        }
    }

    /// An ADD into `table_id` with default priority (0x8000) and no match yet.
    pub fn add(table_id: u8) -> FlowMod {
        FlowMod::base(FlowModCommand::Add, table_id)
    }

    /// A (non-strict) MODIFY in `table_id`.
    pub fn modify(table_id: u8) -> FlowMod {
        FlowMod::base(FlowModCommand::Modify, table_id)
    }

    /// A (non-strict) DELETE in `table_id` (use [`TABLE_ALL`] for every table).
    pub fn delete(table_id: u8) -> FlowMod {
        FlowMod::base(FlowModCommand::Delete, table_id)
    }

    /// A DELETE_STRICT: matches and priority must be equal.
    pub fn delete_strict(table_id: u8) -> FlowMod {
        FlowMod::base(FlowModCommand::DeleteStrict, table_id)
    }

    /// A DELETE of every flow in every table whose cookie equals `cookie`.
    pub fn delete_by_cookie(cookie: u64) -> FlowMod {
        FlowMod::delete(TABLE_ALL).cookie(cookie, u64::MAX)
    }

    pub fn cookie(mut self, cookie: u64, mask: u64) -> FlowMod {
        self.cookie = cookie;
        self.cookie_mask = mask;
        self
    }

    pub fn priority(mut self, priority: u16) -> FlowMod {
        self.priority = priority;
        self
    }

    pub fn flags(mut self, flags: FlowModFlags) -> FlowMod {
        self.flags = flags;
        self
    }

    pub fn matching(mut self, field: OxmField) -> FlowMod {
        self.matches.push(field);
        self
    }

    pub fn instruction(mut self, instruction: Instruction) -> FlowMod {
        self.instructions.push(instruction);
        self
    }

    pub fn apply(self, actions: Vec<Action>) -> FlowMod {
        self.instruction(Instruction::ApplyActions(actions))
    }

    pub fn goto_table(self, table: u8) -> FlowMod {
        self.instruction(Instruction::GotoTable(table))
    }

    pub(crate) fn decode(body: &[u8], version: Version) -> Result<FlowMod, DecodeError> {
        let mut r = Reader::new(body, "FLOW_MOD");
        if r.remaining() < FLOW_MOD_FIXED_LEN {
            return Err(DecodeError::Truncated {
                what: "FLOW_MOD",
                need: FLOW_MOD_FIXED_LEN,
                have: r.remaining(),
            });
        }
        let cookie = r.u64()?;
        let cookie_mask = r.u64()?;
        let table_id = r.u8()?;
        let command = FlowModCommand::from_wire(r.u8()?);
        let idle_timeout = r.u16()?;
        let hard_timeout = r.u16()?;
        let priority = r.u16()?;
        let buffer_id = r.u32()?;
        let out_port = PortNo(r.u32()?);
        let out_group = r.u32()?;
        let flags = FlowModFlags::from_bits_retain(r.u16()?);
        let importance = match version {
            Version::Of13 => {
                r.skip(2)?;
                0
            }
            Version::Of15 => r.u16()?,
        };
        let matches = decode_match(&mut r)?;
        let mut instructions = Vec::new();
        while !r.is_empty() {
            instructions.push(Instruction::decode(&mut r)?);
        }
        Ok(FlowMod {
            cookie,
            cookie_mask,
            table_id,
            command,
            idle_timeout,
            hard_timeout,
            priority,
            buffer_id,
            out_port,
            out_group,
            flags,
            importance,
            matches,
            instructions,
        })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut, version: Version) -> Result<(), EncodeError> {
        buf.put_u64(self.cookie);
        buf.put_u64(self.cookie_mask);
        buf.put_u8(self.table_id);
        buf.put_u8(self.command.wire());
        buf.put_u16(self.idle_timeout);
        buf.put_u16(self.hard_timeout);
        buf.put_u16(self.priority);
        buf.put_u32(self.buffer_id);
        buf.put_u32(self.out_port.0);
        buf.put_u32(self.out_group);
        buf.put_u16(self.flags.bits());
        match version {
            Version::Of13 => put_zeros(buf, 2),
            Version::Of15 => buf.put_u16(self.importance),
        }
        encode_match(buf, &self.matches)?;
        for i in &self.instructions {
            i.encode(buf)?;
        }
        Ok(())
    }
}

impl fmt::Display for FlowMod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m: Vec<String> = self.matches.iter().map(|m| m.to_string()).collect();
        let i: Vec<String> = self.instructions.iter().map(|i| i.to_string()).collect();
        write!(
            f,
            "{:?} table={} priority={} cookie={:#x}/{:#x} match=[{}] instructions=[{}]",
            self.command,
            self.table_id,
            self.priority,
            self.cookie,
            self.cookie_mask,
            m.join(","),
            i.join(",")
        )
    }
}

/// `ofp_match`: type OXM, length (without padding), fields, padding to 8.
pub(crate) fn decode_match(r: &mut Reader<'_>) -> Result<Vec<OxmField>, DecodeError> {
    let mut head = Reader::new(r.bytes_peek(4)?, "ofp_match");
    let match_type = head.u16()?;
    let len = usize::from(head.u16()?);
    if match_type != MATCH_TYPE_OXM {
        return Err(DecodeError::BadValue {
            what: "ofp_match type (only OXM is supported)",
            value: u64::from(match_type),
        });
    }
    let span = pad8(len);
    let mut m = r.sub(span.max(len), 4, "ofp_match")?;
    if len < 4 {
        return Err(DecodeError::BadLength {
            what: "ofp_match",
            declared: len,
            min: 4,
            max: span,
        });
    }
    m.skip(4)?;
    let mut fields = m.sub(len - 4, 0, "ofp_match fields")?;
    let mut out = Vec::new();
    while !fields.is_empty() {
        out.push(OxmField::decode(&mut fields)?);
    }
    Ok(out)
}

pub(crate) fn encode_match(buf: &mut BytesMut, fields: &[OxmField]) -> Result<(), EncodeError> {
    let start = buf.len();
    buf.put_u16(MATCH_TYPE_OXM);
    buf.put_u16(0);
    for f in fields {
        f.encode(buf)?;
    }
    let len = patch_len16(buf, start, 2, "ofp_match")?;
    put_zeros(buf, pad8(len) - len);
    Ok(())
}
