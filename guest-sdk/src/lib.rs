//! # gadget_sdk — writing the Wasm side of a gadget
//!
//! A gadget is an eBPF program (C) plus an optional Wasm guest (Rust, this crate). The host reads
//! the eBPF maps on a timer and calls the guest with one [`MapSnapshot`] per datasource map; the
//! guest decodes the bytes, and publishes histograms and samples to [`Datasource`]s, which the
//! host's operators print or export according to their annotations.
//!
//! A guest is a type implementing [`Gadget`], exported with [`gadget!`]:
//!
//! ```no_run
//! use gadget_sdk::{Datasource, Gadget, GadgetConfig, Log2Histogram, MapSnapshot};
//!
//! struct Latency {
//!     out: Datasource,
//! }
//!
//! impl Gadget for Latency {
//!     fn init(config: &GadgetConfig) -> Result<Self, String> {
//!         let ds = config.datasource("latency")?;
//!         let out = Datasource::add(ds.histogram_spec("latency")?)?;
//!         Ok(Latency { out })
//!     }
//!
//!     fn on_snapshot(&mut self, snapshots: &[MapSnapshot]) -> Result<(), String> {
//!         for snap in snapshots {
//!             let mut total = Log2Histogram::default();
//!             for entry in &snap.entries {
//!                 total.add(&Log2Histogram::from_le_slots(&entry.value)?);
//!             }
//!             self.out.publish(&[total.to_histogram("latency", Vec::new())], &[])?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! gadget_sdk::gadget!(Latency);
//! ```
//!
//! ## The pieces, in the order a guest uses them
//!
//! 1. **Configuration** ([`GadgetConfig`]): gadget.yaml's datasources with their annotations
//!    already merged with the user's `--annotate` flags, and the parameters after defaults.
//!    [`GadgetConfig::datasource`], [`GadgetConfig::param`], [`GadgetConfig::param_bool`],
//!    [`GadgetConfig::param_u64`]; the [`Annotations`] trait reads and validates annotations.
//!    Return `Err` from `init` to refuse a configuration: the message reaches the user as is.
//! 2. **Declaring outputs** ([`DatasourceSpec`], [`Datasource::add`]): a histogram field
//!    ([`DatasourceConfig::histogram_spec`]), or key/counter/gauge fields
//!    ([`DatasourceConfig::spec`] then [`DatasourceSpec::with_key`],
//!    [`DatasourceSpec::with_counter`], [`DatasourceSpec::with_gauge`]). Operators pick a
//!    datasource by its annotations: `metrics.print=true` prints it, `metrics.collect=true`
//!    exports it (with `--otel-metrics-name`).
//! 3. **Decoding snapshots** ([`MapSnapshot`]): one per `GADGET_MAPITER` map, raw bytes in the
//!    kernel's layout. [`MapSnapshot::records`] decodes every entry into your key and value
//!    types ([`FromBytes`] with a [`Reader`]) after checking the struct sizes; histogram values
//!    decode with [`Log2Histogram::from_le_slots`].
//! 4. **State** ([`Deltas`], [`top_n`]): counts in the kernel are cumulative; keep the previous
//!    snapshot to publish per-interval deltas and rates, or the top N keys.
//! 5. **Publishing** ([`Datasource::publish`]): histograms ([`Log2Histogram::to_histogram`])
//!    and samples ([`Sample::new`] with labels) replace the datasource's previous state.
//!    [`log`] writes through the host's logger.
//! 6. **Events** (tracer gadgets, [`EventSource`]): subscribe to an event datasource in `init`,
//!    find record fields by IG's names ([`Field`]: `u32`, `u64`, `i64`, `str` of char arrays,
//!    `set_*` to rewrite), add fields ([`EventSource::add_field`]), then in
//!    [`Gadget::on_events`] drop, rewrite and enrich a batch ([`Events`]) and count events
//!    ([`EventCounter`]). See the [`events`] module.
//!
//! Guests run with no filesystem, network or clock unless gadget.yaml asks for a capability
//! and the user grants it, under a fuel budget per call and a memory limit; a trap restarts the
//! guest, whose state is lost (the kernel's counts are not).
//!
//! The WIT contract this wraps is `wit/gadget.wit`; [`bindings`] exposes it raw for what the
//! typed layer does not cover yet.

