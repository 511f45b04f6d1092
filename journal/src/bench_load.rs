//! The workload both durable-append benchmarks measure (the criterion bench in
//! `journal/benches/journal.rs` and `podport-lab bench`'s journal part), so the two figures are of
//! the same records and the same plain-file baseline.

use crate::event::{Event, Phase, PortDesc, PortReason};

/// Ports the steady-state mix cycles over.
pub const PORTS: u64 = 64;

/// Record `i` of a node's steady-state mix: PortStatus changes, PodReady and PodNotReady.
pub fn steady_state_event(i: u64) -> Event {
    let p = i % PORTS;
    let ifname = format!("veth{p:08x}");
    match i % 4 {
        0 | 1 => Event::PortStatusReceived {
            reason: if i.is_multiple_of(8) {
                PortReason::Add
            } else {
                PortReason::Modify
            },
            port: PortDesc {
                port_no: p as u32 + 1,
                name: ifname,
                state: if i.is_multiple_of(3) { 4 } else { 1 },
                config: 0,
                hw_addr: [2, 0, 0, 0, 0, p as u8],
            },
        },
        2 => Event::PodReady {
            ifname,
            port_no: p as u32 + 1,
            waited_ms: i % 5000,
        },
        _ => Event::PodNotReady {
            ifname,
            phase: Phase::Allocated,
            waited_ms: i % 5000,
        },
    }
}

/// What the plain-file baseline stores per record: the journal's kind of envelope (length,
/// CRC-32C, sequence, timestamp, rkyv payload).
pub fn plain_file_record(seq: u64, ts: u64, e: &Event) -> Vec<u8> {
    let payload = rkyv::to_bytes::<rkyv::rancor::Error>(e).expect("rkyv serialisation of an event");
    let mut out = Vec::with_capacity(24 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ts.to_le_bytes());
    out.extend_from_slice(&payload);
    out
}
