//! The Wasm side of a gadget: one wasmtime engine, guests instantiated as components of the
//! `gadget:api` world (`wit/gadget.wit`), run under fuel and memory limits, restarted after a trap.
//! The generated bindings stay inside this crate.
//!
//! May depend on: gadget-model and gadget-events, both pure (a guest never touches the kernel:
//! it sees map snapshots and event records as plain data). build.rs embeds the built-in default guest (host/default-guest).

mod bindings;
pub mod default_guest;
pub mod events;
#[cfg(test)]
mod events_tests;
pub mod guest;

pub use events::{AddedField, AddedKind, AddedValues, EventDatasource, EventsOut};
pub use guest::{
    Capabilities, GrantError, GuestError, GuestInstance, GuestLimits, GuestRuntime, GuestStats,
};
