//! API errors as the API server reports them: a `Status` object with code, reason, message.

use serde_json::{Value, json};

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `NotFound`, `Conflict`, `AlreadyExists`, `Invalid`, `BadRequest`, `Gone`, …
    pub reason: &'static str,
    /// The human-readable message.
    pub message: String,
}

impl ApiError {
    /// 404.
    pub fn not_found(what: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{what} \"{name}\" not found"))
    }

    /// 409 for a stale `metadata.resourceVersion`.
    pub fn stale(what: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {what} \"{name}\": the object has been \
                 modified; please apply your changes to the latest version and try again"
            ),
        )
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 422.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// Any other.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}
