//! `gadget image import` of crafted archives (issue 11, finding 8): only blobs reachable from
//! the archive's index.json are stored, and every descriptor's size must match its blob (a
//! lying size was stored and shown by `image list`). Plus what already held: links, special
//! files and path tricks are refused. Runs under an address-space cap (`prlimit --as`; import
//! never starts wasmtime).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use crate::common::*;
use gadget_image::sha256_digest;
use serde_json::Value;

const AS_CAP: &str = "1073741824";

fn gadget(store: &Path, args: &[&str]) -> Output {
    gadget_capped(AS_CAP, store, args, &[])
}

/// The members of an exported archive, by path.
fn exported() -> BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let src = repo_root().join("gadgets/profile_blockio");
    ok(&gadget(
        &store,
        &[
            "image",
            "build",
            src.to_str().unwrap(),
            "-t",
            "local.test/a:v1",
        ],
    ));
    let tar = dir.path().join("a.tar");
    ok(&gadget(
        &store,
        &["image", "export", "local.test/a:v1", tar.to_str().unwrap()],
    ));
    let mut members = BTreeMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
        members.insert(path, bytes);
    }
    members
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", &digest[7..])
}

fn json(members: &BTreeMap<String, Vec<u8>>, path: &str) -> Value {
    serde_json::from_slice(&members[path]).unwrap()
}

/// Stores `v` as a blob of the archive; returns (digest, size).
fn put(members: &mut BTreeMap<String, Vec<u8>>, v: &Value) -> (String, usize) {
    let bytes = serde_json::to_vec(v).unwrap();
    let d = sha256_digest(&bytes);
    let n = bytes.len();
    members.insert(blob_path(&d), bytes);
    (d, n)
}

/// Rewrites the image's manifest with `edit`, then its index and index.json to point at it.
fn with_manifest(
    members: &BTreeMap<String, Vec<u8>>,
    edit: impl Fn(&mut Value),
) -> BTreeMap<String, Vec<u8>> {
    let mut m = members.clone();
    let mut top = json(&m, "index.json");
    let index_digest = top["manifests"][0]["digest"].as_str().unwrap().to_string();
    let mut index = json(&m, &blob_path(&index_digest));
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = json(&m, &blob_path(&manifest_digest));
    edit(&mut manifest);
    let (d, n) = put(&mut m, &manifest);
    index["manifests"][0]["digest"] = d.into();
    index["manifests"][0]["size"] = n.into();
    let (d, n) = put(&mut m, &index);
    top["manifests"][0]["digest"] = d.into();
    top["manifests"][0]["size"] = n.into();
    m.insert("index.json".into(), serde_json::to_vec(&top).unwrap());
    m
}

fn write_archive(path: &Path, members: &BTreeMap<String, Vec<u8>>) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in members {
        b.append(
            &header(name, tar::EntryType::Regular, bytes.len()),
            &bytes[..],
        )
        .unwrap();
    }
    b.finish().unwrap();
}

/// A header with the name written raw (the tar crate refuses `..`, which a hostile archive has).
fn header(name: &str, kind: tar::EntryType, size: usize) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size as u64);
    h.set_mode(0o644);
    h.set_cksum();
    h
}

