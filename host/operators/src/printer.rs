//! The terminal view, for datasources annotated `metrics.print=true`: IG's log2 histogram
//! layout for histograms, and a table (IG's columns view) for counters and gauges.
//!
//! ```text
//! latency
//!         µs               : count    distribution
//!          0 -> 1          : 0        |                                        |
//!         16 -> 32         : 10       |*************************               |
//!
//! COMM  PID   BYTES
//! dd    4242  409600
//! ```

use std::collections::{HashMap, HashSet};
use std::io::Write;

use super::{Operator, OperatorError};
use gadget_model::datasource::{DatasourceSpec, FieldKind, Histogram, Publication, Sample};

/// Width of the `*` bar, as in IG and biolatency.
const BAR_WIDTH: u64 = 40;
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

pub struct Printer {
    out: Box<dyn Write + Send>,
    /// Clear the screen before each refresh (`cli.clear-screen-before=true` on a terminal).
    terminal: bool,
    /// What `start` received: publications name their datasource by index in it.
    datasources: Vec<DatasourceSpec>,
    selected: Vec<bool>,
    clear: bool,
}

impl Printer {
    /// A view written to `out` (the CLI passes stdout; the daemon an instance's live buffer):
    /// this crate never opens a terminal itself.
    pub fn new(out: Box<dyn Write + Send>, terminal: bool) -> Self {
        Printer {
            out,
            terminal,
            datasources: Vec::new(),
            selected: Vec::new(),
            clear: false,
        }
    }
}

impl Operator for Printer {
    fn start(&mut self, datasources: &[DatasourceSpec]) -> Result<(), OperatorError> {
        self.selected = datasources
            .iter()
            .map(|d| d.flag(gadget_keys::METRICS_PRINT))
            .collect();
        // IG's rendered metrics datasource defaults `cli.clear-screen-before` to true; the
        // gadget's own annotation can turn it off.
        self.clear = self.terminal
            && datasources.iter().zip(&self.selected).any(|(d, sel)| {
                *sel && !d
                    .annotation(gadget_keys::CLI_CLEAR_SCREEN_BEFORE)
                    .is_some_and(|v| v.eq_ignore_ascii_case("false"))
            });
        self.datasources = datasources.to_vec();
        Ok(())
    }

    fn publish(&mut self, publications: &[Publication]) -> Result<(), OperatorError> {
        let mut text = String::new();
        for p in publications {
            if !self.selected.get(p.datasource).copied().unwrap_or(false) {
                continue;
            }
            let Some(ds) = self.datasources.get(p.datasource) else {
                continue;
            };
            for h in &p.histograms {
                let unit = ds.field(&h.field).map(|f| f.unit.as_str()).unwrap_or("");
                if h.labels
                    .iter()
                    .any(|(k, _)| super::metrics::is_env_field(ds, k))
                {
                    // Env fields (node, …) label exported series; the terminal shows the gadget's own.
                    let mut own = h.clone();
                    own.labels
                        .retain(|(k, _)| !super::metrics::is_env_field(ds, k));
                    text.push_str(&render_histogram(&own, unit));
                } else {
                    text.push_str(&render_histogram(h, unit));
                }
                // IG's otel-metrics printer: `fmt.Fprintln(out, h.String())`, a blank line after
                // each histogram.
                text.push('\n');
            }
            if !p.samples.is_empty() {
                text.push_str(&render_samples(ds, &p.samples));
                text.push('\n');
            }
        }
        if text.is_empty() {
            return Ok(());
        }
        // IG's CLI: clear (`\x1b[H\x1b[2J`) then the rendered text as is.
        let frame = if self.clear {
            format!("{CLEAR_SCREEN}{text}")
        } else {
            text
        };
        self.out
            .write_all(frame.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|e| OperatorError::Failed {
                operator: "printer",
                message: format!("writing to the terminal: {e}"),
            })
    }
}

