//! A local copy of monitored tables, kept current from monitor notifications.
//!
//! Two notification formats are understood:
//! - `update2` (`monitor_cond`, ovsdb-server(7)): `{table: {uuid: {"initial"|"insert": row}
//!   | {"modify": columns} | {"delete": null}}}`. Inserted rows omit columns at their default.
//!   A "modify" carries, per changed column, the new value for a column of at most one element
//!   (scalars *and* optional columns such as `Interface.ofport`) and a difference for a
//!   composite column (see [`ColumnType::is_composite`] and [`Datum::apply_diff`]).
//! - `update` (`monitor`, RFC 7047 section 4.1.6): `{table: {uuid: {"old"?: row, "new"?: row}}}`
//!   where "new" holds every monitored column and "old" only the changed ones.
//!
//! Every stored row holds every column of its table in the schema: columns the server did not
//! send (because they are at their default or not monitored) hold their default value.
//! Tables and columns the schema does not know are ignored, since a newer server may add some.
//! A replica made with [`Replica::with_columns`] keeps only the listed tables and columns:
//! rows are then about four times cheaper to build for `Interface` (8 of its 35 columns).
//!
//! An update is applied all or nothing: it is checked in full before the replica changes, so
//! an error leaves the replica as it was. An error means the server and the replica no longer
//! agree; the caller should [`Replica::clear`] it and monitor afresh.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use tracing::{debug, warn};

use crate::datum::{Datum, DatumError, Uuid};
use crate::schema::{short, ColumnType, DbSchema, TableSchema};

/// A row: every column of its table (or every selected one), by name.
pub type Row = BTreeMap<String, Datum>;

/// Monitored tables: table name → row UUID → row.
#[derive(Default, Debug, Clone)]
pub struct Replica {
    /// Rows by table, then UUID.
    pub tables: BTreeMap<String, BTreeMap<Uuid, Row>>,
    /// The tables and columns kept, if restricted by [`Replica::with_columns`].
    selection: Option<BTreeMap<String, BTreeSet<String>>>,
}

/// What happened to a row.
#[derive(Clone, Debug, PartialEq)]
pub enum ChangeKind {
    /// Part of a monitor's initial contents (`update2` "initial").
    Initial,
    /// A new row. The old `update` format reports initial contents as inserts too.
    Insert,
    /// Some columns changed.
    Modify,
    /// The row is gone.
    Delete,
}

/// One row's change, with the row before and after (as stored in the replica).
#[derive(Clone, Debug, PartialEq)]
pub struct RowChange {
    /// Table name.
    pub table: String,
    /// Row UUID.
    pub uuid: Uuid,
    /// What happened.
    pub kind: ChangeKind,
    /// The row before: `None` for a new row.
    pub old: Option<Row>,
    /// The row after: `None` for a deleted row.
    pub new: Option<Row>,
}

/// Why an update was rejected. The replica is unchanged when one is returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpdateError {
    /// The JSON does not have the shape of a table-updates object.
    #[error("malformed update for table {table:?}, row {uuid:?}: {reason}")]
    BadShape {
        /// Table name (empty if the problem is above table level).
        table: String,
        /// Row UUID as sent (empty if the problem is above row level).
        uuid: String,
        /// What was wrong.
        reason: String,
    },
    /// A column value is not of the column's type.
    #[error("update for {table} row {uuid}, column {column}: {source}")]
    BadDatum {
        /// Table name.
        table: String,
        /// Row UUID.
        uuid: String,
        /// Column name.
        column: String,
        /// The datum error.
        source: DatumError,
    },
    /// An `update2` "modify" for a row the replica does not hold: the replica is out of sync.
    #[error("update2 modifies {table} row {uuid}, which the replica does not hold")]
    UnknownRow {
        /// Table name.
        table: String,
        /// Row UUID.
        uuid: Uuid,
    },
}

/// A change decided during the check phase, applied afterwards.
struct Planned {
    table: String,
    uuid: Uuid,
    kind: ChangeKind,
    new: Option<Row>,
}

fn bad_shape(table: &str, uuid: &str, reason: impl Into<String>) -> UpdateError {
    UpdateError::BadShape {
        table: table.to_string(),
        uuid: uuid.to_string(),
        reason: reason.into(),
    }
}

