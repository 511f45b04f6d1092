//! Typed views of the rows podport reads: the columns of [`crate::schema::REQUIRED`], checked.
//!
//! A row from the [`crate::replica::Replica`] holds every column of its table (at its default
//! when the server sent none), so a missing column means the schema lacks it: a [`RowError`]
//! naming the column, as is a column of the wrong type.

use std::collections::BTreeMap;

use crate::datum::{Atom, Datum, Uuid};
use crate::replica::Row;

/// A `Bridge` row.
#[derive(Clone, Debug, PartialEq)]
pub struct BridgeRow {
    /// Row UUID.
    pub uuid: Uuid,
    /// Bridge name.
    pub name: String,
    /// `Port` rows of the bridge.
    pub ports: Vec<Uuid>,
    /// `"netdev"`, `"system"`, `"dummy"`, or empty (the default, `system`).
    pub datapath_type: String,
}

/// A `Port` row.
#[derive(Clone, Debug, PartialEq)]
pub struct PortRow {
    /// Row UUID.
    pub uuid: Uuid,
    /// Port name.
    pub name: String,
    /// `Interface` rows of the port (one, except for bonds).
    pub interfaces: Vec<Uuid>,
    /// `external_ids`.
    pub external_ids: BTreeMap<String, String>,
}

/// An `Interface` row.
#[derive(Clone, Debug, PartialEq)]
pub struct InterfaceRow {
    /// Row UUID.
    pub uuid: Uuid,
    /// Interface name.
    pub name: String,
    /// The `type` column (`""` is a system device, `"internal"`, `"dummy"`, ...).
    pub iface_type: String,
    /// OpenFlow port number: `None` until ovs-vswitchd has configured the interface, `-1` if
    /// it failed to.
    pub ofport: Option<i64>,
    /// The requested OpenFlow port number.
    pub ofport_request: Option<i64>,
    /// Why ovs-vswitchd could not configure the interface.
    pub error: Option<String>,
    /// `external_ids`.
    pub external_ids: BTreeMap<String, String>,
    /// `"up"` / `"down"`, once ovs-vswitchd knows.
    pub admin_state: Option<String>,
    /// `"up"` / `"down"`, once ovs-vswitchd knows.
    pub link_state: Option<String>,
}

/// A row lacks a column or has one of an unexpected type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{table} row {uuid}: column {column}: {reason}")]
pub struct RowError {
    /// Table name.
    pub table: &'static str,
    /// Row UUID.
    pub uuid: Uuid,
    /// Column name.
    pub column: &'static str,
    /// What was wrong.
    pub reason: String,
}

/// Reads typed columns of one row, turning every failure into a [`RowError`].
struct Reader<'a> {
    table: &'static str,
    uuid: Uuid,
    row: &'a Row,
}

impl<'a> Reader<'a> {
    fn err(&self, column: &'static str, reason: String) -> RowError {
        RowError {
            table: self.table,
            uuid: self.uuid,
            column,
            reason,
        }
    }

    fn get(&self, column: &'static str) -> Result<&'a Datum, RowError> {
        self.row
            .get(column)
            .ok_or_else(|| self.err(column, "missing".to_string()))
    }

    /// The atoms of a set column.
    fn set(&self, column: &'static str) -> Result<&'a [Atom], RowError> {
        match self.get(column)? {
            Datum::Set(atoms) => Ok(atoms),
            Datum::Map(_) => Err(self.err(column, "expected a set, found a map".to_string())),
        }
    }

    /// At most one atom, converted by `f` (`what` names the expected type).
    fn optional<T>(
        &self,
        column: &'static str,
        what: &str,
        f: impl Fn(&'a Atom) -> Option<T>,
    ) -> Result<Option<T>, RowError> {
        match self.set(column)? {
            [] => Ok(None),
            [a] => f(a)
                .map(Some)
                .ok_or_else(|| self.err(column, format!("expected {what}, found {a:?}"))),
            more => Err(self.err(
                column,
                format!("expected at most one {what}, found {} atoms", more.len()),
            )),
        }
    }

    /// Exactly one string.
    fn string(&self, column: &'static str) -> Result<String, RowError> {
        match self.set(column)? {
            [Atom::String(s)] => Ok(s.clone()),
            other => Err(self.err(column, format!("expected one string, found {other:?}"))),
        }
    }

    fn optional_string(&self, column: &'static str) -> Result<Option<String>, RowError> {
        self.optional(column, "a string", |a| a.as_str().map(str::to_string))
    }

    fn optional_integer(&self, column: &'static str) -> Result<Option<i64>, RowError> {
        self.optional(column, "an integer", Atom::as_integer)
    }

    fn uuids(&self, column: &'static str) -> Result<Vec<Uuid>, RowError> {
        self.set(column)?
            .iter()
            .map(|a| {
                a.as_uuid()
                    .ok_or_else(|| self.err(column, format!("expected UUIDs, found {a:?}")))
            })
            .collect()
    }

    fn string_map(&self, column: &'static str) -> Result<BTreeMap<String, String>, RowError> {
        match self.get(column)? {
            Datum::Map(pairs) => pairs
                .iter()
                .map(|(k, v)| match (k, v) {
                    (Atom::String(k), Atom::String(v)) => Ok((k.clone(), v.clone())),
                    _ => Err(self.err(
                        column,
                        format!("expected string pairs, found ({k:?}, {v:?})"),
                    )),
                })
                .collect(),
            Datum::Set(_) => Err(self.err(column, "expected a map, found a set".to_string())),
        }
    }
}

impl BridgeRow {
    /// The typed view of a `Bridge` row.
    pub fn from_row(uuid: Uuid, row: &Row) -> Result<BridgeRow, RowError> {
        let r = Reader {
            table: "Bridge",
            uuid,
            row,
        };
        Ok(BridgeRow {
            uuid,
            name: r.string("name")?,
            ports: r.uuids("ports")?,
            datapath_type: r.string("datapath_type")?,
        })
    }
}

impl PortRow {
    /// The typed view of a `Port` row.
    pub fn from_row(uuid: Uuid, row: &Row) -> Result<PortRow, RowError> {
        let r = Reader {
            table: "Port",
            uuid,
            row,
        };
        Ok(PortRow {
            uuid,
            name: r.string("name")?,
            interfaces: r.uuids("interfaces")?,
            external_ids: r.string_map("external_ids")?,
        })
    }
}

impl InterfaceRow {
    /// The typed view of an `Interface` row.
    pub fn from_row(uuid: Uuid, row: &Row) -> Result<InterfaceRow, RowError> {
        let r = Reader {
            table: "Interface",
            uuid,
            row,
        };
        Ok(InterfaceRow {
            uuid,
            name: r.string("name")?,
            iface_type: r.string("type")?,
            ofport: r.optional_integer("ofport")?,
            ofport_request: r.optional_integer("ofport_request")?,
            error: r.optional_string("error")?,
            external_ids: r.string_map("external_ids")?,
            admin_state: r.optional_string("admin_state")?,
            link_state: r.optional_string("link_state")?,
        })
    }

    /// Whether ovs-vswitchd gave up on the interface (`ofport` -1; `error` says why).
    pub fn is_failed(&self) -> bool {
        self.ofport == Some(-1)
    }
}
