//! One OFREP single-flag evaluation: `POST {address}/ofrep/v1/evaluate/flags/{flag}` with
//! `{"context": {"targetingKey": key}}`.

use std::time::Duration;

use reqwest::{Url, header};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::net::{AddressError, BodyError, GuardedClient, describe, read_capped};
use crate::text;

/// Largest evaluation answer read; a flag's value is small.
const ANSWER_CAP: usize = 64 * 1024;

/// What the service answered for one key: the parts a user would see.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The variant served, when the service names it.
    pub variant: Option<String>,
    /// The value served; absent when the service defers to the code default.
    pub value: Option<Value>,
}

impl Answer {
    /// Whether the answer gives the flag: the variant equals `on_variant` when one is given,
    /// otherwise the value is `true` or the variant is `on`.
    pub fn has_flag(&self, on_variant: Option<&str>) -> bool {
        match on_variant {
            Some(on) => self.variant.as_deref() == Some(on),
            None => self.value == Some(Value::Bool(true)) || self.variant.as_deref() == Some("on"),
        }
    }
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum OfrepError {
    /// The address is outside what the operator allows.
    #[error(transparent)]
    NotAllowed(#[from] AddressError),
    /// The address and flag do not make a URL.
    #[error("address {address:?} is not a usable URL: {reason}")]
    Address {
        /// The gate's address.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request did not get an answer (refused, reset, DNS, TLS, timeout).
    #[error("POST {url} failed: {reason} (is the OFREP service up and the address right?)")]
    Transport {
        /// The URL called.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The request took longer than the gate's timeout.
    #[error("POST {url} timed out after {timeout:?}")]
    Timeout {
        /// The URL called.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The service answered with an error status.
    #[error("POST {url} answered HTTP {status}{detail}")]
    Status {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// `: ` and the OFREP `errorCode` (capped, stripped), or nothing: the service's other
        /// text (`errorDetails`, the body) is never kept.
        detail: String,
    },
    /// The answer is not an OFREP evaluation.
    #[error("POST {url} answered something that is not an OFREP evaluation: {reason}")]
    BadAnswer {
        /// The URL called.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The OFREP evaluation success and failure bodies, leniently.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    error_code: Option<String>,
}

/// Calls one OFREP service for one flag.
#[derive(Clone, Debug)]
pub struct OfrepClient {
    http: reqwest::Client,
    url: Url,
    timeout: Duration,
}

impl OfrepClient {
    /// A client for `flag` at the service `address` (its base URL), if the policy of `http`
    /// allows it for a Rollout of `namespace`.
    pub fn new(
        http: &GuardedClient,
        address: &str,
        flag: &str,
        timeout: Duration,
        namespace: Option<&str>,
    ) -> Result<Self, OfrepError> {
        let bad = |reason: &str| OfrepError::Address {
            address: address.to_string(),
            reason: reason.to_string(),
        };
        let mut url = Url::parse(address).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        url.path_segments_mut()
            .map_err(|()| bad("it cannot be a base URL"))?
            .pop_if_empty()
            .extend(["ofrep", "v1", "evaluate", "flags", flag]);
        let url = http.admit(&url, namespace)?;
        Ok(Self {
            http: http.http().clone(),
            url,
            timeout,
        })
    }

    /// The URL evaluations are posted to.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Evaluates the flag for one targeting key. Every call opens its own connection
    /// (`Connection: close`), so the calls spread over every replica behind a Service.
    pub async fn evaluate(&self, targeting_key: &str) -> Result<Answer, OfrepError> {
        let url = self.url.to_string();
        let request = self
            .http
            .post(self.url.clone())
            .header(header::CONNECTION, "close")
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/json")
            .body(json!({"context": {"targetingKey": targeting_key}}).to_string())
            .timeout(self.timeout)
            .send();
        let timed_out = || OfrepError::Timeout {
            url: url.clone(),
            timeout: self.timeout,
        };
        let response = match tokio::time::timeout(self.timeout, request).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) if e.is_timeout() => return Err(timed_out()),
            Ok(Err(e)) => {
                return Err(OfrepError::Transport {
                    url,
                    reason: describe(&e),
                });
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let bytes = match tokio::time::timeout(self.timeout, read_capped(response, ANSWER_CAP))
            .await
        {
            Err(_) => return Err(timed_out()),
            Ok(Err(e @ BodyError::TooLarge { .. })) => {
                return Err(OfrepError::BadAnswer {
                    url,
                    reason: e.to_string(),
                });
            }
            Ok(Err(BodyError::Read(reason))) => return Err(OfrepError::Transport { url, reason }),
            Ok(Ok(bytes)) => bytes,
        };
        parse_evaluation(&url, status.as_u16(), &bytes)
    }
}

/// Reads an OFREP evaluation answer: the variant and value, or an error naming the URL and
/// what was wrong (the service's error code, or where the answer stopped being OFREP).
pub fn parse_evaluation(url: &str, status: u16, bytes: &[u8]) -> Result<Answer, OfrepError> {
    let url = url.to_owned();
    let parsed = serde_json::from_slice::<Body>(bytes);
    if !(200..300).contains(&status) {
        let detail = match parsed {
            Ok(Body {
                error_code: Some(code),
                ..
            }) => error_detail(&code),
            _ => String::new(),
        };
        return Err(OfrepError::Status {
            url,
            status,
            detail,
        });
    }
    let body = parsed.map_err(|e| OfrepError::BadAnswer {
        url: url.clone(),
        reason: format!(
            "not the JSON of an evaluation (line {}, column {})",
            e.line(),
            e.column()
        ),
    })?;
    if let Some(code) = body.error_code {
        return Err(OfrepError::Status {
            url,
            status,
            detail: error_detail(&code),
        });
    }
    if body.variant.is_none() && body.value.is_none() {
        return Err(OfrepError::BadAnswer {
            url,
            reason: "it has neither a value nor a variant".to_string(),
        });
    }
    Ok(Answer {
        variant: body.variant,
        value: body.value,
    })
}

/// Whether an observation's error message says the OFREP service answered with the error
/// code `FLAG_NOT_FOUND` (as [`OfrepError::Status`] words it): the flag does not exist in
/// the evaluator. Text the service sent in its details cannot make this true: only the code
/// right after the status counts.
pub fn says_flag_not_found(message: &str) -> bool {
    const ANSWERED: &str = " answered HTTP ";
    let Some(at) = message.find(ANSWERED) else {
        return false;
    };
    let rest = message[at + ANSWERED.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix(": FLAG_NOT_FOUND") else {
        return false;
    };
    rest.is_empty() || rest.starts_with(" (")
}

/// An OFREP error code as a message suffix, capped and stripped: the code is the structured
/// field OFREP defines (`FLAG_NOT_FOUND`, `PARSE_ERROR`, …); `errorDetails` is free text from
/// the service and never kept.
fn error_detail(code: &str) -> String {
    format!(": {}", text::remote(code, text::QUOTE))
}
