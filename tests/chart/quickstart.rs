//! `examples/quickstart/` holds together: the Rollout is valid and names the ConfigMap, key
//! and flag the flag definition holds (at the rollback percent, so the pre-checks pass), the
//! OFREP address is flagd's Service and port, the error-rate query reads the job Prometheus
//! scrapes, and `docs/quickstart.md` walks through every file. (CI also validates each
//! manifest with kubernetes-validate: `.ci/examples.sh`.)

use std::path::{Path, PathBuf};
use std::process::Command;

use rollgate::api::{Percent, Rollout};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart")
}

/// Every document of one manifest file, as JSON.
fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join(file)).expect(file);
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str::<Value>(doc).expect(file))
        .filter(|v| !v.is_null())
        .collect()
}

fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn rollout() -> Rollout {
    rollgate::sim::load::load_rollout(&dir().join("50-rollout.yaml"))
        .expect("the quickstart Rollout loads")
}

#[test]
fn the_rollout_lints_clean_and_every_other_document_is_skipped() {
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["lint"])
        .arg(dir())
        .output()
        .expect("rollgate runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 Rollout in 6 files, 0 with problems; 10 other documents skipped"),
        "{stdout}"
    );
}

#[test]
fn every_object_lives_in_the_quickstart_namespace() {
    let ns = object(&documents("00-namespace.yaml"), "Namespace", "quickstart").clone();
    assert_eq!(ns["metadata"]["name"], "quickstart");
    for file in [
        "10-flags-configmap.yaml",
        "20-flagd.yaml",
        "30-demo-app.yaml",
        "40-prometheus.yaml",
        "50-rollout.yaml",
    ] {
        for doc in documents(file) {
            assert_eq!(
                doc["metadata"]["namespace"], "quickstart",
                "{file}: {}",
                doc["metadata"]["name"]
            );
        }
    }
}

#[test]
fn the_rollout_targets_the_flag_definition_at_its_rollback_percent() {
    let rollout = rollout();
    let flagd = rollout.spec.target.flagd.as_ref().expect("a flagd target");
    let name = flagd.config_map.as_deref().expect("a ConfigMap");
    let docs = documents("10-flags-configmap.yaml");
    let cm = object(&docs, "ConfigMap", name);
    let document = cm["data"][flagd.key.as_str()]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {name} has no key {}", flagd.key));
    let live = rollgate::targets::flagd::read_percent(document, flagd)
        .expect("the flag definition reads")
        .expect("the flag exists");
    let rollback = rollout.spec.rollback.percent;
    assert_eq!(
        live, rollback,
        "the pre-checks want the rollback percent before the start"
    );
    assert_eq!(live, Percent::from_integer(0).expect("0 %"));

    // flagd mounts that ConfigMap and serves that key.
    let flagd_docs = documents("20-flagd.yaml");
    let deployment = object(&flagd_docs, "Deployment", "flagd");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["configMap"]["name"], name);
    let mount = pod["containers"][0]["volumeMounts"][0]["mountPath"]
        .as_str()
        .expect("a mount");
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.contains(&format!("file:{mount}/{}", flagd.key).as_str()),
        "flagd serves {mount}/{}: {args:?}",
        flagd.key
    );
}

#[test]
fn the_determinism_gate_probes_flagds_ofrep_port() {
    let rollout = rollout();
    let gate = rollout
        .spec
        .analysis
        .gates
        .iter()
        .find_map(|g| g.ofrep.as_ref())
        .expect("an ofrep gate");
    let url = reqwest::Url::parse(&gate.address).expect("an address");
    let docs = documents("20-flagd.yaml");
    let service = object(&docs, "Service", url.host_str().expect("a host"));
    let port = url.port().expect("a port");
    let ports = service["spec"]["ports"].as_array().expect("ports");
    let entry = ports
        .iter()
        .find(|p| p["port"] == port)
        .unwrap_or_else(|| panic!("Service flagd has no port {port}"));
    assert_eq!(entry["targetPort"], "ofrep");
}

#[test]
fn the_error_rate_query_reads_the_job_prometheus_scrapes() {
    let rollout = rollout();
    let query = rollout
        .spec
        .analysis
        .gates
        .iter()
        .find_map(|g| g.prometheus.as_ref())
        .map(|p| p.query.clone())
        .expect("a prometheus gate");
    let docs = documents("40-prometheus.yaml");
    let config: Value = serde_saphyr::from_str(
        object(&docs, "ConfigMap", "prometheus")["data"]["prometheus.yml"]
            .as_str()
            .expect("prometheus.yml"),
    )
    .expect("prometheus.yml is YAML");
    let job = &config["scrape_configs"][0];
    let job_name = job["job_name"].as_str().expect("a job");
    assert!(query.contains(&format!("job=\"{job_name}\"")), "{query}");
    let target = job["static_configs"][0]["targets"][0]
        .as_str()
        .expect("a target");
    let app = documents("30-demo-app.yaml");
    let service = object(&app, "Service", "demo-app");
    assert_eq!(
        target,
        format!(
            "demo-app.quickstart.svc:{}",
            service["spec"]["ports"][0]["port"]
        )
    );
    // The controller's default Prometheus, as the quickstart installs the chart.
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/quickstart.md"))
            .expect("docs/quickstart.md");
    assert!(guide.contains("--set controller.prometheus=http://prometheus.quickstart:9090"));
}

#[test]
fn the_guide_walks_through_every_file() {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/quickstart.md"))
            .expect("docs/quickstart.md");
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .expect("examples/quickstart")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "{files:?}");
    for file in files {
        assert!(
            guide.contains(&format!("`{file}`")),
            "docs/quickstart.md does not describe {file}"
        );
        if file != "00-namespace.yaml" {
            assert!(
                guide.contains(&format!("examples/quickstart/{file}")),
                "no step applies {file}"
            );
        }
    }
}
