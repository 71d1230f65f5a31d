//! The Helm chart ships the CRD of `crds/` unchanged. The chart installs and upgrades it as a
//! template (`templates/crd.yaml`, so that `helm upgrade` updates it) that includes
//! `charts/rollgate/files/rollout-crd.yaml`; a stale copy there would install an old schema.
//! `tests/chart/chart_render.rs` checks what the template renders.

use std::path::Path;

/// The chart's copy of `crds/rollout.yaml`.
const CHART_COPY: &str = "charts/rollgate/files/rollout-crd.yaml";

#[test]
fn the_chart_crd_is_the_checked_in_crd_byte_for_byte() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let checked_in = std::fs::read(root.join("crds/rollout.yaml")).expect("read crds/rollout.yaml");
    let in_chart = std::fs::read(root.join(CHART_COPY)).unwrap_or_else(|e| {
        panic!("read {CHART_COPY} ({e}); copy it: cp crds/rollout.yaml {CHART_COPY}")
    });
    assert!(
        checked_in == in_chart,
        "{CHART_COPY} differs from crds/rollout.yaml; copy it: cp crds/rollout.yaml {CHART_COPY}"
    );
}

#[test]
fn crds_holds_only_the_rollout_crd_and_the_chart_has_no_crds_directory() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(root.join("crds"))
        .expect("list crds/")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["rollout.yaml"],
        "the chart's template includes one CRD; a new file in crds/ needs a copy in \
         charts/rollgate/files/ and a template"
    );
    // Helm would install charts/rollgate/crds/ once, never upgrade it, and fail the install
    // on the template's copy of the same CRD.
    assert!(
        !root.join("charts/rollgate/crds").exists(),
        "charts/rollgate/crds/ must not exist: the CRD is templates/crd.yaml \
         (its source is {CHART_COPY})"
    );
}
