//! Atoms and data (column values) in their RFC 7047 wire forms (section 5.1).
//!
//! Wire forms accepted by [`Datum::from_json`]:
//! - a bare atom (`5`, `"eth0"`, `true`, `["uuid","…"]`, `["named-uuid","…"]`): a set of one;
//! - `["set", [atom, …]]`;
//! - `["map", [[key, value], …]]` (the only form of a map).
//!
//! Sets and maps are kept sorted by key and without duplicates, as ovsdb-server keeps them, so
//! that two data with the same elements compare equal. Build data with the constructors
//! ([`Datum::set`], [`Datum::map`], ...) to keep that invariant.
//!
//! Element counts are not checked against the column's `min`/`max`: an `update2` "modify"
//! carries a difference, which is not a valid column value (a set difference can be larger
//! than `max`). The server checks counts of what a client writes.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Value;
pub use uuid::Uuid;

pub use crate::schema::AtomicType;
use crate::schema::{short, ColumnType};

/// One atomic value.
#[derive(Clone, Debug, PartialEq)]
pub enum Atom {
    /// A 64-bit signed integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// A boolean.
    Boolean(bool),
    /// A string.
    String(String),
    /// A row reference (`["uuid", "…"]`).
    Uuid(Uuid),
    /// A reference to a row inserted earlier in the same transaction (`["named-uuid", "…"]`);
    /// only clients send it.
    NamedUuid(String),
}

// Its values' side: the schema's side (name, from_name) is in schema.rs.
impl AtomicType {
    /// The default atom of the type (RFC 7047 section 5.1: 0, 0.0, false, "", all-zero UUID).
    pub fn default_atom(self) -> Atom {
        match self {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(String::new()),
            AtomicType::Uuid => Atom::Uuid(Uuid::nil()),
        }
    }
}

/// Why a JSON value is not a datum or atom of the expected type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DatumError {
    /// The JSON has the wrong shape or atomic type.
    #[error("expected {expected}, found {found}")]
    Expected {
        /// What the type called for (`"an integer"`, `"[\"map\", [...]]"`).
        expected: &'static str,
        /// The offending JSON, shortened.
        found: String,
    },
    /// A JSON number outside the range of a 64-bit signed integer, or not integral.
    #[error("integer out of range or not integral: {found}")]
    BadInteger {
        /// The offending number.
        found: String,
    },
    /// `["uuid", s]` where `s` is not a UUID.
    #[error("invalid UUID {found:?}")]
    BadUuid {
        /// The offending string.
        found: String,
    },
    /// A map with two different values for one key.
    #[error("map has key {key} twice with different values")]
    DuplicateKey {
        /// The key, as JSON.
        key: String,
    },
}

fn expected(expected: &'static str, found: &Value) -> DatumError {
    DatumError::Expected {
        expected,
        found: short(found),
    }
}

