//! Fair shares of the reconcile slots: at most `total` reconciles at once, at most
//! `per_namespace` of them from one namespace, and when slots are short they go round-robin
//! across the namespaces that wait, so one namespace full of slow or hanging Rollouts cannot
//! hold back another namespace's checkpoint.
//!
//! kube-runtime's `Controller` bounds only the total; every reconcile acquires a [`Permit`]
//! here before its pipeline and gives it back when the pipeline ends (or is abandoned at its
//! deadline: dropping the permit returns it).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The slot scheduler. Cheap to clone; every clone shares the same slots.
#[derive(Clone, Debug)]
pub struct Slots {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    total: usize,
    per_namespace: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Slots held, in all.
    running: usize,
    /// Slots held, per namespace (namespaces holding none are absent).
    held: HashMap<String, usize>,
    /// Who waits, per namespace, first come first served.
    waiting: HashMap<String, VecDeque<oneshot::Sender<Permit>>>,
    /// The namespaces that wait, in the order they are served next.
    turn: VecDeque<String>,
}

/// One reconcile slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct Permit {
    /// `None` once defused (a permit never handed out).
    shared: Option<Arc<Shared>>,
    namespace: String,
}

impl Slots {
    /// `total` slots, at most `per_namespace` of them per namespace (both at least 1).
    pub fn new(total: usize, per_namespace: usize) -> Slots {
        let total = total.max(1);
        Slots {
            shared: Arc::new(Shared {
                total,
                per_namespace: per_namespace.clamp(1, total),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Slots without a per-namespace share: at most `total` reconciles at once.
    pub fn unshared(total: usize) -> Slots {
        Slots::new(total, total)
    }

    /// The total number of slots.
    pub fn total(&self) -> usize {
        self.shared.total
    }

    /// Slots held now, in all and by `namespace`.
    #[cfg(test)]
    pub fn held(&self, namespace: &str) -> (usize, usize) {
        let state = self.shared.lock();
        (
            state.running,
            state.held.get(namespace).copied().unwrap_or(0),
        )
    }

    /// Waits for a slot for a reconcile in `namespace`.
    pub async fn acquire(&self, namespace: &str) -> Permit {
        let receiver = {
            let mut state = self.shared.lock();
            let queued = state.waiting.get(namespace).is_some_and(|q| !q.is_empty());
            if !queued && self.shared.has_room(&state, namespace) {
                state.take(namespace);
                return self.shared.permit(namespace);
            }
            let (sender, receiver) = oneshot::channel();
            let queue = state.waiting.entry(namespace.to_owned()).or_default();
            queue.push_back(sender);
            if !state.turn.iter().any(|n| n == namespace) {
                state.turn.push_back(namespace.to_owned());
            }
            receiver
        };
        match receiver.await {
            Ok(permit) => permit,
            // The sender lives in the scheduler until it hands a permit over; it is dropped
            // unsent only if the scheduler itself is gone, which `self` prevents.
            Err(_) => Box::pin(self.acquire(namespace)).await,
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a holder panicked; the counts are updated atomically.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn has_room(&self, state: &State, namespace: &str) -> bool {
        state.running < self.total
            && state.held.get(namespace).copied().unwrap_or(0) < self.per_namespace
    }

    fn permit(self: &Arc<Self>, namespace: &str) -> Permit {
        Permit {
            shared: Some(Arc::clone(self)),
            namespace: namespace.to_owned(),
        }
    }

    /// Gives one slot of `namespace` back, then hands free slots to waiters, round-robin.
    fn release(self: &Arc<Self>, namespace: &str) {
        let handovers = {
            let mut state = self.lock();
            state.give_back(namespace);
            self.next_handovers(&mut state)
        };
        // Sent without the lock: a permit that finds its waiter gone is dropped here, and its
        // drop releases it again.
        for (sender, permit) in handovers {
            let _ = sender.send(permit);
        }
    }

    /// The waiters that get a slot now: one per namespace in turn while slots are free.
    fn next_handovers(
        self: &Arc<Self>,
        state: &mut State,
    ) -> Vec<(oneshot::Sender<Permit>, Permit)> {
        let mut handovers = Vec::new();
        let mut passed = 0;
        while state.running < self.total && passed < state.turn.len() {
            let Some(namespace) = state.turn.pop_front() else {
                break;
            };
            if !self.has_room(state, &namespace) {
                state.turn.push_back(namespace);
                passed += 1;
                continue;
            }
            let sender = loop {
                let Some(queue) = state.waiting.get_mut(&namespace) else {
                    break None;
                };
                match queue.pop_front() {
                    Some(sender) if sender.is_closed() => continue,
                    other => break other,
                }
            };
            let more = state.waiting.get(&namespace).is_some_and(|q| !q.is_empty());
            if more {
                state.turn.push_back(namespace.clone());
            } else {
                state.waiting.remove(&namespace);
            }
            if let Some(sender) = sender {
                state.take(&namespace);
                handovers.push((sender, self.permit(&namespace)));
                passed = 0;
            }
        }
        handovers
    }
}

impl State {
    fn take(&mut self, namespace: &str) {
        self.running += 1;
        *self.held.entry(namespace.to_owned()).or_default() += 1;
    }

    fn give_back(&mut self, namespace: &str) {
        self.running = self.running.saturating_sub(1);
        if let Some(held) = self.held.get_mut(namespace) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.held.remove(namespace);
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.release(&self.namespace);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_are_counted_and_given_back() {
        let slots = Slots::new(3, 2);
        let a = slots.acquire("a").await;
        let b = slots.acquire("a").await;
        assert_eq!(slots.held("a"), (2, 2));
        drop(a);
        assert_eq!(slots.held("a"), (1, 1));
        drop(b);
        assert_eq!(slots.held("a"), (0, 0));
    }

    use std::time::Duration;

    use tokio::time::Instant;

    /// A reconcile that takes a slot of `namespace` and holds it for `hold`.
    fn reconcile(
        slots: &Slots,
        namespace: &'static str,
        hold: Duration,
    ) -> tokio::task::JoinHandle<Duration> {
        let slots = slots.clone();
        tokio::spawn(async move {
            let asked = Instant::now();
            let _permit = slots.acquire(namespace).await;
            let waited = asked.elapsed();
            tokio::time::sleep(hold).await;
            waited
        })
    }

    /// Lets every spawned task run until it waits.
    async fn settle() {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sixteen_hanging_reconciles_do_not_delay_another_namespace() {
        let slots = Slots::new(64, 4);
        let hanging: Vec<_> = (0..16)
            .map(|_| reconcile(&slots, "noisy", Duration::from_secs(3600)))
            .collect();
        settle().await;
        assert_eq!(
            slots.held("noisy"),
            (4, 4),
            "one namespace holds at most its share"
        );
        let quiet = reconcile(&slots, "quiet", Duration::from_millis(10));
        let waited = tokio::time::timeout(Duration::from_secs(1), quiet)
            .await
            .expect("the other namespace's reconcile finishes within 1 s")
            .expect("the task ran");
        assert_eq!(waited, Duration::ZERO);
        for task in hanging {
            task.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_share_the_hanging_namespace_would_take_every_slot() {
        // The same load on slots without a per-namespace share: the test above can fail.
        let slots = Slots::unshared(16);
        let _hanging: Vec<_> = (0..16)
            .map(|_| reconcile(&slots, "noisy", Duration::from_secs(3600)))
            .collect();
        settle().await;
        let quiet = reconcile(&slots, "quiet", Duration::from_millis(10));
        assert!(
            tokio::time::timeout(Duration::from_secs(1), quiet)
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn when_slots_are_short_they_go_round_robin_across_namespaces() {
        let slots = Slots::new(2, 2);
        let order = Arc::new(Mutex::new(Vec::new()));
        let blockers: Vec<_> = (0..2)
            .map(|_| reconcile(&slots, "first", Duration::from_secs(1)))
            .collect();
        settle().await;
        let mut waiters = Vec::new();
        // "a" queues five reconciles before "b" and "c" queue any.
        for namespace in ["a", "a", "a", "a", "a", "b", "b", "c"] {
            let (slots, order) = (slots.clone(), Arc::clone(&order));
            waiters.push(tokio::spawn(async move {
                let _permit = slots.acquire(namespace).await;
                order.lock().expect("order").push(namespace);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }));
            settle().await;
        }
        for task in blockers {
            task.await.expect("the task ran");
        }
        for task in waiters {
            task.await.expect("the task ran");
        }
        let order = order.lock().expect("order").clone();
        assert_eq!(order, ["a", "b", "c", "a", "b", "a", "a", "a"]);
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_does_not_keep_a_slot() {
        let slots = Slots::new(1, 1);
        let held = slots.acquire("a").await;
        let gave_up =
            tokio::time::timeout(std::time::Duration::from_millis(10), slots.acquire("b"));
        assert!(gave_up.await.is_err());
        drop(held);
        assert_eq!(slots.held("b"), (0, 0));
        let _again = slots.acquire("b").await;
        assert_eq!(slots.held("b"), (1, 1));
    }
}
