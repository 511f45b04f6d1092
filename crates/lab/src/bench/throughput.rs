//! Throughput: how many PortStatus messages a second the engine's path (the OpenFlow client's
//! decode, the core, the journal, durably) sustains, fed by a fake switch that sends as fast as
//! the socket takes them. A fake is right here: it is a source of load, not a test of what OVS
//! does. The baseline is decoding the same bytes alone, in the same run.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use podport_engine::{Engine, EngineConfig};
use podport_openflow::{
    decode, FeaturesReply, MacAddr, Message, MultipartReply, MultipartReplyBody, MultipartRequest,
    Port, PortConfig, PortNo, PortReason, PortState, PortStatus,
};
use podport_ovs_sandbox::Sandbox;

use super::wire::{frame, Frames};

/// Ports the fake announces, round robin (none of them a Pod's).
const PORTS: u32 = 64;

pub(crate) struct ThroughputResult {
    pub messages: u64,
    /// First byte sent to every record durable.
    pub elapsed: Duration,
    /// Decoding the same bytes alone (framing + decode), same run.
    pub decode_only: Duration,
    /// PortStatus decided together with another in one batch.
    pub coalesced: u64,
}

impl ThroughputResult {
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn decode_rate(&self) -> f64 {
        self.messages as f64 / self.decode_only.as_secs_f64().max(1e-9)
    }
}

/// `n` PortStatus MODIFY frames, alternating LIVE and LINK_DOWN per port, as one buffer.
fn stream_of(n: u64) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(n as usize * 88);
    for i in 0..n {
        let k = (i % u64::from(PORTS)) as u32;
        let live = (i / u64::from(PORTS)) % 2 == 0;
        let ps = PortStatus {
            reason: PortReason::Modify,
            port: Port {
                port_no: PortNo(k + 1),
                hw_addr: MacAddr([0x02, 0xfe, 0, 0, 0, k as u8]),
                name: format!("tput-{k}"),
                config: PortConfig::empty(),
                state: if live {
                    PortState::LIVE
                } else {
                    PortState::LINK_DOWN
                },
                ethernet: None,
                other_properties: Default::default(),
            },
        };
        out.extend_from_slice(&frame(&Message::PortStatus(ps), 0)?);
    }
    Ok(out)
}

/// The baseline: frame and decode `bytes` on this thread.
fn decode_all(bytes: &[u8]) -> Result<(u64, Duration)> {
    let t0 = Instant::now();
    let mut frames = Frames::new(bytes);
    let mut n = 0u64;
    while let Some(f) = frames.next_frame()? {
        let (_, m) = decode(&f).map_err(|e| anyhow!("{e}"))?;
        if matches!(m, Message::PortStatus(_)) {
            n += 1;
        }
    }
    Ok((n, t0.elapsed()))
}

