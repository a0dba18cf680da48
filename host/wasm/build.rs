//! Embeds the default guest. It is a wasm32-wasip2 component built by `make guests`; a separate
//! cargo invocation, since a build script cannot build for another target in the same run.

use std::path::PathBuf;

fn main() {
    let path = match std::env::var_os("GADGET_DEFAULT_GUEST_WASM") {
        Some(p) => PathBuf::from(p),
        None => {
            let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
            root.join("../../target/wasm32-wasip2/release/default_guest.wasm")
        }
    };
    println!("cargo:rerun-if-env-changed=GADGET_DEFAULT_GUEST_WASM");
    println!("cargo:rerun-if-changed={}", path.display());
    if !path.is_file() {
        panic!(
            "the default guest {} is missing: build it first with `make guests` \
             (cargo build --release --target wasm32-wasip2 -p default-guest)",
            path.display()
        );
    }
    println!(
        "cargo:rustc-env=GADGET_DEFAULT_GUEST_WASM={}",
        path.display()
    );
}
