//! Durable appends: the journal's group commit against a plain file with `write_all` per record
//! and one `fdatasync` per batch, in the same run, on the same file system, at batches of 1, 64
//! and 1024 records (a batch queued, then every ticket awaited). The same measure as the
//! criterion bench in `journal/benches/journal.rs`, kept short enough for every bench run.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use podport_journal::bench_load::{plain_file_record, steady_state_event as event};
use podport_journal::{Journal, JournalConfig};

pub(crate) const BATCHES: [u64; 3] = [1, 64, 1024];

pub(crate) struct JournalRow {
    pub batch: u64,
    pub journal_rps: f64,
    pub file_rps: f64,
}

/// Batches of each size, alternating journal and file in rounds, for about `per_size` each.
pub(crate) fn run(work: &Path, per_size: Duration) -> Result<Vec<JournalRow>> {
    let mut rows = Vec::new();
    for batch in BATCHES {
        let jdir = work.join(format!("journal-{batch}"));
        let journal = Journal::open(&jdir, JournalConfig::default())?;
        std::fs::create_dir_all(work)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(work.join(format!("file-{batch}")))?;
        let (mut j_time, mut f_time, mut j_n, mut f_n) =
            (Duration::ZERO, Duration::ZERO, 0u64, 0u64);
        let (mut i, mut seq) = (0u64, 0u64);
        // Ten rounds, each side in turn, so drift in the machine's load hits both.
        for _ in 0..10 {
            let until = Instant::now() + per_size / 20;
            let t0 = Instant::now();
            while Instant::now() < until {
                let tickets: Vec<_> = (0..batch)
                    .map(|_| {
                        i += 1;
                        journal.append(event(i))
                    })
                    .collect();
                for t in tickets {
                    t.wait()?;
                }
                j_n += batch;
            }
            j_time += t0.elapsed();
            let until = Instant::now() + per_size / 20;
            let t0 = Instant::now();
            while Instant::now() < until {
                for _ in 0..batch {
                    seq += 1;
                    let rec = plain_file_record(seq, podport_journal::now_micros(), &event(seq));
                    file.write_all(&rec)?;
                }
                file.sync_data()?;
                f_n += batch;
            }
            f_time += t0.elapsed();
        }
        journal.close()?;
        rows.push(JournalRow {
            batch,
            journal_rps: j_n as f64 / j_time.as_secs_f64(),
            file_rps: f_n as f64 / f_time.as_secs_f64(),
        });
    }
    Ok(rows)
}
