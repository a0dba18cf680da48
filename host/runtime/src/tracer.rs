//! Tracers (IG's `GADGET_TRACER` datasources): ring buffer → batches of raw records → the
//! [`BatchStage`] (the Wasm guest's [`GuestStage`] when it subscribed) → decode
//! ([`Schema::event`]) plus the values of the fields the stage added → `--filter` → the output
//! the user chose, handed to an [`EventSink`] line by line.
//!
//! Threads: one reader thread per instance polls every tracer's ring buffer and copies at most
//! [`MAX_BATCH_RECORDS`] records per batch (a batch waits at most [`BATCH_LINGER`] for more)
//! into a queue of [`BATCH_QUEUE`] batches; the instance
//! loop takes batches from the queue, runs the stage and the pipeline between its snapshot
//! ticks. Memory is bounded by the queue (batches × records × record size); when the queue is
//! full the reader drops the batch and counts its records ([`Loss::host_dropped`]): a consumer
//! too slow costs counted events, never memory, and never blocks the eBPF side (a full ring
//! drops in the kernel instead, see `gadget_ebpf::events`, reported as [`Loss::ring_full`]).
//!
//! Everything the user can get wrong (`--filter`, `--fields`, annotations) is checked when the
//! pipeline is built, before anything is loaded into the kernel.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gadget_ebpf::EventSource;
use gadget_events::counter::EventCounter;
use gadget_events::render::{ColumnsRenderer, JsonRenderer};
use gadget_events::{
    FieldConfig, FieldId, FieldKind, Filter, FormatContext, IdResolver, NoNames, PasswdResolver,
    Schema, SchemaError, Value, WallClock, select_fields,
};
use gadget_model::datasource::{
    DatasourceSpec, FieldKind as DsFieldKind, FieldSpec, Publication, Sample,
};
use gadget_object::tracer::TracerInfo;
use gadget_wasm::{AddedField, AddedKind, AddedValues, GuestInstance};

/// Most records in one batch (one crossing of the [`BatchStage`] seam).
pub const MAX_BATCH_RECORDS: usize = 1024;
/// Batches queued between the reader thread and the instance loop.
pub const BATCH_QUEUE: usize = 16;
/// How long the reader waits on a ring before checking whether it must stop.
const READER_POLL: Duration = Duration::from_millis(100);
/// How long a batch may wait for more records before it is handed on: batches stay large at
/// low rates (one seam crossing per batch, not per event) at the cost of this much latency.
const BATCH_LINGER: Duration = Duration::from_millis(10);

/// The raw records of one tracer datasource, in arrival order, each exactly the event struct's
/// size. What crosses the [`BatchStage`] seam.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordBatch {
    /// The datasource (`GADGET_TRACER` name, e.g. `open`).
    pub datasource: String,
    pub records: Vec<Vec<u8>>,
    /// Values of the fields the stage adds (the pipeline's `added` fields, in that order): one
    /// column per field, one value per record. Empty when the stage added none; a column
    /// shorter than `records` leaves the rest at the kind's zero value.
    pub added: Vec<Vec<Value>>,
}

/// Why a stage failed a batch (the batch is then dropped and counted; the run goes on).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StageError(pub String);

/// THE SEAM between the host's event pipeline and a guest: every batch of raw records passes
/// through [`BatchStage::on_batch`] before it is decoded, filtered and shown. A stage may drop,
/// modify or add records (each must keep the event struct's size: records of any other size
/// are dropped and counted by the pipeline). [`PassThrough`] is the stage of gadgets without a
/// guest that handles events; [`GuestStage`] (WIT `gadget:api` 0.2 event batches) is the
/// stage of a guest that subscribed to them. The stage may also add field values
/// ([`RecordBatch::added`]) for the fields the pipeline was built with.
pub trait BatchStage: Send {
    fn on_batch(&mut self, batch: RecordBatch) -> Result<RecordBatch, StageError>;
    /// What the stage published from the batches since the last call (a guest's counters),
    /// for the operators, as the snapshots' publications go.
    fn take_publications(&mut self) -> Vec<Publication> {
        Vec::new()
    }
}

/// The stage that changes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

