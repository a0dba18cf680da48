//! Annotation keys: the names gadget.yaml, the user's `--annotate` and the guest SDK use for
//! what a datasource or a field means (IG's names, so IG's gadgets and ours read the same).
//! One place for both sides of the WIT boundary: the host and `guest-sdk` (built for
//! wasm32-wasip2) depend on this crate, which depends on nothing.

/// Datasource: expose it as metrics (`true`/`false`).
pub const METRICS_COLLECT: &str = "metrics.collect";
/// Datasource: print it in the terminal (`true`/`false`).
pub const METRICS_PRINT: &str = "metrics.print";
/// Field: its role in a metric (`key`, `counter`, `gauge`, `histogram`).
pub const METRICS_TYPE: &str = "metrics.type";
/// Field: the unit of its values (a histogram's bucket unit, e.g. `µs`).
pub const METRICS_UNIT: &str = "metrics.unit";
/// Field: the metric's help text.
pub const METRICS_DESCRIPTION: &str = "metrics.description";
/// Datasource: clear the terminal before each frame (`true`/`false`).
pub const CLI_CLEAR_SCREEN_BEFORE: &str = "cli.clear-screen-before";
/// Field: column width in the terminal.
pub const COLUMNS_WIDTH: &str = "columns.width";
/// Field: hidden in the terminal by default.
pub const COLUMNS_HIDDEN: &str = "columns.hidden";
/// Datasource: `env.fields.<field>` adds a field filled from the environment variable named by
/// the value (e.g. `env.fields.node=NODE_NAME`).
pub const ENV_FIELDS_PREFIX: &str = "env.fields.";
/// Field: the environment variable an env field was filled from.
pub const ENV_VAR: &str = "env.var";
/// Field derived from the object's BTF: `key` or `value`, the part of the map entry it is in.
pub const EBPF_PLACE: &str = "ebpf.place";
/// Field derived from BTF: byte offset in the key or value.
pub const EBPF_OFFSET: &str = "ebpf.offset";
/// Field derived from BTF: byte size.
pub const EBPF_SIZE: &str = "ebpf.size";
/// Field derived from BTF: the type's name.
pub const EBPF_TYPE: &str = "ebpf.type";
/// Field derived from BTF: a histogram's number of slots.
pub const EBPF_SLOTS: &str = "ebpf.slots";
