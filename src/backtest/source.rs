//! Gate observations from Prometheus' past. By default each gate's history is read with range
//! queries: one request per gate per stretch of up to [`MAX_STEPS`] checkpoints while the
//! query text stays the same (`{{stage}}` and `{{percent}}` change it when the stage changes),
//! so a replay of months at one checkpoint a minute costs a few dozen requests. Every step of a
//! range is what an instant query at that checkpoint would have answered, so the decisions are
//! the same as with [`QueryMode::Instant`] (one instant query per gate per checkpoint, through
//! the same [`observe`](crate::gates::observe) the controller uses).

use std::io;

use k8s_openapi::jiff::Timestamp;
use tokio::runtime::Runtime;

use crate::api::{CompareGate, Gate, Percent, Provider, Rollout, RolloutStatus};
use crate::engine::Observation;
use crate::gates::compare::{self, CompareScope, Counts};
use crate::gates::prometheus::{self, PrometheusClient, Steps};
use crate::gates::query::fill_query;
use crate::gates::{GateContext, GateEnv, GateInput, alerts, observe};
use crate::sim::ObservationSource;

/// Most checkpoints one range request covers (Prometheus refuses more than 11,000 points).
pub const MAX_STEPS: usize = 11_000;

/// How history is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum QueryMode {
    /// Range queries over stretches of checkpoints (the default).
    #[default]
    Range,
    /// One instant query per gate per checkpoint.
    Instant,
}

/// A plan that cannot be backtested as asked.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// Gates whose past cannot be asked for, not named with `--assume-pass`.
    #[error(
        "gates {} cannot be replayed from Prometheus' past (OFREP and HTTP gates observe the \
         present); name each with --assume-pass to treat it as passing",
        .0.join(", ")
    )]
    NotReplayable(Vec<String>),
    /// `--assume-pass` names a gate the plan does not have.
    #[error("--assume-pass {0}: the plan has no gate of that name")]
    UnknownGate(String),
    /// A gate's Prometheus connection cannot be built.
    #[error("gate {gate}: {problem}")]
    Connection {
        /// The gate.
        gate: String,
        /// What is wrong.
        problem: String,
    },
    /// The replay would send more requests than allowed.
    #[error(
        "the replay needs up to {needed} requests to Prometheus, more than the {budget} allowed; \
         shorten --start to --end, lengthen spec.analysis.interval, or use range queries"
    )]
    Budget {
        /// Requests the replay may need.
        needed: u64,
        /// Requests allowed.
        budget: u64,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
}

/// The query texts of a gate for one (stage, percent), or why they cannot be built.
type TextsMemo = Option<((u32, Percent), Result<Vec<String>, String>)>;

/// How one gate is replayed.
enum Replay<'a> {
    /// A Prometheus or alerts gate, read through its client.
    Queried(Box<Queried<'a>>),
    /// A compare gate, its arms counted from each stage's start.
    Compared(Box<Compared<'a>>),
    /// A gate that cannot be replayed, assumed to pass with this value (its lower bound, else
    /// its upper bound, else 0).
    AssumedPass(f64),
}

/// A Prometheus or alerts gate being replayed.
struct Queried<'a> {
    gate: &'a Gate,
    client: PrometheusClient,
    /// The stretch read last.
    stretch: Option<Stretch>,
    /// Query texts whose range request failed: read with instant queries instead.
    range_failed: Option<Vec<String>>,
    /// The query texts for the last (stage, percent) seen: only those variables change during
    /// a replay, so the texts are built once per stage, not per checkpoint.
    texts: TextsMemo,
}

/// A compare gate being replayed. With range queries each arm's counts are the per-interval
/// increases (`{{window}}` = the interval, step = the interval) summed from the stage's start;
/// with instant queries each checkpoint asks exactly what the controller asks.
struct Compared<'a> {
    gate: &'a CompareGate,
    client: PrometheusClient,
    /// The stage the increases below belong to.
    stage_start: Option<Timestamp>,
    /// The per-interval increases read so far in this stage: (step instant in Unix ms, units and
    /// events with the flag, units and events without).
    steps: Vec<(i64, [f64; 4])>,
    /// A range read failed in this stage: its checkpoints are read with instant queries.
    range_failed: bool,
}