/// One histogram in IG's layout: the field name (with labels, if any), the unit header, and one
/// row per bucket with a 40-column bar scaled to the largest bucket.
pub fn render_histogram(h: &Histogram, unit: &str) -> String {
    let mut s = String::new();
    // Names and labels come from the guest: escaped, so they cannot drive the terminal.
    s.push_str(&gadget_model::printable(&h.field));
    if !h.labels.is_empty() {
        let labels: Vec<String> = h
            .labels
            .iter()
            .map(|(k, v)| format!("{}={v:?}", gadget_model::printable(k)))
            .collect();
        s.push_str(&format!("{{{}}}", labels.join(",")));
    }
    s.push('\n');
    s.push_str(&format!(
        "{:8}{:<16} : count    distribution\n",
        "",
        gadget_model::printable(unit)
    ));
    let max = h.counts.iter().copied().max().unwrap_or(0);
    let mut low = 0u64;
    for (count, high) in h.counts.iter().zip(&h.upper_bounds) {
        s.push_str(&format!(
            "{low:>10} -> {high:<10} : {count:<8} |{}|\n",
            bar(*count, max)
        ));
        low = *high;
    }
    s
}

/// Counters and gauges as a table: one row per label set (in the order the guest published
/// them), the key fields first, then the value fields in the datasource's order.
pub fn render_samples(ds: &DatasourceSpec, samples: &[Sample]) -> String {
    let own = |labels: &[(String, String)]| -> Vec<(String, String)> {
        labels
            .iter()
            .filter(|(k, _)| !super::metrics::is_env_field(ds, k))
            .cloned()
            .collect()
    };
    let mut keys: Vec<String> = Vec::new();
    // (labels, [(field, value)]) per row; `index` finds a row by its labels in O(1), so a
    // snapshot of n samples costs O(n), not O(n²) (a guest may publish 16k of them).
    type Row = (Vec<(String, String)>, Vec<(String, f64)>);
    let mut rows: Vec<Row> = Vec::new();
    let mut index: HashMap<Vec<(String, String)>, usize> = HashMap::new();
    let mut present: HashSet<&str> = HashSet::new();
    for s in samples {
        let labels = own(&s.labels);
        for (k, _) in &labels {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        present.insert(&s.field);
        match index.get(&labels) {
            Some(&i) => rows[i].1.push((s.field.clone(), s.value)),
            None => {
                index.insert(labels.clone(), rows.len());
                rows.push((labels, vec![(s.field.clone(), s.value)]));
            }
        }
    }
    let values: Vec<String> = ds
        .fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::Counter | FieldKind::Gauge))
        .filter(|f| present.contains(f.name.as_str()))
        .map(|f| f.name.clone())
        .collect();
    let header: Vec<String> = keys
        .iter()
        .chain(&values)
        .map(|c| gadget_model::printable(c).to_uppercase())
        .collect();
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|(labels, vals)| {
            let label = |k: &String| {
                labels
                    .iter()
                    .find(|(l, _)| l == k)
                    .map(|(_, v)| gadget_model::printable(v).into_owned())
                    .unwrap_or_default()
            };
            let value = |f: &String| {
                vals.iter()
                    .find(|(n, _)| n == f)
                    .map(|(_, v)| format_value(*v))
                    .unwrap_or_default()
            };
            keys.iter()
                .map(label)
                .chain(values.iter().map(value))
                .collect()
        })
        .collect();
    gadget_model::table::render(&header, &table)
}

/// Whole numbers as integers (counts, bytes), others with two decimals (rates).
fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

