//! Reading a running agent's journal through its control socket, where sled's lock keeps
//! the directory closed to other processes.
//!
//! Wire format (JSON lines): the client sends [`request_line`]; the agent answers with one
//! line per record (the serde form of [`Record`], as `dump --json` prints it) from the
//! requested sequence number, then [`end_line`] when `follow` is false (with `follow` it keeps
//! sending new records until the client hangs up). An error is one line
//! `{"ok":false,"error":"..."}`.

use std::time::Duration;

use podport_transport::Endpoint;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::dump::record_from_json_line;
use crate::event::Record;

/// The request for records from `from` on.
pub fn request_line(from: u64, follow: bool) -> String {
    json!({"op": "journal", "from": from, "follow": follow}).to_string()
}

/// The line that ends a non-following stream.
pub fn end_line(last_seq: u64) -> String {
    json!({"end": true, "last_seq": last_seq}).to_string()
}

/// Why reading a remote journal failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot reach the agent at {endpoint}: {error}")]
    Connect { endpoint: String, error: String },
    #[error("the agent refused: {0}")]
    Refused(String),
    #[error("bad line from the agent: {0}")]
    BadLine(String),
    #[error("I/O error talking to the agent: {0}")]
    Io(String),
    #[error("the agent sent nothing for {0:?}")]
    Timeout(Duration),
}

/// Every record from `from` on, as the running agent at `endpoint` has them (blocking).
pub fn fetch(
    endpoint: &Endpoint,
    from: u64,
    idle_timeout: Duration,
) -> Result<Vec<Record>, RemoteError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RemoteError::Io(e.to_string()))?;
    rt.block_on(fetch_async(endpoint, from, idle_timeout))
}

async fn fetch_async(
    endpoint: &Endpoint,
    from: u64,
    idle: Duration,
) -> Result<Vec<Record>, RemoteError> {
    let stream = podport_transport::connect(endpoint)
        .await
        .map_err(|e| RemoteError::Connect {
            endpoint: endpoint.to_string(),
            error: e.to_string(),
        })?;
    let (rd, mut wr) = tokio::io::split(stream);
    let mut req = request_line(from, false);
    req.push('\n');
    wr.write_all(req.as_bytes())
        .await
        .map_err(|e| RemoteError::Io(e.to_string()))?;
    let mut lines = BufReader::new(rd).lines();
    let mut out = Vec::new();
    loop {
        let line = tokio::time::timeout(idle, lines.next_line())
            .await
            .map_err(|_| RemoteError::Timeout(idle))?
            .map_err(|e| RemoteError::Io(e.to_string()))?;
        let Some(line) = line else {
            return Err(RemoteError::Io(
                "the agent closed the stream before its end".into(),
            ));
        };
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if v.get("end") == Some(&Value::Bool(true)) {
                return Ok(out);
            }
            if v.get("ok") == Some(&Value::Bool(false)) {
                let e = v
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given");
                return Err(RemoteError::Refused(e.to_string()));
            }
        }
        out.push(
            record_from_json_line(&line)
                .map_err(|e| RemoteError::BadLine(format!("{e}: {line}")))?,
        );
    }
}
