//! IG's annotation keys, the defaults every field starts with, and IG's annotation templates.
//!
//! Facts from IG v0.46.0: pkg/metadata/v1/annotations.go (keys and `AnnotationsTemplates`),
//! pkg/datasource/columns.go (`defaultFieldAnnotations`: width 16, ellipsis end, alignment left) and
//! pkg/operators/ebpf/struct.go (which BTF type names apply which template).

use std::collections::BTreeMap;

use crate::kind::ig_type;

/// Annotations of one field: key → value, ordered for deterministic output.
pub type Annotations = BTreeMap<String, String>;

pub const COLUMNS_WIDTH: &str = "columns.width";
pub const COLUMNS_MAX_WIDTH: &str = "columns.maxwidth";
pub const COLUMNS_MIN_WIDTH: &str = "columns.minwidth";
pub const COLUMNS_ALIGNMENT: &str = "columns.alignment";
pub const COLUMNS_ELLIPSIS: &str = "columns.ellipsis";
pub const COLUMNS_HIDDEN: &str = "columns.hidden";
pub const COLUMNS_FIXED: &str = "columns.fixed";
pub const COLUMNS_HEX: &str = "columns.hex";
pub const COLUMNS_ALIAS: &str = "columns.alias";
pub const COLUMNS_PRECISION: &str = "columns.precision";
pub const DESCRIPTION: &str = "description";
pub const TEMPLATE: &str = "template";
pub const VALUE_ONE_OF: &str = "value.one-of";
/// `json.skip=true` leaves a field out of JSON output (pkg/datasource/formatters/json).
pub const JSON_SKIP: &str = "json.skip";
/// `metrics.type=key` makes a field a label of the datasource's event counter.
pub const METRICS_TYPE: &str = "metrics.type";

/// The annotations every field starts with in IG (`defaultFieldAnnotations`).
pub fn defaults() -> Annotations {
    [
        (COLUMNS_WIDTH, "16"),
        (COLUMNS_ELLIPSIS, "end"),
        (COLUMNS_ALIGNMENT, "left"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// IG's `AnnotationsTemplates` entry for `name`, if any (only the templates fields of event
/// records can reach: the eBPF type templates and the formatter templates).
pub fn template(name: &str) -> Option<&'static [(&'static str, &'static str)]> {
    Some(match name {
        "timestamp" => &[
            (COLUMNS_WIDTH, "35"),
            (COLUMNS_MAX_WIDTH, "35"),
            (COLUMNS_ELLIPSIS, "end"),
            (COLUMNS_HIDDEN, "true"),
            (DESCRIPTION, "Microseconds since Unix epoch"),
        ],
        "bytes" => &[(COLUMNS_WIDTH, "10"), (COLUMNS_ALIGNMENT, "right")],
        "duration" => &[(COLUMNS_WIDTH, "20"), (COLUMNS_ALIGNMENT, "right")],
        "comm" => &[(DESCRIPTION, "Process name"), (COLUMNS_MAX_WIDTH, "16")],
        "pcomm" => &[
            (DESCRIPTION, "Parent process name"),
            (COLUMNS_MAX_WIDTH, "16"),
            (COLUMNS_HIDDEN, "true"),
        ],
        "pid" => &[
            (DESCRIPTION, "Process ID"),
            (COLUMNS_MIN_WIDTH, "7"),
            (COLUMNS_ALIGNMENT, "right"),
        ],
        "ppid" => &[
            (DESCRIPTION, "Parent process ID"),
            (COLUMNS_MIN_WIDTH, "7"),
            (COLUMNS_ALIGNMENT, "right"),
            (COLUMNS_HIDDEN, "true"),
        ],
        "tid" => &[
            (DESCRIPTION, "Thread ID"),
            (COLUMNS_MIN_WIDTH, "7"),
            (COLUMNS_ALIGNMENT, "right"),
        ],
        "uid" => &[
            (DESCRIPTION, "User ID"),
            (COLUMNS_MIN_WIDTH, "8"),
            (COLUMNS_ALIGNMENT, "right"),
        ],
        "gid" => &[
            (DESCRIPTION, "Group ID"),
            (COLUMNS_MIN_WIDTH, "8"),
            (COLUMNS_ALIGNMENT, "right"),
        ],
        "mntns_id" => &[
            (DESCRIPTION, "Mount namespace ID"),
            (COLUMNS_HIDDEN, "true"),
            (COLUMNS_WIDTH, "12"),
            (COLUMNS_ALIGNMENT, "right"),
        ],
        "netns_id" => &[
            (DESCRIPTION, "Network namespace ID"),
            (COLUMNS_HIDDEN, "true"),
            (COLUMNS_WIDTH, "12"),
            (COLUMNS_ALIGNMENT, "right"),
        ],
        "syscall" => &[
            (DESCRIPTION, "Syscall"),
            (COLUMNS_WIDTH, "18"),
            (COLUMNS_MAX_WIDTH, "28"),
        ],
        "errorString" => &[(COLUMNS_WIDTH, "12")],
        "user_stack" => &[(DESCRIPTION, "User stack trace"), (COLUMNS_HIDDEN, "true")],
        _ => return None,
    })
}

/// Applies template `name` onto `dst`; false when IG has no such template.
pub fn apply_template(name: &str, dst: &mut Annotations) -> bool {
    match template(name) {
        Some(entries) => {
            for (k, v) in entries {
                dst.insert((*k).to_string(), (*v).to_string());
            }
            true
        }
        None => false,
    }
}

/// What IG's eBPF operator applies for a BTF type name found in a field's typedef chain
/// (`applyAnnotationsTemplateForType`): the `gadget_` types with a template get it (prefix removed);
/// process, creds and parent structs are hidden.
pub fn apply_type_template(type_name: &str, dst: &mut Annotations) {
    match type_name {
        ig_type::COMM
        | ig_type::UID
        | ig_type::GID
        | ig_type::PID
        | ig_type::TID
        | ig_type::TIMESTAMP
        | ig_type::MNTNS_ID
        | ig_type::NETNS_ID
        | ig_type::PCOMM
        | ig_type::PPID
        | ig_type::USER_STACK => {
            apply_template(type_name.trim_start_matches("gadget_"), dst);
        }
        ig_type::PROCESS | ig_type::CREDS | ig_type::PARENT => {
            dst.insert(COLUMNS_HIDDEN.to_string(), "true".to_string());
        }
        _ => {}
    }
}
