//! Journal benchmarks.
//!
//! - `durable_append`: appends made durable with group commit, in batches of 1, 64 and 1024
//!   (queue the batch, then wait every ticket), against a plain file doing the same: encode,
//!   `write_all` each record, one `sync_data` (fdatasync) per batch. Records per second.
//! - `replay`: `replay_full()` over 100k records. Records per second.
//! - `restart`: `Journal::open` (which replays) plus `close`, over 100k records, without a
//!   snapshot and with one at the last record.
//!
//! `cargo bench -p podport-journal --bench journal -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::io::Write;
use std::path::Path;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use podport_journal::bench_load::{plain_file_record, steady_state_event as event};
use podport_journal::{Journal, JournalConfig, JournalReader};

const RECORDS: u64 = 100_000;

fn no_snapshots() -> JournalConfig {
    JournalConfig {
        snapshot_every: None,
        retain_records: u64::MAX,
        ..JournalConfig::default()
    }
}

fn durable_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable_append");
    g.sample_size(10);
    for batch in [1u64, 64, 1024] {
        g.throughput(Throughput::Elements(batch));

        let dir = tempfile::tempdir_in(bench_tmp()).unwrap();
        // The default configuration: group commit, flush every group, a snapshot every 10k.
        let j = Journal::open(dir.path(), JournalConfig::default()).unwrap();
        let mut i = 0u64;
        g.bench_with_input(BenchmarkId::new("journal", batch), &batch, |b, &batch| {
            b.iter(|| {
                let tickets: Vec<_> = (0..batch)
                    .map(|_| {
                        i += 1;
                        j.append(event(i))
                    })
                    .collect();
                for t in tickets {
                    black_box(t.wait().unwrap());
                }
            })
        });
        j.close().unwrap();

        let fdir = tempfile::tempdir_in(bench_tmp()).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(fdir.path().join("log"))
            .unwrap();
        let mut seq = 0u64;
        g.bench_with_input(
            BenchmarkId::new("file_fdatasync", batch),
            &batch,
            |b, &batch| {
                b.iter(|| {
                    for _ in 0..batch {
                        seq += 1;
                        let rec =
                            plain_file_record(seq, podport_journal::now_micros(), &event(seq));
                        f.write_all(&rec).unwrap();
                    }
                    f.sync_data().unwrap();
                })
            },
        );
    }
    g.finish();
}

/// Where the benchmark journals go: `PODPORT_BENCH_DIR`, else the system temp dir.
fn bench_tmp() -> std::path::PathBuf {
    std::env::var_os("PODPORT_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir)
}

/// Writes `RECORDS` records in groups of 4096.
fn fill(dir: &Path, config: JournalConfig) -> Journal {
    let j = Journal::open(dir, config).unwrap();
    let mut i = 0;
    while i < RECORDS {
        let n = 4096.min(RECORDS - i);
        let tickets: Vec<_> = (i..i + n).map(|k| j.append(event(k))).collect();
        for t in tickets {
            t.wait().unwrap();
        }
        i += n;
    }
    j
}

fn replay_and_restart(c: &mut Criterion) {
    // Prepared once: a 100k-record journal without snapshots, and a copy with a snapshot at
    // the last record (retention keeps all records in both, so only the snapshot differs).
    let plain = tempfile::tempdir_in(bench_tmp()).unwrap();
    fill(plain.path(), no_snapshots()).close().unwrap();
    let snap = tempfile::tempdir_in(bench_tmp()).unwrap();
    let j = fill(snap.path(), no_snapshots());
    assert_eq!(j.snapshot().unwrap(), RECORDS);
    j.close().unwrap();

    {
        let reader = JournalReader::open(plain.path()).unwrap();
        assert_eq!(reader.stats().records, RECORDS);
        let mut g = c.benchmark_group("replay");
        g.sample_size(10);
        g.sampling_mode(SamplingMode::Flat);
        g.throughput(Throughput::Elements(RECORDS));
        g.bench_function("replay_full_100k", |b| {
            b.iter(|| {
                let r = reader.replay_full();
                assert_eq!(r.last_seq, RECORDS);
                black_box(r)
            })
        });
        g.finish();
    }

    let mut g = c.benchmark_group("restart");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    for (name, dir, snapshot) in [
        ("open_100k_no_snapshot", plain.path(), None),
        ("open_100k_snapshot_at_end", snap.path(), Some(RECORDS)),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let j = Journal::open(dir, no_snapshots()).unwrap();
                let r = j.recovered();
                assert_eq!(r.last_seq, RECORDS);
                assert_eq!(r.snapshot_seq, snapshot);
                black_box(r.records_replayed);
                j.close().unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, durable_append, replay_and_restart);
criterion_main!(benches);
