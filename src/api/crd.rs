//! The CustomResourceDefinition as YAML, the text `rollgate crd` prints and `crds/` holds.

use kube::CustomResourceExt;

use super::spec::Rollout;

/// The Rollout CRD rendered as YAML.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(&Rollout::crd())
}
