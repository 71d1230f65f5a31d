//! Reading the HTTP API's answer to an instant query: one value, nothing, or an error that
//! says what Prometheus said.

use serde::Deserialize;
use serde_json::Value as Json;

use super::QueryError;
use crate::text::{self, FIELD, REMOTE};

/// What an instant query answered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Answer {
    /// A scalar, or a vector with exactly one sample (NaN and ±Inf included).
    Value(f64),
    /// An empty vector.
    Empty,
}

/// The API's envelope: `{"status": "success"|"error", "data": …, "errorType": …, "error": …}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Json>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Data {
    pub(super) result_type: String,
    pub(super) result: Json,
}

/// One element of an instant vector.
#[derive(Deserialize)]
struct Sample {
    #[serde(default)]
    metric: serde_json::Map<String, Json>,
    #[serde(default)]
    value: Option<(Json, String)>,
    #[serde(default)]
    histogram: Option<Json>,
}

/// How many series a "several series" error names.
const SHOWN_SERIES: usize = 3;

/// Turns an HTTP status and body into an [`Answer`] or the error Prometheus reported.
pub fn parse(status: u16, body: &[u8]) -> Result<Answer, QueryError> {
    let data = parse_envelope(status, body)?;
    match data.result_type.as_str() {
        "scalar" => {
            let (_, value): (Json, String) =
                serde_json::from_value(data.result).map_err(|err| shape(err, body))?;
            number(&value).map(Answer::Value)
        }
        "vector" => vector(data.result, body),
        "matrix" => Err(QueryError::Matrix),
        other => Err(QueryError::ResultType(text::remote(other, FIELD))),
    }
}

/// The `data` of a successful query answer, or the error Prometheus (or the HTTP layer)
/// reported.
pub(super) fn parse_envelope(status: u16, body: &[u8]) -> Result<Data, QueryError> {
    let data = envelope_data(status, body)?;
    serde_json::from_value(data).map_err(|err| QueryError::NotJson {
        problem: format!("data: {}", text::remote(&err.to_string(), REMOTE)),
        body: snippet(body),
    })
}

/// The `data` of any successful API answer, as JSON, or the error Prometheus (or the HTTP
/// layer) reported.
pub(super) fn envelope_data(status: u16, body: &[u8]) -> Result<Json, QueryError> {
    let ok = (200..300).contains(&status);
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(envelope) => envelope,
        Err(_) if !ok => {
            return Err(QueryError::Http {
                status,
                body: snippet(body),
            });
        }
        Err(err) => {
            return Err(QueryError::NotJson {
                problem: text::remote(&err.to_string(), REMOTE),
                body: snippet(body),
            });
        }
    };
    if !envelope.warnings.is_empty() {
        // Their text is not logged: the address may be one a Rollout names.
        tracing::warn!(
            warnings = envelope.warnings.len(),
            "Prometheus warned about a gate query"
        );
    }
    if envelope.status != "success" {
        return Err(QueryError::Api {
            status,
            error_type: text::remote(envelope.error_type.as_deref().unwrap_or("unknown"), FIELD),
            message: match envelope.error {
                Some(error) => text::remote(&error, REMOTE),
                None => format!(
                    "status {:?} without a message",
                    text::remote(&envelope.status, FIELD)
                ),
            },
        });
    }
    if !ok {
        return Err(QueryError::Http {
            status,
            body: snippet(body),
        });
    }
    envelope.data.ok_or_else(|| QueryError::NotJson {
        problem: "a successful answer without `data`".into(),
        body: snippet(body),
    })
}

fn vector(result: Json, body: &[u8]) -> Result<Answer, QueryError> {
    let samples: Vec<Sample> = serde_json::from_value(result).map_err(|err| shape(err, body))?;
    match samples.as_slice() {
        [] => Ok(Answer::Empty),
        [sample] => match (&sample.value, &sample.histogram) {
            (Some((_, value)), _) => number(value).map(Answer::Value),
            (None, Some(_)) => Err(QueryError::Histogram),
            (None, None) => Err(QueryError::NotJson {
                problem: "a sample without a value".into(),
                body: snippet(body),
            }),
        },
        several => Err(QueryError::SeveralSeries {
            count: several.len(),
            examples: text::remote(
                &several
                    .iter()
                    .take(SHOWN_SERIES)
                    .map(|s| labels(&s.metric))
                    .collect::<Vec<_>>()
                    .join(", "),
                REMOTE,
            ),
        }),
    }
}

