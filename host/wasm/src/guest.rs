//! Running one guest: instantiate under limits, call `init`, `on-snapshot` and `on-events`,
//! collect what it publishes, and recover from traps by re-instantiating (the eBPF counts are
//! cumulative in the kernel, so a fresh guest loses nothing; a trapped event batch is lost and
//! reported as such).
//!
//! Every minor version of `gadget:api` the host knows is linked (0.1 and 0.2); a guest runs
//! against the one it was built for, chosen from its `guest` export's version.

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{self, Gadget, GadgetPre, types, v0_1};
use crate::events::{self, AddedField, EventDatasource, EventsOut};
use gadget_model::GuestConfig;
use gadget_model::budgets::{Budgets, GuestBudget};
use gadget_model::datasource::{DatasourceSpec, FieldKind, Publication, reserved_label};
use gadget_model::{Capability, MapSnapshot};

/// The host side of the guest API without wasmtime, for the fuzz target `guest_publish`.
#[doc(hidden)]
pub mod host_calls;

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("Wasm guest of {origin} is not a valid component: {reason}")]
    Compile { origin: String, reason: String },
    #[error(
        "Wasm guest of {origin} was built against {found}, but this host runs guests built against {PACKAGE}@{OLDEST} to {PACKAGE}@{VERSION}; rebuild the guest with a matching gadget-guest-sdk",
        PACKAGE = bindings::PACKAGE,
        OLDEST = bindings::v0_1::VERSION,
        VERSION = bindings::VERSION
    )]
    IncompatibleApi { origin: String, found: String },
    #[error("Wasm guest of {origin} cannot be linked: {reason}")]
    Link { origin: String, reason: String },
    #[error("Wasm guest of {origin} ran out of its CPU budget ({fuel} fuel units) in {call}")]
    OutOfFuel {
        origin: String,
        call: &'static str,
        fuel: u64,
    },
    #[error("Wasm guest of {origin} trapped in {call}: {reason}")]
    Trap {
        origin: String,
        call: &'static str,
        reason: String,
    },
    #[error(
        "Wasm guest of {origin} went over budget in {call}: {message} (raise it with --budget KEY=VALUE if this is expected; see docs/budgets.md)"
    )]
    OverBudget {
        origin: String,
        call: &'static str,
        message: String,
    },
    #[error("Wasm guest of {origin} returned a malformed result from {call}: {message}")]
    Malformed {
        origin: String,
        call: &'static str,
        message: String,
    },
    #[error("{what} handed to the Wasm guest of {origin} in {call}: {message}")]
    BadInput {
        origin: String,
        call: &'static str,
        what: &'static str,
        message: String,
    },
    #[error("Wasm guest of {origin} refused in {call}: {message}")]
    Refused {
        origin: String,
        call: &'static str,
        message: String,
    },
}

/// Per-guest budgets. Fuel is spent per Wasm instruction (roughly), refilled for every call.
#[derive(Debug, Clone, Copy)]
pub struct GuestLimits {
    pub fuel_per_call: u64,
    pub memory_bytes: usize,
    /// What the guest may touch beyond its own memory (gadget.yaml asked, the user granted).
    pub capabilities: Capabilities,
    /// What the guest may hand the host per call and per snapshot.
    pub budget: GuestBudget,
}

/// The capabilities a guest runs with; none by default. There is no filesystem capability:
/// no directory is ever opened to a guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub clock: bool,
    pub network: bool,
}

/// A `--grant` that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("--grant {}: unknown capability (expected {})", .0, Capability::NAMES)]
    Unknown(String),
    #[error(
        "--grant {grant}: gadget {gadget} does not ask for it (its gadget.yaml capabilities: {})",
        listed(.requested)
    )]
    NotRequested {
        grant: String,
        gadget: String,
        requested: Vec<String>,
    },
}

fn listed(requested: &[String]) -> String {
    if requested.is_empty() {
        "none".to_string()
    } else {
        requested.join(", ")
    }
}

impl Capabilities {
    /// What gadget.yaml `requested` and the user `granted`; granting what was not asked for
    /// is an error (a typo, or a gadget that is not the one the user thinks).
    pub fn resolve(
        gadget: &str,
        requested: &[String],
        granted: &[String],
    ) -> Result<Capabilities, GrantError> {
        let mut caps = Capabilities::default();
        for g in granted {
            let cap = Capability::parse(g).ok_or_else(|| GrantError::Unknown(g.clone()))?;
            if !requested.iter().any(|r| r == g) {
                return Err(GrantError::NotRequested {
                    grant: g.clone(),
                    gadget: gadget.to_string(),
                    requested: requested.to_vec(),
                });
            }
            match cap {
                Capability::Clock => caps.clock = true,
                Capability::Network => caps.network = true,
            }
        }
        for r in requested.iter().filter(|r| !granted.contains(r)) {
            tracing::info!(
                "gadget {gadget} asks for the {r} capability; its guest runs without it unless you add --grant {r}"
            );
        }
        Ok(caps)
    }
}

