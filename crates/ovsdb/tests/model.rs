//! The data model against the real OVS schema and real captured monitor traffic
//! (`tests/data/README.md` says how it was captured), plus property tests of the replica.

use std::collections::BTreeMap;

use bytes::BytesMut;
use podport_ovsdb::datum::{Atom, AtomicType, Datum, Uuid};
use podport_ovsdb::replica::{ChangeKind, Replica, Row, UpdateError};
use podport_ovsdb::rows::{BridgeRow, InterfaceRow, PortRow, RowError};
use podport_ovsdb::schema::{ColumnKind, ColumnType, DbSchema, SchemaError, REQUIRED};
use podport_ovsdb::splitter::JsonSplitter;
use proptest::prelude::*;
use serde_json::{json, Value};

const SCHEMA_PATH: &str = "/usr/share/openvswitch/vswitch.ovsschema";

fn schema_json() -> Value {
    let text = std::fs::read_to_string(SCHEMA_PATH)
        .unwrap_or_else(|e| panic!("{SCHEMA_PATH}: {e} (install openvswitch-switch)"));
    serde_json::from_str(&text).unwrap()
}

fn schema() -> DbSchema {
    DbSchema::from_json(&schema_json()).unwrap()
}

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The table-updates of each message of a capture: the `result` of the monitor reply, then
/// `params[1]` of each notification.
fn table_updates(lines: &str) -> Vec<Value> {
    lines
        .lines()
        .map(|l| {
            let msg: Value = serde_json::from_str(l).unwrap();
            match msg.get("result") {
                Some(r) => r.clone(),
                None => msg["params"][1].clone(),
            }
        })
        .collect()
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap()
}

fn iface(r: &Replica, u: &str) -> InterfaceRow {
    InterfaceRow::from_row(uuid(u), r.get("Interface", &uuid(u)).expect("row present")).unwrap()
}

