//! The regressions the `rpc_stream` fuzz target found. The replay of every kept seed through
//! the target's body is `tests/fuzz_corpus.rs` of the workspace's `tests` crate, with the other
//! targets'. See `crates/ovsdb/fuzz/README.md`.

/// The first input `rpc_stream` stopped on (a check in the harness that was too strict, not a
/// bug): the splitter ends a value at the bracket that brings the depth back to 0 whatever its
/// kind, so `{ ... [ ... } ]}` is one value, and rpc::parse rejects it as not JSON.
#[test]
fn mismatched_brackets_split_and_are_rejected() {
    use bytes::BytesMut;
    use podport_ovsdb::rpc::{self, RpcError};
    use podport_ovsdb::splitter::JsonSplitter;

    let mut buf = BytesMut::from(&b"{\"a\": [1}] {}"[..]);
    let mut sp = JsonSplitter::default();
    let v = sp.decode(&mut buf).unwrap().unwrap();
    assert_eq!(&v[..], b"{\"a\": [1}]");
    assert!(matches!(rpc::parse(&v), Err(RpcError::Json(_))));
    assert_eq!(&sp.decode(&mut buf).unwrap().unwrap()[..], b"{}");
}