/// Time standing still at zero: what a guest without the clock capability sees.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            // Decoding a full 10240-entry map takes well under 10^8; a runaway loop burns
            // through 10^9 in about a second.
            fuel_per_call: 1_000_000_000,
            memory_bytes: 64 << 20,
            capabilities: Capabilities::default(),
            budget: Budgets::current().guest,
        }
    }
}

/// The process-wide engine; compiling is the expensive part, instantiating is cheap.
#[derive(Clone)]
pub struct GuestRuntime {
    engine: Engine,
    guests: std::sync::Arc<std::sync::Mutex<GuestCache>>,
}

/// Compiled and linked guests by the SHA-256 of their bytes: every instance running the same
/// guest shares its code, compiled once per process (otherwise ≈ 200 KiB of code and ≈ 80 ms of
/// CPU per instance). Held weakly: a guest no instance runs any more is freed.
type GuestCache = std::collections::HashMap<[u8; 32], std::sync::Weak<Prepared>>;

/// A guest compiled and linked against the minor version of the API it was built for.
enum Prepared {
    V0_1(v0_1::GadgetPre<HostState>),
    V0_2(GadgetPre<HostState>),
}

/// An instantiated guest's exports, by API version.
enum Exports {
    V0_1(v0_1::Gadget),
    V0_2(Gadget),
}

/// Most bytes of address space reserved for one guest's linear memory up front; a memory that
/// grows past it moves (up to [`GuestLimits::memory_bytes`]). Wasmtime's default (4 GiB plus
/// guards, so no bounds checks) costs no RAM but 4 GiB of address space per instance: 400 GiB
/// for a daemon of 100, which address-space limits and some monitoring count against us. Guests
/// run once per interval for microseconds, so explicit bounds checks cost nothing visible.
const MEMORY_RESERVATION: u64 = 64 << 20;
/// Address space added when a memory has to move, so that it does not move at every page.
const MEMORY_RESERVATION_FOR_GROWTH: u64 = 16 << 20;
/// Guard region after a linear memory (wasmtime's default is 32 MiB).
const MEMORY_GUARD: u64 = 64 << 10;

impl GuestRuntime {
    /// The process's one engine, made on first use: every instance (the daemon hosts many)
    /// shares its compiler and code memory.
    pub fn shared() -> Result<Self, GuestError> {
        static SHARED: std::sync::OnceLock<Result<GuestRuntime, String>> =
            std::sync::OnceLock::new();
        SHARED
            .get_or_init(|| GuestRuntime::new().map_err(|e| e.to_string()))
            .clone()
            .map_err(|reason| GuestError::Compile {
                origin: "host".into(),
                reason,
            })
    }

    pub fn new() -> Result<Self, GuestError> {
        let mut config = Config::new();
        config.consume_fuel(true);
        config.wasm_component_model(true);
        config
            .memory_reservation(MEMORY_RESERVATION)
            .memory_reservation_for_growth(MEMORY_RESERVATION_FOR_GROWTH)
            .memory_guard_size(MEMORY_GUARD);
        let engine = Engine::new(&config).map_err(|e| GuestError::Compile {
            origin: "host".into(),
            reason: format!("{e:#}"),
        })?;
        Ok(GuestRuntime {
            engine,
            guests: Default::default(),
        })
    }

    /// `wasm` compiled, checked and linked: from the cache when an instance runs it already.
    fn prepare(&self, wasm: &[u8], origin: &str) -> Result<std::sync::Arc<Prepared>, GuestError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(wasm).into();
        // Held while compiling: two instances of one new guest compile it once.
        let mut cache = self.guests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pre) = cache.get(&digest).and_then(std::sync::Weak::upgrade) {
            return Ok(pre);
        }
        let engine = &self.engine;
        let component = Component::new(engine, wasm).map_err(|e| GuestError::Compile {
            origin: origin.to_string(),
            reason: format!("{e:#}"),
        })?;
        let minor = check_api_version(engine, &component, origin)?;
        let mut linker: Linker<HostState> = Linker::new(engine);
        let link_err = |e: wasmtime::Error| GuestError::Link {
            origin: origin.to_string(),
            reason: format!("{e:#}"),
        };
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link_err)?;
        // Every version's host interface: each has its own import name (`…/host@0.1.0`, `@0.2.0`).
        Gadget::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(link_err)?;
        v0_1::Gadget::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(link_err)?;
        let pre = linker.instantiate_pre(&component).map_err(link_err)?;
        let pre = std::sync::Arc::new(match minor {
            1 => Prepared::V0_1(v0_1::GadgetPre::new(pre).map_err(link_err)?),
            _ => Prepared::V0_2(GadgetPre::new(pre).map_err(link_err)?),
        });
        cache.retain(|_, g| g.strong_count() > 0);
        cache.insert(digest, std::sync::Arc::downgrade(&pre));
        Ok(pre)
    }
}

struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: TrackedLimits,
    in_init: bool,
    datasources: Vec<DatasourceSpec>,
    published: Vec<Publication>,
    origin: String,
    budget: GuestBudget,
    /// What this call has handed over so far (reset before each guest call).
    spent: Spent,
    /// The gadget's event datasources: name and the record's field names (added fields may not
    /// reuse them).
    event_sources: Vec<(String, Vec<String>)>,
    /// Event datasources the guest asked for in `init`, with the fields it added to each.
    subscribed: Vec<(String, Vec<AddedField>)>,
}

