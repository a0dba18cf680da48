//! `gadget image import FILE`: a tar (an OCI image layout, as `image export` and skopeo write
//! it) imported into an empty store (`image::archive::import`); what it stores is then read
//! back as `gadget run` would (`Store::entries`, `LocalImage::load`, `GadgetBundle::from_image`).
//!
//! Properties: an import that succeeds leaves only complete, verified images, whose
//! descriptors give each blob's true size, and no blob that nothing references (issue 11,
//! finding 8); one that fails leaves no reference behind.
#![no_main]

use gadget_image::archive;
use gadget_image::layout::{LocalImage, all_blobs};
use gadget_image::{ImageConfig, Limits, Store};
use gadget_fuzz::fresh_dir;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = fresh_dir("archive_import");
    let tar = dir.join("in.tar");
    std::fs::write(&tar, data).expect("writing the archive");
    let cfg = ImageConfig {
        store: dir.join("store"),
        limits: Limits {
            manifest_bytes: 1 << 20,
            config_bytes: 1 << 20,
            layer_bytes: 4 << 20,
            ..Limits::default()
        },
        ..Default::default()
    };
    let store = Store::open(&cfg.store).expect("opening the scratch store");
    match archive::import(&cfg, &store, &tar, None) {
        Ok(entries) => {
            for e in entries {
                let image = LocalImage::load(&store, e, &cfg.limits)
                    .expect("an imported image must load from the store");
                for d in all_blobs(&image.manifest) {
                    let size = u64::try_from(d.size).unwrap_or(u64::MAX);
                    assert!(
                        store.has_blob(&d.digest, size),
                        "descriptor of {} says {} bytes, the stored blob differs",
                        d.digest,
                        d.size
                    );
                }
                let _ = gadget_runtime::GadgetBundle::from_image(&image, &store, &cfg.limits);
            }
            let index = store
                .read_index()
                .expect("the store's index stays readable");
            let reachable = store.reachable(&index).expect("walking the stored images");
            let blobs = std::fs::read_dir(store.root().join("blobs/sha256"))
                .expect("listing the stored blobs");
            for f in blobs.flatten() {
                let digest = format!("sha256:{}", f.file_name().to_string_lossy());
                assert!(
                    reachable.contains(&digest),
                    "import stored {digest}, which nothing references"
                );
            }
        }
        Err(_) => {
            let left = store.entries().expect("the store's index stays readable");
            assert!(left.is_empty(), "a failed import left references: {left:?}");
        }
    }
});