fn smap(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const BR_INT: &str = "e0313b29-ee7d-4641-a8d8-d52485a2e5af";
const P1: &str = "02c85bec-b4e5-49c3-90b7-ea1c2c69ba8c";
const P2: &str = "e291dd6f-becb-44c0-8a0e-115d277af199";

// ---------------------------------------------------------------- schema

#[test]
fn real_schema_parses_and_has_what_podport_needs() {
    let s = schema();
    assert_eq!(s.name, "Open_vSwitch");
    assert!(!s.version.is_empty());
    s.check(REQUIRED).unwrap();

    let col = |t, c| s.column(t, c).unwrap().clone();
    assert_eq!(
        col("Interface", "name"),
        ColumnType::scalar(AtomicType::String)
    );
    assert_eq!(col("Interface", "type").kind(), ColumnKind::Scalar);
    let ofport = col("Interface", "ofport");
    assert_eq!(
        ofport,
        ColumnType {
            key: AtomicType::Integer,
            value: None,
            min: 0,
            max: Some(1)
        }
    );
    assert_eq!(ofport.kind(), ColumnKind::Set);
    assert!(!ofport.is_composite());
    // ofport_request's key is a base-type object with minInteger/maxInteger.
    assert_eq!(col("Interface", "ofport_request"), ofport);
    // admin_state's key has an enum.
    assert_eq!(col("Interface", "admin_state").key, AtomicType::String);
    let ext = col("Interface", "external_ids");
    assert_eq!(ext.kind(), ColumnKind::Map);
    assert!(ext.is_composite());
    let ifaces = col("Port", "interfaces");
    assert_eq!(
        (ifaces.key, ifaces.min, ifaces.max),
        (AtomicType::Uuid, 1, None)
    );
    assert_eq!(col("Bridge", "ports").kind(), ColumnKind::Set);
    assert_eq!(
        s.column("Interface", "_uuid"),
        Some(&ColumnType::scalar(AtomicType::Uuid))
    );
}

#[test]
fn schema_lacking_a_column_or_table() {
    let mut v = schema_json();
    let version = v["version"].as_str().unwrap().to_string();
    v["tables"]["Interface"]["columns"]
        .as_object_mut()
        .unwrap()
        .remove("link_state");
    let err = DbSchema::from_json(&v)
        .unwrap()
        .check(REQUIRED)
        .unwrap_err();
    assert_eq!(
        err,
        SchemaError::MissingColumn {
            database: "Open_vSwitch".into(),
            version: version.clone(),
            table: "Interface".into(),
            column: "link_state".into()
        }
    );
    assert!(err.to_string().contains("Interface.link_state"), "{err}");
    assert!(err.to_string().contains(&version), "{err}");

    v["tables"].as_object_mut().unwrap().remove("Port");
    let err = DbSchema::from_json(&v)
        .unwrap()
        .check(REQUIRED)
        .unwrap_err();
    assert!(
        matches!(&err, SchemaError::MissingTable { table, .. } if table == "Port"),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- splitter on real bytes

fn split_stream(bytes: &[u8], chunk: usize) -> Vec<Value> {
    let mut s = JsonSplitter::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for c in bytes.chunks(chunk) {
        buf.extend_from_slice(c);
        while let Some(v) = s.decode(&mut buf).unwrap() {
            out.push(serde_json::from_slice(&v).unwrap());
        }
    }
    assert!(s.decode_eof(&mut buf).unwrap().is_none());
    out
}

#[test]
fn splitter_on_captured_streams() {
    for name in ["ovs31-monitor-cond.stream", "ovs31-monitor.stream"] {
        let bytes = data(name).into_bytes();
        let whole = split_stream(&bytes, bytes.len());
        assert_eq!(whole.len(), 6, "{name}");
        for chunk in [1, 2, 7, 64] {
            assert_eq!(
                split_stream(&bytes, chunk),
                whole,
                "{name} in {chunk}-byte reads"
            );
        }
    }
}

// ---------------------------------------------------------------- replica on real traffic

#[test]
fn initial_rows_get_defaults() {
    let s = schema();
    let mut r = Replica::default();
    let ups = table_updates(&data("ovs31-monitor-cond-4tables.jsonl"));
    let changes = r.apply_update2(&s, &ups[0]).unwrap();
    assert_eq!(changes.len(), 6);
    assert!(changes
        .iter()
        .all(|c| c.kind == ChangeKind::Initial && c.old.is_none()));

    // Omitted columns are at their default: no ofport_request, no error, no external_ids.
    let br = iface(&r, BR_INT);
    assert_eq!(
        br,
        InterfaceRow {
            uuid: uuid(BR_INT),
            name: "br-int".into(),
            iface_type: "internal".into(),
            ofport: Some(65534),
            ofport_request: None,
            error: None,
            external_ids: BTreeMap::new(),
            admin_state: Some("up".into()),
            link_state: Some("up".into()),
        }
    );
    // Every column of the schema is in the row, even unmonitored ones.
    let row = r.get("Interface", &uuid(BR_INT)).unwrap();
    assert_eq!(
        row.len(),
        s.tables["Interface"].columns.len(),
        "row has every schema column"
    );
    assert_eq!(row["mtu"], Datum::empty_set());

    let bridge_uuid = uuid("6a9cff21-f721-4150-ac32-5e5dbf05750d");
    let bridge = BridgeRow::from_row(bridge_uuid, r.get("Bridge", &bridge_uuid).unwrap()).unwrap();
    assert_eq!(bridge.name, "br-int");
    assert_eq!(bridge.datapath_type, "dummy");
    assert_eq!(
        bridge.ports,
        vec![
            uuid("c4e14e9d-2196-46f4-a663-708d9f3de396"),
            uuid("cd713dca-d15e-4efb-953c-484474324b4c")
        ]
    );
    let port_uuid = uuid("c4e14e9d-2196-46f4-a663-708d9f3de396");
    let port = PortRow::from_row(port_uuid, r.get("Port", &port_uuid).unwrap()).unwrap();
    assert_eq!(
        port,
        PortRow {
            uuid: port_uuid,
            name: "p2".into(),
            interfaces: vec![uuid(P2)],
            external_ids: BTreeMap::new()
        }
    );
    let (ovs_uuid, ovs) = r.table("Open_vSwitch").next().unwrap();
    assert_eq!(*ovs_uuid, uuid("d7c4eb5f-34c1-4c8b-92b2-bc55f43af181"));
    assert_eq!(ovs["bridges"].as_uuid_set(), vec![bridge_uuid]);
    assert_eq!(ovs["cur_cfg"].as_integer(), Some(11));
}

#[test]
fn captured_update2_sequence() {
    let s = schema();
    let mut r = Replica::default();
    let ups = table_updates(&data("ovs31-monitor-cond-interface.jsonl"));
    let mut step = ups.iter();
    let mut apply = |r: &mut Replica| r.apply_update2(&s, step.next().unwrap()).unwrap();

    apply(&mut r); // initial: br-int
    let c = apply(&mut r); // p1 inserted without ofport
    assert_eq!(c[0].kind, ChangeKind::Insert);
    assert_eq!(iface(&r, P1).ofport, None);
    assert_eq!(iface(&r, P1).external_ids, smap(&[("a", "1"), ("b", "2")]));

    // {"modify": {"admin_state": "up", "link_state": "up", "ofport": 1}}: [] → 1
    let c = apply(&mut r);
    assert_eq!(c[0].kind, ChangeKind::Modify);
    assert_eq!(c[0].old.as_ref().unwrap()["ofport"], Datum::empty_set());
    assert_eq!(c[0].new.as_ref().unwrap()["ofport"], Datum::integer(1));
    assert_eq!(iface(&r, P1).ofport, Some(1));
    assert_eq!(iface(&r, P1).link_state.as_deref(), Some("up"));

    apply(&mut r); // ofport_request [] → 13
    assert_eq!(iface(&r, P1).ofport_request, Some(13));
    // {"modify": {"ofport": 13}}: 1 → 13 carries the new value, not the difference.
    apply(&mut r);
    assert_eq!(iface(&r, P1).ofport, Some(13));

    // external_ids {a=1,b=2} with the difference [[a,9],[b,2],[c,3]]: a changed, b removed,
    // c added. ofport_request 13 → 100 in the same modify.
    apply(&mut r);
    assert_eq!(iface(&r, P1).external_ids, smap(&[("a", "9"), ("c", "3")]));
    assert_eq!(iface(&r, P1).ofport_request, Some(100));
    apply(&mut r); // ofport 13 → 100
    assert_eq!(iface(&r, P1).ofport, Some(100));

    apply(&mut r); // p2 inserted, already with ofport 2
    assert_eq!(iface(&r, P2).ofport, Some(2));
    let c = apply(&mut r); // p1 deleted
    assert_eq!(c[0].kind, ChangeKind::Delete);
    assert_eq!(c[0].new, None);
    assert_eq!(
        InterfaceRow::from_row(uuid(P1), c[0].old.as_ref().unwrap())
            .unwrap()
            .ofport,
        Some(100)
    );
    assert!(r.get("Interface", &uuid(P1)).is_none());

    apply(&mut r); // p2 ofport_request [] → 7
    apply(&mut r); // p2 ofport 2 → 7
    assert_eq!(iface(&r, P2).ofport, Some(7));
    // {"modify": {"ofport_request": ["set", []]}}: clearing sends the new (empty) value.
    apply(&mut r);
    assert_eq!(iface(&r, P2).ofport_request, None);
    apply(&mut r);
    assert_eq!(iface(&r, P2).error.as_deref(), Some("bang"));
    apply(&mut r);
    assert_eq!(iface(&r, P2).error, None);
    apply(&mut r); // p3 inserted
    apply(&mut r); // p3 deleted
    assert!(step.next().is_none());
    assert_eq!(r.table("Interface").count(), 2);
}

#[test]
fn update_and_update2_captures_agree() {
    let s = schema();
    let u2 = table_updates(&data("ovs31-monitor-cond-interface.jsonl"));
    let u1 = table_updates(&data("ovs31-monitor-interface.jsonl"));
    assert_eq!(u1.len(), u2.len());
    let (mut a, mut b) = (Replica::default(), Replica::default());
    for (i, (x, y)) in u2.iter().zip(&u1).enumerate() {
        let ca = a.apply_update2(&s, x).unwrap();
        let cb = b.apply_update(&s, y).unwrap();
        assert_eq!(a.tables, b.tables, "after message {i}");
        // Same rows before and after; only "initial" differs (the old format has none).
        for (ca, cb) in ca.iter().zip(&cb) {
            assert_eq!((&ca.uuid, &ca.old, &ca.new), (&cb.uuid, &cb.old, &cb.new));
            if ca.kind != ChangeKind::Initial {
                assert_eq!(ca.kind, cb.kind, "message {i}");
            }
        }
    }
}

#[test]
fn replica_with_selected_columns() {
    let s = schema();
    let mut all = Replica::default();
    let mut sel = Replica::with_columns(REQUIRED);
    for file in [
        "ovs31-monitor-cond-interface.jsonl",
        "ovs31-monitor-cond-4tables.jsonl",
    ] {
        all.clear();
        sel.clear();
        for u in table_updates(&data(file)) {
            let ca = all.apply_update2(&s, &u).unwrap();
            let cs = sel.apply_update2(&s, &u).unwrap();
            assert_eq!(ca.len(), cs.len());
            for (table, rows) in &all.tables {
                for (u, row) in rows {
                    let kept = sel.get(table, u).unwrap();
                    let (_, cols) = REQUIRED.iter().find(|(t, _)| t == table).unwrap();
                    assert_eq!(
                        kept.len(),
                        cols.len(),
                        "{table} keeps only its selected columns"
                    );
                    for (c, d) in kept {
                        assert_eq!(&row[c], d, "{table}.{c}");
                    }
                }
            }
        }
    }
    let (u, row) = sel.table("Interface").next().unwrap();
    assert_eq!(row.len(), 8);
    InterfaceRow::from_row(*u, row).unwrap();

    // Unselected tables and columns are ignored.
    let mut r = Replica::with_columns(&[("Interface", &["name", "ofport"])]);
    r.apply_update2(
        &s,
        &json!({"Port": {P1: {"insert": {"name": "x"}}},
                "Interface": {P1: {"insert": {"name": "p1", "type": "dummy"}}}}),
    )
    .unwrap();
    assert!(!r.tables.contains_key("Port"));
    let row = r.get("Interface", &uuid(P1)).unwrap();
    assert_eq!(row.keys().collect::<Vec<_>>(), ["name", "ofport"]);
    r.apply_update2(
        &s,
        &json!({"Interface": {P1: {"modify": {"type": "system", "ofport": 3}}}}),
    )
    .unwrap();
    let row = r.get("Interface", &uuid(P1)).unwrap();
    assert_eq!(row.len(), 2);
    assert_eq!(row["ofport"], Datum::integer(3));
}

#[test]
fn set_column_differences_from_capture() {
    // Bridge.ports (a composite set): adding p3 and removing it both send the one UUID.
    let s = schema();
    let mut r = Replica::default();
    let ups = table_updates(&data("ovs31-monitor-cond-4tables.jsonl"));
    let bridge = uuid("6a9cff21-f721-4150-ac32-5e5dbf05750d");
    let p3_port = uuid("be130956-b8a0-46fd-8f29-d5a12119ee76");
    let ports = |r: &Replica| {
        BridgeRow::from_row(bridge, r.get("Bridge", &bridge).unwrap())
            .unwrap()
            .ports
    };
    r.apply_update2(&s, &ups[0]).unwrap();
    assert_eq!(ports(&r).len(), 2);
    let c = r.apply_update2(&s, &ups[1]).unwrap();
    assert_eq!(ports(&r).len(), 3);
    assert!(ports(&r).contains(&p3_port));
    // Changes come in table order, then UUID order.
    let tables: Vec<&str> = c.iter().map(|c| c.table.as_str()).collect();
    assert_eq!(tables, ["Bridge", "Interface", "Open_vSwitch", "Port"]);
    let port = PortRow::from_row(p3_port, r.get("Port", &p3_port).unwrap()).unwrap();
    let p3 = iface(&r, &port.interfaces[0].to_string());
    assert_eq!(p3.ofport_request, Some(20));
    assert_eq!(p3.external_ids, smap(&[("iface-id", "pod-a")]));
    r.apply_update2(&s, &ups[2]).unwrap();
    assert_eq!(ports(&r).len(), 2);
    assert!(!ports(&r).contains(&p3_port));
    assert!(r.get("Port", &p3_port).is_none());
}

// ---------------------------------------------------------------- replica edge cases

fn replica_with_p1(s: &DbSchema) -> Replica {
    let mut r = Replica::default();
    r.apply_update2(
        s,
        &json!({"Interface": {P1: {"initial": {"name": "p1", "type": "dummy", "ofport": 5,
            "external_ids": ["map", [["a", "1"]]]}}}}),
    )
    .unwrap();
    r
}

#[test]
fn modify_replaces_scalars_and_optional_columns() {
    let s = schema();
    let mut r = replica_with_p1(&s);
    // `type` is a scalar; `ofport` (min 0, max 1) gets the new value too, as OVS 3.1 sends it
    // (5 → 6 arrives as 6, not as the difference ["set", [5, 6]]); `external_ids` is a map
    // difference.
    let c = r
        .apply_update2(
            &s,
            &json!({"Interface": {P1: {"modify": {"type": "system", "ofport": 6,
                "external_ids": ["map", [["b", "2"]]]}}}}),
        )
        .unwrap();
    assert_eq!(c[0].kind, ChangeKind::Modify);
    let i = iface(&r, P1);
    assert_eq!((i.iface_type.as_str(), i.ofport), ("system", Some(6)));
    assert_eq!(i.external_ids, smap(&[("a", "1"), ("b", "2")]));
    r.apply_update2(
        &s,
        &json!({"Interface": {P1: {"modify": {"ofport": ["set", []],
        "external_ids": ["map", [["a", "1"]]]}}}}),
    )
    .unwrap();
    let i = iface(&r, P1);
    assert_eq!(i.ofport, None);
    assert_eq!(i.external_ids, smap(&[("b", "2")]));
}

#[test]
fn unknown_tables_and_columns_are_ignored() {
    let s = schema();
    let mut r = replica_with_p1(&s);
    let c = r
        .apply_update2(
            &s,
            &json!({
                "Future_Table": {P2: {"insert": {"x": 1}}},
                "Interface": {P1: {"modify": {"future_column": ["set", [1, 2]], "ofport": 6}}}
            }),
        )
        .unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(iface(&r, P1).ofport, Some(6));
    assert!(!r.tables.contains_key("Future_Table"));
    assert!(!r
        .get("Interface", &uuid(P1))
        .unwrap()
        .contains_key("future_column"));

    let c = r
        .apply_update(&s, &json!({"Future_Table": {P2: {"new": {"x": 1}}}}))
        .unwrap();
    assert!(c.is_empty());
}

#[test]
fn delete_of_unknown_row_is_ignored() {
    let s = schema();
    let mut r = replica_with_p1(&s);
    let before = r.tables.clone();
    assert_eq!(
        r.apply_update2(&s, &json!({"Interface": {P2: {"delete": null}}})),
        Ok(vec![])
    );
    assert_eq!(
        r.apply_update(&s, &json!({"Interface": {P2: {"old": {}}}})),
        Ok(vec![])
    );
    assert_eq!(r.tables, before);
}

/// A writer into a shared buffer, for the replica's log lines.
#[derive(Clone, Default)]
struct LogBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// ovsdb-server sends deletes for rows the client never received (OVS's "monitor delete
/// only" test: a monitor without initial rows or inserts gets a delete for each row removed).
/// The replica ignores them, changes nothing else, and logs at debug level, not as a warning.
#[test]
fn delete_of_a_row_never_sent_is_ignored_quietly() {
    let s = schema();
    let mut r = replica_with_p1(&s);
    let before = r.tables.clone();
    let log = LogBuf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        // Alone, and beside a change of a row it holds, in the same update.
        assert_eq!(
            r.apply_update2(&s, &json!({"Interface": {P2: {"delete": null}}})),
            Ok(vec![])
        );
        assert_eq!(r.tables, before);
        let c = r
            .apply_update2(
                &s,
                &json!({"Interface": {P2: {"delete": null}, P1: {"modify": {"ofport": 9}}}}),
            )
            .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].uuid, uuid(P1));
        assert_eq!(c[0].kind, ChangeKind::Modify);
        assert_eq!(iface(&r, P1).ofport, Some(9));
        assert!(r.get("Interface", &uuid(P2)).is_none());
        assert_eq!(r.table("Interface").count(), before["Interface"].len());
    });
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("deletes a row"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines.iter().all(|l| l.contains("DEBUG") && l.contains(P2)),
        "{log}"
    );
    assert!(!log.contains("WARN"), "{log}");
}

