//! The HTTP check: GET or POST a URL and read one number or boolean from its JSON answer with
//! an RFC 9535 JSONPath expression.
//!
//! | answer | observation |
//! |---|---|
//! | a number | that value |
//! | `true` / `false` | 1 / 0 (with no bounds given the gate holds the value to `min: 1`, so `false` fails) |
//! | `null` | no data |
//! | no match, several matches, a string, an array or an object | error |
//! | a non-2xx status, a body that is not JSON or larger than 1 MiB, a timeout (default 10 s) | error |
//!
//! No read-out channel: an error names the status code, where the JSON stopped parsing (line
//! and column), the kind of value selected, or a fixed message ("JSONPath matched nothing",
//! "value is not a number"); never any text of the answer, so an address a Rollout names
//! cannot make its answer appear in status, Events, notifications or logs.

use reqwest::header;
use serde_json::Value;
use serde_json_path::JsonPath;
use tracing::{debug, warn};

use crate::api::{HttpGate, HttpMethod};
use crate::engine::Observation;
use crate::net::{AddressError, BodyError, GuardedClient, describe, read_capped, timeout_of};

/// Largest answer read.
pub const BODY_CAP: usize = 1024 * 1024;

/// Why a check yields no value.
#[derive(Debug, thiserror::Error)]
pub enum HttpCheckError {
    /// The URL does not parse.
    #[error("http.url {url:?} is not a URL: {reason}")]
    Url {
        /// The URL as written.
        url: String,
        /// The parser's message.
        reason: String,
    },
    /// The URL is outside what the operator allows.
    #[error(transparent)]
    NotAllowed(#[from] AddressError),
    /// The JSONPath does not parse.
    #[error("http.jsonPath {path:?} is not RFC 9535 JSONPath: {reason}")]
    Path {
        /// The expression.
        path: String,
        /// The parser's message.
        reason: String,
    },
    /// The gate's timeout is unusable.
    #[error("http.timeout: {0}")]
    Timeout(String),
    /// No answer in time.
    #[error("{method} {url} timed out after {timeout:?}")]
    TimedOut {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The timeout.
        timeout: std::time::Duration,
    },
    /// The request failed before an answer.
    #[error("{method} {url} failed: {reason}")]
    Transport {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// A non-2xx answer.
    #[error("{method} {url} answered HTTP {status}")]
    Status {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The body is too large, or broke off.
    #[error("{method} {url}: {source}")]
    Body {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// What went wrong.
        source: BodyError,
    },
    /// The body is not JSON.
    #[error(
        "{method} {url} answered something that is not JSON (it stops parsing at line {line}, \
         column {column})"
    )]
    NotJson {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The line where parsing stopped.
        line: usize,
        /// The column where parsing stopped.
        column: usize,
    },
    /// The path selects nothing.
    #[error("JSONPath matched nothing: jsonPath {path} in the answer of {url}")]
    NoMatch {
        /// The expression.
        path: String,
        /// The URL.
        url: String,
    },
    /// The path selects more than one value.
    #[error(
        "jsonPath {path} matched {count} values in the answer of {url}; make it select exactly one"
    )]
    SeveralMatches {
        /// The expression.
        path: String,
        /// The URL.
        url: String,
        /// How many it matched.
        count: usize,
    },
    /// The selected value is neither a number nor a boolean.
    #[error(
        "value is not a number: jsonPath {path} selected {kind} in the answer of {url}, not a \
         number or a boolean"
    )]
    NotANumber {
        /// The expression.
        path: String,
        /// The URL.
        url: String,
        /// What kind of value it selected: `a string`, `an array` or `an object`.
        kind: &'static str,
    },
}

/// Makes the check once, through a client that enforces the address policy for a Rollout of
/// `namespace`, and returns its observation.
pub async fn check(http: &GuardedClient, gate: &HttpGate, namespace: &str) -> Observation {
    match run(http, gate, namespace).await {
        Ok(observation) => {
            debug!(url = %gate.url, ?observation, "HTTP check");
            observation
        }
        Err(error) => {
            warn!(url = %gate.url, %error, "HTTP check failed");
            Observation::Error(error.to_string())
        }
    }
}

async fn run(
    http: &GuardedClient,
    gate: &HttpGate,
    namespace: &str,
) -> Result<Observation, HttpCheckError> {
    let target = reqwest::Url::parse(&gate.url).map_err(|e| HttpCheckError::Url {
        url: gate.url.clone(),
        reason: e.to_string(),
    })?;
    let target = http.admit(&target, Some(namespace))?;
    let http = http.http();
    let path = JsonPath::parse(&gate.json_path).map_err(|e| HttpCheckError::Path {
        path: gate.json_path.clone(),
        reason: e.to_string(),
    })?;
    let timeout = timeout_of(gate.timeout).map_err(HttpCheckError::Timeout)?;
    let url = gate.url.clone();
    let (method, request) = match gate.method {
        HttpMethod::Get => ("GET", http.get(target)),
        HttpMethod::Post => {
            let request = http
                .post(target)
                .header(header::CONTENT_TYPE, "application/json")
                .body(gate.body.clone().unwrap_or_default());
            ("POST", request)
        }
    };
    let request = request
        .header(header::ACCEPT, "application/json")
        .timeout(timeout);
    let exchange = async {
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                HttpCheckError::TimedOut {
                    method,
                    url: url.clone(),
                    timeout,
                }
            } else {
                HttpCheckError::Transport {
                    method,
                    url: url.clone(),
                    reason: describe(&e),
                }
            }
        })?;
        let status = response.status();
        let body =
            read_capped(response, BODY_CAP)
                .await
                .map_err(|source| HttpCheckError::Body {
                    method,
                    url: url.clone(),
                    source,
                })?;
        Ok::<_, HttpCheckError>((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HttpCheckError::TimedOut {
            method,
            url: url.clone(),
            timeout,
        })??;
    read_answer(gate, &path, method, url, status.as_u16(), &body)
}

/// Reads the check's value from an answer: its status and body, the gate (for its JSONPath as
/// written) and the parsed `path`. Errors name the URL and, for the answer, the JSONPath or
/// where the JSON stopped parsing, never the answer's text.
pub fn read_answer(
    gate: &HttpGate,
    path: &JsonPath,
    method: &'static str,
    url: String,
    status: u16,
    body: &[u8],
) -> Result<Observation, HttpCheckError> {
    if !(200..300).contains(&status) {
        return Err(HttpCheckError::Status {
            method,
            url,
            status,
        });
    }
    let answer: Value = serde_json::from_slice(body).map_err(|e| HttpCheckError::NotJson {
        method,
        url: url.clone(),
        line: e.line(),
        column: e.column(),
    })?;
    let nodes = path.query(&answer).all();
    match nodes.as_slice() {
        [] => Err(HttpCheckError::NoMatch {
            path: gate.json_path.clone(),
            url,
        }),
        [Value::Number(n)] => Ok(n.as_f64().map_or(Observation::NoData, Observation::Value)),
        [Value::Bool(b)] => Ok(Observation::Value(if *b { 1.0 } else { 0.0 })),
        [Value::Null] => Ok(Observation::NoData),
        [other] => Err(HttpCheckError::NotANumber {
            path: gate.json_path.clone(),
            url,
            kind: match other {
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                _ => "an object",
            },
        }),
        several => Err(HttpCheckError::SeveralMatches {
            path: gate.json_path.clone(),
            url,
            count: several.len(),
        }),
    }
}
