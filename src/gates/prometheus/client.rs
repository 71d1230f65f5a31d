//! The HTTP client for instant queries: one POST to `/api/v1/query` per query, evaluated at a
//! given instant, answered within the timeout and within a size cap.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::QueryError;
use super::answer::{self, Answer};
use super::settings::{PrometheusAuth, PrometheusEndpoint};
use crate::gates::http_util::{BodyError, describe, read_capped};

/// The largest answer read; a single-series instant query is a few hundred bytes.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// A client for one Prometheus endpoint. Cheap to clone; build it once per endpoint and reuse it.
#[derive(Clone, Debug)]
pub struct PrometheusClient {
    http: reqwest::Client,
    auth: PrometheusAuth,
    address: String,
    query_url: String,
    timeout: Duration,
}

/// A client that cannot be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not an http(s) URL.
    #[error("Prometheus address {0:?} must start with http:// or https://")]
    Address(String),
    /// A header name or value HTTP does not allow.
    #[error("header {0:?} is not a valid HTTP header")]
    Header(String),
    /// A CA bundle that is not PEM.
    #[error("the CA bundle is not PEM certificates: {0}")]
    Ca(String),
    /// The HTTP client itself.
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

impl PrometheusClient {
    /// A client for `endpoint`, with its credentials, headers, TLS and timeout.
    pub fn new(endpoint: &PrometheusEndpoint) -> Result<Self, ClientError> {
        let address = endpoint.address.trim_end_matches('/').to_owned();
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(ClientError::Address(endpoint.address.clone()));
        }
        let settings = &endpoint.settings;
        let mut headers = HeaderMap::new();
        for (name, value) in &settings.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ClientError::Header(name.clone()))?;
            let mut value =
                HeaderValue::from_str(value).map_err(|_| ClientError::Header(name.to_string()))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(settings.timeout)
            .danger_accept_invalid_certs(settings.insecure_skip_verify);
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
        let http = builder
            .build()
            .map_err(|err| ClientError::Build(describe(&err)))?;
        Ok(Self {
            http,
            auth: settings.auth.clone(),
            query_url: format!("{address}/api/v1/query"),
            address,
            timeout: settings.timeout,
        })
    }

    /// The base URL queried.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Evaluates `promql` at the instant `at`. The whole exchange, from connecting to the last
    /// byte, must end within the timeout; Prometheus is told the same timeout.
    pub async fn query(&self, promql: &str, at: Timestamp) -> Result<Answer, QueryError> {
        match tokio::time::timeout(self.timeout, self.exchange(promql, at)).await {
            Ok(result) => result,
            Err(_) => Err(QueryError::Timeout {
                address: self.address.clone(),
                timeout: self.timeout,
            }),
        }
    }

    async fn exchange(&self, promql: &str, at: Timestamp) -> Result<Answer, QueryError> {
        let millis = at.as_millisecond();
        let time = format!("{}.{:03}", millis.div_euclid(1000), millis.rem_euclid(1000));
        let timeout = format!("{}ms", self.timeout.as_millis().max(1));
        tracing::debug!(address = %self.address, query = promql, %time, "Prometheus instant query");
        let request = self.http.post(&self.query_url).form(&[
            ("query", promql),
            ("time", &time),
            ("timeout", &timeout),
        ]);
        let request = match &self.auth {
            PrometheusAuth::None => request,
            PrometheusAuth::Bearer(token) => request.bearer_auth(token),
            PrometheusAuth::Basic { username, password } => {
                request.basic_auth(username, Some(password))
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
        answer::parse(status, &body)
    }

    fn unreachable(&self, cause: String) -> QueryError {
        QueryError::Unreachable {
            address: self.address.clone(),
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_errors() {
        let endpoint = |address: &str| PrometheusEndpoint {
            address: address.into(),
            settings: Default::default(),
        };
        assert!(matches!(
            PrometheusClient::new(&endpoint("prometheus:9090")),
            Err(ClientError::Address(_))
        ));
        let mut bad_header = endpoint("http://p:9090/");
        bad_header
            .settings
            .headers
            .push(("bad name".into(), "x".into()));
        assert!(matches!(
            PrometheusClient::new(&bad_header),
            Err(ClientError::Header(_))
        ));
        let mut bad_ca = endpoint("http://p:9090");
        bad_ca.settings.ca_pem = Some(b"not pem".to_vec());
        assert!(matches!(
            PrometheusClient::new(&bad_ca),
            Err(ClientError::Ca(_))
        ));
    }
}