/// Observations read with one range request (two with a sample query).
struct Stretch {
    queries: Vec<String>,
    steps: Steps,
    observations: Vec<Observation>,
}

/// Observations from a Prometheus' past.
pub struct PrometheusHistory<'a> {
    rollout: &'a Rollout,
    env: GateEnv,
    gates: Vec<Replay<'a>>,
    mode: QueryMode,
    end: Timestamp,
    requests: u64,
    runtime: Runtime,
}

impl<'a> PrometheusHistory<'a> {
    /// Prepares a client per gate from `env` (whose default Prometheus serves gates without an
    /// address of their own); `assume_pass` names the gates that cannot be replayed and are
    /// to be taken as passing; `end` is when the replay stops.
    pub fn new(
        rollout: &'a Rollout,
        env: GateEnv,
        assume_pass: &[String],
        mode: QueryMode,
        end: Timestamp,
    ) -> Result<Self, BacktestError> {
        let gates = &rollout.spec.analysis.gates;
        if let Some(unknown) = assume_pass
            .iter()
            .find(|name| !gates.iter().any(|g| &g.name == *name))
        {
            return Err(BacktestError::UnknownGate(unknown.clone()));
        }
        let mut not_replayable = Vec::new();
        let mut replays = Vec::with_capacity(gates.len());
        for gate in gates {
            if assume_pass.contains(&gate.name) {
                let (min, max) = gate.bounds();
                replays.push(Replay::AssumedPass(min.or(max).unwrap_or(0.0)));
                continue;
            }
            if let Some(Provider::Compare(c)) = gate.provider() {
                let client = env
                    .prometheus_client((&c.connection).into(), None, None)
                    .map_err(|problem| BacktestError::Connection {
                        gate: gate.name.clone(),
                        problem,
                    })?;
                replays.push(Replay::Compared(Box::new(Compared {
                    gate: c,
                    client,
                    stage_start: None,
                    steps: Vec::new(),
                    range_failed: false,
                })));
                continue;
            }
            let connection = match gate.provider() {
                Some(Provider::Prometheus(p)) => (&p.connection).into(),
                Some(Provider::Alerts(a)) => (&a.connection).into(),
                _ => {
                    not_replayable.push(gate.name.clone());
                    continue;
                }
            };
            let connection: prometheus::GateConnection<'_> = connection;
            if connection.secret_name.is_some() {
                tracing::warn!(
                    gate = %gate.name,
                    "the gate's secretRef is not read outside the cluster; its own address is \
                     queried without credentials"
                );
            }
            let client = env
                .prometheus_client(connection, None, None)
                .map_err(|problem| BacktestError::Connection {
                    gate: gate.name.clone(),
                    problem,
                })?;
            replays.push(Replay::Queried(Box::new(Queried {
                gate,
                client,
                stretch: None,
                range_failed: None,
                texts: None,
            })));
        }
        if !not_replayable.is_empty() {
            return Err(BacktestError::NotReplayable(not_replayable));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BacktestError::Runtime)?;
        Ok(Self {
            rollout,
            env,
            gates: replays,
            mode,
            end,
            requests: 0,
            runtime,
        })
    }

    /// Requests sent to Prometheus so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The most requests a replay of `checkpoints` checkpoints may send in `mode`: per query
    /// (two for a gate with a sample query), one per checkpoint for instant queries; for range
    /// queries one per stretch, a stretch ending at every stage change and every
    /// [`MAX_STEPS`] checkpoints.
    pub fn request_estimate(rollout: &Rollout, mode: QueryMode, checkpoints: u64) -> u64 {
        let queries: u64 = rollout
            .spec
            .analysis
            .gates
            .iter()
            .map(|gate| match gate.provider() {
                Some(Provider::Prometheus(p)) if p.sample_query.is_some() => 2,
                Some(Provider::Prometheus(_) | Provider::Alerts(_)) => 1,
                Some(Provider::Compare(_)) => 4,
                _ => 0,
            })
            .sum();
        let per_query = match mode {
            QueryMode::Instant => checkpoints,
            QueryMode::Range => {
                rollout.spec.stages.len() as u64 + checkpoints.div_ceil(MAX_STEPS as u64)
            }
        };
        queries.saturating_mul(per_query)
    }
}

