//! runqlat's Wasm guest: the eBPF `hists` map holds one log2 latency histogram per process
//! (`struct hist_key { u32 tgid; char comm[16]; }`). By default they are summed into one
//! histogram; with `--per-process`, the `--top` processes that waited most often get their own,
//! labelled `comm` and `pid`, ranked by the waits of the last interval (a process that was busy
//! an hour ago does not hold a place forever).

use gadget_sdk::{
    Datasource, Deltas, FromBytes, Gadget, GadgetConfig, Log2Histogram, MapSnapshot, Reader,
    Slots32, top_n,
};

const DATASOURCE: &str = "runqlat";
const FIELD: &str = "latency";

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Process {
    tgid: u32,
    comm: String,
}

impl FromBytes for Process {
    const SIZE: usize = 20;
    fn from_bytes(r: &mut Reader) -> Result<Self, String> {
        Ok(Process {
            tgid: r.u32()?,
            comm: r.cstr(16)?,
        })
    }
}

struct Runqlat {
    out: Datasource,
    per_process: Option<usize>,
    waits: Deltas<Process>,
}

impl Gadget for Runqlat {
    fn init(config: &GadgetConfig) -> Result<Self, String> {
        let per_process = config.param_bool("per-process")?;
        let top = config.param_u64("top", 5)?;
        if per_process && !(1..=100).contains(&top) {
            return Err(format!("--top={top}: expected 1 to 100"));
        }
        let mut spec = config.datasource(DATASOURCE)?.histogram_spec(FIELD)?;
        if per_process {
            spec = spec
                .with_key("comm", "the process's command name")
                .with_key("pid", "the process ID (thread group ID)");
        }
        Ok(Runqlat {
            out: Datasource::add(spec)?,
            per_process: per_process.then_some(top as usize),
            waits: Deltas::default(),
        })
    }

    fn on_snapshot(&mut self, snapshots: &[MapSnapshot]) -> Result<(), String> {
        let Some(snap) = snapshots.iter().find(|s| s.datasource == DATASOURCE) else {
            return Ok(());
        };
        // `struct hist { u32 latency[27]; }`
        let records: Vec<(Process, Slots32)> = snap.records()?;
        let histograms = match self.per_process {
            None => {
                let mut total = Log2Histogram::default();
                records.iter().for_each(|(_, h)| total.add(&h.0));
                vec![total.to_histogram(FIELD, Vec::new())]
            }
            Some(n) => {
                self.waits.update(
                    records.iter().map(|(p, h)| (p.clone(), h.0.total())),
                    snap.taken_at_ns,
                );
                let busiest = top_n(&records, n, |(p, _)| {
                    (self.waits.delta(p).unwrap_or(0), p.clone())
                });
                busiest
                    .into_iter()
                    .map(|(p, h)| {
                        let labels = vec![
                            ("comm".to_string(), p.comm.clone()),
                            ("pid".to_string(), p.tgid.to_string()),
                        ];
                        h.0.to_histogram(FIELD, labels)
                    })
                    .collect()
            }
        };
        self.out.publish(&histograms, &[])
    }
}

gadget_sdk::gadget!(Runqlat);
