//! The sandbox's real-datapath mode with network namespaces, without podport: OVS's own
//! flows move real packets between two namespaces, and everything is gone after drop.
//! Ignored where namespaces or OVS are missing (or failing when `CI` is set).
#![cfg(target_os = "linux")]

use std::time::Duration;

use podport_ovs_sandbox::{dataplane_sandbox_for_test, unique_name, Datapath, Netns};

const BOUND: Duration = Duration::from_secs(30);

#[test]
#[cfg_attr(
    any(no_ovs, no_netns),
    ignore = "needs Open vSwitch, root, ip and ping (network namespaces)"
)]
fn internal_ports_moved_into_namespaces_carry_pings_and_everything_is_cleaned_up() {
    let sb = dataplane_sandbox_for_test();
    assert_eq!(sb.datapath(), Datapath::Netdev);
    let bridge = sb.bridge().to_owned();
    let dp = sb
        .vsctl(&["get", "bridge", &bridge, "datapath_type"])
        .unwrap();
    assert_eq!(dp.trim(), "netdev");
    // The datapath's devices live in the switch's own namespace, not on the host.
    let sw = sb
        .switch_netns()
        .expect("a netdev sandbox has a switch namespace");
    let sw_name = sw.name().to_owned();
    assert!(
        sw.link_exists(&bridge).unwrap(),
        "no device for bridge {bridge}"
    );
    assert!(sw.link_exists("ovs-netdev").unwrap());
    sb.ofctl(&["del-flows", &bridge]).unwrap();

    let names = [unique_name("tap"), unique_name("tap")];
    let mut pods = Vec::new();
    for (i, name) in names.iter().enumerate() {
        sb.vsctl(&[
            "add-port",
            &bridge,
            name,
            "--",
            "set",
            "interface",
            name,
            "type=internal",
        ])
        .unwrap();
        sw.wait_for_link(name, BOUND).unwrap();
        let ns = Netns::create().unwrap();
        ns.attach(
            sw,
            name,
            "eth0",
            &format!("02:00:00:00:00:0{}", i + 1),
            &format!("10.200.0.{}/24", i + 1),
        )
        .unwrap();
        assert!(
            !sw.link_exists(name).unwrap(),
            "{name} still in the switch's namespace"
        );
        pods.push(ns);
    }
    let (p1, p2) = (
        sb.ofport(&names[0]).unwrap().unwrap(),
        sb.ofport(&names[1]).unwrap().unwrap(),
    );
    // No flow yet: nothing passes.
    let out = pods[0].ping("10.200.0.2", 1).unwrap();
    assert!(!out.status.success(), "ping passed without flows");
    sb.ofctl(&[
        "add-flow",
        &bridge,
        &format!("in_port={p1},actions=output:{p2}"),
    ])
    .unwrap();
    sb.ofctl(&[
        "add-flow",
        &bridge,
        &format!("in_port={p2},actions=output:{p1}"),
    ])
    .unwrap();
    let out = pods[0].ping("10.200.0.2", 3).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let state = pods[0].neighbour_state("eth0", "10.200.0.2").unwrap();
    assert!(
        matches!(state.as_deref(), Some("REACHABLE" | "STALE" | "DELAY")),
        "{state:?}"
    );
    let run = pods[1]
        .start_ping("10.200.0.1", Duration::from_millis(20), Some(20))
        .unwrap();
    run.wait_received(10, BOUND).unwrap();
    let report = run.finish(BOUND).unwrap();
    assert_eq!((report.transmitted, report.lost()), (20, 0), "{report}");
    let stopped = pods[1]
        .start_ping("10.200.0.1", Duration::from_millis(20), None)
        .unwrap();
    stopped.wait_received(5, BOUND).unwrap();
    let report = stopped.stop().unwrap();
    assert!(report.received >= 5, "{report}");

    let mut ns_names: Vec<String> = pods.iter().map(|p| p.name().to_owned()).collect();
    ns_names.push(sw_name);
    drop(pods);
    drop(sb);
    let listed = podport_ovs_sandbox::host_ip(&["netns", "list"]).unwrap();
    for n in &ns_names {
        assert!(!listed.contains(n.as_str()), "{n} left behind: {listed}");
    }
}