impl ObservationSource for PrometheusHistory<'_> {
    fn observe(
        &mut self,
        at: Timestamp,
        status: &RolloutStatus,
        into: &mut Vec<Observation>,
    ) -> io::Result<()> {
        let spec = &self.rollout.spec;
        let ctx = GateContext {
            rollout: self.rollout.metadata.name.as_deref().unwrap_or_default(),
            namespace: self
                .rollout
                .metadata
                .namespace
                .as_deref()
                .unwrap_or("default"),
            flag: spec.target.flag_name(),
            allowlist: spec
                .target
                .flagd
                .as_ref()
                .map_or(&[][..], |f| f.allowlist.as_slice()),
            stage: status.stage,
            percent: status.percent.unwrap_or(Percent::ZERO),
            at,
        };
        let interval_ms = std::time::Duration::from(spec.analysis.interval)
            .as_millis()
            .clamp(1, i64::MAX as u128) as i64;
        let remaining = self
            .end
            .as_millisecond()
            .saturating_sub(at.as_millisecond());
        let count = usize::try_from(remaining / interval_ms + 1)
            .unwrap_or(MAX_STEPS)
            .clamp(1, MAX_STEPS);
        let steps = Steps {
            start_ms: at.as_millisecond(),
            step_ms: interval_ms,
            count,
        };
        into.clear();
        let stage_start = status.stage_started_at.as_ref().map(|t| t.0);
        let scope = compare::scope(spec, stage_start, at);
        let interval = std::time::Duration::from(spec.analysis.interval);
        // Most checkpoints are read from a stretch already fetched: no runtime needed.
        let cached: Vec<Option<Observation>> = self
            .gates
            .iter_mut()
            .map(|replay| match replay {
                Replay::Compared(c) => c.cached(self.mode, &ctx, stage_start, interval),
                other => other.cached(self.mode, &ctx),
            })
            .collect();
        if cached.iter().all(Option::is_some) {
            into.extend(cached.into_iter().flatten());
            return Ok(());
        }
        let (env, mode, end) = (&self.env, self.mode, self.end);
        let runs = self.gates.iter_mut().map(|replay| {
            let ctx = &ctx;
            let scope = &scope;
            async move {
                match replay {
                    Replay::Compared(c) => {
                        c.observe(mode, ctx, scope, stage_start, interval, end)
                            .await
                    }
                    other => other.observe(env, mode, ctx, steps).await,
                }
            }
        });
        let results = self.runtime.block_on(futures_util::future::join_all(runs));
        for (observation, requests) in results {
            self.requests += requests;
            into.push(observation);
        }
        Ok(())
    }
}

impl Replay<'_> {
    /// This gate's observation at `ctx.at` when it needs no request: assumed, an error in its
    /// query text, or a step of the stretch already read.
    fn cached(&mut self, mode: QueryMode, ctx: &GateContext<'_>) -> Option<Observation> {
        let Queried {
            gate,
            stretch,
            range_failed,
            texts,
            ..
        } = match self {
            Replay::AssumedPass(value) => return Some(Observation::Value(*value)),
            Replay::Queried(queried) => &mut **queried,
            Replay::Compared(_) => return None,
        };
        let gate = *gate;
        let queries = match texts_for(gate, texts, ctx) {
            Ok(queries) => queries,
            Err(message) => return Some(Observation::Error(message)),
        };
        if mode == QueryMode::Instant || range_failed.as_ref() == Some(&queries) {
            return None;
        }
        let cached = stretch.as_ref().filter(|s| s.queries == queries)?;
        let index = cached.steps.index_of(ctx.at.as_millisecond())?;
        cached.observations.get(index).cloned()
    }

    /// This gate's observation at `ctx.at`, and the requests it cost.
    async fn observe(
        &mut self,
        env: &GateEnv,
        mode: QueryMode,
        ctx: &GateContext<'_>,
        steps: Steps,
    ) -> (Observation, u64) {
        let Queried {
            gate,
            client,
            stretch,
            range_failed,
            texts,
        } = match self {
            Replay::AssumedPass(value) => return (Observation::Value(*value), 0),
            Replay::Queried(queried) => &mut **queried,
            Replay::Compared(_) => return (Observation::Error("not a compare gate".into()), 0),
        };
        let gate = *gate;
        let queries = match texts_for(gate, texts, ctx) {
            Ok(queries) => queries,
            Err(message) => return (Observation::Error(message), 0),
        };
        let input = GateInput {
            gate,
            ctx: *ctx,
            secret: None,
            memory: None,
            compare: None,
        };
        let instant = || async move { observe(env, input).await.observation };
        if mode == QueryMode::Instant || range_failed.as_ref() == Some(&queries) {
            return (instant().await, queries.len() as u64);
        }
        if let Some(cached) = stretch.as_ref().filter(|s| s.queries == queries)
            && let Some(index) = cached.steps.index_of(ctx.at.as_millisecond())
        {
            return (cached.observations[index].clone(), 0);
        }
        let reads = futures_util::future::join_all(
            queries.iter().map(|query| client.query_range(query, steps)),
        )
        .await;
        let mut cost = queries.len() as u64;
        let mut answers = Vec::with_capacity(reads.len());
        for read in reads {
            match read {
                Ok(answer) => answers.push(answer),
                Err(error) => {
                    tracing::warn!(gate = %gate.name, %error, "range query failed; reading this query's checkpoints with instant queries");
                    *range_failed = Some(queries);
                    *stretch = None;
                    cost += 1;
                    return (instant().await, cost);
                }
            }
        }
        let observations = combine(gate, answers, steps.count);
        let first = observations.first().cloned();
        *stretch = Some(Stretch {
            queries,
            steps,
            observations,
        });
        (
            first.unwrap_or_else(|| Observation::Error("an empty range".into())),
            cost,
        )
    }
}

