//! Splits an OVSDB byte stream into complete top-level JSON values.
//!
//! OVSDB's JSON-RPC has no framing: values come back to back, possibly separated by
//! whitespace. [`JsonSplitter`] finds where each value ends by counting brackets outside
//! strings (tracking string and backslash-escape state), without parsing: serde_json parses
//! and validates the bytes it yields. Scan state is kept between calls, so a value arriving in
//! many reads is scanned once (linear time overall).
//!
//! Bounds: a value longer than `max_len` bytes is an error as soon as `max_len` bytes of it
//! have been scanned, so a reader that calls [`JsonSplitter::decode`] after every read never
//! holds more than `max_len` plus one read. Whitespace between values is dropped as it is seen. Nesting is bounded too: a value
//! nested deeper than `max_depth` (by default [`MAX_DEPTH`], ovsdb-server's own limit) is an
//! error as soon as the bracket that goes too deep is scanned, so serde_json, whose own
//! recursion limit is lifted for OVSDB input (see [`crate::rpc::parse`]), never recurses
//! deeper than that.
//!
//! After an error the stream is out of step: the connection must be closed.
//!
//! Plain methods, no codec trait: the crate stays free of any runtime.

use bytes::{Buf, BytesMut};

/// The deepest nesting of arrays and objects accepted: 1000, as in Open vSwitch's JSON parser
/// (`lib/json.c`), which accepts a value with 1000 levels of containers and rejects a 1001st
/// with "input exceeds maximum nesting depth 1000". serde_json's default (128) would reject
/// messages ovsdb-server itself accepts and sends.
pub const MAX_DEPTH: usize = 1000;

/// Splits a byte stream into complete top-level JSON values (OVSDB sends them back to back,
/// no delimiter).
#[derive(Debug, Clone)]
pub struct JsonSplitter {
    max_len: usize,
    max_depth: usize,
    /// Bytes of the current (incomplete) value already scanned, from the buffer's start.
    scanned: usize,
    /// Bracket depth at `scanned`; 0 means no value has started.
    depth: usize,
    in_string: bool,
    escape: bool,
    /// Stream offset of the buffer's first byte, for error messages.
    offset: usize,
}

/// Why the byte stream cannot be split.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// A value was still incomplete after `limit` bytes.
    #[error("JSON value longer than {limit} bytes")]
    TooLarge {
        /// The configured maximum.
        limit: usize,
    },
    /// A top-level value does not start with `{` or `[`, or a closing bracket appeared at
    /// depth 0.
    #[error("not a JSON object or array at stream offset {offset}: byte {byte:#04x}")]
    NotJson {
        /// Offset of the byte in the stream.
        offset: usize,
        /// The offending byte.
        byte: u8,
    },
    /// A value is nested deeper than `limit` arrays and objects.
    #[error("JSON value nested deeper than {limit} levels at stream offset {offset}")]
    TooDeep {
        /// The configured maximum depth.
        limit: usize,
        /// Offset in the stream of the bracket that went one level too deep.
        offset: usize,
    },
    /// The stream ended inside a value.
    #[error("stream ended inside a JSON value ({pending} bytes pending)")]
    Truncated {
        /// Bytes of the incomplete value.
        pending: usize,
    },
}

impl JsonSplitter {
    /// The default maximum value size: 64 MiB, far above the largest monitor update of a node
    /// (about 1 KiB per interface row).
    pub const DEFAULT_MAX_LEN: usize = 64 << 20;

    /// A splitter rejecting values longer than `max_len` bytes or nested deeper than
    /// [`MAX_DEPTH`].
    pub fn new(max_len: usize) -> Self {
        JsonSplitter {
            max_len,
            max_depth: MAX_DEPTH,
            scanned: 0,
            depth: 0,
            in_string: false,
            escape: false,
            offset: 0,
        }
    }

    /// The same splitter with another nesting bound (at least 1: a top-level value is one
    /// level). Values parsed with [`crate::rpc::parse`] are still held to [`MAX_DEPTH`].
    pub fn with_max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth.max(1);
        self
    }

    /// The configured maximum value size.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The configured maximum nesting depth.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }
}

impl Default for JsonSplitter {
    fn default() -> Self {
        JsonSplitter::new(JsonSplitter::DEFAULT_MAX_LEN)
    }
}

/// A 256-entry membership table of `set`.
const fn byte_table(set: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut k = 0;
    while k < set.len() {
        t[set[k] as usize] = true;
        k += 1;
    }
    t
}

