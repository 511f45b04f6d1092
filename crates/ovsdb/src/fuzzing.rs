//! The bodies of the fuzz targets in `crates/ovsdb/fuzz`, here so that the corpus replay test
//! (the workspace's `tests/fuzz_corpus.rs`) runs the same code on stable. Not an API.

use bytes::BytesMut;

use crate::rpc;
use crate::splitter::JsonSplitter;

/// The `rpc_stream` target: an OVSDB byte stream through [`JsonSplitter`], every value it
/// yields through [`rpc::parse`].
///
/// Input: the first byte picks the mode, the rest is the stream. Bits 0..=5: the size of the
/// chunks the stream is fed in (1 to 64 bytes); bit 6 set: a small `max_len` (256 bytes) and
/// `max_depth` (16), so the limits are reached; bit 7 set: the whole stream is also parsed
/// with [`rpc::parse`] as one value.
///
/// Checked: nothing panics; every value yielded starts with `{` or `[` and ends with `}` or `]`
/// (not necessarily the matching one) and is no longer than `max_len`; the values and the verdict (error or
/// not) are the same whether the stream arrives in chunks or all at once.
pub fn rpc_stream(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(mode & 0x3f) + 1;
    let small = mode & 0x40 != 0;
    let splitter = || {
        if small {
            JsonSplitter::new(256).with_max_depth(16)
        } else {
            JsonSplitter::default()
        }
    };
    if mode & 0x80 != 0 {
        let _ = rpc::parse(stream);
    }
    let chunked = split(splitter(), stream.chunks(chunk));
    let whole = split(splitter(), std::iter::once(stream));
    assert_eq!(chunked.0, whole.0, "values depend on chunking");
    assert_eq!(chunked.1, whole.1, "verdict depends on chunking");
    let max_len = splitter().max_len();
    for v in &chunked.0 {
        assert!(v.len() <= max_len, "value longer than max_len");
        // The splitter counts brackets without matching their kinds (serde_json validates
        // what it yields), so `{]` is one value, which rpc::parse then rejects.
        assert!(
            matches!(v[0], b'{' | b'['),
            "value does not open with a bracket"
        );
        assert!(
            matches!(v[v.len() - 1], b'}' | b']'),
            "value does not close with a bracket"
        );
        let _ = rpc::parse(v);
    }
}

/// Splits a stream fed in `chunks`; the values and whether it ended in an error.
fn split<'a>(
    mut sp: JsonSplitter,
    chunks: impl Iterator<Item = &'a [u8]>,
) -> (Vec<BytesMut>, bool) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match sp.decode(&mut buf) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    loop {
        match sp.decode_eof(&mut buf) {
            Ok(Some(v)) => out.push(v),
            Ok(None) => return (out, false),
            Err(_) => return (out, true),
        }
    }
}
