//! Event records of tracer gadgets, the way Inspektor Gadget (IG) v0.46.0 shows them.
//!
//! Pure data processing, no I/O (except [`format::ids::PasswdResolver::from_files`], which reads
//! the files it is given, bounded): the caller reads ring buffers, measures clocks and prints.
//!
//! Pipeline, one module per concern:
//! - [`layout`]: the record's fields (built by the caller from BTF), validated;
//! - [`schema`]: + IG's derived fields, annotations, visibility; [`Schema::event`] decodes a raw
//!   record ([`decode`]) and runs the formatters ([`format`]);
//! - [`filter`]: IG's `--filter` grammar, parsed once, evaluated per event;
//! - [`select`]: IG's `--fields` (explicit, `+added`, `-removed`);
//! - [`render`]: columns (IG's header, widths, alignment, ellipsis), JSON lines and jsonpretty;
//! - [`counter`]: events counted per label set (`metrics.type=key` fields), bounded.
//!
//! Invariants across the crate: hostile records and hostile user input never panic and are
//! bounded (record length checked, regexes size-limited, label sets capped); errors name the field,
//! the input and what would be accepted.

pub mod annotations;
pub mod counter;
pub mod decode;
pub mod filter;
pub mod format;
pub mod kind;
pub mod layout;
pub mod render;
pub mod schema;
pub mod select;

pub use decode::{DecodeError, Value};
pub use filter::{Filter, FilterError};
pub use format::FormatContext;
pub use format::ids::{IdResolver, NoNames, PasswdResolver};
pub use format::timestamp::WallClock;
pub use kind::FieldKind;
pub use layout::{FieldId, FieldSpec, Layout, LayoutBuilder, LayoutError};
pub use schema::{Event, FieldConfig, Schema, SchemaError, SchemaField};
pub use select::{SelectError, select_fields};
