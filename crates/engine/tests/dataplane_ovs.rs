//! Real packets through podport's flows: the engine in-process on a sandbox with OVS's
//! userspace datapath (`datapath_type=netdev`, no NORMAL flow), Pods as network namespaces
//! attached in the Windows order (port created with a type OVS cannot open, then switched to
//! `internal`: the TAP device appears, the test moves it into the Pod's namespace as `eth0`
//! and gives it the PodSpec's MAC and address). Everything is judged by `ping`, the
//! namespaces' own counters and `ovs-ofctl`, never by the engine's view.
//!
//! Internal ports of the userspace datapath stay PORT_DOWN/LINK_DOWN once their TAP left
//! the switch's namespace, as Windows internal ports do (ovs-issues #351), so the engine
//! runs with Windows' `live-or-link-down` readiness.
#![cfg(target_os = "linux")]

use std::time::{Duration, SystemTime};

use crossbeam_channel::Receiver;
use podport_engine::core::CoreConfig;
use podport_engine::{Engine, PodEvent, PodSpec, Readiness};
use podport_ovs_sandbox::{dataplane_sandbox_for_test, unique_name, Netns, Sandbox, Veth};

mod support;
use support::{core_config, wait_ready, BOUND};

/// A Pod: its spec (interface name unique on the host) and its namespace.
struct Pod {
    spec: PodSpec,
    ns: Netns,
    port: u32,
}

impl Pod {
    fn ip(&self) -> String {
        addr(&self.spec)
    }
}

fn addr(spec: &PodSpec) -> String {
    spec.ips[0].split('/').next().unwrap().to_owned()
}

/// Pod `i` on 10.1.0.0/24; interface name unique on the host (the TAP lives there first).
fn pod_spec(i: u32) -> PodSpec {
    PodSpec {
        namespace: "default".into(),
        name: format!("pod-{i}"),
        container_id: format!("ctr-{i}"),
        ifname: unique_name("vnic"),
        ips: vec![format!("10.1.0.{i}/24")],
        mac: format!("02:00:00:00:00:{i:02x}").parse().unwrap(),
    }
}

/// A sandbox on the real datapath whose NORMAL flow is gone: only podport's flows forward.
fn bare_sandbox() -> Sandbox {
    let sb = dataplane_sandbox_for_test();
    sb.ofctl(&["del-flows", sb.bridge()]).unwrap();
    let left = sb.dump_flows("OpenFlow15").unwrap();
    assert!(left.is_empty(), "flows left after del-flows: {left:?}");
    sb
}

fn engine_config() -> CoreConfig {
    CoreConfig {
        readiness: Readiness::LiveOrLinkDown,
        ..core_config()
    }
}

fn start_engine(sb: &Sandbox, journal: &std::path::Path) -> Engine {
    Engine::start(support::config(sb, journal, engine_config())).unwrap()
}

/// A bare netdev sandbox, a journal directory and the engine on them, subscribed: what every
/// Windows-order test starts from (dropped in reverse: the engine before the sandbox).
fn rig() -> (Sandbox, tempfile::TempDir, Engine, Receiver<PodEvent>) {
    let sb = bare_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&sb, dir.path());
    let events = engine.subscribe();
    (sb, dir, engine, events)
}

/// The Windows order: the engine creates the port (type OVS cannot open) and switches it to
/// `internal`; the TAP appears on the host and goes into a new namespace with the spec's
/// MAC and address.
fn attach_windows_order(sb: &Sandbox, engine: &Engine, events: &Receiver<PodEvent>, i: u32) -> Pod {
    let spec = pod_spec(i);
    let e = engine.blocking();
    e.add_pod(spec.clone()).unwrap();
    e.host_interface_created(&spec.ifname).unwrap();
    let pod = into_namespace(sb, spec);
    let port = wait_ready(events, &pod.spec.ifname);
    Pod { port, ..pod }
}

/// The switch's namespace, where the TAPs appear.
fn switch(sb: &Sandbox) -> &Netns {
    sb.switch_netns()
        .expect("a netdev sandbox has a switch namespace")
}

/// Waits for the Pod's TAP in the switch's namespace and moves it into a new namespace as
/// `eth0`.
fn into_namespace(sb: &Sandbox, spec: PodSpec) -> Pod {
    switch(sb).wait_for_link(&spec.ifname, BOUND).unwrap();
    let ns = Netns::create().unwrap();
    ns.attach(
        switch(sb),
        &spec.ifname,
        "eth0",
        &spec.mac.to_string(),
        &spec.ips[0],
    )
    .unwrap();
    Pod { spec, ns, port: 0 }
}

