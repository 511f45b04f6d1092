//! The IPAM plugin (the reference `host-local`, or any other), run as the spec says a
//! delegated plugin is run: found by its `type` in `CNI_PATH`, with this plugin's environment
//! (the command overridden for a rollback's DEL) and the same configuration on stdin.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{code, CniError};
use crate::result::CniResult;

/// How long the IPAM plugin may take.
const IPAM_TIMEOUT: Duration = Duration::from_secs(30);

/// The plugin `name` in the first directory of `path` that has it.
fn find(path: &[PathBuf], name: &str) -> Result<PathBuf, CniError> {
    path.iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let dirs: Vec<String> = path.iter().map(|d| d.display().to_string()).collect();
            CniError::new(
                code::IPAM,
                format!("the IPAM plugin {name:?} (ipam.type) is not in CNI_PATH"),
            )
            .with_details(format!("looked in {}", dirs.join(", ")))
        })
}

/// Runs the IPAM plugin for `command` (`ADD`, `DEL`, `CHECK`); its stdout when it succeeds.
fn exec(path: &[PathBuf], name: &str, command: &str, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let plugin = find(path, name)?;
    let fail = |msg: String| CniError::new(code::IPAM, msg);
    let mut child = Process::new(&plugin)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "cannot run the IPAM plugin {}: {e}",
                plugin.display()
            ))
        })?;
    // Written and read on threads of their own, so no pipe can stall the plugin.
    let writer = child.stdin.take().map(|mut w| {
        let input = stdin.to_vec();
        std::thread::spawn(move || w.write_all(&input))
    });
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = reader(child.stdout.take().map(|r| Box::new(r) as _));
    let err = reader(child.stderr.take().map(|r| Box::new(r) as _));
    let deadline = Instant::now() + IPAM_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "the IPAM plugin {} did not finish {command} within {}s",
                    plugin.display(),
                    IPAM_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(fail(format!("waiting for the IPAM plugin: {e}"))),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if status.success() {
        return Ok(stdout);
    }
    // A plugin's error object: its code and message, kept.
    let reported = serde_json::from_slice::<Value>(&stdout).ok().and_then(|v| {
        let msg = v.get("msg")?.as_str()?.to_string();
        Some((
            v.get("code").and_then(Value::as_u64),
            msg,
            v.get("details").cloned(),
        ))
    });
    let mut e = match reported {
        Some((code, msg, details)) => fail(format!(
            "the IPAM plugin {name} failed {command} (its code {}): {msg}",
            code.map_or("none".to_string(), |c| c.to_string())
        ))
        .with_details(
            details
                .and_then(|d| d.as_str().map(str::to_string))
                .unwrap_or_default(),
        ),
        None => fail(format!(
            "the IPAM plugin {name} failed {command} ({status}): {}",
            String::from_utf8_lossy(&stdout).trim()
        )),
    };
    let stderr = String::from_utf8_lossy(&stderr);
    if e.details.is_empty() && !stderr.trim().is_empty() {
        e.details = stderr.trim().to_string();
    }
    Err(e)
}

/// IPAM ADD: the addresses (at least one) and routes it gives out.
pub fn add(path: &[PathBuf], name: &str, stdin: &[u8]) -> Result<CniResult, CniError> {
    let out = exec(path, name, "ADD", stdin)?;
    let result: CniResult = serde_json::from_slice(&out).map_err(|e| {
        CniError::new(
            code::IPAM,
            format!("the IPAM plugin {name}'s result does not parse: {e}"),
        )
        .with_details(String::from_utf8_lossy(&out).into_owned())
    })?;
    if result.ips.is_empty() {
        return Err(CniError::new(
            code::IPAM,
            format!("the IPAM plugin {name} gave no IP address"),
        ));
    }
    Ok(result)
}

/// IPAM DEL: releases the container's address (succeeds when there is none).
pub fn del(path: &[PathBuf], name: &str, stdin: &[u8]) -> Result<(), CniError> {
    exec(path, name, "DEL", stdin).map(drop)
}

/// IPAM CHECK: the address is still held for this container.
pub fn check(path: &[PathBuf], name: &str, stdin: &[u8]) -> Result<(), CniError> {
    exec(path, name, "CHECK", stdin).map(drop)
}
