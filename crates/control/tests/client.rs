//! The client against a fake agent on a loopback socket: answers, refusals, streams, and
//! every way an agent can misbehave (silence, a line over the limit, not JSON, hanging up).

use std::time::{Duration, Instant};

use podport_control::{
    end_line, error_line, ok_line, Client, ClientError, Endpoint, EventLine, JournalLine, Request,
    Stages, SubscriptionLine,
};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

/// Long enough for any answer the fake sends at once.
const WITHIN: Duration = Duration::from_secs(10);

/// What the fake agent does after its reply.
#[derive(Clone, Copy)]
enum After {
    /// Closes the connection.
    Close,
    /// Keeps it open, silent, until the client hangs up.
    Hold,
}

/// A fake agent serving one connection: it reads one request line, checks it is `expect`,
/// writes `reply` and then does `after`.
async fn fake(expect: Request, reply: String, after: After) -> (Endpoint, JoinHandle<()>) {
    let listener = podport_transport::listen(&"tcp:127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = listener.endpoint().clone();
    let task = tokio::spawn(async move {
        let stream = listener.accept().await.unwrap();
        let (rd, mut wr) = tokio::io::split(stream);
        let mut rd = BufReader::new(rd);
        let mut line = String::new();
        rd.read_line(&mut line).await.unwrap();
        assert_eq!(line, expect.to_line());
        wr.write_all(reply.as_bytes()).await.unwrap();
        wr.flush().await.unwrap();
        if let After::Hold = after {
            // Until the client hangs up.
            let _ = rd.read_to_end(&mut Vec::new()).await;
        }
    });
    (endpoint, task)
}

/// Whether an error is the one a case wants.
type Check = fn(&ClientError) -> bool;

fn lines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[tokio::test]
async fn status_and_health_answers_are_typed() {
    let health = json!({
        "engine_running": true,
        "ready": false,
        "ovsdb": {"up": true, "since_unix_ms": 1, "for_ms": 2, "last_error": null, "disconnects": 0},
        "switch": {"up": false, "since_unix_ms": 3, "for_ms": 4, "last_error": "refused", "disconnects": 1},
        "problems": ["switch down 0ms (refused)"],
    });
    let port = json!({
        "ifname": "vnic-1", "pod": "default/web-1", "ofport": 3, "phase": "ready", "ready": true,
        "ready_for_ms": 10, "waited_ms": 1234, "state": ["LIVE"], "last_error": null,
        "attach_failures": 0, "stages": {"created": 0.5},
        // A field a newer agent may add is ignored.
        "newer": 1,
    });
    let answer = json!({"ok": true, "ports": [port], "health": health}).to_string();
    let (ep, agent) = fake(Request::Status, lines(&[answer]), After::Close).await;
    let (ports, got) = Client::connect(&ep, WITHIN)
        .await
        .unwrap()
        .status()
        .await
        .unwrap();
    agent.await.unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].ifname, "vnic-1");
    assert_eq!(ports[0].ofport, Some(3));
    assert_eq!(
        ports[0].stages,
        Stages::of([("created", Duration::from_millis(500))])
    );
    let got = got.expect("the health");
    assert!(!got.ready);
    assert_eq!(got.switch.last_error.as_deref(), Some("refused"));

    // An older agent's status has no health.
    let answer = json!({"ok": true, "ports": []}).to_string();
    let (ep, agent) = fake(Request::Status, lines(&[answer]), After::Close).await;
    let mut c = Client::connect(&ep, WITHIN).await.unwrap();
    assert_eq!(c.status().await.unwrap(), (Vec::new(), None));
    agent.await.unwrap();

    let answer = json!({"ok": true, "health": health}).to_string();
    let (ep, agent) = fake(Request::Health, lines(&[answer]), After::Close).await;
    let mut c = Client::connect(&ep, WITHIN).await.unwrap();
    assert_eq!(
        c.health().await.unwrap().problems,
        ["switch down 0ms (refused)"]
    );
    agent.await.unwrap();
}

#[tokio::test]
async fn refusals_and_bad_answers_are_errors() {
    let attach = Request::Attach {
        ifname: "vnic-404".into(),
    };
    let (ep, agent) = fake(
        attach.clone(),
        lines(&[error_line("vnic-404 is not tracked")]),
        After::Close,
    )
    .await;
    let e = Client::connect(&ep, WITHIN)
        .await
        .unwrap()
        .call(&attach)
        .await
        .unwrap_err();
    assert!(matches!(&e, ClientError::Refused(m) if m == "vnic-404 is not tracked"));
    assert_eq!(e.to_string(), "the agent refused: vnic-404 is not tracked");
    agent.await.unwrap();

    let cases: [(String, Check); 5] = [
        (
            "garbage\n".into(),
            |e| matches!(e, ClientError::NotJson { line, .. } if line == "garbage"),
        ),
        (String::new(), |e| matches!(e, ClientError::Closed { .. })),
        ("[1]\n".into(), |e| {
            matches!(e, ClientError::Unexpected { .. })
        }),
        (
            lines(&[ok_line()]),
            |e| matches!(e, ClientError::Unexpected { what, .. } if what.contains("without \"ports\"")),
        ),
        (lines(&[json!({"ok": true, "ports": 7}).to_string()]), |e| {
            matches!(
                e,
                ClientError::BadAnswer {
                    what: "status answer",
                    ..
                }
            )
        }),
    ];
    for (reply, want) in cases {
        let (ep, agent) = fake(Request::Status, reply.clone(), After::Close).await;
        let e = Client::connect(&ep, WITHIN)
            .await
            .unwrap()
            .status()
            .await
            .unwrap_err();
        assert!(want(&e), "{reply:?}: {e:?}");
        assert!(e.to_string().contains(&ep.to_string()), "{e}");
        agent.await.unwrap();
    }
}

