//! What makes an OCI manifest a gadget image, and which bytes of a stored image make the gadget
//! `gadget run` executes (the bundle itself is gadget-runtime's). Layers are chosen by media
//! type, never by position.

use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest};

use super::store::{Entry, Store};
use super::{
    BTFGEN_LAYER, CONFIG_MEDIA_TYPE, DOCKER_MANIFEST_LIST, EBPF_LAYER, ImageError, Limits,
    OCI_INDEX, WASM_LAYER,
};

/// The layers of a gadget image, picked out of a manifest.
#[derive(Debug)]
pub struct GadgetLayers<'a> {
    pub ebpf: &'a OciDescriptor,
    pub wasm: Option<&'a OciDescriptor>,
    pub btfgen: Option<&'a OciDescriptor>,
    /// Layers of media types this host does not know: kept out of the download, with a notice.
    pub unknown: Vec<&'a OciDescriptor>,
}

/// Every blob of a manifest, config first. Unknown layers are stored too (not run): the
/// stored image stays a complete OCI image that can be pushed and exported again.
pub fn all_blobs(manifest: &OciImageManifest) -> impl Iterator<Item = &OciDescriptor> {
    std::iter::once(&manifest.config).chain(&manifest.layers)
}

/// Checks that a manifest describes a gadget (IG's config and layer media types, the right
/// number of each layer) and that every blob fits the limits, before anything is downloaded.
pub fn gadget_layers<'a>(
    manifest: &'a OciImageManifest,
    origin: &str,
    limits: &Limits,
) -> Result<GadgetLayers<'a>, ImageError> {
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(ImageError::invalid(
            origin,
            format!(
                "not a gadget image: its config has media type {:?}, expected {CONFIG_MEDIA_TYPE:?} (is this a container image?)",
                manifest.config.media_type
            ),
        ));
    }
    let of_type = |t: &str| -> Vec<&'a OciDescriptor> {
        manifest
            .layers
            .iter()
            .filter(|l| l.media_type == t)
            .collect()
    };
    let at_most_one = |t: &str| -> Result<Option<&'a OciDescriptor>, ImageError> {
        match of_type(t).as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(ImageError::invalid(
                origin,
                format!(
                    "{} layers of media type {t:?}; a gadget image has at most one",
                    many.len()
                ),
            )),
        }
    };
    let ebpf = at_most_one(EBPF_LAYER)?.ok_or_else(|| {
        ImageError::invalid(
            origin,
            format!("the image has no layer of media type {EBPF_LAYER:?} (the eBPF program)"),
        )
    })?;
    let layers = GadgetLayers {
        ebpf,
        wasm: at_most_one(WASM_LAYER)?,
        btfgen: at_most_one(BTFGEN_LAYER)?,
        unknown: manifest
            .layers
            .iter()
            .filter(|l| ![EBPF_LAYER, WASM_LAYER, BTFGEN_LAYER].contains(&l.media_type.as_str()))
            .collect(),
    };
    for l in &layers.unknown {
        tracing::info!(
            "{origin}: ignoring layer {} of unknown media type {:?}",
            l.digest,
            l.media_type
        );
    }
    check_size(
        &manifest.config,
        "the config (gadget.yaml)",
        origin,
        limits.config_bytes,
        "limits.config-bytes",
    )?;
    for l in &manifest.layers {
        check_size(
            l,
            &format!("layer {}", l.media_type),
            origin,
            limits.layer_bytes,
            "limits.layer-bytes",
        )?;
    }
    Ok(layers)
}

pub fn check_size(
    d: &OciDescriptor,
    what: &str,
    origin: &str,
    limit: u64,
    setting: &'static str,
) -> Result<u64, ImageError> {
    let size = u64::try_from(d.size).map_err(|_| {
        ImageError::invalid(origin, format!("{what} has a negative size {}", d.size))
    })?;
    if super::digest_hex(&d.digest).is_none() {
        return Err(ImageError::invalid(
            origin,
            format!("{what} has digest {:?}; only sha256 is supported", d.digest),
        ));
    }
    if size > limit {
        return Err(ImageError::TooLarge {
            what: what.to_string(),
            origin: origin.to_string(),
            size,
            limit,
            setting,
        });
    }
    Ok(size)
}

