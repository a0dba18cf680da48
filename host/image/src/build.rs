//! `gadget image build`: compile a gadget folder (C eBPF with clang, a Rust guest with cargo)
//! and store it as an image in IG's format: config = gadget.yaml, one eBPF layer, at most one
//! Wasm layer, an image index for this platform.
//!
//! An optional `build.yaml` (IG's file) changes the defaults: `ebpfsource` (program.bpf.c),
//! `metadata` (gadget.yaml), `wasm` (a `.wasm` file or a guest crate folder; default `guest/`
//! when it has a Cargo.toml, else none and the host's default guest runs), `cflags`.
//! The project's BPF headers are compiled into this binary, and vmlinux.h is generated from the
//! running kernel's BTF, so a gadget folder builds anywhere `clang` and `bpftool` are installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest};
use serde::Deserialize;

use super::store::{Entry, Store};
use super::{
    ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, CREATED_ANNOTATION, EBPF_LAYER, ImageError, ImageRef,
    OCI_INDEX, OCI_MANIFEST, WASM_LAYER,
};
use gadget_model::GadgetMetadata;

/// The headers gadgets include as `<gadget/…>`.
const HEADERS: &[(&str, &str)] = &[
    (
        "gadget/macros.h",
        include_str!("../../../ebpf/include/gadget/macros.h"),
    ),
    (
        "gadget/histogram.h",
        include_str!("../../../ebpf/include/gadget/histogram.h"),
    ),
    (
        "gadget/buffer.h",
        include_str!("../../../ebpf/include/gadget/buffer.h"),
    ),
    (
        "gadget/types.h",
        include_str!("../../../ebpf/include/gadget/types.h"),
    ),
    (
        "gadget/common.h",
        include_str!("../../../ebpf/include/gadget/common.h"),
    ),
];

/// build.yaml, as IG names its keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildFile {
    #[serde(default = "default_source")]
    ebpfsource: PathBuf,
    #[serde(default = "default_metadata")]
    metadata: PathBuf,
    wasm: Option<PathBuf>,
    #[serde(default)]
    cflags: CFlags,
}

/// IG writes cflags as one string; a list is accepted too.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum CFlags {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

fn default_source() -> PathBuf {
    "program.bpf.c".into()
}
fn default_metadata() -> PathBuf {
    "gadget.yaml".into()
}

pub struct BuildOptions<'a> {
    pub dir: &'a Path,
    pub tag: &'a ImageRef,
    /// Default: `<dir>/build.yaml` if it exists.
    pub build_file: Option<&'a Path>,
}

/// What a build produced (before it is stored).
pub struct Built {
    pub metadata: Vec<u8>,
    pub ebpf: Vec<u8>,
    pub wasm: Option<Vec<u8>>,
}

pub fn build(store: &Store, opts: &BuildOptions) -> Result<Entry, ImageError> {
    let built = compile(opts)?;
    store_image(store, opts.tag, &built)
}

fn err(dir: &Path, message: impl Into<String>) -> ImageError {
    ImageError::Build {
        dir: dir.display().to_string(),
        message: message.into(),
    }
}