/// `ping -c count -W 1` from `from` to `to`: (sent, received) from ping's summary.
fn ping(from: &Pod, to: &Pod, count: u32) -> (u32, u32, String) {
    let out = from.ns.ping(&to.ip(), count).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains(" packets transmitted, "))
        .unwrap_or_else(|| panic!("no ping summary: {text}"));
    let n: Vec<u32> = line
        .split(',')
        .take(2)
        .map(|p| p.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    (n[0], n[1], text)
}

fn assert_pings(from: &Pod, to: &Pod) {
    let (sent, got, text) = ping(from, to, 3);
    assert_eq!((sent, got), (3, 3), "{} -> {}:\n{text}", from.ip(), to.ip());
}

fn assert_no_ping(from: &Pod, to: &Pod) {
    let (sent, got, text) = ping(from, to, 3);
    assert_eq!((sent, got), (3, 0), "{} -> {}:\n{text}", from.ip(), to.ip());
}

/// The packet counter of the bridge's drop flow in `table` (priority 0, podport's bridge
/// cookie), from `ovs-ofctl dump-flows`.
fn drop_packets(sb: &Sandbox, table: u8) -> u64 {
    // Flow counters are pulled from the datapath by the revalidators: let them finish a round.
    sb.appctl(&["revalidator/wait"]).unwrap();
    let out = sb
        .ofctl(&[
            "-O",
            "OpenFlow15",
            "dump-flows",
            sb.bridge(),
            &format!("table={table},cookie=0xb0000000000001/-1"),
        ])
        .unwrap();
    let line = out
        .lines()
        .find(|l| l.contains("cookie=0xb0000000000001") && l.contains("actions=drop"))
        .unwrap_or_else(|| panic!("no drop flow in table {table}: {out}"));
    let rest = &line[line.find("n_packets=").unwrap() + "n_packets=".len()..];
    rest[..rest.find(',').unwrap()].parse().unwrap()
}

/// Every flow of the bridge with its counters: the whole forwarding state, for failure
/// messages.
fn all_flows(sb: &Sandbox) -> String {
    sb.ofctl(&["-O", "OpenFlow15", "dump-flows", sb.bridge()])
        .unwrap()
}

