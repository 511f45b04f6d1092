//! Helpers shared by the integration tests: bounded waits on client events, with failure
//! messages that say what was awaited and what arrived instead.

use std::time::Duration;

use podport_openflow::PortStatus;
use podport_session::openflow::{ClientEvent, EventReceiver};

/// The default bound for anything the switch should do promptly.
pub const PROMPT: Duration = Duration::from_secs(20);

/// The next event, or a panic naming `what` after `timeout`.
pub async fn next_event(rx: &mut EventReceiver, timeout: Duration, what: &str) -> ClientEvent {
    match tokio::time::timeout(timeout, rx.recv()).await {
        Ok(Some(ev)) => ev,
        Ok(None) => panic!("event stream ended while waiting for {what}"),
        Err(_) => panic!("no event within {timeout:?} while waiting for {what}"),
    }
}

/// Skips events until one satisfies `pred`; panics after `timeout` listing what was skipped.
pub async fn wait_for<T>(
    rx: &mut EventReceiver,
    timeout: Duration,
    what: &str,
    mut pred: impl FnMut(&ClientEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut skipped = Vec::new();
    loop {
        let ev = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("event stream ended while waiting for {what}; saw {skipped:#?}"),
            Err(_) => panic!("no {what} within {timeout:?}; saw instead {skipped:#?}"),
        };
        if let Some(t) = pred(&ev) {
            return t;
        }
        skipped.push(ev);
    }
}

/// Waits for `Connected` and returns (version, datapath id).
pub async fn wait_connected(rx: &mut EventReceiver) -> (podport_openflow::Version, u64) {
    wait_for(rx, PROMPT, "Connected", |ev| match ev {
        ClientEvent::Connected {
            version,
            datapath_id,
        } => Some((*version, *datapath_id)),
        _ => None,
    })
    .await
}

/// The next `n` PortStatus messages for the port named `name` (others are skipped).
pub async fn port_statuses(rx: &mut EventReceiver, name: &str, n: usize) -> Vec<PortStatus> {
    let mut out = Vec::new();
    while out.len() < n {
        let ps = wait_for(
            rx,
            PROMPT,
            &format!("PortStatus for {name}"),
            |ev| match ev {
                ClientEvent::PortStatus(ps) if ps.port.name == name => Some(ps.clone()),
                _ => None,
            },
        )
        .await;
        out.push(ps);
    }
    out
}

/// Asserts that nothing arrives on `rx` for `window` (used while the switch is frozen).
pub async fn assert_quiet(rx: &mut EventReceiver, window: Duration, why: &str) {
    if let Ok(Some(ev)) = tokio::time::timeout(window, rx.recv()).await {
        panic!("expected no event ({why}), got {ev:?}");
    }
}
