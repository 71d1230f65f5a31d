//! The statistics of a `compare` gate, pure (no I/O, no clock): the one implementation the
//! controller, `simulate` and `backtest` share.
//!
//! For each arm n = units, x = events, p = x / n and v = p (1 − p). The difference is
//! Δ = p_T − p_C with se² = v_T / n_T + v_C / n_C, or, relative to the control's rate,
//! Δ = (p_T − p_C) / p_C with se² = v_T / (p_C² n_T) + v_C p_T² / (p_C⁴ n_C) (delta method).
//! The half-width is the one-sided asymptotic confidence sequence of Waudby-Smith et al.
//! (2023, "Time-uniform central limit theory and asymptotic confidence sequences"), as
//! GrowthBook computes it, with N = n_T + n_C, s² = se² N, α = 1 − confidence and the tuning
//! parameter N*:
//!
//! ρ = √((−2 ln(2α) + ln(−2 ln(2α) + 1)) / N*),
//! h = √(s² · 2(Nρ² + 1) / (Nρ)² · ln(1 + √(Nρ² + 1) / (2α))).
//!
//! The harmful bound is Δ − h when lower is better and −(Δ + h) when higher is better: how much
//! worse the treatment is, at least. The gate fails when it exceeds `maxRegression`.

/// Which direction of the rate is good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    /// Fewer events per unit is better (errors, timeouts).
    #[default]
    Lower,
    /// More events per unit is better (conversions, successes).
    Higher,
}

/// A compare gate's settings, as plain numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Which direction of the rate is good.
    pub better: Direction,
    /// Allowed difference in the harmful direction (a fraction of the control's rate when
    /// `relative`).
    pub max_regression: f64,
    /// Compare the rates' ratio minus one instead of their difference.
    pub relative: bool,
    /// One-sided confidence, 0.8 to 0.999.
    pub confidence: f64,
    /// Units each arm needs before any verdict.
    pub min_units: f64,
    /// The confidence sequence's tuning parameter N*.
    pub expected_units: f64,
    /// Test the split of units against the percent in force.
    pub sample_ratio: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            better: Direction::Lower,
            max_regression: 0.0,
            relative: false,
            confidence: 0.95,
            min_units: 500.0,
            expected_units: 5000.0,
            sample_ratio: false,
        }
    }
}

/// One arm's counts since the stage started.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Counts {
    /// Units (requests, users) in the arm.
    pub units: f64,
    /// Events (errors, conversions) among those units.
    pub events: f64,
}

impl Counts {
    /// Counts of `units` units and `events` events.
    pub fn new(units: f64, events: f64) -> Self {
        Self { units, events }
    }
}

/// What a checkpoint observed for a compare gate: both arms and the split they were drawn at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// The users with the flag (the treatment variant).
    pub treatment: Counts,
    /// The users without it (the control variant).
    pub control: Counts,
    /// The percent of users with the flag while the counts were collected (0 to 100).
    pub percent: f64,
    /// Whether the sample-ratio test may run: false during the first interval after a percent
    /// change, while evaluators are still loading the new split.
    pub ratio_settled: bool,
}

/// An arm's counts and rate, as reported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arm {
    /// Units in the arm.
    pub units: f64,
    /// Events in the arm.
    pub events: f64,
    /// events / units (0 with no units).
    pub rate: f64,
}

impl Arm {
    fn of(counts: Counts) -> Self {
        let rate = if counts.units > 0.0 {
            counts.events / counts.units
        } else {
            0.0
        };
        Self {
            units: counts.units,
            events: counts.events,
            rate,
        }
    }
}

/// The verdict of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The harmful bound is within `maxRegression`.
    Pass,
    /// The harmful bound exceeds `maxRegression`.
    Fail,
    /// An arm has too few units (or, relative, the control has no events yet).
    Waiting,
    /// At 0 % or 100 % there is no second cohort.
    Skipped,
}

