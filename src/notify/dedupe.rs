//! A bounded set of keys already sent: the oldest key is forgotten first.

use std::collections::{HashSet, VecDeque};

/// Keys remembered in insertion order, at most `capacity` of them.
#[derive(Debug)]
pub(super) struct Dedupe {
    capacity: usize,
    order: VecDeque<String>,
    keys: HashSet<String>,
}

impl Dedupe {
    pub(super) fn new(capacity: usize) -> Dedupe {
        let capacity = capacity.max(1);
        Dedupe {
            capacity,
            order: VecDeque::new(),
            keys: HashSet::new(),
        }
    }

    /// Records `key`; false when it was already there (a duplicate).
    pub(super) fn claim(&mut self, key: String) -> bool {
        if self.keys.contains(&key) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.keys.remove(&oldest);
        }
        self.keys.insert(key.clone());
        self.order.push_back(key);
        true
    }

    /// Forgets every key that starts with `prefix` (a deleted Rollout's uid and a `/`).
    pub(super) fn forget_prefix(&mut self, prefix: &str) {
        if !self.keys.iter().any(|k| k.starts_with(prefix)) {
            return;
        }
        self.keys.retain(|k| !k.starts_with(prefix));
        self.order.retain(|k| !k.starts_with(prefix));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_once_and_forgets_the_oldest() {
        let mut d = Dedupe::new(2);
        assert!(d.claim("a".into()));
        assert!(!d.claim("a".into()));
        assert!(d.claim("b".into()));
        assert!(d.claim("c".into()));
        assert_eq!(d.len(), 2);
        assert!(d.claim("a".into()), "a was forgotten");
        assert!(!d.claim("c".into()));
    }

    #[test]
    fn forgets_a_prefix_only() {
        let mut d = Dedupe::new(10);
        for key in ["u1/1/start", "u1/1/advance", "u2/1/start"] {
            assert!(d.claim(key.into()));
        }
        d.forget_prefix("u1/");
        assert_eq!(d.len(), 1);
        assert!(d.claim("u1/1/start".into()), "forgotten");
        assert!(!d.claim("u2/1/start".into()), "kept");
    }
}
