//! The OpenFlow client against a real ovs-vswitchd (userspace, dummy datapath), in 1.3 and 1.5.
//!
//! What the switch holds is checked with `ovs-ofctl`, `ovs-vsctl` and `ofproto/trace`, never
//! with the client's own view of it.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use podport_openflow::{
    Action, ConnError, FlowDescRequest, FlowEntry, FlowMod, FlowModFlags, Instruction, MacAddr,
    OxmField, PortNo, PortReason, PortState, Version, ETH_TYPE_ARP, ETH_TYPE_IPV4,
};
use podport_ovs_sandbox::{sandbox_for_test, sandbox_for_test_with, Sandbox, SandboxOptions};
use podport_session::openflow::{
    ClientError, ClientEvent, ClientOptions, DisconnectReason, EventReceiver, OfClient,
};
use podport_tests::{assert_quiet, port_statuses, wait_connected, wait_for, PROMPT};
use tokio::task::block_in_place;

/// Runs an async test body once per OpenFlow version, each on its own sandbox.
macro_rules! for_both_versions {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(no_ovs, ignore = "needs Open vSwitch, which this target or machine lacks")]
            async fn of13() {
                super::$name(podport_openflow::Version::Of13).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(no_ovs, ignore = "needs Open vSwitch, which this target or machine lacks")]
            async fn of15() {
                super::$name(podport_openflow::Version::Of15).await
            }
        }
    )*};
}

for_both_versions!(
    handshake_reports_version_and_datapath_id,
    new_port_gives_add_then_modify_live,
    type_change_gives_delete_add_modify_with_same_number,
    del_port_gives_delete,
    port_desc_lists_every_port_including_local,
    flow_mods_show_up_in_dump_flows_and_delete_by_cookie_is_exact,
    barrier_reply_comes_after_the_flows_it_fences,
    invalid_flow_mod_comes_back_as_decoded_error,
    port_status_arrives_after_a_freeze,
    vswitchd_restart_gives_disconnected_then_connected,
    flow_desc_by_cookie_returns_exactly_that_cookies_flows,
);

fn start(v: Version) -> (Sandbox, OfClient, EventReceiver) {
    let sb = block_in_place(sandbox_for_test);
    let (client, rx) = OfClient::start(
        sb.openflow_endpoint().parse().expect("endpoint"),
        ClientOptions::with_versions(&[v]),
    );
    (sb, client, rx)
}

/// A sandbox with a connected client of version `v`.
async fn connected(v: Version) -> (Sandbox, OfClient, EventReceiver) {
    let (sb, client, mut rx) = start(v);
    let (got, _) = wait_connected(&mut rx).await;
    assert_eq!(got, v, "negotiated version");
    (sb, client, rx)
}

fn ofport(sb: &Sandbox, name: &str) -> u32 {
    let n = block_in_place(|| sb.wait_for_ofport(name, PROMPT)).expect("ofport");
    u32::try_from(n).unwrap_or_else(|_| panic!("interface {name} has ofport {n}"))
}

fn add_port(sb: &Sandbox, name: &str) {
    block_in_place(|| sb.add_port(name)).expect("add-port");
}

async fn handshake_reports_version_and_datapath_id(v: Version) {
    let (sb, client, _rx) = start(v);
    let mut rx = _rx;
    let (version, dpid) = wait_connected(&mut rx).await;
    assert_eq!(version, v);
    let from_ovsdb = block_in_place(|| sb.vsctl(&["get", "bridge", "br-int", "datapath_id"]))
        .expect("datapath_id");
    let from_ovsdb =
        u64::from_str_radix(from_ovsdb.trim().trim_matches('"'), 16).expect("datapath_id is hex");
    assert_eq!(dpid, from_ovsdb, "datapath id from FEATURES_REPLY vs OVSDB");
    let ports = client.port_desc().await.expect("PORT_DESC");
    assert!(
        ports
            .iter()
            .any(|p| p.port_no == PortNo::LOCAL && p.name == "br-int"),
        "LOCAL port missing from {ports:?}"
    );
}