/// The difference between the arms and its confidence sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Δ: p_T − p_C, or (p_T − p_C) / p_C when relative.
    pub difference: f64,
    /// se² of Δ.
    pub variance: f64,
    /// h: the confidence sequence's half-width.
    pub half_width: f64,
    /// The harmful bound: Δ − h (better lower) or −(Δ + h) (better higher). The gate's value.
    pub bound: f64,
}

/// A comparison's result: the verdict, the arms, the estimate when there is one, and a
/// message for people.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// pass, fail, waiting or skipped.
    pub verdict: Verdict,
    /// The arm with the flag.
    pub treatment: Arm,
    /// The arm without it.
    pub control: Arm,
    /// Δ, h and the bound; absent while waiting or skipped.
    pub estimate: Option<Estimate>,
    /// The result in the user's terms.
    pub message: String,
}

/// Counts that cannot be compared; the message says which and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CompareError {
    /// A count is NaN or infinite.
    #[error("{arm} {what} is not a finite number ({value})")]
    NotFinite {
        /// "treatment" or "control".
        arm: &'static str,
        /// "units" or "events".
        what: &'static str,
        /// The value.
        value: f64,
    },
    /// A count is below zero.
    #[error("{arm} {what} is negative ({value})")]
    Negative {
        /// "treatment" or "control".
        arm: &'static str,
        /// "units" or "events".
        what: &'static str,
        /// The value.
        value: f64,
    },
    /// More events than units in an arm.
    #[error("{arm} has more events ({events}) than units ({units})")]
    EventsAboveUnits {
        /// "treatment" or "control".
        arm: &'static str,
        /// The events.
        events: f64,
        /// The units.
        units: f64,
    },
    /// The split of units is far from the percent in force.
    #[error(
        "sample ratio mismatch: {observed} % of units with the flag, expected {expected} % \
         (chi-squared {chi2:.1}, p = {p_value:.1e})"
    )]
    SampleRatioMismatch {
        /// The observed share of units with the flag, in percent, as printed.
        observed: String,
        /// The expected share, in percent, as printed.
        expected: String,
        /// The χ² statistic.
        chi2: f64,
        /// Its p-value (1 degree of freedom).
        p_value: f64,
    },
    /// The settings are out of range (caught by validation before this).
    #[error("invalid compare settings: {0}")]
    Settings(String),
}

/// The p-value below which the sample-ratio test reports a mismatch.
pub const SAMPLE_RATIO_P: f64 = 0.001;

/// ρ of the confidence sequence for `alpha` (one-sided) and the tuning parameter `n_star`.
pub fn rho(alpha: f64, n_star: f64) -> f64 {
    let l = -2.0 * (2.0 * alpha).ln();
    ((l + (l + 1.0).ln()) / n_star).sqrt()
}

/// The one-sided asymptotic confidence sequence's half-width for a difference whose variance
/// is `variance` (se²) over `n` units in all, at `alpha` with tuning parameter `n_star`.
pub fn half_width(variance: f64, n: f64, alpha: f64, n_star: f64) -> f64 {
    if n <= 0.0 || variance <= 0.0 {
        return 0.0;
    }
    let rho = rho(alpha, n_star);
    let s2 = variance * n;
    let nr2 = n * rho * rho;
    let scale = 2.0 * (nr2 + 1.0) / ((n * rho) * (n * rho));
    let log = (1.0 + (nr2 + 1.0).sqrt() / (2.0 * alpha)).ln();
    (s2 * scale * log).sqrt()
}

/// Δ and se² for the arms, absolute or relative (delta method). `None` when relative and the
/// control's rate is 0.
pub fn difference(treatment: Arm, control: Arm, relative: bool) -> Option<(f64, f64)> {
    let (pt, pc) = (treatment.rate, control.rate);
    let (nt, nc) = (treatment.units, control.units);
    let vt = pt * (1.0 - pt);
    let vc = pc * (1.0 - pc);
    if relative {
        if pc <= 0.0 {
            return None;
        }
        let delta = (pt - pc) / pc;
        let se2 = vt / (pc * pc * nt) + vc * pt * pt / (pc.powi(4) * nc);
        Some((delta, se2))
    } else {
        Some((pt - pc, vt / nt + vc / nc))
    }
}

