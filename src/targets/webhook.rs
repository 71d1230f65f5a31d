//! A webhook target: an HTTP endpoint (a SaaS or database-backed flag store) that answers
//! `GET url` with `{"percent": N}` and accepts `PUT url` with the same body.
//!
//! Requests carry the headers of the Secret the target references (the caller reads the
//! Secret and passes its data; values are never logged or shown by `Debug`), go through the
//! operator's address check and guarded client when the caller gives them
//! ([`WebhookAccess::through`]; a refused URL is [`TargetError::AddressRefused`]), time out after
//! the target's `timeout` (default 10 s), never follow redirects, and read at most
//! [`BODY_CAP`] bytes of an answer. Headers from a Secret are never sent over plain `http://`
//! unless the caller allows it ([`WebhookAccess::allowing_insecure_credentials`], the
//! controller's `--allow-insecure-credentials`). Any 2xx status is success; anything else is
//! an error with the status code.
//!
//! No read-out channel: errors carry status codes, where a JSON answer stopped parsing, the
//! kind of a wrong `percent`, and fixed messages; never text of the answer (nor a redirect's
//! `Location`), so the endpoint's words never reach status, Events or logs.
//!
//! `{"percent": null}` reads as "no percent set". A percent is a number from 0 to 100 with at
//! most two decimals (`5`, `5.0`, `0.5`; not `"5"` or `0.001`); rollgate writes `5` or `0.5`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use k8s_openapi::ByteString;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, Url};
use serde_json::{Value, json};
use tracing::debug;

use super::{TargetError, WriteMode, WriteOutcome};
use crate::api::{Percent, WebhookTarget};
use crate::net::{BodyError, describe, read_capped};

/// Time allowed for one request when the target names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer read.
pub const BODY_CAP: usize = 64 * 1024;

/// Checks a URL before a request to it (the operator's address policy, for the Rollout's
/// namespace) and returns the URL to request (a one-label Service name made fully qualified);
/// the error says why it is refused and how to allow it.
pub type UrlCheck = Arc<dyn Fn(&Url) -> Result<Url, String> + Send + Sync>;

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
    insecure_credentials: bool,
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
            .field("insecure_credentials", &self.insecure_credentials)
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

    /// Lets the Secret's headers travel over plain `http://` when `allow` is true (the
    /// operator's `--allow-insecure-credentials`); by default they travel over `https://` only.
    pub fn allowing_insecure_credentials(mut self, allow: bool) -> Self {
        self.insecure_credentials = allow;
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
) -> Result<Option<Percent>, TargetError> {
    let body = request(target, access, Method::GET, None).await?;
    parse_answer(&body).map_err(|reason| http_error("GET", &target.url, reason))
}

/// Reads the webhook's percent and, when it differs, PUTs `percent`. A webhook has no dry run:
/// [`WriteMode::DryRun`] only checks that the GET answers with a readable percent.
pub async fn write(
    target: &WebhookTarget,
    access: &WebhookAccess,
    percent: Percent,
    mode: WriteMode,
) -> Result<WriteOutcome, TargetError> {
    if percent > Percent::HUNDRED {
        return Err(TargetError::Invalid(format!(
            "percent {percent} is above 100"
        )));
    }
    let current = read(target, access).await?;
    if mode == WriteMode::DryRun {
        return Ok(WriteOutcome::Checked);
    }
    if current == Some(percent) {
        debug!(url = %target.url, %percent, "webhook already holds the percent");
        return Ok(WriteOutcome::Unchanged);
    }
    let body = put_body(percent, access.writer.as_ref()).to_string();
    request(target, access, Method::PUT, Some(body)).await?;
    debug!(url = %target.url, %percent, "wrote webhook target");
    Ok(WriteOutcome::Written)
}

/// The body of a PUT: `{"percent": N}`, with the writer's `rollout`, `uid` and `sequence`
/// when known.
pub fn put_body(percent: Percent, writer: Option<&WriteIdentity>) -> Value {
    match writer {
        Some(w) => json!({
            "percent": percent.to_json(),
            "rollout": w.rollout,
            "uid": w.uid,
            "sequence": w.sequence,
        }),
        None => json!({ "percent": percent.to_json() }),
    }
}

/// `{"percent": N}` → `N` (an integer or a number with up to two decimals, such as `0.5`);
/// `{"percent": null}` → `None`. Errors quote nothing of the answer but a number.
pub fn parse_answer(body: &[u8]) -> Result<Option<Percent>, String> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "answer is not JSON (it stops parsing at line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let Some(percent) = answer.as_object().and_then(|o| o.get("percent")) else {
        return Err("answer has no \"percent\" field".to_owned());
    };
    match percent {
        Value::Null => Ok(None),
        Value::Number(n) => match Percent::from_json(percent) {
            Ok(p) => Ok(Some(p)),
            Err(_) => Err(format!(
                "\"percent\" is {n}, expected a number from 0 to 100 with at most two decimals"
            )),
        },
        other => Err(format!(
            "\"percent\" is {}, expected a number from 0 to 100 with at most two decimals",
            match other {
                Value::String(_) => "a string",
                Value::Bool(_) => "a boolean",
                Value::Array(_) => "an array",
                _ => "an object",
            }
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
    let url = match &access.check {
        Some(check) => check(&url).map_err(|reason| TargetError::AddressRefused {
            url: target.url.clone(),
            reason,
        })?,
        None => url,
    };
    if !access.headers.is_empty() && url.scheme() != "https" && !access.insecure_credentials {
        return Err(TargetError::Invalid(format!(
            "webhook.headersSecret: the Secret's headers are not sent over plain http:// ({}); \
             use an https:// URL, or an operator can allow it with --allow-insecure-credentials",
            crate::net::url_origin(&url)
        )));
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
        return Err(http_error(
            method_name,
            &target.url,
            format!(
                "answered HTTP {} (a redirect); redirects are not followed",
                status.as_u16()
            ),
        ));
    }
    if !status.is_success() {
        return Err(http_error(
            method_name,
            &target.url,
            format!("answered HTTP {}", status.as_u16()),
        ));
    }
    read_capped(response, BODY_CAP)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { cap } => format!("the answer is larger than {cap} bytes"),
            BodyError::Read(cause) => format!("reading the answer failed: {cause}"),
        })
        .map_err(|reason| http_error(method_name, &target.url, reason))
}

fn http_error(method: &'static str, url: &str, reason: String) -> TargetError {
    TargetError::Http {
        method,
        url: url.to_owned(),
        reason,
    }
}
