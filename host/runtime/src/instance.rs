//! One running gadget: bundle → eBPF loaded and attached → on every tick, snapshot the maps →
//! guest → operators. The daemon runs this same loop for each detached instance.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::GadgetBundle;
use crate::memory;
use crate::tracer::{
    BatchStage, Discard, EventOptions, EventSink, GuestStage, PassThrough, TracerError,
    TracerPipeline, Tracers,
};
use gadget_api::RunRequest;
use gadget_ebpf::{self as ebpf, AttachMode, LoadOptions};
use gadget_model::{GuestConfig, annotations, params};
use gadget_object as object;
use gadget_operators::env::EnvFields;
use gadget_operators::metrics::MetricsName;
use gadget_operators::metrics::host::{InstanceSample, InstanceStats, ProgramSample};
use gadget_operators::{Operator, OperatorError};
use gadget_wasm::{
    Capabilities, EventDatasource, GuestError, GuestInstance, GuestLimits, GuestRuntime,
    default_guest,
};

/// A guest that fails this many snapshots in a row is stopped: it will not recover by itself.
const MAX_CONSECUTIVE_GUEST_FAILURES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error(transparent)]
    Source(#[from] crate::SourceError),
    #[error(transparent)]
    Elf(#[from] object::elf::ElfError),
    #[error(transparent)]
    Annotation(#[from] annotations::AnnotationError),
    #[error(transparent)]
    Param(#[from] params::ParamError),
    #[error(transparent)]
    System(#[from] ebpf::system::SystemError),
    #[error("loading the eBPF programs of {origin}:\n{source}")]
    Load {
        origin: String,
        source: ebpf::LoadError,
    },
    #[error(transparent)]
    Guest(#[from] GuestError),
    #[error("the guest of {0} panicked in an earlier call")]
    GuestPoisoned(String),
    #[error(
        "stopping the gadget after {MAX_CONSECUTIVE_GUEST_FAILURES} failed snapshots in a row; last error: {0}"
    )]
    GuestGaveUp(GuestError),
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error(transparent)]
    Env(#[from] gadget_operators::env::EnvError),
    #[error(transparent)]
    MetricsEndpoint(#[from] gadget_operators::metrics::server::ServerError),
    #[error("reading the eBPF maps: {0}")]
    Snapshot(ebpf::LoadError),
    #[error(transparent)]
    Grant(#[from] gadget_wasm::GrantError),
    #[error(transparent)]
    Tracer(#[from] TracerError),
    #[error("starting the tracers of {origin}: {source}")]
    RingBuffer {
        origin: String,
        source: ebpf::LoadError,
    },
}

/// Everything that says how to run one gadget.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// A gadget directory or an image reference.
    pub reference: String,
    /// Gadget parameters by user key.
    pub params: BTreeMap<String, String>,
    /// Raw `--annotate` values.
    pub annotations: Vec<String>,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    pub attach_mode: Option<AttachMode>,
    pub limits: GuestLimits,
    /// Capabilities the user grants the guest (`--grant`); only those gadget.yaml asks for.
    pub grants: Vec<String>,
    /// How tracers' events are shown (`-o`, `--filter`, `--fields`).
    pub events: EventOptions,
}

/// What a host of many instances (the daemon) adds to a run.
#[derive(Default)]
pub struct Hooks {
    /// Pin programs and maps here so they outlive the process (see `ebpf::loader`).
    pub pin_dir: Option<std::path::PathBuf>,
    /// Called once everything is attached and the first snapshot can be taken.
    pub on_attached: Option<Box<dyn FnOnce() + Send>>,
    /// Where image references are looked up (the caller pulled them already).
    pub images: gadget_image::ImageConfig,
    /// Receives the gadget's warnings (ignored gadget.yaml keys, datasources the object does
    /// not define, …) before it starts; without it they are logged.
    pub on_warning: Option<WarningSink>,
    /// The instance's own metrics on the endpoint (kernel, guest and tick counters), refreshed
    /// on every snapshot tick.
    pub stats: Option<InstanceStats>,
    /// Where tracers' events go; without it they are decoded, filtered and dropped.
    pub event_sink: Option<Box<dyn EventSink>>,
    /// The stage every batch of raw event records passes before decoding (see
    /// [`crate::tracer::BatchStage`]); without it, the guest ([`GuestStage`]) when it
    /// subscribed to a tracer's events, else [`PassThrough`].
    pub batch_stage: Option<Box<dyn BatchStage>>,
}

/// Where a run's warnings go (the CLI prints them).
pub type WarningSink = Box<dyn Fn(&str) + Send>;

/// Why a run ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Stopped,
    TimedOut,
}

/// Runs a gadget until `stop` fires (or its sender is dropped) or the timeout elapses. One last
/// snapshot is published on the way out, so the final view holds every counted event.
pub fn run(
    spec: &InstanceSpec,
    operators: &mut [Box<dyn Operator>],
    stop: &Receiver<()>,
    mut hooks: Hooks,
) -> Result<Ended, InstanceError> {
    memory::limit_arenas();
    let mut bundle = GadgetBundle::open(&spec.reference, &hooks.images)?;
    let elf = object::elf::ElfInfo::parse(&bundle.ebpf_object)?;
    bundle.metadata = bundle
        .metadata
        .with_object(&elf.datasources, &bundle.origin);
    for w in &bundle.metadata.warnings {
        match &hooks.on_warning {
            Some(f) => f(w),
            None => tracing::warn!("{w}"),
        }
    }
    let user_annotations = annotations::parse(
        &spec.annotations,
        &with_tracer_fields(&bundle.metadata, &elf.tracers),
    )?;
    if elf.tracers.is_empty() {
        spec.events.check_no_tracer()?;
    }
    let resolved = params::resolve(
        &bundle.metadata,
        &elf,
        &spec.params,
        std::path::Path::new("/sys/class/block"),
    )?;
    let config = GuestConfig::new(&bundle.metadata, &user_annotations, resolved.values.clone());

    // The guest validates its configuration before anything touches the kernel.
    let runtime = GuestRuntime::shared()?;
    let (wasm, origin) = match &bundle.wasm {
        Some(w) => (w.as_slice(), bundle.origin.clone()),
        None => (
            default_guest::DEFAULT_GUEST,
            format!("{} (default guest)", bundle.origin),
        ),
    };
    let limits = GuestLimits {
        capabilities: Capabilities::resolve(
            &bundle.metadata.name,
            &bundle.metadata.capabilities,
            &spec.grants,
        )?,
        ..spec.limits
    };
    let guest = if elf.tracers.is_empty() {
        GuestInstance::start(&runtime, wasm, &origin, &config, limits)?
    } else {
        let events: Vec<EventDatasource> = elf
            .tracers
            .iter()
            .map(|t| EventDatasource {
                datasource: t.name.clone(),
                layout: t.layout.clone(),
            })
            .collect();
        GuestInstance::start_with_events(&runtime, wasm, &origin, &config, &events, limits)?
    };
    // Tracers: the user's --filter/--fields/annotations are checked (against the record's
    // fields and the ones the guest added) before anything is loaded.
    let mut pipelines = Vec::new();
    for t in &elf.tracers {
        let config = tracer_field_config(&bundle.metadata, &user_annotations, &t.name);
        let pipeline = TracerPipeline::new(t, &config, guest.added_fields(&t.name), &spec.events)?;
        for w in unknown_yaml_fields(&bundle.metadata, &pipeline, &bundle.origin) {
            match &hooks.on_warning {
                Some(f) => f(&w),
                None => tracing::warn!("{w}"),
            }
        }
        pipelines.push(pipeline);
    }
    let wants_events = elf.tracers.iter().any(|t| guest.wants_events(&t.name));
    let mut datasources = guest.datasources().to_vec();
    // Tracers with metrics.collect=true and IG's implicit counter export it: their datasource
    // (the counter and its key fields) replaces whatever the guest declared under that name.
    for p in &mut pipelines {
        let ann =
            tracer_datasource_annotations(&bundle.metadata, &user_annotations, p.datasource());
        let get = |k: &str| {
            ann.iter()
                .rev()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
        };
        let collect = get(gadget_keys::METRICS_COLLECT).is_some_and(|v| v == "true");
        let Some(name) = get(gadget_events::counter::IMPLICIT_COUNTER_NAME).filter(|_| collect)
        else {
            continue;
        };
        let description =
            get(gadget_events::counter::IMPLICIT_COUNTER_DESCRIPTION).unwrap_or_default();
        let spec_ds = p.count_events(&name, &description, ann)?;
        match datasources.iter().position(|d| d.name == spec_ds.name) {
            Some(i) => datasources[i] = spec_ds,
            None => datasources.push(spec_ds),
        }
    }
    let env = EnvFields::new(&mut datasources, &config, |v| std::env::var(v).ok())?;
    for op in operators.iter_mut() {
        op.start(&datasources)?;
    }

    ebpf::system::prepare()?;
    let mut loaded = ebpf::loader::load(
        &bundle.ebpf_object,
        &elf,
        &LoadOptions {
            object_name: bundle.origin.clone(),
            mode: spec.attach_mode,
            globals: resolved.ebpf_globals.clone(),
            kernel: ebpf::system::KernelVersion::running(),
            pin_dir: hooks.pin_dir.clone(),
        },
    )
    .map_err(|source| InstanceError::Load {
        origin: bundle.origin.clone(),
        source,
    })?;
    tracing::info!(
        "attached {} with {} ({}): {}",
        bundle.metadata.name,
        loaded.mode,
        loaded.mode_reason,
        loaded.programs.join(", ")
    );
    for n in &loaded.notices {
        tracing::info!("{n}");
    }
    let guest = Arc::new(Mutex::new(guest));
    let mut tracers = if pipelines.is_empty() {
        None
    } else {
        let sources = loaded
            .take_event_sources()
            .map_err(|source| InstanceError::RingBuffer {
                origin: bundle.origin.clone(),
                source,
            })?;
        Some(Tracers::start(
            pipelines,
            sources,
            match hooks.batch_stage.take() {
                Some(stage) => stage,
                None if wants_events => Box::new(GuestStage::new(guest.clone())),
                None => Box::new(PassThrough),
            },
            hooks.event_sink.take().unwrap_or_else(|| Box::new(Discard)),
        )?)
    };
    // What only the start needed: the object's and the guest's bytes (the guest is compiled,
    // its code shared), the parsed object. The kernel BTF parsed for loading and the guest's
    // compilation are freed by now too.
    bundle.ebpf_object = Vec::new();
    bundle.wasm = None;
    drop(elf);
    memory::release_free_heap();
    if let Some(f) = hooks.on_attached.take() {
        f();
    }

    let deadline = spec.timeout.map(|t| Instant::now() + t);
    let mut failures = 0u32;
    let mut ticks = (0u64, Duration::ZERO);
    loop {
        let wait = match deadline {
            Some(d) => spec
                .interval
                .min(d.saturating_duration_since(Instant::now())),
            None => spec.interval,
        };
        let stopped = match &mut tracers {
            // Events are processed while waiting for the next tick.
            Some(t) => {
                let stopped = t.pump(Instant::now() + wait, stop);
                t.report_loss();
                stopped
            }
            None => matches!(
                stop.recv_timeout(wait),
                Ok(()) | Err(RecvTimeoutError::Disconnected)
            ),
        };
        let ended = if stopped {
            Some(Ended::Stopped)
        } else {
            deadline
                .filter(|d| Instant::now() >= *d)
                .map(|_| Ended::TimedOut)
        };
        if ended.is_some()
            && let Some(t) = &mut tracers
        {
            t.finish();
        }
        // The guest's counters from this tick's events take the snapshots' way out.
        if let Some(t) = &mut tracers {
            let mut publications = t.take_publications();
            if !publications.is_empty() {
                env.apply(&mut publications);
                for op in operators.iter_mut() {
                    op.publish(&publications)?;
                }
            }
        }
        let tick = Instant::now();
        let snapshots = loaded.snapshot().map_err(InstanceError::Snapshot)?;
        let on_snapshot = guest
            .lock()
            .map_err(|_| InstanceError::GuestPoisoned(bundle.origin.clone()))?
            .on_snapshot(&snapshots);
        match on_snapshot {
            Ok(mut publications) => {
                failures = 0;
                if let Some(t) = &tracers {
                    let counted =
                        t.publications(|ds| datasources.iter().position(|d| d.name == ds));
                    publications.retain(|p| !counted.iter().any(|c| c.datasource == p.datasource));
                    publications.extend(counted);
                }
                env.apply(&mut publications);
                for op in operators.iter_mut() {
                    op.publish(&publications)?;
                }
            }
            Err(e) => {
                failures += 1;
                if failures >= MAX_CONSECUTIVE_GUEST_FAILURES {
                    return Err(InstanceError::GuestGaveUp(e));
                }
                tracing::error!("{e} (restarting the guest for the next snapshot)");
            }
        }
        if let Some(stats) = &hooks.stats {
            ticks = (ticks.0 + 1, ticks.1 + tick.elapsed());
            let kernel = loaded.kernel_stats();
            let g = guest.lock().map(|g| g.stats()).unwrap_or_default();
            let lost = tracers.as_ref().map(Tracers::lost_events);
            stats.update(|s| {
                fill_sample(s, kernel, g, ticks);
                s.lost_events = lost;
            });
        }
        if let Some(ended) = ended {
            return Ok(ended);
        }
    }
}

/// One tick's counters into the instance's sample. Fields other producers own (the tracer's
/// `lost_events`) are left as they are.
fn fill_sample(
    s: &mut InstanceSample,
    kernel: ebpf::stats::KernelStats,
    guest: gadget_wasm::GuestStats,
    (snapshots, snapshot_time): (u64, Duration),
) {
    s.drops = kernel.drops;
    s.programs = kernel
        .programs
        .into_iter()
        .map(|p| ProgramSample {
            program: p.program,
            recursion_misses: p.recursion_misses,
            runs: p.runs,
        })
        .collect();
    s.guest_calls = guest.calls;
    s.guest_traps = guest.traps;
    s.guest_fuel_used = guest.fuel_used;
    s.guest_memory_bytes = guest.memory_bytes;
    s.snapshots = snapshots;
    s.snapshot_time = snapshot_time;
}

/// Why a run request (the daemon's protocol) cannot become an instance.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    AttachMode(#[from] ebpf::loader::UnknownAttachMode),
    #[error(transparent)]
    MetricsName(#[from] gadget_operators::metrics::MetricsError),
    #[error("interval must be positive")]
    ZeroInterval,
    #[error(transparent)]
    Name(#[from] gadget_api::NameError),
    #[error("{count} tags: at most {}", gadget_api::MAX_TAGS)]
    TooManyTags { count: usize },
    #[error("--guest-memory-mib {asked} is over the budget daemon.max-guest-memory-mib = {max}")]
    GuestMemory { asked: u64, max: u64 },
    #[error("--guest-fuel {asked} is over the budget daemon.max-guest-fuel = {max}")]
    GuestFuel { asked: u64, max: u64 },
}

/// What the daemon starts for a request (checked against the daemon's budgets).
pub fn spec_from_request(
    request: &RunRequest,
) -> Result<(InstanceSpec, Vec<MetricsName>), RequestError> {
    let attach_mode = request
        .attach_mode
        .as_deref()
        .map(str::parse::<AttachMode>)
        .transpose()?;
    let names = request
        .metrics_names
        .iter()
        .map(|n| n.parse::<MetricsName>())
        .collect::<Result<Vec<_>, _>>()?;
    if request.interval_ms == 0 {
        return Err(RequestError::ZeroInterval);
    }
    if let Some(name) = &request.name {
        gadget_api::check_instance_name(name)?;
    }
    if request.tags.len() > gadget_api::MAX_TAGS {
        return Err(RequestError::TooManyTags {
            count: request.tags.len(),
        });
    }
    for tag in &request.tags {
        gadget_api::check_tag(tag)?;
    }
    let budget = gadget_model::budgets::Budgets::current().daemon;
    if request.guest_memory_mib > budget.max_guest_memory_mib {
        return Err(RequestError::GuestMemory {
            asked: request.guest_memory_mib,
            max: budget.max_guest_memory_mib,
        });
    }
    if request.guest_fuel > budget.max_guest_fuel {
        return Err(RequestError::GuestFuel {
            asked: request.guest_fuel,
            max: budget.max_guest_fuel,
        });
    }
    let spec = InstanceSpec {
        reference: request.reference.clone(),
        params: request.params.clone(),
        annotations: request.annotations.clone(),
        interval: Duration::from_millis(request.interval_ms),
        timeout: None,
        grants: request.grants.clone(),
        events: EventOptions::default(),
        attach_mode,
        limits: GuestLimits {
            fuel_per_call: request.guest_fuel,
            memory_bytes: usize::try_from(request.guest_memory_mib.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            ..GuestLimits::default()
        },
    };
    Ok((spec, names))
}

/// gadget.yaml's metadata with every field of the tracers' schemas declared (for `--annotate`,
/// which refuses unknown fields): the record's fields and IG's derived ones.
fn with_tracer_fields(
    meta: &gadget_model::GadgetMetadata,
    tracers: &[object::tracer::TracerInfo],
) -> gadget_model::GadgetMetadata {
    let mut out = meta.clone();
    for t in tracers {
        let ds = out.datasources.entry(t.name.clone()).or_default();
        let schema = gadget_events::Schema::new(t.layout.clone(), &Default::default());
        for f in schema.fields() {
            if !ds.fields.0.iter().any(|(n, _)| *n == f.full_name) {
                ds.fields.0.push((f.full_name.clone(), Default::default()));
            }
        }
    }
    out
}

/// Warnings for gadget.yaml fields of a tracer's datasource that are neither in its event
/// struct (nor derived from it) nor added by the guest: their annotations apply to nothing.
fn unknown_yaml_fields(
    meta: &gadget_model::GadgetMetadata,
    pipeline: &TracerPipeline,
    origin: &str,
) -> Vec<String> {
    let Some(ds) = meta.datasources.get(pipeline.datasource()) else {
        return Vec::new();
    };
    let schema = pipeline.schema();
    ds.fields
        .0
        .iter()
        .filter(|(name, _)| schema.id_of(name).is_none())
        .map(|(name, _)| {
            format!(
                "{origin}: gadget.yaml describes field {name:?} of datasource {:?}, which is neither a field of its event struct nor added by the guest; its annotations are ignored (fields: {})",
                pipeline.datasource(),
                schema.available().join(", ")
            )
        })
        .collect()
}

/// Field annotations of tracer `datasource`: gadget.yaml's, then `--annotate`'s.
fn tracer_field_config(
    meta: &gadget_model::GadgetMetadata,
    user: &[annotations::Annotation],
    datasource: &str,
) -> gadget_events::FieldConfig {
    let mut config = gadget_events::FieldConfig::new();
    if let Some(ds) = meta.datasources.get(datasource) {
        for (name, f) in &ds.fields.0 {
            config
                .entry(name.clone())
                .or_default()
                .extend(f.annotations.clone());
        }
    }
    for a in user {
        if a.datasource == datasource
            && let Some(field) = &a.field
        {
            config
                .entry(field.clone())
                .or_default()
                .insert(a.key.clone(), a.value.clone());
        }
    }
    config
}

/// Datasource annotations of tracer `datasource`: gadget.yaml's, then `--annotate`'s.
fn tracer_datasource_annotations(
    meta: &gadget_model::GadgetMetadata,
    user: &[annotations::Annotation],
    datasource: &str,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = meta
        .datasources
        .get(datasource)
        .map(|d| d.annotations.clone().into_iter().collect())
        .unwrap_or_default();
    out.extend(
        user.iter()
            .filter(|a| a.datasource == datasource && a.field.is_none())
            .map(|a| (a.key.clone(), a.value.clone())),
    );
    out
}