/// The store's limits, plus the linear memory they let the guest have (for the host's metrics:
/// wasmtime does not say how large a component's memories are from outside).
struct TrackedLimits {
    inner: StoreLimits,
    memory_bytes: usize,
}

impl ResourceLimiter for TrackedLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_bytes = self
                .memory_bytes
                .saturating_add(desired.saturating_sub(current));
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// What a guest has cost so far, for the host's own metrics. Counts are since the instance
/// started and survive re-instantiation after a trap; `memory_bytes` is the current store's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestStats {
    /// Calls into the guest (`init`, `on-snapshot`).
    pub calls: u64,
    /// Calls that trapped (including running out of fuel).
    pub traps: u64,
    /// Fuel the calls consumed.
    pub fuel_used: u64,
    /// The guest's linear memory now.
    pub memory_bytes: u64,
}

/// A guest call's running totals against its [`GuestBudget`].
#[derive(Debug, Default)]
struct Spent {
    series: usize,
    string_bytes: usize,
    log_bytes: usize,
    log_dropped: bool,
    /// The first budget crossed: the call fails with it even if the guest ignored the refusal.
    over: Option<String>,
}

/// Checks one publish call against the budget; on success returns the strings' bytes.
fn check_publish(
    budget: &GuestBudget,
    spec: &DatasourceSpec,
    histograms: &[types::Histogram],
    samples: &[types::Sample],
) -> Result<usize, String> {
    if histograms.len() > budget.histograms_per_publish {
        return Err(format!(
            "{} histograms in one publish (budget guest.histograms-per-publish = {})",
            histograms.len(),
            budget.histograms_per_publish
        ));
    }
    if samples.len() > budget.samples_per_publish {
        return Err(format!(
            "{} samples in one publish (budget guest.samples-per-publish = {})",
            samples.len(),
            budget.samples_per_publish
        ));
    }
    let mut bytes = 0usize;
    let mut keys: Vec<&str> = Vec::new();
    let series = histograms
        .iter()
        .map(|h| (h.field.as_str(), &h.labels, FieldKind::Histogram))
        .chain(
            samples
                .iter()
                .map(|s| (s.field.as_str(), &s.labels, FieldKind::Gauge)),
        );
    for (field, labels, kind) in series {
        let Some(f) = spec.field(field) else {
            return Err(format!(
                "field {:?} is not declared in datasource {}",
                field, spec.name
            ));
        };
        if (kind == FieldKind::Histogram) != (f.kind == FieldKind::Histogram)
            || f.kind == FieldKind::Key
        {
            return Err(format!(
                "field {field} of datasource {} is declared as {:?}: publish it as {}",
                spec.name,
                f.kind,
                match f.kind {
                    FieldKind::Histogram => "a histogram",
                    FieldKind::Key => "a label",
                    _ => "a sample",
                }
            ));
        }
        if labels.len() > budget.labels_per_series {
            return Err(format!(
                "{} labels on one series of field {field} (budget guest.labels-per-series = {})",
                labels.len(),
                budget.labels_per_series
            ));
        }
        bytes = bytes.saturating_add(field.len());
        for (k, v) in labels {
            if k.len() > budget.label_bytes || v.len() > budget.label_bytes {
                return Err(format!(
                    "a label of field {field} is {} bytes (budget guest.label-bytes = {})",
                    k.len().max(v.len()),
                    budget.label_bytes
                ));
            }
            if let Some(why) = reserved_label(k) {
                return Err(format!(
                    "label {:?} on field {field} of datasource {}: {why}",
                    k, spec.name
                ));
            }
            if !keys.contains(&k.as_str()) {
                if keys.len() >= budget.label_keys_per_datasource {
                    return Err(format!(
                        "more than {} distinct label keys in datasource {} (budget guest.label-keys-per-datasource)",
                        budget.label_keys_per_datasource, spec.name
                    ));
                }
                keys.push(k);
            }
            bytes = bytes.saturating_add(k.len()).saturating_add(v.len());
        }
    }
    for h in histograms {
        if h.upper_bounds.len() != h.counts.len() {
            return Err(format!(
                "histogram {}: {} bounds but {} counts",
                h.field,
                h.upper_bounds.len(),
                h.counts.len()
            ));
        }
        if h.counts.len() > budget.buckets_per_histogram {
            return Err(format!(
                "histogram {} has {} buckets (budget guest.buckets-per-histogram = {})",
                h.field,
                h.counts.len(),
                budget.buckets_per_histogram
            ));
        }
    }
    Ok(bytes)
}

/// Most fields one datasource may declare (IG's largest tracers have about 40).
const MAX_FIELDS: usize = 256;
/// Most bytes of annotations, unit and description on one field.
const MAX_FIELD_TEXT_BYTES: usize = 64 << 10;

