//! What ships beside the binary: the Helm chart, CRD copies, RBAC, dashboards, alerts, GitOps health checks, the quickstart and the generated references.
//!
//! One test crate per area (docs/development.md, "Tests"): each file here was its own test
//! binary and is now a module of this one.

#[path = "../support/mod.rs"]
mod support;

mod alerts_doc;
mod argocd_health;
mod chart_crd;
mod chart_rbac;
mod chart_render;
mod dashboard;
mod kstatus;
mod quickstart;
mod reference_docs;