#[test]
fn modify_of_unknown_row_is_an_error() {
    let s = schema();
    let mut r = replica_with_p1(&s);
    assert_eq!(
        r.apply_update2(&s, &json!({"Interface": {P2: {"modify": {"ofport": 1}}}})),
        Err(UpdateError::UnknownRow {
            table: "Interface".into(),
            uuid: uuid(P2)
        })
    );
}

#[test]
fn clear_empties() {
    let s = schema();
    let mut r = replica_with_p1(&s);
    r.clear();
    assert_eq!(r.table("Interface").count(), 0);
}

#[test]
fn malformed_updates_are_errors_and_change_nothing() {
    let s = schema();
    let bad2 = [
        json!(null),
        json!([]),
        json!({"Interface": []}),
        json!({"Interface": {"not-a-uuid": {"insert": {}}}}),
        json!({"Interface": {P2: "insert"}}),
        json!({"Interface": {P2: {}}}),
        json!({"Interface": {P2: {"insert": {}, "delete": null}}}),
        json!({"Interface": {P2: {"upsert": {}}}}),
        json!({"Interface": {P2: {"insert": [1]}}}),
        json!({"Interface": {P2: {"insert": {"ofport": "five"}}}}),
        json!({"Interface": {P2: {"insert": {"external_ids": ["set", []]}}}}),
        json!({"Interface": {P1: {"modify": null}}}),
        json!({"Interface": {P1: {"modify": {"ofport": ["set", [1, "x"]]}}}}),
        json!({"Interface": {P1: {"modify": {"name": ["uuid", P1]}}}}),
        // A good change before a bad one must not be applied either.
        json!({"Interface": {P1: {"delete": null}, P2: {"insert": {"ofport": true}}}}),
    ];
    for u in bad2 {
        let mut r = replica_with_p1(&s);
        let before = r.tables.clone();
        let res = r.apply_update2(&s, &u);
        assert!(res.is_err(), "{u} was accepted");
        assert_eq!(r.tables, before, "{u} changed the replica");
    }
    let bad1 = [
        json!("x"),
        json!({"Interface": {P2: {}}}),
        json!({"Interface": {P2: {"new": {}, "extra": 1}}}),
        json!({"Interface": {P2: {"new": 5}}}),
        json!({"Interface": {P1: {"old": 5}}}),
        json!({"Interface": {P2: {"new": {"name": 5}}}}),
    ];
    for u in bad1 {
        let mut r = replica_with_p1(&s);
        let before = r.tables.clone();
        assert!(r.apply_update(&s, &u).is_err(), "{u} was accepted");
        assert_eq!(r.tables, before, "{u} changed the replica");
    }
    let mut r = replica_with_p1(&s);
    let err = r
        .apply_update2(&s, &json!({"Interface": {P1: {"modify": {"ofport": "x"}}}}))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("update for Interface row {P1}, column ofport: expected an integer, found \"x\"")
    );
}

