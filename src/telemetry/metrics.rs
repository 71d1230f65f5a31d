//! The controller's own Prometheus metrics, in a registry of their own (never the crate's
//! global default registry), served as text on `/metrics`.
//!
//! Every name starts with `rollgate_`, carries its unit (`_seconds`, `_percent`, `_total`)
//! and has a help text. Labels:
//!
//! | metric | labels | series |
//! |---|---|---|
//! | `rollgate_rollout_percent` | `namespace`, `name` | one per rollout |
//! | `rollgate_rollout_phase` | `namespace`, `name`, `phase` | one per rollout (its phase) |
//! | `rollgate_gate_value` | `namespace`, `name`, `gate` | one per rollout and gate |
//! | `rollgate_checkpoints_total` | `namespace`, `name`, `verdict` | up to 3 per rollout |
//! | `rollgate_transitions_total` | `namespace`, `name`, `kind` | up to one per rollout and transition kind (10 kinds) |
//! | `rollgate_reconcile_duration_seconds` | `outcome` | one histogram per outcome |
//! | `rollgate_reconcile_errors_total` | `reason` | one per error reason |
//! | `rollgate_api_writes_total` | `kind` | 4 (`status`, `target`, `event`, `annotation`) |
//! | `rollgate_leader` | none | 1 |
//!
//! Cardinality: the per-rollout series are bounded by rollouts × (2 + gates + 3 verdicts + 10
//! transition kinds); with at most 32 gates per rollout (the CRD's limit) that is at most 47
//! series per rollout (a typical plan of 3 gates that ran to the end has about 10), and
//! [`Metrics::forget_rollout`] removes all of them, the counters' too, when a rollout is
//! deleted. The counters carry the rollout's `namespace` and `name` so the dashboard's
//! decision panels and rollback annotations can name and filter rollouts. The phase is exported info-style (only the current phase's series, value 1)
//! rather than one-hot over all six phases, which would triple the series at 10,000 rollouts
//! (`benches/metrics.rs`). The other label values come from fixed sets the controller chooses
//! (never from user input), so they are bounded by the code.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};
use prometheus::{
    Encoder as _, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::api::{CheckpointVerdict, Percent, Phase};

/// The transition kind alerts and the dashboard's annotation watch, exported at 0 from the
/// moment a rollout is known.
const ROLLBACK: &str = "rollback";

/// The content type of [`Metrics::encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Upper bounds of the reconcile duration histogram, in seconds: most reconciles read caches
/// and take milliseconds; one that runs gates waits for Prometheus and friends.
const RECONCILE_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The controller's metrics. Cheap to clone: clones share the registry and the series.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    reconcile_duration: HistogramVec,
    errors: IntCounterVec,
    writes: IntCounterVec,
    leader: IntGauge,
    parked: IntGauge,
    parked_oldest: Gauge,
    folded: IntCounter,
    /// Which per-rollout series exist, so a deleted rollout or gate leaves none behind.
    known: Arc<Mutex<HashMap<RolloutKey, Known>>>,
}

type RolloutKey = (String, String);

/// What is exported for one rollout: plain values, turned into samples only while a scrape
/// encodes them (a labelled `GaugeVec` keeps an object of about a kilobyte per series).
#[derive(Default)]
struct Known {
    /// `rollgate_rollout_percent`; `None` before the start (no series).
    percent: Option<Percent>,
    /// `rollgate_rollout_phase`: the current phase's series only; `None` before the first.
    phase: Option<Phase>,
    /// `rollgate_gate_value` per gate; a gate without data or with an error has no entry.
    gates: BTreeMap<String, f64>,
    /// Checkpoints by verdict (pass, warn, fail), all three exported from the first sight.
    verdicts: [u64; 3],
    /// Transitions by kind; `rollback` exported at 0 from the first sight.
    transitions: Transitions,
}

/// Transition counts by kind, sorted by kind: a rollout has a few kinds, so a small vector
/// (one allocation) rather than a map node of eleven slots.
#[derive(Default)]
struct Transitions(Vec<(Box<str>, u64)>);