impl BatchStage for PassThrough {
    fn on_batch(&mut self, batch: RecordBatch) -> Result<RecordBatch, StageError> {
        Ok(batch)
    }
}

/// The Wasm guest as the stage: one `on-events` call per batch of a datasource it subscribed
/// to (the others pass through without entering it). The instance loop shares the guest for
/// its snapshots; both run on the loop's thread, so the lock is never contended.
pub struct GuestStage {
    guest: Arc<Mutex<GuestInstance>>,
    /// The latest publication per guest datasource: each replaces the previous one, so only
    /// the last of a tick's batches needs to reach the operators.
    published: Vec<Publication>,
}

impl GuestStage {
    pub fn new(guest: Arc<Mutex<GuestInstance>>) -> GuestStage {
        GuestStage {
            guest,
            published: Vec::new(),
        }
    }
}

impl BatchStage for GuestStage {
    fn on_batch(&mut self, batch: RecordBatch) -> Result<RecordBatch, StageError> {
        let mut guest = self
            .guest
            .lock()
            .map_err(|_| StageError("the guest panicked in an earlier call".into()))?;
        if !guest.wants_events(&batch.datasource) {
            return Ok(batch);
        }
        let out = guest
            .on_events(&batch.datasource, &batch.records)
            .map_err(|e| StageError(e.to_string()))?;
        drop(guest);
        for p in &out.published {
            match self
                .published
                .iter_mut()
                .find(|q| q.datasource == p.datasource)
            {
                Some(q) => *q = p.clone(),
                None => self.published.push(p.clone()),
            }
        }
        let records = out.apply(batch.records);
        let added = out.added.into_iter().map(added_column).collect();
        Ok(RecordBatch {
            datasource: batch.datasource,
            records,
            added,
        })
    }

    fn take_publications(&mut self) -> Vec<Publication> {
        std::mem::take(&mut self.published)
    }
}

fn added_column(values: AddedValues) -> Vec<Value> {
    match values {
        AddedValues::U64(v) => v.into_iter().map(Value::U64).collect(),
        AddedValues::I64(v) => v.into_iter().map(Value::I64).collect(),
        AddedValues::F64(v) => v.into_iter().map(Value::F64).collect(),
        AddedValues::Bool(v) => v.into_iter().map(Value::Bool).collect(),
        AddedValues::String(v) => v.into_iter().map(Value::Str).collect(),
    }
}

fn added_kind(kind: AddedKind) -> FieldKind {
    match kind {
        AddedKind::U64 => FieldKind::U64,
        AddedKind::I64 => FieldKind::I64,
        AddedKind::F64 => FieldKind::F64,
        AddedKind::Bool => FieldKind::Bool,
        AddedKind::String => FieldKind::String,
    }
}

/// How events are shown (`-o`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EventFormat {
    /// IG's columns: a header once, one row per event.
    #[default]
    Columns,
    /// One JSON object per line.
    Json,
    /// Indented JSON, one document per event.
    JsonPretty,
    /// Nothing shown (events still counted, filters and the stage still run).
    None,
}

/// What the user chose for tracers' output.
#[derive(Debug, Clone, Default)]
pub struct EventOptions {
    pub format: EventFormat,
    /// IG's `--filter`.
    pub filter: Option<String>,
    /// IG's `--fields` (columns only, as in IG).
    pub fields: Option<String>,
    /// Scale columns to this width (a terminal); `None` keeps the configured widths.
    pub terminal_width: Option<usize>,
}

/// Where events go: the CLI prints them; the library only hands over lines.
pub trait EventSink: Send {
    /// One rendered line of datasource `datasource`: the columns header (once), a row, or a
    /// JSON document (without the trailing newline).
    fn line(&mut self, datasource: &str, line: &str);
    /// Events lost since the last report.
    fn lost(&mut self, datasource: &str, loss: &Loss);
    /// A one-time notice about the datasource (fields left out, records refused).
    fn notice(&mut self, datasource: &str, notice: &str);
    /// Called after each batch: a buffered sink writes out here.
    fn flush(&mut self) {}
}

/// An [`EventSink`] that drops everything (detached instances until `attach` streams events).
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl EventSink for Discard {
    fn line(&mut self, _: &str, _: &str) {}
    fn lost(&mut self, _: &str, _: &Loss) {}
    fn notice(&mut self, _: &str, _: &str) {}
}

