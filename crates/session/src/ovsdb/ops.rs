//! The operations the engine needs, each one OVSDB transaction (or two where OVSDB cannot
//! reference a selected row in the same transaction).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use podport_ovsdb::datum::{Datum, Uuid};
use podport_ovsdb::replica::Row;
use podport_ovsdb::rows::{InterfaceRow, PortRow};

use super::{OvsdbClient, OvsdbError};

/// `external_ids` keys podport writes on a Pod's Port and Interface (the names Antrea uses).
pub mod keys {
    pub const POD_NAMESPACE: &str = "pod-namespace";
    pub const POD_NAME: &str = "pod-name";
    pub const CONTAINER_ID: &str = "container-id";
    pub const IP: &str = "ip";
    pub const MAC: &str = "mac";
    /// The marker of every Port and Interface podport creates ([`super::OWNER`]): podport
    /// changes and deletes only rows that carry it and the Pod's container id.
    pub const OWNER: &str = "podport-owner";
}

/// The value of [`keys::OWNER`].
pub const OWNER: &str = "podport";

/// The condition "podport made this row, for `container_id`".
fn ours(container_id: &str) -> Value {
    json!([
        "external_ids",
        "includes",
        [
            "map",
            [[keys::OWNER, OWNER], [keys::CONTAINER_ID, container_id]]
        ]
    ])
}

/// A Pod's port as the agent asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPortSpec {
    pub namespace: String,
    pub name: String,
    pub container_id: String,
    /// Interface (and Port) name; at most 15 bytes to stay unique on the OpenFlow wire.
    pub ifname: String,
    /// IP addresses, CIDR or plain.
    pub ips: Vec<String>,
    pub mac: String,
    /// The Interface type at creation: empty (`system`) as agents create it before the Pod's
    /// vNIC exists.
    pub initial_type: String,
}

impl PodPortSpec {
    /// The `external_ids` of the Port and Interface.
    pub fn external_ids(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (keys::POD_NAMESPACE.into(), self.namespace.clone()),
            (keys::POD_NAME.into(), self.name.clone()),
            (keys::CONTAINER_ID.into(), self.container_id.clone()),
            (keys::IP.into(), self.ips.join(",")),
            (keys::MAC.into(), self.mac.clone()),
            (keys::OWNER.into(), OWNER.into()),
        ])
    }
}

/// The rows of a created (or already existing) Pod port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortUuids {
    pub port: Uuid,
    pub interface: Uuid,
    /// False when the port already existed for the same container (idempotent create).
    pub created: bool,
}

/// A Port of a bridge with its Interfaces.
#[derive(Clone, Debug, PartialEq)]
pub struct BridgePort {
    pub port: PortRow,
    pub interfaces: Vec<InterfaceRow>,
}

fn eq(column: &str, value: Value) -> Value {
    json!([column, "==", value])
}

fn uuid_json(u: &Uuid) -> Value {
    json!(["uuid", u.to_string()])
}

fn parse_uuid(v: &Value) -> Result<Uuid, OvsdbError> {
    v.get(1)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| OvsdbError::Unexpected(format!("not a uuid: {v}")))
}

fn count(v: &Value) -> u64 {
    v.get("count").and_then(Value::as_u64).unwrap_or(0)
}

