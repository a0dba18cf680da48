//! One running gadget, and what it is made of: the [`bundle`] (gadget.yaml, eBPF object, Wasm
//! guest) resolved from a directory or a stored image, [`manifest`]s (IG's instance specs) and
//! the [`instance`] that ties eBPF, Wasm and operators together on a timer.
//!
//! May depend on every layer below (model, object, ebpf, wasm, image, operators, api); nothing
//! here prints or knows of the daemon or the command line.

pub mod bundle;
pub mod instance;
pub mod manifest;
pub mod memory;
pub mod tracer;

pub use bundle::{GadgetBundle, SourceError};