/// Antrea sets `protocols=OpenFlow10,OpenFlow15`: a client offering 1.3 and 1.5 must get 1.5
/// (a plain 1.3 HELLO would silently negotiate 1.0), and a 1.3-only client must get a clear
/// "no common version" error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn antrea_protocols_negotiate_1_5_and_refuse_1_3_only() {
    let opts = SandboxOptions {
        protocols: Some("OpenFlow10,OpenFlow15".into()),
        ..SandboxOptions::default()
    };
    let sb = block_in_place(|| sandbox_for_test_with(opts));
    let endpoint: podport_session::Endpoint = sb.openflow_endpoint().parse().unwrap();

    let (client, mut rx) = OfClient::start(endpoint.clone(), ClientOptions::default());
    let (version, _) = wait_connected(&mut rx).await;
    assert_eq!(version, Version::Of15);
    // Requests work in the negotiated version (a 1.0 session would answer BAD_VERSION).
    client.port_desc().await.expect("PORT_DESC over 1.5");

    let (_c13, mut rx13) =
        OfClient::start(endpoint, ClientOptions::with_versions(&[Version::Of13]));
    let reason = wait_for(&mut rx13, PROMPT, "Disconnected", |ev| match ev {
        ClientEvent::Disconnected { reason } => Some(reason.clone()),
        ClientEvent::Connected { .. } => panic!("1.3-only client connected to a 1.0/1.5 bridge"),
        _ => None,
    })
    .await;
    match &reason {
        DisconnectReason::Protocol(ConnError::NoCommonVersion { ours, theirs }) => {
            assert_eq!(ours, "1.3");
            assert_eq!(theirs, "1.0, 1.5");
        }
        other => panic!("expected NoCommonVersion, got {other:?}"),
    }
    assert!(
        reason.to_string().contains("no common OpenFlow version"),
        "{reason}"
    );
}

async fn new_port_gives_add_then_modify_live(v: Version) {
    let (sb, _client, mut rx) = connected(v).await;
    add_port(&sb, "p1");
    let seq = port_statuses(&mut rx, "p1", 2).await;
    let n = ofport(&sb, "p1");
    assert_eq!(seq[0].reason, PortReason::Add);
    assert!(
        !seq[0].port.state.contains(PortState::LIVE),
        "ADD carries no LIVE: {:?}",
        seq[0]
    );
    assert_eq!(seq[1].reason, PortReason::Modify);
    assert!(seq[1].port.state.contains(PortState::LIVE), "{:?}", seq[1]);
    for ps in &seq {
        assert_eq!(ps.port.port_no, PortNo(n), "port number from OVSDB");
    }
}

async fn type_change_gives_delete_add_modify_with_same_number(v: Version) {
    let (sb, _client, mut rx) = connected(v).await;
    add_port(&sb, "p1");
    port_statuses(&mut rx, "p1", 2).await;
    let n = ofport(&sb, "p1");
    block_in_place(|| sb.set_interface_type("p1", "internal")).expect("set type");
    let seq = port_statuses(&mut rx, "p1", 3).await;
    let reasons: Vec<_> = seq.iter().map(|p| p.reason).collect();
    assert_eq!(
        reasons,
        [PortReason::Delete, PortReason::Add, PortReason::Modify]
    );
    for ps in &seq {
        assert_eq!(ps.port.port_no, PortNo(n));
    }
    assert_ne!(
        seq[0].port.hw_addr, seq[1].port.hw_addr,
        "a new netdev, a new MAC"
    );
    assert!(seq[2].port.state.contains(PortState::LIVE));
    assert_eq!(ofport(&sb, "p1"), n, "OVSDB keeps the number");
}

async fn del_port_gives_delete(v: Version) {
    let (sb, _client, mut rx) = connected(v).await;
    add_port(&sb, "p1");
    let added = port_statuses(&mut rx, "p1", 2).await;
    block_in_place(|| sb.del_port("p1")).expect("del-port");
    let seq = port_statuses(&mut rx, "p1", 1).await;
    assert_eq!(seq[0].reason, PortReason::Delete);
    assert_eq!(seq[0].port.port_no, added[1].port.port_no);
    let ports = block_in_place(|| sb.vsctl(&["list-ports", "br-int"])).unwrap();
    assert!(!ports.lines().any(|l| l == "p1"), "OVSDB still lists p1");
}

