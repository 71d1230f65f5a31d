//! A webhook target: an HTTP endpoint (a SaaS or database-backed flag store) that answers
//! `GET url` with `{"percent": N}` and accepts `PUT url` with the same body.
//!
//! Requests carry the headers of the Secret the target references (the caller reads the
//! Secret and passes its data; values are never logged or shown by `Debug`), go through the
//! operator's address check and guarded client when the caller gives them
//! ([`WebhookAccess::through`]; a refused URL is [`TargetError::AddressRefused`]), time out after
//! the target's `timeout` (default 10 s), never follow redirects (a redirect is an error
//! naming where it pointed), and read at most [`BODY_CAP`] bytes of an answer. Any 2xx status
//! is success; anything else is an error with the status and an excerpt of the body.
//!
//! `{"percent": null}` reads as "no percent set". A percent must be a whole number from 0 to
//! 100 (`5`, not `5.0` or `"5"`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use k8s_openapi::ByteString;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Client, Method, Response, Url};
use serde_json::{Value, json};
use tracing::debug;

use super::{TargetError, WriteMode, WriteOutcome};
use crate::api::WebhookTarget;

/// Time allowed for one request when the target names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer read.
pub const BODY_CAP: usize = 64 * 1024;

/// How much of an answer a message quotes.
const EXCERPT: usize = 200;

/// Checks a URL before a request to it (the operator's address policy); the error says why
/// it is refused and how to allow it.
pub type UrlCheck = Arc<dyn Fn(&Url) -> Result<(), String> + Send + Sync>;

/// How a webhook target reaches its endpoint: the headers of the Secret it references and,
/// when the controller enforces an address policy, the HTTP client that enforces it after DNS
/// and the check of each URL before a request. `Debug` shows the header names only.
///
/// Without [`WebhookAccess::through`], requests go through a shared client that follows no
/// redirect but checks no address: the controller should always pass its guarded client.
#[derive(Clone, Default)]
pub struct WebhookAccess {
    headers: HeaderMap,
    client: Option<Client>,
    check: Option<UrlCheck>,
    writer: Option<WriteIdentity>,
}

/// Who writes a webhook target, sent with every PUT so the receiver can tell writes apart and
/// drop a stale one: `{"percent": N, "rollout": "NS/NAME", "uid": "…", "sequence": K}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteIdentity {
    /// `namespace/name` of the Rollout.
    pub rollout: String,
    /// The Rollout's uid (a Rollout deleted and created again starts a new sequence).
    pub uid: String,
    /// `status.targetSequence`: grows with every new percent; a repair resends the same one.
    pub sequence: u64,
}

/// The name the controller first used for [`WebhookAccess`].
pub type WebhookHeaders = WebhookAccess;

impl fmt::Debug for WebhookAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookAccess")
            .field("headers", &self.names().collect::<Vec<_>>())
            .field("own_client", &self.client.is_some())
            .field("url_check", &self.check.is_some())
            .field("writer", &self.writer)
            .finish()
    }
}

impl WebhookAccess {
    /// No headers, the shared client, no address check.
    pub fn none() -> Self {
        Self::default()
    }

