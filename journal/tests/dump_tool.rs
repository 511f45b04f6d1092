//! The `podport-journal` binary against a known journal: every subcommand's output checked
//! exactly, a corrupt record, a journal locked by a running agent, a missing directory.

use std::path::Path;
use std::process::{Command, Output};

use podport_journal::dump::record_from_json_line;
use podport_journal::{
    Event, Journal, JournalConfig, JournalReader, Outcome, PodRef, PortDesc, PortReason,
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
/// Pod default/db-0 (a 21-byte ifname, 15 on the wire) gets a port but stays not ready.
/// A snapshot is taken after #14.
fn events() -> Vec<(u64, Event)> {
    vec![
        (
            ms(0),
            Event::AgentStarted {
                version: "0.1.0".into(),
                config_digest: "sha256:c0ffee".into(),
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
            ms(1_000),
            Event::PodPortCreated {
                pod: pod("default", "web-1"),
                container_id: "c1".into(),
                ifname: "vnic-1".into(),
                port_uuid: "11111111-1111-1111-1111-111111111111".into(),
                interface_uuid: "22222222-2222-2222-2222-222222222222".into(),
                ips: vec!["10.0.0.5/24".into()],
                mac: "02:00:0a:00:00:05".into(),
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
            Event::PodPortCreated {
                pod: pod("default", "db-0"),
                container_id: "c2".into(),
                ifname: LONG.into(),
                port_uuid: "33333333-3333-3333-3333-333333333333".into(),
                interface_uuid: "44444444-4444-4444-4444-444444444444".into(),
                ips: vec!["10.0.0.6/24".into(), "fd00::6/64".into()],
                mac: "02:00:0a:00:00:06".into(),
            },
        ),
        (
            ms(3_500),
            Event::InterfaceTypeChanged {
                ifname: LONG.into(),
                from: "system".into(),
                to: "internal".into(),
                outcome: Outcome::Failed("device busy".into()),
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
                cookie: 0x5eed_0001,
                count: 4,
            },
        ),
        (
            ms(8_012),
            Event::PodReady {
                ifname: "vnic-1".into(),
                port_no: 5,
                waited_ms: 7_012,
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
            ms(13_000),
            Event::PodNotReady {
                ifname: LONG.into(),
                phase: "waiting-live".into(),
                waited_ms: 10_000,
            },
        ),
        (
            ms(14_000),
            Event::PodFailed {
                ifname: LONG.into(),
                error: "port 6 is LINK_DOWN".into(),
            },
        ),
        (
            ms(15_000),
            Event::Reconciled {
                ifname: "vnic-1".into(),
                finding: "ready".into(),
            },
        ),
        (
            ms(16_000),
            Event::FlowsRemoved {
                ifname: "vnic-1".into(),
                cookie: 0x5eed_0001,
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

const SNAPSHOT_AFTER: u64 = 14;

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
#1 12:00:00.000 AgentStarted version=0.1.0 config=sha256:c0ffee
#2 12:00:00.050 SwitchConnected endpoint=tcp:127.0.0.1:6653 dpid=0x000000000000abcd of=1.3
#3 12:00:01.000 PodPortCreated pod=default/web-1 ifname=vnic-1 container=c1 ips=10.0.0.5/24 mac=02:00:0a:00:00:05
#4 12:00:01.200 HostInterfaceCreated ifname=vnic-1
#5 12:00:01.500 InterfaceTypeChanged ifname=vnic-1 from=system to=internal ok
#6 12:00:02.000 OvsdbInterfaceUpdate ifname=vnic-1 ofport=5
#7 12:00:02.010 PortStatus ADD port=5 name=vnic-1 state=LINK_DOWN config=0 hw=02:00:00:00:00:05
#8 12:00:03.000 PodPortCreated pod=default/db-0 ifname=vnic-0123456789abcdef container=c2 ips=10.0.0.6/24,fd00::6/64 mac=02:00:0a:00:00:06
#9 12:00:03.500 InterfaceTypeChanged ifname=vnic-0123456789abcdef from=system to=internal failed error=\"device busy\"
#10 12:00:05.000 PortStatus MODIFY port=5 name=vnic-1 state=LIVE config=0 hw=02:00:00:00:00:05
#11 12:00:05.100 FlowsInstalled ifname=vnic-1 port=5 cookie=0x5eed0001 n=4
#12 12:00:08.012 PodReady ifname=vnic-1 port=5 waited=7.012s
#13 12:00:08.500 PortStatus ADD port=99 name=patch-tun state=LIVE config=0 hw=02:00:00:00:00:63
#14 12:00:09.000 PortDescSynced ports=4 [65534 br-int 0, 5 vnic-1 LIVE, 6 vnic-0123456789 LINK_DOWN, 99 patch-tun LIVE]
#15 12:00:13.000 PodNotReady ifname=vnic-0123456789abcdef phase=waiting-live waited=10.000s
#16 12:00:14.000 PodFailed ifname=vnic-0123456789abcdef error=\"port 6 is LINK_DOWN\"
#17 12:00:15.000 Reconciled ifname=vnic-1 finding=ready
#18 12:00:16.000 FlowsRemoved ifname=vnic-1 cookie=0x5eed0001 n=4
#19 12:00:16.100 PortStatus DELETE port=5 name=vnic-1 state=LINK_DOWN config=PORT_DOWN hw=02:00:00:00:00:05
#20 12:00:16.200 PodDeleted ifname=vnic-1
#21 12:00:17.000 SwitchDisconnected endpoint=tcp:127.0.0.1:6653 reason=\"connection reset by peer\"
#22 12:00:17.500 SwitchConnected endpoint=tcp:127.0.0.1:6653 dpid=0x000000000000abcd of=1.3
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
    assert_eq!(out.lines().count(), 22);
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
    let v: serde_json::Value = serde_json::from_str(lines[9]).unwrap();
    assert_eq!(v["time"], "2026-11-27T12:00:05.000Z");
    assert_eq!(v["event"]["kind"], "port_status_received");
    assert_eq!(v["event"]["reason"], "modify");
    assert_eq!(v["event"]["port"]["state"], 4);
    assert_eq!(
        lines[11],
        r#"{"seq":12,"ts_micros":1795780808012000,"time":"2026-11-27T12:00:08.012Z","event":{"kind":"pod_ready","ifname":"vnic-1","port_no":5,"waited_ms":7012}}"#
    );
}

#[test]
fn dump_port_keeps_its_records_and_the_wire_name_ones() {
    let dir = journal();
    let d = p(&dir);
    let out = run_ok(&["dump", d, "--port", "vnic-1"], 0);
    assert_eq!(seqs(&out), [3, 4, 5, 6, 7, 10, 11, 12, 14, 17, 18, 19, 20]);
    // Lines are the same as in the full dump.
    assert!(out.lines().all(|l| DUMP.lines().any(|d| d == l)));
    // A 21-byte name: the PORT_DESC lists its 15-byte wire name.
    let out = run_ok(&["dump", d, "--port", LONG], 0);
    assert_eq!(seqs(&out), [8, 9, 14, 15, 16]);
    // A port no Pod owns: its PortStatus and the PORT_DESC.
    let out = run_ok(&["dump", d, "--port", "patch-tun"], 0);
    assert_eq!(seqs(&out), [13, 14]);
    let out = run_ok(&["dump", d, "--port", "nothing"], 0);
    assert_eq!(out, "");
}

#[test]
fn dump_pod_follows_its_interfaces() {
    let dir = journal();
    let d = p(&dir);
    let out = run_ok(&["dump", d, "--pod", "default/db-0"], 0);
    assert_eq!(seqs(&out), [8, 9, 14, 15, 16]);
    // The PodPortCreated (#3) is before --since, the Pod is still found.
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
    assert_eq!(seqs(&out), [10, 11, 12, 14, 17, 18]);
    let o = run(&["dump", d, "--pod", "default/nobody"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("no PodPortCreated record for Pod default/nobody"),
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
        seqs(&run_ok(&["dump", d, "--since", "20"], 0)),
        [20, 21, 22]
    );
    assert_eq!(seqs(&run_ok(&["dump", d, "--until", "2"], 0)), [1, 2]);
    let out = run_ok(&["dump", d, "--since", "5", "--until", "7"], 0);
    let want: Vec<&str> = DUMP.lines().skip(4).take(3).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
    assert_eq!(run_ok(&["dump", d, "--since", "23"], 0), "");
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
    assert_eq!(
        run_ok(&["state", d], 0),
        "\
last seq: 22  snapshot: #14 + 8 records  switch: tcp:127.0.0.1:6653 dpid=0x000000000000abcd of=1.3  foreign PortStatus: 1
INTERFACE              POD           PORT  STATE      TYPE  FLOWS  PHASE         READY SINCE
vnic-0123456789abcdef  default/db-0  6     LINK_DOWN  -     -      waiting-live  -
"
    );
    // Before the snapshot: replayed from the first record.
    assert_eq!(
        run_ok(&["state", d, "--at", "12"], 0),
        "\
last seq: 12  snapshot: none (12 records)  switch: tcp:127.0.0.1:6653 dpid=0x000000000000abcd of=1.3  foreign PortStatus: 0
INTERFACE              POD            PORT  STATE  TYPE      FLOWS                  PHASE    READY SINCE
vnic-0123456789abcdef  default/db-0   -     -      -         -                      created  -
vnic-1                 default/web-1  5     LIVE   internal  cookie=0x5eed0001 n=4  ready    2026-11-27T12:00:08.012Z
"
    );
    let at14 = run_ok(&["state", d, "--at", "14"], 0);
    assert!(
        at14.starts_with("last seq: 14  snapshot: #14 + 0 records  "),
        "{at14}"
    );
    let at21 = run_ok(&["state", d, "--at", "21"], 0);
    assert!(
        at21.starts_with("last seq: 21  snapshot: #14 + 7 records  switch: disconnected  "),
        "{at21}"
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
    assert_eq!(v["last_seq"], 22);
    assert_eq!(v["snapshot_seq"], 14);
    assert_eq!(v["records_replayed"], 8);
    assert!(v["stopped_at"].is_null());
    let state: podport_journal::State = serde_json::from_value(v["state"].clone()).unwrap();
    assert_eq!(state.last_seq, 22);
    assert_eq!(state.foreign_port_status, 1);
    let port = &state.ports[LONG];
    assert_eq!((port.port_no, port.state), (Some(6), 1));
    assert_eq!(port.last_error.as_deref(), Some("port 6 is LINK_DOWN"));
    assert!(!state.ports.contains_key("vnic-1"));

    let out = run_ok(&["state", p(&dir), "--json", "--at", "12"], 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["last_seq"], 12);
    assert!(v["snapshot_seq"].is_null());
    assert_eq!(v["state"]["ports"]["vnic-1"]["ready_since"], ms(8_012));
}

#[test]
fn timeline_of_a_port_has_offsets_from_its_creation() {
    let dir = journal();
    let d = p(&dir);
    assert_eq!(
        run_ok(&["timeline", d, "--port", "vnic-1"], 0),
        "\
vnic-1 pod=default/web-1: 13 records, +0 = #3 2026-11-27T12:00:01.000Z
+0.000s PodPortCreated pod=default/web-1 ifname=vnic-1 container=c1 ips=10.0.0.5/24 mac=02:00:0a:00:00:05
+0.200s HostInterfaceCreated ifname=vnic-1
+0.500s InterfaceTypeChanged ifname=vnic-1 from=system to=internal ok
+1.000s OvsdbInterfaceUpdate ifname=vnic-1 ofport=5
+1.010s PortStatus ADD port=5 name=vnic-1 state=LINK_DOWN config=0 hw=02:00:00:00:00:05
+4.000s PortStatus MODIFY port=5 name=vnic-1 state=LIVE config=0 hw=02:00:00:00:00:05
+4.100s FlowsInstalled ifname=vnic-1 port=5 cookie=0x5eed0001 n=4
+7.012s PodReady ifname=vnic-1 port=5 waited=7.012s
+8.000s PortDescSynced ports=4 [65534 br-int 0, 5 vnic-1 LIVE, 6 vnic-0123456789 LINK_DOWN, 99 patch-tun LIVE]
+14.000s Reconciled ifname=vnic-1 finding=ready
+15.000s FlowsRemoved ifname=vnic-1 cookie=0x5eed0001 n=4
+15.100s PortStatus DELETE port=5 name=vnic-1 state=LINK_DOWN config=PORT_DOWN hw=02:00:00:00:00:05
+15.200s PodDeleted ifname=vnic-1
"
    );
    assert_eq!(
        run_ok(&["timeline", d, "--port", LONG], 0),
        "\
vnic-0123456789abcdef pod=default/db-0: 5 records, +0 = #8 2026-11-27T12:00:03.000Z
+0.000s PodPortCreated pod=default/db-0 ifname=vnic-0123456789abcdef container=c2 ips=10.0.0.6/24,fd00::6/64 mac=02:00:0a:00:00:06
+0.500s InterfaceTypeChanged ifname=vnic-0123456789abcdef from=system to=internal failed error=\"device busy\"
+6.000s PortDescSynced ports=4 [65534 br-int 0, 5 vnic-1 LIVE, 6 vnic-0123456789 LINK_DOWN, 99 patch-tun LIVE]
+10.000s PodNotReady ifname=vnic-0123456789abcdef phase=waiting-live waited=10.000s
+11.000s PodFailed ifname=vnic-0123456789abcdef error=\"port 6 is LINK_DOWN\"
"
    );
    // No PodPortCreated: offsets from its first record.
    assert_eq!(
        run_ok(&["timeline", d, "--port", "patch-tun"], 0),
        "\
patch-tun: 2 records, +0 = #13 2026-11-27T12:00:08.500Z
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
        format!("wrote {f}: 2 ports, 22 records over 17.500s\n")
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
    assert!(web.contains(r##"<rect class="ready" "##) && web.contains(r##"fill="#2ca02c""##));
    assert!(web.contains(r#"<rect class="gone" "#));
    assert!(web.contains("ready: +8.012s .. +16.000s"), "{web}");
    // ADD, MODIFY, DELETE.
    assert_eq!(web.matches(r#"<line class="tick""#).count(), 3);
    let db = svg_row(&svg, LONG);
    assert!(db.contains(&format!(">{LONG}</text>")));
    assert!(!db.contains("ready") && !db.contains("#2ca02c"), "{db}");
    assert!(db.contains("waiting: +3.000s .. +9.000s"), "{db}");
    assert!(db.contains("allocated: +9.000s .. +17.500s"), "{db}");
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
    assert!(out.contains(": 1 ports, 22 records"), "{out}");
    let svg = std::fs::read_to_string(&one).unwrap();
    assert_eq!(svg.matches(r#"<g class="port""#).count(), 1);
}

#[test]
fn verify_and_stats_of_a_good_journal() {
    let dir = journal();
    let d = p(&dir);
    assert_eq!(
        run_ok(&["verify", d], 0),
        "ok: 22 records, 1 snapshots, seq 1..22\n"
    );
    let out = run_ok(&["stats", d], 0);
    let bytes_line = out.lines().find(|l| l.starts_with("bytes:")).unwrap();
    let bytes: u64 = bytes_line["bytes:".len()..].trim().parse().unwrap();
    assert!(bytes > 22 * 13, "{bytes}");
    assert_eq!(
        out.replace(bytes_line, "bytes:     N"),
        "\
records:   22
seq:       1..22
corrupt:   0
bytes:     N
snapshots: 1 (#14)
by kind:
  AgentStarted          1
  FlowsInstalled        1
  FlowsRemoved          1
  HostInterfaceCreated  1
  InterfaceTypeChanged  2
  OvsdbInterfaceUpdate  1
  PodDeleted            1
  PodFailed             1
  PodNotReady           1
  PodPortCreated        2
  PodReady              1
  PortDescSynced        1
  PortStatus            4
  Reconciled            1
  SwitchConnected       2
  SwitchDisconnected    1
"
    );
    let v: serde_json::Value = serde_json::from_str(&run_ok(&["stats", d, "--json"], 0)).unwrap();
    assert_eq!(v["records"], 22);
    assert_eq!(v["first_seq"], 1);
    assert_eq!(v["last_seq"], 22);
    assert_eq!(v["bytes"], bytes);
    assert_eq!(v["by_kind"]["PortStatus"], 4);
    assert_eq!(v["snapshots"], serde_json::json!([14]));
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
    corrupt(dir.path(), 16);
    let d = p(&dir);

    let o = run(&["verify", d]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("#16: CRC-32C mismatch: stored 0x"), "{out}");
    assert!(stderr(&o).contains("the first #16"), "{}", stderr(&o));

    let o = run(&["dump", d]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 22);
    assert!(
        lines[15].starts_with("#16 CORRUPT: CRC-32C mismatch"),
        "{}",
        lines[15]
    );
    for (i, (got, want)) in lines.iter().zip(DUMP.lines()).enumerate() {
        if i != 15 {
            assert_eq!(got, &want);
        }
    }
    assert!(
        stderr(&o).contains("1 corrupt record(s), the first #16"),
        "{}",
        stderr(&o)
    );

    let o = run(&["dump", d, "--json", "--since", "15", "--until", "17"]);
    assert_eq!(o.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["seq"], 16);
    assert!(lines[1]["corrupt"].as_str().unwrap().contains("CRC-32C"));
    // Out of the range asked for, it is neither shown nor counted.
    assert_eq!(run(&["dump", d, "--until", "15"]).status.code(), Some(0));

    // Replay from the snapshot (#14) stops at #16: the state as of #15, and a warning.
    let o = run(&["state", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).starts_with("last seq: 15  snapshot: #14 + 1 records  "),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("replay stopped at record #16"),
        "{}",
        stderr(&o)
    );
    // The state as of #15 does not need #16: no warning.
    let o = run(&["state", d, "--at", "15"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("last seq: 15  snapshot: #14 + 1 records  "));

    let o = run(&["timeline", d, "--port", LONG]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).starts_with("vnic-0123456789abcdef pod=default/db-0: 4 records"));
    assert!(stderr(&o).contains("#16 CORRUPT"), "{}", stderr(&o));

    let o = run(&["stats", d, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["records"].as_u64(), v["corrupt"].as_u64()),
        (Some(21), Some(1))
    );
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