// ---------------------------------------------------------------- rows

#[test]
fn rows_report_missing_and_mistyped_columns() {
    let s = schema();
    let r = replica_with_p1(&s);
    let row = r.get("Interface", &uuid(P1)).unwrap().clone();
    let ok = InterfaceRow::from_row(uuid(P1), &row).unwrap();
    assert!(!ok.is_failed());
    assert_eq!(ok.iface_type, "dummy");

    let mut missing = row.clone();
    missing.remove("ofport");
    let err = InterfaceRow::from_row(uuid(P1), &missing).unwrap_err();
    assert_eq!(
        err,
        RowError {
            table: "Interface",
            uuid: uuid(P1),
            column: "ofport",
            reason: "missing".into()
        }
    );
    assert_eq!(
        err.to_string(),
        format!("Interface row {P1}: column ofport: missing")
    );

    let cases: [(&str, Datum); 6] = [
        ("ofport", Datum::string("5")),
        ("ofport", Datum::set([Atom::Integer(1), Atom::Integer(2)])),
        ("name", Datum::empty_set()),
        ("external_ids", Datum::set_of_strings(["a"])),
        ("error", Datum::integer(1)),
        ("type", Datum::empty_map()),
    ];
    for (column, d) in cases {
        let mut bad = row.clone();
        bad.insert(column.to_string(), d.clone());
        let err = InterfaceRow::from_row(uuid(P1), &bad).unwrap_err();
        assert_eq!(err.column, column, "{d:?}");
    }

    let mut failed = row.clone();
    failed.insert("ofport".into(), Datum::integer(-1));
    failed.insert(
        "error".into(),
        Datum::string("could not open network device p1 (No such device)"),
    );
    let f = InterfaceRow::from_row(uuid(P1), &failed).unwrap();
    assert!(f.is_failed());
    assert!(f.error.unwrap().contains("No such device"));

    let mut port: Row = BTreeMap::new();
    port.insert("name".into(), Datum::string("p1"));
    port.insert("interfaces".into(), Datum::set([Atom::String("x".into())]));
    port.insert("external_ids".into(), Datum::empty_map());
    assert_eq!(
        PortRow::from_row(uuid(P1), &port).unwrap_err().column,
        "interfaces"
    );
    assert_eq!(
        BridgeRow::from_row(uuid(P1), &port).unwrap_err().column,
        "ports"
    );
}