/// A declared datasource must be exportable and printable whatever the user annotates: names
/// within the label budget, key fields usable as labels, value fields with a metric name.
fn check_datasource(budget: &GuestBudget, spec: &DatasourceSpec) -> Result<(), String> {
    if spec.fields.len() > MAX_FIELDS {
        return Err(format!(
            "datasource {} declares {} fields (at most {MAX_FIELDS})",
            spec.name,
            spec.fields.len()
        ));
    }
    let too_long = |what: &str, s: &str| {
        (s.len() > budget.label_bytes).then(|| {
            format!(
                "{what} in datasource {} is {} bytes (budget guest.label-bytes = {})",
                spec.name,
                s.len(),
                budget.label_bytes
            )
        })
    };
    if let Some(e) = too_long("the name", &spec.name) {
        return Err(e);
    }
    // Names end up in tables, error messages and exposition: one printable line each.
    if let Some(name) = std::iter::once(&spec.name)
        .chain(spec.fields.iter().map(|f| &f.name))
        .find(|n| n.chars().any(char::is_control))
    {
        return Err(format!(
            "name {name:?} in datasource {:?} contains control characters",
            spec.name
        ));
    }
    for f in &spec.fields {
        if let Some(e) = too_long("a field name", &f.name) {
            return Err(e);
        }
        if spec.fields.iter().filter(|g| g.name == f.name).count() > 1 {
            return Err(format!(
                "field {} is declared twice in datasource {}",
                f.name, spec.name
            ));
        }
        if f.kind == FieldKind::Key
            && let Some(why) = reserved_label(&f.name)
        {
            return Err(format!(
                "key field {:?} of datasource {}: {why}",
                f.name, spec.name
            ));
        }
        if !f.name.chars().any(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "field {:?} of datasource {} has no letter or digit to name a metric after",
                f.name, spec.name
            ));
        }
        let annotation_bytes: usize = f
            .annotations
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .chain([f.description.len(), f.unit.len()])
            .sum();
        if annotation_bytes > MAX_FIELD_TEXT_BYTES {
            return Err(format!(
                "field {} of datasource {} carries {annotation_bytes} bytes of annotations and description (at most {MAX_FIELD_TEXT_BYTES})",
                f.name, spec.name
            ));
        }
    }
    Ok(())
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::gadget::api::types::Host for HostState {}
impl v0_1::gadget::api::types::Host for HostState {}

/// A 0.1 guest's calls, answered by the current implementation (a minor version only adds).
impl v0_1::gadget::api::host::Host for HostState {
    fn add_datasource(&mut self, spec: v0_1::types::DatasourceSpec) -> Result<u32, String> {
        bindings::gadget::api::host::Host::add_datasource(self, v0_1::spec(spec))
    }

    fn publish(
        &mut self,
        datasource: u32,
        histograms: Vec<v0_1::types::Histogram>,
        samples: Vec<v0_1::types::Sample>,
    ) -> Result<(), String> {
        bindings::gadget::api::host::Host::publish(
            self,
            datasource,
            histograms.into_iter().map(v0_1::histogram).collect(),
            samples.into_iter().map(v0_1::sample).collect(),
        )
    }

    fn log(&mut self, level: v0_1::types::LogLevel, message: String) {
        bindings::gadget::api::host::Host::log(self, v0_1::log_level(level), message)
    }
}

impl HostState {
    /// The subscription entry of an event datasource, made on first use (`init` only).
    fn subscription(&mut self, datasource: &str) -> Result<&mut Vec<AddedField>, String> {
        if !self.in_init {
            return Err("event datasources can only be subscribed to during init".into());
        }
        if !self.event_sources.iter().any(|(n, _)| n == datasource) {
            let known: Vec<&str> = self.event_sources.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "{datasource:?} is not an event datasource of this gadget (event datasources: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        let idx = match self.subscribed.iter().position(|(n, _)| n == datasource) {
            Some(i) => i,
            None => {
                self.subscribed.push((datasource.to_string(), Vec::new()));
                self.subscribed.len() - 1
            }
        };
        Ok(&mut self.subscribed[idx].1)
    }
}

impl bindings::gadget::api::host::Host for HostState {
    fn add_datasource(&mut self, spec: types::DatasourceSpec) -> Result<u32, String> {
        if !self.in_init {
            return Err("datasources can only be added during init".into());
        }
        if spec.name.is_empty() || self.datasources.iter().any(|d| d.name == spec.name) {
            return Err(format!(
                "datasource name {:?} is empty or already taken",
                spec.name
            ));
        }
        // Hostile-guest bound: a gadget has a handful of datasources.
        if self.datasources.len() >= 64 {
            return Err("at most 64 datasources per gadget".into());
        }
        let spec = bindings::spec_from_wit(spec);
        check_datasource(&self.budget, &spec)?;
        self.datasources.push(spec);
        Ok((self.datasources.len() - 1) as u32)
    }

