//! The gadget bundle: everything one gadget is made of, wherever it came from (a gadget
//! directory, or an image in the local store): gadget.yaml metadata, the eBPF object and an
//! optional Wasm guest.

use std::path::{Path, PathBuf};

use gadget_image::layout::LocalImage;
use gadget_image::{ImageConfig, ImageError, Limits, Store};
use gadget_model::{GadgetMetadata, MetadataError};

/// Bound on a Wasm guest read from outside (ours are ~100 KiB).
pub const MAX_WASM_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0} is not a gadget directory: it has no gadget.yaml")]
    NoMetadata(PathBuf),
    #[error(
        "{dir} has no compiled eBPF object ({file}); build it with `make gadgets` (or `make -C <repo> build/gadgets/<name>/program.bpf.o`)"
    )]
    NoObject { dir: PathBuf, file: PathBuf },
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes, more than the {limit} byte limit")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Image(#[from] gadget_image::ImageError),
}

/// One gadget, ready to run.
#[derive(Debug, Clone)]
pub struct GadgetBundle {
    /// Where it came from, for messages (a path or an image reference).
    pub origin: String,
    pub metadata: GadgetMetadata,
    pub ebpf_object: Vec<u8>,
    /// `None`: the host's built-in default guest runs instead.
    pub wasm: Option<Vec<u8>>,
}

/// File names inside a gadget directory (the Makefile puts build outputs there).
pub const METADATA_FILE: &str = "gadget.yaml";
pub const OBJECT_FILE: &str = "program.bpf.o";
pub const WASM_FILE: &str = "program.wasm";

impl GadgetBundle {
    /// Resolves what the user typed after `gadget run`: a gadget directory, else an image
    /// reference looked up in the local store (pulling is the caller's step, see
    /// [`gadget_image::ensure`]).
    pub fn open(reference: &str, images: &ImageConfig) -> Result<Self, SourceError> {
        let path = Path::new(reference);
        if path.is_dir() {
            return Self::from_dir(path);
        }
        if gadget_image::is_path(reference) {
            return Err(SourceError::Read {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such gadget directory",
                ),
            });
        }
        let r = images.parse_ref(reference)?;
        let store = Store::open(&images.store)?;
        let entry = store.resolve(&r)?.ok_or_else(|| {
            ImageError::NotLocal(r.to_string(), images.store.display().to_string())
        })?;
        let image = LocalImage::load(&store, entry, &images.limits)?;
        Ok(Self::from_image(&image, &store, &images.limits)?)
    }

    /// A stored image: gadget.yaml from the config, eBPF and Wasm by media type.
    pub fn from_image(
        image: &LocalImage,
        store: &Store,
        limits: &Limits,
    ) -> Result<Self, ImageError> {
        let blobs = image.gadget_blobs(store, limits)?;
        let origin = blobs.origin;
        let metadata = GadgetMetadata::parse(&blobs.config, &format!("{origin} (gadget.yaml)"))
            .map_err(|e| ImageError::invalid(&origin, e.to_string()))?;
        Ok(GadgetBundle {
            origin,
            metadata,
            ebpf_object: blobs.ebpf_object,
            wasm: blobs.wasm,
        })
    }

    /// A gadget directory: gadget.yaml, program.bpf.o and optionally program.wasm.
    pub fn from_dir(dir: &Path) -> Result<Self, SourceError> {
        let meta_path = dir.join(METADATA_FILE);
        if !meta_path.is_file() {
            return Err(SourceError::NoMetadata(dir.to_path_buf()));
        }
        let metadata = GadgetMetadata::from_file(&meta_path)?;
        let obj_path = dir.join(OBJECT_FILE);
        if !obj_path.is_file() {
            return Err(SourceError::NoObject {
                dir: dir.to_path_buf(),
                file: obj_path,
            });
        }
        let ebpf_object = read_capped(&obj_path, gadget_object::elf::MAX_OBJECT_BYTES as u64)?;
        let wasm_path = dir.join(WASM_FILE);
        let wasm = if wasm_path.is_file() {
            Some(read_capped(&wasm_path, MAX_WASM_BYTES)?)
        } else {
            tracing::info!(
                "{} has no {WASM_FILE}: using the built-in default guest",
                dir.display()
            );
            None
        };
        Ok(GadgetBundle {
            origin: dir.display().to_string(),
            metadata,
            ebpf_object,
            wasm,
        })
    }
}

fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, SourceError> {
    let read_err = |source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > limit {
        return Err(SourceError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit,
        });
    }
    std::fs::read(path).map_err(read_err)
}