async fn port_desc_lists_every_port_including_local(v: Version) {
    let (sb, client, _rx) = connected(v).await;
    for i in 1..=5 {
        add_port(&sb, &format!("p{i}"));
    }
    let ports = client.port_desc().await.expect("PORT_DESC");
    let got: BTreeSet<(u32, String)> = ports
        .iter()
        .map(|p| (p.port_no.0, p.name.clone()))
        .collect();
    // OVSDB is the independent source: every interface with its ofport; the bridge's own
    // interface is the LOCAL port (65534 in OVSDB's 16-bit view).
    let listing = block_in_place(|| {
        sb.vsctl(&[
            "--format=csv",
            "--no-headings",
            "--columns=name,ofport",
            "list",
            "interface",
        ])
    })
    .unwrap();
    let want: BTreeSet<(u32, String)> = listing
        .lines()
        .map(|l| {
            let (name, no) = l.split_once(',').expect("csv");
            let name = name.trim_matches('"').to_string();
            let no: u32 = no.parse().expect("ofport");
            let no = if no == 65534 { PortNo::LOCAL.0 } else { no };
            (no, name)
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 6);
}

const COOKIE_POD: u64 = 0xabc;
const COOKIE_OTHER: u64 = 0xdef;

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

/// The flows a Pod gets: in table 0 its own IP and ARP traffic passes to table 1; table 1
/// delivers to it with eth_dst rewritten.
fn pod_flows(port: u32, mac_addr: MacAddr, ip: Ipv4Addr) -> Vec<FlowMod> {
    let port = PortNo(port);
    vec![
        FlowMod::add(0)
            .cookie(COOKIE_POD, 0)
            .priority(200)
            .matching(OxmField::InPort(port))
            .matching(OxmField::EthSrc {
                addr: mac_addr,
                mask: None,
            })
            .matching(OxmField::EthType(ETH_TYPE_IPV4))
            .matching(OxmField::Ipv4Src {
                addr: ip,
                mask: None,
            })
            .goto_table(1),
        FlowMod::add(0)
            .cookie(COOKIE_POD, 0)
            .priority(200)
            .matching(OxmField::InPort(port))
            .matching(OxmField::EthSrc {
                addr: mac_addr,
                mask: None,
            })
            .matching(OxmField::EthType(ETH_TYPE_ARP))
            .matching(OxmField::ArpSpa {
                addr: ip,
                mask: None,
            })
            .goto_table(1),
        FlowMod::add(1)
            .cookie(COOKIE_POD, 0)
            .priority(100)
            .matching(OxmField::EthType(ETH_TYPE_IPV4))
            .matching(OxmField::Ipv4Dst {
                addr: ip,
                mask: None,
            })
            .apply(vec![
                Action::SetField(OxmField::EthDst {
                    addr: mac_addr,
                    mask: None,
                }),
                Action::output(port),
            ]),
        FlowMod::add(1)
            .cookie(COOKIE_POD, 0)
            .priority(100)
            .matching(OxmField::EthType(ETH_TYPE_ARP))
            .matching(OxmField::ArpTpa {
                addr: ip,
                mask: None,
            })
            .apply(vec![Action::output(port)]),
    ]
}

/// The bridge's flows as `ovs-ofctl dump-flows` shows them, less the `NORMAL` flow every new
/// bridge starts with.
fn dump_flows(sb: &Sandbox, v: Version) -> Vec<String> {
    let mut flows = block_in_place(|| sb.dump_flows(v.ovs_name())).expect("dump-flows");
    flows.retain(|f| f != "priority=0 actions=NORMAL");
    flows
}

async fn flow_mods_show_up_in_dump_flows_and_delete_by_cookie_is_exact(v: Version) {
    let (sb, client, _rx) = connected(v).await;
    add_port(&sb, "p1");
    add_port(&sb, "p2");
    let (n1, n2) = (ofport(&sb, "p1"), ofport(&sb, "p2"));
    let (mac1, mac2) = (mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02"));
    let (ip1, ip2) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let mut flows = pod_flows(n1, mac1, ip1);
    flows.extend(pod_flows(n2, mac2, ip2));
    // A flow of someone else, with masked matches, that a delete by COOKIE_POD must keep.
    flows.push(
        FlowMod::add(2)
            .cookie(COOKIE_OTHER, 0)
            .priority(10)
            .matching(OxmField::EthDst {
                addr: mac("02:00:00:00:00:00"),
                mask: Some(mac("ff:ff:00:00:00:00")),
            })
            .matching(OxmField::EthType(ETH_TYPE_IPV4))
            .matching(OxmField::Ipv4Dst {
                addr: Ipv4Addr::new(10, 1, 0, 0),
                mask: Some(Ipv4Addr::new(255, 255, 0, 0)),
            })
            .apply(vec![Action::output(PortNo(n2))]),
    );
    // Table 0 drops whatever no Pod flow passes (an empty action list is a drop).
    flows.push(
        FlowMod::add(0)
            .cookie(COOKIE_OTHER, 0)
            .priority(1)
            .apply(vec![]),
    );
    client.flow_mods(flows).await.expect("flow mods confirmed");

    let dumped = dump_flows(&sb, v);
    let expect = [
        format!("cookie=0xabc, priority=200,ip,in_port={n1},dl_src=02:00:00:00:00:01,nw_src=10.0.0.1 actions=goto_table:1"),
        format!("cookie=0xabc, priority=200,arp,in_port={n1},dl_src=02:00:00:00:00:01,arp_spa=10.0.0.1 actions=goto_table:1"),
        format!("cookie=0xabc, table=1, priority=100,ip,nw_dst=10.0.0.2 actions=set_field:02:00:00:00:00:02->eth_dst,output:{n2}"),
        format!("cookie=0xabc, table=1, priority=100,arp,arp_tpa=10.0.0.2 actions=output:{n2}"),
        format!("cookie=0xdef, table=2, priority=10,ip,dl_dst=02:00:00:00:00:00/ff:ff:00:00:00:00,nw_dst=10.1.0.0/16 actions=output:{n2}"),
        "cookie=0xdef, priority=1 actions=drop".to_string(),
    ];
    for line in &expect {
        assert!(
            dumped.contains(line),
            "missing flow\n  {line}\nin dump-flows:\n{}",
            dumped.join("\n")
        );
    }
    assert_eq!(dumped.len(), 10, "{}", dumped.join("\n"));

    // The dataplane agrees: an IP packet from Pod 1 to Pod 2 is rewritten and delivered.
    let trace = block_in_place(|| {
        sb.trace(&format!("in_port={n1},dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:99,ip,nw_src=10.0.0.1,nw_dst=10.0.0.2"))
    })
    .expect("trace");
    assert!(trace.contains(&format!("output:{n2}")), "{trace}");
    assert!(
        trace.contains("set_field:02:00:00:00:00:02->eth_dst"),
        "{trace}"
    );
    // ...and a spoofed source is dropped (no table-0 flow matches it).
    let spoofed = block_in_place(|| {
        sb.trace(&format!(
            "in_port={n1},dl_src=02:00:00:00:00:01,ip,nw_src=10.9.9.9,nw_dst=10.0.0.2"
        ))
    })
    .expect("trace");
    assert!(spoofed.contains("Datapath actions: drop"), "{spoofed}");

    client
        .flow_mod(FlowMod::delete_by_cookie(COOKIE_POD))
        .await
        .expect("delete by cookie");
    let left = dump_flows(&sb, v);
    assert_eq!(left.len(), 2, "{}", left.join("\n"));
    assert!(
        left.iter().all(|f| f.starts_with("cookie=0xdef,")),
        "{}",
        left.join("\n")
    );
}

async fn barrier_reply_comes_after_the_flows_it_fences(v: Version) {
    let (sb, client, _rx) = connected(v).await;
    let flows: Vec<FlowMod> = (0..200u32)
        .map(|i| {
            FlowMod::add(0)
                .cookie(7, 0)
                .priority(100)
                .matching(OxmField::EthType(ETH_TYPE_IPV4))
                .matching(OxmField::Ipv4Dst {
                    addr: Ipv4Addr::from(0x0a02_0000 + i),
                    mask: None,
                })
                .apply(vec![])
        })
        .collect();
    // The batch goes out first, then an explicit barrier: when the barrier is answered, the
    // switch must hold every flow sent before it.
    let (batch, barrier) = tokio::join!(client.flow_mods(flows), client.barrier());
    barrier.expect("barrier");
    let count = dump_flows(&sb, v).len();
    batch.expect("batch");
    assert_eq!(count, 200, "flows present when the barrier reply arrived");
}

async fn invalid_flow_mod_comes_back_as_decoded_error(v: Version) {
    let (sb, client, _rx) = connected(v).await;
    let bad = FlowMod::add(1).priority(1).goto_table(0);
    match client.flow_mod(bad).await {
        Err(ClientError::Rejected(e)) => {
            assert_eq!(e.type_name(), "BAD_INSTRUCTION", "{e}");
            assert_eq!(e.code_name(), "BAD_TABLE_ID", "{e}");
        }
        other => panic!("expected a decoded ERROR, got {other:?}"),
    }
    // The connection carries on: a valid flow mod still applies.
    client
        .flow_mod(FlowMod::add(1).priority(1).goto_table(2))
        .await
        .expect("valid flow mod after an error");
    let flows = dump_flows(&sb, v);
    assert_eq!(
        flows,
        vec!["table=1, priority=1 actions=goto_table:2".to_string()]
    );
}

async fn port_status_arrives_after_a_freeze(v: Version) {
    let (sb, _client, mut rx) = connected(v).await;
    let frozen = sb.freeze_vswitchd().expect("SIGSTOP");
    block_in_place(|| {
        sb.vsctl(&[
            "--no-wait",
            "add-port",
            "br-int",
            "p9",
            "--",
            "set",
            "interface",
            "p9",
            "type=dummy",
        ])
    })
    .expect("add-port while frozen");
    assert_quiet(
        &mut rx,
        Duration::from_millis(500),
        "ovs-vswitchd is frozen",
    )
    .await;
    assert_eq!(
        block_in_place(|| sb.ofport("p9")).unwrap(),
        None,
        "no ofport while frozen"
    );
    frozen.thaw();
    let seq = port_statuses(&mut rx, "p9", 2).await;
    assert_eq!(seq[0].reason, PortReason::Add);
    assert_eq!(seq[1].reason, PortReason::Modify);
    assert!(seq[1].port.state.contains(PortState::LIVE));
    assert_eq!(seq[1].port.port_no, PortNo(ofport(&sb, "p9")));
}

async fn vswitchd_restart_gives_disconnected_then_connected(v: Version) {
    let (sb, client, mut rx) = connected(v).await;
    add_port(&sb, "p1");
    port_statuses(&mut rx, "p1", 2).await;
    block_in_place(|| sb.restart_vswitchd()).expect("restart");
    wait_for(&mut rx, PROMPT, "Disconnected", |ev| {
        matches!(ev, ClientEvent::Disconnected { .. }).then_some(())
    })
    .await;
    let (version, _) = wait_connected(&mut rx).await;
    assert_eq!(version, v);
    let ports = client.port_desc().await.expect("PORT_DESC after restart");
    let n = ofport(&sb, "p1");
    assert!(
        ports
            .iter()
            .any(|p| p.name == "p1" && p.port_no == PortNo(n)),
        "p1 (ofport {n}) missing from {ports:?}"
    );
    assert!(ports.iter().any(|p| p.port_no == PortNo::LOCAL));
}

// ---------------------------------------------------------------------------------------------
// Reading flows back, and atomic batches (bundles)
// ---------------------------------------------------------------------------------------------

const COOKIE_A: u64 = 0x00c0_0000_0000_0abc;
const COOKIE_B: u64 = 0x00c0_0000_0000_0def;

/// The engine's default flows for one Pod (`DefaultFlows::pod_flows` in crates/engine), built
/// here so this test does not depend on the engine: table 0 admits the Pod's IP and ARP
/// traffic (in_port, eth_src, source address) to table 1; table 1 delivers by IP (rewriting
/// eth_dst), by ARP target and by eth_dst.
fn default_pod_flows(port: u32, mac_addr: MacAddr, ip: Ipv4Addr, cookie: u64) -> Vec<FlowMod> {
    let port = PortNo(port);
    let admit = |eth_type, source| {
        FlowMod::add(0)
            .cookie(cookie, 0)
            .priority(200)
            .matching(OxmField::InPort(port))
            .matching(OxmField::EthSrc {
                addr: mac_addr,
                mask: None,
            })
            .matching(OxmField::EthType(eth_type))
            .matching(source)
            .goto_table(1)
    };
    vec![
        admit(
            ETH_TYPE_IPV4,
            OxmField::Ipv4Src {
                addr: ip,
                mask: None,
            },
        ),
        admit(
            ETH_TYPE_ARP,
            OxmField::ArpSpa {
                addr: ip,
                mask: None,
            },
        ),
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
                    addr: mac_addr,
                    mask: None,
                }),
                Action::output(port),
            ]),
        FlowMod::add(1)
            .cookie(cookie, 0)
            .priority(200)
            .matching(OxmField::EthType(ETH_TYPE_ARP))
            .matching(OxmField::ArpTpa {
                addr: ip,
                mask: None,
            })
            .apply(vec![Action::output(port)]),
        FlowMod::add(1)
            .cookie(cookie, 0)
            .priority(100)
            .matching(OxmField::EthDst {
                addr: mac_addr,
                mask: None,
            })
            .apply(vec![Action::output(port)]),
    ]
}

