//! The files in `examples/`, loaded for tests that need the example plan instead of restating
//! it: a test changes only what it varies.

use std::path::PathBuf;

use rollgate::api::Rollout;

/// `examples/NAME.yaml` (NAME may have directories: `scenarios/healthy`).
pub fn example_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.yaml"))
}

/// The text of `examples/NAME.yaml`.
pub fn example_text(name: &str) -> String {
    let path = example_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Rollout of `examples/NAME.yaml`.
pub fn example_rollout(name: &str) -> Rollout {
    rollout_from_yaml(&example_text(name))
        .unwrap_or_else(|e| panic!("{}: {e}", example_path(name).display()))
}

/// The Rollout of `examples/NAME.yaml` as JSON, as the API server would hold it.
pub fn example_json(name: &str) -> serde_json::Value {
    serde_json::to_value(example_rollout(name)).expect("a Rollout is JSON")
}

/// A Rollout from YAML text (an example file with a test's change, say).
pub fn rollout_from_yaml(text: &str) -> Result<Rollout, serde_saphyr::Error> {
    serde_saphyr::from_str(text)
}
