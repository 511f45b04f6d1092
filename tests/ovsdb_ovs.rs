//! The OVSDB client against a real ovsdb-server and ovs-vswitchd. What the database holds is
//! checked with `ovs-vsctl`, not with the client's own view.

use std::time::Duration;

use podport_ovs_sandbox::{sandbox_for_test, Sandbox};
use podport_ovsdb::replica::ChangeKind;
use podport_ovsdb::rows::InterfaceRow;
use podport_session::ovsdb::ops::PodPortSpec;
use podport_session::ovsdb::{
    DisconnectReason, OvsdbClient, OvsdbError, OvsdbEvent, OvsdbEventReceiver, OvsdbOptions,
    Snapshot,
};
use podport_tests::PROMPT;
use tokio::task::block_in_place;

fn spec(ifname: &str, container: &str) -> PodPortSpec {
    PodPortSpec {
        namespace: "default".into(),
        name: format!("pod-{ifname}"),
        container_id: container.into(),
        ifname: ifname.into(),
        ips: vec!["10.0.0.5/24".into()],
        mac: "02:00:00:00:00:05".into(),
        initial_type: String::new(),
    }
}

fn vsctl(sb: &Sandbox, args: &[&str]) -> String {
    block_in_place(|| sb.vsctl(args))
        .unwrap_or_else(|e| panic!("ovs-vsctl {args:?}: {e}"))
        .trim()
        .to_string()
}

async fn next(rx: &mut OvsdbEventReceiver, what: &str) -> OvsdbEvent {
    match tokio::time::timeout(PROMPT, rx.recv()).await {
        Ok(Some(ev)) => ev,
        Ok(None) => panic!("event stream ended while waiting for {what}"),
        Err(_) => panic!("no event within {PROMPT:?} while waiting for {what}"),
    }
}

/// Skips events until `pred` accepts one.
async fn wait_event<T>(
    rx: &mut OvsdbEventReceiver,
    what: &str,
    mut pred: impl FnMut(&OvsdbEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + PROMPT;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) => {
                if let Some(t) = pred(&ev) {
                    return t;
                }
                seen.push(ev);
            }
            Ok(None) => panic!("event stream ended waiting for {what}; saw {seen:#?}"),
            Err(_) => panic!("no {what} within {PROMPT:?}; saw {seen:#?}"),
        }
    }
}

async fn snapshot_event(rx: &mut OvsdbEventReceiver) -> Snapshot {
    wait_event(rx, "Snapshot", |ev| match ev {
        OvsdbEvent::Snapshot(s) => Some(s.clone()),
        _ => None,
    })
    .await
}

/// The first Interface change for `name` whose new row satisfies `pred`.
async fn iface_change(
    rx: &mut OvsdbEventReceiver,
    name: &str,
    pred: impl Fn(&InterfaceRow) -> bool,
) -> InterfaceRow {
    wait_event(
        rx,
        &format!("an Interface change of {name}"),
        |ev| match ev {
            OvsdbEvent::InterfaceChanged(c) => c
                .new
                .as_ref()
                .filter(|r| r.name == name && pred(r))
                .cloned(),
            _ => None,
        },
    )
    .await
}