/// Serves the switch's side of the engine's requests; `ready` fires once PORT_DESC is answered.
fn serve(
    mut frames: Frames<UnixStream>,
    out: Arc<Mutex<UnixStream>>,
    ready: std::sync::mpsc::Sender<()>,
) -> Result<()> {
    let send = |m: &Message, xid: u32| -> Result<()> {
        let f = frame(m, xid)?;
        out.lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(&f)?;
        Ok(())
    };
    while let Some((h, m)) = frames.next_msg()? {
        match m {
            Message::FeaturesRequest => send(
                &Message::FeaturesReply(FeaturesReply {
                    datapath_id: 0xbe9c,
                    n_buffers: 0,
                    n_tables: 254,
                    auxiliary_id: 0,
                    capabilities: 0,
                }),
                h.xid,
            )?,
            Message::EchoRequest(b) => send(&Message::EchoReply(b), h.xid)?,
            Message::BarrierRequest => send(&Message::BarrierReply, h.xid)?,
            Message::MultipartRequest(r) => {
                let body = match r {
                    MultipartRequest::PortDesc { .. } => MultipartReplyBody::PortDesc(Vec::new()),
                    MultipartRequest::FlowDesc(_) => MultipartReplyBody::FlowDesc(Vec::new()),
                    MultipartRequest::Other { mp_type, .. } => MultipartReplyBody::Other {
                        mp_type,
                        body: Default::default(),
                    },
                };
                let is_desc = matches!(body, MultipartReplyBody::PortDesc(_));
                send(
                    &Message::MultipartReply(MultipartReply { more: false, body }),
                    h.xid,
                )?;
                if is_desc {
                    let _ = ready.send(());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

pub(crate) async fn run(sb: &Sandbox, work: &Path, messages: u64) -> Result<ThroughputResult> {
    let bytes = stream_of(messages)?;
    let (decoded, decode_only) = decode_all(&bytes)?;
    if decoded != messages {
        bail!("the baseline decoded {decoded} of {messages} PortStatus");
    }
    std::fs::create_dir_all(work)?;
    let sock = work.join("fake.mgmt");
    let listener = UnixListener::bind(&sock).with_context(|| format!("{}", sock.display()))?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (conn_tx, conn_rx) = std::sync::mpsc::channel::<Arc<Mutex<UnixStream>>>();
    // The switch's side: accept the engine, say HELLO, answer what it asks.
    std::thread::Builder::new()
        .name("podport-fake-switch".into())
        .spawn(move || -> Result<()> {
            let (stream, _) = listener.accept()?;
            let out = Arc::new(Mutex::new(stream.try_clone()?));
            out.lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(&frame(
                    &Message::Hello(podport_openflow::Hello::offering(&[super::wire::V15])),
                    1,
                )?)?;
            let _ = conn_tx.send(out.clone());
            serve(Frames::new(stream), out, ready_tx)
        })
        .context("starting the fake switch")?;

    let mut cfg = EngineConfig::new(
        sb.ovsdb_endpoint()
            .parse()
            .map_err(|e| anyhow!("OVSDB endpoint: {e}"))?,
        format!("unix:{}", sock.display())
            .parse()
            .map_err(|e| anyhow!("fake endpoint: {e}"))?,
        "br-tput",
        work.join("journal"),
    );
    cfg.config_digest = "podport-lab bench: throughput".into();
    let engine = tokio::task::spawn_blocking(move || Engine::start(cfg))
        .await?
        .context("starting the engine for the throughput run")?;
    let result = async {
        let out = tokio::task::block_in_place(|| conn_rx.recv_timeout(Duration::from_secs(20)))
            .map_err(|_| anyhow!("the engine did not connect to the fake switch"))?;
        tokio::task::block_in_place(|| ready_rx.recv_timeout(Duration::from_secs(20)))
            .map_err(|_| anyhow!("the engine did not ask the fake switch for PORT_DESC"))?;
        // Let the start's own records settle, then count from here.
        tokio::time::sleep(Duration::from_millis(200)).await;
        engine.journal().sync().await?;
        let m = engine.metrics();
        let (base, coalesced_base) = (m.port_status_received.get(), m.port_status_coalesced.get());
        let t0 = Instant::now();
        let sender = std::thread::Builder::new()
            .name("podport-fake-send".into())
            .spawn(move || -> std::io::Result<()> {
                for chunk in bytes.chunks(64 * 1024) {
                    out.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .write_all(chunk)?;
                }
                Ok(())
            })
            .context("starting the sender")?;
        let deadline = t0 + Duration::from_secs(120);
        while m.port_status_received.get() - base < messages {
            if Instant::now() > deadline {
                bail!(
                    "the engine took {} of {messages} PortStatus in 120 s",
                    m.port_status_received.get() - base
                );
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        engine.journal().sync().await?;
        let elapsed = t0.elapsed();
        let _ = sender.join();
        Ok(ThroughputResult {
            messages,
            elapsed,
            decode_only,
            coalesced: m.port_status_coalesced.get() - coalesced_base,
        })
    }
    .await;
    let _ = tokio::task::spawn_blocking(move || engine.shutdown()).await;
    result
}
