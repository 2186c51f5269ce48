//! Property tests of a running service's HTTP surface (feature `harness`): the inputs every
//! service's `tests/api/fuzz.rs` draws (random JSON, one-field edits of a valid body, raw bytes,
//! wrong content types, query strings) and the property each case checks ([`checked`]).

use proptest::{
    prelude::*,
    sample::select,
    test_runner::{Config, TestCaseError, TestRunner},
};
use reqwest::{RequestBuilder, Url, header::CONTENT_TYPE};
use serde_json::Value;
use uuid::Uuid;

use crate::http::BODY_LIMIT;

/// Runs `cases` cases of `strategy` through `case` on the test's (multi-threaded) runtime,
/// shrinking a failure to its minimal input. proptest's runner is synchronous: each case runs to
/// the end (`block_in_place` + `block_on`) before the next is drawn.
pub fn run<S: Strategy>(cases: u32, strategy: S, case: impl AsyncFn(S::Value) -> Result<(), TestCaseError>) {
    let runtime = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = tokio::task::block_in_place(|| runner.run(&strategy, |input| runtime.block_on(case(input))));
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

pub fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ]
}

/// Any JSON value, at most 3 deep.
pub fn json() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value of any JSON type, or one near the edges of what numbers and text fields take.
pub fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3_i64..1_000_100).prop_map(Value::from),
        select(&[0, 1, 1_000_000, 1_000_001, 100_000_000, 100_000_001, i64::MAX, i64::MIN][..]).prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(1.5)),
        "[a-z0-9-]{0,52}".prop_map(Value::from),
        "\\PC{0,210}".prop_map(Value::from),
        json(),
    ]
}

/// One change to a valid body: a field dropped or replaced, or a field no route knows added.
#[derive(Debug, Clone)]
pub enum Edit {
    Drop(prop::sample::Index),
    Replace(prop::sample::Index, Value),
    Add(String, Value),
}

pub fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => any::<prop::sample::Index>().prop_map(Edit::Drop),
        2 => (any::<prop::sample::Index>(), replacement()).prop_map(|(i, v)| Edit::Replace(i, v)),
        1 => ("[a-zA-Z]{1,10}", json()).prop_map(|(k, v)| Edit::Add(k, v)),
    ]
}

impl Edit {
    fn apply(self, mut body: Value) -> Value {
        let object = body.as_object_mut().expect("a valid body is an object");
        // An empty body has no field to drop or replace: it is sent as it is.
        let key = |i: &prop::sample::Index| {
            (!object.is_empty()).then(|| i.get(&object.keys().collect::<Vec<_>>()).to_string())
        };
        match self {
            Edit::Drop(i) => {
                if let Some(k) = key(&i) {
                    object.remove(&k);
                }
            }
            Edit::Replace(i, v) => {
                if let Some(k) = key(&i) {
                    object.insert(k, v);
                }
            }
            Edit::Add(k, v) => {
                object.insert(k, v);
            }
        }
        body
    }
}

/// A request body as sent: JSON, or raw bytes with a content type (or none).
#[derive(Debug, Clone)]
pub enum Body {
    Json(Value),
    Raw { content_type: Option<&'static str>, bytes: Vec<u8> },
}

/// Bodies for a route whose valid bodies `valid` generates: valid ones (a 2xx may change state),
/// valid ones with one edit, any JSON at all, bytes that are not JSON, JSON under another content
/// type, and bodies just under and over the size limit.
pub fn body(valid: impl Strategy<Value = Value> + Clone) -> impl Strategy<Value = Body> {
    let content_types = [
        None,
        Some("application/json"),
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/json; charset=latin1"),
        Some("application/jsonx"),
        Some("*/*"),
    ];
    prop_oneof![
        2 => valid.clone().prop_map(Body::Json),
        4 => (valid.clone(), edit()).prop_map(|(v, e)| Body::Json(e.apply(v))),
        2 => json().prop_map(Body::Json),
        1 => (select(content_types.to_vec()), prop::collection::vec(any::<u8>(), 0..256))
            .prop_map(|(content_type, bytes)| Body::Raw { content_type, bytes }),
        1 => (select(content_types.to_vec()), valid)
            .prop_map(|(content_type, v)| Body::Raw { content_type, bytes: v.to_string().into_bytes() }),
        1 => (BODY_LIMIT - 16..BODY_LIMIT + 64).prop_map(|n| Body::Raw {
            content_type: Some("application/json"),
            bytes: format!("\"{}\"", "a".repeat(n)).into_bytes(),
        }),
    ]
}

/// A query string: pairs of `keys` (or other names) and values near what they take, or raw text.
#[derive(Debug, Clone)]
pub enum Query {
    Pairs(Vec<(String, String)>),
    Raw(String),
}

pub fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        (-2_i64..120).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9]{10,30}",
        Just("1.5".to_owned()),
        any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        "[0-9]{4}-[0-9]{2}(-[0-9]{2})?",
        select(
            &[
                "0000-01-01",
                "0000-01",
                "-0001-12-31",
                "-009999-01-01",
                "9999-12-31",
                "9999-12",
                "2026-02-29",
                "2024-02-29"
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-z0-9-]{0,52}",
        any::<String>(),
    ]
}

pub fn query(keys: &'static [&'static str]) -> impl Strategy<Value = Query> {
    let key = prop_oneof![4 => select(keys).prop_map(str::to_owned), 1 => "[a-zA-Z]{1,8}"];
    prop_oneof![
        4 => prop::collection::vec((key, query_value()), 0..5).prop_map(Query::Pairs),
        1 => prop_oneof!["[ -~]{0,60}", "(%[0-9a-fA-F]{2}|[=&a-z]){0,20}"].prop_map(Query::Raw),
    ]
}

pub fn with_query(mut url: Url, query: &Query) -> Url {
    match query {
        Query::Pairs(pairs) => {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        Query::Raw(raw) => url.set_query(Some(raw)),
    }
    url
}

/// A client that opens a connection per request: after a route answers without reading the whole
/// body, the server closes the connection, and a pooled client could pick it up as it closes.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("an HTTP client")
}

/// Sends `req` with `body`; returns the status and the response body.
pub async fn send(req: RequestBuilder, body: Option<&Body>) -> (u16, String) {
    let req = match body {
        None => req,
        Some(Body::Json(v)) => req.header(CONTENT_TYPE, "application/json").body(v.to_string()),
        Some(Body::Raw { content_type: Some(ct), bytes }) => req.header(CONTENT_TYPE, *ct).body(bytes.clone()),
        Some(Body::Raw { content_type: None, bytes }) => req.body(bytes.clone()),
    };
    let res = req.send().await.unwrap_or_else(|e| panic!("no answer: {e:?}"));
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

/// The property every case checks: never a 5xx, and nothing stored changed on a 4xx (or ever,
/// unless `may_change`). `state` reads what the service stores (a few counts).
pub async fn checked(
    state: impl Fn() -> Vec<i64>,
    request: impl AsyncFnOnce() -> (u16, String),
    may_change: bool,
) -> Result<(), TestCaseError> {
    let before = state();
    let (status, body) = request().await;
    prop_assert!(status < 500, "{status}: {body}");
    if status >= 400 || !may_change {
        prop_assert_eq!(state(), before, "{} changed state: {}", status, body);
    }
    Ok(())
}
