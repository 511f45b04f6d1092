//! The `podport-journal` binary against a known journal: every subcommand's output checked
//! exactly, a corrupt record, a version-1 journal, a journal locked by a running agent, a
//! missing directory.

use std::path::Path;
use std::process::{Command, Output};

use podport_journal::dump::record_from_json_line;
use podport_journal::{
    Event, Failure, Finding, Journal, JournalConfig, JournalError, JournalReader, Outcome, Phase,
    PodRef, Policy, PortDesc, PortReason, Stage, Step, POD_COOKIE_BASE,
};
use tempfile::TempDir;

/// 2026-11-27T12:00:00Z in µs.
const T0: u64 = 1_795_780_800_000_000;
const LONG: &str = "vnic-0123456789abcdef";

fn ms(ms: u64) -> u64 {
    T0 + ms * 1_000
}

fn pod(ns: &str, name: &str) -> PodRef {
    PodRef {
        namespace: ns.into(),
        name: name.into(),
    }
}

fn desc(port_no: u32, name: &str, state: u32, config: u32) -> PortDesc {
    PortDesc {
        port_no,
        name: name.into(),
        state,
        config,
        hw_addr: [0x02, 0, 0, 0, 0, port_no as u8],
    }
}

/// The test journal: every Event kind. Pod default/web-1 (vnic-1) gets ready and is deleted;
/// Pod default/db-0 (a 21-byte ifname, 15 on the wire) gets a port number but fails for good.
/// A snapshot is taken after #18.
fn events() -> Vec<(u64, Event)> {
    vec![
        (
            ms(0),
            Event::AgentStarted {
                version: "0.2.0".into(),
                config_digest: "sha256:c0ffee".into(),
                policy: Policy::default(),
            },
        ),
        (
            ms(50),
            Event::SwitchConnected {
                endpoint: "tcp:127.0.0.1:6653".into(),
                datapath_id: 0xabcd,
                of_version: "1.3".into(),
            },
        ),
        (
            ms(60),
            Event::PortDescSynced {
                ports: vec![desc(65534, "br-int", 0, 1)],
            },
        ),
        (
            ms(1_000),
            Event::PodAdded {
                pod: pod("default", "web-1"),
                container_id: "c1".into(),
                ifname: "vnic-1".into(),
                ips: vec!["10.0.0.5/24".into()],
                mac: "02:00:0a:00:00:05".into(),
                cookie: WEB_COOKIE,
            },
        ),
        (
            ms(1_100),
            Event::PodPortCreated {
                ifname: "vnic-1".into(),
                port_uuid: "11111111-1111-1111-1111-111111111111".into(),
                interface_uuid: "22222222-2222-2222-2222-222222222222".into(),
            },
        ),
        (
            ms(1_200),
            Event::HostInterfaceCreated {
                ifname: "vnic-1".into(),
            },
        ),
        (
            ms(1_500),
            Event::InterfaceTypeChanged {
                ifname: "vnic-1".into(),
                from: "system".into(),
                to: "internal".into(),
                outcome: Outcome::Ok,
            },
        ),
        (
            ms(2_000),
            Event::OvsdbInterfaceUpdate {
                ifname: "vnic-1".into(),
                iface_type: "internal".into(),
                ofport: Some(5),
                error: None,
            },
        ),
        (
            ms(2_010),
            Event::PortStatusReceived {
                reason: PortReason::Add,
                port: desc(5, "vnic-1", 1, 0),
            },
        ),
        (
            ms(3_000),
            Event::PodAdded {
                pod: pod("default", "db-0"),
                container_id: "c2".into(),
                ifname: LONG.into(),
                ips: vec!["10.0.0.6/24".into(), "fd00::6/64".into()],
                mac: "02:00:0a:00:00:06".into(),
                cookie: DB_COOKIE,
            },
        ),
        (
            ms(3_100),
            Event::PodPortCreated {
                ifname: LONG.into(),
                port_uuid: "33333333-3333-3333-3333-333333333333".into(),
                interface_uuid: "44444444-4444-4444-4444-444444444444".into(),
            },
        ),
        (
            ms(3_200),
            Event::HostInterfaceCreated {
                ifname: LONG.into(),
            },
        ),
        (
            ms(3_500),
            Event::InterfaceTypeChanged {
                ifname: LONG.into(),
                from: "system".into(),
                to: "internal".into(),
                outcome: Outcome::Failed(Failure::transient("device busy")),
            },
        ),
        (
            ms(5_000),
            Event::PortStatusReceived {
                reason: PortReason::Modify,
                port: desc(5, "vnic-1", 4, 0),
            },
        ),
        (
            ms(5_100),
            Event::FlowsInstalled {
                ifname: "vnic-1".into(),
                port_no: 5,
                cookie: WEB_COOKIE,
                count: 4,
            },
        ),
        (
            ms(8_012),
            Event::PodReady {
                ifname: "vnic-1".into(),
                port_no: 5,
                waited_ms: 6_812,
            },
        ),
        (
            ms(8_500),
            Event::PortStatusReceived {
                reason: PortReason::Add,
                port: desc(99, "patch-tun", 4, 0),
            },
        ),
        (
            ms(9_000),
            Event::PortDescSynced {
                ports: vec![
                    desc(65534, "br-int", 0, 1),
                    desc(5, "vnic-1", 4, 0),
                    desc(6, "vnic-0123456789", 1, 0),
                    desc(99, "patch-tun", 4, 0),
                ],
            },
        ),
        (
            ms(10_000),
            Event::OfportWaited {
                ifname: LONG.into(),
                ofport: 6,
            },
        ),
        (
            ms(13_000),
            Event::PodNotReady {
                ifname: LONG.into(),
                phase: Phase::TypeChangeRequested,
                waited_ms: 9_800,
            },
        ),
        (
            ms(14_000),
            Event::PodFailed {
                ifname: LONG.into(),
                step: Step::OpenInterface,
                error: Failure::permanent("no such device"),
            },
        ),
        (
            ms(15_000),
            Event::Reconciled {
                ifname: "vnic-1".into(),
                finding: Finding::Present { port_no: 5 },
            },
        ),
        (
            ms(15_500),
            Event::DeleteRequested {
                ifname: "vnic-1".into(),
            },
        ),
        (
            ms(16_000),
            Event::FlowsRemoved {
                ifname: "vnic-1".into(),
                cookie: WEB_COOKIE,
                count: 4,
            },
        ),
        (
            ms(16_100),
            Event::PortStatusReceived {
                reason: PortReason::Delete,
                port: desc(5, "vnic-1", 1, 1),
            },
        ),
        (
            ms(16_200),
            Event::PodDeleted {
                ifname: "vnic-1".into(),
            },
        ),
        (
            ms(17_000),
            Event::SwitchDisconnected {
                endpoint: "tcp:127.0.0.1:6653".into(),
                reason: "connection reset by peer".into(),
            },
        ),
        (
            ms(17_500),
            Event::SwitchConnected {
                endpoint: "tcp:127.0.0.1:6653".into(),
                datapath_id: 0xabcd,
                of_version: "1.3".into(),
            },
        ),
    ]
}