/// Events lost, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loss {
    /// Records read from the ring but dropped because the pipeline was behind (exact).
    pub host_dropped: u64,
    /// Times the ring was found full: the eBPF side then drops the events it cannot reserve
    /// room for, which the kernel does not count.
    pub ring_full: u64,
    /// Records the stage returned with the wrong size, or that could not be decoded (exact).
    pub refused: u64,
    /// Records of batches the stage (the guest) failed: none of them is shown (exact).
    pub guest_failed: u64,
}

impl EventOptions {
    /// Refuses options that only tracers use when the gadget has none (they would be ignored).
    pub fn check_no_tracer(&self) -> Result<(), TracerError> {
        if self.format != EventFormat::Columns {
            return Err(TracerError::NotATracer("-o"));
        }
        if self.filter.is_some() {
            return Err(TracerError::NotATracer("--filter"));
        }
        if self.fields.is_some() {
            return Err(TracerError::NotATracer("--fields"));
        }
        Ok(())
    }
}

impl Loss {
    pub fn is_empty(&self) -> bool {
        *self == Loss::default()
    }

    /// The events known lost one by one; `ring_full` counts occasions, not events, so it is
    /// left out.
    pub fn events(&self) -> u64 {
        self.host_dropped + self.refused + self.guest_failed
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TracerError {
    // `reason`, not `source`: the message carries it, and the CLI prints sources as well.
    #[error("--filter for datasource {datasource}: {reason}")]
    Filter {
        datasource: String,
        reason: gadget_events::FilterError,
    },
    #[error("datasource {datasource}: {reason}")]
    Fields {
        datasource: String,
        reason: gadget_events::SelectError,
    },
    #[error("columns of datasource {datasource}: {reason}")]
    Columns {
        datasource: String,
        reason: gadget_events::render::columns::ColumnsError,
    },
    #[error("metrics of datasource {datasource}: {reason}")]
    Counter {
        datasource: String,
        reason: gadget_events::counter::CounterError,
    },
    #[error(
        "{0} applies to tracers' events, and this gadget has no tracer; -o json for histogram gadgets is for runs on a cluster (kubectl gadget run)"
    )]
    NotATracer(&'static str),
    #[error("starting the ring buffer reader: {0}")]
    Reader(std::io::Error),
    #[error("datasource {datasource}: the guest's added field {field:?}: {reason}")]
    AddedField {
        datasource: String,
        field: String,
        reason: SchemaError,
    },
}

enum Render {
    Columns {
        renderer: ColumnsRenderer,
        header_done: bool,
    },
    Json(JsonRenderer),
    None,
}

/// Counters the reader thread shares with the loop, per tracer.
#[derive(Debug, Default)]
struct SharedLoss {
    host_dropped: AtomicU64,
    ring_full: AtomicU64,
}

/// One tracer datasource's pipeline: schema, filter, renderer, counts.
pub struct TracerPipeline {
    datasource: String,
    record_size: usize,
    schema: Schema,
    filter: Option<Filter>,
    render: Render,
    shared: Arc<SharedLoss>,
    reported: Loss,
    refused: u64,
    guest_failed: u64,
    /// The schema ids of the stage's added fields, in [`RecordBatch::added`] order.
    added: Vec<FieldId>,
    stage_error_reported: bool,
    /// Events decoded (before the filter) and shown (after it).
    pub decoded: u64,
    pub shown: u64,
    decode_error_reported: bool,
    /// IG's implicit counter (`metrics.implicit-counter.name`), counting shown events.
    counter: Option<(String, EventCounter)>,
    counter_overflow_reported: bool,
}

/// Label sets one event counter keeps; more are counted as overflow (reported once).
pub const MAX_COUNTER_LABEL_SETS: usize = 10_000;

impl TracerPipeline {
    /// Checks the user's choices against the tracer's fields; `config` holds gadget.yaml's and
    /// `--annotate`'s field annotations by full name; `added` are the fields the guest adds
    /// (columns and JSON like the record's, annotated by the guest, then by `config`).
    pub fn new(
        tracer: &TracerInfo,
        config: &FieldConfig,
        added: &[AddedField],
        opts: &EventOptions,
    ) -> Result<Self, TracerError> {
        let ds = &tracer.name;
        let mut schema = Schema::new(tracer.layout.clone(), config);
        let mut added_ids = Vec::with_capacity(added.len());
        for f in added {
            let mut ann = gadget_events::annotations::Annotations::new();
            if !f.description.is_empty() {
                ann.insert(
                    gadget_events::annotations::DESCRIPTION.into(),
                    f.description.clone(),
                );
            }
            ann.extend(f.annotations.iter().cloned());
            if let Some(extra) = config.get(&f.name) {
                ann.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            let id = schema
                .add_host_field(&f.name, None, added_kind(f.kind), &ann)
                .map_err(|reason| TracerError::AddedField {
                    datasource: ds.clone(),
                    field: f.name.clone(),
                    reason,
                })?;
            added_ids.push(id);
        }
        let filter = match opts.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            Some(spec) => {
                Some(
                    Filter::parse(&schema, spec).map_err(|reason| TracerError::Filter {
                        datasource: ds.clone(),
                        reason,
                    })?,
                )
            }
            None => None,
        };
        let fields = select_fields(&schema, opts.fields.as_deref()).map_err(|reason| {
            TracerError::Fields {
                datasource: ds.clone(),
                reason,
            }
        })?;
        let render = match opts.format {
            EventFormat::Columns => Render::Columns {
                renderer: ColumnsRenderer::new(&schema, &fields, opts.terminal_width).map_err(
                    |reason| TracerError::Columns {
                        datasource: ds.clone(),
                        reason,
                    },
                )?,
                header_done: false,
            },
            EventFormat::Json => Render::Json(JsonRenderer::new(&schema, false)),
            EventFormat::JsonPretty => Render::Json(JsonRenderer::new(&schema, true)),
            EventFormat::None => Render::None,
        };
        Ok(TracerPipeline {
            datasource: ds.clone(),
            record_size: tracer.layout.record_size() as usize,
            schema,
            filter,
            render,
            shared: Arc::default(),
            reported: Loss::default(),
            refused: 0,
            guest_failed: 0,
            added: added_ids,
            stage_error_reported: false,
            decoded: 0,
            shown: 0,
            decode_error_reported: false,
            counter: None,
            counter_overflow_reported: false,
        })
    }

