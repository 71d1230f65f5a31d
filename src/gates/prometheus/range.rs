//! Reading the HTTP API's answer to a range query (`/api/v1/query_range`): for every step of
//! the range, the answer an instant query at that time would have given — one value, nothing,
//! or "several series" — so a backtest reading history in one request decides exactly as one
//! instant query per checkpoint would.

use serde::Deserialize;
use serde_json::Value as Json;

use super::QueryError;
use super::answer::{Answer, number, parse_envelope};
use crate::text::{self, FIELD, REMOTE};

/// The steps of a range query: `count` instants, `step_ms` apart from `start_ms` (Unix
/// milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Steps {
    /// The first instant, in Unix milliseconds.
    pub start_ms: i64,
    /// Milliseconds between instants (at least 1).
    pub step_ms: i64,
    /// How many instants.
    pub count: usize,
}

impl Steps {
    /// The index of the step at `at_ms`, if it is one.
    pub fn index_of(&self, at_ms: i64) -> Option<usize> {
        let offset = at_ms.checked_sub(self.start_ms)?;
        if offset < 0 || self.step_ms <= 0 || offset % self.step_ms != 0 {
            return None;
        }
        usize::try_from(offset / self.step_ms)
            .ok()
            .filter(|i| *i < self.count)
    }
}

/// One series of a matrix.
#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    metric: serde_json::Map<String, Json>,
    #[serde(default)]
    values: Vec<(Json, String)>,
    #[serde(default)]
    histograms: Vec<(Json, Json)>,
}

/// What each step would have answered, in order; an error for the whole answer when it is not
/// a matrix at all.
pub fn parse_range(
    status: u16,
    body: &[u8],
    steps: Steps,
) -> Result<Vec<Result<Answer, QueryError>>, QueryError> {
    let data = parse_envelope(status, body)?;
    if data.result_type != "matrix" {
        return Err(QueryError::ResultType(text::remote(
            &data.result_type,
            FIELD,
        )));
    }
    let series: Vec<Series> =
        serde_json::from_value(data.result).map_err(|err| QueryError::NotJson {
            problem: format!("data.result: {}", text::remote(&err.to_string(), REMOTE)),
            body: String::new(),
        })?;
    // Per step: the values seen (and from which series), then folded into an answer.
    let mut seen: Vec<Vec<(usize, Result<f64, QueryError>)>> = vec![Vec::new(); steps.count];
    for (index, one) in series.iter().enumerate() {
        for (time, value) in &one.values {
            if let Some(step) = step_of(time, steps) {
                seen[step].push((index, number(value)));
            }
        }
        for (time, _) in &one.histograms {
            if let Some(step) = step_of(time, steps) {
                seen[step].push((index, Err(QueryError::Histogram)));
            }
        }
    }
    Ok(seen
        .into_iter()
        .map(|values| match values.as_slice() {
            [] => Ok(Answer::Empty),
            [(_, value)] => value.clone().map(Answer::Value),
            several => Err(QueryError::SeveralSeries {
                count: several.len(),
                examples: text::remote(
                    &several
                        .iter()
                        .take(3)
                        .map(|(i, _)| super::answer::labels(&series[*i].metric))
                        .collect::<Vec<_>>()
                        .join(", "),
                    REMOTE,
                ),
            }),
        })
        .collect())
}

/// The step a sample's time (seconds, a JSON number) falls on, if any.
fn step_of(time: &Json, steps: Steps) -> Option<usize> {
    let seconds = time.as_f64()?;
    if !seconds.is_finite() {
        return None;
    }
    steps.index_of((seconds * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: Steps = Steps {
        start_ms: 1_000_000,
        step_ms: 60_000,
        count: 4,
    };

    fn matrix(result: &str) -> Vec<Result<Answer, QueryError>> {
        let body =
            format!(r#"{{"status":"success","data":{{"resultType":"matrix","result":{result}}}}}"#);
        parse_range(200, body.as_bytes(), STEPS).unwrap()
    }

    #[test]
    fn each_step_answers_as_an_instant_query_would() {
        let answers = matrix(
            r#"[{"metric":{"a":"1"},"values":[[1000,"0.5"],[1060,"NaN"],[1180,"2"]]},
                {"metric":{"a":"2"},"values":[[1180,"3"],[5000,"9"]]}]"#,
        );
        assert_eq!(answers[0], Ok(Answer::Value(0.5)));
        assert!(matches!(answers[1], Ok(Answer::Value(v)) if v.is_nan()));
        assert_eq!(answers[2], Ok(Answer::Empty));
        assert!(matches!(
            &answers[3],
            Err(QueryError::SeveralSeries { count: 2, .. })
        ));
    }

    #[test]
    fn anything_but_a_matrix_is_an_error() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(parse_range(200, body, STEPS).is_err());
        let body = br#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points"}"#;
        let err = parse_range(400, body, STEPS).unwrap_err();
        assert!(err.to_string().contains("11,000"), "{err}");
    }

    #[test]
    fn step_indices_are_exact() {
        assert_eq!(STEPS.index_of(1_000_000), Some(0));
        assert_eq!(STEPS.index_of(1_180_000), Some(3));
        assert_eq!(STEPS.index_of(1_240_000), None);
        assert_eq!(STEPS.index_of(1_000_001), None);
        assert_eq!(STEPS.index_of(0), None);
    }
}
