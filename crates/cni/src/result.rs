//! The CNI result (what ADD prints, what CHECK gets back as `prevResult`, and what the IPAM
//! plugin returns), the addresses in it, and the names this plugin derives: the Pod's MAC
//! from its IP and the host-side port name from the container.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A CNI result. Deserialising is lenient where IPAM plugins differ (missing lists).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `4` or `6`, only in results before 1.0.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// CIDR: `10.66.0.2/24`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

impl CniResult {
    /// The result as `version` has it: before 1.0.0 every IP carries its `version`.
    pub fn for_version(mut self, version: &str) -> CniResult {
        let old = version != "1.0.0";
        for ip in &mut self.ips {
            ip.version = if old {
                parse_cidr(&ip.address)
                    .ok()
                    .map(|(a, _)| if a.is_ipv4() { "4" } else { "6" }.to_string())
            } else {
                None
            };
        }
        self.cni_version = version.to_string();
        self
    }
}

/// `10.66.0.2/24` as its address and prefix length.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not ADDRESS/PREFIX"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match len.parse::<u8>() {
        Ok(len) if len <= max => Ok((addr, len)),
        _ => Err(format!(
            "{s:?}: {len:?} is not a prefix length (0 to {max})"
        )),
    }
}

/// The Pod's MAC from its IP: locally administered unicast `0a:58:` and the last four bytes
/// of the address (as OVN-Kubernetes does), so the same IP always gets the same MAC.
pub fn mac_for(ip: IpAddr) -> String {
    let b = match ip {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    format!("0a:58:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

/// The host-side name of the Pod's port (and of the device OVS creates for it until it is
/// moved into the Pod): `pp` and 13 hex digits of a hash of the container id and the
/// interface name, 15 bytes (Linux's limit). ADD and DEL derive the same name.
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    // FNV-1a, 64 bits: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(ifname.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("pp{:013x}", h & ((1 << 52) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_result_serialises_as_the_spec_shows() {
        let r = CniResult {
            cni_version: String::new(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "0a:58:0a:42:00:02".into(),
                sandbox: "/run/netns/p".into(),
            }],
            ips: vec![IpConfig {
                version: None,
                address: "10.66.0.2/24".into(),
                gateway: Some("10.66.0.1".into()),
                interface: Some(0),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".into(),
                gw: Some("10.66.0.1".into()),
            }],
            dns: Some(json!({})),
        };
        let v1 = serde_json::to_value(r.clone().for_version("1.0.0")).unwrap();
        assert_eq!(
            v1,
            json!({"cniVersion": "1.0.0",
                   "interfaces": [{"name": "eth0", "mac": "0a:58:0a:42:00:02", "sandbox": "/run/netns/p"}],
                   "ips": [{"address": "10.66.0.2/24", "gateway": "10.66.0.1", "interface": 0}],
                   "routes": [{"dst": "0.0.0.0/0", "gw": "10.66.0.1"}],
                   "dns": {}})
        );
        let v04 = serde_json::to_value(r.for_version("0.4.0")).unwrap();
        assert_eq!(v04["ips"][0]["version"], "4");
        assert_eq!(v04["cniVersion"], "0.4.0");
    }

    #[test]
    fn a_bare_ipam_result_reads() {
        let r: CniResult = serde_json::from_value(json!({"cniVersion": "1.0.0",
            "ips": [{"address": "10.66.0.2/24", "gateway": "10.66.0.1"}], "dns": {}}))
        .unwrap();
        assert_eq!(r.ips[0].gateway.as_deref(), Some("10.66.0.1"));
        assert!(r.interfaces.is_empty() && r.routes.is_empty());
    }

    #[test]
    fn cidrs_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_cidr("10.66.0.2/24"),
            Ok(("10.66.0.2".parse().unwrap(), 24))
        );
        assert_eq!(
            parse_cidr("fd00::5/64"),
            Ok(("fd00::5".parse().unwrap(), 64))
        );
        assert!(parse_cidr("10.66.0.2")
            .unwrap_err()
            .contains("ADDRESS/PREFIX"));
        assert!(parse_cidr("10.66.0.2/33").unwrap_err().contains("0 to 32"));
        assert!(parse_cidr("pod/8")
            .unwrap_err()
            .contains("not an IP address"));
    }

    #[test]
    fn the_mac_follows_the_ip_and_is_locally_administered_unicast() {
        assert_eq!(mac_for("10.66.0.2".parse().unwrap()), "0a:58:0a:42:00:02");
        assert_eq!(mac_for("fd00::a42:7".parse().unwrap()), "0a:58:0a:42:00:07");
        // Bit 1 of the first byte set (local), bit 0 clear (unicast).
        assert_eq!(0x0a & 0b11, 0b10);
    }

    #[test]
    fn host_ifnames_are_short_stable_and_distinct() {
        let a = host_ifname("0123456789abcdef0123456789abcdef", "eth0");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("pp") && a[2..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, host_ifname("0123456789abcdef0123456789abcdef", "eth0"));
        // The same id prefix, another container; the same container, another interface.
        assert_ne!(a, host_ifname("0123456789abcdef0123456789abcdee", "eth0"));
        assert_ne!(a, host_ifname("0123456789abcdef0123456789abcdef", "eth1"));
        assert!(crate::env::check_ifname(&a).is_ok());
    }
}
