//! Output formats for events: IG's columns ([`columns`]) and JSON ([`json`]). Renderers return
//! strings; printing (and the trailing newline IG's CLI adds per event) is the caller's.

pub mod columns;
pub mod json;

pub use columns::{ColumnsError, ColumnsRenderer};
pub use json::JsonRenderer;
