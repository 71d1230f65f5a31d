//! `rollgate controller`'s address flags, checked before any cluster is looked for: a bad
//! `--cluster-domain` or `--allow-address` is a usage error (exit 2) naming the flag; good
//! ones get as far as looking for a cluster (exit 3 without one).

use std::process::{Command, Output};

fn controller(flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .arg("controller")
        .args([
            "--metrics-bind-address",
            "0",
            "--health-probe-bind-address",
            "0",
        ])
        .args(flags)
        .env("KUBECONFIG", "/nonexistent/rollgate-test-kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("HOME", "/nonexistent")
        .output()
        .expect("the binary runs")
}

#[test]
fn bad_address_flags_are_usage_errors_naming_the_flag() {
    for (flags, named) in [
        (&["--cluster-domain", "bad domain"][..], "--cluster-domain"),
        (&["--cluster-domain", "."][..], "--cluster-domain"),
        (&["--allow-address", "ftp://x"][..], "--allow-address"),
        (
            &["--allow-insecure-credentials=maybe"][..],
            "--allow-insecure-credentials",
        ),
    ] {
        let out = controller(flags);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(named), "{flags:?}: {stderr}");
    }
}

#[test]
fn good_address_flags_get_as_far_as_the_cluster() {
    let out = controller(&[
        "--cluster-domain",
        "corp.internal.",
        "--allow-address",
        "prometheus.monitoring",
        "--allow-address",
        "127.0.0.1",
        "--allow-insecure-credentials",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot find a cluster"), "{stderr}");
}
