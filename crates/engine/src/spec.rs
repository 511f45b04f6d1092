//! What the agent tells the engine about a Pod, validated.
//!
//! Every string of a spec reaches OVSDB (the Port and Interface `name`, their `external_ids`
//! `pod-namespace`, `pod-name`, `container-id`, `ip`, `mac`, and the transaction's comment),
//! the journal and the logs. [`validate`] is the gate: a spec it accepts holds nothing OVSDB
//! refuses (ovsdb-server's JSON parser rejects a NUL inside a string and drops the
//! connection), nothing Linux or Windows refuses as an interface name, and only addresses
//! a Pod can have. Each rejection is an [`AddPodError`] whose message starts with the field
//! (`ifname`, `mac`, `ips[1]`, `namespace`, ...) and says why.

use std::fmt;
use std::net::Ipv4Addr;

use podport_openflow::MacAddr;

/// The longest interface name: Linux's `IFNAMSIZ` (16) less the NUL, which is also what
/// OpenFlow's 16-byte port name carries.
pub const MAX_IFNAME_LEN: usize = 15;

/// The longest namespace and Pod name. Kubernetes object names are DNS subdomains of at
/// most 253 bytes (namespaces are labels of at most 63, but podport also serves embedders
/// that are not Kubernetes, so it bounds what it must store, not Kubernetes' grammar).
pub const MAX_POD_NAME_LEN: usize = 253;

/// The longest container id. Container runtimes use 64 hex digits (containerd, CRI-O,
/// Docker) or a 36-byte GUID (Windows HCS); the CNI spec sets no bound, so 128 leaves room
/// for another scheme while keeping `external_ids`, journal records and log lines small.
pub const MAX_CONTAINER_ID_LEN: usize = 128;

/// A Pod's port as the agent asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub container_id: String,
    /// Interface (and OVS Port) name, 1 to 15 bytes ([`validate_ifname`]).
    pub ifname: String,
    /// The Pod's IPv4 host addresses as given (`10.0.0.5/24` or `10.0.0.5`; [`host_address`]).
    pub ips: Vec<String>,
    /// Unicast and not all zeros ([`validate_mac`]).
    pub mac: MacAddr,
}

impl PodSpec {
    /// The addresses without their prefix lengths.
    pub fn ipv4s(&self) -> Vec<Ipv4Addr> {
        self.ips
            .iter()
            .filter_map(|s| s.split('/').next()?.parse().ok())
            .collect()
    }

    /// `namespace/name`.
    pub fn pod(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A field of a [`PodSpec`] named in an error, as the control socket's JSON names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Namespace,
    Name,
    ContainerId,
    Ifname,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Namespace => "namespace",
            Field::Name => "name",
            Field::ContainerId => "container_id",
            Field::Ifname => "ifname",
        })
    }
}

/// Why an address in `ips` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IpProblem {
    #[error("is not an IPv4 address (podport takes IPv4 only: 10.1.0.5 or 10.1.0.5/16)")]
    NotIpv4,
    #[error("has a bad prefix length: after the '/' comes 1 to 32, with no sign or leading zero")]
    BadPrefix,
    #[error("has prefix /0, which would put every address on the Pod's link")]
    ZeroPrefix,
    #[error("is the unspecified address 0.0.0.0, not a host address")]
    Unspecified,
    #[error("is the broadcast address 255.255.255.255, not a host address")]
    Broadcast,
    #[error("is a multicast address (224.0.0.0/4), not a host address")]
    Multicast,
    #[error(
        "is a loopback address (127.0.0.0/8), which never leaves its host, not a Pod's address"
    )]
    Loopback,
    #[error("is the network address of its /{0} subnet, not a host address")]
    NetworkAddress(u8),
    #[error("is the broadcast address of its /{0} subnet, not a host address")]
    SubnetBroadcast(u8),
    #[error("repeats the address of ips[{0}]")]
    Duplicate(usize),
}

