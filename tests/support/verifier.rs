//! One verifier for Kubernetes calls, the kube-rs (controller-rs) way: a `tower-test` service
//! behind `kube::Client`, and an [`ApiServerVerifier`] on the other end that either plays a
//! scenario — expected requests in order, each asserted (method, path, query, content type,
//! body) and answered, and nothing more — or answers every request with a handler and keeps a
//! log of what it saw.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::Value;
use tower_test::mock::{self, Handle, SendResponse};

/// The verifier's end of the mock.
pub type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// A request as the verifier received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    pub headers: HeaderMap,
    /// The body as JSON; `Null` when it was empty or not JSON.
    pub body: Value,
    /// The body's bytes.
    pub bytes: Vec<u8>,
}

impl Seen {
    async fn read(request: Request<Body>) -> Seen {
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.expect("a request body").to_vec();
        Seen {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            headers: parts.headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            bytes,
        }
    }

    /// The query's decoded `(key, value)` pairs.
    pub fn query_pairs(&self) -> BTreeSet<(String, String)> {
        let url =
            reqwest::Url::parse(&format!("http://api/?{}", self.query)).expect("a request query");
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// A header's value, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the request is about `resource` (a path segment such as `configmaps`).
    pub fn on(&self, resource: &str) -> bool {
        self.path.split('/').any(|segment| segment == resource)
    }
}

/// An answer: a status code and a body (JSON unless the test says otherwise).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    /// `status` with `body` as JSON.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            body: serde_json::to_vec(body).expect("json"),
        }
    }

    /// `status` with these bytes (newline-separated watch events, say).
    pub fn bytes(status: u16, body: Vec<u8>) -> Reply {
        Reply { status, body }
    }

    fn into_response(self) -> Response<Body> {
        Response::builder()
            .status(self.status)
            .header("content-type", "application/json")
            .body(Body::from(self.body))
            .expect("a response")
    }
}

