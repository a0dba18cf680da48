//! A gadget's eBPF object read as data, before anything reaches the kernel: the ELF's programs,
//! maps and sections ([`elf`]), its BTF ([`btf`]), the datasource and parameter types the BTF
//! declares ([`types`]), tracers and their event layouts ([`tracer`]), and the CO-RE relocations aya cannot do ([`core_relo`]).
//!
//! Pure: no syscalls, no aya (only aya-obj, aya's object parser, run on its own so that a
//! malformed object is refused here rather than panicking in the loader). Building an image and
//! deriving datasources or params from BTF use this crate and load nothing.

pub mod btf;
pub mod core_flex;
pub mod core_relo;
pub mod elf;
pub mod tracer;
pub mod types;
