//! The guest run for gadgets without a Wasm module (host/default-guest, built for wasm32-wasip2
//! by the Makefile and embedded at compile time by build.rs).

pub static DEFAULT_GUEST: &[u8] = include_bytes!(env!("GADGET_DEFAULT_GUEST_WASM"));
