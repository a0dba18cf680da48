//! The gadget host library. The modules follow the data's path:
//!
//! - [`gadget`]: the gadget bundle (gadget.yaml, eBPF object, Wasm guest) and where it comes from;
//!   params and annotations.
//! - [`image`]: gadget images (OCI, IG's format): references, the local store, registries, build.
//! - [`ebpf`]: system checks, loading and attaching with aya, map snapshots.
//! - [`wasm`]: the guest runtime (wasmtime components, limits, the built-in default guest).
//! - [`datasource`]: what guests publish and operators consume.
//! - [`operators`]: outputs (the terminal printer; metrics next).
//! - [`instance`]: one running gadget, tying the above together on a timer.
//! - [`daemon`]: detached instances, the local API, persistence and pinning.
//! - [`cluster`]: the kube-based client that drives every node's daemon.
//! - [`cli`]: the `gadget` command line.

pub mod cli;
pub mod cluster;
pub mod daemon;
pub mod datasource;
pub mod ebpf;
pub mod gadget;
pub mod image;
pub mod instance;
pub mod net;
pub mod operators;
pub mod wasm;

/// An error with its whole chain of causes on one line, for messages users act on.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