/// Why a MAC address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacProblem {
    #[error("is not a MAC address (six hex bytes separated by ':', e.g. 02:00:0a:01:00:05): {0}")]
    Unparsable(String),
    #[error("is all zeros, which no interface may have")]
    Zero,
    #[error("is the broadcast address, not a unicast address")]
    Broadcast,
    #[error(
        "is a multicast address (the low bit of its first byte is set), not a unicast address"
    )]
    Multicast,
}

/// Why `add_pod` refused a Pod. Each message starts with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddPodError {
    #[error("ifname is empty; an interface name has 1 to {MAX_IFNAME_LEN} bytes")]
    EmptyIfname,
    #[error("ifname {} is {len} bytes; an interface name has at most {MAX_IFNAME_LEN} (Linux's IFNAMSIZ less the NUL, and what OpenFlow carries)", shown(ifname))]
    IfnameTooLong { ifname: String, len: usize },
    #[error("ifname {ifname:?} contains {ch:?}{why}, which no interface name may contain")]
    IfnameBadChar {
        ifname: String,
        ch: char,
        /// What is wrong with `ch`, as ` (...)`, or empty.
        why: &'static str,
    },
    #[error("ifname {ifname:?} is not an interface name: Linux refuses \".\" and \"..\", which name directories")]
    IfnameReserved { ifname: String },
    #[error("interface name {ifname:?} looks like {other:?} on the OpenFlow wire (the first 15 bytes are equal)")]
    WireNameCollision { ifname: String, other: String },
    #[error(
        "interface {ifname} is already tracked for another Pod ({pod}, container {container_id})"
    )]
    AlreadyTracked {
        ifname: String,
        pod: String,
        container_id: String,
    },
    #[error("ifname {ifname}: OVS already has a port of that name that podport did not create (no external_ids:podport-owner); podport leaves it alone")]
    NotOurs { ifname: String },
    #[error("ifname {ifname}: OVS already has podport's port of that name for another container ({container_id})")]
    NameTaken {
        ifname: String,
        container_id: String,
    },
    #[error("{field} is empty")]
    EmptyField { field: Field },
    #[error("{field} {} is {len} bytes; at most {max}", shown(value))]
    FieldTooLong {
        field: Field,
        value: String,
        len: usize,
        max: usize,
    },
    #[error("{field} {value:?} contains {ch:?}{why}, which no {field} may contain")]
    FieldBadChar {
        field: Field,
        value: String,
        ch: char,
        /// What is wrong with `ch`, as ` (...)`, or empty.
        why: &'static str,
    },
    /// `field` is `ips[N]`.
    #[error("{field} {} {problem}", shown(ip))]
    BadIp {
        field: String,
        ip: String,
        problem: IpProblem,
    },
    #[error("ips is empty: Pod {pod} needs at least one IPv4 address")]
    NoIp { pod: String },
    #[error("mac {} {problem}", shown(mac))]
    BadMac { mac: String, problem: MacProblem },
}

/// A value quoted for a message, cut after 64 characters (a request line may carry 64 KiB).
fn shown(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => format!("{s:?}"),
        Some((i, _)) => format!("{:?}… ({} bytes)", &s[..i], s.len()),
    }
}

/// Parses the `mac` of a request; a string that is not a MAC address is
/// [`AddPodError::BadMac`]. Unicast and non-zero are checked by [`validate`].
pub fn parse_mac(s: &str) -> Result<MacAddr, AddPodError> {
    s.parse::<MacAddr>().map_err(|e| {
        // The parser's message repeats the string: keep only its reason.
        let prefix = format!("bad MAC address {s:?}: ");
        let reason = e.strip_prefix(&prefix).unwrap_or(&e);
        // It may quote a byte of any length: cut it like the value.
        let reason = match reason.char_indices().nth(96) {
            None => reason.to_string(),
            Some((i, _)) => format!("{}…", &reason[..i]),
        };
        AddPodError::BadMac {
            mac: s.to_string(),
            problem: MacProblem::Unparsable(reason),
        }
    })
}