impl Replica {
    /// An empty replica keeping every table and column of the schema.
    pub fn new() -> Replica {
        Replica::default()
    }

    /// An empty replica keeping only the listed tables and columns (those monitored; pass
    /// [`crate::schema::REQUIRED`]). Updates for other tables and columns are ignored.
    pub fn with_columns(tables: &[(&str, &[&str])]) -> Replica {
        let selection = tables
            .iter()
            .map(|(t, cols)| {
                let cols = cols.iter().map(|c| (*c).to_string()).collect();
                ((*t).to_string(), cols)
            })
            .collect();
        Replica {
            tables: BTreeMap::new(),
            selection: Some(selection),
        }
    }

    /// Applies an `update2` notification's table-updates (also the result of `monitor_cond`,
    /// whose rows are all "initial") and returns the changes in table, then UUID, order.
    pub fn apply_update2(
        &mut self,
        schema: &DbSchema,
        table_updates2: &Value,
    ) -> Result<Vec<RowChange>, UpdateError> {
        let mut plan = Vec::new();
        for (table, ts, rows) in known_tables(schema, self.selection.as_ref(), table_updates2)? {
            let current = self.tables.get(table);
            let mut defaults: Option<Row> = None;
            for (uuid_s, ru) in rows {
                let uuid = parse_uuid(table, uuid_s)?;
                let obj = ru.as_object().ok_or_else(|| {
                    bad_shape(
                        table,
                        uuid_s,
                        format!("row update is not an object: {}", short(ru)),
                    )
                })?;
                let mut ops = obj.iter();
                let (op, body) = match (ops.next(), ops.next()) {
                    (Some(only), None) => only,
                    _ => {
                        let reason = format!(
                            "row update needs exactly one of initial/insert/modify/delete: {}",
                            short(ru)
                        );
                        return Err(bad_shape(table, uuid_s, reason));
                    }
                };
                let existing = current.and_then(|t| t.get(&uuid));
                match op.as_str() {
                    "initial" | "insert" => {
                        let defaults = defaults.get_or_insert_with(|| ts.default_row());
                        let row = full_row(table, uuid_s, ts, defaults, body)?;
                        let kind = if op == "initial" {
                            ChangeKind::Initial
                        } else {
                            ChangeKind::Insert
                        };
                        if existing.is_some() {
                            // Possible after a condition change re-sends a row; the new
                            // contents win.
                            debug!(
                                table,
                                uuid = %uuid,
                                op,
                                "row already in the replica; replacing it"
                            );
                        }
                        plan.push(Planned {
                            table: table.clone(),
                            uuid,
                            kind,
                            new: Some(row),
                        });
                    }
                    "modify" => {
                        let Some(old) = existing else {
                            return Err(UpdateError::UnknownRow {
                                table: table.clone(),
                                uuid,
                            });
                        };
                        let cols = body.as_object().ok_or_else(|| {
                            bad_shape(
                                table,
                                uuid_s,
                                format!("\"modify\" is not an object: {}", short(body)),
                            )
                        })?;
                        let mut row = old.clone();
                        for (column, v) in cols {
                            let Some(ty) = ts.column(column) else {
                                continue;
                            };
                            let d = parse_datum(table, uuid_s, column, v, ty)?;
                            let merged = if ty.is_composite() {
                                // A difference; the column is always in the row because rows
                                // are filled with defaults.
                                match row.get(column) {
                                    Some(cur) => cur.apply_diff(&d),
                                    None => Datum::default_for(ty).apply_diff(&d),
                                }
                            } else {
                                d
                            };
                            row.insert(column.clone(), merged);
                        }
                        plan.push(Planned {
                            table: table.clone(),
                            uuid,
                            kind: ChangeKind::Modify,
                            new: Some(row),
                        });
                    }
                    "delete" => {
                        if existing.is_none() {
                            // ovsdb-server does send deletes for rows this client was never
                            // sent: a monitor that selects deletes but not initial rows or
                            // inserts gets a delete for every row removed (OVS's own
                            // "monitor delete only" test in tests/ovsdb-monitor.at), and
                            // condition changes can do the same. Nothing to remove, so it is
                            // ignored: normal traffic, not worth a warning.
                            debug!(
                                table,
                                uuid = %uuid,
                                "update2 deletes a row the replica does not hold; ignored"
                            );
                            continue;
                        }
                        plan.push(Planned {
                            table: table.clone(),
                            uuid,
                            kind: ChangeKind::Delete,
                            new: None,
                        });
                    }
                    other => {
                        return Err(bad_shape(
                            table,
                            uuid_s,
                            format!("unknown row update {other:?}"),
                        ))
                    }
                }
            }
        }
        Ok(self.commit(plan))
    }

