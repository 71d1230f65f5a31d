//! The Helm chart ships the CRDs of `crds/` unchanged: Helm installs `charts/rollgate/crds/`
//! as it is, so a stale copy would install an old schema.

use std::path::Path;

fn yaml_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    names.sort();
    names
}

#[test]
fn the_chart_crds_are_the_checked_in_crds_byte_for_byte() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = root.join("crds");
    let chart = root.join("charts/rollgate/crds");
    let names = yaml_files(&source);
    assert!(
        names.contains(&"rollout.yaml".to_owned()),
        "crds/rollout.yaml exists"
    );
    assert_eq!(
        yaml_files(&chart),
        names,
        "charts/rollgate/crds/ holds the files of crds/"
    );
    for name in &names {
        let checked_in = std::fs::read(source.join(name)).expect("read a CRD");
        let in_chart = std::fs::read(chart.join(name)).expect("read the chart's CRD");
        assert!(
            checked_in == in_chart,
            "charts/rollgate/crds/{name} differs from crds/{name}; \
             copy it: cp crds/{name} charts/rollgate/crds/{name}"
        );
    }
}
