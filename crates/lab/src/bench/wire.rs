//! Plain OpenFlow over a blocking socket, for the bench's own ends of a connection: the raw
//! client that measures the switch's floor, and the fake switch that feeds the throughput run.
//! No podport client in between, so nothing of the engine's is timed on this side.

use std::io::{Read, Write};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use podport_openflow::{decode, encode, FlowMod, Header, Hello, Message, Version};

/// OpenFlow 1.5, what the engine speaks with OVS.
pub(crate) const V15: Version = Version::Of15;

/// Reads whole frames from a stream.
pub(crate) struct Frames<S> {
    pub stream: S,
    buf: Vec<u8>,
    start: usize,
}

impl<S: Read> Frames<S> {
    pub(crate) fn new(stream: S) -> Frames<S> {
        Frames {
            stream,
            buf: Vec::with_capacity(1 << 16),
            start: 0,
        }
    }

    /// The next frame's bytes (header included), or `None` at the end of the stream.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            let avail = &self.buf[self.start..];
            if avail.len() >= 8 {
                let len = usize::from(u16::from_be_bytes([avail[2], avail[3]]));
                if len < 8 {
                    bail!("a frame declares length {len}");
                }
                if avail.len() >= len {
                    let f = avail[..len].to_vec();
                    self.start += len;
                    return Ok(Some(f));
                }
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let old = self.buf.len();
            self.buf.resize(old + 16 * 1024, 0);
            let n = self.stream.read(&mut self.buf[old..])?;
            self.buf.truncate(old + n);
            if n == 0 {
                return Ok(None);
            }
        }
    }

    /// The next frame, decoded.
    pub(crate) fn next_msg(&mut self) -> Result<Option<(Header, Message)>> {
        match self.next_frame()? {
            None => Ok(None),
            Some(f) => Ok(Some(
                decode(&f).map_err(|e| anyhow!("undecodable frame: {e}"))?,
            )),
        }
    }
}

/// One message's bytes.
pub(crate) fn frame(msg: &Message, xid: u32) -> Result<Vec<u8>> {
    Ok(encode(msg, V15.wire(), xid)
        .map_err(|e| anyhow!("encoding {msg:?}: {e}"))?
        .to_vec())
}

/// A raw OpenFlow 1.5 client on its own connection: HELLO, then flow mods and a barrier.
/// It never asks for asynchronous messages, so the switch sends it no PortStatus.
#[cfg(unix)]
pub(crate) struct RawClient {
    frames: Frames<UnixStream>,
    xid: u32,
}

#[cfg(unix)]
impl RawClient {
    pub(crate) fn connect(path: &std::path::Path) -> Result<RawClient> {
        let stream = UnixStream::connect(path)
            .with_context(|| format!("connecting to {}", path.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut c = RawClient {
            frames: Frames::new(stream),
            xid: 1,
        };
        let hello = frame(&Message::Hello(Hello::offering(&[V15])), 1)?;
        c.frames.stream.write_all(&hello)?;
        loop {
            match c.frames.next_msg()? {
                Some((_, Message::Hello(_))) => return Ok(c),
                Some(_) => {}
                None => bail!("the switch closed the raw connection during the handshake"),
            }
        }
    }

    /// Sends `flow_mods` and a barrier in one write; returns the time to the barrier's reply.
    /// An ERROR for any of them fails.
    pub(crate) fn flows_and_barrier(&mut self, flow_mods: &[FlowMod]) -> Result<Duration> {
        let mut out = Vec::with_capacity(flow_mods.len() * 160 + 16);
        for fm in flow_mods {
            self.xid += 1;
            out.extend_from_slice(&frame(&Message::FlowMod(fm.clone()), self.xid)?);
        }
        self.xid += 1;
        let barrier = self.xid;
        out.extend_from_slice(&frame(&Message::BarrierRequest, barrier)?);
        let t0 = Instant::now();
        self.frames.stream.write_all(&out)?;
        loop {
            match self.frames.next_msg()? {
                Some((h, Message::BarrierReply)) if h.xid == barrier => return Ok(t0.elapsed()),
                Some((h, Message::EchoRequest(b))) => {
                    let f = frame(&Message::EchoReply(b), h.xid)?;
                    self.frames.stream.write_all(&f)?;
                }
                Some((_, Message::Error(e))) => bail!("the switch refused a flow mod: {e:?}"),
                Some(_) => {}
                None => bail!("the switch closed the raw connection"),
            }
        }
    }
}
