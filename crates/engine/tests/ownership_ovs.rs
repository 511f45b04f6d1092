//! Only what is podport's is touched, and a Pod whose port podport made already is adopted:
//! against a real OVS, judged with `ovs-vsctl` and `ovs-ofctl`.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use podport_engine::{AddPodError, Engine, EngineError, Phase, PodEvent, PodSpec};
use podport_ovs_sandbox::{sandbox_for_test, Sandbox};

mod support;
use support::{config, core_config, wait_ready, BOUND};

fn spec(ifname: &str, container: &str) -> PodSpec {
    PodSpec {
        namespace: "default".into(),
        name: format!("pod-{ifname}"),
        container_id: container.into(),
        ifname: ifname.into(),
        ips: vec!["10.1.0.7/16".into()],
        mac: "02:00:00:00:00:07".parse().unwrap(),
    }
}

fn vsctl(sb: &Sandbox, args: &[&str]) -> String {
    sb.vsctl(args).unwrap().trim().to_string()
}

fn pod_flows(sb: &Sandbox) -> Vec<String> {
    sb.dump_flows("OpenFlow15")
        .unwrap()
        .into_iter()
        .filter(|f| f.starts_with("cookie=0xa0"))
        .collect()
}

/// Starts an engine and makes a Pod `vnic-1` ready: OVSDB's and the switch's views are then
/// known to the engine.
fn engine_with_a_ready_pod(
    sb: &Sandbox,
    journal: &std::path::Path,
) -> (Engine, Receiver<PodEvent>) {
    let (engine, events) = Engine::start_subscribed(config(sb, journal, core_config())).unwrap();
    engine.blocking().add_pod(spec("vnic-1", "ctr-1")).unwrap();
    engine.blocking().host_interface_created("vnic-1").unwrap();
    wait_ready(&events, "vnic-1");
    (engine, events)
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_name_that_is_another_ports_is_refused_at_add_and_never_deleted() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    vsctl(
        &sb,
        &[
            "add-port",
            sb.bridge(),
            "gw0",
            "--",
            "set",
            "interface",
            "gw0",
            "type=internal",
        ],
    );
    let (engine, _events) = engine_with_a_ready_pod(&sb, dir.path());
    let bridge = sb.bridge().to_string();
    for name in ["gw0", bridge.as_str()] {
        match engine.blocking().add_pod(spec(name, "ctr-9")) {
            Err(EngineError::AddPod(e @ AddPodError::NotOurs { .. })) => {
                assert!(e.to_string().contains("did not create"), "{e}");
            }
            other => panic!("add of {name}: {other:?}"),
        }
        // A DEL of that name (the runtime cleaning up the refused add) deletes nothing.
        engine.blocking().delete_pod(name).unwrap();
        engine.blocking().delete_pod_of(name, "ctr-9").unwrap();
    }
    engine.shutdown().unwrap();
    let ports = vsctl(&sb, &["list-ports", sb.bridge()]);
    assert_eq!(ports, "gw0\nvnic-1", "{ports}");
    assert_eq!(vsctl(&sb, &["get", "interface", "gw0", "type"]), "internal");
    assert_eq!(vsctl(&sb, &["list-br"]), sb.bridge());
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_delete_for_another_container_leaves_the_pod_alone() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let (engine, _events) = engine_with_a_ready_pod(&sb, dir.path());
    let flows = pod_flows(&sb);
    assert_eq!(flows.len(), 5, "{flows:#?}");
    // The runtime's DEL for an older sandbox that had the same interface name.
    engine
        .blocking()
        .delete_pod_of("vnic-1", "ctr-old")
        .unwrap();
    // A second add of that name for the new container is refused, the first stays.
    assert!(matches!(
        engine.blocking().add_pod(spec("vnic-1", "ctr-new")),
        Err(EngineError::AddPod(AddPodError::AlreadyTracked { .. }))
    ));
    let st = engine.blocking().status().unwrap();
    assert_eq!(st[0].phase, Phase::Ready, "{st:#?}");
    assert_eq!(pod_flows(&sb), flows);
    assert_eq!(vsctl(&sb, &["list-ports", sb.bridge()]), "vnic-1");
    // Its own container's DEL does delete it.
    engine.blocking().delete_pod_of("vnic-1", "ctr-1").unwrap();
    let deadline = Instant::now() + BOUND;
    while !vsctl(&sb, &["list-ports", sb.bridge()]).is_empty() || !pod_flows(&sb).is_empty() {
        assert!(Instant::now() < deadline, "vnic-1 not deleted");
        std::thread::sleep(Duration::from_millis(20));
    }
    engine.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_pod_whose_port_podport_made_already_is_adopted_and_becomes_ready() {
    let sb = sandbox_for_test();
    let first = tempfile::tempdir().unwrap();
    let (engine, _events) = engine_with_a_ready_pod(&sb, first.path());
    let n = engine.blocking().status().unwrap()[0].port_no.unwrap();
    engine.shutdown().unwrap();
    // The journal is lost; the agent starts on a new one and the runtime adds the Pod again.
    let second = tempfile::tempdir().unwrap();
    let (engine, events) =
        Engine::start_subscribed(config(&sb, second.path(), core_config())).unwrap();
    // The switch's port list is taken before the add: it listed the port while it was not
    // tracked, and no PortStatus will announce it again.
    let records = engine.journal().subscribe(1).unwrap();
    let deadline = Instant::now() + BOUND;
    loop {
        let r = records
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no PortDescSynced in time");
        if matches!(r.event, podport_journal::Event::PortDescSynced { .. }) {
            break;
        }
    }
    engine.blocking().add_pod(spec("vnic-1", "ctr-1")).unwrap();
    engine.blocking().host_interface_created("vnic-1").unwrap();
    assert_eq!(wait_ready(&events, "vnic-1"), n, "adopted on its number");
    assert_eq!(
        vsctl(&sb, &["list-ports", sb.bridge()]),
        "vnic-1",
        "no second port"
    );
    let flows = pod_flows(&sb);
    assert_eq!(flows.len(), 5, "{flows:#?}");
    assert!(
        flows
            .iter()
            .all(|f| !f.contains("in_port=") || f.contains(&format!("in_port={n}"))),
        "{flows:#?}"
    );
    engine.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_new_journal_never_reuses_a_cookie_of_the_lost_one() {
    let sb = sandbox_for_test();
    let first = tempfile::tempdir().unwrap();
    let (engine, _events) = engine_with_a_ready_pod(&sb, first.path());
    let old = pod_flows(&sb);
    assert_eq!(old.len(), 5, "{old:#?}");
    engine.shutdown().unwrap();
    let old_cookie = old[0].split(',').next().unwrap().to_string();
    // The journal is lost: a new agent adds other Pods. vnic-1 still runs; the new agent
    // adopts it from OVSDB (its flows are taken over in place) and hands the newcomers
    // cookies of its own generation: none is the lost journal's.
    let second = tempfile::tempdir().unwrap();
    let (engine, events) =
        Engine::start_subscribed(config(&sb, second.path(), core_config())).unwrap();
    for i in 2..=4 {
        let mut s = spec(&format!("vnic-{i}"), &format!("ctr-{i}"));
        s.ips = vec![format!("10.1.0.{}/16", 10 + i)];
        s.mac = format!("02:00:00:00:01:0{i}").parse().unwrap();
        engine.blocking().add_pod(s).unwrap();
        engine
            .blocking()
            .host_interface_created(&format!("vnic-{i}"))
            .unwrap();
        wait_ready(&events, &format!("vnic-{i}"));
    }
    // vnic-1's flows are all there (same matches and actions, whatever their cookie now).
    let strip = |f: &String| {
        f.split_once(", ")
            .map(|(_, rest)| rest.to_string())
            .unwrap()
    };
    let now = pod_flows(&sb);
    let now_rules: std::collections::BTreeSet<String> = now.iter().map(strip).collect();
    for f in &old {
        assert!(
            now_rules.contains(&strip(f)),
            "the lost journal's Pod lost {f}: {now:#?}"
        );
    }
    assert_eq!(now.len(), 5 * 4, "{now:#?}");
    let cookies: std::collections::BTreeSet<&str> =
        now.iter().map(|f| f.split(',').next().unwrap()).collect();
    assert_eq!(cookies.len(), 4, "four Pods, four cookies: {cookies:?}");
    // No newcomer got the lost journal's cookie.
    for i in 2..=4 {
        let st = engine.blocking().status().unwrap();
        let p = st.iter().find(|p| p.ifname == format!("vnic-{i}")).unwrap();
        assert_ne!(format!("cookie={:#x}", p.cookie), old_cookie, "vnic-{i}");
    }
    engine.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_journal_that_cannot_be_read_is_moved_aside_and_pods_are_rebuilt_from_ovs() {
    let sb = sandbox_for_test();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("journal");
    let (engine, events) = engine_with_a_ready_pod(&sb, &dir);
    let mut s2 = spec("vnic-2", "ctr-2");
    s2.ips = vec!["10.1.0.8/16".into()];
    s2.mac = "02:00:00:00:00:08".parse().unwrap();
    engine.blocking().add_pod(s2).unwrap();
    engine.blocking().host_interface_created("vnic-2").unwrap();
    wait_ready(&events, "vnic-2");
    let before: std::collections::BTreeMap<String, Option<u32>> = engine
        .blocking()
        .status()
        .unwrap()
        .into_iter()
        .map(|p| (p.ifname, p.port_no))
        .collect();
    engine.shutdown().unwrap();
    // Damage: sled's log emptied. sled opens it as an empty store; the high-water mark says
    // records were written, so replay reports them missing.
    std::fs::File::create(dir.join("db")).unwrap();

    let (engine, events) = Engine::start_subscribed(config(&sb, &dir, core_config())).unwrap();
    let aside: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("journal.damaged-"))
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the damaged journal is kept aside: {aside:?}"
    );
    assert!(
        engine
            .metrics_text()
            .contains("podport_journal_rebuilds_total 1"),
        "{}",
        engine.metrics_text()
    );
    // Every Pod podport made on the bridge is tracked again and ready, on its number.
    let deadline = Instant::now() + BOUND;
    let mut ready = std::collections::BTreeSet::new();
    while ready.len() < 2 {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(PodEvent::Ready { ifname, .. }) => {
                ready.insert(ifname);
            }
            Ok(_) => {}
            Err(_) => {
                let recs: Vec<String> = engine
                    .journal()
                    .subscribe(1)
                    .unwrap()
                    .try_iter()
                    .map(|r| format!("{:?}", r.event))
                    .collect();
                panic!(
                    "not rebuilt: ready {ready:?}; status {:#?}; journal {recs:#?}",
                    engine.blocking().status()
                )
            }
        }
    }
    let after: std::collections::BTreeMap<String, Option<u32>> = engine
        .blocking()
        .status()
        .unwrap()
        .into_iter()
        .map(|p| (p.ifname, p.port_no))
        .collect();
    assert_eq!(after, before);
    // Their flows are there once each (same matches, the new journal's cookies).
    let flows = pod_flows(&sb);
    assert_eq!(flows.len(), 10, "{flows:#?}");
    assert_eq!(vsctl(&sb, &["list-ports", sb.bridge()]), "vnic-1\nvnic-2");
    engine.shutdown().unwrap();
}
