//! The body of the fuzz target in `crates/control/fuzz`, here so that the corpus replay test
//! (the workspace's `tests/fuzz_corpus.rs`) runs the same code on stable. Not an API.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use tokio::io::BufReader;

use crate::line::{read_line, LineRead};
use crate::protocol::{parse_request, MAX_REQUEST_LINE};

/// The line limit of the small mode: a few short requests fit, most do not.
const SMALL_MAX: usize = 32;

/// What reading one line gave, comparable.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Line(Vec<u8>),
    TooLong,
}

/// The `control_request` target: a control connection's bytes through [`read_line`] as the
/// server reads them, every line through [`parse_request`].
///
/// Input: the first byte picks the mode, the rest is the stream. Bits 0..=5: the size of the
/// chunks the stream arrives in (1 to 64 bytes); bit 6 set: a line limit of 32 bytes instead
/// of [`MAX_REQUEST_LINE`], so the limit is reached; bit 7 set: the whole stream is also
/// parsed as one request.
///
/// Checked: nothing panics; up to the first line over the limit (after which the server
/// closes the connection), the lines are those of a plain model (split at `\n`, one `\r`
/// before it dropped, over the limit when longer than it), whatever the chunking; no line
/// read is over the limit or holds a `\n`; a request parsed, written again with
/// `Request::to_line`, is one line that parses back to the same request.
pub fn control_request(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(mode & 0x3f) + 1;
    let max = if mode & 0x40 != 0 {
        SMALL_MAX
    } else {
        MAX_REQUEST_LINE
    };
    if mode & 0x80 != 0 {
        check_request(stream);
    }
    let read = read_all(stream, chunk, max);
    let model = model(stream, max);
    // Past a line over the limit the rest of it reads as what follows, which depends on the
    // chunking: the server closes the connection there.
    let upto = |v: &[Read]| {
        v.iter()
            .position(|r| *r == Read::TooLong)
            .map_or(v.len(), |i| i + 1)
    };
    assert_eq!(
        read[..upto(&read)],
        model[..upto(&model)],
        "lines differ from the model"
    );
    for r in &read {
        if let Read::Line(line) = r {
            assert!(line.len() <= max, "line over the limit");
            assert!(!line.contains(&b'\n'), "line holds a newline");
            if !line.iter().all(u8::is_ascii_whitespace) {
                check_request(line);
            }
        }
    }
}

/// Parses `line`; a request must survive being written and parsed again.
fn check_request(line: &[u8]) {
    match parse_request(line) {
        Ok(request) => {
            let again = request.to_line();
            assert!(
                again.ends_with('\n') && again.matches('\n').count() == 1,
                "to_line is not one line: {again:?}"
            );
            assert_eq!(
                parse_request(again.trim_end().as_bytes()).as_ref(),
                Ok(&request),
                "to_line does not parse back"
            );
        }
        Err(msg) => assert!(!msg.is_empty(), "an error without a message"),
    }
}

/// Every line of `stream`, read `chunk` bytes at a time.
fn read_all(stream: &[u8], chunk: usize, max: usize) -> Vec<Read> {
    let mut r = BufReader::with_capacity(chunk, stream);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        // Reading a slice never waits: the future is done at its first poll.
        let got = match now(read_line(&mut r, &mut buf, max)) {
            Some(Ok(got)) => got,
            Some(Err(e)) => panic!("reading a slice failed: {e}"),
            None => panic!("reading a slice waited"),
        };
        match got {
            LineRead::Line => out.push(Read::Line(buf.clone())),
            LineRead::TooLong => out.push(Read::TooLong),
            LineRead::Eof => return out,
        }
    }
}

/// The lines of `stream` as the protocol defines them.
fn model(stream: &[u8], max: usize) -> Vec<Read> {
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let line = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = &rest[..i];
                rest = &rest[i + 1..];
                line.strip_suffix(b"\r").unwrap_or(line)
            }
            None => std::mem::take(&mut rest),
        };
        out.push(if line.len() > max {
            Read::TooLong
        } else {
            Read::Line(line.to_vec())
        });
    }
    out
}

/// Polls `f` once: its output, or `None` if it would wait.
fn now<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}