/// The manifest of an index for this host's platform (linux and this CPU).
pub fn select_platform<'a>(
    index: &'a OciImageIndex,
    origin: &str,
) -> Result<&'a ImageIndexEntry, ImageError> {
    let arch = super::host_architecture();
    let matching = |e: &&ImageIndexEntry| {
        e.platform
            .as_ref()
            .is_some_and(|p| p.os.to_string() == "linux" && p.architecture.to_string() == arch)
    };
    if let Some(e) = index.manifests.iter().find(matching) {
        return Ok(e);
    }
    // An index without platforms and a single manifest is platform-neutral.
    if let [only] = index.manifests.as_slice()
        && only.platform.is_none()
    {
        return Ok(only);
    }
    let have: Vec<String> = index
        .manifests
        .iter()
        .map(|e| {
            e.platform
                .as_ref()
                .map_or("(no platform)".to_string(), |p| {
                    format!("{}/{}", p.os, p.architecture)
                })
        })
        .collect();
    Err(ImageError::invalid(
        origin,
        format!(
            "no manifest for linux/{arch} in the image index (it has: {})",
            have.join(", ")
        ),
    ))
}

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// The bytes of a gadget image that running it needs.
#[derive(Debug, Clone)]
pub struct GadgetBlobs {
    /// The image's name, for messages.
    pub origin: String,
    /// The config blob: gadget.yaml.
    pub config: Vec<u8>,
    pub ebpf_object: Vec<u8>,
    /// `None`: the host's built-in default guest runs instead.
    pub wasm: Option<Vec<u8>>,
}

/// A stored image, resolved down to its platform manifest.
#[derive(Debug, Clone)]
pub struct LocalImage {
    pub entry: Entry,
    pub manifest_digest: String,
    pub manifest: OciImageManifest,
}

impl LocalImage {
    pub fn load(store: &Store, entry: Entry, limits: &Limits) -> Result<Self, ImageError> {
        Self::load_with(|d, l| store.read_blob(d, l), entry, limits)
    }

    /// [`LocalImage::load`] from any verified blob source (a staging area before publishing).
    pub fn load_with(
        read: impl Fn(&str, u64) -> Result<Vec<u8>, ImageError>,
        entry: Entry,
        limits: &Limits,
    ) -> Result<Self, ImageError> {
        let origin = entry.name.clone();
        let json = |digest: &str| -> Result<serde_json::Value, ImageError> {
            serde_json::from_slice(&read(digest, limits.manifest_bytes)?).map_err(|e| {
                ImageError::invalid(&origin, format!("{digest} is not valid JSON: {e}"))
            })
        };
        let decode = |v: serde_json::Value, what: &str| {
            ImageError::invalid(&origin, format!("not a valid OCI {what}: {v}"))
        };
        let manifest_digest = if is_index(&entry.media_type) {
            let v = json(&entry.digest)?;
            let index: OciImageIndex =
                serde_json::from_value(v.clone()).map_err(|_| decode(v, "image index"))?;
            select_platform(&index, &origin)?.digest.clone()
        } else {
            entry.digest.clone()
        };
        let v = json(&manifest_digest)?;
        let manifest: OciImageManifest =
            serde_json::from_value(v.clone()).map_err(|_| decode(v, "image manifest"))?;
        Ok(LocalImage {
            entry,
            manifest_digest,
            manifest,
        })
    }

    /// What `gadget run` executes, as bytes: the config (gadget.yaml), the eBPF and Wasm layers
    /// by media type, each read verified and capped.
    pub fn gadget_blobs(&self, store: &Store, limits: &Limits) -> Result<GadgetBlobs, ImageError> {
        let origin = self.entry.name.as_str();
        let layers = gadget_layers(&self.manifest, origin, limits)?;
        let config = store.read_blob(&self.manifest.config.digest, limits.config_bytes)?;
        let ebpf_object = store.read_blob(&layers.ebpf.digest, limits.layer_bytes)?;
        let wasm = match layers.wasm {
            Some(w) => Some(store.read_blob(&w.digest, limits.layer_bytes)?),
            None => {
                tracing::info!("{origin} has no Wasm layer: using the built-in default guest");
                None
            }
        };
        Ok(GadgetBlobs {
            origin: origin.to_string(),
            config,
            ebpf_object,
            wasm,
        })
    }

