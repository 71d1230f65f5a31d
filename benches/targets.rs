//! The flagd target's cost per read and write of a realistic and of a large flag definition
//! (the controller reads on every watch event of a managed ConfigMap and writes per stage).
//!
//! `cargo bench --bench targets`

use criterion::{Criterion, criterion_group, criterion_main};
use rollgate::api::FlagdTarget;
use rollgate::api::Percent;
use rollgate::targets::flagd::{read_percent, write_percent};
use std::hint::black_box;

const FLAG: &str = "passenger_favorites_matching";

fn target() -> FlagdTarget {
    FlagdTarget {
        config_map: Some("feature-flags".into()),
        key: "flags.flagd.json".into(),
        flag: FLAG.into(),
        on_variant: "on".into(),
        off_variant: "off".into(),
        allowlist: (1001..=1010).map(|i| format!("u-{i}")).collect(),
        ..FlagdTarget::default()
    }
}

/// A pretty-printed definition of `others` flags with targeting, the rollout's flag last.
fn definition(others: usize) -> String {
    let mut flags: Vec<String> = (0..others)
        .map(|i| {
            format!(
                "    \"flag-{i}\": {{\n      \"state\": \"ENABLED\",\n      \"variants\": {{\"on\": true, \"off\": false}},\n      \"defaultVariant\": \"off\",\n      \"targeting\": {{\"if\": [{{\"in\": [\"@kaviar.example\", {{\"var\": \"email\"}}]}}, \"on\", {{\"fractional\": [[\"on\", {p}], [\"off\", {q}]]}}]}}\n    }}",
                p = i % 100,
                q = 100 - i % 100
            )
        })
        .collect();
    flags.push(format!(
        "    \"{FLAG}\": {{\"state\": \"ENABLED\", \"variants\": {{\"on\": true, \"off\": false}}, \"defaultVariant\": \"off\", \"targeting\": {{\"fractional\": [[\"on\", 1], [\"off\", 99]]}}}}"
    ));
    format!("{{\n  \"flags\": {{\n{}\n  }}\n}}\n", flags.join(",\n"))
}

fn flagd(c: &mut Criterion) {
    let target = target();
    for others in [10, 2_000] {
        let doc = definition(others);
        let name = format!("{others} other flags, {} KiB", doc.len() / 1024);
        c.bench_function(&format!("flagd read, {name}"), |b| {
            b.iter(|| read_percent(black_box(&doc), &target))
        });
        c.bench_function(&format!("flagd write, {name}"), |b| {
            b.iter(|| write_percent(Some(black_box(&doc)), &target, Percent::whole(5)))
        });
    }
}

criterion_group!(benches, flagd);
criterion_main!(benches);
