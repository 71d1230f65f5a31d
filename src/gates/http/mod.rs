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

use reqwest::header;
use serde_json::Value;
use serde_json_path::JsonPath;
use tracing::{debug, warn};

use super::net::{
    AddressError, BodyError, GuardedClient, describe, excerpt, read_capped, timeout_of,
};
use crate::api::{HttpGate, HttpMethod};
use crate::engine::Observation;

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
    #[error("{method} {url} answered HTTP {status}: {body}")]
    Status {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// An excerpt of the body.
        body: String,
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
    #[error("{method} {url} answered something that is not JSON ({reason}): {body:?}")]
    NotJson {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The parser's message.
        reason: String,
        /// An excerpt of the body.
        body: String,
    },
    /// The path selects nothing.
    #[error("jsonPath {path} matched nothing in the answer of {url}: {body}")]
    NoMatch {
        /// The expression.
        path: String,
        /// The URL.
        url: String,
        /// An excerpt of the answer.
        body: String,
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
    #[error("jsonPath {path} selected {found} in the answer of {url}, not a number or a boolean")]
    NotANumber {
        /// The expression.
        path: String,
        /// The URL.
        url: String,
        /// An excerpt of what it selected.
        found: String,
    },
}

/// Makes the check once, through a client that enforces the address policy, and returns its
/// observation.
pub async fn check(http: &GuardedClient, gate: &HttpGate) -> Observation {
    match run(http, gate).await {
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

async fn run(http: &GuardedClient, gate: &HttpGate) -> Result<Observation, HttpCheckError> {
    let target = reqwest::Url::parse(&gate.url).map_err(|e| HttpCheckError::Url {
        url: gate.url.clone(),
        reason: e.to_string(),
    })?;
    http.check(&target)?;
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
/// where the JSON stopped parsing.
pub fn read_answer(
    gate: &HttpGate,
    path: &JsonPath,
    method: &'static str,
    url: String,
    status: u16,
    body: &[u8],
) -> Result<Observation, HttpCheckError> {
    let text = String::from_utf8_lossy(body);
    if !(200..300).contains(&status) {
        return Err(HttpCheckError::Status {
            method,
            url,
            status,
            body: excerpt(&text, 200),
        });
    }
    let answer: Value = serde_json::from_slice(body).map_err(|e| HttpCheckError::NotJson {
        method,
        url: url.clone(),
        reason: excerpt(&e.to_string(), 120),
        body: excerpt(&text, 80),
    })?;
    let nodes = path.query(&answer).all();
    match nodes.as_slice() {
        [] => Err(HttpCheckError::NoMatch {
            path: gate.json_path.clone(),
            url,
            body: excerpt(&text, 200),
        }),
        [Value::Number(n)] => Ok(n.as_f64().map_or(Observation::NoData, Observation::Value)),
        [Value::Bool(b)] => Ok(Observation::Value(if *b { 1.0 } else { 0.0 })),
        [Value::Null] => Ok(Observation::NoData),
        [other] => Err(HttpCheckError::NotANumber {
            path: gate.json_path.clone(),
            url,
            found: excerpt(&other.to_string(), 80),
        }),
        several => Err(HttpCheckError::SeveralMatches {
            path: gate.json_path.clone(),
            url,
            count: several.len(),
        }),
    }
}
