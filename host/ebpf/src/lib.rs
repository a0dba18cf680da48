//! The kernel side of a gadget: check the system ([`system`]), load and attach with aya
//! ([`loader`]), and snapshot the datasource maps ([`snapshot`]); read tracers' ring buffers ([`events`]). Reading the object itself is
//! `gadget-object`'s (pure); this crate is the one that makes syscalls.
//!
//! May depend on: gadget-model, gadget-object, aya. The one `unsafe` (the raw `SYS_bpf` map walk
//! in [`snapshot`]) keeps its SAFETY note.

pub mod events;
pub mod loader;
pub mod snapshot;
pub mod system;

pub use events::{Drain, EventSource};
pub use gadget_model::MapSnapshot;
pub use loader::{AttachMode, LoadError, LoadOptions, LoadedGadget};