impl Compared<'_> {
    /// Starts over when the stage changed.
    fn align(&mut self, stage_start: Option<Timestamp>) {
        if self.stage_start != stage_start {
            self.stage_start = stage_start;
            self.steps.clear();
            self.range_failed = false;
        }
    }

    /// The arms summed from the stage's start up to `at`, when the increases read so far
    /// reach it and `at` is one of the stage's checkpoints.
    fn summed(
        &self,
        at: Timestamp,
        stage_start: Timestamp,
        interval: std::time::Duration,
    ) -> Option<Observation> {
        let at_ms = at.as_millisecond();
        let step = i64::try_from(interval.as_millis()).ok()?.max(1);
        let offset = at_ms - stage_start.as_millisecond();
        if offset <= 0 || offset % step != 0 {
            return None;
        }
        let (last, _) = self.steps.last()?;
        if *last < at_ms {
            return None;
        }
        let mut sums = [0.0; 4];
        for (_, counts) in self.steps.iter().take_while(|(t, _)| *t <= at_ms) {
            for (sum, count) in sums.iter_mut().zip(counts) {
                *sum += count;
            }
        }
        Some(Observation::Arms {
            treatment: Counts::new(sums[0], sums[1]),
            control: Counts::new(sums[2], sums[3]),
        })
    }

    fn cached(
        &mut self,
        mode: QueryMode,
        ctx: &GateContext<'_>,
        stage_start: Option<Timestamp>,
        interval: std::time::Duration,
    ) -> Option<Observation> {
        if ctx.percent == Percent::ZERO || ctx.percent >= Percent::HUNDRED {
            // No second cohort: the engine skips the gate; nothing to ask.
            return Some(Observation::Arms {
                treatment: Counts::default(),
                control: Counts::default(),
            });
        }
        self.align(stage_start);
        if mode == QueryMode::Instant || self.range_failed {
            return None;
        }
        self.summed(ctx.at, stage_start?, interval)
    }

    async fn observe(
        &mut self,
        mode: QueryMode,
        ctx: &GateContext<'_>,
        scope: &CompareScope<'_>,
        stage_start: Option<Timestamp>,
        interval: std::time::Duration,
        end: Timestamp,
    ) -> (Observation, u64) {
        let instant = |client: PrometheusClient, gate: &CompareGate| {
            let (ctx, scope) = (*ctx, *scope);
            let gate = gate.clone();
            async move { (compare::observe(&client, &gate, &ctx, &scope).await, 4) }
        };
        let Some(start) = stage_start else {
            return instant(self.client.clone(), self.gate).await;
        };
        if mode == QueryMode::Instant || self.range_failed {
            return instant(self.client.clone(), self.gate).await;
        }
        let step_ms = i64::try_from(interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let first = self
            .steps
            .last()
            .map_or(start.as_millisecond() + step_ms, |(t, _)| t + step_ms);
        let remaining = end.as_millisecond().saturating_sub(first);
        let count = usize::try_from(remaining / step_ms + 1)
            .unwrap_or(MAX_STEPS)
            .clamp(1, MAX_STEPS);
        let steps = Steps {
            start_ms: first,
            step_ms,
            count,
        };
        let per_interval = CompareScope {
            window: interval,
            ..*scope
        };
        let queries = match compare::queries(self.gate, ctx, &per_interval) {
            Ok(queries) => queries,
            Err(e) => return (Observation::Error(e.to_string()), 0),
        };
        let client = &self.client;
        let reads = futures_util::future::join_all(
            queries.iter().map(|query| client.query_range(query, steps)),
        )
        .await;
        let mut read = vec![[0.0; 4]; count];
        for (q, answers) in reads.into_iter().enumerate() {
            let answers = match answers {
                Ok(answers) => answers,
                Err(error) => {
                    tracing::warn!(%error, "range query failed; reading this stage's checkpoints with instant queries");
                    self.range_failed = true;
                    let (observation, cost) = instant(self.client.clone(), self.gate).await;
                    return (observation, cost + 4);
                }
            };
            for (i, answer) in answers.into_iter().enumerate().take(count) {
                match answer {
                    Ok(prometheus::Answer::Value(v)) => read[i][q] = v,
                    Ok(prometheus::Answer::Empty) => {}
                    Err(error) => {
                        return (
                            Observation::Error(crate::text::remote(
                                &error.to_string(),
                                crate::gates::observe::MAX_ERROR_MESSAGE,
                            )),
                            4,
                        );
                    }
                }
            }
        }
        self.steps
            .extend((0..count).map(|i| (first + step_ms * i as i64, read[i])));
        match self.summed(ctx.at, start, interval) {
            Some(observation) => (observation, 4),
            None => {
                let (observation, cost) = instant(self.client.clone(), self.gate).await;
                (observation, cost + 4)
            }
        }
    }
}

