//! An image's eBPF layer, before anything reaches the kernel: the host's own ELF scan
//! (`ebpf::elf::ElfInfo::parse`: mapiter symbols, program sections, globals), then the object
//! parse aya runs first when loading it (`aya_obj::Object::parse`, which reads the `.BTF` and
//! `.BTF.ext` sections), and aya's BTF parser on the raw bytes (BTF blobs are hard to reach
//! through a valid ELF by mutation).
#![no_main]

use gadget::ebpf::elf::ElfInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = ElfInfo::parse(data) {
        for m in &info.mapiters {
            assert!(!m.datasource.is_empty() && !m.map.is_empty());
        }
    }
    let _ = aya_obj::Object::parse(data);
    let _ = aya::Btf::parse(data, aya::Endianness::Little);
});