impl Transitions {
    /// The count of `kind`, from 0 when it was not counted yet.
    fn entry(&mut self, kind: &str) -> &mut u64 {
        let at = match self.0.binary_search_by(|(k, _)| (**k).cmp(kind)) {
            Ok(at) => at,
            Err(at) => {
                self.0.insert(at, (kind.into(), 0));
                at
            }
        };
        &mut self.0[at].1
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Kind and count, by kind.
    fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(k, n)| (&**k, *n))
    }
}

/// The checkpoint verdicts in the order of [`Known::verdicts`].
const VERDICTS: [CheckpointVerdict; 3] = [
    CheckpointVerdict::Pass,
    CheckpointVerdict::Warn,
    CheckpointVerdict::Fail,
];

fn verdict_index(verdict: CheckpointVerdict) -> usize {
    match verdict {
        CheckpointVerdict::Pass => 0,
        CheckpointVerdict::Warn => 1,
        CheckpointVerdict::Fail => 2,
    }
}

/// The per-rollout series: the gauges `rollgate_rollout_percent`, `rollgate_rollout_phase`
/// and `rollgate_gate_value`, and the decision counters `rollgate_checkpoints_total` and
/// `rollgate_transitions_total`, exported from the values kept in [`Known`]: plain numbers
/// per rollout, turned into samples only while a scrape encodes them. Labelled
/// `GaugeVec`/`IntCounterVec` series would keep an object of about a kilobyte each, some
/// 70 MB more at 10,000 rollouts for the counters and 15 MB for the gauges.
struct RolloutSeries {
    known: Arc<Mutex<HashMap<RolloutKey, Known>>>,
    percent: Desc,
    phase: Desc,
    gate_value: Desc,
    checkpoints: Desc,
    transitions: Desc,
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

fn counter_sample(labels: Vec<LabelPair>, value: u64) -> proto::Metric {
    let mut counter = proto::Counter::default();
    // Counts stay far below 2^53, where an f64 holds every integer exactly.
    counter.set_value(value as f64);
    let mut metric = proto::Metric::from_label(labels);
    metric.set_counter(counter);
    metric
}

fn gauge_sample(labels: Vec<LabelPair>, value: f64) -> proto::Metric {
    let mut gauge = proto::Gauge::default();
    gauge.set_value(value);
    let mut metric = proto::Metric::from_label(labels);
    metric.set_gauge(gauge);
    metric
}

fn family(desc: &Desc, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(desc.fq_name.clone());
    family.set_help(desc.help.clone());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

impl Collector for RolloutSeries {
    fn desc(&self) -> Vec<&Desc> {
        vec![
            &self.percent,
            &self.phase,
            &self.gate_value,
            &self.checkpoints,
            &self.transitions,
        ]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let mut keys: Vec<&RolloutKey> = known.keys().collect();
        keys.sort();
        let mut percents = Vec::new();
        let mut phases = Vec::new();
        let mut gate_values = Vec::new();
        let mut checkpoints = Vec::new();
        let mut transitions = Vec::new();
        for key in keys {
            let Some(entry) = known.get(key) else {
                continue;
            };
            let (namespace, name) = (key.0.as_str(), key.1.as_str());
            // Labels in name order, as the text format's other series have them.
            if let Some(percent) = entry.percent {
                percents.push(gauge_sample(
                    vec![label("name", name), label("namespace", namespace)],
                    percent.as_f64(),
                ));
            }
            if let Some(phase) = entry.phase {
                phases.push(gauge_sample(
                    vec![
                        label("name", name),
                        label("namespace", namespace),
                        label("phase", phase.as_str()),
                    ],
                    1.0,
                ));
            }
            for (gate, value) in &entry.gates {
                gate_values.push(gauge_sample(
                    vec![
                        label("gate", gate),
                        label("name", name),
                        label("namespace", namespace),
                    ],
                    *value,
                ));
            }
            if entry.verdicts_seen() {
                for verdict in VERDICTS {
                    checkpoints.push(counter_sample(
                        vec![
                            label("name", name),
                            label("namespace", namespace),
                            label("verdict", verdict.as_str()),
                        ],
                        entry.verdicts[verdict_index(verdict)],
                    ));
                }
            }
            for (kind, count) in entry.transitions.iter() {
                transitions.push(counter_sample(
                    vec![
                        label("kind", kind),
                        label("name", name),
                        label("namespace", namespace),
                    ],
                    count,
                ));
            }
        }
        let mut out = Vec::new();
        for (desc, kind, metrics) in [
            (&self.percent, MetricType::GAUGE, percents),
            (&self.phase, MetricType::GAUGE, phases),
            (&self.gate_value, MetricType::GAUGE, gate_values),
            (&self.checkpoints, MetricType::COUNTER, checkpoints),
            (&self.transitions, MetricType::COUNTER, transitions),
        ] {
            if !metrics.is_empty() {
                out.push(family(desc, kind, metrics));
            }
        }
        out
    }
}

impl Known {
    /// Whether the rollout's checkpoint counters are exported: from the first sight of the
    /// rollout on, which `transitions` always records (its `rollback` entry).
    fn verdicts_seen(&self) -> bool {
        !self.transitions.is_empty()
    }
}

impl Metrics {
    /// Creates the metrics in a new registry. Fails only if two metrics clash, which is a bug.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let percent_desc = Desc::new(
            "rollgate_rollout_percent".to_owned(),
            "The percent the controller last wrote to the rollout's target (absent before the start).".to_owned(),
            vec!["namespace".to_owned(), "name".to_owned()],
            HashMap::new(),
        )?;
        let phase_desc = Desc::new(
            "rollgate_rollout_phase".to_owned(),
            "1, labelled with the rollout's current phase (Pending, Progressing, Paused, Succeeded, RolledBack or Failed); one series per rollout.".to_owned(),
            vec!["namespace".to_owned(), "name".to_owned(), "phase".to_owned()],
            HashMap::new(),
        )?;
        let gate_value_desc = Desc::new(
            "rollgate_gate_value".to_owned(),
            "The value a gate returned at its last checkpoint; absent when it returned no data or an error.".to_owned(),
            vec!["namespace".to_owned(), "name".to_owned(), "gate".to_owned()],
            HashMap::new(),
        )?;
        let checkpoints_desc = Desc::new(
            "rollgate_checkpoints_total".to_owned(),
            "Checkpoints taken, by rollout and verdict (pass, warn, fail).".to_owned(),
            vec![
                "namespace".to_owned(),
                "name".to_owned(),
                "verdict".to_owned(),
            ],
            HashMap::new(),
        )?;
        let transitions_desc = Desc::new(
            "rollgate_transitions_total".to_owned(),
            "Rollout transitions, by rollout and kind (pending, start, advance, pause, resume, drift, rollback, complete, replan, invalid).".to_owned(),
            vec!["namespace".to_owned(), "name".to_owned(), "kind".to_owned()],
            HashMap::new(),
        )?;
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "rollgate_reconcile_duration_seconds",
                "Time one reconcile took, gates included, by outcome.",
            )
            .buckets(RECONCILE_BUCKETS.to_vec()),
            &["outcome"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "rollgate_reconcile_errors_total",
                "Reconciles that failed, by reason (timeout, fenced, status_write, target_write, annotation_write).",
            ),
            &["reason"],
        )?;
        let writes = IntCounterVec::new(
            Opts::new(
                "rollgate_api_writes_total",
                "Writes the controller made, by kind (status, target, event, annotation).",
            ),
            &["kind"],
        )?;
        let leader = IntGauge::new(
            "rollgate_leader",
            "1 while this replica holds the leader lease (or runs without leader election), else 0.",
        )?;
        registry.register(Box::new(reconcile_duration.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        let parked = IntGauge::new(
            "rollgate_status_parked",
            "Routine checkpoint statuses parked under --kube-api-qps, waiting for a token (one per rollout at most).",
        )?;
        let parked_oldest = Gauge::new(
            "rollgate_status_parked_oldest_seconds",
            "How long the oldest parked routine status has waited; 0 when none is parked.",
        )?;
        let folded = IntCounter::new(
            "rollgate_status_folded_total",
            "Routine checkpoint statuses folded: replaced by a newer status of the same rollout before they were written.",
        )?;
        registry.register(Box::new(parked.clone()))?;
        registry.register(Box::new(parked_oldest.clone()))?;
        registry.register(Box::new(folded.clone()))?;
        let known: Arc<Mutex<HashMap<RolloutKey, Known>>> = Arc::default();
        registry.register(Box::new(RolloutSeries {
            known: Arc::clone(&known),
            percent: percent_desc,
            phase: phase_desc,
            gate_value: gate_value_desc,
            checkpoints: checkpoints_desc,
            transitions: transitions_desc,
        }))?;
        Ok(Metrics {
            registry,
            reconcile_duration,
            errors,
            writes,
            leader,
            parked,
            parked_oldest,
            folded,
            known,
        })
    }

    /// Records a rollout's percent and phase. `None` removes the percent series (nothing
    /// written yet) or the phase series (no phase yet).
    pub fn set_rollout(
        &self,
        namespace: &str,
        name: &str,
        percent: Option<Percent>,
        phase: Option<Phase>,
    ) {
        let mut known = self.lock();
        let entry = known
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default();
        entry.percent = percent;
        entry.phase = phase;
        // The decision counters a dashboard or an alert reads through `increase()` start at 0
        // as soon as the rollout is known: a series born at 1 shows no increase, so the first
        // rollback (or failing checkpoint) of a rollout would go unseen.
        entry.transitions.entry(ROLLBACK);
    }

    /// Records the value a gate returned at the last checkpoint. `None` (no data, or an
    /// error) removes the series: a missing value must not read as 0, which would look like a
    /// pass to an alert rule.
    pub fn set_gate_value(&self, namespace: &str, name: &str, gate: &str, value: Option<f64>) {
        let mut known = self.lock();
        let entry = known
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default();
        match value {
            Some(v) => match entry.gates.get_mut(gate) {
                Some(slot) => *slot = v,
                None => {
                    entry.gates.insert(gate.to_owned(), v);
                }
            },
            None => {
                entry.gates.remove(gate);
            }
        }
    }

    /// Removes the value series of the rollout's gates not named in `gates` (a gate removed
    /// from the spec leaves no series behind).
    pub fn retain_gates(&self, namespace: &str, name: &str, gates: &[&str]) {
        let mut known = self.lock();
        let Some(entry) = known.get_mut(&(namespace.to_owned(), name.to_owned())) else {
            return;
        };
        entry.gates.retain(|g, _| gates.contains(&g.as_str()));
    }

    /// Removes every series of a rollout (it was deleted).
    pub fn forget_rollout(&self, namespace: &str, name: &str) {
        self.lock().remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// The (namespace, name) of every rollout with series, for forgetting those a relist no
    /// longer shows.
    pub fn known_rollouts(&self) -> Vec<(String, String)> {
        self.lock().keys().cloned().collect()
    }

    /// Counts a rollout's checkpoint by its verdict.
    pub fn count_checkpoint(&self, namespace: &str, name: &str, verdict: CheckpointVerdict) {
        let mut known = self.lock();
        let entry = known
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default();
        entry.transitions.entry(ROLLBACK);
        entry.verdicts[verdict_index(verdict)] += 1;
    }

    /// Counts a rollout's transition by kind; pass `HistoryKind::as_str()` (`advance`,
    /// `rollback`, …), a word from a fixed set.
    pub fn count_transition(&self, namespace: &str, name: &str, kind: &str) {
        let mut known = self.lock();
        let entry = known
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default();
        entry.transitions.entry(ROLLBACK);
        *entry.transitions.entry(kind) += 1;
    }

    /// Records how long a reconcile took; `outcome` is a word from a fixed set such as
    /// `success` or `error`.
    pub fn observe_reconcile(&self, seconds: f64, outcome: &str) {
        self.reconcile_duration
            .with_label_values(&[outcome])
            .observe(seconds);
    }

    /// Counts an error by reason, a word from a fixed set (`kube_api`, `target`, `gate`, …),
    /// never a message.
    pub fn count_error(&self, reason: &str) {
        self.errors.with_label_values(&[reason]).inc();
    }

    /// Counts a write to the API server or a target: `status`, `target`, `event` or
    /// `annotation`.
    pub fn count_write(&self, kind: &str) {
        self.writes.with_label_values(&[kind]).inc();
    }

    /// Records the routine statuses parked under the API budget: how many, the oldest one's
    /// wait, and how many were folded since the start (`folded_total` only grows).
    pub fn set_parked(
        &self,
        parked: usize,
        oldest: Option<std::time::Duration>,
        folded_total: u64,
    ) {
        self.parked.set(i64::try_from(parked).unwrap_or(i64::MAX));
        self.parked_oldest
            .set(oldest.map_or(0.0, |age| age.as_secs_f64()));
        let counted = self.folded.get();
        if folded_total > counted {
            self.folded.inc_by(folded_total - counted);
        }
    }

    /// Records whether this replica leads (see `controller::leader`).
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Every metric in the Prometheus text exposition format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, prometheus::Error> {
        let families = self.registry.gather();
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&families, &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }

    /// The registry, for a caller that wants to add its own collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RolloutKey, Known>> {
        // The map only says which series exist; a panic elsewhere cannot leave it inconsistent
        // in a way that matters more than a stale series, so a poisoned lock is used as is.
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sample of the exposition: name, sorted labels, value.
    #[derive(Debug, PartialEq)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    /// Parses the text exposition format (enough of it for our output: no escapes in values
    /// other than what our label values contain, which is none).
    fn parse(text: &str) -> Vec<Sample> {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect("a number"),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("labels end with }");
                    let mut labels: Vec<(String, String)> = inner
                        .split("\",")
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| {
                            let (k, v) = kv.split_once("=\"").expect("label=\"value\"");
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    labels.sort();
                    (name.to_owned(), labels)
                }
                None => (series.to_owned(), Vec::new()),
            };
            samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        samples
    }

    fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        wanted.sort();
        parse(text)
            .into_iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    fn count(text: &str, name: &str) -> usize {
        parse(text).iter().filter(|s| s.name == name).count()
    }

    #[test]
    fn every_metric_has_help_type_and_the_prefix() {
        let m = Metrics::new().expect("metrics");
        m.set_rollout("ns", "a", Some(Percent::whole(5)), Some(Phase::Progressing));
        m.set_gate_value("ns", "a", "error-rate", Some(0.002));
        m.count_checkpoint("ns", "r", CheckpointVerdict::Pass);
        m.count_transition("ns", "r", "advance");
        m.observe_reconcile(0.02, "success");
        m.count_error("kube_api");
        m.count_write("status");
        m.set_leader(true);
        let text = m.encode().expect("encode");
        let names = [
            "rollgate_rollout_percent",
            "rollgate_rollout_phase",
            "rollgate_gate_value",
            "rollgate_checkpoints_total",
            "rollgate_transitions_total",
            "rollgate_reconcile_duration_seconds",
            "rollgate_reconcile_errors_total",
            "rollgate_api_writes_total",
            "rollgate_leader",
            "rollgate_status_parked",
            "rollgate_status_parked_oldest_seconds",
            "rollgate_status_folded_total",
        ];
        for name in names {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} help\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} type\n{text}"
            );
        }
        for sample in parse(&text) {
            assert!(sample.name.starts_with("rollgate_"), "{}", sample.name);
        }
        assert!(text.contains("# TYPE rollgate_reconcile_duration_seconds histogram"));
        assert!(text.contains("# TYPE rollgate_checkpoints_total counter"));
        assert!(text.contains("# TYPE rollgate_rollout_phase gauge"));
    }

    #[test]
    fn parked_statuses_their_oldest_wait_and_the_folds_that_only_grow() {
        let m = Metrics::new().expect("metrics");
        let value = |text: &str, name: &str| {
            parse(text)
                .into_iter()
                .find(|s| s.name == name)
                .map(|s| s.value)
        };
        m.set_parked(3, Some(std::time::Duration::from_millis(2500)), 7);
        let text = m.encode().expect("encode");
        assert_eq!(value(&text, "rollgate_status_parked"), Some(3.0));
        assert_eq!(
            value(&text, "rollgate_status_parked_oldest_seconds"),
            Some(2.5)
        );
        assert_eq!(value(&text, "rollgate_status_folded_total"), Some(7.0));
        // Nothing parked any more; the fold count is a total and never goes back.
        m.set_parked(0, None, 9);
        m.set_parked(0, None, 4);
        let text = m.encode().expect("encode");
        assert_eq!(value(&text, "rollgate_status_parked"), Some(0.0));
        assert_eq!(
            value(&text, "rollgate_status_parked_oldest_seconds"),
            Some(0.0)
        );
        assert_eq!(value(&text, "rollgate_status_folded_total"), Some(9.0));
        assert!(text.contains("# TYPE rollgate_status_folded_total counter"));
    }

    #[test]
    fn percent_and_the_current_phase() {
        let m = Metrics::new().expect("metrics");
        m.set_rollout(
            "kaviar",
            "pfm",
            Some(Percent::whole(5)),
            Some(Phase::Paused),
        );
        let text = m.encode().expect("encode");
        let at = [("namespace", "kaviar"), ("name", "pfm")];
        let phase = |text: &str, p| {
            value(
                text,
                "rollgate_rollout_phase",
                &[at[0], at[1], ("phase", p)],
            )
        };
        assert_eq!(value(&text, "rollgate_rollout_percent", &at), Some(5.0));
        assert_eq!(phase(&text, "Paused"), Some(1.0));
        // A percent with decimals is a float sample.
        let half = Percent::from_basis_points(50);
        let other = Metrics::new().expect("metrics");
        other.set_rollout("kaviar", "half", half, Some(Phase::Progressing));
        let text = other.encode().expect("encode");
        let at_half = [("namespace", "kaviar"), ("name", "half")];
        assert_eq!(
            value(&text, "rollgate_rollout_percent", &at_half),
            Some(0.5)
        );
        assert_eq!(
            count(&text, "rollgate_rollout_phase"),
            1,
            "one series per rollout"
        );

        m.set_rollout(
            "kaviar",
            "pfm",
            Some(Percent::whole(0)),
            Some(Phase::RolledBack),
        );
        let text = m.encode().expect("encode");
        assert_eq!(value(&text, "rollgate_rollout_percent", &at), Some(0.0));
        assert_eq!(phase(&text, "RolledBack"), Some(1.0));
        assert_eq!(
            phase(&text, "Paused"),
            None,
            "the old phase's series is gone"
        );
        assert_eq!(count(&text, "rollgate_rollout_phase"), 1);

        m.set_rollout("kaviar", "pfm", None, None);
        let text = m.encode().expect("encode");
        assert_eq!(value(&text, "rollgate_rollout_percent", &at), None);
        assert_eq!(
            count(&text, "rollgate_rollout_phase"),
            0,
            "no phase before the start"
        );
    }

    #[test]
    fn a_forgotten_rollout_leaves_no_series() {
        let m = Metrics::new().expect("metrics");
        m.set_rollout(
            "ns",
            "gone",
            Some(Percent::whole(10)),
            Some(Phase::Progressing),
        );
        m.set_gate_value("ns", "gone", "error-rate", Some(0.5));
        m.set_gate_value("ns", "gone", "alerts", Some(0.0));
        m.set_rollout(
            "ns",
            "stays",
            Some(Percent::whole(1)),
            Some(Phase::Progressing),
        );
        m.set_gate_value("ns", "stays", "error-rate", Some(0.1));
        for r in ["gone", "stays"] {
            m.count_checkpoint("ns", r, CheckpointVerdict::Pass);
            m.count_checkpoint("ns", r, CheckpointVerdict::Fail);
            m.count_transition("ns", r, "advance");
            m.count_transition("ns", r, "rollback");
        }
        m.forget_rollout("ns", "gone");
        let text = m.encode().expect("encode");
        assert!(!text.contains("\"gone\""), "{text}");
        assert_eq!(count(&text, "rollgate_rollout_percent"), 1);
        assert_eq!(count(&text, "rollgate_rollout_phase"), 1);
        assert_eq!(count(&text, "rollgate_gate_value"), 1);
        // The decision counters of a deleted rollout go too; the others' stay (pass, fail,
        // and warn at 0 since the rollout was first seen).
        assert_eq!(count(&text, "rollgate_checkpoints_total"), 3);
        assert_eq!(count(&text, "rollgate_transitions_total"), 2);
        // Forgetting an unknown rollout is harmless.
        m.forget_rollout("ns", "never");
    }

    #[test]
    fn gate_values_without_data_are_absent_not_zero() {
        let m = Metrics::new().expect("metrics");
        let at = [("namespace", "ns"), ("name", "r"), ("gate", "error-rate")];
        m.set_gate_value("ns", "r", "error-rate", Some(0.03));
        let text = m.encode().expect("encode");
        assert_eq!(value(&text, "rollgate_gate_value", &at), Some(0.03));
        m.set_gate_value("ns", "r", "error-rate", None);
        let text = m.encode().expect("encode");
        assert_eq!(value(&text, "rollgate_gate_value", &at), None);
    }

    #[test]
    fn retain_gates_drops_gates_removed_from_the_spec() {
        let m = Metrics::new().expect("metrics");
        m.set_gate_value("ns", "r", "a", Some(1.0));
        m.set_gate_value("ns", "r", "b", Some(2.0));
        m.retain_gates("ns", "r", &["b"]);
        let text = m.encode().expect("encode");
        assert_eq!(count(&text, "rollgate_gate_value"), 1);
        let b = [("namespace", "ns"), ("name", "r"), ("gate", "b")];
        assert_eq!(value(&text, "rollgate_gate_value", &b), Some(2.0));
    }

    #[test]
    fn a_known_rollout_starts_its_decision_counters_at_zero() {
        let m = Metrics::new().expect("metrics");
        m.set_rollout("ns", "r", None, Some(Phase::Pending));
        let text = m.encode().expect("encode");
        for verdict in ["pass", "warn", "fail"] {
            let at = [("namespace", "ns"), ("name", "r"), ("verdict", verdict)];
            assert_eq!(
                value(&text, "rollgate_checkpoints_total", &at),
                Some(0.0),
                "{text}"
            );
        }
        let rollback = [("namespace", "ns"), ("name", "r"), ("kind", "rollback")];
        assert_eq!(
            value(&text, "rollgate_transitions_total", &rollback),
            Some(0.0)
        );
        // Other kinds appear when they happen; a second sight changes nothing.
        let start = [("namespace", "ns"), ("name", "r"), ("kind", "start")];
        assert_eq!(value(&text, "rollgate_transitions_total", &start), None);
        m.count_transition("ns", "r", "rollback");
        m.set_rollout("ns", "r", None, Some(Phase::RolledBack));
        let text = m.encode().expect("encode");
        assert_eq!(
            value(&text, "rollgate_transitions_total", &rollback),
            Some(1.0)
        );
        m.forget_rollout("ns", "r");
        let text = m.encode().expect("encode");
        assert_eq!(count(&text, "rollgate_checkpoints_total"), 0, "{text}");
        assert_eq!(count(&text, "rollgate_transitions_total"), 0, "{text}");
    }

    #[test]
    fn counters_and_histogram() {
        let m = Metrics::new().expect("metrics");
        m.count_checkpoint("ns", "r", CheckpointVerdict::Pass);
        m.count_checkpoint("ns", "r", CheckpointVerdict::Pass);
        m.count_checkpoint("ns", "r", CheckpointVerdict::Fail);
        m.count_checkpoint("other", "r", CheckpointVerdict::Fail);
        m.count_transition("ns", "r", "rollback");
        for kind in ["status", "status", "target", "event", "annotation"] {
            m.count_write(kind);
        }
        m.count_error("conflict");
        m.observe_reconcile(0.003, "success");
        m.observe_reconcile(0.7, "success");
        m.observe_reconcile(120.0, "error");
        let text = m.encode().expect("encode");
        let c = |name, label, v| value(&text, name, &[(label, v)]);
        let r = |name, label, v| {
            value(
                &text,
                name,
                &[("namespace", "ns"), ("name", "r"), (label, v)],
            )
        };
        assert_eq!(
            r("rollgate_checkpoints_total", "verdict", "pass"),
            Some(2.0)
        );
        assert_eq!(
            r("rollgate_checkpoints_total", "verdict", "fail"),
            Some(1.0)
        );
        assert_eq!(
            r("rollgate_checkpoints_total", "verdict", "warn"),
            Some(0.0)
        );
        let other = [("namespace", "other"), ("name", "r"), ("verdict", "fail")];
        assert_eq!(
            value(&text, "rollgate_checkpoints_total", &other),
            Some(1.0)
        );
        assert_eq!(
            r("rollgate_transitions_total", "kind", "rollback"),
            Some(1.0)
        );
        assert_eq!(c("rollgate_api_writes_total", "kind", "status"), Some(2.0));
        assert_eq!(
            c("rollgate_api_writes_total", "kind", "annotation"),
            Some(1.0)
        );
        assert_eq!(
            c("rollgate_reconcile_errors_total", "reason", "conflict"),
            Some(1.0)
        );
        let h = "rollgate_reconcile_duration_seconds";
        assert_eq!(c(&format!("{h}_count"), "outcome", "success"), Some(2.0));
        let bucket = |le| {
            value(
                &text,
                &format!("{h}_bucket"),
                &[("outcome", "success"), ("le", le)],
            )
        };
        assert_eq!(bucket("0.005"), Some(1.0));
        assert_eq!(bucket("0.5"), Some(1.0));
        assert_eq!(bucket("1"), Some(2.0));
        let error_sum = value(&text, &format!("{h}_sum"), &[("outcome", "error")]);
        assert_eq!(error_sum, Some(120.0));
        let over = value(
            &text,
            &format!("{h}_bucket"),
            &[("outcome", "error"), ("le", "60")],
        );
        assert_eq!(over, Some(0.0));
    }

    #[test]
    fn clones_share_series_and_registries_are_separate() {
        let a = Metrics::new().expect("metrics");
        let b = Metrics::new().expect("a second registry does not clash");
        a.clone().count_write("target");
        let text_a = a.encode().expect("encode");
        let text_b = b.encode().expect("encode");
        let target = [("kind", "target")];
        assert_eq!(
            value(&text_a, "rollgate_api_writes_total", &target),
            Some(1.0)
        );
        assert_eq!(value(&text_b, "rollgate_api_writes_total", &target), None);
    }

    #[test]
    fn leader_gauge() {
        let m = Metrics::new().expect("metrics");
        assert_eq!(
            value(&m.encode().expect("encode"), "rollgate_leader", &[]),
            Some(0.0)
        );
        m.set_leader(true);
        assert_eq!(
            value(&m.encode().expect("encode"), "rollgate_leader", &[]),
            Some(1.0)
        );
    }
}