impl Atom {
    /// The atom's wire form.
    ///
    /// A non-finite real has no JSON form and becomes `null`, which the server rejects.
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => Value::from(*i),
            Atom::Real(r) => serde_json::Number::from_f64(*r).map_or(Value::Null, Value::Number),
            Atom::Boolean(b) => Value::Bool(*b),
            Atom::String(s) => Value::String(s.clone()),
            Atom::Uuid(u) => Value::Array(vec![
                Value::from("uuid"),
                Value::String(u.hyphenated().to_string()),
            ]),
            Atom::NamedUuid(n) => {
                Value::Array(vec![Value::from("named-uuid"), Value::String(n.clone())])
            }
        }
    }

    /// Parses an atom of type `ty`. A UUID-typed atom may be `["uuid", …]` or
    /// `["named-uuid", …]`; an integer must have an integral value; a real may be any number.
    pub fn from_json(v: &Value, ty: AtomicType) -> Result<Atom, DatumError> {
        match ty {
            AtomicType::Integer => {
                let Value::Number(n) = v else {
                    return Err(expected("an integer", v));
                };
                if let Some(i) = n.as_i64() {
                    return Ok(Atom::Integer(i));
                }
                // RFC 7047 asks for "a JSON number with an integer value": 5.0 qualifies, 5.5
                // and numbers beyond 64 bits do not. The range test is on the exclusive upper
                // bound 2^63, which is exactly representable as a double.
                match n.as_f64() {
                    Some(f)
                        if f.fract() == 0.0
                            && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0)
                                .contains(&f) =>
                    {
                        Ok(Atom::Integer(f as i64))
                    }
                    _ => Err(DatumError::BadInteger {
                        found: n.to_string(),
                    }),
                }
            }
            AtomicType::Real => v
                .as_f64()
                .map(Atom::Real)
                .ok_or_else(|| expected("a real number", v)),
            AtomicType::Boolean => v
                .as_bool()
                .map(Atom::Boolean)
                .ok_or_else(|| expected("a boolean", v)),
            AtomicType::String => v
                .as_str()
                .map(|s| Atom::String(s.to_string()))
                .ok_or_else(|| expected("a string", v)),
            AtomicType::Uuid => {
                let pair = match v.as_array().map(Vec::as_slice) {
                    Some([Value::String(tag), Value::String(s)]) => Some((tag.as_str(), s)),
                    _ => None,
                };
                match pair {
                    Some(("uuid", s)) => Uuid::try_parse(s)
                        .map(Atom::Uuid)
                        .map_err(|_| DatumError::BadUuid { found: s.clone() }),
                    Some(("named-uuid", s)) => Ok(Atom::NamedUuid(s.clone())),
                    _ => Err(expected("[\"uuid\", \"…\"] or [\"named-uuid\", \"…\"]", v)),
                }
            }
        }
    }

    /// A total order used to keep sets and maps sorted: by kind, then by value. Reals compare
    /// numerically (0.0 equals -0.0, as in [`PartialEq`]); NaN, which JSON cannot carry, falls
    /// back to [`f64::total_cmp`] so that sorting never panics.
    pub fn total_cmp(&self, other: &Atom) -> Ordering {
        fn rank(a: &Atom) -> u8 {
            match a {
                Atom::Integer(_) => 0,
                Atom::Real(_) => 1,
                Atom::Boolean(_) => 2,
                Atom::String(_) => 3,
                Atom::Uuid(_) => 4,
                Atom::NamedUuid(_) => 5,
            }
        }
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.partial_cmp(b).unwrap_or_else(|| a.total_cmp(b)),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            (Atom::NamedUuid(a), Atom::NamedUuid(b)) => a.cmp(b),
            _ => rank(self).cmp(&rank(other)),
        }
    }

    /// The integer, if this is one.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    /// The UUID, if this is one.
    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }
}

/// A column value. A scalar column holds a `Set` of exactly one atom; a map column a `Map`.
#[derive(Clone, Debug, PartialEq)]
pub enum Datum {
    /// Atoms, sorted and unique.
    Set(Vec<Atom>),
    /// Key/value pairs, sorted by key, keys unique.
    Map(Vec<(Atom, Atom)>),
}

