//! Small value types shared by messages: versions, port numbers, MAC addresses, flag sets.

use std::fmt;
use std::str::FromStr;

use bitflags::bitflags;

/// An OpenFlow version podport speaks. Other versions are only ever seen in HELLO and ERROR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// OpenFlow 1.3, wire version 0x04.
    Of13,
    /// OpenFlow 1.5, wire version 0x06.
    Of15,
}

impl Version {
    /// Every version podport implements, lowest first.
    pub const ALL: [Version; 2] = [Version::Of13, Version::Of15];

    /// The wire version byte.
    pub const fn wire(self) -> u8 {
        match self {
            Version::Of13 => 0x04,
            Version::Of15 => 0x06,
        }
    }

    /// The version for a wire byte, if podport speaks it.
    pub const fn from_wire(v: u8) -> Option<Version> {
        match v {
            0x04 => Some(Version::Of13),
            0x06 => Some(Version::Of15),
            _ => None,
        }
    }

    /// The name OVS uses in `protocols` and `ovs-ofctl -O`.
    pub const fn ovs_name(self) -> &'static str {
        match self {
            Version::Of13 => "OpenFlow13",
            Version::Of15 => "OpenFlow15",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::Of13 => "1.3",
            Version::Of15 => "1.5",
        })
    }
}

impl FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "1.3" | "13" | "openflow13" | "of13" => Ok(Version::Of13),
            "1.5" | "15" | "openflow15" | "of15" => Ok(Version::Of15),
            _ => Err(format!(
                "unknown OpenFlow version {s:?} (expected 1.3 or 1.5)"
            )),
        }
    }
}

/// Human name of any wire version byte, for logs and errors.
pub fn wire_version_name(v: u8) -> String {
    match v {
        0x01 => "1.0".into(),
        0x02 => "1.1".into(),
        0x03 => "1.2".into(),
        0x04 => "1.3".into(),
        0x05 => "1.4".into(),
        0x06 => "1.5".into(),
        other => format!("0x{other:02x}"),
    }
}

/// An OpenFlow port number (32-bit in 1.1 and later).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortNo(pub u32);

impl PortNo {
    /// Highest number of a physical (non-reserved) port; everything above is reserved.
    pub const MAX: PortNo = PortNo(0xffff_ff00);
    pub const IN_PORT: PortNo = PortNo(0xffff_fff8);
    pub const TABLE: PortNo = PortNo(0xffff_fff9);
    pub const NORMAL: PortNo = PortNo(0xffff_fffa);
    pub const FLOOD: PortNo = PortNo(0xffff_fffb);
    pub const ALL: PortNo = PortNo(0xffff_fffc);
    pub const CONTROLLER: PortNo = PortNo(0xffff_fffd);
    pub const LOCAL: PortNo = PortNo(0xffff_fffe);
    pub const ANY: PortNo = PortNo(0xffff_ffff);

    /// True for numbers that never name a Pod's port: 0 and the reserved range from
    /// 0xffffff00 up (LOCAL, CONTROLLER, ANY, ...).
    pub const fn is_reserved(self) -> bool {
        self.0 == 0 || self.0 >= Self::MAX.0
    }

    fn reserved_name(self) -> Option<&'static str> {
        Some(match self {
            PortNo::IN_PORT => "IN_PORT",
            PortNo::TABLE => "TABLE",
            PortNo::NORMAL => "NORMAL",
            PortNo::FLOOD => "FLOOD",
            PortNo::ALL => "ALL",
            PortNo::CONTROLLER => "CONTROLLER",
            PortNo::LOCAL => "LOCAL",
            PortNo::ANY => "ANY",
            _ => return None,
        })
    }
}

impl fmt::Display for PortNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reserved_name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts
                .next()
                .ok_or_else(|| format!("bad MAC address {s:?}: fewer than 6 bytes"))?;
            if part.is_empty() || part.len() > 2 {
                return Err(format!("bad MAC address {s:?}: byte {part:?}"));
            }
            *byte = u8::from_str_radix(part, 16)
                .map_err(|_| format!("bad MAC address {s:?}: byte {part:?} is not hex"))?;
        }
        if parts.next().is_some() {
            return Err(format!("bad MAC address {s:?}: more than 6 bytes"));
        }
        Ok(MacAddr(out))
    }
}

bitflags! {
    /// `ofp_port_config`: administrative settings of a port. Unknown bits are kept.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct PortConfig: u32 {
        const PORT_DOWN = 1 << 0;
        const NO_RECV = 1 << 2;
        const NO_FWD = 1 << 5;
        const NO_PACKET_IN = 1 << 6;
    }
}

bitflags! {
    /// `ofp_port_state`: what the switch observes on a port. Unknown bits are kept.
    ///
    /// A state is a set: LIVE can come together with other bits, so test with `contains`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct PortState: u32 {
        const LINK_DOWN = 1 << 0;
        const BLOCKED = 1 << 1;
        const LIVE = 1 << 2;
    }
}

bitflags! {
    /// `ofp_flow_mod_flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct FlowModFlags: u16 {
        const SEND_FLOW_REM = 1 << 0;
        const CHECK_OVERLAP = 1 << 1;
        const RESET_COUNTS = 1 << 2;
        const NO_PKT_COUNTS = 1 << 3;
        const NO_BYT_COUNTS = 1 << 4;
    }
}

/// Flag names of a bit set, with any unknown bits as one hex entry: `["LIVE"]`, `[]`,
/// `["LINK_DOWN", "0x100"]`.
pub fn flag_names<F: bitflags::Flags<Bits = u32>>(flags: &F) -> Vec<String> {
    let mut names: Vec<String> = flags.iter_names().map(|(n, _)| n.to_string()).collect();
    let unknown = flags.bits() & !F::all().bits();
    if unknown != 0 {
        names.push(format!("{unknown:#x}"));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_prints() {
        let mac: MacAddr = "aa:55:aa:55:00:14".parse().unwrap();
        assert_eq!(mac.0, [0xaa, 0x55, 0xaa, 0x55, 0x00, 0x14]);
        assert_eq!(mac.to_string(), "aa:55:aa:55:00:14");
        assert!("aa:55:aa:55:00".parse::<MacAddr>().is_err());
        assert!("aa:55:aa:55:00:14:00".parse::<MacAddr>().is_err());
        assert!("aa:55:aa:55:00:zz".parse::<MacAddr>().is_err());
    }

    #[test]
    fn reserved_ports() {
        assert!(PortNo(0).is_reserved());
        assert!(PortNo::LOCAL.is_reserved());
        assert!(PortNo(0xffff_ff00).is_reserved());
        assert!(!PortNo(1).is_reserved());
        assert!(!PortNo(0xffff_feff).is_reserved());
        assert_eq!(PortNo::LOCAL.to_string(), "LOCAL");
        assert_eq!(PortNo(7).to_string(), "7");
    }

    #[test]
    fn flag_names_keep_unknown_bits() {
        assert_eq!(flag_names(&PortState::LIVE), vec!["LIVE"]);
        assert!(flag_names(&PortState::empty()).is_empty());
        let s = PortState::from_bits_retain(0x101);
        assert_eq!(flag_names(&s), vec!["LINK_DOWN", "0x100"]);
    }

    #[test]
    fn versions() {
        assert_eq!("1.5".parse::<Version>().unwrap(), Version::Of15);
        assert_eq!("OpenFlow13".parse::<Version>().unwrap(), Version::Of13);
        assert!("1.4".parse::<Version>().is_err());
        assert_eq!(Version::from_wire(0x06), Some(Version::Of15));
        assert_eq!(Version::from_wire(0x01), None);
    }
}