/// Bytes that matter inside a string.
static STRING_SPECIAL: [bool; 256] = byte_table(b"\"\\");
/// Bytes that matter outside strings.
static STRUCTURAL: [bool; 256] = byte_table(b"\"{}[]");

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Whether `bytes` nest arrays and objects deeper than `limit` levels, counting brackets
/// outside strings as the splitter does (without validating the JSON). Returns the offset of
/// the first bracket too deep.
pub fn too_deep(bytes: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && !STRUCTURAL[usize::from(bytes[i])] {
            i += 1;
        }
        let Some(&b) = bytes.get(i) else {
            break;
        };
        match b {
            b'"' => {
                // Skip the string, escapes included.
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
            }
            b'{' | b'[' => {
                if depth == limit {
                    return Some(i);
                }
                depth += 1;
            }
            _ => depth = depth.saturating_sub(1),
        }
        i += 1;
    }
    None
}

impl JsonSplitter {
    /// Takes the first complete value off the front of `buf`, or returns `None` while it is
    /// incomplete (the bytes scanned so far are not scanned again).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, SplitError> {
        if self.depth == 0 {
            // Between values: drop whitespace so that it neither accumulates nor counts
            // against the next value's length.
            let ws = buf.iter().take_while(|b| is_json_whitespace(**b)).count();
            buf.advance(ws);
            self.offset += ws;
            let Some(&first) = buf.first() else {
                return Ok(None);
            };
            if first != b'{' && first != b'[' {
                return Err(SplitError::NotJson {
                    offset: self.offset,
                    byte: first,
                });
            }
            self.depth = 1;
            self.scanned = 1;
        }
        // Scan no further than max_len: a value that has not ended by then is an error
        // whatever follows.
        let end = buf.len().min(self.max_len);
        let bytes = &buf[..end];
        let mut i = self.scanned;
        // Runs of bytes that change nothing (most of a message) are skipped with a table
        // lookup per byte; only quotes, backslashes in strings and brackets outside strings
        // stop the inner loops.
        while i < end {
            if self.in_string {
                if self.escape {
                    // The escaped byte, which may have arrived in a later read.
                    self.escape = false;
                    i += 1;
                    continue;
                }
                while i < end && !STRING_SPECIAL[usize::from(bytes[i])] {
                    i += 1;
                }
                if i == end {
                    break;
                }
                if bytes[i] == b'\\' {
                    self.escape = true;
                } else {
                    self.in_string = false;
                }
                i += 1;
                continue;
            }
            while i < end && !STRUCTURAL[usize::from(bytes[i])] {
                i += 1;
            }
            if i == end {
                break;
            }
            let b = bytes[i];
            i += 1;
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    if self.depth == self.max_depth {
                        return Err(SplitError::TooDeep {
                            limit: self.max_depth,
                            offset: self.offset + i - 1,
                        });
                    }
                    self.depth += 1;
                }
                // Only '}' and ']' remain.
                _ => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.scanned = 0;
                        self.offset += i;
                        return Ok(Some(buf.split_to(i)));
                    }
                }
            }
        }
        self.scanned = i;
        if i >= self.max_len {
            return Err(SplitError::TooLarge {
                limit: self.max_len,
            });
        }
        Ok(None)
    }

    /// [`JsonSplitter::decode`] at the end of the stream: bytes left of an incomplete value
    /// are [`SplitError::Truncated`].
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, SplitError> {
        match self.decode(buf)? {
            Some(v) => Ok(Some(v)),
            None if buf.is_empty() => Ok(None),
            None => Err(SplitError::Truncated { pending: buf.len() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// Feeds `chunks` one by one, decoding after each, then signals end of stream.
    fn split(splitter: &mut JsonSplitter, chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, SplitError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            while let Some(v) = splitter.decode(&mut buf)? {
                out.push(v.to_vec());
            }
        }
        while let Some(v) = splitter.decode_eof(&mut buf)? {
            out.push(v.to_vec());
        }
        Ok(out)
    }

    fn strs(v: Vec<Vec<u8>>) -> Vec<String> {
        v.into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect()
    }

    #[test]
    fn several_values_in_one_chunk() {
        let out = split(
            &mut JsonSplitter::default(),
            &[br#"{"id":1}[1,[2]]{"a":{"b":[]}}"#],
        )
        .unwrap();
        assert_eq!(strs(out), [r#"{"id":1}"#, "[1,[2]]", r#"{"a":{"b":[]}}"#]);
    }

    #[test]
    fn one_value_in_many_chunks() {
        let text = br#"{"method":"update2","params":[null,{"T":{"x":"y"}}],"id":null}"#;
        let chunks: Vec<&[u8]> = text.chunks(3).collect();
        let out = split(&mut JsonSplitter::default(), &chunks).unwrap();
        assert_eq!(out, [text.to_vec()]);
    }

    #[test]
    fn brackets_and_escapes_in_strings() {
        let text = br#"{"a":"}\"{"}{"b":"\\"}{"c":"[\\\"]"}"#;
        // Every split point, including inside escapes.
        for cut in 0..=text.len() {
            let out = split(&mut JsonSplitter::default(), &[&text[..cut], &text[cut..]]).unwrap();
            assert_eq!(
                strs(out),
                [r#"{"a":"}\"{"}"#, r#"{"b":"\\"}"#, r#"{"c":"[\\\"]"}"#],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn whitespace_between_values() {
        let out = split(
            &mut JsonSplitter::default(),
            &[b" \n{\"a\":1}\r\n\t ", b"  ", b" [ 1 ] \n"],
        )
        .unwrap();
        assert_eq!(strs(out), ["{\"a\":1}", "[ 1 ]"]);
    }

    #[test]
    fn garbage_is_not_json() {
        let err = split(&mut JsonSplitter::default(), &[b"hello"]).unwrap_err();
        assert!(
            matches!(
                err,
                SplitError::NotJson {
                    offset: 0,
                    byte: b'h'
                }
            ),
            "{err:?}"
        );
        // The offset counts bytes of earlier values and whitespace.
        let err = split(&mut JsonSplitter::default(), &[b"{} 5"]).unwrap_err();
        assert!(
            matches!(
                err,
                SplitError::NotJson {
                    offset: 3,
                    byte: b'5'
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn closing_bracket_at_depth_zero() {
        let err = split(&mut JsonSplitter::default(), &[b"{}]"]).unwrap_err();
        assert!(
            matches!(
                err,
                SplitError::NotJson {
                    offset: 2,
                    byte: b']'
                }
            ),
            "{err:?}"
        );
        let err = split(&mut JsonSplitter::default(), &[b"}"]).unwrap_err();
        assert!(matches!(err, SplitError::NotJson { .. }), "{err:?}");
    }

    #[test]
    fn too_large_value_stops_the_buffer() {
        const LIMIT: usize = 1000;
        const READ: usize = 64;
        let mut s = JsonSplitter::new(LIMIT);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"{\"k\":\"");
        let filler = [b'x'; READ];
        let err = loop {
            match s.decode(&mut buf) {
                Ok(None) => buf.extend_from_slice(&filler),
                Ok(Some(_)) => panic!("an unterminated value was yielded"),
                Err(e) => break e,
            }
            assert!(buf.len() <= LIMIT + READ, "buffer grew to {}", buf.len());
        };
        assert!(
            matches!(err, SplitError::TooLarge { limit: LIMIT }),
            "{err:?}"
        );
        assert!(buf.len() <= LIMIT + READ);
    }

    #[test]
    fn limit_is_on_the_value_not_the_buffer() {
        // Two values of 10 bytes each in one 20-byte read, with a limit of 10: both pass.
        let out = split(&mut JsonSplitter::new(10), &[br#"{"a":"bc"}{"d":"ef"}"#]).unwrap();
        assert_eq!(out.len(), 2);
        // One byte more in one read is too large, even though the value is complete.
        let err = split(&mut JsonSplitter::new(10), &[br#"{"a":"bcd"}"#]).unwrap_err();
        assert!(matches!(err, SplitError::TooLarge { limit: 10 }), "{err:?}");
    }

    #[test]
    fn scanning_is_linear() {
        // 2 MiB in 64-byte reads: rescanning the buffer from its start on every read would
        // take about 16 000 times the work of one pass, and this test would not finish.
        let mut text = b"{\"k\":\"".to_vec();
        text.resize(2 << 20, b'x');
        text.extend_from_slice(b"\"}");
        let chunks: Vec<&[u8]> = text.chunks(64).collect();
        let out = split(&mut JsonSplitter::default(), &chunks).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), text.len());
    }

    #[test]
    fn whitespace_does_not_accumulate() {
        let mut s = JsonSplitter::new(16);
        let mut buf = BytesMut::new();
        for _ in 0..100 {
            buf.extend_from_slice(&[b' '; 64]);
            assert!(s.decode(&mut buf).unwrap().is_none());
            assert!(buf.is_empty());
        }
    }

    /// `[[...]]` nested `depth` levels.
    fn nested(depth: usize) -> Vec<u8> {
        let mut v = vec![b'['; depth];
        v.extend(std::iter::repeat_n(b']', depth));
        v
    }

    #[test]
    fn nesting_up_to_the_limit_passes() {
        for depth in [1, 128, 999, MAX_DEPTH] {
            let text = nested(depth);
            let out = split(&mut JsonSplitter::default(), &[&text]).unwrap();
            assert_eq!(out, std::slice::from_ref(&text), "depth {depth}");
            assert_eq!(too_deep(&text, MAX_DEPTH), None);
        }
    }

    #[test]
    fn nesting_beyond_the_limit_is_an_error_naming_it() {
        let text = nested(MAX_DEPTH + 1);
        // In one read and byte by byte, after an earlier value (offsets count it).
        let mut stream = b"{} ".to_vec();
        stream.extend_from_slice(&text);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        for chunks in [vec![&stream[..]], bytes] {
            let err = split(&mut JsonSplitter::default(), &chunks).unwrap_err();
            assert!(
                matches!(err, SplitError::TooDeep { limit: MAX_DEPTH, offset } if offset == 3 + MAX_DEPTH),
                "{err:?}"
            );
            assert!(err.to_string().contains("1000"), "{err}");
        }
        assert_eq!(too_deep(&text, MAX_DEPTH), Some(MAX_DEPTH));
        // A smaller bound, and brackets in strings do not count.
        let mut s = JsonSplitter::default().with_max_depth(2);
        assert_eq!(s.max_depth(), 2);
        let out = split(&mut s, &[br#"[{"a":"[[[{{{"}]"#]).unwrap();
        assert_eq!(out.len(), 1);
        let err = split(&mut JsonSplitter::default().with_max_depth(2), &[b"[[[]]]"]).unwrap_err();
        assert!(
            matches!(
                err,
                SplitError::TooDeep {
                    limit: 2,
                    offset: 2
                }
            ),
            "{err:?}"
        );
        assert_eq!(too_deep(br#"[{"a":"[[[{{{\"\\"}]"#, 2), None);
        assert_eq!(too_deep(b"[[[]]]", 2), Some(2));
    }

    #[test]
    fn truncated_stream() {
        let err = split(&mut JsonSplitter::default(), &[b"{} {\"a\":"]).unwrap_err();
        assert!(
            matches!(err, SplitError::Truncated { pending: 5 }),
            "{err:?}"
        );
        assert!(split(&mut JsonSplitter::default(), &[b"{}  \n"]).is_ok());
    }

    /// JSON values with nested containers, strings full of escapes, brackets, quotes and
    /// non-ASCII characters.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            r#"(\PC|["\\{}\[\]/\n\t\u{0}\u{1f}é€😀])*"#.prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(r#"[a-z"\\{}\[\]é]{0,6}"#, inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn top_level() -> impl Strategy<Value = Value> {
        prop_oneof![
            proptest::collection::btree_map("[a-z]{1,5}", json_value(), 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            proptest::collection::vec(json_value(), 0..4).prop_map(Value::Array),
        ]
    }

    proptest! {
        #[test]
        fn any_split_yields_the_same_values(
            values in proptest::collection::vec((top_level(), any::<bool>(), "[ \t\r\n]{0,3}"), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (v, pretty, ws) in &values {
                let text = if *pretty {
                    serde_json::to_string_pretty(v).unwrap()
                } else {
                    serde_json::to_string(v).unwrap()
                };
                // Compare with a direct parse of the same text, so that float printing is
                // not what is tested.
                expected.push(serde_json::from_str::<Value>(&text).unwrap());
                stream.extend_from_slice(text.as_bytes());
                stream.extend_from_slice(ws.as_bytes());
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let chunks: Vec<&[u8]> = points.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
            let out = split(&mut JsonSplitter::default(), &chunks).unwrap();
            let got: Vec<Value> = out.iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn json_macro_sanity() {
        // The splitter's output for a real update2 notification parses back to it.
        let v = json!({"id": null, "method": "update2",
            "params": [null, {"Interface": {"02c85bec-b4e5-49c3-90b7-ea1c2c69ba8c":
                {"modify": {"ofport": 13}}}}]});
        let text = serde_json::to_vec(&v).unwrap();
        let out = split(&mut JsonSplitter::default(), &[&text]).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&out[0]).unwrap(), v);
    }
}
