//! The resources the stand-in serves, and how a request path names one of them.

/// One kind of object the stand-in serves.
#[derive(Debug, PartialEq, Eq)]
pub struct Resource {
    /// API group, `""` for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Plural name used in paths (`configmaps`).
    pub plural: &'static str,
    /// Kind (`ConfigMap`).
    pub kind: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether `status` is its own subresource (spec writes leave it alone and vice versa);
    /// such resources also carry `metadata.generation`.
    pub status_subresource: bool,
}

impl Resource {
    /// `v1` or `group/version`, as `apiVersion` spells it.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Everything the stand-in serves; any other resource answers 404.
pub const SERVED: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        status_subresource: false,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        status_subresource: false,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        status_subresource: false,
    },
    Resource {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        status_subresource: false,
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        namespaced: true,
        status_subresource: false,
    },
    Resource {
        group: "rollgate.dev",
        version: "v1alpha1",
        plural: "rollouts",
        kind: "Rollout",
        namespaced: true,
        status_subresource: true,
    },
    Resource {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        kind: "EndpointSlice",
        namespaced: true,
        status_subresource: false,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
        status_subresource: true,
    },
];

/// What a request path addresses.
#[derive(Debug)]
pub struct Target {
    /// The resource.
    pub resource: &'static Resource,
    /// The namespace, when the path names one.
    pub namespace: Option<String>,
    /// The object's name, when the path names one.
    pub name: Option<String>,
    /// `status`, when the path ends in it.
    pub subresource: Option<String>,
}

/// Why a path addresses nothing the stand-in serves.
#[derive(Debug)]
pub enum PathError {
    /// A well-formed resource path for a resource not served (e.g. a CRD not installed).
    NotServed(String),
    /// Not a resource path at all.
    Unknown,
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...` resource paths.
pub fn parse_path(path: &str) -> Result<Target, PathError> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(PathError::Unknown),
    };
    let (namespace, plural, name, subresource) = match rest {
        ["namespaces", ns, plural] => (Some(*ns), *plural, None, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name), None),
        ["namespaces", ns, plural, name, sub] => (Some(*ns), *plural, Some(*name), Some(*sub)),
        [plural] => (None, *plural, None, None),
        _ => return Err(PathError::Unknown),
    };
    let resource = SERVED
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
        .ok_or_else(|| PathError::NotServed(format!("{group}/{version}/{plural}")))?;
    if subresource.is_some_and(|s| s != "status" || !resource.status_subresource) {
        return Err(PathError::NotServed(format!(
            "{group}/{version}/{plural}/{}",
            subresource.unwrap_or_default()
        )));
    }
    Ok(Target {
        resource,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    })
}

/// The resource whose `apiVersion` and `kind` are these, if served.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    SERVED
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}
