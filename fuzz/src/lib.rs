//! Helpers shared by the fuzz targets: splitting one input into parts and a scratch
//! directory for the parsers that read files. Every target states what it feeds to which
//! parser and which property it checks beyond "no panic, bounded time and memory".

use std::path::PathBuf;
use std::sync::OnceLock;

/// Splits `data` at the first NUL byte: the parts a target feeds to different parsers.
/// Without a NUL the second part is empty.
pub fn split2(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A directory of this process's own for parsers that take paths (tmpfs when there is one:
/// file I/O on every input must stay cheap). Removed and recreated by [`fresh_dir`].
pub fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("GADGET_FUZZ_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let shm = PathBuf::from("/dev/shm");
                if shm.is_dir() {
                    shm
                } else {
                    std::env::temp_dir()
                }
            });
        let dir = base.join(format!("gadget-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the fuzz scratch directory");
        dir
    })
}

/// An empty directory `name` under [`scratch`].
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a fuzz scratch directory");
    dir
}

/// The gadget.yaml of the profile_blockio gadget, trimmed: a metadata to check `--annotate`
/// and params against when the input brings none.
pub const SAMPLE_GADGET_YAML: &str = r#"name: profile blockio
description: Analyze block I/O performance through a latency distribution
datasources:
  blockio:
    annotations:
      metrics.print: "true"
    fields:
      latency:
        annotations:
          metrics.type: histogram
          metrics.unit: us
      dev:
        annotations:
          metrics.type: key
params:
  ebpf:
    targ_dev:
      key: disk
      defaultValue: ""
      typeHint: device
    filter_on:
      key: flag
      typeHint: bool
    count:
      typeHint: uint
  wasm:
    mode:
      defaultValue: "a"
"#;
