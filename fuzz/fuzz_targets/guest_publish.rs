//! The guest's publish path, host side: what a hostile guest can hand the host through
//! `add-datasource` and `publish` (the same host functions wasmtime calls, reached through
//! `wasm::guest::host_calls` without compiling a component), then everything downstream of a
//! snapshot: the terminal printer and the metrics operator, and a scrape of the endpoint.
//!
//! Input: an `arbitrary` script of datasource declarations, `--otel-metrics-name` values
//! and rounds of publish calls.
//! Property: the scrape of the endpoint never fails because of what a guest published
//! (issue 11: "the exposition can never be broken by one instance"); see
//! `ignore_scrape_errors` to look past it.
#![no_main]

use arbitrary::Arbitrary;
use gadget_model::datasource::{DatasourceSpec, FieldKind, FieldSpec, Histogram, Sample};
use gadget_operators::Operator;
use gadget_operators::metrics::{MetricsName, MetricsOperator, MetricsRegistry};
use gadget_operators::printer::Printer;
use gadget_wasm::guest::host_calls::HostCalls;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Script {
    datasources: Vec<Ds>,
    /// (datasource index, scope name) for `--otel-metrics-name`.
    names: Vec<(u8, String)>,
    rounds: Vec<Vec<Call>>,
}

#[derive(Arbitrary, Debug)]
struct Ds {
    name: String,
    collect: bool,
    print: bool,
    annotations: Vec<(String, String)>,
    fields: Vec<Field>,
}

#[derive(Arbitrary, Debug)]
struct Field {
    name: String,
    kind: u8,
    unit: String,
    annotations: Vec<(String, String)>,
}

#[derive(Arbitrary, Debug)]
enum Call {
    Publish {
        datasource: u8,
        histograms: Vec<Hist>,
        samples: Vec<Smp>,
    },
    Log(String),
}

#[derive(Arbitrary, Debug)]
struct Hist {
    field: String,
    labels: Vec<(String, String)>,
    upper_bounds: Vec<u64>,
    counts: Vec<u64>,
    sum: Option<f64>,
}

#[derive(Arbitrary, Debug)]
struct Smp {
    field: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn kind(k: u8) -> FieldKind {
    match k % 5 {
        0 => FieldKind::Key,
        1 => FieldKind::Counter,
        2 => FieldKind::Gauge,
        3 => FieldKind::Histogram,
        _ => FieldKind::Value,
    }
}

/// `FUZZ_IGNORE_SCRAPE_ERRORS=1` looks past a known, still open scrape failure for other
/// failures (panics, time, memory) on the same path.
/// What Prometheus refuses in a scrape (then marking the whole target down): an invalid metric
/// name, a label name that is invalid, reserved (`__*`) or repeated in one series, or `le` on
/// anything but a histogram bucket.
fn check_exposition(text: &str) -> Result<(), String> {
    let valid = |s: &str, colon: bool| {
        s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    };
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, rest) = line.split_once(['{', ' ']).ok_or(format!("no value: {line}"))?;
        if !valid(name, true) {
            return Err(format!("metric name {name:?}: {line}"));
        }
        let Some(labels) = rest.rsplit_once('}').map(|(l, _)| l).filter(|_| line.contains('{'))
        else {
            continue;
        };
        let mut names: Vec<String> = Vec::new();
        // name="value" pairs; values escape `\\`, `\"` and `\n`.
        let mut chars = labels.chars().peekable();
        while chars.peek().is_some() {
            let k: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if chars.next() != Some('"') {
                return Err(format!("label {k:?} has no quoted value: {line}"));
            }
            let mut escaped = false;
            for c in chars.by_ref() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    _ => escaped = false,
                }
            }
            if chars.peek() == Some(&',') {
                chars.next();
            }
            if !valid(&k, false) || k.starts_with("__") || names.contains(&k) {
                return Err(format!("label name {k:?}: {line}"));
            }
            if k == "le" && !name.ends_with("_bucket") {
                return Err(format!("le outside a bucket: {line}"));
            }
            names.push(k);
        }
    }
    Ok(())
}

fn ignore_scrape_errors() -> bool {
    static IGNORE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IGNORE.get_or_init(|| std::env::var_os("FUZZ_IGNORE_SCRAPE_ERRORS").is_some())
}

fuzz_target!(|script: Script| {
    let mut host = HostCalls::new("fuzz");
    for ds in &script.datasources {
        let mut annotations = ds.annotations.clone();
        if ds.collect {
            annotations.push(("metrics.collect".into(), "true".into()));
        }
        if ds.print {
            annotations.push(("metrics.print".into(), "true".into()));
        }
        let spec = DatasourceSpec {
            name: ds.name.clone(),
            annotations,
            fields: ds
                .fields
                .iter()
                .map(|f| FieldSpec {
                    name: f.name.clone(),
                    kind: kind(f.kind),
                    unit: f.unit.clone(),
                    description: String::new(),
                    annotations: f.annotations.clone(),
                })
                .collect(),
        };
        let _ = host.add_datasource(&spec);
    }
    let datasources = host.end_init();
    let names: Vec<MetricsName> = script
        .names
        .iter()
        .filter_map(|(i, name)| {
            let ds = datasources.get(usize::from(*i) % datasources.len().max(1))?;
            format!("{}:{name}", ds.name).parse().ok()
        })
        .collect();
    let registry = MetricsRegistry::default();
    let mut operators: Vec<Box<dyn Operator>> = vec![
        Box::new(Printer::new(Box::new(std::io::sink()), false)),
        Box::new(MetricsOperator::new(registry.clone(), names)),
    ];
    for op in &mut operators {
        if op.start(&datasources).is_err() {
            return;
        }
    }
    for round in &script.rounds {
        host.begin_call();
        for call in round {
            match call {
                Call::Publish {
                    datasource,
                    histograms,
                    samples,
                } => {
                    let histograms: Vec<Histogram> = histograms
                        .iter()
                        .map(|h| Histogram {
                            field: h.field.clone(),
                            labels: h.labels.clone(),
                            upper_bounds: h.upper_bounds.clone(),
                            counts: h.counts.clone(),
                            sum: h.sum,
                        })
                        .collect();
                    let samples: Vec<Sample> = samples
                        .iter()
                        .map(|s| Sample {
                            field: s.field.clone(),
                            labels: s.labels.clone(),
                            value: s.value,
                        })
                        .collect();
                    let _ = host.publish(u32::from(*datasource), &histograms, &samples);
                }
                Call::Log(m) => host.log(m.clone()),
            }
        }
        let Ok(publications) = host.end_call() else {
            continue;
        };
        for op in &mut operators {
            let _ = op.publish(&publications);
        }
        if let Err(e) = check_exposition(&registry.render())
            && !ignore_scrape_errors()
        {
            panic!("one guest's publication broke the scrape: {e}");
        }
    }
});