pub fn compile(opts: &BuildOptions) -> Result<Built, ImageError> {
    let dir = opts.dir;
    if !dir.is_dir() {
        return Err(err(dir, "not a directory"));
    }
    let build_path = opts
        .build_file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("build.yaml"));
    let limits = gadget_model::budgets::Budgets::current().yaml;
    // "{}" gives every key its serde default.
    let bf: BuildFile = match std::fs::read(&build_path) {
        Ok(text) if text.iter().all(u8::is_ascii_whitespace) => {
            gadget_model::yaml::from_str("{}", &limits)
        }
        Ok(text) => gadget_model::yaml::from_slice(&text, &limits),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && opts.build_file.is_none() => {
            gadget_model::yaml::from_str("{}", &limits)
        }
        Err(e) => return Err(ImageError::io(&build_path, e)),
    }
    .map_err(|e| err(dir, format!("{}: {e}", build_path.display())))?;

    let meta_path = dir.join(&bf.metadata);
    let metadata = std::fs::read(&meta_path).map_err(|e| ImageError::io(&meta_path, e))?;
    GadgetMetadata::parse(&metadata, &meta_path.display().to_string())
        .map_err(|e| err(dir, e.to_string()))?;

    let source = dir.join(&bf.ebpfsource);
    if !source.is_file() {
        return Err(err(
            dir,
            format!(
                "no eBPF source {} (set ebpfsource in build.yaml)",
                source.display()
            ),
        ));
    }
    let cflags = match bf.cflags {
        CFlags::None => Vec::new(),
        CFlags::One(s) => s.split_whitespace().map(str::to_string).collect(),
        CFlags::Many(v) => v,
    };
    let ebpf = compile_ebpf(dir, &source, &cflags)?;
    gadget_object::elf::ElfInfo::parse(&ebpf).map_err(|e| {
        err(
            dir,
            format!("clang produced an object the loader rejects: {e}"),
        )
    })?;

    let wasm_src = match bf.wasm {
        Some(w) => Some(dir.join(w)),
        None if dir.join("guest/Cargo.toml").is_file() => Some(dir.join("guest")),
        None => None,
    };
    let wasm = match wasm_src {
        None => None,
        Some(p) if p.extension().is_some_and(|e| e == "wasm") => {
            Some(std::fs::read(&p).map_err(|e| ImageError::io(&p, e))?)
        }
        Some(p) => Some(compile_guest(dir, &p)?),
    };
    if let Some(w) = &wasm
        && !w.starts_with(b"\0asm")
    {
        return Err(err(dir, "the Wasm guest is not a WebAssembly binary"));
    }
    Ok(Built {
        metadata,
        ebpf,
        wasm,
    })
}

fn compile_ebpf(dir: &Path, source: &Path, cflags: &[String]) -> Result<Vec<u8>, ImageError> {
    let work = tempfile_dir().map_err(|e| err(dir, format!("creating a work directory: {e}")))?;
    let include = work.path().join("include");
    for (name, text) in HEADERS {
        let p = include.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ImageError::io(parent, e))?;
        }
        std::fs::write(&p, text).map_err(|e| ImageError::io(&p, e))?;
    }
    let vmlinux = include.join("vmlinux.h");
    let out = run_tool(
        dir,
        Command::new("bpftool").args([
            "btf",
            "dump",
            "file",
            "/sys/kernel/btf/vmlinux",
            "format",
            "c",
        ]),
        "bpftool (generating vmlinux.h from /sys/kernel/btf/vmlinux)",
    )?;
    std::fs::write(&vmlinux, out).map_err(|e| ImageError::io(&vmlinux, e))?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        other => return Err(err(dir, format!("unsupported architecture {other}"))),
    };
    let object = work.path().join("program.bpf.o");
    run_tool(
        dir,
        Command::new(std::env::var("BPF_CLANG").unwrap_or_else(|_| "clang".into()))
            .args(["-O2", "-g", "-target", "bpf", "-Wall"])
            .arg(format!("-D__TARGET_ARCH_{arch}"))
            .arg("-I")
            .arg(&include)
            .arg("-I")
            .arg(dir)
            .args(cflags)
            .arg("-c")
            .arg(source)
            .arg("-o")
            .arg(&object),
        "clang (compiling the eBPF program)",
    )?;
    // DWARF is dead weight in the image; .BTF and .BTF.ext, which CO-RE needs, stay.
    run_tool(
        dir,
        Command::new("llvm-strip").arg("-g").arg(&object),
        "llvm-strip",
    )?;
    std::fs::read(&object).map_err(|e| ImageError::io(&object, e))
}

fn compile_guest(dir: &Path, krate: &Path) -> Result<Vec<u8>, ImageError> {
    let manifest = if krate.is_dir() {
        krate.join("Cargo.toml")
    } else {
        krate.to_path_buf()
    };
    if !manifest.is_file() {
        return Err(err(
            dir,
            format!(
                "wasm: {} is neither a .wasm file nor a crate with a Cargo.toml",
                krate.display()
            ),
        ));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = run_tool(
        dir,
        Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--message-format=json-render-diagnostics",
                "--manifest-path",
            ])
            .arg(&manifest),
        "cargo (building the Wasm guest; `rustup target add wasm32-wasip2` if the target is missing)",
    )?;
    let manifest = manifest
        .canonicalize()
        .map_err(|e| ImageError::io(&manifest, e))?;
    let mut wasm = None;
    for line in out.split(|b| *b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact"
            || msg["manifest_path"].as_str().map(Path::new) != Some(manifest.as_path())
        {
            continue;
        }
        if let Some(files) = msg["filenames"].as_array() {
            wasm = files
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
                .or(wasm);
        }
    }
    let path = wasm.ok_or_else(|| {
        err(
            dir,
            format!(
                "cargo built {} but produced no .wasm (is crate-type cdylib?)",
                manifest.display()
            ),
        )
    })?;
    std::fs::read(&path).map_err(|e| ImageError::io(&path, e))
}