    fn publish(
        &mut self,
        datasource: u32,
        histograms: Vec<types::Histogram>,
        samples: Vec<types::Sample>,
    ) -> Result<(), String> {
        let idx = datasource as usize;
        let Some(spec) = self.datasources.get(idx) else {
            return Err(format!("no datasource with handle {datasource}"));
        };
        let over = |spent: &mut Spent, message: String| {
            spent.over.get_or_insert_with(|| message.clone());
            Err(message)
        };
        let bytes = match check_publish(&self.budget, spec, &histograms, &samples) {
            Ok(b) => b,
            Err(message) => return over(&mut self.spent, message),
        };
        // The datasource's previous publication in this call is replaced, so it no longer counts.
        let replaced = self
            .published
            .iter()
            .filter(|p| p.datasource == idx)
            .map(|p| p.histograms.len() + p.samples.len())
            .sum::<usize>();
        let series = (self.spent.series - replaced) + histograms.len() + samples.len();
        if series > self.budget.series_per_snapshot {
            let message = format!(
                "{series} series in one snapshot (budget guest.series-per-snapshot = {})",
                self.budget.series_per_snapshot
            );
            return over(&mut self.spent, message);
        }
        let string_bytes = self.spent.string_bytes.saturating_add(bytes);
        if string_bytes > self.budget.string_bytes_per_snapshot {
            let message = format!(
                "{string_bytes} bytes of names and labels in one snapshot (budget guest.string-bytes-per-snapshot = {})",
                self.budget.string_bytes_per_snapshot
            );
            return over(&mut self.spent, message);
        }
        self.spent.series = series;
        self.spent.string_bytes = string_bytes;
        self.published.retain(|p| p.datasource != idx);
        self.published.push(Publication {
            datasource: idx,
            histograms: histograms
                .into_iter()
                .map(bindings::histogram_from_wit)
                .collect(),
            samples: samples.into_iter().map(bindings::sample_from_wit).collect(),
        });
        Ok(())
    }

    fn subscribe_events(&mut self, datasource: String) -> Result<(), String> {
        self.subscription(&datasource).map(|_| ())
    }

    fn add_field(&mut self, datasource: String, field: types::AddedField) -> Result<(), String> {
        let budget = self.budget;
        let record_fields = self
            .event_sources
            .iter()
            .find(|(n, _)| *n == datasource)
            .map(|(_, f)| f.clone())
            .unwrap_or_default();
        let field = events::added_from_wit(field);
        let added = self.subscription(&datasource)?;
        if added.len() >= budget.added_fields_per_datasource {
            return Err(format!(
                "more than {} added fields in event datasource {datasource} (budget guest.added-fields-per-datasource)",
                budget.added_fields_per_datasource
            ));
        }
        if field.name.is_empty()
            || field.name.len() > budget.label_bytes
            || field.name.chars().any(char::is_control)
        {
            return Err(format!(
                "added field name {:?} must be 1..={} printable bytes (budget guest.label-bytes)",
                field.name, budget.label_bytes
            ));
        }
        if record_fields.contains(&field.name) || added.iter().any(|f| f.name == field.name) {
            return Err(format!(
                "field {} already exists in event datasource {datasource}",
                field.name
            ));
        }
        let text: usize = field
            .annotations
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
            + field.description.len();
        if text > MAX_FIELD_TEXT_BYTES {
            return Err(format!(
                "added field {} carries {text} bytes of annotations and description (at most {MAX_FIELD_TEXT_BYTES})",
                field.name
            ));
        }
        added.push(field);
        Ok(())
    }

    fn log(&mut self, level: types::LogLevel, message: String) {
        let origin = &self.origin;
        let room = self
            .budget
            .log_bytes_per_call
            .saturating_sub(self.spent.log_bytes);
        if message.len() > room {
            if !self.spent.log_dropped {
                self.spent.log_dropped = true;
                tracing::warn!(
                    "{origin}: guest log output over budget in this call (guest.log-bytes-per-call = {}); the rest is dropped",
                    self.budget.log_bytes_per_call
                );
            }
            return;
        }
        self.spent.log_bytes += message.len();
        // One line per call: a guest cannot forge log lines or drive the terminal.
        let message = gadget_model::printable(&message);
        match level {
            types::LogLevel::Error => tracing::error!("{origin}: {message}"),
            types::LogLevel::Warn => tracing::warn!("{origin}: {message}"),
            types::LogLevel::Info => tracing::info!("{origin}: {message}"),
            types::LogLevel::Debug => tracing::debug!("{origin}: {message}"),
        }
    }
}

/// A running guest.
pub struct GuestInstance {
    pre: std::sync::Arc<Prepared>,
    engine: Engine,
    limits: GuestLimits,
    origin: String,
    config: types::GadgetConfig,
    /// The event datasources and their record sizes (the smallest record the guest gets).
    event_sources: Vec<(String, u32)>,
    live: Option<(Store<HostState>, Exports)>,
    datasources: Vec<DatasourceSpec>,
    subscribed: Vec<(String, Vec<AddedField>)>,
    stats: GuestStats,
}

impl GuestInstance {
    /// Compiles (or finds compiled), links, instantiates and initialises a guest of a gadget
    /// without event datasources.
    pub fn start(
        runtime: &GuestRuntime,
        wasm: &[u8],
        origin: &str,
        config: &GuestConfig,
        limits: GuestLimits,
    ) -> Result<Self, GuestError> {
        Self::start_with_events(runtime, wasm, origin, config, &[], limits)
    }

