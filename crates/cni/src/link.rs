//! The Pod's interface, through iproute2's `ip` (inside the Pod's network namespace through
//! util-linux's `nsenter --net=PATH`): wait for the device OVS creates on the host, move it
//! into the namespace and configure it, read it back for CHECK, delete it for DEL. A failed
//! command is reported with its command line and its stderr.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::error::{code, CniError};

/// How often to look for the device while waiting for it.
const POLL: Duration = Duration::from_millis(20);

/// `ip ARGS`, in the namespace at `netns` when given; its stdout.
fn ip(netns: Option<&Path>, args: &[&str]) -> Result<String, CniError> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display())).arg("ip");
            c
        }
        None => Command::new("ip"),
    };
    cmd.args(args);
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|w| w.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd
        .output()
        .map_err(|e| CniError::new(code::INTERFACE, format!("cannot run `{}`: {e}", line)))?;
    if !out.status.success() {
        return Err(CniError::new(
            code::INTERFACE,
            format!("`{}` failed ({})", line, out.status),
        )
        .with_details(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether the device `name` exists (in `netns`, or on the host).
pub fn exists(netns: Option<&Path>, name: &str) -> Result<bool, CniError> {
    match ip(netns, &["-o", "link", "show", "dev", name]) {
        Ok(_) => Ok(true),
        Err(e)
            if e.details.contains("does not exist") || e.details.contains("Cannot find device") =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Waits until the device `name` exists on the host, at most `within`.
pub fn wait_on_host(name: &str, within: Duration) -> Result<(), CniError> {
    let deadline = Instant::now() + within;
    loop {
        if exists(None, name)? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CniError::new(
                code::INTERFACE,
                format!(
                    "the device {name} did not appear on the host within {}s after the agent \
                     attached the port",
                    within.as_secs()
                ),
            )
            .with_details(
                "OVS creates it for an internal port of a bridge with datapath_type=netdev; \
                 see `ovs-vsctl list interface` and ovs-vswitchd's log",
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// What the Pod's interface gets.
pub struct Setup<'a> {
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub mac: &'a str,
    /// Address and prefix length.
    pub addrs: &'a [(IpAddr, u8)],
    /// Destination (CIDR) and gateway.
    pub routes: &'a [(String, Option<String>)],
}

/// Moves the host device `host` into the Pod's namespace, renames it, sets its MAC and
/// addresses, brings it up and adds the routes.
pub fn move_and_configure(host: &str, s: &Setup) -> Result<(), CniError> {
    let ns = Some(s.netns);
    ip(
        None,
        &[
            "link",
            "set",
            "dev",
            host,
            "netns",
            &s.netns.display().to_string(),
        ],
    )?;
    // A device that changes namespace is down; the rename needs it down.
    ip(
        ns,
        &[
            "link", "set", "dev", host, "name", s.ifname, "address", s.mac,
        ],
    )?;
    for (addr, len) in s.addrs {
        ip(
            ns,
            &["addr", "add", &format!("{addr}/{len}"), "dev", s.ifname],
        )?;
    }
    ip(ns, &["link", "set", "dev", s.ifname, "up"])?;
    for (dst, gw) in s.routes {
        let mut args = vec!["route", "add", dst.as_str()];
        if let Some(gw) = gw {
            args.extend(["via", gw.as_str()]);
        }
        args.extend(["dev", s.ifname]);
        ip(ns, &args)?;
    }
    Ok(())
}

/// The interface as `ip -j addr show` gives it.
#[derive(Debug, Deserialize)]
struct Shown {
    #[serde(default)]
    address: String,
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Debug, Deserialize)]
struct AddrInfo {
    local: String,
    prefixlen: u8,
}

/// The interface `ifname` in `netns`: its MAC and its addresses (`10.66.0.2/24`).
pub fn show(netns: &Path, ifname: &str) -> Result<(String, Vec<String>), CniError> {
    let out = ip(Some(netns), &["-j", "addr", "show", "dev", ifname])?;
    let shown: Vec<Shown> = serde_json::from_str(&out).map_err(|e| {
        CniError::new(
            code::INTERFACE,
            format!("`ip -j addr show dev {ifname}` printed something else than its JSON: {e}"),
        )
        .with_details(out.clone())
    })?;
    let Some(first) = shown.into_iter().next() else {
        return Err(CniError::new(
            code::CHECK_FAILED,
            format!("no interface {ifname} in {}", netns.display()),
        ));
    };
    let addrs = first
        .addr_info
        .iter()
        .map(|a| format!("{}/{}", a.local, a.prefixlen))
        .collect();
    Ok((first.address, addrs))
}

/// Deletes the interface `ifname` in `netns` when both are there. A namespace that cannot
/// be entered any more (the runtime unmounted it and left the file) holds nothing to delete.
pub fn delete(netns: &Path, ifname: &str) -> Result<(), CniError> {
    if !netns.exists() {
        return Ok(());
    }
    match exists(Some(netns), ifname) {
        Ok(true) => {}
        Ok(false) => return Ok(()),
        Err(e) => {
            eprintln!("podport-cni: taking {} as gone: {e}", netns.display());
            return Ok(());
        }
    }
    match ip(Some(netns), &["link", "del", "dev", ifname]) {
        // OVS may have destroyed it meanwhile (the agent removed its port).
        Err(_) if !exists(Some(netns), ifname)? => Ok(()),
        r => r.map(drop),
    }
}