// ---------------------------------------------------------------- property: diffs replay

/// A small schema with every kind of column.
fn prop_schema() -> DbSchema {
    DbSchema::from_json(&json!({
        "name": "P", "version": "1.0.0", "tables": {"T": {"columns": {
            "i": {"type": "integer"},
            "s": {"type": "string"},
            "b": {"type": "boolean"},
            "r": {"type": "real"},
            "oi": {"type": {"key": "integer", "min": 0, "max": 1}},
            "os": {"type": {"key": "string", "min": 0, "max": 1}},
            "ss": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
            "us": {"type": {"key": {"type": "uuid", "refTable": "T"}, "min": 1, "max": "unlimited"}},
            "is3": {"type": {"key": "integer", "min": 0, "max": 3}},
            "m": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
            "om": {"type": {"key": "string", "value": "integer", "min": 0, "max": 1}}
        }}}
    }))
    .unwrap()
}

fn small_string() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[ab]{1,2}", "\\PC{0,4}"]
}

fn prop_row() -> impl Strategy<Value = Row> {
    let str_atom = || small_string().prop_map(Atom::String);
    let uuids = (0u128..4).prop_map(|u| Atom::Uuid(Uuid::from_u128(u)));
    (
        (
            -2i64..3,
            small_string(),
            any::<bool>(),
            prop_oneof![Just(0.0), Just(1.5), Just(-2.0)],
        ),
        (
            proptest::option::of(-1i64..3),
            proptest::option::of(small_string()),
            proptest::collection::vec(str_atom(), 0..4),
            proptest::collection::vec(uuids, 1..4),
            proptest::collection::vec((0i64..5).prop_map(Atom::Integer), 0..3),
            proptest::collection::vec((small_string(), small_string()), 0..4),
            proptest::option::of((small_string(), -1i64..2)),
        ),
    )
        .prop_map(|((i, s, b, r), (oi, os, ss, us, is3, m, om))| {
            let mut row = Row::new();
            row.insert("i".into(), Datum::integer(i));
            row.insert("s".into(), Datum::string(s));
            row.insert("b".into(), Datum::boolean(b));
            row.insert("r".into(), Datum::scalar(Atom::Real(r)));
            row.insert("oi".into(), Datum::optional_integer(oi));
            row.insert("os".into(), Datum::optional_string(os.as_deref()));
            row.insert("ss".into(), Datum::set(ss));
            row.insert("us".into(), Datum::set(us));
            row.insert("is3".into(), Datum::set(is3));
            row.insert(
                "m".into(),
                Datum::map(
                    m.into_iter()
                        .map(|(k, v)| (Atom::String(k), Atom::String(v))),
                ),
            );
            row.insert(
                "om".into(),
                Datum::map(om.map(|(k, v)| (Atom::String(k), Atom::Integer(v)))),
            );
            row
        })
}