/// The harmful bound for Δ and h: Δ − h when lower is better, −(Δ + h) when higher is.
pub fn harmful_bound(better: Direction, difference: f64, half_width: f64) -> f64 {
    match better {
        Direction::Lower => difference - half_width,
        Direction::Higher => -(difference + half_width),
    }
}

/// The χ² statistic (1 degree of freedom) of `treatment : control` units against a share
/// `expected` (0 < expected < 1) with the flag, and its p-value.
pub fn sample_ratio_test(treatment: f64, control: f64, expected: f64) -> (f64, f64) {
    let n = treatment + control;
    let et = n * expected;
    let ec = n * (1.0 - expected);
    if n <= 0.0 || et <= 0.0 || ec <= 0.0 {
        return (0.0, 1.0);
    }
    let chi2 = (treatment - et).powi(2) / et + (control - ec).powi(2) / ec;
    (chi2, chi2_sf_1dof(chi2))
}

/// The survival function of χ² with one degree of freedom: P(X > x) = erfc(√(x/2)).
pub fn chi2_sf_1dof(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    erfc((x / 2.0).sqrt())
}

/// The complementary error function, with a relative error below 1.2e-7 everywhere
/// (the Chebyshev fit of Numerical Recipes, §6.2).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

fn check(arm: &'static str, counts: Counts) -> Result<(), CompareError> {
    for (what, value) in [("units", counts.units), ("events", counts.events)] {
        if !value.is_finite() {
            return Err(CompareError::NotFinite { arm, what, value });
        }
        if value < 0.0 {
            return Err(CompareError::Negative { arm, what, value });
        }
    }
    if counts.events > counts.units {
        return Err(CompareError::EventsAboveUnits {
            arm,
            events: counts.events,
            units: counts.units,
        });
    }
    Ok(())
}

fn check_settings(settings: &Settings) -> Result<(), CompareError> {
    let c = settings.confidence;
    if !(c > 0.0 && c < 1.0) {
        return Err(CompareError::Settings(format!(
            "confidence must be between 0 and 1, got {c}"
        )));
    }
    if !(settings.expected_units > 0.0 && settings.expected_units.is_finite()) {
        return Err(CompareError::Settings(format!(
            "expectedUnits must be positive, got {}",
            settings.expected_units
        )));
    }
    if settings.max_regression.is_nan() || settings.max_regression < 0.0 {
        return Err(CompareError::Settings(format!(
            "maxRegression must not be negative, got {}",
            settings.max_regression
        )));
    }
    Ok(())
}

