//! What a guest sees of the kernel: each datasource map read as raw bytes (the guest decodes).
//! Plain data: the eBPF layer fills it, the Wasm layer hands it to the guest.

/// One map read. The Wasm layer converts it to the WIT type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSnapshot {
    pub datasource: String,
    pub map_name: String,
    pub key_size: u32,
    pub value_size: u32,
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    pub taken_at_ns: u64,
}
