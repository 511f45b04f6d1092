//! Database schemas (RFC 7047 section 3.2), as returned by `get_schema`.
//!
//! Only what the data model needs is kept: every table's columns with their types (atomic key
//! and value types and the `min`/`max` element counts). Base-type constraints (`enum`,
//! `minInteger`, `refTable`, ...) are accepted and ignored: the server enforces them.

use std::collections::BTreeMap;

use serde_json::Value;

/// The tables and columns podport reads or writes; [`DbSchema::check`] verifies a server's
/// schema against it once, at connection time, so that a missing column is one clear error
/// instead of a failed transaction later.
pub const REQUIRED: &[(&str, &[&str])] = &[
    ("Open_vSwitch", &["bridges", "next_cfg", "cur_cfg"]),
    ("Bridge", &["name", "ports", "datapath_type"]),
    ("Port", &["name", "interfaces", "external_ids"]),
    (
        "Interface",
        &[
            "name",
            "type",
            "ofport",
            "ofport_request",
            "error",
            "external_ids",
            "admin_state",
            "link_state",
        ],
    ),
];

/// The type of a column: atomic key type, optional value type (maps) and element counts.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnType {
    /// Type of the atoms (of the keys, for a map).
    pub key: AtomicType,
    /// Type of the values; `Some` makes the column a map.
    pub value: Option<AtomicType>,
    /// Minimum number of elements (0 or 1).
    pub min: u64,
    /// Maximum number of elements; `None` is "unlimited".
    pub max: Option<u64>,
}

/// How a column's values are shaped, after RFC 7047's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// Exactly one atom (`min` = `max` = 1, no value type).
    Scalar,
    /// Any other count of atoms, including optional columns (`min` 0, `max` 1).
    Set,
    /// Key/value pairs.
    Map,
}

/// The implicit columns every table has. Both are UUID scalars.
static IMPLICIT_UUID_COLUMN: ColumnType = ColumnType {
    key: AtomicType::Uuid,
    value: None,
    min: 1,
    max: Some(1),
};

impl ColumnType {
    /// A scalar of the given atomic type (what a bare type string in a schema means).
    pub fn scalar(key: AtomicType) -> ColumnType {
        ColumnType {
            key,
            value: None,
            min: 1,
            max: Some(1),
        }
    }

    /// Scalar, set or map, as ovsdb-server classifies types: every non-map type other than
    /// exactly-one is a set.
    pub fn kind(&self) -> ColumnKind {
        if self.value.is_some() {
            ColumnKind::Map
        } else if self.min == 1 && self.max == Some(1) {
            ColumnKind::Scalar
        } else {
            ColumnKind::Set
        }
    }

    /// Whether the column can hold more than one element (`max` > 1).
    ///
    /// This, not [`ColumnType::kind`], decides the meaning of an `update2` "modify": ovsdb-server
    /// (`ovsdb_datum_diff`) sends a difference only for composite columns and the plain new
    /// value for every other one, including optional columns such as `Interface.ofport`
    /// (observed on OVS 3.1: `ofport` 1 → 13 arrives as `13`, and clearing
    /// `ofport_request` arrives as `["set",[]]`).
    pub fn is_composite(&self) -> bool {
        self.max.is_none_or(|max| max > 1)
    }

    /// Parses a column type: a bare atomic type name, or `{key, value?, min?, max?}` whose
    /// key and value are a type name or a base-type object `{type, ...}`.
    fn from_json(v: &Value) -> Result<ColumnType, String> {
        match v {
            Value::String(name) => Ok(ColumnType::scalar(
                atomic_from_json(v).map_err(|_| format!("unknown atomic type {name:?}"))?,
            )),
            Value::Object(obj) => {
                let key = obj
                    .get("key")
                    .ok_or_else(|| "type object has no \"key\"".to_string())?;
                let key = base_type_from_json(key)?;
                let value = obj.get("value").map(base_type_from_json).transpose()?;
                let min = match obj.get("min") {
                    None => 1,
                    Some(m) => m
                        .as_u64()
                        .filter(|m| *m <= 1)
                        .ok_or_else(|| format!("\"min\" must be 0 or 1, found {m}"))?,
                };
                let max = match obj.get("max") {
                    None => Some(1),
                    Some(Value::String(s)) if s == "unlimited" => None,
                    Some(m) => {
                        Some(m.as_u64().filter(|m| *m >= 1 && *m >= min).ok_or_else(|| {
                            format!(
                                "\"max\" must be \"unlimited\" or an integer ≥ max(1, min), \
                                     found {m}"
                            )
                        })?)
                    }
                };
                Ok(ColumnType {
                    key,
                    value,
                    min,
                    max,
                })
            }
            other => Err(format!(
                "a type must be a string or an object, found {}",
                short(other)
            )),
        }
    }
}

