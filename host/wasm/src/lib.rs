//! The Wasm side of a gadget: one wasmtime engine, guests instantiated as components of the
//! `gadget:api` world (`wit/gadget.wit`), run under fuel and memory limits, restarted after a trap.
//! The generated bindings stay inside this module.

mod bindings;
pub mod default_guest;
pub mod guest;

pub use guest::{Capabilities, Capability, GuestError, GuestInstance, GuestLimits, GuestRuntime};