/// What ovsdb-server would send in a "modify" for `old` → `new` of one column: the new value
/// unless the column is composite, in which case the difference (`ovsdb_datum_diff`).
fn column_diff(ty: &ColumnType, old: &Datum, new: &Datum) -> Datum {
    if !ty.is_composite() {
        return new.clone();
    }
    match (old, new) {
        (Datum::Set(o), Datum::Set(n)) => Datum::set(
            o.iter()
                .filter(|a| !n.contains(a))
                .chain(n.iter().filter(|a| !o.contains(a)))
                .cloned(),
        ),
        (Datum::Map(o), Datum::Map(n)) => {
            let find = |m: &[(Atom, Atom)], k: &Atom| {
                m.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone())
            };
            let mut d = Vec::new();
            for (k, v) in o {
                if find(n, k).is_none() {
                    d.push((k.clone(), v.clone()));
                }
            }
            for (k, v) in n {
                if find(o, k).as_ref() != Some(v) {
                    d.push((k.clone(), v.clone()));
                }
            }
            Datum::map(d)
        }
        _ => unreachable!("generated rows are well typed"),
    }
}

type State = BTreeMap<Uuid, Row>;

/// The update2 table-updates taking `prev` to `next`.
fn update2(s: &DbSchema, prev: &State, next: &State) -> Value {
    let cols = &s.tables["T"].columns;
    let mut rows = serde_json::Map::new();
    let uuids: std::collections::BTreeSet<&Uuid> = prev.keys().chain(next.keys()).collect();
    for u in uuids {
        let ru = match (prev.get(u), next.get(u)) {
            (None, Some(n)) => {
                let body: serde_json::Map<String, Value> = n
                    .iter()
                    .filter(|(c, d)| **d != Datum::default_for(&cols[*c]))
                    .map(|(c, d)| (c.clone(), d.to_json()))
                    .collect();
                json!({"insert": body})
            }
            (Some(_), None) => json!({"delete": null}),
            (Some(o), Some(n)) if o != n => {
                let body: serde_json::Map<String, Value> = n
                    .iter()
                    .filter(|(c, d)| o[*c] != **d)
                    .map(|(c, d)| (c.clone(), column_diff(&cols[c], &o[c], d).to_json()))
                    .collect();
                json!({"modify": body})
            }
            _ => continue,
        };
        rows.insert(u.to_string(), ru);
    }
    json!({ "T": rows })
}