impl Datum {
    /// Parses a datum of column type `ty` from any of its wire forms.
    pub fn from_json(v: &Value, ty: &ColumnType) -> Result<Datum, DatumError> {
        if let Some(value_ty) = ty.value {
            let pairs = match tagged(v, "map") {
                Some(pairs) => pairs,
                None => return Err(expected("[\"map\", [[key, value], …]]", v)),
            };
            let mut out = Vec::with_capacity(pairs.len());
            for pair in pairs {
                let Some([k, val]) = pair.as_array().map(Vec::as_slice) else {
                    return Err(expected("a [key, value] pair", pair));
                };
                out.push((Atom::from_json(k, ty.key)?, Atom::from_json(val, value_ty)?));
            }
            sort_pairs(&mut out)?;
            return Ok(Datum::Map(out));
        }
        match tagged(v, "set") {
            Some(elems) => {
                let atoms = elems
                    .iter()
                    .map(|e| Atom::from_json(e, ty.key))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Datum::set(atoms))
            }
            None => Ok(Datum::Set(vec![Atom::from_json(v, ty.key)?])),
        }
    }

    /// The canonical wire form: a set of one is a bare atom, other sets are
    /// `["set", […]]`, maps are `["map", […]]`.
    pub fn to_json(&self) -> Value {
        match self {
            Datum::Set(atoms) if atoms.len() == 1 => atoms[0].to_json(),
            Datum::Set(atoms) => Value::Array(vec![
                Value::from("set"),
                Value::Array(atoms.iter().map(Atom::to_json).collect()),
            ]),
            Datum::Map(pairs) => Value::Array(vec![
                Value::from("map"),
                Value::Array(
                    pairs
                        .iter()
                        .map(|(k, v)| Value::Array(vec![k.to_json(), v.to_json()]))
                        .collect(),
                ),
            ]),
        }
    }

    /// The default value of a column (RFC 7047 section 5.1): `min` default atoms, so an empty
    /// set or map for optional columns and the type's default atom for scalars.
    pub fn default_for(ty: &ColumnType) -> Datum {
        match ty.value {
            Some(value_ty) if ty.min >= 1 => {
                Datum::Map(vec![(ty.key.default_atom(), value_ty.default_atom())])
            }
            Some(_) => Datum::Map(Vec::new()),
            None if ty.min >= 1 => Datum::Set(vec![ty.key.default_atom()]),
            None => Datum::Set(Vec::new()),
        }
    }

    /// A set of the given atoms, sorted and deduplicated.
    pub fn set(atoms: impl IntoIterator<Item = Atom>) -> Datum {
        let mut atoms: Vec<Atom> = atoms.into_iter().collect();
        // ovsdb-server sends sets sorted; checking is cheaper than sorting.
        if atoms.is_sorted_by(|a, b| a.total_cmp(b) == Ordering::Less) {
            return Datum::Set(atoms);
        }
        atoms.sort_by(Atom::total_cmp);
        atoms.dedup_by(|a, b| a.total_cmp(b) == Ordering::Equal);
        Datum::Set(atoms)
    }

    /// A map of the given pairs, sorted by key; of two pairs with equal keys the later wins.
    pub fn map(pairs: impl IntoIterator<Item = (Atom, Atom)>) -> Datum {
        let mut pairs: Vec<(Atom, Atom)> = pairs.into_iter().collect();
        // A stable sort keeps equal keys in input order; keeping the last of each run then
        // means "later wins".
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut out: Vec<(Atom, Atom)> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match out.last_mut() {
                Some(last) if last.0.total_cmp(&pair.0) == Ordering::Equal => *last = pair,
                _ => out.push(pair),
            }
        }
        Datum::Map(out)
    }

    /// An empty set (the value of an optional column that is unset).
    pub fn empty_set() -> Datum {
        Datum::Set(Vec::new())
    }

    /// An empty map.
    pub fn empty_map() -> Datum {
        Datum::Map(Vec::new())
    }

    /// A set of one atom (a scalar, or an optional column that is set).
    pub fn scalar(atom: Atom) -> Datum {
        Datum::Set(vec![atom])
    }

    /// A scalar integer.
    pub fn integer(i: i64) -> Datum {
        Datum::scalar(Atom::Integer(i))
    }

    /// A scalar string.
    pub fn string(s: impl Into<String>) -> Datum {
        Datum::scalar(Atom::String(s.into()))
    }

    /// A scalar boolean.
    pub fn boolean(b: bool) -> Datum {
        Datum::scalar(Atom::Boolean(b))
    }

    /// A scalar row reference.
    pub fn uuid(u: Uuid) -> Datum {
        Datum::scalar(Atom::Uuid(u))
    }

    /// A scalar reference to a row inserted in the same transaction.
    pub fn named_uuid(name: impl Into<String>) -> Datum {
        Datum::scalar(Atom::NamedUuid(name.into()))
    }

    /// An optional integer column: empty set for `None`.
    pub fn optional_integer(i: Option<i64>) -> Datum {
        Datum::Set(i.map(Atom::Integer).into_iter().collect())
    }

    /// An optional string column: empty set for `None`.
    pub fn optional_string(s: Option<&str>) -> Datum {
        Datum::Set(s.map(|s| Atom::String(s.to_string())).into_iter().collect())
    }

    /// A set of strings.
    pub fn set_of_strings<S: AsRef<str>>(strings: impl IntoIterator<Item = S>) -> Datum {
        Datum::set(
            strings
                .into_iter()
                .map(|s| Atom::String(s.as_ref().to_string())),
        )
    }

    /// A set of row references.
    pub fn set_of_uuids(uuids: impl IntoIterator<Item = Uuid>) -> Datum {
        Datum::set(uuids.into_iter().map(Atom::Uuid))
    }

    /// A string-to-string map (`external_ids`, `other_config`, `options`).
    pub fn map_of_strings(map: &BTreeMap<String, String>) -> Datum {
        // A BTreeMap is already sorted by key with unique keys, in the same order as
        // `Atom::total_cmp` on strings (byte order), so no sort is needed.
        Datum::Map(
            map.iter()
                .map(|(k, v)| (Atom::String(k.clone()), Atom::String(v.clone())))
                .collect(),
        )
    }

    /// The integer of a set holding exactly one integer.
    pub fn as_integer(&self) -> Option<i64> {
        self.single()?.as_integer()
    }

    /// The string of a set holding exactly one string.
    pub fn as_string(&self) -> Option<&str> {
        self.single()?.as_str()
    }

    /// The UUID of a set holding exactly one UUID.
    pub fn as_uuid(&self) -> Option<Uuid> {
        self.single()?.as_uuid()
    }

    /// The UUIDs of a set (other atoms are skipped; a map gives none).
    pub fn as_uuid_set(&self) -> Vec<Uuid> {
        match self {
            Datum::Set(atoms) => atoms.iter().filter_map(Atom::as_uuid).collect(),
            Datum::Map(_) => Vec::new(),
        }
    }

    /// The string pairs of a map (pairs of other types are skipped; a set gives none).
    pub fn as_string_map(&self) -> BTreeMap<String, String> {
        match self {
            Datum::Map(pairs) => pairs
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect(),
            Datum::Set(_) => BTreeMap::new(),
        }
    }

    /// Whether the set or map has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of atoms or pairs.
    pub fn len(&self) -> usize {
        match self {
            Datum::Set(atoms) => atoms.len(),
            Datum::Map(pairs) => pairs.len(),
        }
    }

    /// The only atom of a set of one.
    fn single(&self) -> Option<&Atom> {
        match self {
            Datum::Set(atoms) if atoms.len() == 1 => atoms.first(),
            _ => None,
        }
    }

    /// Applies an `update2` difference for a composite column (see
    /// [`ColumnType::is_composite`]), as ovsdb-server's `ovsdb_datum_apply_diff` does: a set
    /// element in `diff` is removed if present and added if absent; a map pair is added if its
    /// key is absent, removed if present with the same value, and replaces the value if
    /// present with another. A set diff applied to a map (or the reverse) replaces the value:
    /// the caller parsed both with the same column type, so that cannot happen.
    pub fn apply_diff(&self, diff: &Datum) -> Datum {
        match (self, diff) {
            (Datum::Set(old), Datum::Set(d)) => {
                Datum::Set(merge_sorted(old, d, |a, b| a.total_cmp(b), |_, _| None))
            }
            (Datum::Map(old), Datum::Map(d)) => Datum::Map(merge_sorted(
                old,
                d,
                |a, b| a.0.total_cmp(&b.0),
                |o, n| (o.1 != n.1).then(|| n.clone()),
            )),
            _ => diff.clone(),
        }
    }
}