    /// Applies an `update` notification's table-updates (also the result of `monitor`, whose
    /// rows come as inserts) and returns the changes in table, then UUID, order.
    pub fn apply_update(
        &mut self,
        schema: &DbSchema,
        table_updates: &Value,
    ) -> Result<Vec<RowChange>, UpdateError> {
        let mut plan = Vec::new();
        for (table, ts, rows) in known_tables(schema, self.selection.as_ref(), table_updates)? {
            let current = self.tables.get(table);
            let mut defaults: Option<Row> = None;
            for (uuid_s, ru) in rows {
                let uuid = parse_uuid(table, uuid_s)?;
                let obj = ru.as_object().ok_or_else(|| {
                    bad_shape(
                        table,
                        uuid_s,
                        format!("row update is not an object: {}", short(ru)),
                    )
                })?;
                if let Some(k) = obj.keys().find(|k| *k != "old" && *k != "new") {
                    return Err(bad_shape(
                        table,
                        uuid_s,
                        format!("unknown member {k:?} in row update"),
                    ));
                }
                let existing = current.and_then(|t| t.get(&uuid));
                match (obj.get("old"), obj.get("new")) {
                    (_, Some(new)) => {
                        // "new" holds every monitored column, so the row is rebuilt from it;
                        // columns not monitored keep what the replica had (their defaults).
                        let row = match existing {
                            Some(old) => overlay(table, uuid_s, ts, old.clone(), new)?,
                            None => {
                                let defaults = defaults.get_or_insert_with(|| ts.default_row());
                                full_row(table, uuid_s, ts, defaults, new)?
                            }
                        };
                        let kind = if existing.is_some() {
                            ChangeKind::Modify
                        } else {
                            if obj.contains_key("old") {
                                warn!(
                                    table,
                                    uuid = %uuid,
                                    "update modifies a row the replica does not hold; treating it as an insert"
                                );
                            }
                            ChangeKind::Insert
                        };
                        plan.push(Planned {
                            table: table.clone(),
                            uuid,
                            kind,
                            new: Some(row),
                        });
                    }
                    (Some(old), None) => {
                        if !old.is_object() {
                            return Err(bad_shape(
                                table,
                                uuid_s,
                                format!("\"old\" is not an object: {}", short(old)),
                            ));
                        }
                        if existing.is_none() {
                            // As for update2's "delete": ovsdb-server sends this for rows the
                            // client never received; nothing to remove.
                            debug!(
                                table,
                                uuid = %uuid,
                                "update deletes a row the replica does not hold; ignored"
                            );
                            continue;
                        }
                        plan.push(Planned {
                            table: table.clone(),
                            uuid,
                            kind: ChangeKind::Delete,
                            new: None,
                        });
                    }
                    (None, None) => {
                        return Err(bad_shape(
                            table,
                            uuid_s,
                            "row update has neither \"old\" nor \"new\"",
                        ))
                    }
                }
            }
        }
        Ok(self.commit(plan))
    }

    /// Empties the replica, before the initial contents of a new monitor (after a reconnect).
    pub fn clear(&mut self) {
        self.tables.clear();
    }

    /// The rows of a table (none if the table is unknown).
    pub fn table(&self, name: &str) -> impl Iterator<Item = (&Uuid, &Row)> {
        self.tables.get(name).into_iter().flat_map(|t| t.iter())
    }

    /// One row.
    pub fn get(&self, table: &str, uuid: &Uuid) -> Option<&Row> {
        self.tables.get(table)?.get(uuid)
    }

    /// Applies checked changes; cannot fail.
    fn commit(&mut self, plan: Vec<Planned>) -> Vec<RowChange> {
        let mut changes = Vec::with_capacity(plan.len());
        for p in plan {
            let rows = self.tables.entry(p.table.clone()).or_default();
            let old = match &p.new {
                Some(row) => rows.insert(p.uuid, row.clone()),
                None => rows.remove(&p.uuid),
            };
            changes.push(RowChange {
                table: p.table,
                uuid: p.uuid,
                kind: p.kind,
                old,
                new: p.new,
            });
        }
        changes
    }
}

