//! The sandbox against the real Open vSwitch. Each test starts its own
//! sandbox; cargo runs them in parallel, which is itself a test of isolation.
//! Without OVS installed they are ignored (or fail when `CI` is set).
//! Unix only: freezing and restarting need signals, and OVS on Windows is
//! out of scope for the sandbox.
#![cfg(unix)]

use std::path::PathBuf;
use std::time::Duration;

use podport_ovs_sandbox::{sandbox_for_test, sandbox_for_test_with, SandboxError, SandboxOptions};

/// Whether a process with this pid exists (signal 0 checks without sending).
fn pid_exists(pid: u32) -> bool {
    let pid = i32::try_from(pid).expect("pid fits i32");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn start_shows_the_bridge_and_endpoints() {
    let sb = sandbox_for_test();
    assert_eq!(sb.bridge(), "br-int");
    let show = sb.vsctl(&["show"]).expect("ovs-vsctl show");
    assert!(show.contains("Bridge br-int"), "{show}");
    let dp = sb
        .vsctl(&["get", "bridge", "br-int", "datapath_type"])
        .expect("get datapath_type");
    assert_eq!(dp.trim(), "dummy");

    let dir = sb.dir().display().to_string();
    assert_eq!(sb.ovsdb_endpoint(), format!("unix:{dir}/db.sock"));
    assert_eq!(sb.openflow_endpoint(), format!("unix:{dir}/br-int.mgmt"));
    assert!(sb
        .dir()
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("pp-")));

    // ovs-ofctl reaches the bridge both by name (OVS_RUNDIR) and endpoint.
    let by_name = sb.ofctl(&["-O", "OpenFlow13", "show", "br-int"]);
    assert!(by_name
        .expect("ofctl show by name")
        .contains("OFPT_FEATURES_REPLY"));
    let endpoint = sb.openflow_endpoint();
    let by_ep = sb.ofctl(&["-O", "OpenFlow15", "show", &endpoint]);
    assert!(by_ep
        .expect("ofctl show by endpoint")
        .contains("OFPT_FEATURES_REPLY"));

    let version = sb.appctl(&["version"]).expect("appctl version");
    assert!(version.contains("ovs-vswitchd"), "{version}");
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn two_sandboxes_side_by_side() {
    let a = sandbox_for_test();
    let b = sandbox_for_test();
    assert_ne!(a.dir(), b.dir());
    assert_ne!(a.vswitchd_pid(), b.vswitchd_pid());
    a.add_port("pa").expect("add pa");
    b.add_port("pb").expect("add pb");
    let ports_a = a.vsctl(&["list-ports", "br-int"]).expect("list a");
    let ports_b = b.vsctl(&["list-ports", "br-int"]).expect("list b");
    assert_eq!(ports_a.trim(), "pa");
    assert_eq!(ports_b.trim(), "pb");
    a.ofctl(&["add-flow", "br-int", "priority=5,actions=drop"])
        .expect("add-flow a");
    assert_eq!(a.dump_flows("OpenFlow13").expect("dump a").len(), 2);
    assert_eq!(b.dump_flows("OpenFlow13").expect("dump b").len(), 1);
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn add_port_gives_an_ofport_and_del_port_removes_it() {
    let sb = sandbox_for_test();
    sb.add_port("p1").expect("add p1");
    let n = sb.ofport("p1").expect("ofport").expect("assigned");
    assert!(n > 0, "ofport {n}");
    sb.add_port("p2").expect("add p2");
    let m = sb.ofport("p2").expect("ofport").expect("assigned");
    assert_ne!(n, m);

    sb.set_interface_type("p2", "internal").expect("set type");
    let ty = sb.vsctl(&["get", "interface", "p2", "type"]).expect("type");
    assert_eq!(ty.trim(), "internal");
    assert!(sb.ofport("p2").expect("ofport").is_some_and(|p| p > 0));

    sb.del_port("p1").expect("del p1");
    let err = sb.ofport("p1").expect_err("p1 is gone");
    assert!(
        matches!(err, SandboxError::CommandFailed { ref stderr, .. } if stderr.contains("p1")),
        "{err}"
    );
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn dump_flows_and_trace() {
    let sb = sandbox_for_test();
    assert_eq!(
        sb.dump_flows("OpenFlow15").expect("dump"),
        vec!["priority=0 actions=NORMAL"]
    );
    // Added with OpenFlow 1.3: a flow added with ovs-ofctl's default
    // (OpenFlow 1.0) shows `reset_counts` in a 1.3 dump, because 1.0 adds
    // always reset the counters.
    sb.ofctl(&[
        "-O",
        "OpenFlow13",
        "add-flow",
        "br-int",
        "priority=10,ip,actions=drop",
    ])
    .expect("add-flow");
    let flows = sb.dump_flows("OpenFlow13").expect("dump");
    assert_eq!(
        flows,
        vec!["priority=10,ip actions=drop", "priority=0 actions=NORMAL"]
    );
    let trace = sb.trace("in_port=1,ip").expect("trace");
    assert!(trace.contains("Datapath actions: drop"), "{trace}");
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn protocols_and_bridge_name_options() {
    let opts = SandboxOptions {
        bridge: "br-pp".to_owned(),
        protocols: Some("OpenFlow10,OpenFlow15".to_owned()),
        keep_dir: false,
        datapath: podport_ovs_sandbox::Datapath::Dummy,
    };
    let sb = sandbox_for_test_with(opts);
    assert_eq!(sb.bridge(), "br-pp");
    assert!(sb.openflow_endpoint().ends_with("/br-pp.mgmt"));
    let protocols = sb
        .vsctl(&["get", "bridge", "br-pp", "protocols"])
        .expect("get protocols");
    assert_eq!(protocols.trim(), "[OpenFlow10, OpenFlow15]");
    assert_eq!(sb.dump_flows("OpenFlow15").expect("dump 1.5").len(), 1);
    // 1.3 is not allowed on this bridge: version negotiation fails.
    let err = sb.dump_flows("OpenFlow13").expect_err("1.3 refused");
    assert!(matches!(err, SandboxError::CommandFailed { .. }), "{err}");
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn frozen_vswitchd_stalls_changes_until_thawed() {
    let sb = sandbox_for_test();
    let frozen = sb.freeze_vswitchd().expect("freeze");
    assert_eq!(frozen.pid(), sb.vswitchd_pid());
    // The transaction commits in OVSDB, but vsctl waits for vswitchd to
    // apply it, which cannot happen while it is stopped.
    let err = sb
        .vsctl(&[
            "--timeout=1",
            "add-port",
            "br-int",
            "slow",
            "--",
            "set",
            "interface",
            "slow",
            "type=dummy",
        ])
        .expect_err("vsctl must time out while vswitchd is frozen");
    assert!(matches!(err, SandboxError::CommandFailed { .. }), "{err}");
    assert_eq!(sb.ofport("slow").expect("ofport while frozen"), None);
    frozen.thaw();
    let n = sb
        .wait_for_ofport("slow", Duration::from_secs(10))
        .expect("ofport after thaw");
    assert!(n > 0, "ofport {n}");
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn frozen_guard_thaws_on_drop() {
    let sb = sandbox_for_test();
    {
        let _frozen = sb.freeze_vswitchd().expect("freeze");
    }
    // Would time out if vswitchd were still stopped.
    sb.add_port("p1")
        .expect("add-port after the guard was dropped");
    assert!(sb.ofport("p1").expect("ofport").is_some());
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn restart_vswitchd_changes_pid_and_keeps_ports() {
    let sb = sandbox_for_test();
    sb.add_port("p1").expect("add p1");
    sb.ofctl(&["add-flow", "br-int", "priority=10,ip,actions=drop"])
        .expect("add-flow");
    let old = sb.vswitchd_pid();
    sb.restart_vswitchd().expect("restart");
    let new = sb.vswitchd_pid();
    assert_ne!(old, new);
    assert!(!pid_exists(old), "old ovs-vswitchd {old} still exists");

    // The management socket works again; flows are gone, ports are not.
    let show = sb.ofctl(&["-O", "OpenFlow13", "show", &sb.openflow_endpoint()]);
    assert!(show.expect("show after restart").contains("p1"));
    assert_eq!(
        sb.dump_flows("OpenFlow13").expect("dump"),
        vec!["priority=0 actions=NORMAL"]
    );
    assert!(sb.ofport("p1").expect("ofport").is_some_and(|n| n > 0));
    sb.add_port("p2").expect("add after restart");

    // A restart while frozen works too (stop sends SIGCONT first).
    let frozen = sb.freeze_vswitchd().expect("freeze");
    sb.restart_vswitchd().expect("restart while frozen");
    // The guard's process is gone: thawing must neither fail nor signal
    // whatever process reuses the old pid.
    frozen.try_thaw().expect("thaw after restart is a no-op");
    assert!(sb.vsctl(&["show"]).expect("show").contains("p2"));
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn restart_ovsdb_server_keeps_the_data() {
    let sb = sandbox_for_test();
    sb.add_port("p1").expect("add p1");
    let n = sb.ofport("p1").expect("ofport").expect("assigned");
    let old = sb.ovsdb_server_pid();
    sb.restart_ovsdb_server().expect("restart");
    assert_ne!(old, sb.ovsdb_server_pid());
    assert!(!pid_exists(old), "old ovsdb-server {old} still exists");
    assert_eq!(sb.ofport("p1").expect("ofport"), Some(n));
    // vswitchd is connected again: a change that waits for it succeeds.
    sb.add_port("p2").expect("add p2 after restart");
    assert!(sb.ofport("p2").expect("ofport").is_some());
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn drop_kills_the_daemons_and_removes_the_dir() {
    let sb = sandbox_for_test();
    let dir: PathBuf = sb.dir().to_path_buf();
    let pids = [sb.vswitchd_pid(), sb.ovsdb_server_pid()];
    assert!(pids.iter().all(|&p| pid_exists(p)));
    // A leaked guard never sends SIGCONT; Drop must cope with a stopped daemon.
    std::mem::forget(sb.freeze_vswitchd().expect("freeze"));
    drop(sb);
    for pid in pids {
        assert!(!pid_exists(pid), "pid {pid} survived the drop");
    }
    assert!(!dir.exists(), "{} survived the drop", dir.display());
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn keep_dir_keeps_the_logs() {
    let opts = SandboxOptions {
        keep_dir: true,
        ..SandboxOptions::default()
    };
    let sb = sandbox_for_test_with(opts);
    let dir = sb.dir().to_path_buf();
    let pid = sb.vswitchd_pid();
    assert!(sb.log_tail(5).contains("ovs-vswitchd.log"));
    drop(sb);
    assert!(!pid_exists(pid));
    assert!(dir.join("ovs-vswitchd.log").is_file());
    std::fs::remove_dir_all(&dir).expect("clean up the kept dir");
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn drop_during_a_panic_cleans_up() {
    let result = std::panic::catch_unwind(|| {
        let sb = sandbox_for_test();
        let info = (
            sb.dir().to_path_buf(),
            sb.vswitchd_pid(),
            sb.ovsdb_server_pid(),
        );
        std::panic::panic_any(info);
    });
    let Err(payload) = result else {
        unreachable!("the closure always panics")
    };
    let Some((dir, v, o)) = payload.downcast_ref::<(PathBuf, u32, u32)>() else {
        panic!("unexpected panic payload");
    };
    assert!(!dir.exists());
    assert!(!pid_exists(*v));
    assert!(!pid_exists(*o));
}

/// Processes whose command line mentions `needle` (Linux only: /proc).
#[cfg(target_os = "linux")]
fn processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmd| cmd.contains(needle))
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn failed_start_cleans_up_and_carries_the_logs() {
    let opts = SandboxOptions {
        protocols: Some("NoSuchProtocol".to_owned()),
        ..SandboxOptions::default()
    };
    let err = podport_ovs_sandbox::Sandbox::start_with(opts).expect_err("bad protocols");
    let SandboxError::Start {
        dir,
        cause,
        log_tail,
    } = &err
    else {
        panic!("expected a Start error, got {err:?}");
    };
    assert!(
        matches!(**cause, SandboxError::CommandFailed { ref program, .. } if program == "ovs-vsctl"),
        "{cause:?}"
    );
    assert!(log_tail.contains("ovs-vswitchd.log"), "{log_tail}");
    assert!(!dir.exists(), "{} survived", dir.display());
    let dir = dir.display().to_string();
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn loopback_tcp_endpoints_serve_ovsdb_and_openflow() {
    let sb = sandbox_for_test();
    let ep = sb.listen_tcp_loopback().expect("listen on loopback TCP");
    for e in [&ep.ovsdb, &ep.openflow] {
        let port: u16 = e
            .strip_prefix("tcp:127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("not tcp:127.0.0.1:PORT: {e}"));
        assert_ne!(port, 0, "{e}");
    }
    assert_ne!(ep.ovsdb, ep.openflow);
    // Real clients over TCP: ovs-vsctl to OVSDB, ovs-ofctl to the bridge as a controller.
    let db = format!("--db={}", ep.ovsdb);
    let show = sb.vsctl(&[&db, "show"]).expect("ovs-vsctl over TCP");
    assert!(show.contains("Bridge br-int"), "{show}");
    let features = sb
        .ofctl(&["-O", "OpenFlow13", "show", &ep.openflow])
        .expect("ovs-ofctl over TCP");
    assert!(features.contains("LOCAL(br-int)"), "{features}");
    // Bound to loopback only.
    let target = sb
        .vsctl(&["get", "controller", "br-int", "target"])
        .expect("controller target");
    assert_eq!(target.trim(), "\"ptcp:0:127.0.0.1\"");
}
