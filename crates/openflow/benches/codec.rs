//! Codec benchmarks. Each group measures one input twice: the codec operation, and as an
//! in-run baseline a plain copy of the same bytes into a fresh `Vec` (one allocation plus a
//! memcpy), so results can be read as a ratio that does not depend on the machine.
//!
//! Run: `cargo bench -p podport-openflow --bench codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use podport_openflow::{
    decode, encode, Action, FlowMod, FlowModFlags, MacAddr, Message, MultipartReply,
    MultipartReplyBody, OxmField, Port, PortNo, PortState, ETH_TYPE_IPV4,
};

/// The captured OVS 3.1 OF1.5 PORT_STATUS MODIFY (port 5 "p4", LIVE), 88 bytes.
const PORT_STATUS_OF15_HEX: &str = include_str!("../tests/data/of15-port-status-modify-live.hex");

/// A PORT_DESC reply with `n` ports named `vnic-NNNN`, all LIVE with distinct MACs.
fn port_desc_reply(n: u32, version: u8) -> Vec<u8> {
    let ports = (1..=n)
        .map(|i| {
            let mut p = Port::new(i, &format!("vnic-{i:04}"));
            let b = i.to_be_bytes();
            p.hw_addr = MacAddr([0x02, 0x00, b[0], b[1], b[2], b[3]]);
            p.state = PortState::LIVE;
            p
        })
        .collect();
    let msg = Message::MultipartReply(MultipartReply {
        more: false,
        body: MultipartReplyBody::PortDesc(ports),
    });
    encode(&msg, version, 4)
        .expect("fits in one frame")
        .to_vec()
}

/// A flow podport typically installs: match in_port, eth_type, ipv4_dst; rewrite eth_dst,
/// output, continue in the next table.
fn typical_flow_mod() -> Message {
    Message::FlowMod(
        FlowMod::add(10)
            .cookie(0x0000_0001_0000_002a, u64::MAX)
            .priority(200)
            .flags(FlowModFlags::SEND_FLOW_REM)
            .matching(OxmField::InPort(PortNo(7)))
            .matching(OxmField::EthType(ETH_TYPE_IPV4))
            .matching(OxmField::Ipv4Dst {
                addr: Ipv4Addr::new(10, 244, 1, 17),
                mask: None,
            })
            .apply(vec![
                Action::SetField(OxmField::EthDst {
                    addr: MacAddr([0x02, 0x42, 0x0a, 0xf4, 0x01, 0x11]),
                    mask: None,
                }),
                Action::output(PortNo(12)),
            ])
            .goto_table(20),
    )
}

fn baseline(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, bytes: &[u8]) {
    group.bench_function("baseline_copy_to_vec", |b| {
        b.iter(|| black_box(black_box(bytes).to_vec()))
    });
}

fn bench_decode(c: &mut Criterion, name: &str, bytes: &[u8]) {
    assert!(decode(bytes).is_ok(), "{name}: fixture must decode");
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    baseline(&mut group, bytes);
    group.bench_function("decode", |b| {
        b.iter(|| decode(black_box(bytes)).expect("decodes"))
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    let port_status = hex::decode(PORT_STATUS_OF15_HEX.trim()).expect("hex");
    assert_eq!(port_status.len(), 88);
    bench_decode(c, "of15_port_status_88B", &port_status);

    let of15 = port_desc_reply(500, 0x06);
    assert_eq!(of15.len(), 16 + 500 * 72);
    bench_decode(c, "of15_port_desc_500_ports", &of15);

    let of13 = port_desc_reply(500, 0x04);
    assert_eq!(of13.len(), 16 + 500 * 64);
    bench_decode(c, "of13_port_desc_500_ports", &of13);

    let flow_mod = typical_flow_mod();
    let encoded = encode(&flow_mod, 0x06, 99).expect("encodes");
    let mut group = c.benchmark_group("of15_flow_mod");
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    baseline(&mut group, &encoded);
    group.bench_function("encode", |b| {
        b.iter(|| encode(black_box(&flow_mod), 0x06, 99).expect("encodes"))
    });
    group.bench_function("decode", |b| {
        b.iter(|| decode(black_box(&encoded)).expect("decodes"))
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
