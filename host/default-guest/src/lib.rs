//! The guest the host runs when a gadget ships no Wasm module (IG's images have none), so every
//! gadget takes the same path (snapshot → guest → operators).
//!
//! It reads map entries by the layout the host derived from the object's BTF (the `ebpf.*`
//! field annotations: place in key or value, byte offset, size, type), as IG's ebpf operator
//! does for `GADGET_MAPITER` datasources:
//! - the histogram is the field annotated `metrics.type: histogram` (the host marks
//!   `gadget_histogram_slot__u32/__u64` arrays so), else the first field with a `metrics.unit`,
//!   else the first field listed;
//! - fields annotated `metrics.type: key` become labels: entries with the same label values
//!   are summed into one histogram; without key fields every entry is summed into one.
//!
//! Fields without an `ebpf.offset` (gadget.yaml-only datasources of older gadgets) fall back to
//! the whole value being the slot array (27 slots of u32 or u64).
//!
//! Event datasources (`GADGET_TRACER`) pass through: the default guest does not subscribe, so
//! the host hands their events to the operators without calling it.

use gadget_sdk::{
    Annotations, Datasource, DatasourceConfig, FieldConfig, Gadget, GadgetConfig, Log2Histogram,
    MapSnapshot, SlotWidth,
};

/// Where a field's bytes are in a map entry.
#[derive(Debug, Clone)]
struct Layout {
    in_key: bool,
    offset: usize,
    size: usize,
    ty: String,
}

impl Layout {
    fn of(f: &FieldConfig) -> Result<Option<Layout>, String> {
        let a = &f.annotations;
        let Some(offset) = a.annotation(gadget_keys::EBPF_OFFSET) else {
            return Ok(None);
        };
        let num = |k: &str, v: Option<&str>| -> Result<usize, String> {
            v.unwrap_or("")
                .parse()
                .map_err(|_| format!("field {}: annotation {k} is not a number", f.name))
        };
        Ok(Some(Layout {
            in_key: a.annotation(gadget_keys::EBPF_PLACE) == Some("key"),
            offset: num(gadget_keys::EBPF_OFFSET, Some(offset))?,
            size: num(gadget_keys::EBPF_SIZE, a.annotation(gadget_keys::EBPF_SIZE))?,
            ty: a
                .annotation(gadget_keys::EBPF_TYPE)
                .unwrap_or("")
                .to_string(),
        }))
    }

    fn bytes<'a>(&self, key: &'a [u8], value: &'a [u8]) -> Result<&'a [u8], String> {
        let src = if self.in_key { key } else { value };
        src.get(self.offset..self.offset + self.size)
            .ok_or_else(|| {
                format!(
                    "entry of {} bytes has no bytes {}..{}",
                    src.len(),
                    self.offset,
                    self.offset + self.size
                )
            })
    }

    /// A label value as text: integers in decimal, strings up to their NUL.
    fn text(&self, key: &[u8], value: &[u8]) -> Result<String, String> {
        let b = self.bytes(key, value)?;
        let mut raw = [0u8; 8];
        let n = b.len().min(8);
        raw[..n].copy_from_slice(&b[..n]);
        let u = u64::from_le_bytes(raw);
        Ok(match self.ty.as_str() {
            "string" => {
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                String::from_utf8_lossy(&b[..end]).into_owned()
            }
            "bool" => (u != 0).to_string(),
            _ if n == 0 => "0".to_string(),
            t if t.starts_with('i') => {
                let shift = 64 - 8 * n as u32;
                (((u << shift) as i64) >> shift).to_string()
            }
            _ => u.to_string(),
        })
    }
}

struct Output {
    ds: Datasource,
    field: String,
    layout: Option<Layout>,
    labels: Vec<(String, Layout)>,
}

fn histogram_field(ds: &DatasourceConfig) -> Result<&FieldConfig, String> {
    let by = |pred: &dyn Fn(&FieldConfig) -> bool| ds.fields.iter().find(|f| pred(f));
    by(&|f| f.annotations.annotation(gadget_keys::METRICS_TYPE) == Some("histogram"))
        .or_else(|| {
            by(&|f| {
                f.annotations
                    .annotation(gadget_keys::METRICS_UNIT)
                    .is_some()
            })
        })
        .or_else(|| by(&|_| true))
        .ok_or_else(|| {
            format!(
                "datasource {}: it has no fields, so the default guest cannot name its histogram",
                ds.name
            )
        })
}

impl Gadget for DefaultGuest {
    fn init(config: &GadgetConfig) -> Result<Self, String> {
        let mut outputs = Vec::new();
        // Event datasources (tracers) are not subscribed to: their events reach the operators
        // without entering the guest.
        for ds in config.datasources.iter().filter(|d| d.events.is_none()) {
            let hist = histogram_field(ds)?;
            let layout = Layout::of(hist).map_err(|e| format!("datasource {}: {e}", ds.name))?;
            let mut labels = Vec::new();
            let mut spec = ds.histogram_spec(&hist.name)?;
            for f in &ds.fields {
                if f.annotations.annotation(gadget_keys::METRICS_TYPE) != Some("key") {
                    continue;
                }
                // Key fields without a layout come from elsewhere (the host's env fields).
                if let Some(l) =
                    Layout::of(f).map_err(|e| format!("datasource {}: {e}", ds.name))?
                {
                    let description = f.annotations.annotation("description").unwrap_or("");
                    spec = spec.with_key(&f.name, description);
                    labels.push((f.name.clone(), l));
                }
            }
            outputs.push(Output {
                ds: Datasource::add(spec)?,
                field: hist.name.clone(),
                layout,
                labels,
            });
        }
        Ok(DefaultGuest { outputs })
    }

    fn on_snapshot(&mut self, snapshots: &[MapSnapshot]) -> Result<(), String> {
        for out in &self.outputs {
            let Some(snap) = snapshots.iter().find(|s| s.datasource == out.ds.name()) else {
                continue;
            };
            let ctx =
                |e: String| format!("datasource {} (map {}): {e}", out.ds.name(), snap.map_name);
            // Label values → summed histogram, in first-seen order (stable output).
            let mut groups: Vec<(Vec<(String, String)>, Log2Histogram)> = Vec::new();
            if out.labels.is_empty() {
                groups.push((Vec::new(), Log2Histogram::default()));
            }
            for entry in &snap.entries {
                let slots = match &out.layout {
                    Some(l) => {
                        let width = if l.ty == "histogram_u32" {
                            SlotWidth::U32
                        } else {
                            SlotWidth::U64
                        };
                        Log2Histogram::from_le_bytes(
                            l.bytes(&entry.key, &entry.value).map_err(ctx)?,
                            width,
                        )
                    }
                    None => Log2Histogram::from_le_slots(&entry.value),
                }
                .map_err(ctx)?;
                let labels = out
                    .labels
                    .iter()
                    .map(|(n, l)| Ok((n.clone(), l.text(&entry.key, &entry.value)?)))
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(ctx)?;
                match groups.iter_mut().find(|(l, _)| *l == labels) {
                    Some((_, h)) => h.add(&slots),
                    None => groups.push((labels, slots)),
                }
            }
            let hists: Vec<_> = groups
                .into_iter()
                .map(|(labels, h)| h.to_histogram(&out.field, labels))
                .collect();
            out.ds.publish(&hists, &[])?;
        }
        Ok(())
    }
}

struct DefaultGuest {
    outputs: Vec<Output>,
}

gadget_sdk::gadget!(DefaultGuest);