/// Checks a spec on its own (names, addresses); the engine checks collisions.
pub fn validate(spec: &PodSpec) -> Result<(), AddPodError> {
    validate_ifname(&spec.ifname)?;
    validate_identity(Field::Namespace, &spec.namespace, MAX_POD_NAME_LEN)?;
    validate_identity(Field::Name, &spec.name, MAX_POD_NAME_LEN)?;
    validate_identity(Field::ContainerId, &spec.container_id, MAX_CONTAINER_ID_LEN)?;
    validate_mac(spec.mac)?;
    if spec.ips.is_empty() {
        return Err(AddPodError::NoIp { pod: spec.pod() });
    }
    let mut seen: Vec<Ipv4Addr> = Vec::with_capacity(spec.ips.len());
    for (i, ip) in spec.ips.iter().enumerate() {
        let bad = |problem| AddPodError::BadIp {
            field: format!("ips[{i}]"),
            ip: ip.clone(),
            problem,
        };
        let addr = host_address(ip).map_err(bad)?;
        if let Some(j) = seen.iter().position(|a| *a == addr) {
            return Err(bad(IpProblem::Duplicate(j)));
        }
        seen.push(addr);
    }
    Ok(())
}

/// An interface (and OVS Port) name as Linux's `dev_valid_name` accepts it: 1 to 15 bytes,
/// not `.` or `..`, no `/`, `:` or whitespace; and no control character at all.
///
/// - NUL and other control characters: OVSDB refuses a NUL in a string (its JSON parser has
///   no NUL) and drops the connection; a C program on either system ends the name there.
/// - `:` is refused too: Linux's `dev_valid_name` rejects it (it marks an IPv4 address label
///   such as `eth0:1` in the old ioctl API), so OVS could never create the port there.
///   Windows (NDIS and Hyper-V port names) is more permissive; a name podport accepts must
///   work on both, since the same agent code runs on Linux and Windows nodes.
/// - Linux's `isspace` counts the byte 0xa0 as a space, so a character whose UTF-8 bytes
///   include it (`à`, `Р`, ...) is refused with the whitespace. Other non-ASCII is accepted.
pub fn validate_ifname(ifname: &str) -> Result<(), AddPodError> {
    if ifname.is_empty() {
        return Err(AddPodError::EmptyIfname);
    }
    if ifname.len() > MAX_IFNAME_LEN {
        return Err(AddPodError::IfnameTooLong {
            ifname: ifname.to_string(),
            len: ifname.len(),
        });
    }
    for ch in ifname.chars() {
        let why = match ch {
            '/' => Some(""),
            ':' => Some(" (Linux keeps it for address labels such as eth0:1)"),
            c => char_problem(c).or_else(|| {
                let mut buf = [0; 4];
                c.encode_utf8(&mut buf)
                    .bytes()
                    .any(|b| b == 0xa0)
                    .then_some(" (one of its UTF-8 bytes is 0xa0, which Linux counts as a space)")
            }),
        };
        if let Some(why) = why {
            return Err(AddPodError::IfnameBadChar {
                ifname: ifname.to_string(),
                ch,
                why,
            });
        }
    }
    if ifname == "." || ifname == ".." {
        return Err(AddPodError::IfnameReserved {
            ifname: ifname.to_string(),
        });
    }
    Ok(())
}

/// The engine's own strings that reach OVSDB with every create: the bridge (an interface
/// name too, so [`validate_ifname`]'s rules) and the initial Interface type (no NUL, control
/// character or whitespace; empty is the default). Checked once, at [`crate::Engine::start`].
pub fn validate_config(bridge: &str, initial_type: &str) -> Result<(), String> {
    validate_ifname(bridge)
        .map_err(|e| format!("bridge {bridge:?} is not a valid interface name: {e}"))?;
    if let Some((ch, why)) = initial_type
        .chars()
        .find_map(|c| char_problem(c).map(|why| (c, why)))
    {
        return Err(format!(
            "initial type {initial_type:?} contains {ch:?}{why}, which no Interface type may contain"
        ));
    }
    Ok(())
}

/// NUL, control characters and whitespace: never in a name podport stores.
fn char_problem(c: char) -> Option<&'static str> {
    if c == '\0' {
        Some(" (NUL)")
    } else if c.is_control() {
        Some(" (a control character)")
    } else if c.is_whitespace() {
        Some(" (whitespace)")
    } else {
        None
    }
}

