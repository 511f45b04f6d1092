//! The one client of the control socket, for `podport cni`, `podport status` and
//! `podport-journal --control`. Every line it reads is bounded ([`MAX_ANSWER_LINE`]), and every
//! wait is bounded too: a request and its answer by the connection's deadline, a journal
//! stream by a silence allowed between two lines; only a subscription waits as long as its
//! caller lets it.

use std::io;
use std::time::{Duration, Instant};

use podport_transport::{BoxStream, Endpoint};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader, ReadHalf, WriteHalf};

use crate::line::{read_line, LineRead};
use crate::protocol::{duration_text, parse_end_line, EventLine, HealthInfo, PortInfo, Request};

/// The longest answer line the client accepts (a status of many thousand ports fits).
pub const MAX_ANSWER_LINE: usize = 64 * 1024 * 1024;

/// Why talking to the agent failed. Each message is whole, its cause included (a cause is
/// not also chained as `source`, so it is not printed twice).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the agent at {endpoint}: {error} (is `podport agent` running?)")]
    Connect {
        endpoint: Endpoint,
        error: io::Error,
    },
    /// The deadline (or the silence allowed in a stream) passed.
    #[error("no answer from the agent at {endpoint} within {}", duration_text(*within))]
    NoAnswer {
        endpoint: Endpoint,
        within: Duration,
    },
    #[error("{doing} the agent at {endpoint}: {error}")]
    Io {
        endpoint: Endpoint,
        /// `sending the request to`, `reading from`.
        doing: &'static str,
        error: io::Error,
    },
    #[error("the agent at {endpoint} closed the connection {when}")]
    Closed {
        endpoint: Endpoint,
        /// `without answering`, `before the end of the journal stream`.
        when: &'static str,
    },
    #[error("the agent at {endpoint} sent a line over {max} bytes")]
    TooLong { endpoint: Endpoint, max: usize },
    #[error("the agent at {endpoint} sent something that is not JSON ({error}): {line}")]
    NotJson {
        endpoint: Endpoint,
        line: String,
        error: serde_json::Error,
    },
    /// The agent's `{"ok":false,"error":..}`.
    #[error("the agent refused: {0}")]
    Refused(String),
    #[error("unexpected answer from the agent at {endpoint}: {what}")]
    Unexpected { endpoint: Endpoint, what: String },
    #[error("the {what} from the agent at {endpoint} does not parse: {error}")]
    BadAnswer {
        endpoint: Endpoint,
        /// `status answer`, `health answer`.
        what: &'static str,
        error: serde_json::Error,
    },
}

/// One line of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionLine {
    Event(EventLine),
    /// A line this client does not know (an event kind of a newer agent).
    Other(Value),
}

/// One line of a journal stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalLine {
    /// A record, as the journal's JSON form (`podport_journal::dump::record_from_json_line`
    /// reads it).
    Record(String),
    /// The end of a stream without `follow`: every record up to `last_seq` was sent.
    End { last_seq: u64 },
}

/// How long a read may wait.
#[derive(Clone, Copy)]
enum Wait {
    /// Until the connection's deadline.
    Deadline,
    /// This long for this line.
    For(Duration),
    /// As long as the caller lets it.
    Forever,
}

/// One connection to the agent. Every request ends by the connection's deadline, or fails
/// with [`ClientError::NoAnswer`].
pub struct Client {
    endpoint: Endpoint,
    rd: BufReader<ReadHalf<BoxStream>>,
    wr: WriteHalf<BoxStream>,
    buf: Vec<u8>,
    deadline: Instant,
    /// The bound as given, for the message.
    within: Duration,
    max_line: usize,
}

impl Client {
    /// Connects; the connection's every request must end within `within` from now.
    pub async fn connect(endpoint: &Endpoint, within: Duration) -> Result<Client, ClientError> {
        Client::connect_until(endpoint, Instant::now() + within, within).await
    }

