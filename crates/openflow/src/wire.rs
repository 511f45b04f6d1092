//! Bounds-checked big-endian reading and length-patching writing, shared by every message.
//!
//! `Reader` is the only way the decoders touch input bytes, so a truncated or oversized input
//! becomes a `DecodeError` instead of a panic.

use bytes::{BufMut, BytesMut};

use crate::error::{DecodeError, EncodeError};

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                what: self.what,
                need: self.pos + n,
                have: self.buf.len(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.bytes(n).map(|_| ())
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// Checks that nothing is left: a message of fixed size must end where its body does.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { what, extra }),
        }
    }

    /// Splits off a fixed-size structure of `len` bytes; too few bytes is `Truncated`.
    pub(crate) fn fixed(
        &mut self,
        len: usize,
        what: &'static str,
    ) -> Result<Reader<'a>, DecodeError> {
        if self.remaining() < len {
            return Err(DecodeError::Truncated {
                what,
                need: len,
                have: self.remaining(),
            });
        }
        Ok(Reader::new(self.bytes(len)?, what))
    }

    /// Splits off a nested structure whose declared length `len` must be at least `min` and fit
    /// in what is left.
    pub(crate) fn sub(
        &mut self,
        len: usize,
        min: usize,
        what: &'static str,
    ) -> Result<Reader<'a>, DecodeError> {
        if len < min || len > self.remaining() {
            return Err(DecodeError::BadLength {
                what,
                declared: len,
                min,
                max: self.remaining(),
            });
        }
        Ok(Reader::new(self.bytes(len)?, what))
    }
}

/// Rounds up to OpenFlow's 8-byte alignment.
pub(crate) fn pad8(len: usize) -> usize {
    (len + 7) & !7
}

/// Writes a structure that starts with a 16-bit length at `len_at` bytes from `start`, then
/// patches the length in once the body is written.
pub(crate) fn patch_len16(
    buf: &mut BytesMut,
    start: usize,
    len_at: usize,
    what: &'static str,
) -> Result<usize, EncodeError> {
    let len = buf.len() - start;
    let len16 = u16::try_from(len).map_err(|_| EncodeError::TooLong { what, len })?;
    buf[start + len_at..start + len_at + 2].copy_from_slice(&len16.to_be_bytes());
    Ok(len)
}

pub(crate) fn put_zeros(buf: &mut BytesMut, n: usize) {
    buf.put_bytes(0, n);
}

impl<'a> Reader<'a> {
    /// The next `n` bytes without consuming them.
    pub(crate) fn bytes_peek(&self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                what: self.what,
                need: self.pos + n,
                have: self.buf.len(),
            });
        }
        Ok(&self.buf[self.pos..self.pos + n])
    }
}

impl<'a> Reader<'a> {
    /// The whole buffer this reader was made over, regardless of position.
    pub(crate) fn clone_slice(&self) -> &'a [u8] {
        self.buf
    }
}