/// Namespace, Pod name, container id: non-empty, at most `max` bytes, no NUL, control
/// character or whitespace (Kubernetes names and CNI container ids have none, and podport's
/// logs and journal dumps print them as `key=value`). Namespace and name have no `/` either:
/// `namespace/name` is how podport names a Pod (`--pod NS/NAME`).
fn validate_identity(field: Field, value: &str, max: usize) -> Result<(), AddPodError> {
    if value.is_empty() {
        return Err(AddPodError::EmptyField { field });
    }
    if value.len() > max {
        return Err(AddPodError::FieldTooLong {
            field,
            value: value.to_string(),
            len: value.len(),
            max,
        });
    }
    for ch in value.chars() {
        let why = match ch {
            '/' if field != Field::ContainerId => {
                Some(" (it separates namespace and name in NS/NAME)")
            }
            c => char_problem(c),
        };
        if let Some(why) = why {
            return Err(AddPodError::FieldBadChar {
                field,
                value: value.to_string(),
                ch,
                why,
            });
        }
    }
    Ok(())
}

/// A Pod's MAC: unicast (the low bit of the first byte clear) and not all zeros.
pub fn validate_mac(mac: MacAddr) -> Result<(), AddPodError> {
    let problem = if mac.0 == [0; 6] {
        MacProblem::Zero
    } else if mac.0 == [0xff; 6] {
        MacProblem::Broadcast
    } else if mac.0[0] & 1 == 1 {
        MacProblem::Multicast
    } else {
        return Ok(());
    };
    Err(AddPodError::BadMac {
        mac: mac.to_string(),
        problem,
    })
}

