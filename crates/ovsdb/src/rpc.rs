//! JSON-RPC 1.0 as OVSDB uses it: requests `{"method", "params", "id"}`, notifications (the
//! same with `"id": null`) and responses `{"result", "error", "id"}`.

use serde_json::{json, Value};

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
    #[error("not a JSON-RPC message: {0}")]
    Shape(String),
}

/// Classifies one complete JSON value.
pub fn parse(bytes: &[u8]) -> Result<Incoming, RpcError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| RpcError::Json(e.to_string()))?;
    classify(v)
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
    json!({ "id": id, "method": method, "params": params })
        .to_string()
        .into_bytes()
}

/// Encodes a successful response.
pub fn response(id: &Value, result: Value) -> Vec<u8> {
    json!({ "id": id, "result": result, "error": null })
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

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