/// The query texts of `gate` at `ctx`, built once per (stage, percent) and kept in `memo`.
fn texts_for(
    gate: &Gate,
    memo: &mut TextsMemo,
    ctx: &GateContext<'_>,
) -> Result<Vec<String>, String> {
    let key = (ctx.stage, ctx.percent);
    match memo {
        Some((at, texts)) if *at == key => texts.clone(),
        _ => {
            let texts = queries_of(gate, ctx);
            *memo = Some((key, texts.clone()));
            texts
        }
    }
}

/// The query texts a gate sends at `ctx`: its query (and sample query), or its alerts query.
fn queries_of(gate: &Gate, ctx: &GateContext<'_>) -> Result<Vec<String>, String> {
    match gate.provider() {
        Some(Provider::Prometheus(p)) => {
            let mut queries = vec![fill_query(&p.query, ctx).map_err(|e| e.to_string())?];
            if let Some(sample) = &p.sample_query {
                queries.push(fill_query(sample, ctx).map_err(|e| e.to_string())?);
            }
            Ok(queries)
        }
        Some(Provider::Alerts(a)) => Ok(vec![alerts::query(a, ctx).map_err(|e| e.to_string())?]),
        _ => Err("the gate cannot be replayed".into()),
    }
}

/// Each step's observation from the answers of the gate's queries.
fn combine(
    gate: &Gate,
    answers: Vec<Vec<Result<prometheus::Answer, prometheus::QueryError>>>,
    count: usize,
) -> Vec<Observation> {
    let mut answers = answers.into_iter();
    let values = answers.next().unwrap_or_default();
    let samples = answers.next();
    (0..count)
        .map(|i| {
            let value = values
                .get(i)
                .cloned()
                .unwrap_or(Ok(prometheus::Answer::Empty));
            let observation = match gate.provider() {
                Some(Provider::Prometheus(p)) => {
                    let sample = samples
                        .as_ref()
                        .map(|s| s.get(i).cloned().unwrap_or(Ok(prometheus::Answer::Empty)));
                    prometheus::observation_of(p, value, sample)
                }
                _ => alerts::observation_of(value),
            };
            match observation {
                Observation::Error(message) => Observation::Error(crate::text::remote(
                    &message,
                    crate::gates::observe::MAX_ERROR_MESSAGE,
                )),
                other => other,
            }
        })
        .collect()
}
