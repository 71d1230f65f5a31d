//! Why a query to Prometheus gave no usable answer; each message tells an operator what to fix.

use std::time::Duration;

/// A failed instant query.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// No answer within the gate's timeout.
    #[error("Prometheus at {address} did not answer within the {timeout:?} timeout")]
    Timeout {
        /// Base URL queried.
        address: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// The request could not be sent or the answer not read.
    #[error("cannot reach Prometheus at {address}: {cause}")]
    Unreachable {
        /// Base URL queried.
        address: String,
        /// The innermost cause, for example `Connection refused (os error 111)`.
        cause: String,
    },
    /// An answer larger than the cap.
    #[error("Prometheus' answer is larger than {limit} bytes; make the query return one series")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// A non-2xx status without the API's JSON.
    #[error("Prometheus answered HTTP {status}: {body}")]
    Http {
        /// HTTP status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// `"status": "error"`, with Prometheus' own words.
    #[error("Prometheus refused the query (HTTP {status}, {error_type}): {message}")]
    Api {
        /// HTTP status code.
        status: u16,
        /// Prometheus' `errorType`, for example `bad_data`.
        error_type: String,
        /// Prometheus' `error`.
        message: String,
    },
    /// A 2xx body that is not the API's JSON.
    #[error("the answer is not the Prometheus API's JSON ({problem}): {body}")]
    NotJson {
        /// What did not parse.
        problem: String,
        /// The start of the body.
        body: String,
    },
    /// More than one series.
    #[error(
        "the query returned {count} series ({examples}); a gate needs exactly one value: aggregate \
         them, for example with sum(...) or max(...), or select one with label matchers"
    )]
    SeveralSeries {
        /// Number of series.
        count: usize,
        /// Labels of the first few.
        examples: String,
    },
    /// A range vector.
    #[error(
        "the query returned a range vector (matrix); a gate needs an instant value: drop the \
         [range] selector or wrap it in a function such as rate(...) or max_over_time(...)"
    )]
    Matrix,
    /// A native histogram sample.
    #[error(
        "the query returned a native histogram; reduce it to a number, for example with \
         histogram_quantile(...) or histogram_count(...)"
    )]
    Histogram,
    /// A result type other than scalar, vector or matrix.
    #[error("the query returned a {0}; a gate needs a scalar or a vector with one sample")]
    ResultType(String),
    /// A sample value that is not a number.
    #[error("the query returned {0:?}, which is not a number")]
    BadValue(String),
}

/// What stands for text a Prometheus the operator did not configure answered.
pub const WITHHELD: &str =
    "(text of this answer withheld: the address is not the operator's Prometheus)";

impl QueryError {
    /// The error with every text of the answer replaced by [`WITHHELD`], for an address a
    /// Rollout names (no read-out channel): it keeps the HTTP status, Prometheus' `errorType`
    /// (capped, stripped), counts and the fixed explanations.
    pub fn withholding_remote_text(self) -> Self {
        match self {
            Self::Http { status, .. } => Self::Http {
                status,
                body: WITHHELD.into(),
            },
            Self::Api {
                status, error_type, ..
            } => Self::Api {
                status,
                error_type,
                message: WITHHELD.into(),
            },
            Self::NotJson { .. } => Self::NotJson {
                problem: "unreadable".into(),
                body: WITHHELD.into(),
            },
            Self::SeveralSeries { count, .. } => Self::SeveralSeries {
                count,
                examples: WITHHELD.into(),
            },
            Self::ResultType(_) => Self::ResultType("result type it named".into()),
            Self::BadValue(_) => Self::BadValue(WITHHELD.into()),
            other @ (Self::Timeout { .. }
            | Self::Unreachable { .. }
            | Self::TooLarge { .. }
            | Self::Matrix
            | Self::Histogram) => other,
        }
    }
}