    /// Connects with a deadline of the caller's (`within` is what the message names).
    pub async fn connect_until(
        endpoint: &Endpoint,
        deadline: Instant,
        within: Duration,
    ) -> Result<Client, ClientError> {
        let stream = tokio::time::timeout_at(deadline.into(), podport_transport::connect(endpoint))
            .await
            .map_err(|_| ClientError::NoAnswer {
                endpoint: endpoint.clone(),
                within,
            })?
            .map_err(|error| ClientError::Connect {
                endpoint: endpoint.clone(),
                error,
            })?;
        let (rd, wr) = tokio::io::split(stream);
        Ok(Client {
            endpoint: endpoint.clone(),
            rd: BufReader::new(rd),
            wr,
            buf: Vec::new(),
            deadline,
            within,
            max_line: MAX_ANSWER_LINE,
        })
    }

    /// Accepts answer lines of at most `max` bytes instead of [`MAX_ANSWER_LINE`].
    pub fn with_max_line(mut self, max: usize) -> Client {
        self.max_line = max;
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn no_answer(&self, within: Duration) -> ClientError {
        ClientError::NoAnswer {
            endpoint: self.endpoint.clone(),
            within,
        }
    }

    /// Sends one request, by the deadline.
    pub async fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        let line = request.to_line();
        tokio::time::timeout_at(self.deadline.into(), self.wr.write_all(line.as_bytes()))
            .await
            .map_err(|_| self.no_answer(self.within))?
            .map_err(|error| ClientError::Io {
                endpoint: self.endpoint.clone(),
                doing: "sending the request to",
                error,
            })
    }

    /// The next line, in `self.buf`; `false` when the agent closed the connection.
    async fn next_line(&mut self, wait: Wait) -> Result<bool, ClientError> {
        let read = read_line(&mut self.rd, &mut self.buf, self.max_line);
        let read = match wait {
            Wait::Deadline => tokio::time::timeout_at(self.deadline.into(), read)
                .await
                .map_err(|_| ClientError::NoAnswer {
                    endpoint: self.endpoint.clone(),
                    within: self.within,
                })?,
            Wait::For(d) => {
                tokio::time::timeout(d, read)
                    .await
                    .map_err(|_| ClientError::NoAnswer {
                        endpoint: self.endpoint.clone(),
                        within: d,
                    })?
            }
            Wait::Forever => read.await,
        };
        match read.map_err(|error| ClientError::Io {
            endpoint: self.endpoint.clone(),
            doing: "reading from",
            error,
        })? {
            LineRead::Eof => Ok(false),
            LineRead::TooLong => Err(ClientError::TooLong {
                endpoint: self.endpoint.clone(),
                max: self.max_line,
            }),
            LineRead::Line => Ok(true),
        }
    }

    fn not_json(&self, error: serde_json::Error) -> ClientError {
        ClientError::NotJson {
            endpoint: self.endpoint.clone(),
            line: String::from_utf8_lossy(&self.buf).into_owned(),
            error,
        }
    }

    /// The next line as JSON; `None` when the agent closed the connection.
    async fn next_value(&mut self, wait: Wait) -> Result<Option<Value>, ClientError> {
        if !self.next_line(wait).await? {
            return Ok(None);
        }
        serde_json::from_slice(&self.buf)
            .map(Some)
            .map_err(|e| self.not_json(e))
    }

    /// The agent's `{"ok":false,"error":..}` as [`ClientError::Refused`].
    fn check_ok(&self, answer: &Value) -> Result<(), ClientError> {
        match answer.get("ok") {
            Some(Value::Bool(true)) => Ok(()),
            Some(Value::Bool(false)) => Err(refused(answer)),
            _ => Err(ClientError::Unexpected {
                endpoint: self.endpoint.clone(),
                what: answer.to_string(),
            }),
        }
    }

    /// Sends `request` and returns its answer (`{"ok":true,..}`), or the agent's refusal as
    /// [`ClientError::Refused`].
    pub async fn call(&mut self, request: &Request) -> Result<Value, ClientError> {
        self.send(request).await?;
        let answer = self
            .next_value(Wait::Deadline)
            .await?
            .ok_or_else(|| ClientError::Closed {
                endpoint: self.endpoint.clone(),
                when: "without answering",
            })?;
        self.check_ok(&answer)?;
        Ok(answer)
    }

