//! The rules of a valid plan, checked in Rust as well as by the CRD's CEL rules, so the
//! controller and the command line reject what `kubectl apply` would.

use std::collections::HashSet;

use super::spec::RolloutSpec;

/// One broken rule, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SpecError {
    /// Path of the field, for example `spec.stages[1].percent`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl SpecError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Checks every rule of DESIGN §3 and returns each broken one.
pub fn validate_spec(spec: &RolloutSpec) -> Result<(), Vec<SpecError>> {
    let mut errors = Vec::new();
    check_target(spec, &mut errors);
    check_stages(spec, &mut errors);
    check_analysis(spec, &mut errors);
    if spec.rollback.percent > 100 {
        errors.push(SpecError::new(
            "spec.rollback.percent",
            "must be between 0 and 100",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check_target(spec: &RolloutSpec, errors: &mut Vec<SpecError>) {
    let target = &spec.target;
    if target.kind().is_none() {
        errors.push(SpecError::new(
            "spec.target",
            "must set exactly one of flagd, configMap and webhook",
        ));
    }
    if let Some(flagd) = &target.flagd {
        if flagd.config_map.is_some() == flagd.feature_flag.is_some() {
            errors.push(SpecError::new(
                "spec.target.flagd",
                "must set exactly one of configMap and featureFlag",
            ));
        }
        if flagd.flag.is_empty() {
            errors.push(SpecError::new("spec.target.flagd.flag", "must not be empty"));
        }
    }
    if let Some(config_map) = &target.config_map {
        if config_map.name.is_empty() {
            errors.push(SpecError::new("spec.target.configMap.name", "must not be empty"));
        }
        if config_map.key.is_empty() {
            errors.push(SpecError::new("spec.target.configMap.key", "must not be empty"));
        }
    }
    if let Some(webhook) = &target.webhook
        && !is_http_url(&webhook.url)
    {
        errors.push(SpecError::new(
            "spec.target.webhook.url",
            "must start with http:// or https://",
        ));
    }
}

fn check_stages(spec: &RolloutSpec, errors: &mut Vec<SpecError>) {
    if spec.stages.is_empty() {
        errors.push(SpecError::new("spec.stages", "must not be empty"));
    }
    for (i, stage) in spec.stages.iter().enumerate() {
        if stage.percent > 100 {
            errors.push(SpecError::new(
                format!("spec.stages[{i}].percent"),
                "must be between 0 and 100",
            ));
        }
        if stage.duration.is_negative() {
            errors.push(SpecError::new(
                format!("spec.stages[{i}].duration"),
                "must not be negative",
            ));
        }
        if i > 0 && spec.stages[i - 1].percent >= stage.percent {
            errors.push(SpecError::new(
                format!("spec.stages[{i}].percent"),
                format!(
                    "stage percents must be strictly increasing ({} follows {})",
                    stage.percent,
                    spec.stages[i - 1].percent
                ),
            ));
        }
    }
}

fn check_analysis(spec: &RolloutSpec, errors: &mut Vec<SpecError>) {
    let analysis = &spec.analysis;
    if analysis.interval.is_negative() || std::time::Duration::from(analysis.interval).is_zero() {
        errors.push(SpecError::new("spec.analysis.interval", "must be positive"));
    }
    if analysis.error_limit < 1 {
        errors.push(SpecError::new("spec.analysis.errorLimit", "must be at least 1"));
    }
    let mut names = HashSet::new();
    for (i, gate) in analysis.gates.iter().enumerate() {
        let field = format!("spec.analysis.gates[{i}]");
        if gate.name.is_empty() {
            errors.push(SpecError::new(format!("{field}.name"), "must not be empty"));
        } else if !names.insert(gate.name.as_str()) {
            errors.push(SpecError::new(
                format!("{field}.name"),
                format!("gate name {:?} is used twice; gate names must be unique", gate.name),
            ));
        }
        if gate.provider().is_none() {
            errors.push(SpecError::new(
                field.clone(),
                "must set exactly one of prometheus, alerts, ofrep and http",
            ));
        }
        if gate.failure_limit < 1 {
            errors.push(SpecError::new(format!("{field}.failureLimit"), "must be at least 1"));
        }
        for (bound, value) in [("min", gate.min), ("max", gate.max)] {
            if value.is_some_and(f64::is_nan) {
                errors.push(SpecError::new(format!("{field}.{bound}"), "must be a number"));
            }
        }
        if let (Some(min), Some(max)) = (gate.min, gate.max)
            && min > max
        {
            errors.push(SpecError::new(
                format!("{field}.min"),
                format!("min ({min}) must not be greater than max ({max})"),
            ));
        }
        if let Some(ofrep) = &gate.ofrep
            && !is_http_url(&ofrep.address)
        {
            errors.push(SpecError::new(
                format!("{field}.ofrep.address"),
                "must start with http:// or https://",
            ));
        }
        if let Some(http) = &gate.http {
            if !is_http_url(&http.url) {
                errors.push(SpecError::new(
                    format!("{field}.http.url"),
                    "must start with http:// or https://",
                ));
            }
            if !http.json_path.starts_with('$') {
                errors.push(SpecError::new(
                    format!("{field}.http.jsonPath"),
                    "must start with $",
                ));
            }
        }
        if let Some(prometheus) = &gate.prometheus
            && prometheus.query.trim().is_empty()
        {
            errors.push(SpecError::new(
                format!("{field}.prometheus.query"),
                "must not be empty",
            ));
        }
    }
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}
