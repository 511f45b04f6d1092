//! Typed errors of the codec. Every rejection says which structure was bad and why.

use thiserror::Error;

/// A frame or message that could not be decoded.
///
/// Decoding never panics and never allocates more than the frame it was given; every
/// rejection is one of these variants.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The buffer ends before a structure does.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A length field is impossible: below the structure's minimum or past its container.
    #[error("bad length in {what}: declared {declared}, allowed {min}..={max}")]
    BadLength {
        what: &'static str,
        declared: usize,
        min: usize,
        max: usize,
    },
    /// A message whose layout depends on the version arrived in a version we do not speak.
    #[error("unsupported OpenFlow wire version 0x{version:02x} for {what}")]
    UnsupportedVersion { what: &'static str, version: u8 },
    /// A field holds a value the layout does not allow (for example a match that is not OXM).
    #[error("bad value in {what}: {value:#x}")]
    BadValue { what: &'static str, value: u64 },
    /// Bytes after the end of a message whose body has a fixed size (OVS answers such a
    /// message with `OFPBRC_BAD_LEN`).
    #[error("{what} has {extra} trailing bytes after its fixed-size body")]
    TrailingBytes { what: &'static str, extra: usize },
    /// An OXM field that the protocol defines without a mask (`in_port`, `eth_type`) arrived
    /// with its has-mask bit set.
    #[error("OXM field {field} takes no mask")]
    MaskNotAllowed { field: &'static str },
}

/// A message that cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// OpenFlow lengths are 16-bit: a message (or a nested structure) larger than that cannot be sent.
    #[error("{what} would be {len} bytes, more than the 16-bit length field allows")]
    TooLong { what: &'static str, len: usize },
    /// The message has no encoding in the requested version.
    #[error("unsupported OpenFlow wire version 0x{version:02x} for {what}")]
    UnsupportedVersion { what: &'static str, version: u8 },
    /// A message where the protocol forbids it (a bundle message inside BUNDLE_ADD_MESSAGE).
    #[error("{what} is not allowed")]
    NotAllowed { what: &'static str },
}