fn stored_blobs(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join("blobs/sha256"))
        .map(|d| {
            d.map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn only_reachable_blobs_are_imported_and_descriptor_sizes_are_verified() {
    let members = exported();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let archive = dir.path().join("x.tar");
    // The lies change the image's digest, which its signature then no longer covers: --trust
    // sets the signature check aside, so what refuses them is the layout's own checking.
    let import_as = |m: &BTreeMap<String, Vec<u8>>, trust: bool| {
        write_archive(&archive, m);
        let mut args = vec!["image", "import", archive.to_str().unwrap()];
        if trust {
            args.push("--trust");
        }
        gadget(&store, &args)
    };
    let import = |m: &BTreeMap<String, Vec<u8>>| import_as(m, true);

    // A lying size on the config (1 byte): refused, naming the blob; nothing stored.
    let lie = with_manifest(&members, |m| m["config"]["size"] = 1.into());
    let err = fails(&import(&lie));
    assert!(
        err.contains("where the descriptor says 1") && err.contains("gadget.config"),
        "{err}"
    );
    assert!(
        stored_blobs(&store).is_empty(),
        "{:?}",
        stored_blobs(&store)
    );
    assert_eq!(
        ok(&gadget(&store, &["image", "list", "-o", "json"])).trim(),
        "[]"
    );

    // A lying size on the eBPF layer (larger than the blob): refused too.
    let lie = with_manifest(&members, |m| {
        let n = m["layers"][0]["size"].as_u64().unwrap();
        m["layers"][0]["size"] = (n + 1).into();
    });
    let err = fails(&import(&lie));
    assert!(err.contains("where the descriptor says"), "{err}");
    assert!(stored_blobs(&store).is_empty());

    // index.json's own size for the image: refused.
    let mut lie = members.clone();
    let mut top = json(&lie, "index.json");
    let n = top["manifests"][0]["size"].as_u64().unwrap();
    top["manifests"][0]["size"] = (n - 1).into();
    lie.insert("index.json".into(), serde_json::to_vec(&top).unwrap());
    let err = fails(&import(&lie));
    assert!(err.contains("where the descriptor says"), "{err}");
    assert!(stored_blobs(&store).is_empty());

    // A blob nothing references rides along: the image imports, the stray blob stays out.
    let mut extra = members.clone();
    let stray = b"not part of any image".to_vec();
    let stray_digest = sha256_digest(&stray);
    extra.insert(blob_path(&stray_digest), stray);
    // Signed by this host's key (the build's), so imported without --trust, which would add
    // a signature of its own.
    ok(&import_as(&extra, false));
    let stored = stored_blobs(&store);
    assert!(!stored.contains(&stray_digest), "{stored:?}");
    let expected: Vec<String> = members
        .keys()
        .filter_map(|k| k.strip_prefix("blobs/sha256/"))
        .map(|h| format!("sha256:{h}"))
        .collect();
    assert_eq!(
        stored, expected,
        "exactly the blobs of the image and its signatures"
    );
    // SIZE in `image list` is the real size of the config and layers.
    let index_digest = json(&members, "index.json")["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let index = json(&members, &blob_path(&index_digest));
    let manifest = json(
        &members,
        &blob_path(index["manifests"][0]["digest"].as_str().unwrap()),
    );
    let real: usize = std::iter::once(&manifest["config"])
        .chain(manifest["layers"].as_array().unwrap())
        .map(|d| members[&blob_path(d["digest"].as_str().unwrap())].len())
        .sum();
    let listed: Value =
        serde_json::from_str(&ok(&gadget(&store, &["image", "list", "-o", "json"]))).unwrap();
    assert_eq!(listed[0]["size"].as_u64(), Some(real as u64), "{listed}");
}

#[test]
fn links_special_files_and_foreign_paths_are_refused() {
    let members = exported();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let archive = dir.path().join("x.tar");
    let index_digest = json(&members, "index.json")["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let cases: Vec<(&str, tar::EntryType, String)> = vec![
        (
            "a symlink",
            tar::EntryType::Symlink,
            blob_path(&index_digest),
        ),
        (
            "a hard link",
            tar::EntryType::Link,
            blob_path(&index_digest),
        ),
        ("a device", tar::EntryType::Char, blob_path(&index_digest)),
        ("a fifo", tar::EntryType::Fifo, "blobs/sha256/x".into()),
    ];
    for (what, kind, name) in cases {
        let mut b = tar::Builder::new(std::fs::File::create(&archive).unwrap());
        for (n, bytes) in &members {
            if *n != name {
                b.append(&header(n, tar::EntryType::Regular, bytes.len()), &bytes[..])
                    .unwrap();
            }
        }
        let mut h = header(&name, kind, 0);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            h.set_link_name("/etc/passwd").unwrap();
            h.set_cksum();
        }
        b.append(&h, std::io::empty()).unwrap();
        b.finish().unwrap();
        drop(b);
        let err = fails(&gadget(
            &store,
            &["image", "import", archive.to_str().unwrap()],
        ));
        assert!(err.contains("link or special file"), "{what}: {err}");
        assert!(stored_blobs(&store).is_empty(), "{what}");
    }
    // A blob named outside blobs/sha256/<hex> (a path trick): refused, nothing written.
    let mut m = members.clone();
    m.insert("blobs/sha256/../../escaped".into(), b"x".to_vec());
    write_archive(&archive, &m);
    let err = fails(&gadget(
        &store,
        &["image", "import", archive.to_str().unwrap()],
    ));
    assert!(err.contains("not named by a sha256 digest"), "{err}");
    assert!(!dir.path().join("escaped").exists() && !store.join("escaped").exists());
    assert!(stored_blobs(&store).is_empty());
}