/// A Kubernetes `Status` object, as the API server answers a refusal.
pub fn api_status(code: u16, reason: &str, message: &str) -> Value {
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

enum Query {
    Any,
    /// Each `key=value` part must be among the query's parts.
    Has(Vec<String>),
    /// The decoded pairs must be exactly these.
    Exactly(BTreeSet<(String, String)>),
}

enum BodyRule {
    Any,
    Empty,
    Exactly(Value),
}

type Check = Box<dyn FnOnce(&Seen) + Send>;
type Respond = Box<dyn FnOnce(&Seen) -> Reply + Send>;

/// One request a scenario expects, what is asserted of it, and the answer.
pub struct Expect {
    method: Method,
    path: String,
    query: Query,
    content_type: Option<String>,
    body: BodyRule,
    checks: Vec<Check>,
    respond: Respond,
}

impl Expect {
    /// `method` on `path`, answered 200 with the request's own body unless told otherwise.
    pub fn new(method: Method, path: impl Into<String>) -> Expect {
        Expect {
            method,
            path: path.into(),
            query: Query::Any,
            content_type: None,
            body: BodyRule::Any,
            checks: Vec::new(),
            respond: Box::new(|seen: &Seen| Reply::json(200, &seen.body)),
        }
    }

    pub fn get(path: impl Into<String>) -> Expect {
        Expect::new(Method::GET, path)
    }

    pub fn patch(path: impl Into<String>) -> Expect {
        Expect::new(Method::PATCH, path)
    }

    pub fn post(path: impl Into<String>) -> Expect {
        Expect::new(Method::POST, path)
    }

    pub fn put(path: impl Into<String>) -> Expect {
        Expect::new(Method::PUT, path)
    }

    pub fn delete(path: impl Into<String>) -> Expect {
        Expect::new(Method::DELETE, path)
    }

    /// The query holds each `key=value` part (among others).
    pub fn query_has(mut self, parts: &[&str]) -> Expect {
        self.query = Query::Has(parts.iter().map(|p| (*p).to_owned()).collect());
        self
    }

    /// The query is exactly these pairs (no pairs: no query).
    pub fn query_exactly<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Expect {
        self.query = Query::Exactly(
            pairs
                .iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
                .collect(),
        );
        self
    }

    /// The request's `content-type`.
    pub fn content_type(mut self, content_type: &str) -> Expect {
        self.content_type = Some(content_type.to_owned());
        self
    }

    /// The body is exactly this JSON.
    pub fn body(mut self, body: Value) -> Expect {
        self.body = BodyRule::Exactly(body);
        self
    }

    /// The request has no body.
    pub fn no_body(mut self) -> Expect {
        self.body = BodyRule::Empty;
        self
    }

    /// Asserts more of the body.
    pub fn check(self, check: impl FnOnce(&Value) + Send + 'static) -> Expect {
        self.check_request(move |seen| check(&seen.body))
    }

    /// Asserts more of the request (headers, say).
    pub fn check_request(mut self, check: impl FnOnce(&Seen) + Send + 'static) -> Expect {
        self.checks.push(Box::new(check));
        self
    }

    /// Answers with what `respond` makes of the request's body.
    pub fn respond(
        mut self,
        respond: impl FnOnce(&Value) -> (u16, Value) + Send + 'static,
    ) -> Expect {
        self.respond = Box::new(move |seen: &Seen| {
            let (status, body) = respond(&seen.body);
            Reply::json(status, &body)
        });
        self
    }

    /// Answers `status` with `body`.
    pub fn answer(self, status: u16, body: Value) -> Expect {
        self.respond(move |_| (status, body))
    }

    /// Answers `status` with these bytes.
    pub fn answer_bytes(mut self, status: u16, body: Vec<u8>) -> Expect {
        self.respond = Box::new(move |_| Reply::bytes(status, body));
        self
    }

    /// Answers with a `Status` failure: `Conflict` for 409, `InternalError` otherwise.
    pub fn fail(self, code: u16) -> Expect {
        let reason = if code == 409 {
            "Conflict"
        } else {
            "InternalError"
        };
        self.answer(
            code,
            api_status(code, reason, &format!("mock answer {code}")),
        )
    }

    /// Asserts `seen` is this request (`i` numbers it in messages) and returns the answer.
    fn verify(self, i: usize, seen: &Seen) -> Reply {
        assert_eq!(
            (&seen.method, seen.path.as_str()),
            (&self.method, self.path.as_str()),
            "request {i}"
        );
        match &self.query {
            Query::Any => {}
            Query::Has(parts) => {
                for part in parts {
                    assert!(
                        seen.query.split('&').any(|q| q == part),
                        "request {i} {} {}: query {:?} lacks {part}",
                        seen.method,
                        seen.path,
                        seen.query
                    );
                }
            }
            Query::Exactly(pairs) => assert_eq!(&seen.query_pairs(), pairs, "request {i} query"),
        }
        if let Some(wanted) = &self.content_type {
            assert_eq!(
                seen.header("content-type"),
                Some(wanted.as_str()),
                "request {i} content type"
            );
        }
        if !seen.bytes.is_empty() {
            serde_json::from_slice::<Value>(&seen.bytes)
                .unwrap_or_else(|e| panic!("request {i} has a body that is not JSON: {e}"));
        }
        match self.body {
            BodyRule::Any => {}
            BodyRule::Empty => assert!(seen.bytes.is_empty(), "request {i} has no body"),
            BodyRule::Exactly(body) => {
                let sent: Value = serde_json::from_slice(&seen.bytes).expect("a JSON body");
                assert_eq!(sent, body, "request {i} body");
            }
        }
        for check in self.checks {
            check(seen);
        }
        (self.respond)(seen)
    }
}

/// Answers one request: hand it the reply.
pub struct Responder(SendResponse<Response<Body>>);

impl Responder {
    pub fn send(self, reply: Reply) {
        self.0.send_response(reply.into_response());
    }
}

/// The requests a serving verifier saw, in order.
pub type RequestLog = Arc<Mutex<Vec<Seen>>>;

/// The API server's end of a mocked `kube::Client`.
pub struct ApiServerVerifier(ApiHandle);

impl ApiServerVerifier {
    /// A client and the verifier that answers it.
    pub fn new() -> (Client, ApiServerVerifier) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(service, "default"), ApiServerVerifier(handle))
    }

    /// The next request and its responder; `None` once every client is gone.
    pub async fn next(&mut self) -> Option<(Seen, Responder)> {
        let (request, send) = self.0.next_request().await?;
        Some((Seen::read(request).await, Responder(send)))
    }

    /// Answers the next request, which must be `expected`; returns its body.
    pub async fn expect(&mut self, i: usize, expected: Expect) -> Value {
        let Some((seen, responder)) = self.next().await else {
            panic!(
                "request {i} ({} {}) was never sent",
                expected.method, expected.path
            );
        };
        responder.send(expected.verify(i, &seen));
        seen.body
    }

    /// Plays `scenario` in order, then fails on any further request (waiting until every
    /// client is dropped). Returns the bodies received, in order.
    pub async fn run(mut self, scenario: Vec<Expect>) -> Vec<Value> {
        let mut bodies = Vec::new();
        for (i, expected) in scenario.into_iter().enumerate() {
            bodies.push(self.expect(i, expected).await);
        }
        if let Some((seen, _)) = self.next().await {
            panic!(
                "unexpected request: {} {}?{}",
                seen.method, seen.path, seen.query
            );
        }
        bodies
    }

    /// [`run`](Self::run) on a task of its own.
    pub fn spawn(self, scenario: Vec<Expect>) -> tokio::task::JoinHandle<Vec<Value>> {
        tokio::spawn(self.run(scenario))
    }

    /// Answers every request with `handler` on a task of its own, until every client is
    /// dropped; returns the log of what it saw.
    pub fn serve(self, mut handler: impl FnMut(&Seen) -> Reply + Send + 'static) -> RequestLog {
        let log = RequestLog::default();
        let kept = Arc::clone(&log);
        let mut verifier = self;
        tokio::spawn(async move {
            while let Some((seen, responder)) = verifier.next().await {
                let reply = handler(&seen);
                kept.lock().expect("the log").push(seen);
                responder.send(reply);
            }
        });
        log
    }
}

/// Runs `op` with a client whose API server expects exactly `scenario`, in order, and no other
/// request; returns what `op` returned once the verifier is satisfied.
pub async fn scenario<T, F>(scenario: Vec<Expect>, op: impl FnOnce(Client) -> F) -> T
where
    F: std::future::Future<Output = T>,
{
    let (client, verifier) = ApiServerVerifier::new();
    let verifier = verifier.spawn(scenario);
    let result = op(client).await;
    verifier.await.expect("the API server saw what it expected");
    result
}
