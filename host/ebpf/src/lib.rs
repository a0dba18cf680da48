//! The kernel side of a gadget: check the system ([`system`]), load and attach with aya
//! ([`loader`]), snapshot the datasource maps ([`snapshot`]), read tracers' ring buffers
//! ([`events`]) and read the kernel's counters for the host's own metrics ([`stats`]). Reading
//! the object itself is
//! `gadget-object`'s (pure); this crate is the one that makes syscalls.
//!
//! May depend on: gadget-model, gadget-object, aya. The `unsafe` blocks (raw `SYS_bpf` calls aya
//! does not offer: the map walk in [`snapshot`], program info in [`stats`]) keep their SAFETY
//! notes.

pub mod events;
pub mod loader;
pub mod snapshot;
pub mod stats;
pub mod system;

pub use events::{Drain, EventSource};
pub use gadget_model::MapSnapshot;
pub use loader::{AttachMode, LoadError, LoadOptions, LoadedGadget};
