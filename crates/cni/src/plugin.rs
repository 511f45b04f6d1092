//! ADD, DEL and CHECK: the IPAM plugin, the agent's control socket and the Pod's interface,
//! in the order the spec and the agent need.
//!
//! ADD: IPAM ADD, then the agent's `add` (the port, named [`host_ifname`], with the Pod's IPs
//! and the MAC derived from the first) and `attach` (the agent switches the port's type to
//! internal: the Windows order; on a bridge with datapath_type=netdev OVS then creates a TAP
//! device of the port's name), then the device is moved into the Pod's namespace and
//! configured. Readiness is not waited for: the agent reports it (PortStatus). A failure after
//! IPAM ADD undoes what was done (the agent's `del`, IPAM DEL).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use podport_control::{Client, ClientError, Endpoint, Request};
use serde_json::Value;

use crate::config::NetConf;
use crate::env::{Command, Env};
use crate::error::{code, CniError};
use crate::result::{host_ifname, mac_for, parse_cidr, CniResult, Interface, IpConfig, Route};
use crate::{ipam, link};

/// How long one exchange with the agent may take, connecting included.
const AGENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the device may take to appear on the host after the attach.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs ADD, DEL or CHECK; what to print on success (ADD's result).
pub fn run(env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    match env.command {
        Command::Add => add(env, conf, stdin).map(Some),
        Command::Del => del(env, conf, stdin).map(|()| None),
        Command::Check => check(env, conf, stdin).map(|()| None),
        Command::Version => Ok(None),
    }
}

/// One request to the agent at `endpoint`; its answer.
fn agent(endpoint: &Endpoint, request: &Request) -> Result<Value, CniError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(code::IO_FAILURE, format!("cannot start a runtime: {e}")))?;
    runtime
        .block_on(async {
            Client::connect(endpoint, AGENT_TIMEOUT)
                .await?
                .call(request)
                .await
        })
        .map_err(|e| {
            let code = match e {
                // Not reachable or not answering: the runtime may retry.
                ClientError::Connect { .. } | ClientError::NoAnswer { .. } => code::TRY_AGAIN_LATER,
                _ => code::AGENT,
            };
            CniError::new(
                code,
                format!("the agent's {} (at {endpoint}): {e}", request.op()),
            )
        })
}