fn bar(count: u64, max: u64) -> String {
    let stars = if max == 0 {
        0
    } else {
        (u128::from(count.min(max)) * u128::from(BAR_WIDTH) / u128::from(max)) as usize
    };
    format!(
        "{}{}",
        "*".repeat(stars),
        " ".repeat(BAR_WIDTH as usize - stars)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer tests read back: what the printer wrote.
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn hist(counts: &[u64]) -> Histogram {
        Histogram {
            field: "latency".into(),
            labels: vec![],
            upper_bounds: (0..counts.len()).map(|k| 1u64 << k).collect(),
            counts: counts.to_vec(),
            sum: None,
        }
    }

    /// The sample in IG's docs (and the issue), rows 0, 5 and 6 of the full table.
    #[test]
    fn matches_igs_layout_byte_for_byte() {
        let mut counts = vec![0u64; 27];
        counts[5] = 10;
        counts[6] = 16;
        let out = render_histogram(&hist(&counts), "µs");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "latency");
        assert_eq!(lines[1], "        µs               : count    distribution");
        assert_eq!(
            lines[2],
            "         0 -> 1          : 0        |                                        |"
        );
        assert_eq!(
            lines[7],
            "        16 -> 32         : 10       |*************************               |"
        );
        assert_eq!(
            lines[8],
            "        32 -> 64         : 16       |****************************************|"
        );
        assert_eq!(lines.len(), 2 + 27, "IG prints all 27 rows");
        assert_eq!(
            lines[28],
            "  33554432 -> 67108864   : 0        |                                        |"
        );
    }

    #[test]
    fn bar_scales_and_handles_empty() {
        assert_eq!(bar(0, 0).len(), 40);
        assert_eq!(bar(1, 3).matches('*').count(), 13);
        assert_eq!(bar(u64::MAX, u64::MAX).matches('*').count(), 40);
    }

    #[test]
    fn samples_print_as_a_table_of_label_sets() {
        use gadget_model::datasource::FieldSpec;
        let field = |name: &str, kind| FieldSpec {
            name: name.into(),
            kind,
            unit: String::new(),
            description: String::new(),
            annotations: vec![],
        };
        let ds = DatasourceSpec {
            name: "procs".into(),
            fields: vec![
                field("comm", FieldKind::Key),
                field("bytes", FieldKind::Counter),
                field("rate", FieldKind::Gauge),
            ],
            annotations: vec![],
        };
        let s = |comm: &str, f: &str, v: f64| Sample {
            field: f.into(),
            labels: vec![("comm".into(), comm.into())],
            value: v,
        };
        let text = render_samples(
            &ds,
            &[
                s("dd", "bytes", 409600.0),
                s("dd", "rate", 1.5),
                s("cp", "bytes", 4096.0),
            ],
        );
        assert_eq!(text, "COMM  BYTES   RATE\ndd    409600  1.50\ncp    4096\n");
    }

    #[test]
    fn labels_are_shown_in_the_title() {
        let mut h = hist(&[1]);
        h.labels = vec![("device".into(), "7:0".into())];
        assert!(render_histogram(&h, "µs").starts_with("latency{device=\"7:0\"}\n"));
    }

    /// IG's frame on a terminal: `ESC[H ESC[2J`, the field name, the table, a blank line
    /// (`fmt.Fprintln(h.String())`); clearing is on unless the datasource says "false".
    #[test]
    fn terminal_frames_are_igs() {
        let frame = |annotations: Vec<(String, String)>, terminal: bool| {
            let buf = Buf::default();
            let mut p = Printer::new(Box::new(buf.clone()), terminal);
            let specs = vec![DatasourceSpec {
                name: "blockio".into(),
                fields: vec![],
                annotations,
            }];
            p.start(&specs).unwrap();
            let mut counts = vec![0u64; 27];
            counts[4] = 3;
            p.publish(&[Publication {
                datasource: 0,
                histograms: vec![hist(&counts)],
                samples: vec![],
            }])
            .unwrap();
            String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
        };
        let print = ("metrics.print".to_string(), "true".to_string());
        let table = render_histogram(
            &hist(&{
                let mut c = vec![0u64; 27];
                c[4] = 3;
                c
            }),
            "",
        );
        // No annotation: IG's rendered datasource defaults cli.clear-screen-before to true.
        assert_eq!(
            frame(vec![print.clone()], true),
            format!("\x1b[H\x1b[2J{table}\n")
        );
        let off = ("cli.clear-screen-before".to_string(), "false".to_string());
        assert_eq!(frame(vec![print.clone(), off], true), format!("{table}\n"));
        // Not a terminal: never escape codes.
        assert_eq!(frame(vec![print], false), format!("{table}\n"));
    }

    #[test]
    fn printer_prints_only_selected_datasources() {
        let buf = Buf::default();
        let mut p = Printer::new(Box::new(buf.clone()), false);
        let ds = |name: &str, print: &str| DatasourceSpec {
            name: name.into(),
            fields: vec![],
            annotations: vec![("metrics.print".into(), print.into())],
        };
        let specs = vec![ds("a", "true"), ds("b", "false")];
        p.start(&specs).unwrap();
        let pubs = vec![
            Publication {
                datasource: 0,
                histograms: vec![hist(&[1])],
                samples: vec![],
            },
            Publication {
                datasource: 1,
                histograms: vec![hist(&[2, 2])],
                samples: vec![],
            },
        ];
        p.publish(&pubs).unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("latency").count(), 1, "{text}");
    }
}