    /// Counts the events shown under IG's implicit counter `name`, labelled by the
    /// `metrics.type=key` fields, and returns the datasource the metrics operators see: the key
    /// fields and the counter (`datasource_annotations`: gadget.yaml's and `--annotate`'s).
    pub fn count_events(
        &mut self,
        name: &str,
        description: &str,
        datasource_annotations: Vec<(String, String)>,
    ) -> Result<DatasourceSpec, TracerError> {
        let counter =
            EventCounter::from_schema(&self.schema, MAX_COUNTER_LABEL_SETS).map_err(|reason| {
                TracerError::Counter {
                    datasource: self.datasource.clone(),
                    reason,
                }
            })?;
        let mut fields: Vec<FieldSpec> = counter
            .label_names()
            .iter()
            .map(|l| FieldSpec {
                name: l.clone(),
                kind: DsFieldKind::Key,
                unit: String::new(),
                description: String::new(),
                annotations: Vec::new(),
            })
            .collect();
        fields.push(FieldSpec {
            name: name.to_string(),
            kind: DsFieldKind::Counter,
            unit: String::new(),
            description: description.to_string(),
            annotations: Vec::new(),
        });
        self.counter = Some((name.to_string(), counter));
        Ok(DatasourceSpec {
            name: self.datasource.clone(),
            fields,
            annotations: datasource_annotations,
        })
    }

    /// The counter's state as a publication for datasource index `index` (cumulative counts).
    pub fn publication(&self, index: usize) -> Option<Publication> {
        let (name, counter) = self.counter.as_ref()?;
        Some(Publication {
            datasource: index,
            histograms: Vec::new(),
            samples: counter
                .counts()
                .map(|(labels, n)| Sample {
                    field: name.clone(),
                    labels: counter
                        .label_names()
                        .iter()
                        .cloned()
                        .zip(labels.iter().cloned())
                        .collect(),
                    value: n as f64,
                })
                .collect(),
        })
    }