/// `ip` (`A.B.C.D` or `A.B.C.D/P`, in canonical form) as an IPv4 host address: not
/// unspecified, broadcast, multicast or loopback, and with a prefix of 30 or less not the
/// network or broadcast address of its subnet (a /31 or /32 has neither). Returns the
/// address.
pub fn host_address(ip: &str) -> Result<Ipv4Addr, IpProblem> {
    let (addr, prefix) = match ip.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (ip, None),
    };
    // Rust's parser takes only the canonical dotted quad (no leading zeros, four parts).
    let addr: Ipv4Addr = addr.parse().map_err(|_| IpProblem::NotIpv4)?;
    let prefix = match prefix {
        None => None,
        Some(p) => {
            let canonical = matches!(p.len(), 1 | 2)
                && p.bytes().all(|b| b.is_ascii_digit())
                && !(p.len() == 2 && p.starts_with('0'));
            match p.parse::<u8>() {
                Ok(n) if canonical && n <= 32 => Some(n),
                _ => return Err(IpProblem::BadPrefix),
            }
        }
    };
    if addr.is_unspecified() {
        return Err(IpProblem::Unspecified);
    }
    if addr.is_broadcast() {
        return Err(IpProblem::Broadcast);
    }
    if addr.is_multicast() {
        return Err(IpProblem::Multicast);
    }
    if addr.is_loopback() {
        return Err(IpProblem::Loopback);
    }
    match prefix {
        Some(0) => Err(IpProblem::ZeroPrefix),
        Some(p) if p <= 30 => {
            let host_bits = u32::MAX >> p;
            let a = u32::from(addr);
            if a & host_bits == 0 {
                Err(IpProblem::NetworkAddress(p))
            } else if a & host_bits == host_bits {
                Err(IpProblem::SubnetBroadcast(p))
            } else {
                Ok(addr)
            }
        }
        _ => Ok(addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> PodSpec {
        PodSpec {
            namespace: "default".into(),
            name: "web-1".into(),
            container_id: "3f2a9c".into(),
            ifname: "web1-3f2a".into(),
            ips: vec!["10.1.0.5/16".into()],
            mac: "02:00:0a:01:00:05".parse().unwrap(),
        }
    }

    fn with(f: impl FnOnce(&mut PodSpec)) -> PodSpec {
        let mut s = good();
        f(&mut s);
        s
    }

    fn ifname(n: &str) -> PodSpec {
        with(|s| s.ifname = n.into())
    }

    fn ips(v: &[&str]) -> PodSpec {
        with(|s| s.ips = v.iter().map(|s| s.to_string()).collect())
    }

    fn mac(m: &str) -> PodSpec {
        with(|s| s.mac = m.parse().unwrap())
    }

    #[test]
    fn accepted_specs() {
        let accepted = [
            good(),
            ifname("a"),
            ifname("abcdefghijklmno"), // 15 bytes
            ifname("vnic_1.2-x"),
            ifname("..."),
            ifname(".a"),
            ifname("é-port"), // UTF-8 c3 a9: no 0xa0 byte
            ifname("%d"),
            mac("02:00:00:00:00:01"),
            mac("00:00:00:00:00:01"),
            mac("fe:ff:ff:ff:ff:ff"), // locally administered unicast
            ips(&["10.0.0.1"]),
            ips(&["10.0.0.1/32"]),
            ips(&["10.0.0.0/31"]), // RFC 3021: both addresses of a /31 are hosts
            ips(&["10.0.0.1/31"]),
            ips(&["10.0.0.1/30", "10.0.0.2/30"]),
            ips(&["10.0.1.0/16"]), // .0 inside a larger subnet is a host
            ips(&["10.0.0.255/16"]),
            ips(&["10.0.0.5/1"]),
            ips(&["255.255.255.254/32"]),
            ips(&["169.254.1.1/16"]),
            with(|s| s.namespace = "n".repeat(MAX_POD_NAME_LEN)),
            with(|s| s.name = "app-7c9d8f6b5d-x2x9k".into()),
            with(|s| s.container_id = "c".repeat(MAX_CONTAINER_ID_LEN)),
            with(|s| s.container_id = "9b2c7e1a-0f3d-4c7e-8a55-3f1d2e4b6a70".into()),
            with(|s| s.container_id = "a/b".into()),
        ];
        for spec in accepted {
            assert_eq!(validate(&spec), Ok(()), "{spec:?}");
        }
    }

    #[test]
    fn rejected_specs_name_their_field_and_why() {
        let long = "x".repeat(300);
        // (spec, the field its message starts with, what the message says)
        let rejected: Vec<(PodSpec, &str, &str)> = vec![
            (ifname(""), "ifname", "ifname is empty"),
            (
                ifname("abcdefghijklmnop"),
                "ifname",
                "ifname \"abcdefghijklmnop\" is 16 bytes",
            ),
            (
                ifname("a\0b"),
                "ifname",
                "ifname \"a\\0b\" contains '\\0' (NUL), which no interface name may contain",
            ),
            (
                ifname("a/b"),
                "ifname",
                "ifname \"a/b\" contains '/', which no interface name may contain",
            ),
            (
                ifname("eth0:1"),
                "ifname",
                "ifname \"eth0:1\" contains ':' (Linux keeps it for address labels",
            ),
            (
                ifname("a b"),
                "ifname",
                "ifname \"a b\" contains ' ' (whitespace)",
            ),
            (
                ifname("a\tb"),
                "ifname",
                "ifname \"a\\tb\" contains '\\t' (a control character)",
            ),
            (
                ifname("a\nb"),
                "ifname",
                "contains '\\n' (a control character), which no interface name",
            ),
            (
                ifname("a\rb"),
                "ifname",
                "ifname \"a\\rb\" contains '\\r' (a control character)",
            ),
            (ifname("a\u{7f}"), "ifname", "(a control character)"),
            (ifname("a\u{85}"), "ifname", "(a control character)"),
            (ifname("a\u{a0}b"), "ifname", "(whitespace)"),
            (ifname("a\u{2003}b"), "ifname", "(whitespace)"),
            (
                ifname("xà"),
                "ifname",
                "ifname \"xà\" contains 'à' (one of its UTF-8 bytes is 0xa0",
            ),
            (
                ifname("."),
                "ifname",
                "ifname \".\" is not an interface name",
            ),
            (
                ifname(".."),
                "ifname",
                "ifname \"..\" is not an interface name",
            ),
            (ifname("../x"), "ifname", "contains '/'"),
            (
                with(|s| s.namespace = String::new()),
                "namespace",
                "namespace is empty",
            ),
            (with(|s| s.name = String::new()), "name", "name is empty"),
            (
                with(|s| s.container_id = String::new()),
                "container_id",
                "container_id is empty",
            ),
            (
                with(|s| s.namespace = "a\0b".into()),
                "namespace",
                "namespace \"a\\0b\" contains '\\0' (NUL), which no namespace may contain",
            ),
            (
                with(|s| s.name = "web\n1".into()),
                "name",
                "name \"web\\n1\" contains '\\n' (a control character)",
            ),
            (
                with(|s| s.name = "web 1".into()),
                "name",
                "name \"web 1\" contains ' ' (whitespace)",
            ),
            (
                with(|s| s.namespace = "a/b".into()),
                "namespace",
                "namespace \"a/b\" contains '/' (it separates namespace and name",
            ),
            (
                with(|s| s.name = "a/b".into()),
                "name",
                "name \"a/b\" contains '/'",
            ),
            (
                with(|s| s.container_id = "c\0".into()),
                "container_id",
                "container_id \"c\\0\" contains '\\0' (NUL)",
            ),
            (
                with(|s| s.namespace = "n".repeat(254)),
                "namespace",
                "namespace \"nnnn",
            ),
            (with(|s| s.name = long.clone()), "name", "name \"xxxx"),
            (
                with(|s| s.container_id = "c".repeat(129)),
                "container_id",
                "container_id \"cccc",
            ),
            (
                mac("ff:ff:ff:ff:ff:ff"),
                "mac",
                "mac \"ff:ff:ff:ff:ff:ff\" is the broadcast address",
            ),
            (
                mac("01:00:5e:00:00:01"),
                "mac",
                "mac \"01:00:5e:00:00:01\" is a multicast address",
            ),
            (
                mac("03:00:00:00:00:01"),
                "mac",
                "mac \"03:00:00:00:00:01\" is a multicast address",
            ),
            (
                mac("00:00:00:00:00:00"),
                "mac",
                "mac \"00:00:00:00:00:00\" is all zeros",
            ),
            (ips(&[]), "ips", "ips is empty"),
            (
                ips(&["0.0.0.0/0"]),
                "ips[0]",
                "ips[0] \"0.0.0.0/0\" is the unspecified address",
            ),
            (
                ips(&["0.0.0.0"]),
                "ips[0]",
                "ips[0] \"0.0.0.0\" is the unspecified address",
            ),
            (
                ips(&["255.255.255.255"]),
                "ips[0]",
                "ips[0] \"255.255.255.255\" is the broadcast address",
            ),
            (
                ips(&["224.0.0.1"]),
                "ips[0]",
                "ips[0] \"224.0.0.1\" is a multicast address",
            ),
            (
                ips(&["239.255.255.250/24"]),
                "ips[0]",
                "is a multicast address",
            ),
            (
                ips(&["127.0.0.1/8"]),
                "ips[0]",
                "ips[0] \"127.0.0.1/8\" is a loopback address",
            ),
            (
                ips(&["10.0.0.5/24", "10.0.0.0/24"]),
                "ips[1]",
                "ips[1] \"10.0.0.0/24\" is the network address of its /24 subnet",
            ),
            (
                ips(&["10.0.0.255/24"]),
                "ips[0]",
                "ips[0] \"10.0.0.255/24\" is the broadcast address of its /24 subnet",
            ),
            (
                ips(&["10.0.0.4/30"]),
                "ips[0]",
                "network address of its /30 subnet",
            ),
            (
                ips(&["10.0.0.7/30"]),
                "ips[0]",
                "broadcast address of its /30 subnet",
            ),
            (
                ips(&["10.0.0.5/0"]),
                "ips[0]",
                "ips[0] \"10.0.0.5/0\" has prefix /0",
            ),
            (
                ips(&["10.0.0.5/33"]),
                "ips[0]",
                "ips[0] \"10.0.0.5/33\" has a bad prefix length",
            ),
            (ips(&["10.0.0.5/+24"]), "ips[0]", "has a bad prefix length"),
            (ips(&["10.0.0.5/024"]), "ips[0]", "has a bad prefix length"),
            (ips(&["10.0.0.5/08"]), "ips[0]", "has a bad prefix length"),
            (ips(&["10.0.0.5/"]), "ips[0]", "has a bad prefix length"),
            (ips(&["10.0.0.5/24/1"]), "ips[0]", "has a bad prefix length"),
            (
                ips(&["10.0.0.1", "fe80::1"]),
                "ips[1]",
                "ips[1] \"fe80::1\" is not an IPv4 address",
            ),
            (ips(&["010.0.0.1"]), "ips[0]", "is not an IPv4 address"),
            (ips(&["10.0.0.1\0"]), "ips[0]", "is not an IPv4 address"),
            (ips(&[" 10.0.0.1"]), "ips[0]", "is not an IPv4 address"),
            (
                ips(&["10.0.0.5/24", "10.0.0.5/16"]),
                "ips[1]",
                "ips[1] \"10.0.0.5/16\" repeats the address of ips[0]",
            ),
        ];
        for (spec, field, want) in rejected {
            let e = validate(&spec).expect_err(want);
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("{field} ")),
                "{spec:?}: {msg} should start with {field}"
            );
            assert!(msg.contains(want), "{spec:?}:\n got  {msg}\n want {want}");
        }
    }

    #[test]
    fn bad_mac_strings_name_the_field() {
        for (s, want) in [
            ("zz", "mac \"zz\" is not a MAC address"),
            ("02:00:00:00:00", "fewer than 6 bytes"),
            ("02:00:00:00:00:01:02", "more than 6 bytes"),
            ("02:00:00:00:00:0g", "byte \"0g\" is not hex"),
            ("02:00:00:00:00:01\0", "mac \"02:00:00:00:00:01\\0\""),
        ] {
            let msg = parse_mac(s).unwrap_err().to_string();
            assert!(msg.contains(want), "{s:?}: {msg}");
            assert!(msg.starts_with("mac "), "{msg}");
        }
        assert_eq!(
            parse_mac("02:00:0a:01:00:05"),
            Ok(MacAddr([2, 0, 0xa, 1, 0, 5]))
        );
        // A huge value is cut in the message.
        let huge = "f".repeat(60_000);
        let msg = parse_mac(&huge).unwrap_err().to_string();
        assert!(msg.len() < 400, "{} bytes", msg.len());
        assert!(msg.contains("(60000 bytes)"), "{msg}");
    }

    #[test]
    fn engine_config_strings() {
        assert_eq!(validate_config("br-int", ""), Ok(()));
        assert_eq!(validate_config("br-int", "podport-pending"), Ok(()));
        let e = validate_config("br/int", "").unwrap_err();
        assert!(e.starts_with("bridge \"br/int\""), "{e}");
        let e = validate_config("br-int", "internal\0").unwrap_err();
        assert!(
            e.starts_with("initial type \"internal\\0\" contains '\\0' (NUL)"),
            "{e}"
        );
    }

    #[test]
    fn every_rejection_is_typed() {
        assert!(matches!(
            validate(&ifname("a\0b")),
            Err(AddPodError::IfnameBadChar { ch: '\0', .. })
        ));
        assert!(matches!(
            validate(&mac("ff:ff:ff:ff:ff:ff")),
            Err(AddPodError::BadMac {
                problem: MacProblem::Broadcast,
                ..
            })
        ));
        assert_eq!(
            validate(&ips(&["10.0.0.1/24", "10.0.0.0/24"])),
            Err(AddPodError::BadIp {
                field: "ips[1]".into(),
                ip: "10.0.0.0/24".into(),
                problem: IpProblem::NetworkAddress(24),
            })
        );
        assert!(matches!(
            validate(&with(|s| s.container_id = "x".repeat(129))),
            Err(AddPodError::FieldTooLong {
                field: Field::ContainerId,
                len: 129,
                max: MAX_CONTAINER_ID_LEN,
                ..
            })
        ));
    }
}
