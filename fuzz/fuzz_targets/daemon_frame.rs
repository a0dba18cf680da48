//! The daemon's Unix-socket protocol: the request line a client sends (one JSON object,
//! read up to `api::MAX_REQUEST_BYTES` and decoded as `daemon::api::Request`, then a run
//! request turned into an instance spec as the daemon does), the reply lines the CLI decodes
//! (`daemon::api::Reply`), and a saved instance file (`daemon::store::SavedInstance`) as the
//! daemon restores them at start.
//!
//! Input: lines; the first is the request, every line is also decoded as a reply and as a
//! saved instance.
#![no_main]

use gadget_api::{MAX_REQUEST_BYTES, Reply, Request};
use gadget_daemon::store::SavedInstance;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The daemon reads the first line, at most MAX_REQUEST_BYTES, as text.
    let cap = data.len().min(MAX_REQUEST_BYTES as usize);
    let first = data[..cap]
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    if let Ok(line) = std::str::from_utf8(first)
        && let Ok(request) = serde_json::from_str::<Request>(line)
    {
        if let Request::Run { spec } = &request
            && let Ok((s, _names)) = gadget_runtime::instance::spec_from_request(&spec)
        {
            assert!(!s.interval.is_zero(), "a zero interval was accepted");
        }
        // What the daemon decoded must survive the trip to a saved instance file and back.
        let again = serde_json::to_string(&request).expect("a decoded request encodes");
        serde_json::from_str::<Request>(&again).expect("an encoded request decodes");
    }
    for line in data.split(|&b| b == b'\n') {
        let _ = serde_json::from_slice::<Reply>(line);
        if let Ok(saved) = serde_json::from_slice::<SavedInstance>(line) {
            let _ = gadget_runtime::instance::spec_from_request(&saved.request);
        }
    }
});
