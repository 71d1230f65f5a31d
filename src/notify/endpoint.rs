//! A notification endpoint: its kind, its URL (kept secret) and its filter.

use reqwest::Url;

use crate::api::TransitionKind;

/// The body an endpoint expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    /// A JSON object with every field of the transition.
    Webhook,
    /// Slack's incoming-webhook body, `{"text": …}` (Mattermost and Rocket.Chat accept it).
    Slack,
}

impl EndpointKind {
    /// `webhook` or `slack`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Webhook => "webhook",
            EndpointKind::Slack => "slack",
        }
    }
}

/// Where notifications go. Its `Debug` output never shows the URL, which usually carries a
/// credential (Slack's incoming-webhook URLs do).
#[derive(Clone)]
pub struct Endpoint {
    kind: EndpointKind,
    url: Url,
    when: Vec<TransitionKind>,
    label: String,
    /// Given by the operator (a controller flag), not by a Rollout's author: exempt from the
    /// address guard (see [`Notifier::with_address_guard`](super::Notifier::with_address_guard)).
    operator: bool,
}

/// Why an endpoint could not be made. Messages name where the URL came from, never the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The URL does not parse, or is not http or https.
    #[error("{label}: the value is not an http:// or https:// URL")]
    NotHttp {
        /// Where the URL came from.
        label: String,
    },
    /// The Secret holding the URL could not be read.
    #[error("{label}: {problem}")]
    Secret {
        /// Where the URL was to come from.
        label: String,
        /// What went wrong.
        problem: String,
    },
}

impl Endpoint {
    /// An endpoint for `url` named by a Rollout's author; `label` names where it came from in
    /// logs and errors (for example `spec.notifications[0].slack`).
    pub fn new(
        kind: EndpointKind,
        url: &str,
        label: impl Into<String>,
    ) -> Result<Endpoint, EndpointError> {
        let label = label.into();
        let url = Url::parse(url.trim()).map_err(|_| EndpointError::NotHttp {
            label: label.clone(),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(EndpointError::NotHttp { label });
        }
        Ok(Endpoint {
            kind,
            url,
            when: Vec::new(),
            label,
            operator: false,
        })
    }

    /// An endpoint from the controller's command line: `--notify-webhook URL` or
    /// `--notify-slack URL`, the `index`-th of its kind (from 1).
    pub fn from_flag(
        kind: EndpointKind,
        url: &str,
        index: usize,
    ) -> Result<Endpoint, EndpointError> {
        let mut endpoint =
            Endpoint::new(kind, url, format!("--notify-{} #{index}", kind.as_str()))?;
        endpoint.operator = true;
        Ok(endpoint)
    }

    /// Whether the operator gave this endpoint (a controller flag) rather than a Rollout.
    pub fn is_operator(&self) -> bool {
        self.operator
    }

    /// Restricts the endpoint to these transitions (empty: all of them).
    pub fn with_filter(mut self, when: Vec<TransitionKind>) -> Endpoint {
        self.when = when;
        self
    }

    /// Whether the endpoint wants to hear about `kind`.
    pub fn wants(&self, kind: TransitionKind) -> bool {
        self.when.is_empty() || self.when.contains(&kind)
    }

    /// The body this endpoint expects.
    pub fn kind(&self) -> EndpointKind {
        self.kind
    }

    /// Where the endpoint came from, for logs and errors.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub(super) fn url(&self) -> &Url {
        &self.url
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("kind", &self.kind)
            .field("label", &self.label)
            .field("url", &"<redacted>")
            .field("when", &self.when)
            .field("operator", &self.operator)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_URL: &str = "https://hooks.slack.example/services/T000/B000/very-secret-token";

    #[test]
    fn debug_never_shows_the_url() {
        let e = Endpoint::from_flag(EndpointKind::Slack, SECRET_URL, 1).expect("valid");
        let shown = format!("{e:?}");
        assert!(!shown.contains("very-secret-token"), "{shown}");
        assert!(!shown.contains("hooks.slack"), "{shown}");
        assert!(shown.contains("--notify-slack #1"), "{shown}");
    }

    #[test]
    fn only_http_urls_and_errors_without_the_url() {
        for bad in [
            "ftp://x/y",
            "not a url",
            "file:///etc/passwd",
            "",
            "https://",
        ] {
            let error = Endpoint::from_flag(EndpointKind::Webhook, bad, 2).expect_err(bad);
            assert_eq!(
                error.to_string(),
                "--notify-webhook #2: the value is not an http:// or https:// URL"
            );
        }
        let ok = Endpoint::new(EndpointKind::Webhook, " http://127.0.0.1:9/hook\n", "x")
            .expect("trimmed");
        assert_eq!(ok.url().as_str(), "http://127.0.0.1:9/hook");
    }

    #[test]
    fn filter() {
        let e = Endpoint::new(EndpointKind::Webhook, "http://127.0.0.1/", "x").expect("valid");
        assert!(e.wants(TransitionKind::Advance));
        let e = e.with_filter(vec![TransitionKind::Rollback]);
        assert!(e.wants(TransitionKind::Rollback));
        assert!(!e.wants(TransitionKind::Advance));
    }
}
