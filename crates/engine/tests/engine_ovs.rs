//! The engine against a real OVS: flows checked with `ovs-ofctl dump-flows` and
//! `ofproto/trace`, ports with `ovs-vsctl`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use podport_engine::core::{CoreConfig, Strategy};
use podport_engine::Phase;
use podport_engine::{Engine, EngineConfig, PodEvent};
use podport_journal::{Event, Finding};
use podport_ovs_sandbox::{sandbox_for_test, Sandbox};

mod support;
use support::{core_config, ip, mac, spec, wait_ready, BOUND};

fn config(sb: &Sandbox, journal: &std::path::Path, core: CoreConfig) -> EngineConfig {
    let mut c = support::config(sb, journal, core);
    // No cookie generation: the flows below are checked with their literal cookies.
    c.cookie_generation = Some(0);
    c
}

/// Waits until every name in `names` was Ready (in any order).
fn wait_all_ready(events: &Receiver<PodEvent>, names: &[String]) {
    let mut missing: BTreeSet<&String> = names.iter().collect();
    let deadline = Instant::now() + BOUND;
    while !missing.is_empty() {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(PodEvent::Ready { ifname, .. }) => {
                missing.remove(&ifname);
            }
            Ok(_) => {}
            Err(_) => panic!("not ready within {BOUND:?}: {missing:?}"),
        }
    }
}

fn ofport(sb: &Sandbox, name: &str) -> u32 {
    let n = sb.wait_for_ofport(name, BOUND).unwrap();
    u32::try_from(n).unwrap_or_else(|_| panic!("{name} has ofport {n}"))
}

fn flows(sb: &Sandbox) -> Vec<String> {
    sb.dump_flows("OpenFlow15").unwrap()
}

fn flows_of(sb: &Sandbox, cookie_hex: &str) -> Vec<String> {
    flows(sb)
        .into_iter()
        .filter(|f| f.starts_with(&format!("cookie={cookie_hex},")))
        .collect()
}

