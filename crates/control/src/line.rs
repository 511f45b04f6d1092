//! Reading one line without holding more than a bound of it: the server reads requests with
//! it ([`crate::MAX_REQUEST_LINE`]), the client answers (with a larger bound).

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    /// A line (in the buffer, without its `\n` or `\r\n`).
    Line,
    /// The peer closed the stream with no partial line pending.
    Eof,
    /// The line is longer than the limit; what was read of it is discarded.
    TooLong,
}

/// Reads one line into `buf` (cleared first), never holding more than `max` bytes of it. A
/// last line without its newline counts as a line.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<LineRead> {
    buf.clear();
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            // A last line has no `\n`, so a `\r` at its end is its own and counts: the
            // unfinished line may have held one byte over the limit for it.
            return Ok(if buf.is_empty() {
                LineRead::Eof
            } else if buf.len() > max {
                buf.clear();
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
        let (chunk, used, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        // The limit is on the line itself: a `\r` before the `\n` does not count, and an
        // unfinished line may hold one byte more, which can still turn out to be that `\r`.
        let len = buf.len() + chunk.len();
        let ends_in_cr = chunk.last().or(buf.last()) == Some(&b'\r');
        let over = if done {
            len - usize::from(ends_in_cr) > max
        } else {
            len > max + 1 || (len == max + 1 && !ends_in_cr)
        };
        if over {
            r.consume(used);
            buf.clear();
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(chunk);
        r.consume(used);
        if done {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(LineRead::Line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    #[tokio::test]
    async fn reads_lines_within_the_limit() {
        let input: &[u8] = b"one\r\ntwo\nthree-is-long\nfour";
        let mut r = BufReader::with_capacity(3, input);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            match read_line(&mut r, &mut buf, 8).await.unwrap() {
                LineRead::Line => got.push(String::from_utf8(buf.clone()).unwrap()),
                LineRead::TooLong => got.push("<too long>".into()),
                LineRead::Eof => break,
            }
        }
        // The long line's remainder is read as what follows it: which is why the server
        // closes the connection after a too-long line.
        assert_eq!(got[..3], ["one", "two", "<too long>"]);
        assert_eq!(got.last().unwrap(), "four");
    }

    #[tokio::test]
    async fn the_limit_is_on_the_line_not_its_line_ending() {
        for (input, want) in [
            (&b"12345678\r\n"[..], Some("12345678")),
            (b"12345678\n", Some("12345678")),
            (b"12345678", Some("12345678")),
            (b"123456789\n", None),
            (b"12345678\rx\n", None),
            (b"123456789\r\n", None),
            // Without its newline, the `\r` is the line's own.
            (b"1234567\r", Some("1234567\r")),
            (b"12345678\r", None),
        ] {
            for cap in [1, 3, 64] {
                let mut r = BufReader::with_capacity(cap, input);
                let mut buf = Vec::new();
                let got = match read_line(&mut r, &mut buf, 8).await.unwrap() {
                    LineRead::Line => Some(String::from_utf8(buf.clone()).unwrap()),
                    LineRead::TooLong => None,
                    LineRead::Eof => panic!("eof"),
                };
                assert_eq!(
                    got.as_deref(),
                    want,
                    "{:?} read {cap} bytes at a time",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }
}