/// The old-format table-updates taking `prev` to `next`.
fn update1(prev: &State, next: &State) -> Value {
    let all = |r: &Row| -> serde_json::Map<String, Value> {
        r.iter().map(|(c, d)| (c.clone(), d.to_json())).collect()
    };
    let mut rows = serde_json::Map::new();
    let uuids: std::collections::BTreeSet<&Uuid> = prev.keys().chain(next.keys()).collect();
    for u in uuids {
        let ru = match (prev.get(u), next.get(u)) {
            (None, Some(n)) => json!({"new": all(n)}),
            (Some(o), None) => json!({"old": all(o)}),
            (Some(o), Some(n)) if o != n => {
                let old: serde_json::Map<String, Value> = o
                    .iter()
                    .filter(|(c, d)| n[*c] != **d)
                    .map(|(c, d)| (c.clone(), d.to_json()))
                    .collect();
                json!({"old": old, "new": all(n)})
            }
            _ => continue,
        };
        rows.insert(u.to_string(), ru);
    }
    json!({ "T": rows })
}

fn states() -> impl Strategy<Value = Vec<State>> {
    let state =
        proptest::collection::btree_map((10u128..14).prop_map(Uuid::from_u128), prop_row(), 0..4);
    proptest::collection::vec(state, 1..8)
}

