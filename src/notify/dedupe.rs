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
}
