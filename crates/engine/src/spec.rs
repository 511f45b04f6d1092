//! What the agent tells the engine about a Pod, validated.

use std::net::Ipv4Addr;

use podport_openflow::MacAddr;

/// The longest interface name that stays unique on the OpenFlow wire.
pub const MAX_IFNAME_LEN: usize = 15;

/// A Pod's port as the agent asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub container_id: String,
    /// Interface (and OVS Port) name, at most 15 bytes.
    pub ifname: String,
    /// The Pod's IPv4 addresses as given (`10.0.0.5/24` or `10.0.0.5`).
    pub ips: Vec<String>,
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

/// Why `add_pod` refused a Pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddPodError {
    #[error("interface name is empty")]
    EmptyIfname,
    #[error("interface name {ifname:?} is {len} bytes; OpenFlow carries at most 15, so it could not be told apart from others")]
    IfnameTooLong { ifname: String, len: usize },
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
    #[error("bad IP address {ip:?} for {ifname}: only IPv4 addresses (optionally with /prefix) are supported")]
    BadIp { ifname: String, ip: String },
    #[error("Pod {pod} has no IP address")]
    NoIp { pod: String },
    #[error("Pod namespace and name must not be empty")]
    EmptyPod,
}

/// Checks a spec on its own (names, addresses); the engine checks collisions.
pub fn validate(spec: &PodSpec) -> Result<(), AddPodError> {
    if spec.ifname.is_empty() {
        return Err(AddPodError::EmptyIfname);
    }
    if spec.ifname.len() > MAX_IFNAME_LEN {
        return Err(AddPodError::IfnameTooLong {
            ifname: spec.ifname.clone(),
            len: spec.ifname.len(),
        });
    }
    if spec.namespace.is_empty() || spec.name.is_empty() {
        return Err(AddPodError::EmptyPod);
    }
    if spec.ips.is_empty() {
        return Err(AddPodError::NoIp { pod: spec.pod() });
    }
    for ip in &spec.ips {
        let (addr, prefix) = match ip.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (ip.as_str(), None),
        };
        let prefix_ok = prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|n| n <= 32));
        if addr.parse::<Ipv4Addr>().is_err() || !prefix_ok {
            return Err(AddPodError::BadIp {
                ifname: spec.ifname.clone(),
                ip: ip.clone(),
            });
        }
    }
    Ok(())
}