#[tokio::test]
async fn lines_over_the_limit_are_refused() {
    let long = json!({"ok": true, "ports": [], "pad": "x".repeat(100)}).to_string();
    let (ep, agent) = fake(Request::Status, lines(&[long]), After::Hold).await;
    let e = Client::connect(&ep, WITHIN)
        .await
        .unwrap()
        .with_max_line(64)
        .status()
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::TooLong { max: 64, .. }), "{e:?}");
    agent.await.unwrap();
}

#[tokio::test]
async fn a_silent_agent_is_no_answer_by_the_deadline() {
    let (ep, agent) = fake(Request::Health, String::new(), After::Hold).await;
    let within = Duration::from_millis(300);
    let t = Instant::now();
    let mut c = Client::connect(&ep, within).await.unwrap();
    let e = c.health().await.unwrap_err();
    assert!(t.elapsed() >= within);
    assert_eq!(
        e.to_string(),
        format!("no answer from the agent at {ep} within 300ms")
    );
    drop(c);
    agent.await.unwrap();
}

#[tokio::test]
async fn an_absent_agent_cannot_be_reached() {
    let listener = podport_transport::listen(&"tcp:127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let ep = listener.endpoint().clone();
    drop(listener);
    let e = match Client::connect(&ep, WITHIN).await {
        Ok(_) => panic!("connected to a closed listener"),
        Err(e) => e,
    };
    assert!(matches!(e, ClientError::Connect { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("cannot reach the agent at {ep}: "))
            && text.ends_with("(is `podport agent` running?)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_journal_stream_is_records_then_its_end() {
    let journal = Request::Journal {
        from: 3,
        follow: false,
    };
    let records = [
        json!({"seq": 3, "event": {"kind": "x"}}).to_string(),
        json!({"seq": 4, "ok_like": true}).to_string(),
    ];
    let mut reply = records.to_vec();
    reply.push(end_line(4));
    let (ep, agent) = fake(journal.clone(), lines(&reply), After::Close).await;
    let mut c = Client::connect(&ep, WITHIN).await.unwrap();
    c.journal(3, false).await.unwrap();
    let silence = Some(WITHIN);
    for r in &records {
        assert_eq!(
            c.next_journal_line(silence).await.unwrap(),
            JournalLine::Record(r.clone())
        );
    }
    assert_eq!(
        c.next_journal_line(silence).await.unwrap(),
        JournalLine::End { last_seq: 4 }
    );
    agent.await.unwrap();

    // Refused; hung up in the middle; silent in the middle.
    let (ep, agent) = fake(
        journal.clone(),
        lines(&[error_line("the journal is closed")]),
        After::Close,
    )
    .await;
    let mut c = Client::connect(&ep, WITHIN).await.unwrap();
    c.journal(3, false).await.unwrap();
    let e = c.next_journal_line(silence).await.unwrap_err();
    assert_eq!(e.to_string(), "the agent refused: the journal is closed");
    agent.await.unwrap();

    let (ep, agent) = fake(journal.clone(), lines(&records[..1]), After::Close).await;
    let mut c = Client::connect(&ep, WITHIN).await.unwrap();
    c.journal(3, false).await.unwrap();
    c.next_journal_line(silence).await.unwrap();
    let e = c.next_journal_line(silence).await.unwrap_err();
    assert!(
        matches!(e, ClientError::Closed { when, .. } if when.contains("journal stream")),
        "{e:?}"
    );
    agent.await.unwrap();

    let (ep, agent) = fake(journal, lines(&records[..1]), After::Hold).await;
    let mut c = Client::connect(&ep, WITHIN).await.unwrap();
    c.journal(3, false).await.unwrap();
    c.next_journal_line(silence).await.unwrap();
    let e = c
        .next_journal_line(Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::NoAnswer { within, .. } if within == Duration::from_millis(200)),
        "{e:?}"
    );
    drop(c);
    agent.await.unwrap();
}

#[tokio::test]
async fn a_subscription_is_events_until_the_agent_drops_it() {
    let ready = EventLine::Ready {
        ifname: "vnic-1".into(),
        port_no: 5,
        waited_ms: 12,
        stages: Stages::default(),
    };
    let newer = json!({"event": "teleported", "ifname": "vnic-1"});
    let reply = [
        ok_line(),
        serde_json::to_string(&ready).unwrap(),
        newer.to_string(),
        error_line("subscription ended: this client fell more than 1024 events behind"),
    ];
    let (ep, agent) = fake(Request::Subscribe, lines(&reply), After::Close).await;
    let mut c = Client::connect(&ep, WITHIN).await.unwrap();
    c.subscribe().await.unwrap();
    assert_eq!(
        c.next_event().await.unwrap(),
        Some(SubscriptionLine::Event(ready))
    );
    assert_eq!(
        c.next_event().await.unwrap(),
        Some(SubscriptionLine::Other(newer))
    );
    let e = c.next_event().await.unwrap_err();
    assert!(
        e.to_string().contains("fell more than 1024 events behind"),
        "{e}"
    );
    assert_eq!(c.next_event().await.unwrap(), None);
    agent.await.unwrap();
}