async fn connected() -> (Sandbox, OvsdbClient, OvsdbEventReceiver) {
    let sb = block_in_place(sandbox_for_test);
    let (client, mut rx) = OvsdbClient::start(
        sb.ovsdb_endpoint().parse().unwrap(),
        OvsdbOptions::default(),
    );
    match next(&mut rx, "Connected").await {
        OvsdbEvent::Connected { schema_version } => assert!(!schema_version.is_empty()),
        other => panic!("expected Connected, got {other:?}"),
    }
    let snap = snapshot_event(&mut rx).await;
    assert!(snap.bridges.iter().any(|b| b.name == "br-int"), "{snap:?}");
    (sb, client, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn basic_methods_work() {
    let (_sb, client, _rx) = connected().await;
    assert!(client
        .list_dbs()
        .await
        .unwrap()
        .contains(&"Open_vSwitch".to_string()));
    let schema = client.get_schema("Open_vSwitch").await.unwrap();
    assert!(schema.column("Interface", "ofport").is_some());
    client.echo().await.unwrap();
    match client.get_schema("No_Such_DB").await {
        Err(OvsdbError::Server(e)) => assert!(e.to_string().contains("unknown database"), "{e}"),
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn create_pod_port_is_one_idempotent_transaction() {
    let (sb, client, mut rx) = connected().await;
    let created = client
        .create_pod_port("br-int", &spec("vnic-a", "c1"))
        .await
        .unwrap();
    assert!(created.created);
    assert_eq!(
        vsctl(&sb, &["get", "port", "vnic-a", "_uuid"]),
        created.port.to_string()
    );
    assert_eq!(
        vsctl(&sb, &["get", "interface", "vnic-a", "_uuid"]),
        created.interface.to_string()
    );
    assert_eq!(vsctl(&sb, &["list-ports", "br-int"]), "vnic-a");
    assert_eq!(vsctl(&sb, &["get", "interface", "vnic-a", "type"]), "\"\"");
    let ids = vsctl(&sb, &["get", "interface", "vnic-a", "external_ids"]);
    for kv in [
        "container-id=c1",
        "ip=\"10.0.0.5/24\"",
        "mac=\"02:00:00:00:00:05\"",
        "pod-name=pod-vnic-a",
        "pod-namespace=default",
    ] {
        assert!(ids.contains(kv), "{kv} missing from {ids}");
    }
    assert_eq!(
        vsctl(&sb, &["get", "port", "vnic-a", "external_ids:container-id"]),
        "c1"
    );

    // The monitor reports the number ovs-vswitchd assigned.
    let row = iface_change(&mut rx, "vnic-a", |r| r.ofport.is_some()).await;
    let n: i64 = vsctl(&sb, &["get", "interface", "vnic-a", "ofport"])
        .parse()
        .unwrap();
    assert_eq!(row.ofport, Some(n));
    assert!(n > 0);

    let again = client
        .create_pod_port("br-int", &spec("vnic-a", "c1"))
        .await
        .unwrap();
    assert_eq!(
        (again.port, again.interface, again.created),
        (created.port, created.interface, false)
    );
    assert_eq!(
        vsctl(&sb, &["list-ports", "br-int"]),
        "vnic-a",
        "no duplicate"
    );

    match client
        .create_pod_port("br-int", &spec("vnic-a", "other"))
        .await
    {
        Err(OvsdbError::NameTaken { name, owner }) => {
            assert_eq!((name.as_str(), owner.as_str()), ("vnic-a", "c1"))
        }
        other => panic!("expected NameTaken, got {other:?}"),
    }
    match client
        .create_pod_port("br-nope", &spec("vnic-b", "c2"))
        .await
    {
        Err(OvsdbError::NotFound(what)) => assert_eq!(what, "bridge br-nope"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        vsctl(
            &sb,
            &[
                "--columns=name",
                "--format=csv",
                "--no-headings",
                "find",
                "interface",
                "name=vnic-b"
            ]
        ),
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn set_type_then_delete() {
    let (sb, client, mut rx) = connected().await;
    client
        .create_pod_port("br-int", &spec("vnic-a", "c1"))
        .await
        .unwrap();
    client
        .set_interface_type("vnic-a", "internal", "c1")
        .await
        .unwrap();
    assert_eq!(
        vsctl(&sb, &["get", "interface", "vnic-a", "type"]),
        "internal"
    );
    iface_change(&mut rx, "vnic-a", |r| r.iface_type == "internal").await;
    match client.set_interface_type("vnic-zz", "internal", "c1").await {
        Err(OvsdbError::NotFound(w)) => assert_eq!(w, "interface vnic-zz of container c1"),
        other => panic!("{other:?}"),
    }
    // Another container's delete of that name leaves it alone.
    assert!(!client
        .delete_pod_port("br-int", "vnic-a", "c2")
        .await
        .unwrap());
    assert_eq!(vsctl(&sb, &["list-ports", "br-int"]), "vnic-a");

    assert!(client
        .delete_pod_port("br-int", "vnic-a", "c1")
        .await
        .unwrap());
    assert_eq!(vsctl(&sb, &["list-ports", "br-int"]), "");
    assert_eq!(
        vsctl(
            &sb,
            &[
                "--columns=name",
                "--format=csv",
                "--no-headings",
                "find",
                "interface",
                "name=vnic-a"
            ]
        ),
        ""
    );
    wait_event(&mut rx, "the Interface delete", |ev| match ev {
        OvsdbEvent::InterfaceChanged(c) if c.kind == ChangeKind::Delete => {
            c.old.as_ref().filter(|r| r.name == "vnic-a").map(drop)
        }
        _ => None,
    })
    .await;
    assert!(
        !client
            .delete_pod_port("br-int", "vnic-a", "c1")
            .await
            .unwrap(),
        "second delete finds nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn ports_podport_did_not_make_are_never_taken_changed_or_deleted() {
    let (sb, client, _rx) = connected().await;
    // A port of the same name as a Pod's, made by someone else (no podport marker).
    vsctl(
        &sb,
        &[
            "add-port",
            "br-int",
            "gw0",
            "--",
            "set",
            "interface",
            "gw0",
            "type=internal",
        ],
    );
    match client.create_pod_port("br-int", &spec("gw0", "c1")).await {
        Err(e @ OvsdbError::NotOurs { .. }) => {
            assert!(!e.is_transient());
            assert!(e.to_string().contains("did not create"), "{e}");
        }
        other => panic!("expected NotOurs, got {other:?}"),
    }
    assert!(!client.delete_pod_port("br-int", "gw0", "c1").await.unwrap());
    assert!(client
        .set_interface_type("gw0", "patch", "c1")
        .await
        .is_err());
    assert!(!client
        .delete_pod_port("br-int", "br-int", "c1")
        .await
        .unwrap());
    let ports = vsctl(&sb, &["list-ports", "br-int"]);
    assert_eq!(ports, "gw0");
    assert_eq!(vsctl(&sb, &["get", "interface", "gw0", "type"]), "internal");
    assert_eq!(vsctl(&sb, &["list-br"]), "br-int");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn list_bridge_ports_matches_vsctl() {
    let (sb, client, _rx) = connected().await;
    for (i, name) in ["vnic-c", "vnic-a", "vnic-b"].iter().enumerate() {
        client
            .create_pod_port("br-int", &spec(name, &format!("c{i}")))
            .await
            .unwrap();
    }
    // A port podport did not make shows up too (reconciliation must see everything).
    block_in_place(|| sb.add_port("other")).unwrap();
    let ports = client.list_bridge_ports("br-int").await.unwrap();
    let names: Vec<_> = ports.iter().map(|p| p.port.name.clone()).collect();
    let mut want: Vec<String> = vsctl(&sb, &["list-ports", "br-int"])
        .lines()
        .map(str::to_string)
        .collect();
    want.push("br-int".into());
    want.sort();
    assert_eq!(names, want);
    let a = ports.iter().find(|p| p.port.name == "vnic-a").unwrap();
    assert_eq!(
        a.port.external_ids.get("container-id").map(String::as_str),
        Some("c1")
    );
    assert_eq!(a.interfaces.len(), 1);
    let n: i64 = vsctl(&sb, &["get", "interface", "other", "ofport"])
        .parse()
        .unwrap();
    let other = ports.iter().find(|p| p.port.name == "other").unwrap();
    assert_eq!(other.interfaces[0].ofport, Some(n));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn a_failed_interface_reaches_the_consumer_with_its_error() {
    let (sb, client, mut rx) = connected().await;
    client
        .create_pod_port("br-int", &spec("vnic-f", "c1"))
        .await
        .unwrap();
    // A patch port without a peer cannot be opened: ofport -1 and `error` set.
    client
        .set_interface_type("vnic-f", "patch", "c1")
        .await
        .unwrap();
    let row = iface_change(&mut rx, "vnic-f", |r| r.is_failed()).await;
    assert_eq!(row.ofport, Some(-1));
    let want = vsctl(&sb, &["get", "interface", "vnic-f", "error"]);
    let error = row.error.clone().expect("error text");
    assert_eq!(format!("{error:?}"), want, "error text as in OVSDB");
    match client
        .wait_for_ofport("vnic-f", Duration::from_secs(5))
        .await
    {
        Err(OvsdbError::WaitTimedOut { details, .. }) => {
            assert!(details.contains("ofport -1"), "{details}");
            assert!(details.contains(&error), "{details}");
        }
        other => panic!("expected WaitTimedOut naming the failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn wait_applied_follows_cur_cfg() {
    let (sb, client, _rx) = connected().await;
    let n = client.wait_applied(PROMPT).await.unwrap();
    let cur: i64 = vsctl(&sb, &["get", "open_vswitch", ".", "cur_cfg"])
        .parse()
        .unwrap();
    assert!(cur >= n, "cur_cfg {cur} < {n}");
    let next: i64 = vsctl(&sb, &["get", "open_vswitch", ".", "next_cfg"])
        .parse()
        .unwrap();
    assert!(next >= n);

    // While ovs-vswitchd is frozen nothing is applied.
    let frozen = sb.freeze_vswitchd().unwrap();
    match client.wait_applied(Duration::from_millis(500)).await {
        Err(OvsdbError::WaitTimedOut { .. }) => {}
        other => panic!("expected a timeout while frozen, got {other:?}"),
    }
    frozen.thaw();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn wait_for_ofport_succeeds_at_once_and_times_out_while_frozen() {
    let (sb, client, _rx) = connected().await;
    client
        .create_pod_port("br-int", &spec("vnic-a", "c1"))
        .await
        .unwrap();
    let n = client
        .wait_for_ofport("vnic-a", Duration::from_secs(5))
        .await
        .unwrap();
    let want: i64 = vsctl(&sb, &["get", "interface", "vnic-a", "ofport"])
        .parse()
        .unwrap();
    assert_eq!(n, want);

    let frozen = sb.freeze_vswitchd().unwrap();
    client
        .create_pod_port("br-int", &spec("vnic-b", "c2"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    match client
        .wait_for_ofport("vnic-b", Duration::from_millis(700))
        .await
    {
        Err(OvsdbError::WaitTimedOut {
            what,
            after,
            details,
        }) => {
            assert_eq!(what, "ofport of vnic-b");
            assert_eq!(after, Duration::from_millis(700));
            assert!(details.contains("timed out after"), "{details}");
        }
        other => panic!("expected WaitTimedOut, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(700));
    frozen.thaw();
    // The same wait succeeds once the switch runs again.
    assert!(client.wait_for_ofport("vnic-b", PROMPT).await.unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn ovsdb_server_restart_reconnects_with_a_complete_snapshot() {
    let (sb, client, mut rx) = connected().await;
    for name in ["vnic-a", "vnic-b", "vnic-c"] {
        client
            .create_pod_port("br-int", &spec(name, name))
            .await
            .unwrap();
    }
    client.wait_applied(PROMPT).await.unwrap();
    block_in_place(|| sb.restart_ovsdb_server()).unwrap();
    let reason = wait_event(&mut rx, "Disconnected", |ev| match ev {
        OvsdbEvent::Disconnected { reason } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, DisconnectReason::PeerClosed);
    wait_event(&mut rx, "Connected", |ev| {
        matches!(ev, OvsdbEvent::Connected { .. }).then_some(())
    })
    .await;
    let snap = snapshot_event(&mut rx).await;
    let mut got: Vec<(String, Option<i64>)> = snap
        .interfaces
        .iter()
        .map(|i| (i.name.clone(), i.ofport))
        .collect();
    got.sort();
    let listing = vsctl(
        &sb,
        &[
            "--columns=name,ofport",
            "--format=csv",
            "--no-headings",
            "list",
            "interface",
        ],
    );
    let mut want: Vec<(String, Option<i64>)> = listing
        .lines()
        .map(|l| {
            let (n, o) = l.split_once(',').unwrap();
            (n.trim_matches('"').to_string(), o.parse().ok())
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(snap.ports.len(), 4);
    client
        .echo()
        .await
        .expect("requests work after the reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
async fn monitor_cancel_stops_updates() {
    let (sb, client, mut rx) = connected().await;
    client.monitor_cancel().await.unwrap();
    block_in_place(|| sb.add_port("quiet")).unwrap();
    if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        panic!("update after monitor_cancel: {ev:?}");
    }
}
