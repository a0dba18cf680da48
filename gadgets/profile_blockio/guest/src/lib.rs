//! profile_blockio's Wasm guest: turns the eBPF `hists` map (log2 µs latency slots per device and
//! operation) into the `blockio` datasource's `latency` histogram.
//!
//! By default all devices and operations are summed, as IG prints it. With the gadget parameter
//! `per-device=true`, each (device, operation) pair becomes its own histogram, labelled
//! `device="major:minor"` and `op="read|write|flush|discard|other"`.

use gadget_sdk::{Datasource, Gadget, GadgetConfig, Log2Histogram, MapSnapshot, read_u32};
use std::collections::BTreeMap;

const DATASOURCE: &str = "blockio";
const FIELD: &str = "latency";
/// `struct hist_key { u32 dev; u32 op; }` in program.bpf.c.
const KEY_SIZE: u32 = 8;

struct ProfileBlockio {
    out: Datasource,
    per_device: bool,
}

impl Gadget for ProfileBlockio {
    fn init(config: &GadgetConfig) -> Result<Self, String> {
        let per_device = config.param_bool("per-device")?;
        let mut spec = config.datasource(DATASOURCE)?.histogram_spec(FIELD)?;
        if per_device {
            spec = spec
                .with_key("device", "block device as major:minor")
                .with_key("op", "request operation");
        }
        Ok(ProfileBlockio {
            out: Datasource::add(spec)?,
            per_device,
        })
    }

    fn on_snapshot(&mut self, snapshots: &[MapSnapshot]) -> Result<(), String> {
        let Some(snap) = snapshots.iter().find(|s| s.datasource == DATASOURCE) else {
            return Ok(());
        };
        if snap.key_size != KEY_SIZE {
            return Err(format!(
                "map {} has {}-byte keys, expected {KEY_SIZE} (struct hist_key)",
                snap.map_name, snap.key_size
            ));
        }
        let mut groups: BTreeMap<(u32, u32), Log2Histogram> = BTreeMap::new();
        for entry in &snap.entries {
            let slots = Log2Histogram::from_le_slots(&entry.value)?;
            let group = if self.per_device {
                (read_u32(&entry.key, 0)?, read_u32(&entry.key, 4)?)
            } else {
                (0, 0)
            };
            groups.entry(group).or_default().add(&slots);
        }
        if groups.is_empty() {
            groups.insert((0, 0), Log2Histogram::default());
        }
        let histograms: Vec<_> = groups
            .into_iter()
            .map(|((dev, op), hist)| {
                let labels = if self.per_device {
                    vec![
                        ("device".to_string(), device_name(dev)),
                        ("op".to_string(), op_name(op).to_string()),
                    ]
                } else {
                    Vec::new()
                };
                hist.to_histogram(FIELD, labels)
            })
            .collect();
        self.out.publish(&histograms, &[])
    }
}

/// The kernel's internal dev_t: 12 bits of major above 20 bits of minor.
fn device_name(dev: u32) -> String {
    format!("{}:{}", dev >> 20, dev & ((1 << 20) - 1))
}

/// `enum req_op` values in the kernel.
fn op_name(op: u32) -> &'static str {
    match op {
        0 => "read",
        1 => "write",
        2 => "flush",
        3 => "discard",
        _ => "other",
    }
}

gadget_sdk::gadget!(ProfileBlockio);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_devices_and_ops() {
        assert_eq!(device_name((7 << 20) | 3), "7:3");
        assert_eq!(op_name(1), "write");
        assert_eq!(op_name(9), "other");
    }
}
