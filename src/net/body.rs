//! Small HTTP helpers shared by the providers: bounded body reads, readable transport errors,
//! and timeouts from the spec.

use std::error::Error as _;
use std::time::Duration;

/// Time allowed for a request when the gate names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the cap.
    #[error("the answer is larger than {cap} bytes")]
    TooLarge {
        /// The cap, in bytes.
        cap: usize,
    },
    /// The connection failed while reading.
    #[error("reading the answer failed: {0}")]
    Read(String),
}

/// Reads a response body, refusing one larger than `cap` bytes without reading it all.
pub async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(BodyError::TooLarge { cap });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Read(describe(&e)))?
    {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge { cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error with its causes, for example
/// `error sending request: client error (Connect): tcp connect error: Connection refused`.
pub fn describe(err: &reqwest::Error) -> String {
    let mut message = if err.is_timeout() {
        "timed out".to_string()
    } else {
        without_url(err)
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

/// An error's own text without the ` for url (…)` reqwest appends: messages name the URL once.
fn without_url(err: &reqwest::Error) -> String {
    let text = err.to_string();
    match err.url() {
        Some(url) => text.replace(&format!(" for url ({url})"), ""),
        None => text,
    }
}

/// The timeout a gate asks for, or the default; an error for a zero or negative one.
pub fn timeout_of(spec: Option<kube::core::Duration>) -> Result<Duration, String> {
    match spec {
        None => Ok(DEFAULT_TIMEOUT),
        Some(d) if d.is_negative() || Duration::from(d).is_zero() => {
            Err(format!("timeout must be positive, got {d}"))
        }
        Some(d) => Ok(d.into()),
    }
}