    /// [`GuestInstance::start`] for a gadget with event datasources (tracers): the guest's
    /// `init` sees each one's record layout and may subscribe to it and add fields.
    pub fn start_with_events(
        runtime: &GuestRuntime,
        wasm: &[u8],
        origin: &str,
        config: &GuestConfig,
        events: &[EventDatasource],
        limits: GuestLimits,
    ) -> Result<Self, GuestError> {
        let engine = runtime.engine.clone();
        let pre = runtime.prepare(wasm, origin)?;
        let mut guest = GuestInstance {
            pre,
            engine,
            limits,
            origin: origin.to_string(),
            config: bindings::config_to_wit(config, events),
            event_sources: events
                .iter()
                .map(|e| (e.datasource.clone(), e.layout.record_size()))
                .collect(),
            live: None,
            datasources: Vec::new(),
            subscribed: Vec::new(),
            stats: GuestStats::default(),
        };
        guest.instantiate()?;
        Ok(guest)
    }

    /// What the guest has cost so far.
    pub fn stats(&self) -> GuestStats {
        let memory_bytes = self
            .live
            .as_ref()
            .map_or(0, |(store, _)| store.data().limits.memory_bytes as u64);
        GuestStats {
            memory_bytes,
            ..self.stats
        }
    }

    /// Counts one call: the fuel it burnt and whether it trapped.
    fn account(&mut self, store: &Store<HostState>, trapped: bool) {
        self.stats.calls += 1;
        self.stats.traps += u64::from(trapped);
        let left = store.get_fuel().unwrap_or(0);
        self.stats.fuel_used = self
            .stats
            .fuel_used
            .saturating_add(self.limits.fuel_per_call.saturating_sub(left));
    }

    /// Datasources the guest declared in `init`.
    pub fn datasources(&self) -> &[DatasourceSpec] {
        &self.datasources
    }

    /// True if the guest subscribed to the event datasource `datasource` in `init`: only then
    /// does [`GuestInstance::on_events`] cross into the guest. The built-in default guest and
    /// 0.1 guests never subscribe, so their events pass through untouched.
    pub fn wants_events(&self, datasource: &str) -> bool {
        self.subscribed.iter().any(|(n, _)| n == datasource)
    }

    /// The fields the guest added to the event datasource `datasource` in `init`, in the order
    /// of [`EventsOut::added`]'s columns.
    pub fn added_fields(&self, datasource: &str) -> &[AddedField] {
        self.subscribed
            .iter()
            .find(|(n, _)| n == datasource)
            .map(|(_, f)| f.as_slice())
            .unwrap_or_default()
    }