fn add(env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<Value, CniError> {
    let host = host_ifname(&env.container_id, &env.ifname);
    let ipam = ipam::add(&env.path, &conf.ipam_type, stdin)?;
    match attach(env, conf, &host, ipam) {
        Ok(result) => {
            Ok(serde_json::to_value(result.for_version(&conf.cni_version)).unwrap_or_default())
        }
        Err(mut e) => {
            // Undo, keeping the first error; what the undo could not do goes with it.
            let undo = [
                agent(
                    &conf.control,
                    &Request::Del {
                        ifname: host.clone(),
                        container_id: Some(env.container_id.clone()),
                    },
                ),
                ipam::del(&env.path, &conf.ipam_type, stdin).map(|()| Value::Null),
            ];
            for failed in undo.into_iter().filter_map(Result::err) {
                e.details = format!("{}; undoing: {failed}", e.details)
                    .trim_start_matches("; ")
                    .to_string();
            }
            Err(e)
        }
    }
}

/// ADD after the IPAM plugin gave the addresses.
fn attach(env: &Env, conf: &NetConf, host: &str, ipam: CniResult) -> Result<CniResult, CniError> {
    let (Some(netns), Some(pod)) = (env.netns.as_deref(), env.pod.as_ref()) else {
        return Err(CniError::env("CNI_NETNS", "missing"));
    };
    if !netns.exists() {
        return Err(CniError::env(
            "CNI_NETNS",
            format!("{} does not exist", netns.display()),
        ));
    }
    let addrs: Vec<(IpAddr, u8)> = ipam
        .ips
        .iter()
        .map(|ip| parse_cidr(&ip.address))
        .collect::<Result<_, _>>()
        .map_err(|e| CniError::new(code::IPAM, format!("the IPAM plugin gave {e}")))?;
    let mac = mac_for(addrs[0].0);
    agent(
        &conf.control,
        &Request::Add {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            container_id: env.container_id.clone(),
            ifname: host.to_string(),
            ips: ipam.ips.iter().map(|ip| ip.address.clone()).collect(),
            mac: mac.clone(),
        },
    )?;
    agent(
        &conf.control,
        &Request::Attach {
            ifname: host.to_string(),
        },
    )?;
    link::wait_on_host(host, DEVICE_TIMEOUT)?;
    let routes = routes(&ipam);
    let route_args: Vec<(String, Option<String>)> = routes
        .iter()
        .map(|r| (r.dst.clone(), r.gw.clone()))
        .collect();
    link::move_and_configure(
        host,
        &link::Setup {
            netns,
            ifname: &env.ifname,
            mac: &mac,
            addrs: &addrs,
            routes: &route_args,
        },
    )?;
    let dns = match ipam.dns {
        Some(Value::Object(o)) if !o.is_empty() => Some(Value::Object(o)),
        _ => conf.dns.clone(),
    };
    Ok(CniResult {
        cni_version: conf.cni_version.clone(),
        interfaces: vec![Interface {
            name: env.ifname.clone(),
            mac,
            sandbox: netns.display().to_string(),
        }],
        ips: ipam
            .ips
            .into_iter()
            .map(|ip| IpConfig {
                interface: Some(0),
                ..ip
            })
            .collect(),
        routes,
        dns,
    })
}

/// The IPAM plugin's routes, with a default route through the gateway of each family that
/// has one and no default route yet.
fn routes(ipam: &CniResult) -> Vec<Route> {
    let mut routes = ipam.routes.clone();
    for ip in &ipam.ips {
        let (Some(gw), Ok((addr, _))) = (&ip.gateway, parse_cidr(&ip.address)) else {
            continue;
        };
        let dst = if addr.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
        if !routes.iter().any(|r| r.dst == dst) {
            routes.push(Route {
                dst: dst.to_string(),
                gw: Some(gw.clone()),
            });
        }
    }
    routes
}

/// DEL: succeeds for a Pod the agent does not track, a namespace that is gone and an address
/// already released.
fn del(env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    agent(
        &conf.control,
        &Request::Del {
            ifname: host_ifname(&env.container_id, &env.ifname),
            container_id: Some(env.container_id.clone()),
        },
    )?;
    if let Some(netns) = &env.netns {
        link::delete(netns, &env.ifname)?;
    }
    ipam::del(&env.path, &conf.ipam_type, stdin)
}

/// CHECK: the address is still held, the agent tracks the port, and the interface is in the
/// namespace with the MAC and the addresses ADD returned.
fn check(env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    if conf.cni_version.starts_with("0.3.") {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "cniVersion: CHECK needs 0.4.0 or later, not {}",
                conf.cni_version
            ),
        ));
    }
    let Some(prev) = &conf.prev_result else {
        return Err(CniError::config(
            "prevResult",
            "missing (CHECK compares the interface with what ADD returned)",
        ));
    };
    let Some(netns) = env.netns.as_deref() else {
        return Err(CniError::env("CNI_NETNS", "missing"));
    };
    ipam::check(&env.path, &conf.ipam_type, stdin)?;
    let host = host_ifname(&env.container_id, &env.ifname);
    let status = agent(&conf.control, &Request::Status)?;
    let tracked = status
        .get("ports")
        .and_then(Value::as_array)
        .is_some_and(|ports| {
            ports
                .iter()
                .any(|p| p.get("ifname").and_then(Value::as_str) == Some(&host))
        });
    if !tracked {
        return Err(CniError::new(
            code::CHECK_FAILED,
            format!(
                "the agent at {} does not track the port {host}",
                conf.control
            ),
        ));
    }
    check_interface(netns, &env.ifname, prev)
}

/// The interface `ifname` in `netns` has the MAC and every address `prev` gives it.
fn check_interface(netns: &Path, ifname: &str, prev: &CniResult) -> Result<(), CniError> {
    let index = prev
        .interfaces
        .iter()
        .position(|i| i.name == ifname)
        .ok_or_else(|| CniError::config("prevResult", format!("no interface {ifname}")))?;
    let want_mac = &prev.interfaces[index].mac;
    if !link::exists(Some(netns), ifname)? {
        return Err(CniError::new(
            code::CHECK_FAILED,
            format!("no interface {ifname} in {}", netns.display()),
        ));
    }
    let (mac, addrs) = link::show(netns, ifname)?;
    if !want_mac.is_empty() && !mac.eq_ignore_ascii_case(want_mac) {
        return Err(CniError::new(
            code::CHECK_FAILED,
            format!("{ifname} has the MAC {mac}, not {want_mac}"),
        ));
    }
    for ip in prev
        .ips
        .iter()
        .filter(|ip| ip.interface.is_none_or(|i| i == index))
    {
        if !addrs.contains(&ip.address) {
            return Err(CniError::new(
                code::CHECK_FAILED,
                format!(
                    "{ifname} lacks the address {} (it has {})",
                    ip.address,
                    addrs.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_route_goes_through_each_gateway_unless_ipam_gave_one() {
        let ipam = CniResult {
            ips: vec![
                IpConfig {
                    address: "10.66.0.2/24".into(),
                    gateway: Some("10.66.0.1".into()),
                    ..IpConfig::default()
                },
                IpConfig {
                    address: "fd00::2/64".into(),
                    gateway: Some("fd00::1".into()),
                    ..IpConfig::default()
                },
            ],
            routes: vec![Route {
                dst: "::/0".into(),
                gw: Some("fd00::fe".into()),
            }],
            ..CniResult::default()
        };
        assert_eq!(
            routes(&ipam),
            vec![
                Route {
                    dst: "::/0".into(),
                    gw: Some("fd00::fe".into())
                },
                Route {
                    dst: "0.0.0.0/0".into(),
                    gw: Some("10.66.0.1".into())
                },
            ]
        );
    }
}
