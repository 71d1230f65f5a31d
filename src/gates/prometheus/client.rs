//! The HTTP client for instant queries: one POST to `/api/v1/query` per query, evaluated at a
//! given instant, answered within the timeout and within a size cap.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::QueryError;
use super::answer::{self, Answer};
use super::range::{Steps, parse_range};
use super::rules::{AlertingRule, parse_rules};
use super::settings::{PrometheusAuth, PrometheusEndpoint};
use crate::net::{AddressPolicy, BodyError, describe, guarded_builder, read_capped};

/// The largest answer read; a single-series instant query is a few hundred bytes.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// A client for one Prometheus endpoint. Cheap to clone; build it once per endpoint and reuse it.
#[derive(Clone, Debug)]
pub struct PrometheusClient {
    http: reqwest::Client,
    auth: PrometheusAuth,
    address: String,
    query_url: String,
    rules_url: String,
    range_url: String,
    timeout: Duration,
    /// Whether errors keep no text of the answer (an address a Rollout names).
    withhold: bool,
}

/// A client that cannot be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not an http(s) URL.
    #[error("Prometheus address {0:?} must be an http:// or https:// URL")]
    Address(String),
    /// The address is outside what the operator allows.
    #[error(transparent)]
    NotAllowed(#[from] crate::net::AddressError),
    /// Credentials that cannot travel in an HTTP header (a line break, for example).
    #[error("the Prometheus {0} contains characters HTTP headers do not allow (a line break?)")]
    Credentials(&'static str),
    /// A header name or value HTTP does not allow.
    #[error("header {0:?} is not a valid HTTP header")]
    Header(String),
    /// A CA bundle that is not PEM.
    #[error("the CA bundle is not PEM certificates: {0}")]
    Ca(String),
    /// A client certificate and key that cannot be used.
    #[error("the client certificate and key cannot be used: {0}")]
    Identity(String),
    /// A TLS server name that is not a DNS name or an address.
    #[error("TLS server name {0:?} is not a DNS name or an IP address")]
    ServerName(String),
    /// A token file that cannot be read.
    #[error(transparent)]
    TokenFile(#[from] super::settings::TokenFileError),
    /// The HTTP client itself.
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

impl PrometheusClient {
    /// A client for `endpoint`, with its credentials, headers, TLS and timeout, reaching only
    /// what `policy` allows (checked on the address now and on every name it resolves to).
    pub fn new(
        endpoint: &PrometheusEndpoint,
        policy: &Arc<AddressPolicy>,
    ) -> Result<Self, ClientError> {
        let address = endpoint.address.trim_end_matches('/').to_owned();
        let url = Url::parse(&address)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| ClientError::Address(endpoint.address.clone()))?;
        policy.check_url(&url, None)?;
        let settings = &endpoint.settings;
        let mut headers = HeaderMap::new();
        for (name, value) in &settings.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ClientError::Header(name.clone()))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| ClientError::Header(name.to_string()))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        match &settings.auth {
            PrometheusAuth::None => {}
            PrometheusAuth::Bearer(token) => {
                HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| ClientError::Credentials("token"))?;
            }
            PrometheusAuth::BearerFile(file) => {
                // Read now so an unreadable file fails at start; read again when it changes.
                file.token()?;
            }
            PrometheusAuth::Basic { username, password } => {
                let bad = |text: &str| text.chars().any(char::is_control);
                if bad(username) || username.contains(':') {
                    return Err(ClientError::Credentials("username"));
                }
                if bad(password.expose()) {
                    return Err(ClientError::Credentials("password"));
                }
            }
        }
        let mut builder = guarded_builder(policy)
            .default_headers(headers)
            .connect_timeout(settings.timeout)
            .danger_accept_invalid_certs(settings.insecure_skip_verify);
        if let Some(name) = &settings.tls_server_name {
            let mut bundle = settings.ca_pem.clone().unwrap_or_default();
            if let Some(extra) = policy.extra_ca_pem() {
                bundle.push(b'\n');
                bundle.extend_from_slice(extra);
            }
            let config = super::tls::named_config(
                name,
                (!bundle.is_empty()).then_some(bundle.as_slice()),
                settings
                    .client_identity_pem
                    .as_ref()
                    .map(|pem| pem.expose().as_slice()),
            )?;
            builder = builder.use_preconfigured_tls(config);
        } else {
            if let Some(pem) = &settings.ca_pem {
                let certs = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|err| ClientError::Ca(err.to_string()))?;
                if certs.is_empty() {
                    return Err(ClientError::Ca("no certificate in the bundle".into()));
                }
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
            }
            if let Some(pem) = &settings.client_identity_pem {
                let identity = reqwest::Identity::from_pem(pem.expose())
                    .map_err(|err| ClientError::Identity(describe(&err)))?;
                builder = builder.identity(identity);
            }
        }
        let http = builder
            .build()
            .map_err(|err| ClientError::Build(describe(&err)))?;
        Ok(Self {
            http,
            auth: settings.auth.clone(),
            query_url: format!("{address}/api/v1/query"),
            rules_url: format!("{address}/api/v1/rules?type=alert"),
            range_url: format!("{address}/api/v1/query_range"),
            address,
            timeout: settings.timeout,
            withhold: false,
        })
    }

    /// The same client, its errors keeping no text of the answers (only the status,
    /// `errorType` and counts: [`QueryError::withholding_remote_text`]): for an address a
    /// Rollout names rather than the operator's own Prometheus.
    pub fn withholding_remote_text(mut self) -> Self {
        self.withhold = true;
        self
    }

    /// `error`, without the answer's text when this client withholds it.
    fn shown(&self, error: QueryError) -> QueryError {
        if self.withhold {
            error.withholding_remote_text()
        } else {
            error
        }
    }

    /// The base URL queried.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Evaluates `promql` at the instant `at`. The whole exchange, from connecting to the last
    /// byte, must end within the timeout; Prometheus is told the same timeout.
    pub async fn query(&self, promql: &str, at: Timestamp) -> Result<Answer, QueryError> {
        match tokio::time::timeout(self.timeout, self.exchange(promql, at)).await {
            Ok(result) => result.map_err(|e| self.shown(e)),
            Err(_) => Err(QueryError::Timeout {
                address: self.address.clone(),
                timeout: self.timeout,
            }),
        }
    }

    async fn exchange(&self, promql: &str, at: Timestamp) -> Result<Answer, QueryError> {
        let time = seconds(at.as_millisecond());
        tracing::debug!(address = %self.address, query = promql, %time, "Prometheus instant query");
        let (status, body) = self
            .post(&self.query_url, &[("query", promql), ("time", &time)])
            .await?;
        answer::parse(status, &body)
    }

    /// Evaluates `promql` at every instant of `steps` in one request to `/api/v1/query_range`:
    /// for each instant, what an instant query would have answered. Prometheus refuses more
    /// than 11,000 steps per request.
    pub async fn query_range(
        &self,
        promql: &str,
        steps: Steps,
    ) -> Result<Vec<Result<Answer, QueryError>>, QueryError> {
        let exchange = async {
            let last = steps.start_ms + steps.step_ms * (steps.count.max(1) as i64 - 1);
            let (start, end, step) = (
                seconds(steps.start_ms),
                seconds(last),
                seconds(steps.step_ms),
            );
            tracing::debug!(address = %self.address, query = promql, %start, %end, %step, "Prometheus range query");
            let (status, body) = self
                .post(
                    &self.range_url,
                    &[
                        ("query", promql),
                        ("start", &start),
                        ("end", &end),
                        ("step", &step),
                    ],
                )
                .await?;
            parse_range(status, &body, steps)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result
                .map(|answers| {
                    answers
                        .into_iter()
                        .map(|answer| answer.map_err(|e| self.shown(e)))
                        .collect()
                })
                .map_err(|e| self.shown(e)),
            Err(_) => Err(QueryError::Timeout {
                address: self.address.clone(),
                timeout: self.timeout,
            }),
        }
    }

    /// The alerting rules Prometheus has loaded (`GET /api/v1/rules?type=alert`), within the
    /// timeout.
    pub async fn alerting_rules(&self) -> Result<Vec<AlertingRule>, QueryError> {
        let exchange = async {
            tracing::debug!(address = %self.address, "Prometheus alerting rules");
            let (status, body) = self.send(self.http.get(&self.rules_url)).await?;
            parse_rules(status, &body)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result.map_err(|e| self.shown(e)),
            Err(_) => Err(QueryError::Timeout {
                address: self.address.clone(),
                timeout: self.timeout,
            }),
        }
    }

    /// POSTs a form with credentials and Prometheus' own timeout; the status and the body,
    /// read within the cap.
    async fn post(&self, url: &str, form: &[(&str, &str)]) -> Result<(u16, Vec<u8>), QueryError> {
        let timeout = format!("{}ms", self.timeout.as_millis().max(1));
        let mut fields = form.to_vec();
        fields.push(("timeout", &timeout));
        self.send(self.http.post(url).form(&fields)).await
    }

    /// Sends `request` with credentials; the status and the body, read within the cap.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), QueryError> {
        let request = match &self.auth {
            PrometheusAuth::None => request,
            PrometheusAuth::Bearer(token) => request.bearer_auth(token.expose()),
            PrometheusAuth::BearerFile(file) => {
                let token = file
                    .token()
                    .map_err(|err| self.unreachable(err.to_string()))?;
                request.bearer_auth(token.expose())
            }
            PrometheusAuth::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
        };
        let response = request
            .send()
            .await
            .map_err(|err| self.unreachable(describe(&err)))?;
        let status = response.status().as_u16();
        let body = read_capped(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|err| match err {
                BodyError::TooLarge { cap } => QueryError::TooLarge { limit: cap },
                BodyError::Read(cause) => self.unreachable(cause),
            })?;
        Ok((status, body))
    }

    fn unreachable(&self, cause: String) -> QueryError {
        QueryError::Unreachable {
            address: self.address.clone(),
            cause,
        }
    }
}