    /// Total bytes of the manifest's blobs (what `list` shows as SIZE).
    pub fn size(&self) -> u64 {
        std::iter::once(&self.manifest.config)
            .chain(&self.manifest.layers)
            .map(|d| u64::try_from(d.size).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn desc(media_type: &str, size: i64) -> Value {
        json!({"mediaType": media_type, "digest": DIGEST, "size": size})
    }

    fn manifest(config: Value, layers: Vec<Value>) -> OciImageManifest {
        serde_json::from_value(json!({
            "schemaVersion": 2,
            "mediaType": super::super::OCI_MANIFEST,
            "config": config,
            "layers": layers,
        }))
        .unwrap()
    }

    fn message(e: ImageError) -> String {
        e.to_string()
    }

    #[test]
    fn layers_are_picked_by_media_type_not_position() {
        let m = manifest(
            desc(CONFIG_MEDIA_TYPE, 10),
            vec![
                desc("application/x-unknown", 1),
                desc(WASM_LAYER, 2),
                desc(EBPF_LAYER, 3),
            ],
        );
        let l = gadget_layers(&m, "img", &Limits::default()).unwrap();
        assert_eq!(l.ebpf.size, 3);
        assert_eq!(l.wasm.map(|w| w.size), Some(2));
        assert!(l.btfgen.is_none());
        assert_eq!(l.unknown.len(), 1);
        assert_eq!(l.unknown[0].media_type, "application/x-unknown");
        assert_eq!(all_blobs(&m).count(), 4, "config and every layer");
    }

    #[test]
    fn what_is_not_a_gadget_image_is_refused_with_the_reason() {
        let limits = Limits::default();
        let container = manifest(
            desc("application/vnd.oci.image.config.v1+json", 10),
            vec![desc(EBPF_LAYER, 3)],
        );
        let e = message(gadget_layers(&container, "img", &limits).unwrap_err());
        assert!(e.contains("not a gadget image"), "{e}");

        let no_ebpf = manifest(desc(CONFIG_MEDIA_TYPE, 10), vec![desc(WASM_LAYER, 2)]);
        let e = message(gadget_layers(&no_ebpf, "img", &limits).unwrap_err());
        assert!(e.contains("no layer of media type"), "{e}");

        let two_wasm = manifest(
            desc(CONFIG_MEDIA_TYPE, 10),
            vec![
                desc(EBPF_LAYER, 3),
                desc(WASM_LAYER, 2),
                desc(WASM_LAYER, 2),
            ],
        );
        let e = message(gadget_layers(&two_wasm, "img", &limits).unwrap_err());
        assert!(e.contains("2 layers of media type"), "{e}");
    }

    #[test]
    fn sizes_and_digests_are_checked_before_any_download() {
        let limits = Limits {
            layer_bytes: 100,
            ..Limits::default()
        };
        let big = manifest(desc(CONFIG_MEDIA_TYPE, 10), vec![desc(EBPF_LAYER, 101)]);
        match gadget_layers(&big, "img", &limits).unwrap_err() {
            ImageError::TooLarge {
                size,
                limit,
                setting,
                ..
            } => assert_eq!((size, limit, setting), (101, 100, "limits.layer-bytes")),
            e => panic!("{e}"),
        }
        let exact = manifest(desc(CONFIG_MEDIA_TYPE, 10), vec![desc(EBPF_LAYER, 100)]);
        assert!(gadget_layers(&exact, "img", &limits).is_ok());

        let negative = manifest(desc(CONFIG_MEDIA_TYPE, -1), vec![desc(EBPF_LAYER, 1)]);
        let e = message(gadget_layers(&negative, "img", &limits).unwrap_err());
        assert!(e.contains("negative size"), "{e}");

        let mut md5 = desc(EBPF_LAYER, 1);
        md5["digest"] = json!("md5:0123");
        let other = manifest(desc(CONFIG_MEDIA_TYPE, 1), vec![md5]);
        let e = message(gadget_layers(&other, "img", &limits).unwrap_err());
        assert!(e.contains("only sha256"), "{e}");
    }

    fn index(platforms: &[Option<(&str, &str)>]) -> OciImageIndex {
        let manifests: Vec<Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut e = json!({
                    "mediaType": super::super::OCI_MANIFEST,
                    "digest": format!("sha256:{i:064x}"),
                    "size": 1,
                });
                if let Some((os, arch)) = p {
                    e["platform"] = json!({"os": os, "architecture": arch});
                }
                e
            })
            .collect();
        serde_json::from_value(json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
        .unwrap()
    }

    #[test]
    fn the_index_entry_for_this_host_is_chosen() {
        let arch = super::super::host_architecture();
        let other = if arch == "amd64" { "arm64" } else { "amd64" };
        let i = index(&[Some(("linux", other)), Some(("linux", arch))]);
        assert_eq!(
            select_platform(&i, "img").unwrap().digest,
            format!("sha256:{:064x}", 1)
        );
        // One entry without a platform is platform-neutral; two are ambiguous.
        assert!(select_platform(&index(&[None]), "img").is_ok());
        let e = message(select_platform(&index(&[None, None]), "img").unwrap_err());
        assert!(e.contains("(no platform), (no platform)"), "{e}");
        let e = message(select_platform(&index(&[Some(("linux", other))]), "img").unwrap_err());
        assert!(
            e.contains(&format!("no manifest for linux/{arch}")) && e.contains(other),
            "{e}"
        );
        assert!(is_index(OCI_INDEX) && is_index(DOCKER_MANIFEST_LIST));
        assert!(!is_index(super::super::OCI_MANIFEST));
    }
}
