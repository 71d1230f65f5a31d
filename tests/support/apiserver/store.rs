//! The objects, the resourceVersion counter, and the change history watches replay.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::resources::Resource;

/// How many changes the history keeps for watches to resume from; older resourceVersions
/// get 410 Gone.
pub const HISTORY: usize = 50_000;

/// Key of a stored object: resource (group, plural), namespace (`""` when cluster-scoped), name.
pub type Key = (&'static str, &'static str, String, String);

/// One change to one object, as watches see it.
#[derive(Debug)]
pub struct Change {
    /// resourceVersion after the change.
    pub rv: u64,
    /// The resource.
    pub resource: &'static Resource,
    /// Before (None when created).
    pub old: Option<Arc<Value>>,
    /// After (None when deleted).
    pub new: Option<Arc<Value>>,
}

/// Everything stored.
pub struct Store {
    objects: BTreeMap<Key, Arc<Value>>,
    rv: u64,
    /// Oldest resourceVersion a watch may resume from.
    oldest: u64,
    history: VecDeque<Arc<Change>>,
    uids: u64,
    changes: broadcast::Sender<Arc<Change>>,
}

/// The key of `name` in `namespace` of `resource`.
pub fn key(resource: &'static Resource, namespace: Option<&str>, name: &str) -> Key {
    (
        resource.group,
        resource.plural,
        namespace.unwrap_or_default().to_owned(),
        name.to_owned(),
    )
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(HISTORY);
        Self {
            objects: BTreeMap::new(),
            rv: 1000,
            oldest: 1000,
            history: VecDeque::new(),
            uids: 0,
            changes,
        }
    }

    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Oldest resourceVersion a watch may resume from.
    pub fn oldest(&self) -> u64 {
        self.oldest
    }

    /// Forgets the change history, so a watch from any earlier resourceVersion gets 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest = self.rv;
    }

    /// The object at `key`.
    pub fn get(&self, key: &Key) -> Option<Arc<Value>> {
        self.objects.get(key).cloned()
    }

    /// Objects of `resource`, in `namespace` when given, in key order, starting after `after`.
    pub fn list(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
    ) -> impl Iterator<Item = (&Key, &Arc<Value>)> {
        let lower = (
            resource.group,
            resource.plural,
            namespace.unwrap_or_default().to_owned(),
            String::new(),
        );
        self.objects.range(lower..).take_while(move |(k, _)| {
            k.0 == resource.group && k.1 == resource.plural && namespace.is_none_or(|ns| k.2 == ns)
        })
    }

    /// Changes after `rv`, or None when they are no longer kept.
    pub fn since(&self, rv: u64) -> Option<Vec<Arc<Change>>> {
        (rv >= self.oldest).then(|| self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    /// A fresh uid.
    pub fn uid(&mut self) -> String {
        self.uids += 1;
        format!("00000000-0000-4000-8000-{:012}", self.uids)
    }

    /// Stores `new` at `key` (removes when None) under the next resourceVersion, records the
    /// change and tells the watches; returns the stored object.
    pub fn commit(
        &mut self,
        resource: &'static Resource,
        key: Key,
        new: Option<Value>,
    ) -> Option<Arc<Value>> {
        self.rv += 1;
        let rv = self.rv;
        let new = new.map(|mut object| {
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            Arc::new(object)
        });
        let old = match &new {
            Some(object) => self.objects.insert(key, object.clone()),
            None => self.objects.remove(&key),
        };
        let change = Arc::new(Change {
            rv,
            resource,
            old,
            new: new.clone(),
        });
        if self.history.len() >= HISTORY
            && let Some(dropped) = self.history.pop_front()
        {
            self.oldest = dropped.rv;
        }
        self.history.push_back(change.clone());
        let _ = self.changes.send(change);
        new
    }
}