    fn instantiate(&mut self) -> Result<(), GuestError> {
        // No preopened dirs, no env, no sockets and a frozen clock unless granted: a guest
        // sees nothing of the host. Its stderr goes to ours so panics are visible.
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr();
        if !self.limits.capabilities.clock {
            wasi.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
        }
        if self.limits.capabilities.network {
            wasi.inherit_network()
                .allow_tcp(true)
                .allow_udp(true)
                .allow_ip_name_lookup(true);
        } else {
            wasi.allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false);
        }
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: TrackedLimits {
                inner: StoreLimitsBuilder::new()
                    .memory_size(self.limits.memory_bytes)
                    .trap_on_grow_failure(true)
                    .instances(4)
                    .build(),
                memory_bytes: 0,
            },
            in_init: true,
            datasources: Vec::new(),
            published: Vec::new(),
            origin: self.origin.clone(),
            budget: self.limits.budget,
            spent: Spent::default(),
            event_sources: self
                .config
                .datasources
                .iter()
                .filter_map(|d| {
                    let layout = d.events.as_ref()?;
                    Some((
                        d.name.clone(),
                        layout.fields.iter().map(|f| f.name.clone()).collect(),
                    ))
                })
                .collect(),
            subscribed: Vec::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        self.refuel(&mut store, "instantiate")?;
        let bindings = match self.pre.as_ref() {
            Prepared::V0_1(pre) => pre.instantiate(&mut store).map(Exports::V0_1),
            Prepared::V0_2(pre) => pre.instantiate(&mut store).map(Exports::V0_2),
        }
        .map_err(|e| self.trap_error(&store, "instantiate", e))?;
        self.refuel(&mut store, "init")?;
        let result = match &bindings {
            Exports::V0_1(b) => b
                .gadget_api_guest()
                .call_init(&mut store, &v0_1::config(&self.config)),
            Exports::V0_2(b) => b.gadget_api_guest().call_init(&mut store, &self.config),
        };
        self.account(&store, result.is_err());
        let result = result.map_err(|e| self.trap_error(&store, "init", e))?;
        self.check_spent(&mut store, "init")?;
        result.map_err(|message| GuestError::Refused {
            origin: self.origin.clone(),
            call: "init",
            message,
        })?;
        store.data_mut().in_init = false;
        let declared = store.data().datasources.clone();
        let subscribed = store.data().subscribed.clone();
        if !self.datasources.is_empty() && self.datasources != declared
            || !self.subscribed.is_empty() && self.subscribed != subscribed
        {
            return Err(GuestError::Refused {
                origin: self.origin.clone(),
                call: "init",
                message: "declared different datasources or added fields after a restart".into(),
            });
        }
        self.datasources = declared;
        self.subscribed = subscribed;
        self.live = Some((store, bindings));
        Ok(())
    }

    /// The budget crossed during the last call, if any, as this call's error.
    fn check_spent(
        &self,
        store: &mut Store<HostState>,
        call: &'static str,
    ) -> Result<(), GuestError> {
        match store.data_mut().spent.over.take() {
            Some(message) => Err(GuestError::OverBudget {
                origin: self.origin.clone(),
                call,
                message,
            }),
            None => Ok(()),
        }
    }

    fn refuel(&self, store: &mut Store<HostState>, call: &'static str) -> Result<(), GuestError> {
        store
            .set_fuel(self.limits.fuel_per_call)
            .map_err(|e| GuestError::Trap {
                origin: self.origin.clone(),
                call,
                reason: format!("{e:#}"),
            })
    }

    fn trap_error(
        &self,
        store: &Store<HostState>,
        call: &'static str,
        e: wasmtime::Error,
    ) -> GuestError {
        if store.get_fuel().is_ok_and(|f| f == 0)
            || e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel)
        {
            return GuestError::OutOfFuel {
                origin: self.origin.clone(),
                call,
                fuel: self.limits.fuel_per_call,
            };
        }
        // The root cause says what happened ("wasm `unreachable` instruction executed" for a
        // panic); the full wasm backtrace is for debugging.
        tracing::debug!("{}: trap in {call}: {e:?}", self.origin);
        GuestError::Trap {
            origin: self.origin.clone(),
            call,
            reason: e.root_cause().to_string(),
        }
    }

    /// Hands the guest one round of map snapshots and returns what it published. After a trap
    /// the instance is rebuilt for the next call; the error is returned for this one.
    pub fn on_snapshot(
        &mut self,
        snapshots: &[MapSnapshot],
    ) -> Result<Vec<Publication>, GuestError> {
        if self.live.is_none() {
            self.instantiate()?;
        }
        let wit: Vec<types::MapSnapshot> =
            snapshots.iter().map(bindings::snapshot_to_wit).collect();
        let Some((mut store, bindings)) = self.live.take() else {
            return Ok(Vec::new());
        };
        self.refuel(&mut store, "on-snapshot")?;
        store.data_mut().published.clear();
        store.data_mut().spent = Spent::default();
        let result = match &bindings {
            Exports::V0_1(b) => {
                let old: Vec<v0_1::types::MapSnapshot> = wit.iter().map(v0_1::snapshot).collect();
                b.gadget_api_guest().call_on_snapshot(&mut store, &old)
            }
            Exports::V0_2(b) => b.gadget_api_guest().call_on_snapshot(&mut store, &wit),
        };
        self.account(&store, result.is_err());
        if result.is_ok()
            && let Err(e) = self.check_spent(&mut store, "on-snapshot")
        {
            // Nothing of an over-budget snapshot is used; the instance itself stays usable.
            store.data_mut().published.clear();
            self.live = Some((store, bindings));
            return Err(e);
        }
        match result {
            Ok(Ok(())) => {
                let published = std::mem::take(&mut store.data_mut().published);
                self.live = Some((store, bindings));
                Ok(published)
            }
            Ok(Err(message)) => {
                // A refusal is not a trap: the instance stays usable.
                self.live = Some((store, bindings));
                Err(GuestError::Refused {
                    origin: self.origin.clone(),
                    call: "on-snapshot",
                    message,
                })
            }
            // The instance is poisoned after a trap; `live` stays empty so the next call
            // re-instantiates.
            Err(e) => Err(self.trap_error(&store, "on-snapshot", e)),
        }
    }

    /// Hands the guest a batch of raw event records of the event datasource `datasource`, in
    /// the order the kernel emitted them, and returns what to show: which events are kept,
    /// the new bytes of those the guest rewrote, the values of its added fields, and the
    /// counters it published. One guest call per `guest.events-per-batch` events (a bigger
    /// batch is split; the result covers the whole batch).
    ///
    /// A datasource the guest did not subscribe to ([`GuestInstance::wants_events`]) comes back
    /// whole without entering the guest. Every record must be at least the layout's size.
    /// On error nothing of the batch is usable: the caller counts its events as lost. After a
    /// trap the instance is rebuilt for the next call, as for [`GuestInstance::on_snapshot`].
    pub fn on_events<R: AsRef<[u8]>>(
        &mut self,
        datasource: &str,
        records: &[R],
    ) -> Result<EventsOut, GuestError> {
        let Some(&(_, record_size)) = self.event_sources.iter().find(|(n, _)| n == datasource)
        else {
            return Err(GuestError::BadInput {
                origin: self.origin.clone(),
                call: "on-events",
                what: "events",
                message: format!("{datasource:?} is not an event datasource of this guest"),
            });
        };
        if let Some((i, r)) = records
            .iter()
            .enumerate()
            .find(|(_, r)| r.as_ref().len() < record_size as usize)
        {
            return Err(GuestError::BadInput {
                origin: self.origin.clone(),
                call: "on-events",
                what: "events",
                message: format!(
                    "record {i} of datasource {datasource} is {} bytes, shorter than its layout ({record_size} bytes)",
                    r.as_ref().len()
                ),
            });
        }
        if u32::try_from(records.len()).is_err() {
            return Err(GuestError::BadInput {
                origin: self.origin.clone(),
                call: "on-events",
                what: "events",
                message: format!(
                    "{} records in one batch (at most {})",
                    records.len(),
                    u32::MAX
                ),
            });
        }
        if !self.wants_events(datasource) {
            return Ok(EventsOut::pass_through(records.len()));
        }
        let mut out = EventsOut::default();
        let chunk = self.limits.budget.events_per_batch.max(1);
        for (n, part) in records.chunks(chunk).enumerate() {
            let next = self.events_chunk(datasource, part)?;
            // Fits: the batch has at most u32::MAX records (checked above).
            out.append(next, (n * chunk) as u32);
        }
        Ok(out)
    }

    fn events_chunk<R: AsRef<[u8]>>(
        &mut self,
        datasource: &str,
        records: &[R],
    ) -> Result<EventsOut, GuestError> {
        const CALL: &str = "on-events";
        if self.live.is_none() {
            self.instantiate()?;
        }
        let batch =
            events::batch_to_wit(datasource, records).map_err(|message| GuestError::BadInput {
                origin: self.origin.clone(),
                call: CALL,
                what: "events",
                message,
            })?;
        let Some((mut store, bindings)) = self.live.take() else {
            return Ok(EventsOut::pass_through(records.len()));
        };
        let Exports::V0_2(b) = &bindings else {
            // A 0.1 guest cannot subscribe, so `wants_events` was false; nothing to do.
            self.live = Some((store, bindings));
            return Ok(EventsOut::pass_through(records.len()));
        };
        self.refuel(&mut store, CALL)?;
        store.data_mut().published.clear();
        store.data_mut().spent = Spent::default();
        let result = b.gadget_api_guest().call_on_events(&mut store, &batch);
        drop(batch);
        self.account(&store, result.is_err());
        let result = match result {
            Ok(r) => r,
            Err(e) => return Err(self.trap_error(&store, CALL, e)),
        };
        if let Err(e) = self.check_spent(&mut store, CALL) {
            store.data_mut().published.clear();
            self.live = Some((store, bindings));
            return Err(e);
        }
        let published = std::mem::take(&mut store.data_mut().published);
        self.live = Some((store, bindings));
        let result = result.map_err(|message| GuestError::Refused {
            origin: self.origin.clone(),
            call: CALL,
            message,
        })?;
        let mut out = events::check_result(
            records,
            self.added_fields(datasource),
            &self.limits.budget,
            result,
        )
        .map_err(|message| GuestError::Malformed {
            origin: self.origin.clone(),
            call: CALL,
            message,
        })?;
        out.published = published;
        Ok(out)
    }
}