/// What `ovs-ofctl dump-flows` prints for `default_pod_flows`, in the same order.
fn default_pod_dump(port: u32, mac_addr: MacAddr, ip: Ipv4Addr, cookie: u64) -> Vec<String> {
    vec![
        format!("cookie={cookie:#x}, priority=200,ip,in_port={port},dl_src={mac_addr},nw_src={ip} actions=goto_table:1"),
        format!("cookie={cookie:#x}, priority=200,arp,in_port={port},dl_src={mac_addr},arp_spa={ip} actions=goto_table:1"),
        format!("cookie={cookie:#x}, table=1, priority=200,ip,nw_dst={ip} actions=set_field:{mac_addr}->eth_dst,output:{port}"),
        format!("cookie={cookie:#x}, table=1, priority=200,arp,arp_tpa={ip} actions=output:{port}"),
        format!("cookie={cookie:#x}, table=1, priority=100,dl_dst={mac_addr} actions=output:{port}"),
    ]
}

/// `ovs-ofctl -O OpenFlow15 --no-stats dump-flows br-int [filter]`, one line per flow.
fn ofctl_flows(sb: &Sandbox, filter: Option<&str>) -> Vec<String> {
    let mut args = vec!["-O", "OpenFlow15", "--no-stats", "dump-flows", sb.bridge()];
    args.extend(filter);
    let out = block_in_place(|| sb.ofctl(&args)).expect("ovs-ofctl dump-flows");
    out.lines()
        .map(str::trim)
        .filter(|l| l.contains("actions="))
        .map(str::to_string)
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Each wanted flow is reported exactly once and every entry is a wanted flow.
fn assert_same_flows(entries: &[FlowEntry], wanted: &[FlowMod]) {
    let listing = || {
        entries
            .iter()
            .map(|e| format!("  {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for fm in wanted {
        let n = entries.iter().filter(|e| e.matches_flow_mod(fm)).count();
        assert_eq!(n, 1, "{fm}\nmatched {n} of:\n{}", listing());
    }
    for e in entries {
        assert!(
            wanted.iter().any(|fm| e.matches_flow_mod(fm)),
            "unexpected {e}"
        );
    }
}

/// A sandbox with ports p1 and p2, a connected client of version `v`, and the default flows
/// of two Pods: A (cookie `COOKIE_A`) on p1 and B (cookie `COOKIE_B`) on p2. Returns also
/// A's flows and p1's and p2's numbers.
async fn two_pods(v: Version) -> (Sandbox, OfClient, Vec<FlowMod>, u32, u32) {
    let (sb, client, _rx) = connected(v).await;
    add_port(&sb, "p1");
    add_port(&sb, "p2");
    let (n1, n2) = (ofport(&sb, "p1"), ofport(&sb, "p2"));
    let pod_a = default_pod_flows(
        n1,
        mac("02:00:00:00:00:01"),
        Ipv4Addr::new(10, 0, 0, 1),
        COOKIE_A,
    );
    let pod_b = default_pod_flows(
        n2,
        mac("02:00:00:00:00:02"),
        Ipv4Addr::new(10, 0, 0, 2),
        COOKIE_B,
    );
    let mut all = pod_a.clone();
    all.extend(pod_b);
    client.flow_mods(all).await.expect("install both Pods");
    (sb, client, pod_a, n1, n2)
}

async fn flow_desc_by_cookie_returns_exactly_that_cookies_flows(v: Version) {
    let (sb, client, pod_a, n1, n2) = two_pods(v).await;
    let entries = client
        .flow_desc(FlowDescRequest::by_cookie(COOKIE_A, u64::MAX))
        .await
        .expect("flow desc");
    assert_eq!(entries.len(), 5, "{entries:#?}");
    assert!(entries.iter().all(|e| e.cookie == COOKIE_A));
    assert_same_flows(&entries, &pod_a);

    // ovs-ofctl, the independent reader, agrees on the count and the cookies.
    let ofctl = ofctl_flows(&sb, Some(&format!("cookie={COOKIE_A:#x}/-1")));
    assert_eq!(ofctl.len(), entries.len(), "{ofctl:#?}");
    assert!(ofctl
        .iter()
        .all(|l| l.starts_with(&format!("cookie={COOKIE_A:#x},"))));
    assert_eq!(
        sorted(ofctl),
        sorted(default_pod_dump(
            n1,
            mac("02:00:00:00:00:01"),
            Ipv4Addr::new(10, 0, 0, 1),
            COOKIE_A
        ))
    );

    // What OVS returns, field by field, for the table-0 IP flow: the order we sent (in_port,
    // eth_src, eth_type, ipv4_src) happens to be OVS's own, and nothing is added.
    let admit_ip = entries
        .iter()
        .find(|e| e.matches_flow_mod(&pod_a[0]))
        .unwrap();
    assert_eq!(admit_ip.matches, pod_a[0].matches);
    // The delivery flow by eth_dst comes back with no prerequisite added either.
    let by_mac = entries
        .iter()
        .find(|e| e.matches_flow_mod(&pod_a[4]))
        .unwrap();
    assert_eq!(by_mac.matches, pod_a[4].matches);

    // A mask on the cookie: 0x...a00/0xf00 selects A (0x...abc), not B (0x...def).
    let masked = client
        .flow_desc(FlowDescRequest::by_cookie(0xa00, 0xf00))
        .await
        .expect("masked flow desc");
    assert_same_flows(&masked, &pod_a);
    // One table only.
    let table1 = client
        .flow_desc(FlowDescRequest::by_cookie(COOKIE_A, u64::MAX).table(1))
        .await
        .expect("flow desc of table 1");
    assert_eq!(table1.len(), 3);
    assert!(table1.iter().all(|e| e.table_id == 1));
    // Everything: both Pods and the bridge's NORMAL flow.
    let all = client
        .flow_desc(FlowDescRequest::all())
        .await
        .expect("all flows");
    assert_eq!(all.len(), 11);

    // The same flows for another port, another match value or another action are not these.
    let other_port = default_pod_flows(
        n2,
        mac("02:00:00:00:00:01"),
        Ipv4Addr::new(10, 0, 0, 1),
        COOKIE_A,
    );
    let other_ip = default_pod_flows(
        n1,
        mac("02:00:00:00:00:01"),
        Ipv4Addr::new(10, 0, 0, 9),
        COOKIE_A,
    );
    let other_mac = default_pod_flows(
        n1,
        mac("02:00:00:00:00:09"),
        Ipv4Addr::new(10, 0, 0, 1),
        COOKIE_A,
    );
    for (what, flows) in [("port", other_port), ("ip", other_ip), ("mac", other_mac)] {
        // Only the flows that the change touches (the ARP flow has no MAC, the eth_dst flow no
        // address).
        for (fm, same) in flows.iter().zip(&pod_a).filter(|(fm, orig)| fm != orig) {
            assert!(
                !entries.iter().any(|e| e.matches_flow_mod(fm)),
                "another {what} matched: {fm} (was {same})"
            );
        }
    }
    let mut other_action = pod_a[2].clone();
    other_action.instructions = vec![Instruction::ApplyActions(vec![Action::output(PortNo(n1))])];
    assert!(!entries.iter().any(|e| e.matches_flow_mod(&other_action)));
}

/// One bundle deletes Pod A's flows and installs new ones (a new address and MAC): afterwards
/// the switch holds exactly the new ones, and Pod B's are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn bundle_replaces_a_cookies_flows_atomically_of15() {
    let (sb, client, _, n1, _) = two_pods(Version::Of15).await;
    let before_b = ofctl_flows(&sb, Some(&format!("cookie={COOKIE_B:#x}/-1")));
    let (new_mac, new_ip) = (mac("02:00:00:00:00:11"), Ipv4Addr::new(10, 0, 0, 11));
    let new_a = default_pod_flows(n1, new_mac, new_ip, COOKIE_A);
    let mut batch = vec![FlowMod::delete_by_cookie(COOKIE_A)];
    batch.extend(new_a.clone());
    client
        .flow_mods_atomic(batch)
        .await
        .expect("bundle committed");

    assert_eq!(
        sorted(ofctl_flows(&sb, Some(&format!("cookie={COOKIE_A:#x}/-1")))),
        sorted(default_pod_dump(n1, new_mac, new_ip, COOKIE_A))
    );
    assert_eq!(
        ofctl_flows(&sb, Some(&format!("cookie={COOKIE_B:#x}/-1"))),
        before_b
    );
    let entries = client
        .flow_desc(FlowDescRequest::by_cookie(COOKIE_A, u64::MAX))
        .await
        .expect("flow desc");
    assert_same_flows(&entries, &new_a);
}

/// A bundle whose last flow mod is invalid (goto_table to a lower table) fails with the decoded
/// error naming that flow mod, and the switch's flows stay exactly as they were: the delete
/// and the valid adds before it did not apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn bundle_with_an_invalid_flow_mod_changes_nothing_of15() {
    let (sb, client, _pod_a, n1, _) = two_pods(Version::Of15).await;
    let before = ofctl_flows(&sb, None);
    let mut batch = vec![FlowMod::delete_by_cookie(COOKIE_A)];
    batch.extend(default_pod_flows(
        n1,
        mac("02:00:00:00:00:11"),
        Ipv4Addr::new(10, 0, 0, 11),
        COOKIE_A,
    ));
    batch.push(
        FlowMod::add(1)
            .cookie(COOKIE_A, 0)
            .priority(1)
            .goto_table(0),
    );
    let invalid = batch.len() - 1;
    match client.flow_mods_atomic(batch).await {
        Err(ClientError::FlowModRejected { index, error }) => {
            assert_eq!(index, invalid);
            assert_eq!(error.type_name(), "BAD_INSTRUCTION", "{error}");
            assert_eq!(error.code_name(), "BAD_TABLE_ID", "{error}");
        }
        other => panic!("expected the invalid flow mod's error, got {other:?}"),
    }
    assert_eq!(ofctl_flows(&sb, None), before, "flows changed");
    // The connection carries on, and the next bundle works.
    client
        .flow_mods_atomic(vec![FlowMod::add(3).priority(1).apply(vec![])])
        .await
        .expect("a valid bundle after a failed one");
    assert_eq!(ofctl_flows(&sb, None).len(), before.len() + 1);
}

/// A flow mod that passes OVS's checks when added but fails at commit (CHECK_OVERLAP against
/// another flow of the same bundle): the whole bundle is rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn bundle_failing_at_commit_changes_nothing_of15() {
    let (sb, client, _pod_a, _, _) = two_pods(Version::Of15).await;
    let before = ofctl_flows(&sb, None);
    let batch = vec![
        FlowMod::delete_by_cookie(COOKIE_A),
        FlowMod::add(5)
            .priority(7)
            .matching(OxmField::EthType(ETH_TYPE_IPV4))
            .goto_table(6),
        FlowMod::add(5)
            .priority(7)
            .flags(FlowModFlags::CHECK_OVERLAP)
            .matching(OxmField::EthType(ETH_TYPE_IPV4))
            .matching(OxmField::Ipv4Dst {
                addr: Ipv4Addr::new(10, 0, 0, 1),
                mask: None,
            })
            .goto_table(6),
    ];
    match client.flow_mods_atomic(batch).await {
        Err(ClientError::FlowModRejected { index, error }) => {
            assert_eq!(index, 2);
            assert_eq!(error.to_string(), "FLOW_MOD_FAILED/OVERLAP");
        }
        other => panic!("expected the overlapping flow mod's error, got {other:?}"),
    }
    assert_eq!(ofctl_flows(&sb, None), before, "flows changed");
}