    /// One header per key of a Secret's `data` (the key is the header name, the value its
    /// value). `secret` names the Secret in messages; a bad value is reported by key only.
    pub fn from_secret_data(
        secret: &str,
        data: &BTreeMap<String, ByteString>,
    ) -> Result<Self, TargetError> {
        let mut headers = HeaderMap::new();
        for (key, ByteString(bytes)) in data {
            let name = HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
                TargetError::Invalid(format!(
                    "Secret {secret} key {key:?} is not an HTTP header name"
                ))
            })?;
            let mut value = HeaderValue::from_bytes(bytes).map_err(|_| {
                TargetError::Invalid(format!(
                    "Secret {secret} key {key:?} is not a valid HTTP header value \
                     (line breaks or control characters)"
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Self {
            headers,
            ..Self::default()
        })
    }

    /// Sends requests through `client` (which should follow no redirect and check resolved
    /// addresses) after `check` accepts the URL.
    pub fn through(mut self, client: Client, check: UrlCheck) -> Self {
        self.client = Some(client);
        self.check = Some(check);
        self
    }

    /// PUTs name `writer` (see [`WriteIdentity`]).
    pub fn written_by(mut self, writer: WriteIdentity) -> Self {
        self.writer = Some(writer);
        self
    }

    /// The header names, for diagnostics.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.headers.keys().map(HeaderName::as_str)
    }
}

/// The timeout the target asks for, or the default.
pub fn timeout_of(target: &WebhookTarget) -> Result<Duration, TargetError> {
    match target.timeout {
        None => Ok(DEFAULT_TIMEOUT),
        Some(d) if d.is_negative() || Duration::from(d).is_zero() => Err(TargetError::Invalid(
            format!("webhook.timeout must be positive, got {d}"),
        )),
        Some(d) => Ok(d.into()),
    }
}

/// The percent the webhook reports: `None` for `{"percent": null}`.
pub async fn read(
    target: &WebhookTarget,
    access: &WebhookAccess,
) -> Result<Option<u8>, TargetError> {
    let body = request(target, access, Method::GET, None).await?;
    parse_answer(&body).map_err(|reason| http_error("GET", &target.url, reason))
}

/// Reads the webhook's percent and, when it differs, PUTs `percent`. A webhook has no dry run:
/// [`WriteMode::DryRun`] only checks that the GET answers with a readable percent.
pub async fn write(
    target: &WebhookTarget,
    access: &WebhookAccess,
    percent: u8,
    mode: WriteMode,
) -> Result<WriteOutcome, TargetError> {
    if percent > 100 {
        return Err(TargetError::Invalid(format!(
            "percent {percent} is above 100"
        )));
    }
    let current = read(target, access).await?;
    if mode == WriteMode::DryRun {
        return Ok(WriteOutcome::Checked);
    }
    if current == Some(percent) {
        debug!(url = %target.url, percent, "webhook already holds the percent");
        return Ok(WriteOutcome::Unchanged);
    }
    let body = put_body(percent, access.writer.as_ref()).to_string();
    request(target, access, Method::PUT, Some(body)).await?;
    debug!(url = %target.url, percent, "wrote webhook target");
    Ok(WriteOutcome::Written)
}

/// The body of a PUT: `{"percent": N}`, with the writer's `rollout`, `uid` and `sequence`
/// when known.
pub fn put_body(percent: u8, writer: Option<&WriteIdentity>) -> Value {
    match writer {
        Some(w) => json!({
            "percent": percent,
            "rollout": w.rollout,
            "uid": w.uid,
            "sequence": w.sequence,
        }),
        None => json!({ "percent": percent }),
    }
}

/// `{"percent": N}` → `N`; `{"percent": null}` → `None`.
pub fn parse_answer(body: &[u8]) -> Result<Option<u8>, String> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "answer is not JSON ({e}): {}",
            excerpt(&String::from_utf8_lossy(body))
        )
    })?;
    let Some(percent) = answer.as_object().and_then(|o| o.get("percent")) else {
        return Err(format!(
            "answer has no \"percent\" field: {}",
            excerpt(&answer.to_string())
        ));
    };
    match percent {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(p) if p <= 100 => Ok(Some(p as u8)),
            _ => Err(format!(
                "\"percent\" is {n}, expected a whole number from 0 to 100"
            )),
        },
        other => Err(format!(
            "\"percent\" is {}, expected a whole number from 0 to 100",
            excerpt(&other.to_string())
        )),
    }
}

fn shared_client() -> Result<&'static Client, TargetError> {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| TargetError::Invalid(format!("cannot build the HTTP client: {e}")))?;
    Ok(CLIENT.get_or_init(|| client))
}

async fn request(
    target: &WebhookTarget,
    access: &WebhookAccess,
    method: Method,
    body: Option<String>,
) -> Result<Vec<u8>, TargetError> {
    let method_name = if method == Method::GET { "GET" } else { "PUT" };
    let url = Url::parse(&target.url)
        .map_err(|e| TargetError::Invalid(format!("webhook.url {:?}: {e}", target.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Invalid(format!(
            "webhook.url {:?} must be http or https",
            target.url
        )));
    }
    if let Some(check) = &access.check {
        check(&url).map_err(|reason| TargetError::AddressRefused {
            url: target.url.clone(),
            reason,
        })?;
    }
    let timeout = timeout_of(target)?;
    let client = match &access.client {
        Some(client) => client,
        None => shared_client()?,
    };
    let mut builder = client
        .request(method, url)
        .timeout(timeout)
        .headers(access.headers.clone());
    if let Some(body) = body {
        builder = builder.header(CONTENT_TYPE, "application/json").body(body);
    }
    let response = builder.send().await.map_err(|e| {
        let reason = if e.is_timeout() {
            format!("timed out after {timeout:?}")
        } else {
            describe(&e)
        };
        http_error(method_name, &target.url, reason)
    })?;
    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(excerpt)
            .unwrap_or_default();
        return Err(http_error(
            method_name,
            &target.url,
            format!(
                "answered HTTP {} redirecting to {location:?}; redirects are not followed",
                status.as_u16()
            ),
        ));
    }
    let body = read_capped(response)
        .await
        .map_err(|reason| http_error(method_name, &target.url, reason))?;
    if !status.is_success() {
        return Err(http_error(
            method_name,
            &target.url,
            format!(
                "answered HTTP {}: {}",
                status.as_u16(),
                excerpt(&String::from_utf8_lossy(&body))
            ),
        ));
    }
    Ok(body)
}

async fn read_capped(mut response: Response) -> Result<Vec<u8>, String> {
    let too_large = || format!("the answer is larger than {BODY_CAP} bytes");
    if response
        .content_length()
        .is_some_and(|len| len > BODY_CAP as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer failed: {}", describe(&e)))?
    {
        if body.len() + chunk.len() > BODY_CAP {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error with its causes, without the URL reqwest appends (messages name it once).
fn describe(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut message = match err.url() {
        Some(url) => err.to_string().replace(&format!(" for url ({url})"), ""),
        None => err.to_string(),
    };
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn http_error(method: &'static str, url: &str, reason: String) -> TargetError {
    TargetError::Http {
        method,
        url: url.to_owned(),
        reason,
    }
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(EXCERPT)
        .collect();
    if text.chars().nth(EXCERPT).is_some() {
        format!("{clean}…")
    } else {
        clean
    }
}
