//! The kernel side of a gadget: check the system, read the ELF, load and attach with aya, and
//! snapshot the datasource maps.

pub mod btf;
pub mod core_relo;
pub mod elf;
pub mod loader;
pub mod snapshot;
pub mod system;
pub mod types;

pub use loader::{AttachMode, LoadError, LoadOptions, LoadedGadget};
pub use snapshot::MapSnapshot;
