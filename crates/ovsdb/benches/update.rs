//! Decoding a monitor update of 1000 Interface rows, the size of a busy node's initial
//! snapshot. Measured together with an in-run baseline, a plain copy of the same bytes into a
//! fresh `Vec`, so results read as ratios that do not depend on the machine.
//!
//! Run: `cargo bench -p podport-ovsdb --bench update -- --warm-up-time 1 --measurement-time 3`
//! (needs the OVS schema at /usr/share/openvswitch/vswitch.ovsschema).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use podport_ovsdb::datum::Uuid;
use podport_ovsdb::replica::Replica;
use podport_ovsdb::rows::InterfaceRow;
use podport_ovsdb::schema::{DbSchema, REQUIRED};
use podport_ovsdb::splitter::JsonSplitter;
use serde_json::{json, Value};

const ROWS: u32 = 1000;

/// The text of an `update2` notification inserting `n` Interface rows, each with name, type,
/// ofport, five external_ids and an error, as ovsdb-server writes it (compact).
fn update2_text(n: u32) -> Vec<u8> {
    let mut rows = serde_json::Map::new();
    for i in 0..n {
        let uuid = Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 | u128::from(i));
        rows.insert(
            uuid.to_string(),
            json!({"insert": {
                "name": format!("vnic-{i:04}"),
                "type": "internal",
                "ofport": i + 1,
                "external_ids": ["map", [
                    ["attached-mac", format!("02:00:00:00:{:02x}:{:02x}", i >> 8, i & 0xff)],
                    ["iface-id", format!("pod-{i:04}")],
                    ["iface-status", "active"],
                    ["k8s-namespace", "default"],
                    ["k8s-pod", format!("web-{i:04}-7d9c8")],
                ]],
                "error": "could not add network device to OVS datapath (File exists)",
            }}),
        );
    }
    let msg = json!({"id": null, "method": "update2", "params": [null, {"Interface": rows}]});
    serde_json::to_vec(&msg).expect("serialises")
}

fn schema() -> DbSchema {
    let path = "/usr/share/openvswitch/vswitch.ovsschema";
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    DbSchema::from_json(&serde_json::from_str(&text).expect("schema JSON")).expect("schema")
}

/// Parse, apply to a fresh replica, and read every row typed: what the client does with the
/// initial snapshot.
fn decode_and_apply(
    schema: &DbSchema,
    mut replica: Replica,
    bytes: &[u8],
) -> (Replica, Vec<InterfaceRow>) {
    let msg: Value = serde_json::from_slice(bytes).expect("JSON");
    let changes = replica
        .apply_update2(schema, &msg["params"][1])
        .expect("applies");
    let rows = changes
        .iter()
        .map(|c| InterfaceRow::from_row(c.uuid, c.new.as_ref().expect("insert")).expect("typed"))
        .collect();
    (replica, rows)
}

fn update(c: &mut Criterion) {
    let schema = schema();
    let bytes = update2_text(ROWS);
    let (replica, rows) = decode_and_apply(&schema, Replica::default(), &bytes);
    assert_eq!(replica.table("Interface").count(), ROWS as usize);
    assert_eq!(rows.len(), ROWS as usize);
    assert_eq!(rows[0].external_ids.len(), 5);
    eprintln!("update2 of {ROWS} Interface rows: {} bytes", bytes.len());

    let mut group = c.benchmark_group("update2_1000_interfaces");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("baseline_copy_to_vec", |b| {
        b.iter(|| black_box(black_box(&bytes[..]).to_vec()))
    });
    group.bench_function("split", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(black_box(&bytes[..]));
            JsonSplitter::default()
                .decode(&mut buf)
                .expect("splits")
                .expect("one value")
        })
    });
    group.bench_function("parse_to_value", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&bytes)).expect("JSON"))
    });
    // Every row holds all 35 Interface columns (defaults filled in).
    group.bench_function("parse_apply_typed_rows", |b| {
        b.iter(|| decode_and_apply(&schema, Replica::default(), black_box(&bytes)))
    });
    // Rows hold only the 8 Interface columns podport uses.
    group.bench_function("parse_apply_typed_rows_selected_columns", |b| {
        b.iter(|| decode_and_apply(&schema, Replica::with_columns(REQUIRED), black_box(&bytes)))
    });
    group.finish();
}

criterion_group!(benches, update);
criterion_main!(benches);