/// OpenFlow 1.3 has no bundles: `flow_mods_atomic` is one barrier-fenced batch there. It
/// applies a valid batch, and with an invalid flow mod it reports that one while the others
/// stay applied (not atomic, as documented).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn flow_mods_atomic_falls_back_to_a_plain_batch_of13() {
    let (sb, client, _pod_a, n1, _) = two_pods(Version::Of13).await;
    let (new_mac, new_ip) = (mac("02:00:00:00:00:11"), Ipv4Addr::new(10, 0, 0, 11));
    let mut batch = vec![FlowMod::delete_by_cookie(COOKIE_A)];
    batch.extend(default_pod_flows(n1, new_mac, new_ip, COOKIE_A));
    client.flow_mods_atomic(batch).await.expect("batch applied");
    assert_eq!(
        sorted(ofctl_flows(&sb, Some(&format!("cookie={COOKIE_A:#x}/-1")))),
        sorted(default_pod_dump(n1, new_mac, new_ip, COOKIE_A))
    );

    let batch = vec![
        FlowMod::delete_by_cookie(COOKIE_A),
        FlowMod::add(1)
            .cookie(COOKIE_A, 0)
            .priority(1)
            .goto_table(0),
    ];
    match client.flow_mods_atomic(batch).await {
        Err(ClientError::FlowModRejected { index: 1, error }) => {
            assert_eq!(error.code_name(), "BAD_TABLE_ID", "{error}");
        }
        other => panic!("expected flow mod #1 rejected, got {other:?}"),
    }
    assert!(
        ofctl_flows(&sb, Some(&format!("cookie={COOKIE_A:#x}/-1"))).is_empty(),
        "the delete before the rejected flow mod applied"
    );
}