fn attach(engine: &Engine, events: &Receiver<PodEvent>, i: u32) -> u32 {
    let e = engine.blocking();
    e.add_pod(spec(i)).unwrap();
    e.host_interface_created(&format!("vnic-{i}")).unwrap();
    wait_ready(events, &format!("vnic-{i}"))
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn one_pod_gets_exactly_the_specified_flows() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(&sb, dir.path(), core_config())).unwrap();
    let events = engine.subscribe();
    let n = attach(&engine, &events, 1);
    assert_eq!(n, ofport(&sb, "vnic-1"), "ready on the number OVSDB shows");
    assert_eq!(
        sb.vsctl(&["get", "interface", "vnic-1", "type"])
            .unwrap()
            .trim(),
        "internal"
    );
    let (ip, mac) = (ip(1), mac(1));
    let mut want: Vec<String> = vec![
        format!("cookie=0xa0000000000001, priority=200,ip,in_port={n},dl_src={mac},nw_src={ip} actions=goto_table:1"),
        format!("cookie=0xa0000000000001, priority=200,arp,in_port={n},dl_src={mac},arp_spa={ip} actions=goto_table:1"),
        format!("cookie=0xb0000000000001, priority=0 actions=drop"),
        format!("cookie=0xa0000000000001, table=1, priority=200,ip,nw_dst={ip} actions=set_field:{mac}->eth_dst,output:{n}"),
        format!("cookie=0xa0000000000001, table=1, priority=200,arp,arp_tpa={ip} actions=output:{n}"),
        format!("cookie=0xa0000000000001, table=1, priority=100,dl_dst={mac} actions=output:{n}"),
        format!("cookie=0xb0000000000001, table=1, priority=0 actions=drop"),
    ];
    let mut got = flows(&sb);
    want.sort();
    got.sort();
    assert_eq!(got, want);
    // The journal tells the same story.
    let (_, state) = engine.journal().state().unwrap();
    let p = &state.ports["vnic-1"];
    assert_eq!((p.port_no, state.phase_of(p)), (Some(n), Phase::Ready));
    assert_eq!(p.flows.map(|f| f.count), Some(5));
    let metrics = engine.metrics_text();
    assert!(metrics.contains("podport_pods_ready 1"), "{metrics}");
    engine.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn two_pods_reach_each_other_and_spoofing_is_dropped() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(&sb, dir.path(), core_config())).unwrap();
    let events = engine.subscribe();
    let a = attach(&engine, &events, 1);
    let b = attach(&engine, &events, 2);
    let trace = sb
        .trace(&format!(
            "in_port={a},dl_src={},dl_dst=02:aa:aa:aa:aa:aa,ip,nw_src={},nw_dst={}",
            mac(1),
            ip(1),
            ip(2)
        ))
        .unwrap();
    assert!(trace.contains(&format!("output:{b}")), "{trace}");
    assert!(
        trace.contains(&format!("set_field:{}->eth_dst", mac(2))),
        "{trace}"
    );
    let spoofed = sb
        .trace(&format!(
            "in_port={a},dl_src={},ip,nw_src=10.9.9.9,nw_dst={}",
            mac(1),
            ip(2)
        ))
        .unwrap();
    assert!(spoofed.contains("Datapath actions: drop"), "{spoofed}");
    let wrong_mac = sb
        .trace(&format!(
            "in_port={a},dl_src=02:66:66:66:66:66,ip,nw_src={},nw_dst={}",
            ip(1),
            ip(2)
        ))
        .unwrap();
    assert!(wrong_mac.contains("Datapath actions: drop"), "{wrong_mac}");
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_stalled_switch_gives_not_ready_then_ready_while_the_legacy_wait_fails() {
    let sb = sandbox_for_test();
    // A second bridge for the legacy engine, so the two do not share flows.
    sb.add_bridge("br-legacy").unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let engine = Engine::start(config(&sb, d1.path(), core_config())).unwrap();
    let mut legacy_cfg = config(
        &sb,
        d2.path(),
        CoreConfig {
            strategy: Strategy::OvsdbWait {
                timeout: Duration::from_secs(5),
                retry_every: Duration::from_secs(5),
            },
            ..core_config()
        },
    );
    legacy_cfg.bridge = "br-legacy".into();
    legacy_cfg.openflow = sb.openflow_endpoint_of("br-legacy").parse().unwrap();
    let legacy = Engine::start(legacy_cfg).unwrap();
    let (ev, lev) = (engine.subscribe(), legacy.subscribe());
    engine.blocking().add_pod(spec(1)).unwrap();
    legacy.blocking().add_pod(spec(2)).unwrap();
    // Both ports exist and are waiting for their vNIC.
    for (e, name) in [(&engine, "vnic-1"), (&legacy, "vnic-2")] {
        let deadline = Instant::now() + BOUND;
        while e
            .blocking()
            .status()
            .unwrap()
            .iter()
            .any(|p| p.ifname == name && p.phase == Phase::Creating)
        {
            assert!(Instant::now() < deadline, "{name} never created");
            std::thread::yield_now();
        }
    }
    let frozen = sb.freeze_vswitchd().unwrap();
    let frozen_at = Instant::now();
    engine.blocking().host_interface_created("vnic-1").unwrap();
    legacy.blocking().host_interface_created("vnic-2").unwrap();
    // While frozen: "not ready yet" events, no Ready, and the legacy wait times out.
    let mut not_ready = 0;
    let mut legacy_failed = None;
    while frozen_at.elapsed() < Duration::from_secs(8) {
        if let Ok(e) = ev.recv_timeout(Duration::from_millis(50)) {
            match e {
                PodEvent::NotReady { .. } => not_ready += 1,
                PodEvent::Ready { .. } => panic!("ready while the switch is frozen"),
                _ => {}
            }
        }
        while let Ok(e) = lev.try_recv() {
            if let PodEvent::Failed { error, .. } = e {
                legacy_failed.get_or_insert((frozen_at.elapsed(), error));
            }
        }
    }
    frozen.thaw();
    assert!(not_ready >= 5, "only {not_ready} not-ready events in 8 s");
    let (after, error) = legacy_failed.expect("the legacy wait did not fail while frozen");
    assert!(error.contains("timed out"), "{error}");
    assert!(after >= Duration::from_secs(5), "failed after {after:?}");
    wait_ready(&ev, "vnic-1");
    wait_ready(&lev, "vnic-2");
    // Ready on the numbers the switch holds now (the type change may add a transient step).
    let deadline = Instant::now() + BOUND;
    for (e, name) in [(&engine, "vnic-1"), (&legacy, "vnic-2")] {
        loop {
            let st = e.blocking().status().unwrap();
            if st[0].ready && st[0].port_no == Some(ofport(&sb, name)) {
                break;
            }
            assert!(Instant::now() < deadline, "{name}: {st:?}");
            std::thread::yield_now();
        }
    }
    let st = legacy.blocking().status().unwrap();
    assert!(st[0].attach_failures >= 1);
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn deleting_a_pod_removes_its_flows_and_port() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(&sb, dir.path(), core_config())).unwrap();
    let events = engine.subscribe();
    attach(&engine, &events, 1);
    attach(&engine, &events, 2);
    engine.blocking().delete_pod("vnic-1").unwrap();
    let deadline = Instant::now() + BOUND;
    loop {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(PodEvent::Removed { ifname, .. }) if ifname == "vnic-1" => break,
            Ok(_) => {}
            Err(_) => panic!("no Removed event"),
        }
    }
    assert!(
        flows_of(&sb, "0xa0000000000001").is_empty(),
        "{:#?}",
        flows(&sb)
    );
    assert_eq!(flows_of(&sb, "0xa0000000000002").len(), 5);
    let ports = sb.vsctl(&["list-ports", "br-int"]).unwrap();
    assert_eq!(ports.trim(), "vnic-2");
    assert!(engine
        .blocking()
        .status()
        .unwrap()
        .iter()
        .all(|p| p.ifname != "vnic-1"));
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn after_a_vswitchd_restart_every_ready_pod_has_its_flows_again() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(&sb, dir.path(), core_config())).unwrap();
    let events = engine.subscribe();
    for i in 1..=4 {
        attach(&engine, &events, i);
    }
    let before = flows(&sb).len();
    sb.restart_vswitchd().unwrap();
    let names: Vec<String> = (1..=4).map(|i| format!("vnic-{i}")).collect();
    wait_all_ready(&events, &names);
    for p in engine.blocking().status().unwrap() {
        assert_eq!(p.port_no, Some(ofport(&sb, &p.ifname)), "{p:?}");
    }
    assert_eq!(flows(&sb).len(), before, "{:#?}", flows(&sb));
    for i in 1..=4 {
        assert_eq!(flows_of(&sb, &format!("0xa000000000000{i}")).len(), 5);
    }
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn an_engine_restart_rebuilds_ready_pods_from_the_journal() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::start(config(&sb, dir.path(), core_config())).unwrap();
        let events = engine.subscribe();
        for i in 1..=3 {
            attach(&engine, &events, i);
        }
        engine.shutdown().unwrap();
    }
    let flows_before: BTreeSet<String> = flows(&sb).into_iter().collect();
    // While the engine is down, vnic-3 is deleted from OVS by someone else.
    sb.del_port("vnic-3").unwrap();
    let (engine, events) =
        Engine::start_subscribed(config(&sb, dir.path(), core_config())).unwrap();
    let records = engine
        .journal()
        .subscribe(engine.journal().recovered().last_seq + 1)
        .unwrap();
    // Wait for the verdicts: vnic-3 removed, vnic-1 and vnic-2's flows checked on the switch.
    let mut checked = BTreeSet::new();
    let mut removed = Vec::new();
    let mut ready_again = Vec::new();
    let deadline = Instant::now() + BOUND;
    while checked.len() < 2 || removed.is_empty() {
        while let Ok(ev) = events.try_recv() {
            match ev {
                PodEvent::Removed { ifname, reason } => removed.push((ifname, reason)),
                PodEvent::Ready { ifname, .. } => ready_again.push(ifname),
                _ => {}
            }
        }
        match records.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => {
                if let Event::FlowsInstalled { ifname, .. } = r.event {
                    checked.insert(ifname);
                }
            }
            Err(_) if Instant::now() > deadline => {
                panic!("after the restart: checked {checked:?}, removed {removed:?}")
            }
            Err(_) => {}
        }
    }
    assert_eq!(
        checked,
        BTreeSet::from(["vnic-1".to_string(), "vnic-2".to_string()])
    );
    assert_eq!(removed[0].0, "vnic-3");
    // Ready before the restart, ready after it: no second Ready.
    assert!(ready_again.is_empty(), "{ready_again:?}");
    for p in engine.blocking().status().unwrap() {
        assert_eq!(p.phase, Phase::Ready, "{p:?}");
    }
    // Same flows, no duplicates; vnic-3's went with its port.
    let after: Vec<String> = flows(&sb);
    assert!(
        !after.iter().any(|f| f.contains("0xa0000000000003")),
        "{after:#?}"
    );
    let unique: BTreeSet<String> = after.iter().cloned().collect();
    assert_eq!(after.len(), unique.len(), "duplicate flows: {after:#?}");
    for f in flows_before
        .iter()
        .filter(|f| !f.contains("0xa0000000000003"))
    {
        assert!(unique.contains(f), "missing after restart: {f}");
    }
    // No PortStatus was needed: since the restart the journal holds none for these ports,
    // and the reconciliation's findings are there.
    let since = engine.journal().recovered().last_seq;
    let records = engine.journal().subscribe(since + 1).unwrap();
    let (_, state) = engine.journal().state().unwrap(); // orders after the history is sent
    assert!(state.ports.contains_key("vnic-1") && !state.ports.contains_key("vnic-3"));
    let events: Vec<Event> = records.try_iter().map(|r| r.event).collect();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::PortStatusReceived { .. })),
        "{events:#?}"
    );
    for (ifname, present) in [("vnic-1", true), ("vnic-2", true), ("vnic-3", false)] {
        assert!(
            events.iter().any(|e| match e {
                Event::Reconciled { ifname: i, finding } if i == ifname => {
                    if present {
                        matches!(finding, Finding::Present { .. })
                    } else {
                        *finding == Finding::Vanished
                    }
                }
                _ => false,
            }),
            "no Reconciled {ifname} (present: {present}) in {events:#?}"
        );
    }
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn two_hundred_pods_added_concurrently_all_become_ready() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(&sb, dir.path(), core_config())).unwrap();
    let events = engine.subscribe();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let engine = &engine;
            s.spawn(move || {
                for i in (t * 50 + 1)..=(t * 50 + 50) {
                    engine.blocking().add_pod(spec(i)).unwrap();
                    engine
                        .blocking()
                        .host_interface_created(&format!("vnic-{i}"))
                        .unwrap();
                }
            });
        }
    });
    let mut ready = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready.len() < 200 {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(PodEvent::Ready { ifname, .. }) => {
                ready.insert(ifname);
            }
            Ok(_) => {}
            Err(_) => {
                let stuck: Vec<_> = engine
                    .blocking()
                    .status()
                    .unwrap()
                    .into_iter()
                    .filter(|p| !p.ready)
                    .collect();
                panic!(
                    "only {} of 200 ready; not ready: {stuck:#?}\n{}",
                    ready.len(),
                    sb.log_tail(30)
                )
            }
        }
    }
    let st = engine.blocking().status().unwrap();
    assert_eq!(st.iter().filter(|p| p.ready).count(), 200);
    // Each Pod's flows: 5, plus the bridge's 2.
    assert_eq!(flows(&sb).len(), 200 * 5 + 2);
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_vswitchd_restart_while_ports_are_added_ends_with_every_pod_on_its_current_number() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(&sb, dir.path(), core_config())).unwrap();
    let events = engine.subscribe();
    for i in 1..=4 {
        attach(&engine, &events, i);
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 5..=12 {
                engine.blocking().add_pod(spec(i)).unwrap();
                engine
                    .blocking()
                    .host_interface_created(&format!("vnic-{i}"))
                    .unwrap();
            }
        });
        sb.restart_vswitchd().unwrap();
    });
    // Every Pod ends ready on the number the switch reports now.
    let deadline = Instant::now() + BOUND;
    loop {
        let st = engine.blocking().status().unwrap();
        let settled = st.len() == 12
            && st
                .iter()
                .all(|p| p.ready && p.port_no == Some(ofport(&sb, &p.ifname)));
        if settled {
            break;
        }
        assert!(Instant::now() < deadline, "not settled: {st:#?}");
        let _ = events.recv_timeout(Duration::from_millis(100));
    }
    for (a, b) in [(1u32, 12u32), (12, 5), (7, 3)] {
        let (pa, pb) = (
            ofport(&sb, &format!("vnic-{a}")),
            ofport(&sb, &format!("vnic-{b}")),
        );
        let trace = sb
            .trace(&format!(
                "in_port={pa},dl_src={},ip,nw_src={},nw_dst={}",
                mac(a),
                ip(a),
                ip(b)
            ))
            .unwrap();
        assert!(
            trace.contains(&format!("output:{pb}")),
            "{a} -> {b}: {trace}"
        );
    }
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn the_type_change_sequence_of_a_port_that_already_had_a_number_ends_ready_on_it() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    // An empty initial type opens a dummy device at once here: the port has a number before
    // the attach, and the type change replaces it (DELETE, ADD, MODIFY with the same number).
    let core = CoreConfig {
        initial_type: String::new(),
        ..core_config()
    };
    let engine = Engine::start(config(&sb, dir.path(), core)).unwrap();
    let events = engine.subscribe();
    engine.blocking().add_pod(spec(1)).unwrap();
    let deadline = Instant::now() + BOUND;
    while engine.blocking().status().unwrap()[0].phase == Phase::Creating {
        assert!(Instant::now() < deadline, "vnic-1 never created");
        let _ = events.recv_timeout(Duration::from_millis(20));
    }
    let before = ofport(&sb, "vnic-1");
    let from = engine.journal().state().unwrap().0;
    engine.blocking().host_interface_created("vnic-1").unwrap();
    wait_ready(&events, "vnic-1");
    // Settled on the number the switch holds, with the three messages journaled.
    let deadline = Instant::now() + BOUND;
    let seen = loop {
        let records = engine.journal().subscribe(from + 1).unwrap();
        let _ = engine.journal().state().unwrap();
        let seen: Vec<(String, u32)> = records
            .try_iter()
            .filter_map(|r| match r.event {
                Event::PortStatusReceived { reason, port } if port.name == "vnic-1" => {
                    Some((reason.label(), port.port_no))
                }
                _ => None,
            })
            .collect();
        let st = engine.blocking().status().unwrap();
        if seen.len() >= 3 && st[0].ready {
            break seen;
        }
        assert!(Instant::now() < deadline, "{seen:?} {st:?}");
        let _ = events.recv_timeout(Duration::from_millis(50));
    };
    let reasons: Vec<&str> = seen.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(&reasons[..3], ["DELETE", "ADD", "MODIFY"]);
    assert!(seen.iter().all(|(_, n)| *n == before), "{seen:?}");
    let st = engine.blocking().status().unwrap();
    assert_eq!(st[0].port_no, Some(ofport(&sb, "vnic-1")));
    assert_eq!(st[0].port_no, Some(before));
    assert!(flows_of(&sb, "0xa0000000000001")
        .iter()
        .any(|f| f.contains(&format!("in_port={before},"))));
}
