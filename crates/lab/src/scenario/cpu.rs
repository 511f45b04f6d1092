//! CPU time of this process and of its threads, for the demo's and the bench's figures.

use std::collections::HashMap;
use std::time::Duration;

/// CPU time of this process, and of each of its threads by name (Linux).
#[derive(Clone, Debug, Default)]
pub(crate) struct CpuSample {
    pub process: Option<Duration>,
    pub threads: HashMap<String, Duration>,
}

impl CpuSample {
    /// `self - earlier`, per thread name (threads that exited in between are only in the
    /// process total).
    pub(crate) fn since(&self, earlier: &CpuSample) -> CpuSample {
        let process = match (self.process, earlier.process) {
            (Some(a), Some(b)) => Some(a.saturating_sub(b)),
            _ => None,
        };
        let threads = self
            .threads
            .iter()
            .map(|(k, v)| {
                let before = earlier.threads.get(k).copied().unwrap_or_default();
                (k.clone(), v.saturating_sub(before))
            })
            .collect();
        CpuSample { process, threads }
    }

    pub(crate) fn thread(&self, name: &str) -> Option<Duration> {
        self.threads.get(name).copied()
    }
}

/// The process's CPU time (user + system, `getrusage(RUSAGE_SELF)`) and each thread's from
/// `/proc/self/task` (summed by thread name).
pub(crate) fn cpu_sample() -> CpuSample {
    CpuSample {
        process: process_cpu(),
        threads: thread_cpu(),
    }
}

fn process_cpu() -> Option<Duration> {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let d = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    Some(d(u.user_time()) + d(u.system_time()))
}

#[cfg(target_os = "linux")]
fn thread_cpu() -> HashMap<String, Duration> {
    // utime and stime are in clock ticks of USER_HZ, which is 100 on Linux.
    const TICK: Duration = Duration::from_millis(10);
    let mut out: HashMap<String, Duration> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ppid ..."; comm may hold spaces and parentheses, so split at the
        // last ')'. utime and stime are fields 14 and 15, i.e. 11 and 12 after the comm.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        // Pools name their threads `name-N` (sled-io-3): one entry per pool.
        let comm = stat[open + 1..close]
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end_matches('-')
            .to_string();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u32>().ok())
                .unwrap_or(0)
        };
        *out.entry(comm).or_default() += TICK * (ticks(11) + ticks(12));
    }
    out
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu() -> HashMap<String, Duration> {
    HashMap::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_samples_subtract_per_thread() {
        let a = CpuSample {
            process: Some(Duration::from_millis(100)),
            threads: HashMap::from([("x".to_string(), Duration::from_millis(40))]),
        };
        let b = CpuSample {
            process: Some(Duration::from_millis(350)),
            threads: HashMap::from([
                ("x".to_string(), Duration::from_millis(90)),
                ("y".to_string(), Duration::from_millis(10)),
            ]),
        };
        let d = b.since(&a);
        assert_eq!(d.process, Some(Duration::from_millis(250)));
        assert_eq!(d.thread("x"), Some(Duration::from_millis(50)));
        assert_eq!(d.thread("y"), Some(Duration::from_millis(10)));
    }
}
