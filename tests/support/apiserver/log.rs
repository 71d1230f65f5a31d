//! The request log the tests inspect: every request the stand-in answered, in order.

use std::time::Instant;

use serde_json::Value;

/// What a request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// LIST.
    List,
    /// WATCH.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH with a JSON merge or strategic merge patch.
    Patch,
    /// PATCH with `application/apply-patch+yaml` (server-side apply).
    Apply,
    /// DELETE.
    Delete,
    /// Discovery, version, or anything not a resource request.
    Other,
}

impl Verb {
    /// Whether the verb changes objects (when not a dry run).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Apply | Verb::Delete
        )
    }
}

/// One answered request.
#[derive(Clone, Debug)]
pub struct Logged {
    /// When it arrived.
    pub at: Instant,
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// What it did.
    pub verb: Verb,
    /// Resource plural (`configmaps`), when a resource request.
    pub plural: Option<String>,
    /// Namespace in the path.
    pub namespace: Option<String>,
    /// Object name in the path.
    pub name: Option<String>,
    /// `status` for the status subresource.
    pub subresource: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// Request body, for writes.
    pub body: Option<Value>,
    /// Answer status code.
    pub status: u16,
    /// Whether the write changed the stored object (false for a no-op or refused write).
    pub changed: bool,
    /// The `Impersonate-User` header, when the request carried one.
    pub impersonated: Option<String>,
    /// Every `Impersonate-Group` header the request carried.
    pub impersonated_groups: Vec<String>,
}

impl Logged {
    /// A write that reached the store (not a dry run, not refused).
    pub fn is_write(&self) -> bool {
        self.verb.writes() && !self.dry_run && self.status < 300
    }

    /// Whether this addresses `plural` (`rollouts`, `configmaps`, `leases`, …).
    pub fn on(&self, plural: &str) -> bool {
        self.plural.as_deref() == Some(plural)
    }
}