/// A sample value: a decimal number, `NaN`, `+Inf` or `-Inf`.
pub(super) fn number(text: &str) -> Result<f64, QueryError> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse()
            .map_err(|_| QueryError::BadValue(text::remote(text, FIELD))),
    }
}

/// A series' labels as PromQL writes them: `{code="500", job="app"}`.
pub(super) fn labels(metric: &serde_json::Map<String, Json>) -> String {
    let pairs: Vec<String> = metric
        .iter()
        .map(|(name, value)| match value.as_str() {
            Some(text) => format!("{name}={text:?}"),
            None => format!("{name}={value}"),
        })
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// A `data.result` of the wrong shape; the message names the field.
fn shape(err: serde_json::Error, body: &[u8]) -> QueryError {
    QueryError::NotJson {
        problem: format!("data.result: {}", text::remote(&err.to_string(), REMOTE)),
        body: snippet(body),
    }
}

/// The start of a body, as text, for an error message.
pub(super) fn snippet(body: &[u8]) -> String {
    const LIMIT: usize = 200;
    let head = &body[..body.len().min(LIMIT * 4)];
    text::remote(&String::from_utf8_lossy(head), LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(result_type: &str, result: &str) -> Result<Answer, QueryError> {
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"{result_type}","result":{result}}}}}"#
        );
        parse(200, body.as_bytes())
    }

    #[test]
    fn scalar_and_single_sample_are_values() {
        assert_eq!(ok("scalar", r#"[1.5,"0.25"]"#), Ok(Answer::Value(0.25)));
        assert_eq!(
            ok("vector", r#"[{"metric":{},"value":[1.5,"3"]}]"#),
            Ok(Answer::Value(3.0))
        );
    }

    #[test]
    fn special_values_parse() {
        assert!(matches!(ok("scalar", r#"[1,"NaN"]"#), Ok(Answer::Value(v)) if v.is_nan()));
        assert_eq!(
            ok("scalar", r#"[1,"+Inf"]"#),
            Ok(Answer::Value(f64::INFINITY))
        );
        assert_eq!(
            ok("scalar", r#"[1,"-Inf"]"#),
            Ok(Answer::Value(f64::NEG_INFINITY))
        );
        assert_eq!(ok("scalar", r#"[1,"1e-3"]"#), Ok(Answer::Value(0.001)));
        assert!(matches!(
            ok("scalar", r#"[1,"lots"]"#),
            Err(QueryError::BadValue(_))
        ));
    }

    #[test]
    fn empty_vector_is_empty() {
        assert_eq!(ok("vector", "[]"), Ok(Answer::Empty));
    }

    #[test]
    fn several_series_name_some_labels() {
        let err = ok(
            "vector",
            r#"[{"metric":{"code":"200"},"value":[1,"1"]},{"metric":{"code":"500"},"value":[1,"2"]}]"#,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("2 series"), "{text}");
        assert!(text.contains(r#"{code="500"}"#), "{text}");
        assert!(text.contains("sum"), "{text}");
    }

    #[test]
    fn matrix_string_and_histogram_are_errors() {
        assert_eq!(ok("matrix", "[]"), Err(QueryError::Matrix));
        assert!(matches!(
            ok("string", r#"[1,"x"]"#),
            Err(QueryError::ResultType(_))
        ));
        assert_eq!(
            ok("vector", r#"[{"metric":{},"histogram":[1,{}]}]"#),
            Err(QueryError::Histogram)
        );
    }

    #[test]
    fn api_errors_keep_prometheus_message() {
        let body =
            br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"}"#;
        let err = parse(400, body).unwrap_err();
        assert!(
            err.to_string().contains("1:5: parse error: unexpected"),
            "{err}"
        );
        assert!(err.to_string().contains("bad_data"), "{err}");
    }

    #[test]
    fn non_json_and_non_2xx_quote_the_body() {
        let err = parse(200, b"<html>hello</html>").unwrap_err();
        assert!(matches!(err, QueryError::NotJson { .. }));
        assert!(err.to_string().contains("<html>hello</html>"), "{err}");
        let err = parse(502, b"upstream down").unwrap_err();
        assert!(err.to_string().contains("502"), "{err}");
        assert!(err.to_string().contains("upstream down"), "{err}");
        assert!(matches!(parse(200, b""), Err(QueryError::NotJson { .. })));
        assert!(matches!(
            parse(
                200,
                br#"{"status":"success","data":{"resultType":"vector","result":{}}}"#
            ),
            Err(QueryError::NotJson { .. })
        ));
    }
}
