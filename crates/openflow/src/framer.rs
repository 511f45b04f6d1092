//! Splits a byte stream into whole OpenFlow frames.
//!
//! A frame is an 8-byte header whose 16-bit length covers the whole message. A declared length
//! below 8 can never be valid and would stall or desynchronise a naive length-delimited codec,
//! so it is an error that ends the connection. The largest frame is 65535 bytes, so the buffer
//! never grows beyond that whatever a peer sends.
//!
//! Plain methods, no codec trait: the crate stays free of any runtime, and the IO shell
//! (`podport-session`) reads into a buffer and calls [`OfFramer::decode`] itself.

use bytes::BytesMut;

use crate::header::HEADER_LEN;

/// Errors of the framer: a length no frame can have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "frame declares length {declared}, below the 8-byte header (xid {xid:#x}, type {msg_type})"
    )]
    BadLength {
        declared: usize,
        msg_type: u8,
        xid: u32,
    },
}

/// The OpenFlow framer: yields whole frames, header included.
#[derive(Debug, Default, Clone, Copy)]
pub struct OfFramer;

impl OfFramer {
    /// Takes the first whole frame off the front of `src`, or returns `None` (and reserves
    /// room for the rest of the frame) while it is incomplete. After an error the stream is
    /// out of step: the connection must be closed.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        if src.len() < HEADER_LEN {
            src.reserve(HEADER_LEN - src.len());
            return Ok(None);
        }
        let declared = usize::from(u16::from_be_bytes([src[2], src[3]]));
        if declared < HEADER_LEN {
            return Err(FrameError::BadLength {
                declared,
                msg_type: src[1],
                xid: u32::from_be_bytes([src[4], src[5], src[6], src[7]]),
            });
        }
        if src.len() < declared {
            // Bounded: `declared` is at most 65535.
            src.reserve(declared - src.len());
            return Ok(None);
        }
        Ok(Some(src.split_to(declared)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u16, fill: u8) -> Vec<u8> {
        let mut v = vec![0x04, 2, 0, 0, 0, 0, 0, 7];
        v[2..4].copy_from_slice(&len.to_be_bytes());
        v.resize(usize::from(len).max(8), fill);
        v
    }

    #[test]
    fn splits_back_to_back_frames_at_every_boundary() {
        let mut stream = frame(8, 0);
        stream.extend(frame(12, 0xab));
        stream.extend(frame(30, 0xcd));
        for cut in 0..=stream.len() {
            let mut framer = OfFramer;
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                buf.extend_from_slice(part);
                while let Some(f) = framer.decode(&mut buf).unwrap() {
                    out.push(f.len());
                }
            }
            assert_eq!(out, vec![8, 12, 30], "cut at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn rejects_lengths_below_the_header() {
        for len in 0..8u16 {
            let mut buf = BytesMut::from(&frame(len, 0)[..8]);
            buf[2..4].copy_from_slice(&len.to_be_bytes());
            let err = OfFramer.decode(&mut buf).unwrap_err();
            assert!(
                matches!(err, FrameError::BadLength { declared, .. } if declared == usize::from(len))
            );
        }
    }

    #[test]
    fn waits_for_a_partial_frame_without_consuming() {
        let f = frame(100, 1);
        let mut buf = BytesMut::from(&f[..50]);
        assert!(OfFramer.decode(&mut buf).unwrap().is_none());
        assert_eq!(buf.len(), 50);
        assert!(buf.capacity() >= 100);
    }
}
