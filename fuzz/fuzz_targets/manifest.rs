//! IG instance manifests (`gadget run -f FILE|-|URL`): `instance::manifest::parse`, then each
//! accepted document as the daemon receives it (`gadget_runtime::instance::spec_from_request`).
//! Inputs that are not UTF-8 are fed lossily converted: the CLI reads files as text.
#![no_main]

use gadget_api::RunRequest;
use gadget_runtime::manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let base = RunRequest {
        interval_ms: 1000,
        guest_fuel: 1_000_000,
        guest_memory_mib: 64,
        ..Default::default()
    };
    let Ok(requests) = manifest::parse(&text, "fuzz.yaml", &base) else {
        return;
    };
    for r in requests {
        assert!(!r.reference.trim().is_empty());
        let _ = gadget_runtime::instance::spec_from_request(&r);
    }
});
