//! The bench's passive witness of the switch: a second OpenFlow connection that stamps each
//! port's first LIVE on its own thread, and a process's CPU time from `/proc`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use podport_openflow::{PortReason as OfReason, PortState};
use podport_session::openflow::{ClientEvent, ClientOptions, OfClient};

/// A process's CPU time (user + system) from `/proc/PID/stat`, in 10 ms ticks.
pub(super) fn pid_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let t = |i: usize| fields.get(i)?.parse::<u32>().ok();
    Some(Duration::from_millis(10) * (t(11)? + t(12)?))
}

/// A second OpenFlow connection to a bridge that only listens: OVS sends PortStatus to every
/// connection, so this stamps each port's first LIVE independently of the engine. It runs on
/// its own thread and runtime, so the engine's and the driver's work do not delay the stamps.
pub(super) struct Monitor {
    pub(super) live: Arc<Mutex<HashMap<String, Instant>>>,
    pub(super) stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub(super) thread: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Connects; returns once the switch's handshake is done.
    pub(super) fn start(endpoint: &str) -> Result<Monitor> {
        let endpoint: podport_session::Endpoint = endpoint
            .parse()
            .map_err(|e| anyhow!("monitor endpoint {endpoint}: {e}"))?;
        let live: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("monitor runtime")?;
        let l = live.clone();
        let thread = std::thread::Builder::new()
            .name("podport-monitor".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let (_client, mut events) = OfClient::start(endpoint, ClientOptions::default());
                    loop {
                        tokio::select! {
                            ev = events.recv() => match ev {
                                Some(ClientEvent::Connected { .. }) => {
                                    let _ = ready_tx.send(());
                                }
                                Some(ClientEvent::PortStatus(ps)) => {
                                    let now = Instant::now();
                                    let usable = matches!(ps.reason, OfReason::Add | OfReason::Modify)
                                        && ps.port.state.contains(PortState::LIVE);
                                    if usable {
                                        let mut m = l.lock().unwrap_or_else(|p| p.into_inner());
                                        m.entry(ps.port.name).or_insert(now);
                                    }
                                }
                                Some(ClientEvent::Disconnected { .. } | ClientEvent::PortDesc(_)) => {}
                                None => break,
                            },
                            _ = &mut stop_rx => break,
                        }
                    }
                });
            })
            .context("starting the monitor thread")?;
        let mut m = Monitor {
            live,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        if ready_rx.recv_timeout(Duration::from_secs(20)).is_err() {
            m.shutdown();
            bail!("the passive OpenFlow monitor did not connect within 20 s");
        }
        Ok(m)
    }

    /// The first LIVE of `name`, waiting up to `within` for it.
    pub(super) fn wait_live(&self, name: &str, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(t) = self
                .live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
            {
                return Some(*t);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    pub(super) fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops and returns each port's first LIVE.
    pub(super) fn stop(mut self) -> HashMap<String, Instant> {
        self.shutdown();
        std::mem::take(&mut *self.live.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.shutdown();
    }
}