/// Compares the arms of `sample` under `settings`: `skipped` at 0 % or 100 %, an error for
/// unusable counts or a sample-ratio mismatch, `waiting` below `minUnits` per arm (or, relative,
/// without control events), else `pass` or `fail` by the harmful bound.
pub fn compare(
    settings: &Settings,
    sample: &Sample,
    noun: &str,
) -> Result<Comparison, CompareError> {
    check_settings(settings)?;
    let percent = sample.percent;
    let treatment = Arm::of(sample.treatment);
    let control = Arm::of(sample.control);
    if !(percent > 0.0 && percent < 100.0) {
        let message = if percent >= 100.0 {
            "no control group at 100 %".to_owned()
        } else {
            format!("no treatment group at {} %", number(percent.max(0.0), 2))
        };
        return Ok(Comparison {
            verdict: Verdict::Skipped,
            treatment,
            control,
            estimate: None,
            message,
        });
    }
    check("treatment", sample.treatment)?;
    check("control", sample.control)?;
    let waiting = |message: String| Comparison {
        verdict: Verdict::Waiting,
        treatment,
        control,
        estimate: None,
        message,
    };
    let min = settings.min_units.max(1.0);
    if treatment.units < min || control.units < min {
        let (arm, which) = if treatment.units / min <= control.units / min {
            (treatment, "with")
        } else {
            (control, "without")
        };
        return Ok(waiting(format!(
            "collecting: {} of {} {noun} {which} the flag",
            grouped(arm.units.floor()),
            grouped(min)
        )));
    }
    if settings.sample_ratio && sample.ratio_settled {
        let (chi2, p_value) = sample_ratio_test(treatment.units, control.units, percent / 100.0);
        if p_value < SAMPLE_RATIO_P {
            let observed = 100.0 * treatment.units / (treatment.units + control.units);
            return Err(CompareError::SampleRatioMismatch {
                observed: number(observed, 1),
                expected: number(percent, 2),
                chi2,
                p_value,
            });
        }
    }
    let Some((delta, variance)) = difference(treatment, control, settings.relative) else {
        return Ok(waiting(format!(
            "collecting: no events without the flag yet over {} {noun}, so no relative \
             difference",
            grouped(control.units.floor())
        )));
    };
    let n = treatment.units + control.units;
    let alpha = 1.0 - settings.confidence;
    let h = half_width(variance, n, alpha, settings.expected_units);
    let bound = harmful_bound(settings.better, delta, h);
    let verdict = if bound > settings.max_regression {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    let estimate = Estimate {
        difference: delta,
        variance,
        half_width: h,
        bound,
    };
    let message = describe(settings, treatment, control, &estimate, noun);
    Ok(Comparison {
        verdict,
        treatment,
        control,
        estimate: Some(estimate),
        message,
    })
}

/// "with the flag 1.31 % vs 1.02 % without (+0.29 pp, at least +0.11 pp at 95 %) over
/// 41,200 / 4,080,000 requests".
fn describe(
    settings: &Settings,
    treatment: Arm,
    control: Arm,
    estimate: &Estimate,
    noun: &str,
) -> String {
    let (unit, scale) = if settings.relative {
        ("%", 100.0)
    } else {
        ("pp", 100.0)
    };
    let (word, limit) = match settings.better {
        Direction::Lower => ("at least", estimate.difference - estimate.half_width),
        Direction::Higher => ("at most", estimate.difference + estimate.half_width),
    };
    format!(
        "with the flag {} % vs {} % without ({} {unit}, {word} {} {unit} at {} %) over {} / {} {noun}",
        number(treatment.rate * 100.0, 2),
        number(control.rate * 100.0, 2),
        signed(estimate.difference * scale),
        signed(limit * scale),
        number(settings.confidence * 100.0, 1),
        grouped(treatment.units.round()),
        grouped(control.units.round()),
    )
}

/// `value` with at most `decimals` decimals, trailing zeros dropped ("1", "1.9", "1.31").
fn number(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    if text == "-0" { "0".to_owned() } else { text }
}

/// A signed number with two decimals: "+0.29", "-1.20", "+0.00".
fn signed(value: f64) -> String {
    let value = if value.abs() < 0.005 { 0.0 } else { value };
    if value < 0.0 {
        format!("{value:.2}")
    } else {
        format!("+{value:.2}")
    }
}

/// A whole number with thousands separators: "4,080,000".
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0.0 && digits != "0" {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The word for a gate's units, read from its `units` query: "users" or "sessions" when the
/// query counts them, "requests" when it counts requests, else "units".
pub fn unit_noun(units_query: &str) -> &'static str {
    let q = units_query.to_ascii_lowercase();
    if q.contains("user") {
        "users"
    } else if q.contains("session") {
        "sessions"
    } else if q.contains("request") {
        "requests"
    } else {
        "units"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1e-300)
    }

    fn sample(t: (f64, f64), c: (f64, f64), percent: f64) -> Sample {
        Sample {
            treatment: Counts::new(t.0, t.1),
            control: Counts::new(c.0, c.1),
            percent,
            ratio_settled: true,
        }
    }

    #[test]
    fn rho_at_95_percent_one_sided_with_n_star_5000() {
        // l = -2 ln 0.1 = 4.605170186; l + ln(l + 1) = 4.605170186 + 1.723689... = 6.328859...
        // rho = sqrt(6.328859 / 5000) = 0.0355777...
        let l = -2.0 * 0.1f64.ln();
        let expected = ((l + (l + 1.0).ln()) / 5000.0).sqrt();
        assert!(close(rho(0.05, 5000.0), expected, 1e-12));
        assert!(close(rho(0.05, 5000.0), 0.035_577_7, 1e-5));
    }

    #[test]
    fn erfc_matches_tables() {
        assert!(close(erfc(0.0), 1.0, 1e-7));
        assert!(close(erfc(0.5), 0.479_500_122, 1e-6));
        assert!(close(erfc(1.0), 0.157_299_207, 1e-6));
        assert!(close(erfc(2.0), 0.004_677_735, 1e-6));
        assert!(close(erfc(3.0), 2.209_049_7e-5, 1e-6));
        assert!(close(erfc(-1.0), 1.842_700_793, 1e-6));
    }

    #[test]
    fn chi2_critical_value_at_one_in_a_thousand() {
        // The 0.999 quantile of chi-squared with 1 dof is 10.828.
        assert!(close(chi2_sf_1dof(10.828), 0.001, 1e-3));
        assert!(close(chi2_sf_1dof(3.841), 0.05, 1e-3));
        assert_eq!(chi2_sf_1dof(0.0), 1.0);
    }

    #[test]
    fn equal_rates_pass_with_a_symmetric_interval() {
        // p = 0.01 in both arms of 10,000: se² = 2 · 0.0099 / 10,000 = 1.98e-6, N = 20,000,
        // h = 0.00403591027502 (computed by hand from the formula at 95 %, N* = 5000).
        let r = compare(
            &Settings::default(),
            &sample((10_000.0, 100.0), (10_000.0, 100.0), 50.0),
            "requests",
        )
        .unwrap();
        let e = r.estimate.unwrap();
        assert_eq!(e.difference, 0.0);
        assert!(close(e.variance, 1.98e-6, 1e-12));
        assert!(close(e.half_width, 0.004_035_910_275_02, 1e-9));
        assert!(close(e.bound, -0.004_035_910_275_02, 1e-9));
        assert_eq!(r.verdict, Verdict::Pass);
    }

    #[test]
    fn a_clear_regression_fails_with_the_message_in_the_users_terms() {
        // 540 of 41,200 (1.3107 %) vs 41,616 of 4,080,000 (1.02 %): Δ = 0.0029067961165,
        // se² = 3.16431005147e-7, h = 0.00204143837837, bound Δ − h = 0.000865357738134.
        let r = compare(
            &Settings::default(),
            &sample((41_200.0, 540.0), (4_080_000.0, 41_616.0), 1.0),
            "requests",
        )
        .unwrap();
        let e = r.estimate.unwrap();
        assert!(close(e.difference, 0.002_906_796_116_5, 1e-9));
        assert!(close(e.variance, 3.164_310_051_47e-7, 1e-9));
        assert!(close(e.half_width, 0.002_041_438_378_37, 1e-9));
        assert!(close(e.bound, 0.000_865_357_738_134, 1e-8));
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(
            r.message,
            "with the flag 1.31 % vs 1.02 % without (+0.29 pp, at least +0.09 pp at 95 %) \
             over 41,200 / 4,080,000 requests"
        );
        // The same difference passes when 0.1 pp is allowed.
        let lenient = Settings {
            max_regression: 0.001,
            ..Settings::default()
        };
        let r = compare(
            &lenient,
            &sample((41_200.0, 540.0), (4_080_000.0, 41_616.0), 1.0),
            "requests",
        )
        .unwrap();
        assert_eq!(r.verdict, Verdict::Pass);
    }

    #[test]
    fn one_arm_without_events() {
        // 0 of 1000 vs 10 of 1000: se² = 0 + 0.0099 / 1000 = 9.9e-6, N = 2000,
        // h = 0.00908063093580, bound = −0.01 − h.
        let settings = Settings {
            min_units: 1000.0,
            ..Settings::default()
        };
        let r = compare(
            &settings,
            &sample((1000.0, 0.0), (1000.0, 10.0), 50.0),
            "users",
        )
        .unwrap();
        let e = r.estimate.unwrap();
        assert!(close(e.variance, 9.9e-6, 1e-12));
        assert!(close(e.half_width, 0.009_080_630_935_80, 1e-9));
        assert!(close(e.bound, -0.019_080_630_935_80, 1e-9));
        assert_eq!(r.verdict, Verdict::Pass);
        assert_eq!(r.treatment.rate, 0.0);
    }

    #[test]
    fn one_arm_without_units_waits() {
        let r = compare(
            &Settings::default(),
            &sample((0.0, 0.0), (90_000.0, 10.0), 1.0),
            "requests",
        )
        .unwrap();
        assert_eq!(r.verdict, Verdict::Waiting);
        assert_eq!(r.estimate, None);
        assert_eq!(r.message, "collecting: 0 of 500 requests with the flag");
        let r = compare(
            &Settings::default(),
            &sample((900.0, 1.0), (340.4, 1.0), 90.0),
            "units",
        )
        .unwrap();
        assert_eq!(r.verdict, Verdict::Waiting);
        assert_eq!(r.message, "collecting: 340 of 500 units without the flag");
    }

    #[test]
    fn no_events_in_either_arm_pass_at_zero() {
        let r = compare(
            &Settings::default(),
            &sample((5000.0, 0.0), (50_000.0, 0.0), 10.0),
            "requests",
        )
        .unwrap();
        let e = r.estimate.unwrap();
        assert_eq!(
            (e.difference, e.variance, e.half_width, e.bound),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!(r.verdict, Verdict::Pass, "0 > maxRegression 0 is false");
    }

    #[test]
    fn relative_mode_uses_the_delta_method() {
        // 1.5 % of 20,000 vs 1 % of 200,000: Δ = 0.5, se² = 0.01478/(1e-4·20,000)
        // + 0.0099·2.25e-4/(1e-8·200,000) = 0.0073875 + 0.00111375 = 0.00850125,
        // h = 0.29572058584352, bound = 0.20427941415648.
        let settings = Settings {
            relative: true,
            max_regression: 0.1,
            ..Settings::default()
        };
        let r = compare(
            &settings,
            &sample((20_000.0, 300.0), (200_000.0, 2000.0), 10.0),
            "requests",
        )
        .unwrap();
        let e = r.estimate.unwrap();
        assert!(close(e.difference, 0.5, 1e-12));
        assert!(close(e.variance, 0.008_501_25, 1e-12));
        assert!(close(e.half_width, 0.295_720_585_843_52, 1e-9));
        assert!(close(e.bound, 0.204_279_414_156_48, 1e-9));
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(
            r.message,
            "with the flag 1.5 % vs 1 % without (+50.00 %, at least +20.43 % at 95 %) \
             over 20,000 / 200,000 requests"
        );
    }

    #[test]
    fn relative_mode_waits_for_control_events() {
        let settings = Settings {
            relative: true,
            ..Settings::default()
        };
        let r = compare(
            &settings,
            &sample((1000.0, 3.0), (99_000.0, 0.0), 1.0),
            "requests",
        )
        .unwrap();
        assert_eq!(r.verdict, Verdict::Waiting);
        assert!(
            r.message
                .starts_with("collecting: no events without the flag")
        );
    }

    #[test]
    fn better_higher_looks_at_the_upper_end() {
        // Conversions 10 % vs 12 % over 5000 each: Δ = −0.02, se² = 0.09/5000 + 0.1056/5000
        // = 3.912e-5, h = 0.017521198406770, bound −(Δ + h) = 0.002478801593230.
        let settings = Settings {
            better: Direction::Higher,
            ..Settings::default()
        };
        let r = compare(
            &settings,
            &sample((5000.0, 500.0), (5000.0, 600.0), 50.0),
            "users",
        )
        .unwrap();
        let e = r.estimate.unwrap();
        assert!(close(e.variance, 3.912e-5, 1e-12));
        assert!(close(e.half_width, 0.017_521_198_406_770, 1e-9));
        assert!(close(e.bound, 0.002_478_801_593_230, 1e-8));
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(
            r.message,
            "with the flag 10 % vs 12 % without (-2.00 pp, at most -0.25 pp at 95 %) \
             over 5,000 / 5,000 users"
        );
        let tolerant = Settings {
            max_regression: 0.003,
            ..settings
        };
        let r = compare(
            &tolerant,
            &sample((5000.0, 500.0), (5000.0, 600.0), 50.0),
            "users",
        )
        .unwrap();
        assert_eq!(r.verdict, Verdict::Pass);
    }

    #[test]
    fn the_tuning_parameter_changes_the_width() {
        // se² = 2e-6 over N = 20,000 at 95 %: h = 0.00485062791137 (N* = 100),
        // 0.00405624244539 (N* = 5000, near N: the narrowest), 0.00934355068419 (N* = 1e6).
        assert!(close(
            half_width(2e-6, 20_000.0, 0.05, 100.0),
            0.004_850_627_911_37,
            1e-9
        ));
        assert!(close(
            half_width(2e-6, 20_000.0, 0.05, 5000.0),
            0.004_056_242_445_39,
            1e-9
        ));
        assert!(close(
            half_width(2e-6, 20_000.0, 0.05, 1e6),
            0.009_343_550_684_19,
            1e-9
        ));
        // A higher confidence widens it: 99 % gives 0.00484029631167 for se² = 1.98e-6.
        assert!(close(
            half_width(1.98e-6, 20_000.0, 0.01, 5000.0),
            0.004_840_296_311_67,
            1e-9
        ));
    }

    #[test]
    fn no_second_cohort_is_skipped() {
        let r = compare(
            &Settings::default(),
            &sample((10_000.0, 100.0), (0.0, 0.0), 100.0),
            "requests",
        )
        .unwrap();
        assert_eq!(r.verdict, Verdict::Skipped);
        assert_eq!(r.message, "no control group at 100 %");
        let r = compare(
            &Settings::default(),
            &sample((0.0, 0.0), (1.0, 0.0), 0.0),
            "requests",
        )
        .unwrap();
        assert_eq!(r.verdict, Verdict::Skipped);
        assert_eq!(r.message, "no treatment group at 0 %");
    }

    #[test]
    fn unusable_counts_are_errors() {
        let s = Settings::default();
        let err =
            compare(&s, &sample((100.0, 101.0), (1000.0, 1.0), 10.0), "requests").unwrap_err();
        assert_eq!(
            err.to_string(),
            "treatment has more events (101) than units (100)"
        );
        let err = compare(&s, &sample((100.0, 1.0), (-1.0, 0.0), 10.0), "requests").unwrap_err();
        assert_eq!(err.to_string(), "control units is negative (-1)");
        let err = compare(&s, &sample((f64::NAN, 1.0), (1.0, 0.0), 10.0), "requests").unwrap_err();
        assert_eq!(
            err.to_string(),
            "treatment units is not a finite number (NaN)"
        );
        let err = compare(
            &s,
            &sample((1.0, 1.0), (1.0, f64::INFINITY), 10.0),
            "requests",
        )
        .unwrap_err();
        assert!(matches!(
            err,
            CompareError::NotFinite {
                arm: "control",
                what: "events",
                ..
            }
        ));
    }

    #[test]
    fn sample_ratio_mismatch_is_an_error_once_settled() {
        let settings = Settings {
            sample_ratio: true,
            ..Settings::default()
        };
        // 1,900 of 100,000 with the flag at 1 %: χ² = 818.2, p ≈ 6e-180.
        let skewed = sample((1900.0, 19.0), (98_100.0, 981.0), 1.0);
        let err = compare(&settings, &skewed, "requests").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("sample ratio mismatch: 1.9 % of units with the flag, expected 1 %"),
            "{err}"
        );
        // Not during the first interval after a percent change, nor when not asked for.
        let unsettled = Sample {
            ratio_settled: false,
            ..skewed
        };
        assert_eq!(
            compare(&settings, &unsettled, "requests").unwrap().verdict,
            Verdict::Pass
        );
        assert_eq!(
            compare(&Settings::default(), &skewed, "requests")
                .unwrap()
                .verdict,
            Verdict::Pass
        );
        // 1,040 of 100,000: χ² = 1.616, p = 0.2036, no mismatch.
        let (chi2, p) = sample_ratio_test(1040.0, 98_960.0, 0.01);
        assert!(close(chi2, 1.616_161_616_16, 1e-9));
        assert!(close(p, 0.203_627_827, 1e-5));
        let fine = sample((1040.0, 10.0), (98_960.0, 990.0), 1.0);
        assert_eq!(
            compare(&settings, &fine, "requests").unwrap().verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(4_080_000.0), "4,080,000");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(0.0), "0");
        assert_eq!(number(1.0, 2), "1");
        assert_eq!(number(99.9, 1), "99.9");
        assert_eq!(signed(0.291), "+0.29");
        assert_eq!(signed(-0.001), "+0.00");
        assert_eq!(
            unit_noun("sum(increase(http_requests_total[5m]))"),
            "requests"
        );
        assert_eq!(unit_noun("count(active_users)"), "users");
        assert_eq!(unit_noun("sum(x)"), "units");
    }

    mod properties {
        use super::super::*;
        use super::sample;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn half_width_shrinks_as_units_grow(
                pt in 0.001f64..0.5,
                pc in 0.001f64..0.5,
                n in 500.0f64..1e7,
                factor in 1.01f64..100.0,
                share in 0.01f64..0.99,
                confidence in 0.8f64..0.999,
                n_star in 1.0f64..1e7,
            ) {
                let width = |total: f64| {
                    let t = Arm { units: total * share, events: 0.0, rate: pt };
                    let c = Arm { units: total * (1.0 - share), events: 0.0, rate: pc };
                    let (_, se2) = difference(t, c, false).unwrap();
                    half_width(se2, total, 1.0 - confidence, n_star)
                };
                prop_assert!(width(n * factor) < width(n));
            }

            #[test]
            fn swapping_better_mirrors_the_bound(
                nt in 500u32..1_000_000,
                nc in 500u32..1_000_000,
                xt in 0.0f64..1.0,
                xc in 0.0f64..1.0,
                relative in any::<bool>(),
            ) {
                let (nt, nc) = (f64::from(nt), f64::from(nc));
                let lower = Settings { relative, min_units: 1.0, ..Settings::default() };
                let higher = Settings { better: Direction::Higher, ..lower };
                // Treatment and control swapped: Δ changes sign, h stays (absolute mode), so the
                // harmful bound for "lower is better" on (T, C) equals the one for "higher is
                // better" on (C, T).
                let a = sample((nt, (xt * nt).floor()), (nc, (xc * nc).floor()), 50.0);
                let b = sample((nc, (xc * nc).floor()), (nt, (xt * nt).floor()), 50.0);
                if !relative {
                    let ra = compare(&lower, &a, "units").unwrap().estimate.unwrap();
                    let rb = compare(&higher, &b, "units").unwrap().estimate.unwrap();
                    prop_assert!((ra.bound - rb.bound).abs() <= 1e-12);
                }
                // On the same arms, lower's bound Δ − h and higher's −(Δ + h) mirror around −h.
                if let (Ok(l), Ok(h)) = (compare(&lower, &a, "units"), compare(&higher, &a, "units"))
                    && let (Some(l), Some(h)) = (l.estimate, h.estimate)
                {
                    prop_assert!((l.bound + h.bound + 2.0 * l.half_width).abs() <= 1e-9);
                    prop_assert_eq!(l.half_width, h.half_width);
                }
            }
        }
    }
}