#[test]
#[cfg_attr(
    any(no_ovs, no_netns),
    ignore = "needs Open vSwitch, root, ip and ping (network namespaces)"
)]
fn two_ready_pods_ping_each_other_through_podports_flows_and_arp_resolves() {
    let (sb, _dir, engine, events) = rig();
    let [a, b] = [1, 2].map(|i| attach_windows_order(&sb, &engine, &events, i));
    assert_eq!(
        sb.vsctl(&["get", "interface", &a.spec.ifname, "type"])
            .unwrap()
            .trim(),
        "internal"
    );
    // The TAP left the switch's namespace for the Pod's.
    assert!(!switch(&sb).link_exists(&a.spec.ifname).unwrap());
    assert_pings(&a, &b);
    assert_pings(&b, &a);
    // ARP resolved both ways, to the PodSpec's MACs.
    for (from, to) in [(&a, &b), (&b, &a)] {
        let state = from.ns.neighbour_state("eth0", &to.ip()).unwrap();
        assert!(
            matches!(state.as_deref(), Some("REACHABLE" | "STALE" | "DELAY")),
            "{} has {state:?} for {}",
            from.ip(),
            to.ip()
        );
        let entry = from
            .ns
            .ip(&["neigh", "show", "to", &to.ip(), "dev", "eth0"])
            .unwrap();
        assert!(entry.contains(&to.spec.mac.to_string()), "{entry}");
    }
    // No NORMAL anywhere: podport's flows carried the packets, and their counters show it.
    let flows = all_flows(&sb);
    assert!(!flows.contains("NORMAL"), "{flows}");
    for pod in [&a, &b] {
        let delivered = sb
            .ofctl(&[
                "-O",
                "OpenFlow15",
                "dump-flows",
                sb.bridge(),
                &format!("table=1,ip,nw_dst={}", pod.ip()),
            ])
            .unwrap();
        assert!(
            delivered.contains(&format!("output:{}", pod.port))
                && !delivered.contains("n_packets=0,"),
            "no IP packet delivered to {} by its flow:\n{flows}",
            pod.ip()
        );
    }
    engine.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    any(no_ovs, no_netns),
    ignore = "needs Open vSwitch, root, ip and ping (network namespaces)"
)]
fn spoofed_source_ip_or_mac_never_reaches_the_other_pod() {
    let (sb, _dir, engine, events) = rig();
    let [a, b] = [1, 2].map(|i| attach_windows_order(&sb, &engine, &events, i));
    // Resolved and working first, so A keeps B's MAC and sends straight to it.
    assert_pings(&a, &b);

    let spoofs: [(&str, &dyn Fn(bool)); 2] = [
        ("source IP 10.1.0.99", &|spoof: bool| {
            let (own, spoofed) = ("10.1.0.1/24", "10.1.0.99/24");
            let (del, add) = if spoof {
                (own, spoofed)
            } else {
                (spoofed, own)
            };
            // Deleted first: deleting a primary address deletes its secondaries.
            a.ns.del_address("eth0", del).unwrap();
            a.ns.add_address("eth0", add).unwrap();
        }),
        ("source MAC 02:66:66:66:66:66", &|spoof: bool| {
            let mac = if spoof {
                "02:66:66:66:66:66".to_owned()
            } else {
                a.spec.mac.to_string()
            };
            a.ns.set_mac("eth0", &mac).unwrap();
        }),
    ];
    for (what, set) in spoofs {
        set(true);
        let dropped_before = drop_packets(&sb, 0);
        let rx_before = b.ns.rx_packets("eth0").unwrap();
        assert_no_ping(&a, &b);
        let rx_after = b.ns.rx_packets("eth0").unwrap();
        let dropped = drop_packets(&sb, 0) - dropped_before;
        eprintln!("spoofed {what}: 3 pings, {dropped} packets on table 0's drop flow, {} received by the target", rx_after - rx_before);
        assert_eq!(
            rx_after,
            rx_before,
            "spoofed {what}: the target received packets\n{}",
            all_flows(&sb)
        );
        // The IP spoof drops the 3 echo requests; the MAC change flushes A's neighbour
        // cache, so that spoof drops ARP requests (as many as A sends in that time).
        assert!(
            dropped >= 1,
            "spoofed {what}: table 0's drop flow counted {dropped} packets\n{}",
            all_flows(&sb)
        );
        // Not a broken Pod: with its own addresses back it reaches B again.
        set(false);
        assert_pings(&a, &b);
    }
    engine.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    any(no_ovs, no_netns),
    ignore = "needs Open vSwitch, root, ip and ping (network namespaces)"
)]
fn pods_attached_while_the_switch_is_frozen_ping_as_soon_as_they_are_ready() {
    let (sb, _dir, engine, events) = rig();
    let specs = [pod_spec(1), pod_spec(2)];
    let frozen = sb.freeze_vswitchd().unwrap();
    for spec in &specs {
        engine.blocking().add_pod(spec.clone()).unwrap();
        engine
            .blocking()
            .host_interface_created(&spec.ifname)
            .unwrap();
    }
    // The engine says so while the switch is frozen: "not ready yet" for both, no Ready.
    let mut not_ready = std::collections::BTreeSet::new();
    while not_ready.len() < specs.len() {
        match events.recv_timeout(BOUND) {
            Ok(PodEvent::NotReady { ifname, .. }) => {
                not_ready.insert(ifname);
            }
            Ok(PodEvent::Ready { ifname, .. }) => panic!("{ifname} ready while frozen"),
            Ok(_) => {}
            Err(_) => panic!("no NotReady within {BOUND:?} while frozen: {not_ready:?}"),
        }
    }
    for spec in &specs {
        assert!(
            !switch(&sb).link_exists(&spec.ifname).unwrap(),
            "{} exists while frozen",
            spec.ifname
        );
    }
    frozen.thaw();
    let [s1, s2] = specs;
    let mut a = into_namespace(&sb, s1);
    let mut b = into_namespace(&sb, s2);
    // Both become ready at about the same time, in either order.
    let mut waiting: std::collections::BTreeSet<String> =
        [a.spec.ifname.clone(), b.spec.ifname.clone()].into();
    while !waiting.is_empty() {
        match events.recv_timeout(BOUND) {
            Ok(PodEvent::Ready {
                ifname, port_no, ..
            }) if waiting.remove(&ifname) => {
                let pod = if ifname == a.spec.ifname {
                    &mut a
                } else {
                    &mut b
                };
                pod.port = port_no;
            }
            Ok(_) => {}
            Err(_) => panic!("not ready within {BOUND:?} after the thaw: {waiting:?}"),
        }
    }
    // The first ping after Ready gets every reply.
    assert_pings(&a, &b);
    assert_pings(&b, &a);
    engine.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    any(no_ovs, no_netns),
    ignore = "needs Open vSwitch, root, ip and ping (network namespaces)"
)]
fn deleting_a_pod_stops_its_traffic() {
    let (sb, _dir, engine, events) = rig();
    let [a, b] = [1, 2].map(|i| attach_windows_order(&sb, &engine, &events, i));
    assert_pings(&a, &b);
    engine.blocking().delete_pod(&b.spec.ifname).unwrap();
    loop {
        match events.recv_timeout(BOUND) {
            Ok(PodEvent::Removed { ifname, .. }) if ifname == b.spec.ifname => break,
            Ok(_) => {}
            Err(_) => panic!("{} not removed within {BOUND:?}", b.spec.ifname),
        }
    }
    let ports = sb.vsctl(&["list-ports", sb.bridge()]).unwrap();
    assert!(!ports.contains(&b.spec.ifname), "{ports}");
    assert!(
        !all_flows(&sb).contains(&format!("nw_dst={}", b.ip())),
        "{}",
        all_flows(&sb)
    );
    assert_no_ping(&a, &b);
    // A is untouched.
    let c = attach_windows_order(&sb, &engine, &events, 3);
    assert_pings(&a, &c);
    engine.shutdown().unwrap();
}

