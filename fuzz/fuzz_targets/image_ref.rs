//! Image references as users type them (`gadget run REF`, `image pull/push/tag/import`, a
//! manifest's `image:`, an archive's ref.name annotation): `ImageRef::parse` with a registry
//! prefix from the input (the config file's `registry-prefix`).
//!
//! Input: the reference, then optionally a NUL and the prefix (IG's default when absent).
//! Property: what parses prints as a full reference that parses back to the same value.
#![no_main]

use gadget_image::ImageRef;
use gadget_image::reference::DEFAULT_PREFIX;
use gadget_fuzz::split2;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (input, prefix) = split2(data);
    let (Ok(input), Ok(prefix)) = (std::str::from_utf8(input), std::str::from_utf8(prefix)) else {
        return;
    };
    let prefix = if prefix.is_empty() {
        DEFAULT_PREFIX
    } else {
        prefix
    };
    let Ok(r) = ImageRef::parse(input, prefix) else {
        return;
    };
    let _ = r.to_oci();
    let _ = r.is_insecure(&[prefix.to_string()]);
    let printed = r.to_string();
    // A printed reference names its registry: it must not depend on the prefix any more.
    if r.registry.contains(['.', ':']) || r.registry == "localhost" {
        match ImageRef::parse(&printed, "other.example/prefix") {
            Ok(again) => assert_eq!(again, r, "{input:?} printed as {printed:?}"),
            Err(e) => panic!("{input:?} parsed, but its printed form {printed:?} does not: {e}"),
        }
    }
});