proptest! {
    #[test]
    fn replaying_update2_diffs_reproduces_the_latest_state(states in states()) {
        let s = prop_schema();
        let mut r2 = Replica::default();
        let mut r1 = Replica::default();
        let mut prev = State::new();
        for next in &states {
            // Through text, as on the wire.
            let text = update2(&s, &prev, next).to_string();
            let changes = r2.apply_update2(&s, &serde_json::from_str(&text).unwrap()).unwrap();
            for c in &changes {
                prop_assert_eq!(c.old.as_ref(), prev.get(&c.uuid));
                prop_assert_eq!(c.new.as_ref(), next.get(&c.uuid));
                let expected = match (prev.contains_key(&c.uuid), next.contains_key(&c.uuid)) {
                    (false, true) => ChangeKind::Insert,
                    (true, false) => ChangeKind::Delete,
                    _ => ChangeKind::Modify,
                };
                prop_assert_eq!(&c.kind, &expected);
            }
            let got: State = r2.table("T").map(|(u, row)| (*u, row.clone())).collect();
            prop_assert_eq!(&got, next);

            r1.apply_update(&s, &update1(&prev, next)).unwrap();
            let got1: State = r1.table("T").map(|(u, row)| (*u, row.clone())).collect();
            prop_assert_eq!(&got1, next);
            prev = next.clone();
        }
    }
}