/// One table of a table-updates object: name, kept columns, and the row updates by UUID
/// string.
type TableUpdate<'a> = (&'a String, TableView<'a>, &'a Map<String, Value>);

/// The columns of one table that the replica keeps.
#[derive(Clone, Copy)]
struct TableView<'a> {
    schema: &'a TableSchema,
    only: Option<&'a BTreeSet<String>>,
}

impl<'a> TableView<'a> {
    /// The type of a kept column; `None` for unknown, implicit or unselected ones, which are
    /// not part of stored rows.
    fn column(&self, name: &str) -> Option<&'a ColumnType> {
        match self.only {
            Some(only) if !only.contains(name) => None,
            _ => self.schema.columns.get(name),
        }
    }

    /// Every kept column at its default.
    fn default_row(&self) -> Row {
        match self.only {
            None => self
                .schema
                .columns
                .iter()
                .map(|(name, ty)| (name.clone(), Datum::default_for(ty)))
                .collect(),
            Some(only) => only
                .iter()
                .filter_map(|name| {
                    let ty = self.schema.columns.get(name)?;
                    Some((name.clone(), Datum::default_for(ty)))
                })
                .collect(),
        }
    }
}

/// The tables of a table-updates object that the schema knows, in name order; the others
/// are skipped with a debug message.
fn known_tables<'a>(
    schema: &'a DbSchema,
    selection: Option<&'a BTreeMap<String, BTreeSet<String>>>,
    v: &'a Value,
) -> Result<Vec<TableUpdate<'a>>, UpdateError> {
    let obj = v.as_object().ok_or_else(|| {
        bad_shape(
            "",
            "",
            format!("table-updates is not an object: {}", short(v)),
        )
    })?;
    let mut out = Vec::with_capacity(obj.len());
    for (table, rows) in obj {
        let Some(ts) = schema.tables.get(table) else {
            debug!(table, "update for a table not in the schema; ignored");
            continue;
        };
        let only = match selection {
            None => None,
            Some(sel) => match sel.get(table) {
                Some(cols) => Some(cols),
                None => {
                    debug!(table, "update for a table not selected; ignored");
                    continue;
                }
            },
        };
        let rows = rows.as_object().ok_or_else(|| {
            bad_shape(
                table,
                "",
                format!("table-update is not an object: {}", short(rows)),
            )
        })?;
        out.push((table, TableView { schema: ts, only }, rows));
    }
    Ok(out)
}

fn parse_uuid(table: &str, s: &str) -> Result<Uuid, UpdateError> {
    Uuid::try_parse(s).map_err(|_| bad_shape(table, s, "row key is not a UUID"))
}

fn parse_datum(
    table: &str,
    uuid: &str,
    column: &str,
    v: &Value,
    ty: &crate::schema::ColumnType,
) -> Result<Datum, UpdateError> {
    Datum::from_json(v, ty).map_err(|source| UpdateError::BadDatum {
        table: table.to_string(),
        uuid: uuid.to_string(),
        column: column.to_string(),
        source,
    })
}

/// A full row: the defaults with the sent columns on top.
fn full_row(
    table: &str,
    uuid: &str,
    ts: TableView<'_>,
    defaults: &Row,
    body: &Value,
) -> Result<Row, UpdateError> {
    overlay(table, uuid, ts, defaults.clone(), body)
}

/// `row` with the columns of the JSON row `body` replacing its values.
fn overlay(
    table: &str,
    uuid: &str,
    ts: TableView<'_>,
    mut row: Row,
    body: &Value,
) -> Result<Row, UpdateError> {
    let cols = body.as_object().ok_or_else(|| {
        bad_shape(
            table,
            uuid,
            format!("row is not an object: {}", short(body)),
        )
    })?;
    for (column, v) in cols {
        // Unknown columns, and the implicit ones, are not part of the stored row.
        let Some(ty) = ts.column(column) else {
            continue;
        };
        let d = parse_datum(table, uuid, column, v, ty)?;
        // Rows hold every column already, so this replaces in place without a key copy.
        match row.get_mut(column) {
            Some(slot) => *slot = d,
            None => {
                row.insert(column.clone(), d);
            }
        }
    }
    Ok(row)
}
