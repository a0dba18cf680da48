//! An image's eBPF layer, before anything reaches the kernel: `gadget_object::elf::ElfInfo::parse`,
//! the host's scan (mapiter symbols, program sections, globals) which also runs the object
//! parse aya's loader starts with (`aya_obj::Object::parse`: sections, maps, `.BTF` and
//! `.BTF.ext`), its panics caught.
//!
//! aya-obj 0.3.0 panics on some malformed objects (crash-btf-ext-record-count); the host turns
//! those into errors with `catch_unwind`. libFuzzer's panic hook would abort on them before
//! they unwind, so panics located in aya-obj are let through to the host's guard: should the
//! guard go, they reach libfuzzer-sys's own `catch_unwind` and still fail the run.
#![no_main]

use gadget_object::elf::ElfInfo;
use libfuzzer_sys::fuzz_target;

fn let_aya_obj_panics_unwind() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_aya_obj = info
                .location()
                .is_some_and(|l| l.file().contains("/aya-obj-"));
            if !in_aya_obj {
                abort_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    let_aya_obj_panics_unwind();
    if let Ok(info) = ElfInfo::parse(data) {
        for m in &info.mapiters {
            assert!(!m.datasource.is_empty() && !m.map.is_empty());
        }
    }
});
