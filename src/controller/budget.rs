//! The controller's API budget (`--kube-api-qps`, `--kube-api-burst`): a client-side token
//! bucket every write to the API server takes a token from — status, target object,
//! annotation and Event writes — refilled at `qps` tokens a second up to `burst`.
//!
//! Two priority classes share it. [`Priority::Transition`] — a write that carries a
//! transition (a rollback, an advance, a pause, …) or a target write — never waits behind
//! routine writes: while one waits, routine writes take no token, so it waits at most for the
//! next token (`1/qps`, 20 ms at the default 50) plus the transitions queued before it.
//! [`Priority::Routine`] — a checkpoint's status update without a transition, an Event —
//! waits for a token no transition wants: under sustained overload routine writes are
//! deferred (by at most the routine writes queued ahead of them divided by `qps`), never
//! dropped. A routine *checkpoint status* write does not wait here at all: when
//! [`ApiBudget::try_acquire`] finds no token free at once, it is parked and folded (see
//! `parked.rs`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Which class a write belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// A transition's status write, any target write, an action's annotation: first.
    Transition,
    /// A routine checkpoint's status write, an Event: when no transition waits.
    Routine,
}

/// The shared token bucket. Cheap to clone; every clone draws from the same bucket.
#[derive(Clone, Debug)]
pub struct ApiBudget {
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    qps: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    /// Transition writes waiting for a token now.
    transitions_waiting: usize,
    /// The tickets of the routine writes waiting now: they go out first come, first served.
    routine_waiting: BTreeSet<u64>,
    /// The next routine ticket.
    next_ticket: u64,
}

/// A write's place while it waits (given up also when its future is dropped).
enum Waiting<'a> {
    Transition(&'a Shared),
    Routine(&'a Shared, u64),
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        match self {
            Waiting::Transition(shared) => {
                let mut bucket = shared.lock();
                bucket.transitions_waiting = bucket.transitions_waiting.saturating_sub(1);
            }
            Waiting::Routine(shared, ticket) => {
                shared.lock().routine_waiting.remove(ticket);
            }
        }
    }
}

impl ApiBudget {
    /// `qps` writes a second on average, `burst` at once (both at least 1).
    pub fn new(qps: u32, burst: u32) -> ApiBudget {
        let qps = f64::from(qps.max(1));
        let burst = f64::from(burst.max(1));
        ApiBudget {
            shared: Some(Arc::new(Shared {
                qps,
                burst,
                state: Mutex::new(Bucket {
                    tokens: burst,
                    refilled: Instant::now(),
                    transitions_waiting: 0,
                    routine_waiting: BTreeSet::new(),
                    next_ticket: 0,
                }),
            })),
        }
    }

    /// No limit (tests, and contexts built without flags).
    pub fn unlimited() -> ApiBudget {
        ApiBudget { shared: None }
    }

    /// Takes a token for a write of `priority` only if it may go out at once: a token is there
    /// and no write that goes before it waits (for a routine write: no transition and no
    /// routine write). A routine status write that cannot go at once is parked instead (see
    /// `parked.rs`).
    pub fn try_acquire(&self, priority: Priority) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        let mut bucket = shared.lock();
        shared.refill(&mut bucket);
        let turn = match priority {
            Priority::Transition => true,
            Priority::Routine => {
                bucket.transitions_waiting == 0 && bucket.routine_waiting.is_empty()
            }
        };
        if bucket.tokens >= 1.0 && turn {
            bucket.tokens -= 1.0;
            return true;
        }
        false
    }

    /// Waits until a write of `priority` may go out, and takes its token.
    pub async fn acquire(&self, priority: Priority) {
        let Some(shared) = &self.shared else {
            return;
        };
        let waiting = {
            let mut bucket = shared.lock();
            match priority {
                Priority::Transition => {
                    bucket.transitions_waiting += 1;
                    Waiting::Transition(shared)
                }
                Priority::Routine => {
                    let ticket = bucket.next_ticket;
                    bucket.next_ticket += 1;
                    bucket.routine_waiting.insert(ticket);
                    Waiting::Routine(shared, ticket)
                }
            }
        };
        loop {
            let wait = {
                let mut bucket = shared.lock();
                shared.refill(&mut bucket);
                // A transition goes as soon as there is a token; a routine write only when no
                // transition waits and every routine write before it has gone.
                let turn = match &waiting {
                    Waiting::Transition(_) => true,
                    Waiting::Routine(_, ticket) => {
                        bucket.transitions_waiting == 0
                            && bucket.routine_waiting.first() == Some(ticket)
                    }
                };
                if bucket.tokens >= 1.0 && turn {
                    bucket.tokens -= 1.0;
                    drop(bucket);
                    drop(waiting);
                    return;
                }
                if bucket.tokens >= 1.0 {
                    // Tokens are there but another write is first: look again about when the
                    // next token comes.
                    Duration::from_secs_f64(1.0 / shared.qps).max(Duration::from_millis(1))
                } else {
                    Duration::from_secs_f64((1.0 - bucket.tokens) / shared.qps)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        // A poisoned lock only means a holder panicked; the bucket's numbers stay sound.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refill(&self, bucket: &mut Bucket) {
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.qps).min(self.burst);
        bucket.refilled = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn writes_go_out_at_the_rate_after_the_burst() {
        let budget = ApiBudget::new(10, 5);
        let began = Instant::now();
        for _ in 0..25 {
            budget.acquire(Priority::Routine).await;
        }
        // 5 at once, then 20 at 10 a second.
        let took = began.elapsed();
        assert!(
            took >= Duration::from_millis(1990) && took <= Duration::from_millis(2100),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_transition_never_waits_behind_routine_writes() {
        let budget = ApiBudget::new(5, 1);
        budget.acquire(Priority::Routine).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (budget, order) = (budget.clone(), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                budget.acquire(Priority::Routine).await;
                order.lock().expect("order").push(format!("routine {i}"));
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let asked = Instant::now();
        budget.acquire(Priority::Transition).await;
        let waited = asked.elapsed();
        assert!(waited <= Duration::from_millis(200), "waited {waited:?}");
        let before = order.lock().expect("order").len();
        assert!(before < 5, "{before} routine writes went first");
        for task in tasks {
            task.await.expect("ran");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn try_acquire_takes_a_free_token_only_when_nothing_waits() {
        let budget = ApiBudget::new(1, 1);
        assert!(budget.try_acquire(Priority::Routine));
        assert!(
            !budget.try_acquire(Priority::Routine),
            "the bucket is empty"
        );
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.acquire(Priority::Routine).await })
        };
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(1000)).await;
        // A token came, but a routine write waits before this one.
        assert!(!budget.try_acquire(Priority::Routine));
        waiting.await.expect("ran");
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert!(budget.try_acquire(Priority::Transition));
        assert!(ApiBudget::unlimited().try_acquire(Priority::Routine));
    }

    #[tokio::test]
    async fn unlimited_never_waits() {
        let budget = ApiBudget::unlimited();
        for _ in 0..10_000 {
            budget.acquire(Priority::Routine).await;
        }
    }
}
