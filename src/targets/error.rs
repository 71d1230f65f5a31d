//! Why a target could not be read or written, in words an operator can act on, with a short
//! machine label ([`TargetError::reason`]) for metrics and Event reasons.

/// Why reading or writing a target failed. Every message names the object (kind, namespace,
/// name, key, flag or URL) and the problem; none carries a Secret's value.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The spec's target is unusable (no kind set, a bad URL or timeout).
    #[error("invalid target: {0}")]
    Invalid(String),
    /// The object the target names does not exist.
    #[error("{object} not found")]
    NotFound {
        /// What was looked for, for example `ConfigMap kaviar/feature-flags`.
        object: String,
    },
    /// The API server refused the controller's credentials for this request.
    #[error("{verb} {object} forbidden: {message}")]
    Forbidden {
        /// `get` or `patch`.
        verb: &'static str,
        /// The object.
        object: String,
        /// The API server's message (names the missing RBAC rule).
        message: String,
    },
    /// The object changed between the read the write is based on and the write; read again
    /// and retry.
    #[error("{object} changed while it was being written, retry: {message}")]
    Conflict {
        /// The object.
        object: String,
        /// The API server's message.
        message: String,
    },
    /// The target holds something the controller cannot read as a percent: a drift to report,
    /// never a crash.
    #[error("{place}: {reason}")]
    Unreadable {
        /// Where, for example `ConfigMap kaviar/feature-flags key flags.flagd.json flag f`.
        place: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The target is readable but the controller refuses to write it (a disabled flag, a flag
    /// without the rollout's variants).
    #[error("{place}: {reason}")]
    Unwritable {
        /// Where.
        place: String,
        /// Why not.
        reason: String,
    },
    /// Any other answer of the Kubernetes API or a transport failure on the way to it.
    #[error("{verb} {object} failed: {message}")]
    Api {
        /// `get` or `patch`.
        verb: &'static str,
        /// The object.
        object: String,
        /// The status code, when the API server answered.
        code: Option<u16>,
        /// What went wrong.
        message: String,
    },
    /// The operator's address policy refuses a webhook target's URL.
    #[error("{url} is not an allowed address: {reason}")]
    AddressRefused {
        /// The URL.
        url: String,
        /// Why, and how to allow it.
        reason: String,
    },
    /// A webhook target's request failed or answered something unusable.
    #[error("{method} {url}: {reason}")]
    Http {
        /// `GET` or `PUT`.
        method: &'static str,
        /// The URL.
        url: String,
        /// What went wrong (the status and an excerpt of the answer, a timeout, ...).
        reason: String,
    },
}

impl TargetError {
    /// A short, fixed label for metrics and Event reasons: `invalid`, `not_found`,
    /// `forbidden`, `conflict`, `unreadable`, `unwritable`, `api`, `address_refused` or `http`.
    pub fn reason(&self) -> &'static str {
        match self {
            TargetError::Invalid(_) => "invalid",
            TargetError::NotFound { .. } => "not_found",
            TargetError::Forbidden { .. } => "forbidden",
            TargetError::Conflict { .. } => "conflict",
            TargetError::Unreadable { .. } => "unreadable",
            TargetError::Unwritable { .. } => "unwritable",
            TargetError::Api { .. } => "api",
            TargetError::AddressRefused { .. } => "address_refused",
            TargetError::Http { .. } => "http",
        }
    }

    /// Whether trying again later may succeed without anyone changing anything (a conflict,
    /// a transport failure, a server error, a webhook outage).
    pub fn is_transient(&self) -> bool {
        match self {
            TargetError::Conflict { .. } | TargetError::Http { .. } => true,
            TargetError::Api { code, .. } => code.is_none_or(|c| c >= 500 || c == 429),
            _ => false,
        }
    }

    /// Turns a Kubernetes client error for `verb` on `object` into a target error.
    pub fn from_kube(verb: &'static str, object: &str, err: kube::Error) -> Self {
        let object = object.to_owned();
        match err {
            kube::Error::Api(status) => match status.code {
                404 => TargetError::NotFound { object },
                403 => TargetError::Forbidden {
                    verb,
                    object,
                    message: status.message,
                },
                409 => TargetError::Conflict {
                    object,
                    message: status.message,
                },
                code => TargetError::Api {
                    verb,
                    object,
                    code: Some(code),
                    message: if status.message.is_empty() {
                        status.reason
                    } else {
                        status.message
                    },
                },
            },
            other => TargetError::Api {
                verb,
                object,
                code: None,
                message: other.to_string(),
            },
        }
    }
}