/// A base type: a type name or `{"type": name, ...constraints}`.
fn base_type_from_json(v: &Value) -> Result<AtomicType, String> {
    match v {
        Value::String(_) => atomic_from_json(v),
        Value::Object(obj) => match obj.get("type") {
            Some(t) => atomic_from_json(t),
            None => Err("base type object has no \"type\"".to_string()),
        },
        other => Err(format!(
            "a base type must be a string or an object, found {}",
            short(other)
        )),
    }
}

fn atomic_from_json(v: &Value) -> Result<AtomicType, String> {
    v.as_str()
        .and_then(AtomicType::from_name)
        .ok_or_else(|| format!("unknown atomic type {}", short(v)))
}

/// A short rendering of a JSON value for error messages, so that a huge value cannot make a
/// huge log line.
pub(crate) fn short(v: &Value) -> String {
    const LIMIT: usize = 80;
    let mut s = v.to_string();
    if s.len() > LIMIT {
        let mut cut = LIMIT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// A database schema: name, version and tables.
#[derive(Clone, Debug)]
pub struct DbSchema {
    /// Database name (`Open_vSwitch`).
    pub name: String,
    /// Schema version (`8.3.1` on OVS 3.1); empty if the server sent none.
    pub version: String,
    /// Tables by name.
    pub tables: BTreeMap<String, TableSchema>,
}

/// The declared columns of one table. The implicit `_uuid` and `_version` columns are not in
/// `columns` (so that rows do not get placeholder values for them) but
/// [`TableSchema::column`] knows them.
#[derive(Clone, Debug)]
pub struct TableSchema {
    /// Declared columns by name.
    pub columns: BTreeMap<String, ColumnType>,
}

impl TableSchema {
    /// A declared column, or one of the implicit `_uuid` / `_version` columns.
    pub fn column(&self, name: &str) -> Option<&ColumnType> {
        match name {
            "_uuid" | "_version" => Some(&IMPLICIT_UUID_COLUMN),
            _ => self.columns.get(name),
        }
    }
}

/// Why a schema was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    /// The schema JSON does not have the shape of RFC 7047 section 3.2.
    #[error("malformed schema at {path}: {reason}")]
    BadShape {
        /// Where in the schema (`tables.Interface.columns.ofport.type`).
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// A table podport needs is absent from the server's schema.
    #[error("the server's {database} schema (version {version}) has no table {table}; this Open vSwitch is too old or not Open vSwitch")]
    MissingTable {
        /// Database name.
        database: String,
        /// The server's schema version.
        version: String,
        /// The missing table.
        table: String,
    },
    /// A column podport needs is absent from the server's schema.
    #[error("the server's {database} schema (version {version}) has no column {table}.{column}; this Open vSwitch is too old")]
    MissingColumn {
        /// Database name.
        database: String,
        /// The server's schema version.
        version: String,
        /// Table of the missing column.
        table: String,
        /// The missing column.
        column: String,
    },
}

impl DbSchema {
    /// Parses a `get_schema` result.
    pub fn from_json(v: &Value) -> Result<DbSchema, SchemaError> {
        let bad = |path: &str, reason: String| SchemaError::BadShape {
            path: path.to_string(),
            reason,
        };
        let obj = v
            .as_object()
            .ok_or_else(|| bad("", format!("expected an object, found {}", short(v))))?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("name", "missing or not a string".to_string()))?
            .to_string();
        // RFC 7047 requires "version", but it costs nothing to accept a schema without one:
        // it only appears in error messages.
        let version = match obj.get("version") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(bad("version", format!("not a string: {}", short(other)))),
        };
        let tables_json = obj
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("tables", "missing or not an object".to_string()))?;
        let mut tables = BTreeMap::new();
        for (table, tv) in tables_json {
            let columns_json = tv
                .get("columns")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    bad(
                        &format!("tables.{table}.columns"),
                        "missing or not an object".to_string(),
                    )
                })?;
            let mut columns = BTreeMap::new();
            for (column, cv) in columns_json {
                let path = format!("tables.{table}.columns.{column}.type");
                let ty = cv
                    .get("type")
                    .ok_or_else(|| bad(&path, "missing".to_string()))?;
                let ty = ColumnType::from_json(ty).map_err(|reason| bad(&path, reason))?;
                columns.insert(column.clone(), ty);
            }
            tables.insert(table.clone(), TableSchema { columns });
        }
        Ok(DbSchema {
            name,
            version,
            tables,
        })
    }

    /// A table by name.
    pub fn table(&self, table: &str) -> Option<&TableSchema> {
        self.tables.get(table)
    }

    /// The type of `table.column` (including the implicit `_uuid` / `_version`).
    pub fn column(&self, table: &str, column: &str) -> Option<&ColumnType> {
        self.tables.get(table)?.column(column)
    }

    /// Checks that every listed table and column exists (pass [`REQUIRED`]); the first one
    /// missing is the error.
    pub fn check(&self, required: &[(&str, &[&str])]) -> Result<(), SchemaError> {
        for (table, columns) in required {
            let Some(ts) = self.tables.get(*table) else {
                return Err(SchemaError::MissingTable {
                    database: self.name.clone(),
                    version: self.version_for_messages(),
                    table: (*table).to_string(),
                });
            };
            for column in *columns {
                if ts.column(column).is_none() {
                    return Err(SchemaError::MissingColumn {
                        database: self.name.clone(),
                        version: self.version_for_messages(),
                        table: (*table).to_string(),
                        column: (*column).to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    fn version_for_messages(&self) -> String {
        if self.version.is_empty() {
            "unknown".to_string()
        } else {
            self.version.clone()
        }
    }
}

/// The atomic types of RFC 7047.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtomicType {
    /// `"integer"`
    Integer,
    /// `"real"`
    Real,
    /// `"boolean"`
    Boolean,
    /// `"string"`
    String,
    /// `"uuid"`
    Uuid,
}

impl AtomicType {
    /// The type's name in schemas.
    pub fn name(self) -> &'static str {
        match self {
            AtomicType::Integer => "integer",
            AtomicType::Real => "real",
            AtomicType::Boolean => "boolean",
            AtomicType::String => "string",
            AtomicType::Uuid => "uuid",
        }
    }

    /// The type with this schema name.
    pub fn from_name(name: &str) -> Option<AtomicType> {
        Some(match name {
            "integer" => AtomicType::Integer,
            "real" => AtomicType::Real,
            "boolean" => AtomicType::Boolean,
            "string" => AtomicType::String,
            "uuid" => AtomicType::Uuid,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_forms() {
        let t = |v: Value| ColumnType::from_json(&v);
        assert_eq!(
            t(json!("integer")),
            Ok(ColumnType::scalar(AtomicType::Integer))
        );
        assert_eq!(
            t(json!({"key": {"type": "integer", "minInteger": 1}, "min": 0, "max": 1})),
            Ok(ColumnType {
                key: AtomicType::Integer,
                value: None,
                min: 0,
                max: Some(1)
            })
        );
        assert_eq!(
            t(json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"})),
            Ok(ColumnType {
                key: AtomicType::String,
                value: Some(AtomicType::String),
                min: 0,
                max: None
            })
        );
        assert_eq!(
            t(json!({"key": {"type": "uuid", "refTable": "Port"}})),
            Ok(ColumnType::scalar(AtomicType::Uuid))
        );
        assert!(t(json!("float")).is_err());
        assert!(t(json!({"value": "string"})).is_err());
        assert!(t(json!({"key": "string", "min": 2})).is_err());
        assert!(t(json!({"key": "string", "max": 0})).is_err());
        assert!(t(json!({"key": "string", "max": "lots"})).is_err());
        assert!(t(json!(7)).is_err());
    }

    #[test]
    fn kinds() {
        let opt = ColumnType {
            key: AtomicType::Integer,
            value: None,
            min: 0,
            max: Some(1),
        };
        assert_eq!(opt.kind(), ColumnKind::Set);
        assert!(!opt.is_composite());
        assert_eq!(
            ColumnType::scalar(AtomicType::String).kind(),
            ColumnKind::Scalar
        );
        let set = ColumnType {
            max: None,
            ..opt.clone()
        };
        assert_eq!(set.kind(), ColumnKind::Set);
        assert!(set.is_composite());
        let map = ColumnType {
            value: Some(AtomicType::String),
            max: None,
            ..opt
        };
        assert_eq!(map.kind(), ColumnKind::Map);
    }

    #[test]
    fn bad_schema_shapes() {
        assert!(matches!(
            DbSchema::from_json(&json!([])),
            Err(SchemaError::BadShape { .. })
        ));
        let err = DbSchema::from_json(&json!({
            "name": "X", "version": "1", "tables": {"T": {"columns": {"c": {"type": "nope"}}}}
        }))
        .unwrap_err();
        assert_eq!(
            err,
            SchemaError::BadShape {
                path: "tables.T.columns.c.type".into(),
                reason: "unknown atomic type \"nope\"".into()
            }
        );
    }

    #[test]
    fn implicit_columns() {
        let s = DbSchema::from_json(&json!({
            "name": "X", "tables": {"T": {"columns": {"c": {"type": "integer"}}}}
        }))
        .unwrap();
        assert_eq!(s.version, "");
        assert_eq!(
            s.column("T", "_uuid"),
            Some(&ColumnType::scalar(AtomicType::Uuid))
        );
        assert!(s.column("T", "d").is_none());
        assert!(s.column("U", "c").is_none());
        let err = s.check(&[("T", &["c", "d"])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the server's X schema (version unknown) has no column T.d; this Open vSwitch is too old"
        );
    }
}
