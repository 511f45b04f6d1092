//! The flows a Pod gets, behind a trait so an embedding agent can supply its own.

use podport_openflow::{Action, FlowMod, OxmField, PortNo, ETH_TYPE_ARP, ETH_TYPE_IPV4};

use crate::spec::PodSpec;

/// Cookie of the bridge's default flows.
pub const BRIDGE_COOKIE: u64 = 0x00b0_0000_0000_0001;

/// Builds flows. Pod flows must all carry `cookie`: the engine removes a Pod's flows by cookie
/// before installing them again and when the Pod is deleted.
pub trait FlowProvider: Send + Sync + 'static {
    /// Every flow of one Pod on port `port_no`.
    fn pod_flows(&self, spec: &PodSpec, port_no: u32, cookie: u64) -> Vec<FlowMod>;
    /// Flows the bridge needs whatever Pods exist (installed after every connect).
    fn bridge_flows(&self) -> Vec<FlowMod>;
}

/// The default: table 0 admits a Pod's own IP and ARP traffic (in_port, eth_src and source
/// address must match) to table 1 and drops everything else; table 1 delivers to the Pod by
/// IP (rewriting eth_dst to the Pod's MAC), by ARP target address and by eth_dst, and drops
/// everything else.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultFlows;

impl FlowProvider for DefaultFlows {
    fn pod_flows(&self, spec: &PodSpec, port_no: u32, cookie: u64) -> Vec<FlowMod> {
        let port = PortNo(port_no);
        let mac = spec.mac;
        let mut flows = Vec::new();
        for ip in spec.ipv4s() {
            flows.push(
                FlowMod::add(0)
                    .cookie(cookie, 0)
                    .priority(200)
                    .matching(OxmField::InPort(port))
                    .matching(OxmField::EthSrc {
                        addr: mac,
                        mask: None,
                    })
                    .matching(OxmField::EthType(ETH_TYPE_IPV4))
                    .matching(OxmField::Ipv4Src {
                        addr: ip,
                        mask: None,
                    })
                    .goto_table(1),
            );
            flows.push(
                FlowMod::add(0)
                    .cookie(cookie, 0)
                    .priority(200)
                    .matching(OxmField::InPort(port))
                    .matching(OxmField::EthSrc {
                        addr: mac,
                        mask: None,
                    })
                    .matching(OxmField::EthType(ETH_TYPE_ARP))
                    .matching(OxmField::ArpSpa {
                        addr: ip,
                        mask: None,
                    })
                    .goto_table(1),
            );
            flows.push(
                FlowMod::add(1)
                    .cookie(cookie, 0)
                    .priority(200)
                    .matching(OxmField::EthType(ETH_TYPE_IPV4))
                    .matching(OxmField::Ipv4Dst {
                        addr: ip,
                        mask: None,
                    })
                    .apply(vec![
                        Action::SetField(OxmField::EthDst {
                            addr: mac,
                            mask: None,
                        }),
                        Action::output(port),
                    ]),
            );
            // ARP requests are broadcast: deliver them by target address.
            flows.push(
                FlowMod::add(1)
                    .cookie(cookie, 0)
                    .priority(200)
                    .matching(OxmField::EthType(ETH_TYPE_ARP))
                    .matching(OxmField::ArpTpa {
                        addr: ip,
                        mask: None,
                    })
                    .apply(vec![Action::output(port)]),
            );
        }
        flows.push(
            FlowMod::add(1)
                .cookie(cookie, 0)
                .priority(100)
                .matching(OxmField::EthDst {
                    addr: mac,
                    mask: None,
                })
                .apply(vec![Action::output(port)]),
        );
        flows
    }

    fn bridge_flows(&self) -> Vec<FlowMod> {
        // Priority 0 with no match replaces the NORMAL flow a new bridge starts with.
        vec![
            FlowMod::add(0)
                .cookie(BRIDGE_COOKIE, 0)
                .priority(0)
                .apply(vec![]),
            FlowMod::add(1)
                .cookie(BRIDGE_COOKIE, 0)
                .priority(0)
                .apply(vec![]),
        ]
    }
}