/// Runs a tool, returning its stdout; on failure its stderr is the message (compile errors).
fn run_tool(dir: &Path, cmd: &mut Command, what: &str) -> Result<Vec<u8>, ImageError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(dir, format!("running {what}: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(err(
            dir,
            format!("{what} failed ({}):\n{}", out.status, tail.join("\n")),
        ));
    }
    Ok(out.stdout)
}

fn tempfile_dir() -> std::io::Result<TempDir> {
    let base = std::env::temp_dir().join(format!(
        "gadget-build-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&base)?;
    Ok(TempDir(base))
}

struct TempDir(PathBuf);
impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Stores a built gadget under `tag`: blobs, manifest, index, then the reference.
pub fn store_image(store: &Store, tag: &ImageRef, built: &Built) -> Result<Entry, ImageError> {
    let origin = tag.to_string();
    let meta = GadgetMetadata::parse(&built.metadata, &origin)
        .map_err(|e| ImageError::invalid(&origin, e.to_string()))?;
    let mut staging = store.staging()?;
    let mut descriptor = |media_type: &str,
                          bytes: &[u8],
                          title: Option<&str>|
     -> Result<OciDescriptor, ImageError> {
        Ok(OciDescriptor {
            media_type: media_type.to_string(),
            digest: staging.put_blob(bytes)?,
            size: bytes.len() as i64,
            annotations: title.map(|t| {
                BTreeMap::from([("org.opencontainers.image.title".to_string(), t.to_string())])
            }),
            ..Default::default()
        })
    };
    let config = descriptor(CONFIG_MEDIA_TYPE, &built.metadata, None)?;
    let mut layers = vec![descriptor(EBPF_LAYER, &built.ebpf, Some("program.bpf.o"))?];
    if let Some(w) = &built.wasm {
        layers.push(descriptor(WASM_LAYER, w, Some("program.wasm"))?);
    }
    let mut annotations = BTreeMap::new();
    for (key, value) in [
        ("title", &meta.name),
        ("description", &meta.description),
        ("url", &meta.homepage_url),
        ("documentation", &meta.documentation_url),
        ("source", &meta.source_url),
    ] {
        if !value.is_empty() {
            annotations.insert(format!("org.opencontainers.image.{key}"), value.clone());
        }
    }
    annotations.insert(CREATED_ANNOTATION.to_string(), created_now());
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        config,
        layers,
        subject: None,
        artifact_type: Some(ARTIFACT_TYPE.to_string()),
        annotations: Some(annotations),
    };
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|e| ImageError::invalid(&origin, e.to_string()))?;
    let manifest_digest = staging.put_blob(&manifest_bytes)?;
    let platform = serde_json::from_value(serde_json::json!({
        "architecture": super::host_architecture(),
        "os": "linux",
    }))
    .map_err(|e| ImageError::invalid(&origin, e.to_string()))?;
    let index = OciImageIndex {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_string()),
        manifests: vec![ImageIndexEntry {
            media_type: OCI_MANIFEST.to_string(),
            digest: manifest_digest,
            size: manifest_bytes.len() as i64,
            platform: Some(platform),
            annotations: None,
            // Not repeated here: skopeo drops it when copying, which would change the digest.
            artifact_type: None,
        }],
        artifact_type: None,
        annotations: None,
    };
    let index_bytes =
        serde_json::to_vec(&index).map_err(|e| ImageError::invalid(&origin, e.to_string()))?;
    let index_digest = staging.put_blob(&index_bytes)?;
    store.publish(
        staging,
        vec![(
            origin.clone(),
            ImageIndexEntry {
                media_type: OCI_INDEX.to_string(),
                digest: index_digest,
                size: index_bytes.len() as i64,
                platform: None,
                annotations: None,
                artifact_type: None,
            },
        )],
    )?;
    store
        .resolve(tag)?
        .ok_or_else(|| ImageError::invalid(origin, "built, but the store did not list it"))
}

/// RFC 3339, UTC; `SOURCE_DATE_EPOCH` pins it for reproducible digests.
fn created_now() -> String {
    let when = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or_else(chrono::Utc::now);
    when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