/// Merges two sorted, unique sequences: elements only in one side are kept; for an element in
/// both, `both` decides (None drops it). Linear in the total length.
fn merge_sorted<T: Clone>(
    old: &[T],
    diff: &[T],
    cmp: impl Fn(&T, &T) -> Ordering,
    both: impl Fn(&T, &T) -> Option<T>,
) -> Vec<T> {
    let mut out = Vec::with_capacity(old.len() + diff.len());
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < diff.len() {
        match cmp(&old[i], &diff[j]) {
            Ordering::Less => {
                out.push(old[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                out.push(diff[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                if let Some(x) = both(&old[i], &diff[j]) {
                    out.push(x);
                }
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&old[i..]);
    out.extend_from_slice(&diff[j..]);
    out
}

/// The element array of `[tag, [...]]`, if `v` has that form.
fn tagged<'a>(v: &'a Value, tag: &str) -> Option<&'a Vec<Value>> {
    match v.as_array().map(Vec::as_slice) {
        Some([Value::String(t), Value::Array(elems)]) if t == tag => Some(elems),
        _ => None,
    }
}

/// Sorts map pairs by key and removes exact duplicates; two values for one key is an error
/// because there is no right answer.
fn sort_pairs(pairs: &mut Vec<(Atom, Atom)>) -> Result<(), DatumError> {
    // ovsdb-server sends maps sorted by key; checking is cheaper than sorting.
    if pairs.is_sorted_by(|a, b| a.0.total_cmp(&b.0) == Ordering::Less) {
        return Ok(());
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in pairs.windows(2) {
        if w[0].0.total_cmp(&w[1].0) == Ordering::Equal && w[0].1 != w[1].1 {
            return Err(DatumError::DuplicateKey {
                key: w[0].0.to_json().to_string(),
            });
        }
    }
    pairs.dedup_by(|a, b| a.0.total_cmp(&b.0) == Ordering::Equal);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ty(key: AtomicType, value: Option<AtomicType>, min: u64, max: Option<u64>) -> ColumnType {
        ColumnType {
            key,
            value,
            min,
            max,
        }
    }

    const U1: &str = "02c85bec-b4e5-49c3-90b7-ea1c2c69ba8c";
    const U2: &str = "e291dd6f-becb-44c0-8a0e-115d277af199";

    #[test]
    fn atoms_both_ways() {
        let u = Uuid::parse_str(U1).unwrap();
        let cases = [
            (json!(5), AtomicType::Integer, Atom::Integer(5)),
            (json!(-1), AtomicType::Integer, Atom::Integer(-1)),
            (json!(1.5), AtomicType::Real, Atom::Real(1.5)),
            (json!(true), AtomicType::Boolean, Atom::Boolean(true)),
            (
                json!("eth0"),
                AtomicType::String,
                Atom::String("eth0".into()),
            ),
            (json!(["uuid", U1]), AtomicType::Uuid, Atom::Uuid(u)),
            (
                json!(["named-uuid", "row1"]),
                AtomicType::Uuid,
                Atom::NamedUuid("row1".into()),
            ),
        ];
        for (j, t, a) in cases {
            assert_eq!(Atom::from_json(&j, t), Ok(a.clone()), "{j}");
            assert_eq!(a.to_json(), j);
        }
    }

    #[test]
    fn numbers() {
        let int = |v: Value| Atom::from_json(&v, AtomicType::Integer);
        assert_eq!(int(json!(5.0)), Ok(Atom::Integer(5)));
        assert_eq!(int(json!(i64::MIN)), Ok(Atom::Integer(i64::MIN)));
        assert!(matches!(
            int(json!(5.5)),
            Err(DatumError::BadInteger { .. })
        ));
        assert!(matches!(
            int(json!(u64::MAX)),
            Err(DatumError::BadInteger { .. })
        ));
        assert!(matches!(
            int(json!(1e300)),
            Err(DatumError::BadInteger { .. })
        ));
        // A real column accepts an integer literal.
        assert_eq!(
            Atom::from_json(&json!(3), AtomicType::Real),
            Ok(Atom::Real(3.0))
        );
        assert_eq!(Atom::Real(f64::NAN).to_json(), Value::Null);
    }

    #[test]
    fn atom_type_errors() {
        let e = Atom::from_json(&json!("5"), AtomicType::Integer).unwrap_err();
        assert_eq!(e.to_string(), "expected an integer, found \"5\"");
        assert!(Atom::from_json(&json!(1), AtomicType::Boolean).is_err());
        assert!(Atom::from_json(&json!(1), AtomicType::String).is_err());
        assert!(Atom::from_json(&json!("x"), AtomicType::Real).is_err());
        assert!(Atom::from_json(&json!(U1), AtomicType::Uuid).is_err());
        assert!(Atom::from_json(&json!(["uuid"]), AtomicType::Uuid).is_err());
        assert!(Atom::from_json(&json!(["uuid", U1, 1]), AtomicType::Uuid).is_err());
        assert!(Atom::from_json(&json!(["set", []]), AtomicType::Uuid).is_err());
        assert_eq!(
            Atom::from_json(&json!(["uuid", "nope"]), AtomicType::Uuid),
            Err(DatumError::BadUuid {
                found: "nope".into()
            })
        );
    }

    #[test]
    fn datum_forms() {
        let opt_int = ty(AtomicType::Integer, None, 0, Some(1));
        let uuids = ty(AtomicType::Uuid, None, 0, None);
        let smap = ty(AtomicType::String, Some(AtomicType::String), 0, None);
        let scalar_str = ColumnType::scalar(AtomicType::String);
        let (u1, u2) = (Uuid::parse_str(U1).unwrap(), Uuid::parse_str(U2).unwrap());

        // A bare atom is a set of one, for scalars and sets alike.
        assert_eq!(Datum::from_json(&json!(5), &opt_int), Ok(Datum::integer(5)));
        assert_eq!(
            Datum::from_json(&json!("x"), &scalar_str),
            Ok(Datum::string("x"))
        );
        assert_eq!(
            Datum::from_json(&json!(["set", []]), &opt_int),
            Ok(Datum::empty_set())
        );
        assert_eq!(
            Datum::from_json(&json!(["set", [5]]), &opt_int),
            Ok(Datum::integer(5))
        );
        assert_eq!(
            Datum::from_json(&json!(["uuid", U1]), &uuids),
            Ok(Datum::uuid(u1))
        );
        // Sets come out sorted and deduplicated whatever the wire order.
        let d = Datum::from_json(
            &json!(["set", [["uuid", U2], ["uuid", U1], ["uuid", U2]]]),
            &uuids,
        )
        .unwrap();
        assert_eq!(d, Datum::set_of_uuids([u1, u2]));
        assert_eq!(d.as_uuid_set(), vec![u1, u2]);
        assert_eq!(d.to_json(), json!(["set", [["uuid", U1], ["uuid", U2]]]));

        let m = Datum::from_json(&json!(["map", [["b", "2"], ["a", "1"]]]), &smap).unwrap();
        assert_eq!(m.to_json(), json!(["map", [["a", "1"], ["b", "2"]]]));
        let expect: BTreeMap<String, String> =
            [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        assert_eq!(m.as_string_map(), expect);
        assert_eq!(m, Datum::map_of_strings(&expect));
        assert_eq!(
            Datum::from_json(&json!(["map", []]), &smap),
            Ok(Datum::empty_map())
        );
        assert_eq!(Datum::empty_map().to_json(), json!(["map", []]));
        assert_eq!(Datum::empty_set().to_json(), json!(["set", []]));
        assert_eq!(Datum::named_uuid("p").to_json(), json!(["named-uuid", "p"]));
    }

    #[test]
    fn datum_errors() {
        let smap = ty(AtomicType::String, Some(AtomicType::String), 0, None);
        let ints = ty(AtomicType::Integer, None, 0, None);
        // A map has exactly one wire form.
        assert!(matches!(
            Datum::from_json(&json!(["set", []]), &smap),
            Err(DatumError::Expected { .. })
        ));
        assert!(Datum::from_json(&json!("a"), &smap).is_err());
        assert!(Datum::from_json(&json!(["map", [["a"]]]), &smap).is_err());
        assert!(Datum::from_json(&json!(["map", [["a", 1]]]), &smap).is_err());
        assert!(Datum::from_json(&json!(["map", {"a": "b"}]), &smap).is_err());
        assert_eq!(
            Datum::from_json(&json!(["map", [["a", "1"], ["a", "2"]]]), &smap),
            Err(DatumError::DuplicateKey {
                key: "\"a\"".into()
            })
        );
        assert_eq!(
            Datum::from_json(&json!(["map", [["a", "1"], ["a", "1"]]]), &smap),
            Ok(Datum::map([(
                Atom::String("a".into()),
                Atom::String("1".into())
            )]))
        );
        assert!(Datum::from_json(&json!(["set", [1, "2"]]), &ints).is_err());
        assert!(Datum::from_json(&json!(["map", [[1, 2]]]), &ints).is_err());
        assert!(Datum::from_json(&json!(null), &ints).is_err());
        assert!(Datum::from_json(&json!({}), &ints).is_err());
    }

    #[test]
    fn defaults() {
        assert_eq!(
            Datum::default_for(&ColumnType::scalar(AtomicType::Integer)),
            Datum::integer(0)
        );
        assert_eq!(
            Datum::default_for(&ColumnType::scalar(AtomicType::Real)),
            Datum::scalar(Atom::Real(0.0))
        );
        assert_eq!(
            Datum::default_for(&ColumnType::scalar(AtomicType::Boolean)),
            Datum::boolean(false)
        );
        assert_eq!(
            Datum::default_for(&ColumnType::scalar(AtomicType::String)),
            Datum::string("")
        );
        assert_eq!(
            Datum::default_for(&ColumnType::scalar(AtomicType::Uuid)),
            Datum::uuid(Uuid::nil())
        );
        assert_eq!(
            Datum::default_for(&ty(AtomicType::Integer, None, 0, Some(1))),
            Datum::empty_set()
        );
        assert_eq!(
            Datum::default_for(&ty(AtomicType::String, Some(AtomicType::String), 0, None)),
            Datum::empty_map()
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(Datum::integer(3).as_integer(), Some(3));
        assert_eq!(Datum::empty_set().as_integer(), None);
        assert_eq!(
            Datum::set([Atom::Integer(1), Atom::Integer(2)]).as_integer(),
            None
        );
        assert_eq!(Datum::string("x").as_string(), Some("x"));
        assert_eq!(Datum::integer(3).as_string(), None);
        assert!(Datum::empty_set().is_empty());
        assert!(!Datum::integer(0).is_empty());
        assert_eq!(Datum::optional_integer(None), Datum::empty_set());
        assert_eq!(Datum::optional_string(Some("e")), Datum::string("e"));
        assert_eq!(
            Datum::set_of_strings(["b", "a", "b"]).to_json(),
            json!(["set", ["a", "b"]])
        );
        let later_wins = Datum::map([
            (Atom::String("k".into()), Atom::String("1".into())),
            (Atom::String("k".into()), Atom::String("2".into())),
        ]);
        assert_eq!(later_wins.to_json(), json!(["map", [["k", "2"]]]));
    }

    #[test]
    fn diffs() {
        let s = |v: &[i64]| Datum::set(v.iter().map(|i| Atom::Integer(*i)));
        assert_eq!(s(&[1, 2, 3]).apply_diff(&s(&[2, 4])), s(&[1, 3, 4]));
        assert_eq!(s(&[]).apply_diff(&s(&[5])), s(&[5]));
        let m = |v: &[(&str, &str)]| {
            Datum::map(
                v.iter()
                    .map(|(k, v)| (Atom::String(k.to_string()), Atom::String(v.to_string()))),
            )
        };
        assert_eq!(
            m(&[("a", "1"), ("b", "2"), ("c", "3")]).apply_diff(&m(&[
                ("a", "9"),
                ("b", "2"),
                ("d", "4")
            ])),
            m(&[("a", "9"), ("c", "3"), ("d", "4")])
        );
    }

    fn atom_of(t: AtomicType) -> BoxedStrategy<Atom> {
        match t {
            AtomicType::Integer => any::<i64>().prop_map(Atom::Integer).boxed(),
            AtomicType::Real => (-1e300f64..1e300).prop_map(Atom::Real).boxed(),
            AtomicType::Boolean => any::<bool>().prop_map(Atom::Boolean).boxed(),
            AtomicType::String => "\\PC{0,12}".prop_map(Atom::String).boxed(),
            AtomicType::Uuid => prop_oneof![
                any::<u128>().prop_map(|u| Atom::Uuid(Uuid::from_u128(u))),
                "[a-z0-9_]{1,8}".prop_map(Atom::NamedUuid),
            ]
            .boxed(),
        }
    }

    fn atomic_type() -> impl Strategy<Value = AtomicType> {
        prop_oneof![
            Just(AtomicType::Integer),
            Just(AtomicType::Real),
            Just(AtomicType::Boolean),
            Just(AtomicType::String),
            Just(AtomicType::Uuid),
        ]
    }

    /// A column type and a datum of that type.
    fn typed_datum() -> impl Strategy<Value = (ColumnType, Datum)> {
        (atomic_type(), proptest::option::of(atomic_type())).prop_flat_map(|(k, v)| match v {
            None => proptest::collection::vec(atom_of(k), 0..6)
                .prop_map(move |atoms| (ty(k, None, 0, None), Datum::set(atoms)))
                .boxed(),
            Some(v) => proptest::collection::vec((atom_of(k), atom_of(v)), 0..6)
                .prop_map(move |pairs| (ty(k, Some(v), 0, None), Datum::map(pairs)))
                .boxed(),
        })
    }

    proptest! {
        #[test]
        fn round_trip((t, d) in typed_datum()) {
            let j = d.to_json();
            prop_assert_eq!(Datum::from_json(&j, &t), Ok(d.clone()));
            // And through text, as it goes over the wire (reals excepted: the JSON text
            // round trip of a double is serde_json's business, not ours).
            if t.key != AtomicType::Real && t.value != Some(AtomicType::Real) {
                let text = serde_json::to_string(&j).unwrap();
                let back: Value = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(Datum::from_json(&back, &t), Ok(d));
            }
        }

        #[test]
        fn set_diff_identities((_t, a) in typed_datum()) {
            // Applying a set to itself empties it; applying it to the empty set gives it back.
            if let Datum::Set(_) = a {
                prop_assert_eq!(a.apply_diff(&a), Datum::empty_set());
                prop_assert_eq!(Datum::empty_set().apply_diff(&a), a);
            }
        }
    }
}
