//! JSON-RPC 1.0 as OVSDB uses it: requests `{"method", "params", "id"}`, notifications (the
//! same with `"id": null`) and responses `{"result", "error", "id"}`.

use serde::Deserialize;
use serde_json::Value;

use crate::splitter::{self, MAX_DEPTH};

/// A message from the server, classified.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// A reply to one of our requests; `error` is `Value::Null` on success.
    Response {
        id: Value,
        result: Value,
        error: Value,
    },
    /// A request the server expects an answer to (OVSDB servers send only `echo`).
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    /// `update2`, `update`, `locked`, ...
    Notification { method: String, params: Value },
}

/// Bytes that are JSON but not a JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("not JSON: {0}")]
    Json(String),
    /// Nested deeper than ovsdb-server accepts ([`MAX_DEPTH`]).
    #[error("JSON nested deeper than {limit} levels (at byte {offset})")]
    TooDeep {
        /// The maximum depth, [`MAX_DEPTH`].
        limit: usize,
        /// Offset of the first bracket too deep.
        offset: usize,
    },
    #[error("not a JSON-RPC message: {0}")]
    Shape(String),
}

/// Classifies one complete JSON value.
///
/// Values nested up to [`MAX_DEPTH`] levels are accepted, as by ovsdb-server; deeper ones are
/// [`RpcError::TooDeep`]. serde_json's own recursion limit (128) is lifted for this, after the
/// depth has been checked here, so that its recursion stays bounded by [`MAX_DEPTH`], and the
/// stack grows as needed (serde_stacker), so that no depth overflows it.
pub fn parse(bytes: &[u8]) -> Result<Incoming, RpcError> {
    classify(parse_value(bytes)?)
}