    /// The field `key` of an answer, parsed.
    fn field<T: for<'de> Deserialize<'de>>(
        &self,
        answer: &mut Value,
        key: &str,
        what: &'static str,
    ) -> Result<Option<T>, ClientError> {
        match answer.get_mut(key).map(Value::take) {
            None => Ok(None),
            Some(v) => {
                serde_json::from_value(v)
                    .map(Some)
                    .map_err(|error| ClientError::BadAnswer {
                        endpoint: self.endpoint.clone(),
                        what,
                        error,
                    })
            }
        }
    }

    /// The ports, and the health when the agent sends it (an older agent does not).
    pub async fn status(&mut self) -> Result<(Vec<PortInfo>, Option<HealthInfo>), ClientError> {
        let mut answer = self.call(&Request::Status).await?;
        let ports = self
            .field(&mut answer, "ports", "status answer")?
            .ok_or_else(|| ClientError::Unexpected {
                endpoint: self.endpoint.clone(),
                what: format!("a status answer without \"ports\": {answer}"),
            })?;
        let health = self.field(&mut answer, "health", "health in the status answer")?;
        Ok((ports, health))
    }

    /// The agent's health.
    pub async fn health(&mut self) -> Result<HealthInfo, ClientError> {
        let mut answer = self.call(&Request::Health).await?;
        self.field(&mut answer, "health", "health answer")?
            .ok_or_else(|| ClientError::Unexpected {
                endpoint: self.endpoint.clone(),
                what: format!("a health answer without \"health\": {answer}"),
            })
    }

    /// Subscribes to Pod events: once this returns, every event after it reaches
    /// [`Client::next_event`].
    pub async fn subscribe(&mut self) -> Result<(), ClientError> {
        self.call(&Request::Subscribe).await.map(drop)
    }

    /// The next event of a subscription, waiting as long as the caller lets it; `None` when
    /// the agent closed the stream. The agent dropping the subscription is
    /// [`ClientError::Refused`] with its reason.
    pub async fn next_event(&mut self) -> Result<Option<SubscriptionLine>, ClientError> {
        let Some(v) = self.next_value(Wait::Forever).await? else {
            return Ok(None);
        };
        // Event lines carry no "ok"; only an error line does.
        if v.get("ok").is_some() {
            self.check_ok(&v)?;
        }
        Ok(Some(match serde_json::from_value::<EventLine>(v.clone()) {
            Ok(ev) => SubscriptionLine::Event(ev),
            Err(_) => SubscriptionLine::Other(v),
        }))
    }

    /// Asks for the journal's records from `from` on; read them with
    /// [`Client::next_journal_line`].
    pub async fn journal(&mut self, from: u64, follow: bool) -> Result<(), ClientError> {
        self.send(&Request::Journal { from, follow }).await
    }

    /// The next line of a journal stream, which must come within `silence` (`None`: as long
    /// as the caller lets it, for a stream that follows). The agent closing the stream, or
    /// refusing, is an error.
    pub async fn next_journal_line(
        &mut self,
        silence: Option<Duration>,
    ) -> Result<JournalLine, ClientError> {
        let wait = silence.map_or(Wait::Forever, Wait::For);
        if !self.next_line(wait).await? {
            return Err(ClientError::Closed {
                endpoint: self.endpoint.clone(),
                when: "before the end of the journal stream",
            });
        }
        // Only the few fields that tell a record from the end or an error line: a record is
        // parsed once, by the journal's reader.
        #[derive(Deserialize)]
        struct Marker {
            end: Option<Value>,
            ok: Option<Value>,
        }
        if let Ok(Marker {
            end: None,
            ok: None,
        }) = serde_json::from_slice(&self.buf)
        {
            // Lossy: serde_json skips the strings of ignored fields without checking them.
            return Ok(JournalLine::Record(
                String::from_utf8_lossy(&self.buf).into_owned(),
            ));
        }
        let v: Value = serde_json::from_slice(&self.buf).map_err(|e| self.not_json(e))?;
        if let Some(last_seq) = parse_end_line(&v) {
            return Ok(JournalLine::End { last_seq });
        }
        self.check_ok(&v)?;
        Err(ClientError::Unexpected {
            endpoint: self.endpoint.clone(),
            what: format!("{v} in a journal stream"),
        })
    }
}

fn refused(answer: &Value) -> ClientError {
    let e = answer
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("no reason given");
    ClientError::Refused(e.to_string())
}
