//! `gadget image import FILE`: a tar (an OCI image layout, as `image export` and skopeo write
//! it) imported into an empty store (`image::archive::import`); what it stores is then read
//! back as `gadget run` would (`Store::entries`, `LocalImage::load`, `bundle`).
//!
//! Property: an import that succeeds leaves only complete, verified images; one that fails
//! leaves no reference behind.
#![no_main]

use gadget::image::archive;
use gadget::image::layout::LocalImage;
use gadget::image::{ImageConfig, Limits, Store};
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
        },
        ..Default::default()
    };
    let store = Store::open(&cfg.store).expect("opening the scratch store");
    match archive::import(&cfg, &store, &tar, None) {
        Ok(entries) => {
            for e in entries {
                let image = LocalImage::load(&store, e, &cfg.limits)
                    .expect("an imported image must load from the store");
                let _ = image.bundle(&store, &cfg.limits);
            }
        }
        Err(_) => {
            let left = store.entries().expect("the store's index stays readable");
            assert!(left.is_empty(), "a failed import left references: {left:?}");
        }
    }
});