/// Parses one JSON value nested at most [`MAX_DEPTH`] levels deep.
pub fn parse_value(bytes: &[u8]) -> Result<Value, RpcError> {
    if let Some(offset) = splitter::too_deep(bytes, MAX_DEPTH) {
        return Err(RpcError::TooDeep {
            limit: MAX_DEPTH,
            offset,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    // serde_json recurses once per level, with frames of over 1 KiB in a debug build: 1000
    // levels would not fit in a 2 MiB thread stack. serde_stacker grows the stack on the heap
    // when it runs low.
    let v = Value::deserialize(serde_stacker::Deserializer::new(&mut de))
        .map_err(|e| RpcError::Json(e.to_string()))?;
    de.end().map_err(|e| RpcError::Json(e.to_string()))?;
    Ok(v)
}

/// Classifies a parsed JSON value.
pub fn classify(mut v: Value) -> Result<Incoming, RpcError> {
    let Some(obj) = v.as_object_mut() else {
        return Err(RpcError::Shape(format!(
            "expected an object, got {}",
            kind(&v)
        )));
    };
    let id = obj.remove("id").unwrap_or(Value::Null);
    if let Some(method) = obj.remove("method") {
        let Value::String(method) = method else {
            return Err(RpcError::Shape("\"method\" is not a string".into()));
        };
        let params = obj.remove("params").unwrap_or(Value::Null);
        return Ok(if id.is_null() {
            Incoming::Notification { method, params }
        } else {
            Incoming::Request { id, method, params }
        });
    }
    if obj.contains_key("result") || obj.contains_key("error") {
        return Ok(Incoming::Response {
            id,
            result: obj.remove("result").unwrap_or(Value::Null),
            error: obj.remove("error").unwrap_or(Value::Null),
        });
    }
    Err(RpcError::Shape(
        "neither \"method\" nor \"result\"/\"error\"".into(),
    ))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Encodes a request.
pub fn request(id: &Value, method: &str, params: Value) -> Vec<u8> {
    encode(object([
        ("id", id.clone()),
        ("method", Value::from(method)),
        ("params", params),
    ]))
}

/// Encodes a successful response.
pub fn response(id: &Value, result: Value) -> Vec<u8> {
    encode(object([
        ("id", id.clone()),
        ("result", result),
        ("error", Value::Null),
    ]))
}

/// An object of these members. `json!` would copy each value through a recursive
/// serialization; this moves them.
fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
    Value::Object(members.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

/// Encodes a value on a stack that grows as needed: an echo's params come back as deep as the
/// server sent them (up to [`MAX_DEPTH`]), and serde_json recurses once per level.
fn encode(v: Value) -> Vec<u8> {
    use serde::Serialize;
    let mut out = Vec::new();
    v.serialize(serde_stacker::Serializer::new(
        &mut serde_json::Serializer::new(&mut out),
    ))
    // A Value has string keys and finite numbers only, and a Vec does not fail.
    .expect("a JSON value encodes");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_the_three_kinds() {
        assert_eq!(
            parse(br#"{"id":3,"result":["Open_vSwitch"],"error":null}"#).unwrap(),
            Incoming::Response {
                id: json!(3),
                result: json!(["Open_vSwitch"]),
                error: Value::Null
            }
        );
        assert_eq!(
            parse(br#"{"id":"echo","method":"echo","params":[]}"#).unwrap(),
            Incoming::Request {
                id: json!("echo"),
                method: "echo".into(),
                params: json!([])
            }
        );
        assert_eq!(
            parse(br#"{"id":null,"method":"update2","params":[null,{}]}"#).unwrap(),
            Incoming::Notification {
                method: "update2".into(),
                params: json!([null, {}])
            }
        );
    }

    /// `{"id":null,"method":"echo","params":` then arrays so that the message is `depth`
    /// levels deep in all.
    fn nested(depth: usize) -> Vec<u8> {
        let mut text = br#"{"id":"e","method":"echo","params":"#.to_vec();
        text.extend(std::iter::repeat_n(b'[', depth - 1));
        text.extend(std::iter::repeat_n(b']', depth - 1));
        text.push(b'}');
        text
    }

    /// Runs `f` on a thread with `stack` bytes of stack: a debug build's recursion shows here.
    fn on_small_stack<T: Send + 'static>(
        stack: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn accepts_nesting_up_to_ovsdb_servers_limit() {
        // Half of a default thread's stack: parsing, classifying and dropping a value 1000
        // levels deep fits with room to spare, in debug builds too.
        on_small_stack(1 << 20, || {
            for depth in [127, 128, 129, 999, MAX_DEPTH] {
                let Incoming::Request { id, params, .. } = parse(&nested(depth)).unwrap() else {
                    panic!("not a request");
                };
                let mut d = 1;
                let mut v = &params;
                while let Some(inner) = v.as_array().and_then(|a| a.first()) {
                    d += 1;
                    v = inner;
                }
                assert_eq!(d + 1, depth, "params nesting");
                // The echo's answer carries the params back: encoding it is bounded too.
                let answer = response(&id, params);
                assert_eq!(answer.iter().filter(|b| **b == b'[').count(), depth - 1);
            }
        });
    }

    #[test]
    fn rejects_nesting_deeper_than_the_limit_without_recursing() {
        on_small_stack(1 << 20, || {
            for depth in [MAX_DEPTH + 1, 100_000] {
                let err = parse(&nested(depth)).unwrap_err();
                assert_eq!(
                    err,
                    RpcError::TooDeep {
                        limit: MAX_DEPTH,
                        offset: 35 + MAX_DEPTH - 1
                    }
                );
                assert!(err.to_string().contains("1000"), "{err}");
            }
        });
        // Brackets inside strings do not count.
        let mut text = br#"{"id":"e","method":"echo","params":[""#.to_vec();
        text.extend(std::iter::repeat_n(b'[', 5000));
        text.extend_from_slice(br#""]}"#);
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn rejects_what_is_not_json_rpc() {
        assert!(matches!(parse(b"{\"id\":1"), Err(RpcError::Json(_))));
        assert!(matches!(parse(b"[1,2]"), Err(RpcError::Shape(_))));
        assert!(matches!(parse(b"{\"id\":1}"), Err(RpcError::Shape(_))));
        assert!(matches!(
            parse(b"{\"method\":5,\"id\":1}"),
            Err(RpcError::Shape(_))
        ));
    }
}
