//! trace_exec's Wasm guest: gets the `trace_exec` events in batches, adds the field `exe` (the
//! executed file's name without its directory) to each, drops the execs of the process named
//! by `--ignore-comm`, and counts execs per `exe` on the `trace_exec_count` datasource: export it
//! with `--otel-metrics-name trace_exec_count:NAME`.

use gadget_sdk::{
    Added, EventCounter, EventSource, Events, Field, Gadget, GadgetConfig, MapSnapshot,
};

const DATASOURCE: &str = "trace_exec";
/// Most distinct `exe` label values counted; further ones count under `other`.
const MAX_EXES: usize = 1024;

struct Guest {
    comm: Field,
    filename: Field,
    exe: Added<String>,
    ignore_comm: Option<String>,
    counts: EventCounter,
}

impl Gadget for Guest {
    /// Called once: find the record's fields by name, declare what the guest adds.
    fn init(config: &GadgetConfig) -> Result<Self, String> {
        let mut events = EventSource::subscribe(config, DATASOURCE)?;
        Ok(Guest {
            comm: events.field("proc.comm")?,
            filename: events.field("filename")?,
            exe: events.add_field::<String>("exe", "executed file without its directory")?,
            ignore_comm: config
                .param("ignore-comm")
                .filter(|c| !c.is_empty())
                .map(String::from),
            counts: EventCounter::add(
                &format!("{DATASOURCE}_count"),
                "execs",
                &["exe"],
                "execs per executed file name",
                MAX_EXES,
            )?,
        })
    }

    /// A tracer has no maps to snapshot.
    fn on_snapshot(&mut self, _snapshots: &[MapSnapshot]) -> Result<(), String> {
        Ok(())
    }

    /// Called with every batch of events, in the order the kernel sent them.
    fn on_events(&mut self, events: &mut Events) -> Result<(), String> {
        for i in 0..events.len() {
            let record = events.record(i);
            if self.ignore_comm.as_deref() == Some(&*self.comm.str(record)) {
                events.drop_event(i);
                continue;
            }
            let path = self.filename.str(record);
            let exe = path.rsplit('/').next().unwrap_or_default().to_string();
            self.counts.count(&[&exe]);
            events.set(i, &self.exe, exe);
        }
        self.counts.publish()
    }
}

gadget_sdk::gadget!(Guest);