const SNAPSHOT_AFTER: u64 = 18;
const WEB_COOKIE: u64 = POD_COOKIE_BASE + 1;
const DB_COOKIE: u64 = POD_COOKIE_BASE + 2;

fn build(dir: &Path) {
    let config = JournalConfig {
        snapshot_every: None,
        ..JournalConfig::default()
    };
    let j = Journal::open(dir, config).unwrap();
    for (i, (ts, event)) in events().into_iter().enumerate() {
        let seq = j.append_at(ts, event).wait().unwrap();
        assert_eq!(seq, i as u64 + 1);
        if seq == SNAPSHOT_AFTER {
            assert_eq!(j.snapshot().unwrap(), SNAPSHOT_AFTER);
        }
    }
    j.close().unwrap();
}

fn journal() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    dir
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podport-journal"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Runs and expects exit status `code`, returning stdout.
fn run_ok(args: &[&str], code: i32) -> String {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{args:?}\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn p(dir: &TempDir) -> &str {
    dir.path().to_str().unwrap()
}

/// `dump` of the test journal, every line.
const DUMP: &str = "\
#1 12:00:00.000 AgentStarted version=0.2.0 config=sha256:c0ffee readiness=live attached-type=internal
#2 12:00:00.050 SwitchConnected endpoint=tcp:127.0.0.1:6653 dpid=0x000000000000abcd of=1.3
#3 12:00:00.060 PortDescSynced ports=1 [65534 br-int 0]
#4 12:00:01.000 PodAdded pod=default/web-1 ifname=vnic-1 container=c1 ips=10.0.0.5/24 mac=02:00:0a:00:00:05 cookie=0xa0000000000001
#5 12:00:01.100 PodPortCreated ifname=vnic-1 port_uuid=11111111-1111-1111-1111-111111111111 interface_uuid=22222222-2222-2222-2222-222222222222
#6 12:00:01.200 HostInterfaceCreated ifname=vnic-1
#7 12:00:01.500 InterfaceTypeChanged ifname=vnic-1 from=system to=internal ok
#8 12:00:02.000 OvsdbInterfaceUpdate ifname=vnic-1 type=internal ofport=5
#9 12:00:02.010 PortStatus ADD port=5 name=vnic-1 state=LINK_DOWN config=0 hw=02:00:00:00:00:05
#10 12:00:03.000 PodAdded pod=default/db-0 ifname=vnic-0123456789abcdef container=c2 ips=10.0.0.6/24,fd00::6/64 mac=02:00:0a:00:00:06 cookie=0xa0000000000002
#11 12:00:03.100 PodPortCreated ifname=vnic-0123456789abcdef port_uuid=33333333-3333-3333-3333-333333333333 interface_uuid=44444444-4444-4444-4444-444444444444
#12 12:00:03.200 HostInterfaceCreated ifname=vnic-0123456789abcdef
#13 12:00:03.500 InterfaceTypeChanged ifname=vnic-0123456789abcdef from=system to=internal failed error=\"device busy\"
#14 12:00:05.000 PortStatus MODIFY port=5 name=vnic-1 state=LIVE config=0 hw=02:00:00:00:00:05
#15 12:00:05.100 FlowsInstalled ifname=vnic-1 port=5 cookie=0xa0000000000001 n=4
#16 12:00:08.012 PodReady ifname=vnic-1 port=5 waited=6.812s
#17 12:00:08.500 PortStatus ADD port=99 name=patch-tun state=LIVE config=0 hw=02:00:00:00:00:63
#18 12:00:09.000 PortDescSynced ports=4 [65534 br-int 0, 5 vnic-1 LIVE, 6 vnic-0123456789 LINK_DOWN, 99 patch-tun LIVE]
#19 12:00:10.000 OfportWaited ifname=vnic-0123456789abcdef ofport=6
#20 12:00:13.000 PodNotReady ifname=vnic-0123456789abcdef phase=type-change-requested waited=9.800s
#21 12:00:14.000 PodFailed ifname=vnic-0123456789abcdef step=open-interface error=\"no such device\" (permanent)
#22 12:00:15.000 Reconciled ifname=vnic-1 finding=\"present on 5\"
#23 12:00:15.500 DeleteRequested ifname=vnic-1
#24 12:00:16.000 FlowsRemoved ifname=vnic-1 cookie=0xa0000000000001 n=4
#25 12:00:16.100 PortStatus DELETE port=5 name=vnic-1 state=LINK_DOWN config=PORT_DOWN hw=02:00:00:00:00:05
#26 12:00:16.200 PodDeleted ifname=vnic-1
#27 12:00:17.000 SwitchDisconnected endpoint=tcp:127.0.0.1:6653 reason=\"connection reset by peer\"
#28 12:00:17.500 SwitchConnected endpoint=tcp:127.0.0.1:6653 dpid=0x000000000000abcd of=1.3
";

/// The sequence numbers at the start of each line (`#N ...`).
fn seqs(text: &str) -> Vec<u64> {
    text.lines()
        .map(|l| {
            l.strip_prefix('#')
                .and_then(|l| l.split([' ', ':']).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no sequence number in {l:?}"))
        })
        .collect()
}

#[test]
fn dump_prints_one_readable_line_per_record() {
    let dir = journal();
    let out = run_ok(&["dump", p(&dir)], 0);
    assert_eq!(out.lines().count(), 28);
    assert_eq!(out, DUMP);
}

#[test]
fn dump_json_is_the_serde_form_plus_time() {
    let dir = journal();
    let out = run_ok(&["dump", p(&dir), "--json"], 0);
    let events = events();
    assert_eq!(out.lines().count(), events.len());
    for (i, line) in out.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let seq = i as u64 + 1;
        assert_eq!(v["seq"], seq, "{line}");
        assert_eq!(v["ts_micros"], events[i].0, "{line}");
        assert!(v["event"]["kind"].is_string(), "{line}");
        // The agent's decoder reads the tool's lines back (the extra "time" is ignored).
        let r = record_from_json_line(line).unwrap();
        assert_eq!(
            (r.seq, r.ts_micros, &r.event),
            (seq, events[i].0, &events[i].1)
        );
    }
    let lines: Vec<&str> = out.lines().collect();
    let v: serde_json::Value = serde_json::from_str(lines[13]).unwrap();
    assert_eq!(v["time"], "2026-11-27T12:00:05.000Z");
    assert_eq!(v["event"]["kind"], "port_status_received");
    assert_eq!(v["event"]["reason"], "modify");
    assert_eq!(v["event"]["port"]["state"], 4);
    assert_eq!(
        lines[15],
        r#"{"seq":16,"ts_micros":1795780808012000,"time":"2026-11-27T12:00:08.012Z","event":{"kind":"pod_ready","ifname":"vnic-1","port_no":5,"waited_ms":6812}}"#
    );
    assert_eq!(
        lines[20],
        r#"{"seq":21,"ts_micros":1795780814000000,"time":"2026-11-27T12:00:14.000Z","event":{"kind":"pod_failed","ifname":"vnic-0123456789abcdef","step":"open-interface","error":{"kind":"permanent","reason":"no such device"}}}"#
    );
}

#[test]
fn dump_port_keeps_its_records_and_the_wire_name_ones() {
    let dir = journal();
    let d = p(&dir);
    let out = run_ok(&["dump", d, "--port", "vnic-1"], 0);
    assert_eq!(
        seqs(&out),
        [4, 5, 6, 7, 8, 9, 14, 15, 16, 18, 22, 23, 24, 25, 26]
    );
    // Lines are the same as in the full dump.
    assert!(out.lines().all(|l| DUMP.lines().any(|d| d == l)));
    // A 21-byte name: the PORT_DESC lists its 15-byte wire name.
    let out = run_ok(&["dump", d, "--port", LONG], 0);
    assert_eq!(seqs(&out), [10, 11, 12, 13, 18, 19, 20, 21]);
    // A port no Pod owns: its PortStatus and the PORT_DESC.
    let out = run_ok(&["dump", d, "--port", "patch-tun"], 0);
    assert_eq!(seqs(&out), [17, 18]);
    let out = run_ok(&["dump", d, "--port", "nothing"], 0);
    assert_eq!(out, "");
}

#[test]
fn dump_pod_follows_its_interfaces() {
    let dir = journal();
    let d = p(&dir);
    let out = run_ok(&["dump", d, "--pod", "default/db-0"], 0);
    assert_eq!(seqs(&out), [10, 11, 12, 13, 18, 19, 20, 21]);
    // The PodAdded (#4) is before --since, the Pod is still found.
    let out = run_ok(
        &[
            "dump",
            d,
            "--pod",
            "default/web-1",
            "--since",
            "10",
            "--until",
            "18",
        ],
        0,
    );
    assert_eq!(seqs(&out), [14, 15, 16, 18]);
    let o = run(&["dump", d, "--pod", "default/nobody"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("no PodAdded record for Pod default/nobody"),
        "{}",
        stderr(&o)
    );
    let o = run(&["dump", d, "--pod", "no-slash"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("NAMESPACE/NAME"), "{}", stderr(&o));
    let o = run(&["dump", d, "--pod", "default/web-1", "--port", "vnic-1"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn dump_since_until_are_inclusive() {
    let dir = journal();
    let d = p(&dir);
    assert_eq!(
        seqs(&run_ok(&["dump", d, "--since", "26"], 0)),
        [26, 27, 28]
    );
    assert_eq!(seqs(&run_ok(&["dump", d, "--until", "2"], 0)), [1, 2]);
    let out = run_ok(&["dump", d, "--since", "5", "--until", "7"], 0);
    let want: Vec<&str> = DUMP.lines().skip(4).take(3).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
    assert_eq!(run_ok(&["dump", d, "--since", "29"], 0), "");
    let o = run(&["dump", d, "--since", "9", "--until", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--since 9 is after --until 3"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn state_is_the_folded_table() {
    let dir = journal();
    let d = p(&dir);
    // The phase is the fold's: db-0 failed for good, web-1 deleted.
    assert_eq!(
        run_ok(&["state", d], 0),
        "\
last seq: 28  snapshot: #18 + 10 records  switch: tcp:127.0.0.1:6653 dpid=0x000000000000abcd of=1.3  foreign PortStatus: 1
INTERFACE              POD           PHASE   PORT  STATE      TYPE  COOKIE            FLOWS  READY SINCE  ERROR
vnic-0123456789abcdef  default/db-0  failed  6     LINK_DOWN  -     0xa0000000000002  -      -            \"no such device\" (permanent)
"
    );
    // Before the snapshot: replayed from the first record.
    assert_eq!(
        run_ok(&["state", d, "--at", "16"], 0),
        "\
last seq: 16  snapshot: none (16 records)  switch: tcp:127.0.0.1:6653 dpid=0x000000000000abcd of=1.3  foreign PortStatus: 0
INTERFACE              POD            PHASE                  PORT  STATE  TYPE      COOKIE            FLOWS       READY SINCE               ERROR
vnic-0123456789abcdef  default/db-0   type-change-requested  -     -      -         0xa0000000000002  -           -                         \"device busy\"
vnic-1                 default/web-1  ready                  5     LIVE   internal  0xa0000000000001  n=4 port=5  2026-11-27T12:00:08.012Z  -
"
    );
    assert_eq!(
        run_ok(&["state", d, "--at", "23"], 0),
        "\
last seq: 23  snapshot: #18 + 5 records  switch: tcp:127.0.0.1:6653 dpid=0x000000000000abcd of=1.3  foreign PortStatus: 1
INTERFACE              POD            PHASE     PORT  STATE      TYPE      COOKIE            FLOWS       READY SINCE  ERROR
vnic-0123456789abcdef  default/db-0   failed    6     LINK_DOWN  -         0xa0000000000002  -           -            \"no such device\" (permanent)
vnic-1                 default/web-1  removing  5     LIVE       internal  0xa0000000000001  n=4 port=5  -            -
"
    );
    let at18 = run_ok(&["state", d, "--at", "18"], 0);
    assert!(
        at18.starts_with("last seq: 18  snapshot: #18 + 0 records  "),
        "{at18}"
    );
    let at27 = run_ok(&["state", d, "--at", "27"], 0);
    assert!(
        at27.starts_with("last seq: 27  snapshot: #18 + 9 records  switch: disconnected  "),
        "{at27}"
    );
    assert_eq!(
        run_ok(&["state", d, "--at", "1"], 0),
        "last seq: 1  snapshot: none (1 records)  switch: disconnected  foreign PortStatus: 0\n(no Pod ports)\n"
    );
}

#[test]
fn state_json_is_the_serde_form() {
    let dir = journal();
    let out = run_ok(&["state", p(&dir), "--json"], 0);
    assert_eq!(out.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["last_seq"], 28);
    assert_eq!(v["snapshot_seq"], 18);
    assert_eq!(v["records_replayed"], 10);
    assert!(v["stopped_at"].is_null());
    let state: podport_journal::State = serde_json::from_value(v["state"].clone()).unwrap();
    assert_eq!(state.foreign_port_status, 1);
    let port = &state.ports[LONG];
    assert_eq!((port.port_no, port.state), (Some(6), 1));
    assert_eq!(port.cookie, DB_COOKIE);
    assert_eq!(port.last_error.as_deref(), Some("no such device"));
    assert_eq!(state.phase(LONG), Some(Phase::Failed));
    assert!(!state.ports.contains_key("vnic-1"));

    let out = run_ok(&["state", p(&dir), "--json", "--at", "16"], 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["last_seq"], 16);
    assert!(v["snapshot_seq"].is_null());
    assert_eq!(v["state"]["ports"]["vnic-1"]["ready"]["since"], ms(8_012));
    assert_eq!(v["state"]["ports"]["vnic-1"]["ready"]["port_no"], 5);
}

#[test]
fn timeline_of_a_port_has_offsets_from_its_creation() {
    let dir = journal();
    let d = p(&dir);
    assert_eq!(
        run_ok(&["timeline", d, "--port", "vnic-1"], 0),
        "\
vnic-1 pod=default/web-1: 15 records, +0 = #4 2026-11-27T12:00:01.000Z
+0.000s PodAdded pod=default/web-1 ifname=vnic-1 container=c1 ips=10.0.0.5/24 mac=02:00:0a:00:00:05 cookie=0xa0000000000001
+0.100s PodPortCreated ifname=vnic-1 port_uuid=11111111-1111-1111-1111-111111111111 interface_uuid=22222222-2222-2222-2222-222222222222
+0.200s HostInterfaceCreated ifname=vnic-1
+0.500s InterfaceTypeChanged ifname=vnic-1 from=system to=internal ok
+1.000s OvsdbInterfaceUpdate ifname=vnic-1 type=internal ofport=5
+1.010s PortStatus ADD port=5 name=vnic-1 state=LINK_DOWN config=0 hw=02:00:00:00:00:05
+4.000s PortStatus MODIFY port=5 name=vnic-1 state=LIVE config=0 hw=02:00:00:00:00:05
+4.100s FlowsInstalled ifname=vnic-1 port=5 cookie=0xa0000000000001 n=4
+7.012s PodReady ifname=vnic-1 port=5 waited=6.812s
+8.000s PortDescSynced ports=4 [65534 br-int 0, 5 vnic-1 LIVE, 6 vnic-0123456789 LINK_DOWN, 99 patch-tun LIVE]
+14.000s Reconciled ifname=vnic-1 finding=\"present on 5\"
+14.500s DeleteRequested ifname=vnic-1
+15.000s FlowsRemoved ifname=vnic-1 cookie=0xa0000000000001 n=4
+15.100s PortStatus DELETE port=5 name=vnic-1 state=LINK_DOWN config=PORT_DOWN hw=02:00:00:00:00:05
+15.200s PodDeleted ifname=vnic-1
stages to Ready #16:
  added             +0.000s     0.000ms
  port_committed    +0.100s   100.000ms
  host_attached     +0.200s   100.000ms
  type_changed      +0.500s   300.000ms
  port_known        +1.010s   510.000ms
  usable            +4.000s  2990.000ms
  flows_confirmed   +4.100s   100.000ms
  ready             +7.012s  2912.000ms
"
    );
    assert_eq!(
        run_ok(&["timeline", d, "--port", LONG], 0),
        "\
vnic-0123456789abcdef pod=default/db-0: 8 records, +0 = #10 2026-11-27T12:00:03.000Z
+0.000s PodAdded pod=default/db-0 ifname=vnic-0123456789abcdef container=c2 ips=10.0.0.6/24,fd00::6/64 mac=02:00:0a:00:00:06 cookie=0xa0000000000002
+0.100s PodPortCreated ifname=vnic-0123456789abcdef port_uuid=33333333-3333-3333-3333-333333333333 interface_uuid=44444444-4444-4444-4444-444444444444
+0.200s HostInterfaceCreated ifname=vnic-0123456789abcdef
+0.500s InterfaceTypeChanged ifname=vnic-0123456789abcdef from=system to=internal failed error=\"device busy\"
+6.000s PortDescSynced ports=4 [65534 br-int 0, 5 vnic-1 LIVE, 6 vnic-0123456789 LINK_DOWN, 99 patch-tun LIVE]
+7.000s OfportWaited ifname=vnic-0123456789abcdef ofport=6
+10.000s PodNotReady ifname=vnic-0123456789abcdef phase=type-change-requested waited=9.800s
+11.000s PodFailed ifname=vnic-0123456789abcdef step=open-interface error=\"no such device\" (permanent)
stages so far (failed at the last record):
  added             +0.000s     0.000ms
  port_committed    +0.100s   100.000ms
  host_attached     +0.200s   100.000ms
"
    );
    // No PodAdded: offsets from its first record.
    assert_eq!(
        run_ok(&["timeline", d, "--port", "patch-tun"], 0),
        "\
patch-tun: 2 records, +0 = #17 2026-11-27T12:00:08.500Z
+0.000s PortStatus ADD port=99 name=patch-tun state=LIVE config=0 hw=02:00:00:00:00:63
+0.500s PortDescSynced ports=4 [65534 br-int 0, 5 vnic-1 LIVE, 6 vnic-0123456789 LINK_DOWN, 99 patch-tun LIVE]
"
    );
    let o = run(&["timeline", d, "--port", "nothing"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("no record is about interface nothing"),
        "{}",
        stderr(&o)
    );
    // Neither --port nor --svg: a usage error.
    assert_eq!(run(&["timeline", d]).status.code(), Some(2));
}

/// The `<g class="port" data-ifname="NAME" ...>...</g>` of one row.
fn svg_row<'a>(svg: &'a str, ifname: &str) -> &'a str {
    let start = svg
        .find(&format!(r#"<g class="port" data-ifname="{ifname}""#))
        .unwrap_or_else(|| panic!("no row for {ifname}"));
    let end = start + svg[start..].find("</g>").unwrap();
    &svg[start..end]
}

/// Every element is closed in order (a small well-formedness check, not a full XML parser).
fn assert_balanced(svg: &str) {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        let j = i + rest[i..].find('>').expect("unterminated tag");
        let tag = &rest[i + 1..j];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            open.push(tag.split_whitespace().next().unwrap());
        }
        assert!(!rest[i + 1..j].contains('<'), "'<' inside a tag: {tag}");
        rest = &rest[j + 1..];
    }
    assert!(open.is_empty(), "unclosed: {open:?}");
}

#[test]
fn timeline_svg_draws_every_port() {
    let dir = journal();
    let d = p(&dir);
    let file = dir.path().join("life.svg");
    let f = file.to_str().unwrap();
    assert_eq!(
        run_ok(&["timeline", d, "--svg", f], 0),
        format!("wrote {f}: 2 ports, 28 records over 17.500s\n")
    );
    let svg = std::fs::read_to_string(&file).unwrap();
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(svg.ends_with("</svg>\n"));
    assert_balanced(&svg);
    assert_eq!(svg.matches(r#"<text class="label""#).count(), 2);
    let web = svg_row(&svg, "vnic-1");
    assert!(web.contains(">vnic-1</text>"));
    assert!(web.contains(r##"<rect class="ready" "##) && web.contains(r##"fill="#a1d99b""##));
    assert!(web.contains(r#"<rect class="gone" "#));
    // A span per stage of its wait, then a band per phase after it, in order.
    let titles: Vec<&str> = web
        .split("<title>")
        .skip(1)
        .map(|t| &t[..t.find("</title>").unwrap()])
        .filter(|t| !t.contains("PortStatus"))
        .collect();
    assert_eq!(
        titles,
        [
            "vnic-1 ready: +8.012s .. +15.500s",
            "vnic-1 removing: +15.500s .. +16.200s",
            "vnic-1 gone: +16.200s .. +17.500s",
            "vnic-1 port_committed: +1.000s .. +1.100s (0.100s)",
            "vnic-1 host_attached: +1.100s .. +1.200s (0.100s)",
            "vnic-1 type_changed: +1.200s .. +1.500s (0.300s)",
            "vnic-1 port_known: +1.500s .. +2.010s (0.510s)",
            "vnic-1 usable: +2.010s .. +5.000s (2.990s)",
            "vnic-1 flows_confirmed: +5.000s .. +5.100s (0.100s)",
            "vnic-1 ready: +5.100s .. +8.012s (2.912s)",
        ],
        "{web}"
    );
    assert_eq!(web.matches("<rect ").count(), 10, "{web}");
    assert_eq!(web.matches(r#"<rect class="stage" "#).count(), 7, "{web}");
    // ADD, MODIFY, DELETE.
    assert_eq!(web.matches(r#"<line class="tick""#).count(), 3);
    let db = svg_row(&svg, LONG);
    assert!(db.contains(&format!(">{LONG}</text>")));
    assert!(
        !db.contains(r#"class="ready""#) && !db.contains(r#"data-stage="ready""#),
        "{db}"
    );
    // It waited for its type change until it failed.
    assert!(
        db.contains(&format!(
            "{LONG} waiting for type_changed: +3.200s .. +14.000s (10.800s), not reached"
        )),
        "{db}"
    );
    assert!(
        db.contains(r##"<rect class="failed" "##) && db.contains(r##"fill="#d62728""##),
        "{db}"
    );
    assert!(db.contains("failed: +14.000s .. +17.500s"), "{db}");
    assert_eq!(
        elements(db, "path", r#"class="not-ready""#).len(),
        1,
        "{db}"
    );
    assert_eq!(svg.matches(r#"<g class="disconnect">"#).count(), 1);
    // The legend names every stage and the phases after a wait.
    for name in [
        "port_known",
        "flows_confirmed",
        "ready",
        "failed",
        "removing",
        "gone",
    ] {
        assert!(svg.contains(&format!(">{name}</text>")), "{name}");
    }
    assert!(svg.contains(">0s</text>") && svg.contains(">16s</text>"));

    // --port with --svg: that row only.
    let one = dir.path().join("one.svg");
    let out = run_ok(
        &[
            "timeline",
            d,
            "--svg",
            one.to_str().unwrap(),
            "--port",
            LONG,
        ],
        0,
    );
    assert!(out.contains(": 1 ports, 28 records"), "{out}");
    let svg = std::fs::read_to_string(&one).unwrap();
    assert_eq!(svg.matches(r#"<g class="port""#).count(), 1);
}

#[test]
fn verify_and_stats_of_a_good_journal() {
    let dir = journal();
    let d = p(&dir);
    assert_eq!(
        run_ok(&["verify", d], 0),
        "ok: 28 records, 1 snapshots, seq 1..28\n"
    );
    let out = run_ok(&["stats", d], 0);
    let bytes_line = out.lines().find(|l| l.starts_with("bytes:")).unwrap();
    let bytes: u64 = bytes_line["bytes:".len()..].trim().parse().unwrap();
    assert!(bytes > 28 * 13, "{bytes}");
    assert_eq!(
        out.replace(bytes_line, "bytes:     N"),
        "\
records:   28
seq:       1..28
corrupt:   0
bytes:     N
snapshots: 1 (#18)
by kind:
  AgentStarted          1
  DeleteRequested       1
  FlowsInstalled        1
  FlowsRemoved          1
  HostInterfaceCreated  2
  InterfaceTypeChanged  2
  OfportWaited          1
  OvsdbInterfaceUpdate  1
  PodAdded              2
  PodDeleted            1
  PodFailed             1
  PodNotReady           1
  PodPortCreated        2
  PodReady              1
  PortDescSynced        2
  PortStatus            4
  Reconciled            1
  SwitchConnected       2
  SwitchDisconnected    1
"
    );
    let v: serde_json::Value = serde_json::from_str(&run_ok(&["stats", d, "--json"], 0)).unwrap();
    assert_eq!(v["records"], 28);
    assert_eq!(v["first_seq"], 1);
    assert_eq!(v["last_seq"], 28);
    assert_eq!(v["bytes"], bytes);
    assert_eq!(v["by_kind"]["PortStatus"], 4);
    assert_eq!(v["snapshots"], serde_json::json!([18]));
    assert_eq!(v["corrupt"], 0);
}

#[test]
fn an_empty_journal() {
    let dir = tempfile::tempdir().unwrap();
    Journal::open(dir.path(), JournalConfig::default())
        .unwrap()
        .close()
        .unwrap();
    let d = p(&dir);
    assert_eq!(run_ok(&["dump", d], 0), "");
    assert_eq!(
        run_ok(&["verify", d], 0),
        "ok: 0 records, 0 snapshots, seq -\n"
    );
    assert_eq!(
        run_ok(&["state", d], 0),
        "last seq: 0  snapshot: none (0 records)  switch: disconnected  foreign PortStatus: 0\n(no Pod ports)\n"
    );
    let file = dir.path().join("empty.svg");
    let out = run_ok(&["timeline", d, "--svg", file.to_str().unwrap()], 0);
    assert!(out.ends_with(": 0 ports, 0 records over 0.000s\n"), "{out}");
    assert_balanced(&std::fs::read_to_string(&file).unwrap());
}

/// Flips a byte of record `seq`'s stored value, as a disk error would.
fn corrupt(dir: &Path, seq: u64) {
    let reader = JournalReader::open(dir).unwrap();
    let tree = reader.raw_records();
    let key = seq.to_be_bytes();
    let mut value = tree.get(key).unwrap().unwrap().to_vec();
    let last = value.len() - 1;
    value[last] ^= 0x01;
    tree.insert(key, value).unwrap();
    tree.flush().unwrap();
}

#[test]
fn a_corrupt_record_is_shown_and_fails_the_exit_status() {
    let dir = journal();
    corrupt(dir.path(), 20);
    let d = p(&dir);

    let o = run(&["verify", d]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.starts_with("#20: CRC-32C mismatch: stored 0x"), "{out}");
    // It names the first bad record and says what a replay keeps.
    assert_eq!(
        out.lines().nth(1),
        Some("first bad: #20; records #1..#19 are intact and are what a replay keeps"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("the first #20: CRC-32C mismatch"),
        "{}",
        stderr(&o)
    );

    let o = run(&["dump", d]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 28);
    assert!(
        lines[19].starts_with("#20 CORRUPT: CRC-32C mismatch"),
        "{}",
        lines[19]
    );
    for (i, (got, want)) in lines.iter().zip(DUMP.lines()).enumerate() {
        if i != 19 {
            assert_eq!(got, &want);
        }
    }
    assert!(
        stderr(&o).contains("1 corrupt record(s), the first #20"),
        "{}",
        stderr(&o)
    );

    let o = run(&["dump", d, "--json", "--since", "19", "--until", "21"]);
    assert_eq!(o.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["seq"], 20);
    assert!(lines[1]["corrupt"].as_str().unwrap().contains("CRC-32C"));
    // Out of the range asked for, it is neither shown nor counted.
    assert_eq!(run(&["dump", d, "--until", "19"]).status.code(), Some(0));

    // Replay from the snapshot (#18) stops at #20: the state as of #19, and a warning.
    let o = run(&["state", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).starts_with("last seq: 19  snapshot: #18 + 1 records  "),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("replay stopped at record #20"),
        "{}",
        stderr(&o)
    );
    // The state as of #19 does not need #20: no warning.
    let o = run(&["state", d, "--at", "19"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("last seq: 19  snapshot: #18 + 1 records  "));

    let o = run(&["timeline", d, "--port", LONG]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).starts_with("vnic-0123456789abcdef pod=default/db-0: 7 records"));
    assert!(stderr(&o).contains("#20 CORRUPT"), "{}", stderr(&o));

    let o = run(&["stats", d, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["records"].as_u64(), v["corrupt"].as_u64()),
        (Some(27), Some(1))
    );
}

/// Rewrites every record with envelope version 1 (payload and a valid CRC kept), as podport
/// 0.1 left its journals.
fn make_version_1(dir: &Path) {
    let reader = JournalReader::open(dir).unwrap();
    let tree = reader.raw_records();
    let all: Vec<_> = tree.iter().map(Result::unwrap).collect();
    for (k, v) in all {
        let mut v = v.to_vec();
        v[0] = 1;
        tree.insert(k, v).unwrap();
    }
    tree.flush().unwrap();
}

#[test]
fn a_version_1_journal_is_refused_with_the_reason_not_shown_empty() {
    let dir = journal();
    make_version_1(dir.path());
    let d = p(&dir);

    let err = Journal::open(dir.path(), JournalConfig::default())
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err, JournalError::OldVersion { seq: 1, version: 1 });

    for cmd in ["state", "dump", "verify", "stats"] {
        let o = run(&[cmd, d]);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", stderr(&o));
        assert_eq!(
            stdout(&o),
            "",
            "{cmd} shows nothing rather than an empty state"
        );
        let err = stderr(&o);
        for part in [
            "record #1 has format version 1",
            "reads version 3 only",
            "Move the directory aside",
        ] {
            assert!(err.contains(part), "{cmd}: {part:?} in {err}");
        }
    }
    let svg = dir.path().join("v1.svg");
    let o = run(&["timeline", d, "--svg", svg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("format version 1"), "{}", stderr(&o));
    assert!(!svg.exists());
}

#[test]
fn a_journal_held_by_a_running_agent_is_refused() {
    let dir = journal();
    let agent = Journal::open(dir.path(), JournalConfig::default()).unwrap();
    for cmd in ["dump", "state", "verify", "stats"] {
        let o = run(&[cmd, p(&dir)]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        assert_eq!(stdout(&o), "");
        let err = stderr(&o);
        assert!(err.contains("is locked by another process"), "{err}");
        assert!(err.contains("a running agent holds it"), "{err}");
        assert!(err.contains("control socket"), "{err}");
    }
    agent.close().unwrap();
    assert_eq!(run_ok(&["dump", p(&dir)], 0), DUMP);
}

#[test]
fn a_missing_or_empty_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let o = run(&["dump", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    // Reading never creates a journal.
    assert!(!missing.exists());

    let o = run(&["state", p(&dir)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("holds no journal"), "{}", stderr(&o));

    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let o = run(&["verify", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not a directory"), "{}", stderr(&o));
}

#[test]
fn help_names_every_subcommand() {
    let out = run_ok(&["--help"], 0);
    for cmd in [
        "dump",
        "state",
        "timeline",
        "verify",
        "stats",
        "Exit status",
    ] {
        assert!(out.contains(cmd), "{out}");
    }
}

// ---------------------------------------------------------------------------------------------
// Stages: a journal with known stage times.

fn status(reason: PortReason, port_no: u32, name: &str, state: u32) -> Event {
    Event::PortStatusReceived {
        reason,
        port: desc(port_no, name, state, 0),
    }
}

/// Pods v1..v10 (ifname `v{i}`, added at i s) each take known times per stage: port_committed
/// i ms, host_attached 10 ms, type_changed 2i ms, port_known 20 ms, usable 5i ms, flows_sent
/// 1 ms, flows_confirmed i ms, ready 0.5 ms. v11 is deleted before it is ready; v12 stays
/// waiting for its type change (two "not ready yet" reports). At 20 s the switch disconnects
/// (every Ready is lost); after the reconnect v1 and v2 get ready again: port_known 200 ms
/// (from the disconnect), usable 0, flows_sent i ms, flows_confirmed 2i ms, ready 1 ms.
fn stage_events() -> Vec<(u64, Event)> {
    let us = |ms: u64| T0 + ms * 1_000;
    let mut ev = vec![
        (
            us(0),
            Event::AgentStarted {
                version: "0.2.0".into(),
                config_digest: "d".into(),
                policy: Policy::default(),
            },
        ),
        (
            us(0),
            Event::SwitchConnected {
                endpoint: "unix:/run/br-int.mgmt".into(),
                datapath_id: 1,
                of_version: "1.5".into(),
            },
        ),
        (us(0), Event::PortDescSynced { ports: vec![] }),
    ];
    let added = |i: u64| Event::PodAdded {
        pod: pod("ns", &format!("p{i}")),
        container_id: format!("c{i}"),
        ifname: format!("v{i}"),
        ips: vec![],
        mac: String::new(),
        cookie: POD_COOKIE_BASE + i,
    };
    let created = |i: u64| Event::PodPortCreated {
        ifname: format!("v{i}"),
        port_uuid: format!("pu{i}"),
        interface_uuid: format!("iu{i}"),
    };
    for i in 1..=10u64 {
        let v = format!("v{i}");
        let n = i as u32;
        let b = i * 1_000;
        ev.push((us(b), added(i)));
        ev.push((us(b + i), created(i)));
        ev.push((
            us(b + i + 10),
            Event::HostInterfaceCreated { ifname: v.clone() },
        ));
        ev.push((
            us(b + 3 * i + 10),
            Event::InterfaceTypeChanged {
                ifname: v.clone(),
                from: "podport-pending".into(),
                to: "internal".into(),
                outcome: Outcome::Ok,
            },
        ));
        ev.push((us(b + 3 * i + 30), status(PortReason::Add, n, &v, 0)));
        ev.push((us(b + 8 * i + 30), status(PortReason::Modify, n, &v, 4)));
        ev.push((
            us(b + 8 * i + 31),
            Event::FlowsSent {
                ifname: v.clone(),
                port_no: n,
            },
        ));
        ev.push((
            us(b + 9 * i + 31),
            Event::FlowsInstalled {
                ifname: v.clone(),
                port_no: n,
                cookie: POD_COOKIE_BASE + i,
                count: 2,
            },
        ));
        ev.push((
            us(b + 9 * i + 31) + 500,
            Event::PodReady {
                ifname: v,
                port_no: n,
                waited_ms: 9 * i + 21,
            },
        ));
    }
    ev.push((us(11_000), added(11)));
    ev.push((us(11_004), created(11)));
    ev.push((
        us(11_500),
        Event::DeleteRequested {
            ifname: "v11".into(),
        },
    ));
    ev.push((
        us(11_600),
        Event::PodDeleted {
            ifname: "v11".into(),
        },
    ));
    ev.push((us(12_000), added(12)));
    ev.push((us(12_003), created(12)));
    ev.push((
        us(12_010),
        Event::HostInterfaceCreated {
            ifname: "v12".into(),
        },
    ));
    for k in [1u64, 2] {
        ev.push((
            us(12_010 + k * 3_000),
            Event::PodNotReady {
                ifname: "v12".into(),
                phase: Phase::TypeChangeRequested,
                waited_ms: k * 3_000,
            },
        ));
    }
    ev.push((
        us(20_000),
        Event::SwitchDisconnected {
            endpoint: "unix:/run/br-int.mgmt".into(),
            reason: "the switch closed the connection".into(),
        },
    ));
    ev.push((
        us(20_100),
        Event::SwitchConnected {
            endpoint: "unix:/run/br-int.mgmt".into(),
            datapath_id: 1,
            of_version: "1.5".into(),
        },
    ));
    ev.push((
        us(20_200),
        Event::PortDescSynced {
            ports: (1..=10u32)
                .map(|n| desc(n, &format!("v{n}"), 4, 0))
                .collect(),
        },
    ));
    for i in 1..=2u64 {
        let v = format!("v{i}");
        let n = i as u32;
        ev.push((
            us(20_200 + i),
            Event::FlowsSent {
                ifname: v.clone(),
                port_no: n,
            },
        ));
        ev.push((
            us(20_200 + 3 * i),
            Event::FlowsInstalled {
                ifname: v.clone(),
                port_no: n,
                cookie: POD_COOKIE_BASE + i,
                count: 2,
            },
        ));
        ev.push((
            us(20_200 + 3 * i + 1),
            Event::PodReady {
                ifname: v,
                port_no: n,
                waited_ms: 200 + 3 * i + 1,
            },
        ));
    }
    ev
}

fn stage_journal() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = JournalConfig {
        snapshot_every: None,
        ..JournalConfig::default()
    };
    let j = Journal::open(dir.path(), config).unwrap();
    for (ts, event) in stage_events() {
        j.append_at(ts, event).wait().unwrap();
    }
    j.close().unwrap();
    dir
}

/// The summary of [`stage_events`], worked out by hand (nearest rank: p50 of 12 values is
/// the 6th, p90 the 11th, p99 the 12th).
const STAGE_SUMMARY: &str = "\
12 Ready of 12 Pods (records #1..#111): each stage's time since the previous one, ms (nearest rank)
STAGE            COUNT     P50      P90      P99      MAX
port_committed      10   5.000    9.000   10.000   10.000
host_attached       10  10.000   10.000   10.000   10.000
type_changed        10  10.000   18.000   20.000   20.000
port_known          12  20.000  200.000  200.000  200.000
usable              12  20.000   45.000   50.000   50.000
flows_sent          12   1.000    1.000    2.000    2.000
flows_confirmed     12   4.000    9.000   10.000   10.000
ready               12   0.500    1.000    1.000    1.000
total               12  85.500  204.000  207.000  207.000
never ready: 2 Pods:
  v11 pod=ns/p11 last stage port_committed after 0.600s, deleted
  v12 pod=ns/p12 last stage host_attached after 8.207s, type-change-requested
";

#[test]
fn timeline_summary_gives_each_stage_over_every_wait() {
    let dir = stage_journal();
    assert_eq!(
        run_ok(&["timeline", p(&dir), "--summary"], 0),
        STAGE_SUMMARY
    );
}

#[test]
fn timeline_summary_json_round_trips() {
    use podport_journal::dump::{stage_summary, StageSummary};
    let dir = stage_journal();
    let out = run_ok(&["timeline", p(&dir), "--summary", "--json"], 0);
    assert_eq!(out.lines().count(), 1);
    let got: StageSummary = serde_json::from_str(&out).unwrap();
    let records: Vec<podport_journal::Record> = stage_events()
        .into_iter()
        .enumerate()
        .map(|(i, (ts_micros, event))| podport_journal::Record {
            seq: i as u64 + 1,
            ts_micros,
            event,
        })
        .collect();
    assert_eq!(got, stage_summary(&records));
    // The figures themselves, not only the same function twice.
    assert_eq!((got.pods, got.ready_waits), (12, 12));
    let names: Vec<&str> = got.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(
        names,
        [
            "port_committed",
            "host_attached",
            "type_changed",
            "port_known",
            "usable",
            "flows_sent",
            "flows_confirmed",
            "ready"
        ]
    );
    let known = &got.stages[3];
    assert_eq!(
        (
            known.count,
            known.p50_ms,
            known.p90_ms,
            known.p99_ms,
            known.max_ms
        ),
        (12, Some(20.0), Some(200.0), Some(200.0), Some(200.0))
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stages"][7]["p50_ms"], 0.5);
    assert_eq!(v["total"]["max_ms"], 207.0);
    assert_eq!(v["never_ready"][0]["ifname"], "v11");
    assert_eq!(v["never_ready"][0]["last_stage"], "port_committed");
    assert_eq!(v["never_ready"][1]["outcome"], "type-change-requested");
    // --json is for --summary; --summary does not mix with --port or --svg.
    assert_eq!(run(&["timeline", p(&dir), "--json"]).status.code(), Some(2));
    assert_eq!(
        run(&["timeline", p(&dir), "--summary", "--port", "v1"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn timeline_summary_of_an_empty_journal_and_of_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    Journal::open(dir.path(), JournalConfig::default())
        .unwrap()
        .close()
        .unwrap();
    let out = run_ok(&["timeline", p(&dir), "--summary"], 0);
    assert!(out.starts_with("0 Ready of 0 Pods (records none)"), "{out}");
    assert!(
        out.contains("\nport_committed       0    -    -    -    -\n"),
        "{out}"
    );
    assert!(out.ends_with("never ready: 0 Pods\n"), "{out}");

    // The fixture: web-1's one wait; db-0 failed for good after its attach.
    let dir = journal();
    let out = run_ok(&["timeline", p(&dir), "--summary"], 0);
    assert_eq!(
        out,
        format!(
            "\
1 Ready of 2 Pods (records #1..#28): each stage's time since the previous one, ms (nearest rank)
STAGE            COUNT       P50       P90       P99       MAX
port_committed       1   100.000   100.000   100.000   100.000
host_attached        1   100.000   100.000   100.000   100.000
type_changed         1   300.000   300.000   300.000   300.000
port_known           1   510.000   510.000   510.000   510.000
usable               1  2990.000  2990.000  2990.000  2990.000
flows_sent           0         -         -         -         -
flows_confirmed      1   100.000   100.000   100.000   100.000
ready                1  2912.000  2912.000  2912.000  2912.000
total                1  7012.000  7012.000  7012.000  7012.000
never ready: 1 Pod:
  {LONG} pod=default/db-0 last stage host_attached after 14.500s, failed
"
        )
    );
    // A corrupt record is skipped, said, and the exit status says so.
    corrupt(dir.path(), 16);
    let o = run(&["timeline", p(&dir), "--summary"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).starts_with("0 Ready of 2 Pods"),
        "{}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("#16 CORRUPT"), "{}", stderr(&o));
}

#[test]
fn timeline_port_shows_each_wait_s_stages() {
    let dir = stage_journal();
    let out = run_ok(&["timeline", p(&dir), "--port", "v2"], 0);
    let stages = &out[out.find("stages to Ready").expect(&out)..];
    assert_eq!(
        stages,
        "\
stages to Ready #21:
  added             +0.000s     0.000ms
  port_committed    +0.002s     2.000ms
  host_attached     +0.012s    10.000ms
  type_changed      +0.016s     4.000ms
  port_known        +0.036s    20.000ms
  usable            +0.046s    10.000ms
  flows_sent        +0.047s     1.000ms
  flows_confirmed   +0.049s     2.000ms
  ready             +0.049s     0.500ms
stages to Ready #111:
  (a re-wait from +18.000s: the switch's stages count from there)
  added             +0.000s     0.000ms
  port_committed    +0.002s     2.000ms
  host_attached     +0.012s    10.000ms
  type_changed      +0.016s     4.000ms
  port_known       +18.200s   200.000ms
  usable           +18.200s     0.000ms
  flows_sent       +18.202s     2.000ms
  flows_confirmed  +18.206s     4.000ms
  ready            +18.207s     1.000ms
"
    );
    // A Pod still waiting, and one deleted before it was ready.
    let out = run_ok(&["timeline", p(&dir), "--port", "v12"], 0);
    assert!(
        out.ends_with(
            "\
stages so far (type-change-requested at the last record):
  added             +0.000s     0.000ms
  port_committed    +0.003s     3.000ms
  host_attached     +0.010s     7.000ms
"
        ),
        "{out}"
    );
    let out = run_ok(&["timeline", p(&dir), "--port", "v11"], 0);
    assert!(
        out.ends_with(
            "\
stages until it was deleted (never ready):
  added             +0.000s     0.000ms
  port_committed    +0.004s     4.000ms
"
        ),
        "{out}"
    );
}

/// Every `<tag ...>` opening in `text` whose attributes contain `attr`.
fn elements<'a>(text: &'a str, tag: &str, attr: &str) -> Vec<&'a str> {
    text.split(&format!("<{tag} "))
        .skip(1)
        .map(|e| &e[..e.find('>').unwrap_or(e.len())])
        .filter(|e| e.contains(attr))
        .collect()
}

#[test]
fn timeline_svg_shows_stages_marks_disconnects_and_switch_silence() {
    let dir = stage_journal();
    let file = dir.path().join("stages.svg");
    let f = file.to_str().unwrap();
    let out = run_ok(&["timeline", p(&dir), "--svg", f], 0);
    assert_eq!(
        out,
        format!("wrote {f}: 12 ports, 111 records over 20.207s\n")
    );
    let svg = std::fs::read_to_string(&file).unwrap();
    assert_balanced(&svg);

    // A legend entry per stage (but the origin), and for the other marks.
    for stage in Stage::ALL.into_iter().skip(1) {
        assert_eq!(
            elements(
                &svg,
                "rect",
                &format!(r#"class="legend-stage" data-stage="{}""#, stage.name())
            )
            .len(),
            1,
            "{stage:?}"
        );
    }
    for text in [
        ">waiting for the next stage</text>",
        ">not ready yet</text>",
        ">switch disconnected</text>",
        ">PortStatus</text>",
    ] {
        assert!(svg.contains(text), "{text}");
    }

    // v2: a span per stage of its first wait, then the switch's stages of its re-wait; each
    // from the end of the previous stage to its own end, in its stage's colour.
    let v2 = svg_row(&svg, "v2");
    let spans: Vec<&str> = elements(v2, "rect", r#"class="stage""#);
    let names: Vec<&str> = spans
        .iter()
        .map(|e| {
            e.split("data-stage=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "port_committed",
            "host_attached",
            "type_changed",
            "port_known",
            "usable",
            "flows_sent",
            "flows_confirmed",
            "ready",
            "port_known",
            "usable",
            "flows_sent",
            "flows_confirmed",
            "ready"
        ]
    );
    for title in [
        "v2 port_committed: +2.000s .. +2.002s (0.002s)",
        "v2 port_known: +2.016s .. +2.036s (0.020s)",
        "v2 usable: +2.036s .. +2.046s (0.010s)",
        "v2 port_known: +20.000s .. +20.200s (0.200s)",
        "v2 flows_confirmed: +20.202s .. +20.206s (0.004s)",
    ] {
        assert!(
            v2.contains(&format!("<title>{title}</title>")),
            "{title}: {v2}"
        );
    }
    assert!(spans[3].contains(r##"fill="#b07aa1""##), "{}", spans[3]);
    assert!(spans[0].contains(r##"fill="#4e79a7""##), "{}", spans[0]);
    // Ready between the waits.
    assert!(v2.contains("v2 ready: +2.049s .. +20.000s</title>"), "{v2}");
    assert!(
        elements(v2, "rect", r#"class="pending""#).is_empty(),
        "{v2}"
    );

    // v3 never got its flows back: it waits for flows_sent to the end.
    let v3 = svg_row(&svg, "v3");
    assert_eq!(elements(v3, "rect", r#"class="stage""#).len(), 10, "{v3}");
    let pending = elements(v3, "rect", r#"class="pending""#);
    assert_eq!(pending.len(), 1, "{v3}");
    assert!(
        pending[0].contains(r#"data-stage="flows_sent""#),
        "{}",
        pending[0]
    );
    // v12 waits for its type change from its attach; v11 for its attach, until its deletion.
    let v12 = svg_row(&svg, "v12");
    assert!(
        v12.contains(
            "v12 waiting for type_changed: +12.010s .. +20.207s (8.197s), not reached</title>"
        ),
        "{v12}"
    );
    let v11 = svg_row(&svg, "v11");
    assert!(
        v11.contains(
            "v11 waiting for host_attached: +11.004s .. +11.500s (0.496s), not reached</title>"
        ),
        "{v11}"
    );
    assert!(v11.contains(r#"<rect class="removing" "#) && v11.contains(r#"<rect class="gone" "#));

    // "Not ready yet" reports: v12's two.
    assert_eq!(elements(&svg, "path", r#"class="not-ready""#).len(), 2);
    assert!(
        v12.contains("+15.010s #101 not ready yet: type-change-requested, waited 3.000s</title>"),
        "{v12}"
    );
    assert_eq!(elements(v12, "path", r#"class="not-ready""#).len(), 2);

    // The disconnect: one line across every row.
    assert_eq!(svg.matches(r#"<g class="disconnect">"#).count(), 1);
    let disconnect = &svg[svg.find(r#"<g class="disconnect">"#).unwrap()..];
    let disconnect = &disconnect[..disconnect.find("</g>").unwrap()];
    assert!(
        disconnect.contains(
            "+20.000s #103 switch disconnected: the switch closed the connection</title>"
        ),
        "{disconnect}"
    );
    let line = elements(disconnect, "line", "y2=")[0];
    let y = |attr: &str| -> f64 {
        line.split(&format!("{attr}=\""))
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let rows_top = svg_row(&svg, "v1");
    let label_y: f64 = rows_top
        .split("y=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        y("y1") < label_y - 10.0 && y("y2") >= label_y + 11.0 * 24.0,
        "{line}"
    );

    // The switch was silent while v12 waited for its type change, until the reconnect.
    assert_eq!(
        svg.matches(r#"<g class="switch-silent">"#).count(),
        1,
        "{svg}"
    );
    let silent = &svg[svg.find(r#"<g class="switch-silent">"#).unwrap()..];
    let silent = &silent[..silent.find("</g>").unwrap()];
    assert!(silent.contains(">switch silent 8.1 s</text>"), "{silent}");
    assert!(silent.contains("<title>+12.010s .. +20.100s: "), "{silent}");
}