    pub fn datasource(&self) -> &str {
        &self.datasource
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Notices worth telling the user once (fields the schema left out).
    pub fn notices(&self) -> &[String] {
        self.schema.notices()
    }

    /// Decodes, filters and renders one batch (after the stage).
    pub fn process(
        &mut self,
        batch: RecordBatch,
        ctx: &FormatContext<'_>,
        sink: &mut dyn EventSink,
    ) {
        let mut out = String::new();
        let mut added: Vec<std::vec::IntoIter<Value>> =
            batch.added.into_iter().map(Vec::into_iter).collect();
        for rec in &batch.records {
            // One value per record in every column: taken even for a record refused below.
            let values: Vec<Option<Value>> = added.iter_mut().map(Iterator::next).collect();
            if rec.len() != self.record_size {
                self.refused += 1;
                continue;
            }
            let mut event = match self.schema.event(rec, ctx) {
                Ok(e) => e,
                Err(e) => {
                    self.refused += 1;
                    if !self.decode_error_reported {
                        self.decode_error_reported = true;
                        sink.notice(
                            &self.datasource,
                            &format!("a record could not be decoded: {e}"),
                        );
                    }
                    continue;
                }
            };
            for (&id, v) in self.added.iter().zip(values) {
                if let (Some(slot), Some(v)) = (event.values.get_mut(id), v) {
                    *slot = v;
                }
            }
            self.decoded += 1;
            if let Some(f) = &self.filter
                && !f.matches(&event)
            {
                continue;
            }
            self.shown += 1;
            if let Some((_, c)) = &mut self.counter
                && let Err(e) = c.observe(&event)
                && !self.counter_overflow_reported
            {
                self.counter_overflow_reported = true;
                sink.notice(&self.datasource, &e.to_string());
            }
            match &mut self.render {
                Render::Columns {
                    renderer,
                    header_done,
                } => {
                    if !*header_done {
                        *header_done = true;
                        sink.line(&self.datasource, &renderer.header());
                    }
                    sink.line(&self.datasource, &renderer.row(&event));
                }
                Render::Json(r) => {
                    out.clear();
                    r.render_into(&mut out, &event);
                    sink.line(&self.datasource, out.trim_end_matches('\n'));
                }
                Render::None => {}
            }
        }
    }

    /// The records of a batch the stage failed.
    fn stage_failed(&mut self, records: usize) {
        self.guest_failed += records as u64;
    }

    /// Losses since the last call.
    pub fn take_loss(&mut self) -> Loss {
        let now = Loss {
            host_dropped: self.shared.host_dropped.load(Ordering::Relaxed),
            ring_full: self.shared.ring_full.load(Ordering::Relaxed),
            refused: self.refused,
            guest_failed: self.guest_failed,
        };
        let delta = Loss {
            host_dropped: now.host_dropped - self.reported.host_dropped,
            ring_full: now.ring_full - self.reported.ring_full,
            refused: now.refused - self.reported.refused,
            guest_failed: now.guest_failed - self.reported.guest_failed,
        };
        self.reported = now;
        delta
    }
}

/// The wall clock facts for IG's timestamps: CLOCK_REALTIME − CLOCK_BOOTTIME now. Zone: UTC
/// (IG uses the local zone; this host prints UTC, marked `Z`).
pub fn wall_clock() -> WallClock {
    use rustix::time::{ClockId, clock_gettime};
    let ns = |t: rustix::time::Timespec| t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128;
    let real = ns(clock_gettime(ClockId::Realtime));
    let boot = ns(clock_gettime(ClockId::Boottime));
    WallClock {
        boot_to_wall_ns: (real - boot) as i64,
        now_wall_ns: real as i64,
        utc_offset_secs: 0,
    }
}

/// User and group names for `gadget_uid`/`gadget_gid` (IG's uidgidresolver reads the host's
/// files); ids stay numeric when the files cannot be read.
pub fn id_names() -> Box<dyn IdResolver + Send> {
    match PasswdResolver::from_files(
        std::path::Path::new("/etc/passwd"),
        std::path::Path::new("/etc/group"),
    ) {
        Ok(r) => Box::new(r),
        Err(e) => {
            tracing::debug!("user and group names unavailable: {e}");
            Box::new(NoNames)
        }
    }
}

/// The running tracers of one instance: the reader thread, the queue, the pipelines, the stage.
pub struct Tracers {
    pipelines: Vec<TracerPipeline>,
    stage: Box<dyn BatchStage>,
    rx: Receiver<RecordBatch>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
    clock: WallClock,
    ids: Box<dyn IdResolver + Send>,
    sink: Box<dyn EventSink>,
    /// Events lost and counted exactly ([`Loss::events`]) since start, for the host's metrics.
    lost_events: u64,
}

impl Tracers {
    /// Starts the reader thread over `sources` (one per pipeline, matched by datasource).
    pub fn start(
        pipelines: Vec<TracerPipeline>,
        sources: Vec<EventSource>,
        stage: Box<dyn BatchStage>,
        mut sink: Box<dyn EventSink>,
    ) -> Result<Tracers, TracerError> {
        for p in &pipelines {
            for n in p.notices() {
                sink.notice(&p.datasource, n);
            }
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(BATCH_QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<(EventSource, Arc<SharedLoss>)> = sources
            .into_iter()
            .filter_map(|s| {
                let shared = pipelines
                    .iter()
                    .find(|p| p.datasource == s.datasource)?
                    .shared
                    .clone();
                Some((s, shared))
            })
            .collect();
        let stop2 = stop.clone();
        let reader = std::thread::Builder::new()
            .name("gadget-events".into())
            .spawn(move || read_loop(readers, tx, &stop2))
            .map_err(TracerError::Reader)?;
        Ok(Tracers {
            pipelines,
            stage,
            rx,
            stop,
            reader: Some(reader),
            clock: wall_clock(),
            ids: id_names(),
            sink,
            lost_events: 0,
        })
    }

    /// Processes batches until `until`, or until `stop` says to stop (checked between batches
    /// and at least every [`READER_POLL`]); true when `stop` fired.
    pub fn pump(&mut self, until: Instant, stop: &Receiver<()>) -> bool {
        loop {
            match stop.try_recv() {
                Ok(()) | Err(std::sync::mpsc::TryRecvError::Disconnected) => return true,
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.rx.recv_timeout(left.min(READER_POLL)) {
                Ok(batch) => self.handle(batch),
                Err(RecvTimeoutError::Timeout) => {}
                // The reader ended (it only does when told to): nothing more will come.
                Err(RecvTimeoutError::Disconnected) => {
                    return match stop.recv_timeout(left) {
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                        Err(RecvTimeoutError::Timeout) => false,
                    };
                }
            }
        }
    }

    fn handle(&mut self, batch: RecordBatch) {
        let Some(i) = self
            .pipelines
            .iter()
            .position(|p| p.datasource == batch.datasource)
        else {
            return;
        };
        let n = batch.records.len();
        let batch = match self.stage.on_batch(batch) {
            Ok(b) => b,
            Err(e) => {
                // Counted as lost every time (reported with the losses); the reason once.
                let p = &mut self.pipelines[i];
                p.stage_failed(n);
                if !p.stage_error_reported {
                    p.stage_error_reported = true;
                    self.sink.notice(
                        &p.datasource,
                        &format!(
                            "the guest failed a batch of {n} events, counted as lost (later failures are only counted): {e}"
                        ),
                    );
                }
                return;
            }
        };
        self.clock.now_wall_ns = wall_clock().now_wall_ns;
        let ctx = FormatContext {
            clock: self.clock,
            ids: self.ids.as_ref(),
        };
        self.pipelines[i].process(batch, &ctx, self.sink.as_mut());
        self.sink.flush();
    }

    /// Reports losses since the last report to the sink.
    pub fn report_loss(&mut self) {
        for p in &mut self.pipelines {
            let loss = p.take_loss();
            self.lost_events += loss.events();
            if !loss.is_empty() {
                self.sink.lost(&p.datasource, &loss);
            }
        }
    }

    /// Stops the reader and processes what it queued and what was left in the rings (until the
    /// reader ends), then reports the last losses.
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        while let Ok(batch) = self.rx.recv() {
            self.handle(batch);
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.report_loss();
    }

    /// Events lost since start, counted exactly (see [`Loss::events`]).
    pub fn lost_events(&self) -> u64 {
        self.lost_events
    }

    pub fn pipelines(&self) -> &[TracerPipeline] {
        &self.pipelines
    }

    /// What the stage published since the last call (see [`BatchStage::take_publications`]).
    pub fn take_publications(&mut self) -> Vec<Publication> {
        self.stage.take_publications()
    }

    /// The event counters' publications; `index_of` gives a datasource's index in the list the
    /// operators were started with.
    pub fn publications(&self, index_of: impl Fn(&str) -> Option<usize>) -> Vec<Publication> {
        self.pipelines
            .iter()
            .filter_map(|p| p.publication(index_of(&p.datasource)?))
            .collect()
    }
}

impl Drop for Tracers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The reader's last sends block until taken: take them (an error path, not shown).
        while self.rx.recv().is_ok() {}
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// One ring buffer and the batch being filled from it.
struct Reader {
    src: EventSource,
    shared: Arc<SharedLoss>,
    pending: Vec<Vec<u8>>,
    /// When the first record of `pending` arrived.
    since: Option<Instant>,
}

impl Reader {
    /// Hands the pending batch to the loop when it is full or old enough (or `force`). A full
    /// queue keeps a batch that can still grow; a full batch that cannot be queued is dropped
    /// and counted (the ring keeps draining, so nothing is lost uncounted on the host's side).
    fn flush(&mut self, tx: &SyncSender<RecordBatch>, force: bool) -> bool {
        let due = self.pending.len() >= MAX_BATCH_RECORDS
            || self.since.is_some_and(|t| t.elapsed() >= BATCH_LINGER);
        if self.pending.is_empty() || !(due || force) {
            return true;
        }
        let batch = RecordBatch {
            datasource: self.src.datasource.clone(),
            records: std::mem::take(&mut self.pending),
            added: Vec::new(),
        };
        match tx.try_send(batch) {
            Ok(()) => self.since = None,
            Err(TrySendError::Full(b)) => {
                if b.records.len() >= MAX_BATCH_RECORDS || force {
                    self.shared
                        .host_dropped
                        .fetch_add(b.records.len() as u64, Ordering::Relaxed);
                    self.since = None;
                } else {
                    self.pending = b.records;
                }
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
        true
    }
}

fn read_loop(
    sources: Vec<(EventSource, Arc<SharedLoss>)>,
    tx: SyncSender<RecordBatch>,
    stop: &AtomicBool,
) {
    if sources.is_empty() {
        return;
    }
    let mut readers: Vec<Reader> = sources
        .into_iter()
        .map(|(src, shared)| Reader {
            src,
            shared,
            pending: Vec::new(),
            since: None,
        })
        .collect();
    let slice = READER_POLL / readers.len() as u32;
    while !stop.load(Ordering::Relaxed) {
        for r in &mut readers {
            let wait = match r.since {
                Some(t) => BATCH_LINGER.saturating_sub(t.elapsed()).min(slice),
                None => slice,
            };
            match r.src.wait(wait) {
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("tracer {}: polling its ring buffer: {e}", r.src.datasource);
                    return;
                }
            }
            loop {
                let room = MAX_BATCH_RECORDS.saturating_sub(r.pending.len());
                let d = r.src.drain(room, &mut r.pending);
                if d.full {
                    r.shared.ring_full.fetch_add(1, Ordering::Relaxed);
                }
                if d.records > 0 && r.since.is_none() {
                    r.since = Some(Instant::now());
                }
                if !r.flush(&tx, false) {
                    return;
                }
                if !d.more || stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
    }
    // Told to stop: what is in the rings now is handed over too (the loop consumes until this
    // thread ends, so a blocking send is safe here and nothing is dropped on the way out).
    for r in &mut readers {
        loop {
            let room = MAX_BATCH_RECORDS.saturating_sub(r.pending.len());
            let d = r.src.drain(room, &mut r.pending);
            if !r.pending.is_empty() {
                let batch = RecordBatch {
                    datasource: r.src.datasource.clone(),
                    records: std::mem::take(&mut r.pending),
                    added: Vec::new(),
                };
                if tx.send(batch).is_err() {
                    return;
                }
            }
            if !d.more {
                break;
            }
        }
    }
}