mod config;
mod datasource;
pub mod events;
mod histogram;
mod snapshot;
mod state;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "gadget",
        pub_export_macro: true,
        export_macro_name: "__export_gadget_world",
        default_bindings_module: "gadget_sdk::bindings",
    });
}

pub use bindings::gadget::api::types::{
    DatasourceConfig, DatasourceSpec, FieldConfig, FieldKind, FieldSpec, GadgetConfig, Histogram,
    LogLevel, MapEntry, MapSnapshot, Sample,
};
pub use bindings::gadget::api::types::{RecordField, RecordLayout, ValueKind};
pub use config::{Annotations, parse_bool};
pub use datasource::{Datasource, log};
pub use events::{Added, AddedType, EventCounter, EventSource, Events, Field};
pub use histogram::{Log2Histogram, SlotWidth, Slots32, Slots64};
pub use snapshot::{FromBytes, Reader, read_u32, read_u64};
pub use state::{Deltas, top_n};

/// The WIT package version this SDK speaks; the host checks it against its own.
pub const API_VERSION: &str = "0.2.0";

/// A gadget's Wasm side. One value lives for the whole run, so it can keep state between
/// snapshots (previous counts for rates, top-N tables, ...).
pub trait Gadget: Sized + 'static {
    /// Called once, with gadget.yaml's datasources (annotations already merged with the user's
    /// `--annotate` flags) and the gadget's parameters. Declare datasources here.
    fn init(config: &GadgetConfig) -> Result<Self, String>;

    /// Called after every read of the eBPF maps.
    fn on_snapshot(&mut self, snapshots: &[MapSnapshot]) -> Result<(), String>;

    /// Called with each batch of events of a datasource subscribed to with
    /// [`EventSource::subscribe`]. By default every event is kept unchanged.
    fn on_events(&mut self, events: &mut Events) -> Result<(), String> {
        let _ = events;
        Ok(())
    }
}

/// Exports a [`Gadget`] implementation as the component's `guest` interface.
#[macro_export]
macro_rules! gadget {
    ($ty:ty) => {
        struct __GadgetExport;

        ::std::thread_local! {
            static __GADGET_STATE: ::std::cell::RefCell<::std::option::Option<$ty>> =
                const { ::std::cell::RefCell::new(None) };
        }

        impl $crate::bindings::exports::gadget::api::guest::Guest for __GadgetExport {
            fn init(config: $crate::GadgetConfig) -> ::std::result::Result<(), ::std::string::String> {
                let gadget = <$ty as $crate::Gadget>::init(&config)?;
                __GADGET_STATE.with_borrow_mut(|state| *state = Some(gadget));
                Ok(())
            }

            fn on_snapshot(
                snapshots: ::std::vec::Vec<$crate::MapSnapshot>,
            ) -> ::std::result::Result<(), ::std::string::String> {
                __GADGET_STATE.with_borrow_mut(|state| match state {
                    Some(gadget) => $crate::Gadget::on_snapshot(gadget, &snapshots),
                    None => Err("on-snapshot called before init".to_string()),
                })
            }

            fn on_events(
                batch: $crate::bindings::gadget::api::types::EventBatch,
            ) -> ::std::result::Result<
                $crate::bindings::gadget::api::types::BatchResult,
                ::std::string::String,
            > {
                let mut events = $crate::Events::from_batch(batch)?;
                __GADGET_STATE.with_borrow_mut(|state| match state {
                    Some(gadget) => $crate::Gadget::on_events(gadget, &mut events),
                    None => Err("on-events called before init".to_string()),
                })?;
                Ok(events.into_result())
            }
        }

        $crate::bindings::__export_gadget_world!(__GadgetExport with_types_in $crate::bindings);
    };
}