/// The reconnect delay the engine's switch connection reaches at most (the session's
/// default backoff cap).
const RECONNECT_MAX: Duration = Duration::from_secs(5);

#[test]
#[cfg_attr(
    any(no_ovs, no_netns),
    ignore = "needs Open vSwitch, root, ip and ping (network namespaces)"
)]
fn a_continuous_ping_recovers_within_the_reconnect_time_after_a_switch_restart() {
    // The Linux order with veth pairs: a restarted ovs-vswitchd opens a `system` port again
    // by name, where an `internal` port's TAP would be created anew on the host (the old
    // one, in the Pod's namespace, is no longer the switch's), so only a veth Pod can
    // recover from a switch restart on this datapath.
    let sb = bare_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let core = CoreConfig {
        attached_type: "system".into(),
        ..engine_config()
    };
    let engine = Engine::start(support::config(&sb, dir.path(), core)).unwrap();
    let events = engine.subscribe();
    let mut pods = Vec::new();
    let mut veths = Vec::new();
    for i in 1..=2 {
        let spec = pod_spec(i);
        let veth = Veth::create(switch(&sb), &spec.ifname, &unique_name("peer")).unwrap();
        let ns = Netns::create().unwrap();
        ns.attach(
            switch(&sb),
            veth.peer(),
            "eth0",
            &spec.mac.to_string(),
            &spec.ips[0],
        )
        .unwrap();
        engine.blocking().add_pod(spec.clone()).unwrap();
        engine
            .blocking()
            .host_interface_created(&spec.ifname)
            .unwrap();
        let port = wait_ready(&events, &spec.ifname);
        pods.push(Pod { spec, ns, port });
        veths.push(veth);
    }
    assert_pings(&pods[0], &pods[1]);

    let interval = Duration::from_millis(10);
    let run = pods[0]
        .ns
        .start_ping(&pods[1].ip(), interval, None)
        .unwrap();
    run.wait_received(100, BOUND).unwrap();
    let restart_at = SystemTime::now();
    sb.restart_vswitchd().unwrap();
    let restarted = restart_at.elapsed().unwrap();
    let back = SystemTime::now();
    let recovered = run.wait_reply_after(back, BOUND).unwrap_or_else(|e| {
        panic!(
            "no reply within {BOUND:?} of the switch restart: {e}\n{}",
            all_flows(&sb)
        )
    });
    let n = run.received();
    run.wait_received(n + 100, BOUND).unwrap();
    let report = run.stop().unwrap();
    eprintln!(
        "ovs-vswitchd restart under `ping -i {}`: {report}; the restart itself (SIGTERM to \
         configuration applied) took {:.0} ms, the first reply came {:.0} ms after it",
        interval.as_secs_f64(),
        restarted.as_secs_f64() * 1e3,
        recovered.as_secs_f64() * 1e3,
    );
    assert!(
        recovered <= RECONNECT_MAX + Duration::from_secs(1),
        "traffic came back {recovered:?} after the switch was up again, more than the \
         reconnect time {RECONNECT_MAX:?} and a second: {report}"
    );
    engine.shutdown().unwrap();
}
