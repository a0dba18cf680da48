//! What a registry says about authentication, and the credential files that answer it:
//! - the `WWW-Authenticate` challenge of a 401, parsed by the http-auth parser oci-client
//!   uses, and the Bearer realm/service picked from it as oci-client picks them;
//! - the token endpoint's JSON answer (`oci_client::token_cache::RegistryToken`);
//! - Docker's config.json format (`gadget login`'s file, ~/.docker/config.json) as
//!   `image::auth::lookup` reads it.
//!
//! Input: challenge, NUL, token JSON, NUL, config.json, NUL, registry name.
#![no_main]

use gadget_image::auth;
use gadget_fuzz::{fresh_dir, split2};
use http_auth::parser::ChallengeParser;
use libfuzzer_sys::fuzz_target;
use oci_client::token_cache::RegistryToken;

fuzz_target!(|data: &[u8]| {
    let (challenge, rest) = split2(data);
    let (token, rest) = split2(rest);
    let (config, registry) = split2(rest);

    // oci-client takes the header only if it is visible ASCII text (HeaderValue::to_str).
    if let Ok(header) = std::str::from_utf8(challenge)
        && header
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        let bearer = ChallengeParser::new(header)
            .filter_map(Result::ok)
            .find(|c| c.scheme.eq_ignore_ascii_case("Bearer"));
        if let Some(c) = bearer {
            for (k, v) in &c.params {
                let v = v.to_unescaped();
                if k.eq_ignore_ascii_case("realm") {
                    let _ = v.len();
                }
            }
        }
    }

    if let Ok(t) = serde_json::from_slice::<RegistryToken>(token) {
        let _ = t.bearer_token();
    }

    let dir = fresh_dir("registry_auth");
    let file = dir.join("config.json");
    std::fs::write(&file, config).expect("writing config.json");
    let registry = String::from_utf8_lossy(registry);
    if let Ok(Some(c)) = auth::lookup(&registry, &file) {
        // Secrets never print: Debug shows the user only.
        let shown = format!("{c:?}");
        assert!(shown.ends_with(":***"), "credentials printed as {shown:?}");
    }
});