fn rows(v: &Value) -> &[Value] {
    v.get("rows")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

impl OvsdbClient {
    /// Creates the Pod's Port and Interface (type empty) and adds the Port to `bridge`, in one
    /// transaction. Creating the same port again for the same container returns the existing
    /// rows with `created: false`; a name held by another container is `NameTaken`.
    pub async fn create_pod_port(
        &self,
        bridge: &str,
        spec: &PodPortSpec,
    ) -> Result<PortUuids, OvsdbError> {
        let ids = Datum::map_of_strings(&spec.external_ids()).to_json();
        let ops = vec![
            // The bridge must exist: fails at once (timeout 0) when no row matches.
            json!({"op": "wait", "table": "Bridge", "timeout": 0, "where": [eq("name", json!(bridge))],
                   "columns": ["name"], "until": "!=", "rows": []}),
            // No Port of that name yet: fails at once when one exists (checked below).
            json!({"op": "wait", "table": "Port", "timeout": 0, "where": [eq("name", json!(spec.ifname))],
                   "columns": ["name"], "until": "==", "rows": []}),
            json!({"op": "insert", "table": "Interface", "uuid-name": "iface",
                   "row": {"name": spec.ifname, "type": spec.initial_type, "external_ids": ids}}),
            json!({"op": "insert", "table": "Port", "uuid-name": "port",
                   "row": {"name": spec.ifname, "interfaces": ["named-uuid", "iface"], "external_ids": ids}}),
            json!({"op": "mutate", "table": "Bridge", "where": [eq("name", json!(bridge))],
                   "mutations": [["ports", "insert", ["set", [["named-uuid", "port"]]]]]}),
            json!({"op": "comment", "comment": format!("podport: add Pod {}/{} port {}", spec.namespace, spec.name, spec.ifname)}),
        ];
        match self.transact(ops).await {
            Ok(r) => Ok(PortUuids {
                interface: parse_uuid(&r[2]["uuid"])?,
                port: parse_uuid(&r[3]["uuid"])?,
                created: true,
            }),
            Err(OvsdbError::WaitTimedOut { .. }) | Err(OvsdbError::OpFailed { index: 0, .. }) => {
                // Which wait failed decides: re-read to tell "no bridge" from "exists".
                self.existing_pod_port(bridge, spec).await
            }
            Err(e) => Err(e),
        }
    }

    async fn existing_pod_port(
        &self,
        bridge: &str,
        spec: &PodPortSpec,
    ) -> Result<PortUuids, OvsdbError> {
        let r = self
            .transact(vec![
                json!({"op": "select", "table": "Bridge", "where": [eq("name", json!(bridge))], "columns": ["_uuid"]}),
                json!({"op": "select", "table": "Port", "where": [eq("name", json!(spec.ifname))],
                       "columns": ["_uuid", "interfaces", "external_ids"]}),
            ])
            .await?;
        if rows(&r[0]).is_empty() {
            return Err(OvsdbError::NotFound(format!("bridge {bridge}")));
        }
        let Some(port) = rows(&r[1]).first() else {
            return Err(OvsdbError::Unexpected(format!(
                "port {} neither created nor found",
                spec.ifname
            )));
        };
        let id = |key: &str| {
            port["external_ids"]
                .get(1)
                .and_then(Value::as_array)
                .and_then(|pairs| {
                    pairs.iter().find_map(|p| {
                        (p.get(0)? == key).then(|| p.get(1)?.as_str().map(str::to_string))?
                    })
                })
        };
        if id(keys::OWNER).as_deref() != Some(OWNER) {
            return Err(OvsdbError::NotOurs {
                name: spec.ifname.clone(),
            });
        }
        let owner = id(keys::CONTAINER_ID).unwrap_or_default();
        if owner != spec.container_id {
            return Err(OvsdbError::NameTaken {
                name: spec.ifname.clone(),
                owner,
            });
        }
        let interface = match &port["interfaces"] {
            v if v.get(0) == Some(&json!("uuid")) => parse_uuid(v)?,
            v => v
                .get(1)
                .and_then(Value::as_array)
                .and_then(|s| s.first())
                .ok_or_else(|| OvsdbError::Unexpected(format!("port without interface: {v}")))
                .and_then(parse_uuid)?,
        };
        Ok(PortUuids {
            port: parse_uuid(&port["_uuid"])?,
            interface,
            created: false,
        })
    }

    /// Sets the `type` of the Interface podport made for `container_id` (e.g. `internal` once
    /// the Pod's vNIC exists). Another's Interface of that name is not touched (`NotFound`).
    pub async fn set_interface_type(
        &self,
        ifname: &str,
        iface_type: &str,
        container_id: &str,
    ) -> Result<(), OvsdbError> {
        let r = self
            .transact(vec![
                json!({"op": "update", "table": "Interface",
                       "where": [eq("name", json!(ifname)), ours(container_id)],
                       "row": {"type": iface_type}}),
                json!({"op": "comment", "comment": format!("podport: interface {ifname} type {iface_type}")}),
            ])
            .await?;
        match count(&r[0]) {
            0 => Err(OvsdbError::NotFound(format!(
                "interface {ifname} of container {container_id}"
            ))),
            _ => Ok(()),
        }
    }

    /// Removes the Port podport made for `container_id` from `bridge` and deletes it; OVSDB
    /// then collects its unreferenced Interface. Returns false when there is no such port
    /// (deleting twice is fine), also when a port of that name exists but is another's (not
    /// podport's, or another container's): that one is left alone.
    pub async fn delete_pod_port(
        &self,
        bridge: &str,
        ifname: &str,
        container_id: &str,
    ) -> Result<bool, OvsdbError> {
        let r = self
            .transact(vec![json!({"op": "select", "table": "Port",
                                  "where": [eq("name", json!(ifname)), ours(container_id)],
                                  "columns": ["_uuid"]})])
            .await?;
        let Some(port) = rows(&r[0]).first() else {
            return Ok(false);
        };
        let uuid = parse_uuid(&port["_uuid"])?;
        let r = self
            .transact(vec![
                json!({"op": "mutate", "table": "Bridge", "where": [eq("name", json!(bridge))],
                       "mutations": [["ports", "delete", ["set", [uuid_json(&uuid)]]]]}),
                // Explicit, though OVSDB would collect the unreferenced row anyway: the
                // transaction then fails loudly if another bridge still references the port.
                json!({"op": "delete", "table": "Port", "where": [eq("_uuid", uuid_json(&uuid))]}),
                json!({"op": "comment", "comment": format!("podport: delete port {ifname}")}),
            ])
            .await?;
        if count(&r[0]) == 0 {
            return Err(OvsdbError::NotFound(format!("bridge {bridge}")));
        }
        Ok(count(&r[1]) == 1)
    }

    /// Every Port of `bridge` with its Interfaces, read in one transaction.
    pub async fn list_bridge_ports(&self, bridge: &str) -> Result<Vec<BridgePort>, OvsdbError> {
        let schema = self.get_schema(&self.db).await?;
        let r = self
            .transact(vec![
                json!({"op": "select", "table": "Bridge", "where": [eq("name", json!(bridge))], "columns": ["ports"]}),
                json!({"op": "select", "table": "Port", "where": [], "columns": ["_uuid", "name", "interfaces", "external_ids"]}),
                json!({"op": "select", "table": "Interface", "where": [],
                       "columns": ["_uuid", "name", "type", "ofport", "ofport_request", "error", "external_ids", "admin_state", "link_state"]}),
            ])
            .await?;
        let Some(bridge_row) = rows(&r[0]).first() else {
            return Err(OvsdbError::NotFound(format!("bridge {bridge}")));
        };
        let ty = |t: &str, c: &str| {
            schema
                .column(t, c)
                .cloned()
                .ok_or_else(|| OvsdbError::Unexpected(format!("schema lacks {t}.{c}")))
        };
        let port_uuids = Datum::from_json(&bridge_row["ports"], &ty("Bridge", "ports")?)
            .map_err(|e| OvsdbError::Unexpected(e.to_string()))?
            .as_uuid_set();
        let typed_row = |table: &str, v: &Value| -> Result<(Uuid, Row), OvsdbError> {
            let uuid = parse_uuid(&v["_uuid"])?;
            let mut row = Row::new();
            if let Some(obj) = v.as_object() {
                for (c, val) in obj {
                    if c == "_uuid" {
                        continue;
                    }
                    let d = Datum::from_json(val, &ty(table, c)?)
                        .map_err(|e| OvsdbError::Unexpected(format!("{table}.{c}: {e}")))?;
                    row.insert(c.clone(), d);
                }
            }
            Ok((uuid, row))
        };
        let mut interfaces = BTreeMap::new();
        for v in rows(&r[2]) {
            let (u, row) = typed_row("Interface", v)?;
            interfaces.insert(u, InterfaceRow::from_row(u, &row)?);
        }
        let mut out = Vec::new();
        for v in rows(&r[1]) {
            let (u, row) = typed_row("Port", v)?;
            if !port_uuids.contains(&u) {
                continue;
            }
            let port = PortRow::from_row(u, &row)?;
            let ifaces = port
                .interfaces
                .iter()
                .filter_map(|i| interfaces.get(i).cloned())
                .collect();
            out.push(BridgePort {
                port,
                interfaces: ifaces,
            });
        }
        out.sort_by(|a, b| a.port.name.cmp(&b.port.name));
        Ok(out)
    }

    /// Bumps `Open_vSwitch.next_cfg` and returns the new value: once `cur_cfg` reaches it
    /// (see [`OvsdbClient::wait_cfg`]), ovs-vswitchd has applied everything committed before.
    pub async fn bump_next_cfg(&self) -> Result<i64, OvsdbError> {
        let r = self
            .transact(vec![
                json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
                       "mutations": [["next_cfg", "+=", 1]]}),
                json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"]}),
            ])
            .await?;
        rows(&r[1])
            .first()
            .and_then(|row| row["next_cfg"].as_i64())
            .ok_or_else(|| OvsdbError::Unexpected(format!("next_cfg select: {}", r[1])))
    }

    /// "The switch has applied this": bump `next_cfg`, then wait (up to `timeout`) until
    /// `cur_cfg` reaches it. Returns the configuration number.
    pub async fn wait_applied(&self, timeout: Duration) -> Result<i64, OvsdbError> {
        let target = self.bump_next_cfg().await?;
        match tokio::time::timeout(timeout, self.wait_cfg(target)).await {
            Ok(r) => r,
            Err(_) => Err(OvsdbError::WaitTimedOut {
                what: format!("cur_cfg to reach {target}"),
                after: timeout,
                details: "ovs-vswitchd did not apply the configuration".into(),
            }),
        }
    }

    /// The legacy strategy, as agents did it before PortStatus: one transaction whose OVSDB
    /// `wait` blocks, up to `timeout`, until the Interface has a usable `ofport` (set, and not
    /// -1), then reads it. On timeout an `ofport` of -1 is `InterfaceFailed` with OVS's error
    /// text; anything else is `WaitTimedOut` with the server's `"wait" timed out after N ms`.
    pub async fn wait_for_ofport(
        &self,
        ifname: &str,
        timeout: Duration,
    ) -> Result<i64, OvsdbError> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let select = json!({"op": "select", "table": "Interface", "where": [eq("name", json!(ifname))],
                            "columns": ["ofport", "error"]});
        let r = self
            .transact(vec![
                json!({"op": "wait", "table": "Interface", "timeout": ms,
                       "where": [eq("name", json!(ifname)), json!(["ofport", "!=", ["set", []]]),
                                 json!(["ofport", "excludes", -1])],
                       "columns": ["name"], "until": "!=", "rows": []}),
                select.clone(),
            ])
            .await;
        let r = match r {
            Ok(r) => r,
            Err(OvsdbError::WaitTimedOut { after, details, .. }) => {
                // Say what the Interface shows now: -1 may be an old failure that the
                // (still unapplied) type change will clear, so it stays a timeout.
                let now = self.transact(vec![select]).await?;
                let shown = rows(&now[0])
                    .first()
                    .map(|row| match row["error"].as_str() {
                        Some(e) => format!("; ofport {} ({e})", row["ofport"]),
                        None => format!("; ofport {}", row["ofport"]),
                    });
                return Err(OvsdbError::WaitTimedOut {
                    what: format!("ofport of {ifname}"),
                    after,
                    details: format!("{details}{}", shown.unwrap_or_default()),
                });
            }
            Err(e) => return Err(e),
        };
        let Some(row) = rows(&r[1]).first() else {
            return Err(OvsdbError::NotFound(format!("interface {ifname}")));
        };
        row["ofport"]
            .as_i64()
            .ok_or_else(|| OvsdbError::Unexpected(format!("ofport {}", row["ofport"])))
    }
}