/// Unix milliseconds as the seconds Prometheus reads, `1700000000.250`.
fn seconds(millis: i64) -> String {
    format!("{}.{:03}", millis.div_euclid(1000), millis.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Arc<AddressPolicy> {
        Arc::new(AddressPolicy::new(vec!["p".parse().unwrap()]))
    }

    #[test]
    fn bad_settings_are_errors() {
        let endpoint = |address: &str| PrometheusEndpoint {
            address: address.into(),
            settings: Default::default(),
        };
        for address in ["prometheus:9090", "ftp://p/", "http://[::1"] {
            assert!(
                matches!(
                    PrometheusClient::new(&endpoint(address), &open()),
                    Err(ClientError::Address(_))
                ),
                "{address}"
            );
        }
        assert!(matches!(
            PrometheusClient::new(&endpoint("http://elsewhere:9090"), &open()),
            Err(ClientError::NotAllowed(_))
        ));
        let mut newline = endpoint("http://p:9090");
        newline.settings.auth =
            PrometheusAuth::from_parts(Some("a\nb".into()), None, None).unwrap();
        assert!(matches!(
            PrometheusClient::new(&newline, &open()),
            Err(ClientError::Credentials("token"))
        ));
        let mut bad_header = endpoint("http://p:9090/");
        bad_header
            .settings
            .headers
            .push(("bad name".into(), "x".to_owned().into()));
        assert!(matches!(
            PrometheusClient::new(&bad_header, &open()),
            Err(ClientError::Header(_))
        ));
        let mut bad_ca = endpoint("http://p:9090");
        bad_ca.settings.ca_pem = Some(b"not pem".to_vec());
        assert!(matches!(
            PrometheusClient::new(&bad_ca, &open()),
            Err(ClientError::Ca(_))
        ));
    }
}