/// Refuses guests built against another major version of the WIT package (or a newer minor
/// one), naming both. Returns the minor version of the guest's `guest` export (what it was
/// built against; 2 when it exports none, which instantiation then reports).
fn check_api_version(
    engine: &Engine,
    component: &Component,
    origin: &str,
) -> Result<u64, GuestError> {
    let ty = component.component_type();
    let names = ty
        .imports(engine)
        .map(|(n, _)| n.to_string())
        .chain(ty.exports(engine).map(|(n, _)| n.to_string()));
    let prefix = format!("{}/", bindings::PACKAGE);
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let mut minor = 2;
    for name in names {
        if !name.starts_with(&prefix) {
            continue;
        }
        let version = name.rsplit_once('@').map(|(_, v)| v).unwrap_or("");
        if exports.contains(&name)
            && let Some(m) = version.split('.').nth(1).and_then(|m| m.parse().ok())
        {
            minor = m;
        }
        if !compatible(version, bindings::VERSION) {
            return Err(GuestError::IncompatibleApi {
                origin: origin.to_string(),
                found: format!(
                    "{}@{}",
                    bindings::PACKAGE,
                    if version.is_empty() {
                        "(unversioned)"
                    } else {
                        version
                    }
                ),
            });
        }
    }
    Ok(minor)
}

/// wit/gadget.wit's rule: the same major version, and a minor version the host knows (not
/// newer than its own). 0.x is no exception: 0.2 only adds to 0.1, so 0.1 guests keep running;
/// 0.1 is the first version there was (no 0.0 guest exists to run).
fn compatible(guest: &str, host: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parse(guest), parse(host)) {
        (Some((gmaj, gmin)), Some((hmaj, hmin))) => {
            gmaj == hmaj && gmin <= hmin && (gmaj > 0 || gmin >= 1)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::compatible;

    #[test]
    fn version_rules() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(compatible("0.1.0", "0.2.0"), "0.2 still runs 0.1 guests");
        assert!(
            !compatible("0.3.0", "0.2.0"),
            "a newer minor is unknown to the host"
        );
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("0.0.1", "0.2.0"), "no 0.0 API ever existed");
        assert!(!compatible("1.0.0", "0.1.0"));
        assert!(compatible("1.1.0", "1.2.0"));
        assert!(!compatible("1.3.0", "1.2.0"));
        assert!(!compatible("", "0.1.0"));
    }
}
