//! OCI JSON from registries, archives and the store: image indexes, image manifests and the
//! `Versioned` probe a pull uses for the media type, resolved the way `gadget run` resolves a
//! stored image (`LocalImage::load_with`: index -> this platform's manifest -> gadget layers,
//! sizes checked against the limits). The config blob is gadget.yaml (target gadget_yaml).
//!
//! Input: blobs separated by NUL bytes; the first is the entry's (index or manifest), all of
//! them are readable by their sha256 digest, so an index can point at a manifest of the input.
#![no_main]

use std::collections::BTreeMap;

use gadget_image::layout::{self, LocalImage};
use gadget_image::store::Entry;
use gadget_image::{ImageError, Limits, OCI_INDEX, OCI_MANIFEST, sha256_digest};
use libfuzzer_sys::fuzz_target;
use oci_client::manifest::{OciImageIndex, OciImageManifest, Versioned};

fuzz_target!(|data: &[u8]| {
    let blobs: BTreeMap<String, &[u8]> = data
        .split(|&b| b == 0)
        .map(|b| (sha256_digest(b), b))
        .collect();
    let first = data.split(|&b| b == 0).next().unwrap_or_default();
    let _ = serde_json::from_slice::<Versioned>(first);
    if let Ok(index) = serde_json::from_slice::<OciImageIndex>(first) {
        let _ = layout::select_platform(&index, "fuzz");
    }
    if let Ok(m) = serde_json::from_slice::<OciImageManifest>(first) {
        let _ = layout::all_blobs(&m).count();
    }
    let limits = Limits {
        manifest_bytes: 1 << 20,
        config_bytes: 1 << 20,
        layer_bytes: 64 << 20,
        ..Limits::default()
    };
    let read = |digest: &str, limit: u64| -> Result<Vec<u8>, ImageError> {
        match blobs.get(digest) {
            Some(b) if b.len() as u64 <= limit => Ok(b.to_vec()),
            Some(_) => Err(ImageError::Store {
                path: "fuzz".into(),
                message: format!("{digest} over the limit"),
            }),
            None => Err(ImageError::Store {
                path: "fuzz".into(),
                message: format!("no blob {digest}"),
            }),
        }
    };
    for media_type in [OCI_INDEX, OCI_MANIFEST] {
        let entry = Entry {
            name: "example.com/fuzz:latest".into(),
            media_type: media_type.into(),
            digest: sha256_digest(first),
            size: first.len() as u64,
            annotations: Default::default(),
        };
        let Ok(image) = LocalImage::load_with(read, entry, &limits) else {
            continue;
        };
        let _ = image.size();
        if let Ok(layers) = layout::gadget_layers(&image.manifest, "fuzz", &limits) {
            for d in std::iter::once(layers.ebpf)
                .chain(layers.wasm)
                .chain(layers.btfgen)
            {
                let size = u64::try_from(d.size).expect("gadget_layers accepted a negative size");
                assert!(
                    size <= limits.layer_bytes,
                    "a layer over the limit was accepted"
                );
            }
        }
    }
});
