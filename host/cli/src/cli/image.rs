//! `gadget image …`, `gadget login` and `gadget logout`: thin verbs over [`gadget_image`].

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use gadget_image::layout::LocalImage;
use gadget_image::registry::{self, human};
use gadget_image::store::Entry;
use gadget_image::{
    ImageConfig, ImageRef, Store, archive, auth, build, reference::DEFAULT_PREFIX, signatures,
};
use gadget_signature::sign::SigningKey;

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub verb: ImageVerb,
    /// Output format.
    #[arg(short = 'o', long, global = true, default_value = "columns", value_parser = ["columns", "json"])]
    pub output: String,
}

#[derive(Debug, Subcommand)]
pub enum ImageVerb {
    /// Compile a gadget folder (program.bpf.c, gadget.yaml, guest/) into an image in the local store.
    Build {
        dir: PathBuf,
        /// The image's name, e.g. localhost:5000/gadget/mygadget:v1 (short names get the prefix).
        #[arg(short = 't', long)]
        tag: String,
        /// build.yaml to use (default: DIR/build.yaml when it exists).
        #[arg(short = 'f', long = "file")]
        build_file: Option<PathBuf>,
    },
    /// Upload an image from the local store to its registry.
    Push { reference: String },
    /// Download an image into the local store.
    Pull { reference: String },
    /// List the images in the local store.
    #[command(alias = "ls")]
    List,
    /// Show an image's manifest and gadget.yaml.
    Inspect { reference: String },
    /// Remove images from the local store.
    #[command(alias = "rm")]
    Remove {
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Give a stored image another name.
    Tag { source: String, target: String },
    /// Write an image and its signatures to an OCI layout tarball.
    Export { reference: String, file: PathBuf },
    /// Read images (and their signatures) from an OCI layout tarball; REFERENCE names one whose
    /// archive has only a tag. Each image must be signed by a trusted key (as for `run`),
    /// unless --trust or --verify-image=false.
    Import {
        file: PathBuf,
        reference: Option<String>,
        /// Vouch for the archive's images: import them whoever signed them, and sign them
        /// with this host's key so `run` accepts them (an explicit decision, logged).
        #[arg(long)]
        trust: bool,
    },
    /// Sign a stored image (cosign-compatible: the `.sig` tag and an OCI 1.1 referrer);
    /// `image push` carries the signature.
    Sign {
        reference: String,
        /// PEM private key (PKCS#8 or SEC1; cosign's encrypted files need COSIGN_PASSWORD).
        /// Default: this host's key (created on first use).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Verify a stored image's signature against the configured keys and say who signed it.
    Verify { reference: String },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// host[:port] of the registry.
    pub registry: String,
    #[arg(short = 'u', long)]
    pub username: String,
    /// Read the password from standard input (recommended: it stays out of shell history).
    #[arg(long)]
    pub password_stdin: bool,
    /// The password (visible to other users in the process list; prefer --password-stdin).
    #[arg(short = 'p', long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    pub registry: String,
}

pub async fn execute(args: ImageArgs, cfg: &ImageConfig) -> anyhow::Result<()> {
    let store = Store::open(&cfg.store)?;
    let json_out = args.output == "json";
    let parse = |s: &str| cfg.parse_ref(s);
    match args.verb {
        ImageVerb::Build {
            dir,
            tag,
            build_file,
        } => {
            let tag = parse(&tag)?;
            let entry = build::build(
                &store,
                &build::BuildOptions {
                    dir: &dir,
                    tag: &tag,
                    build_file: build_file.as_deref(),
                },
            )?;
            // Images built here are signed with this host's key, which this host trusts.
            let key = signatures::local_key(&cfg.verify.signing_key)?;
            signatures::sign_stored(&store, &tag, &entry, &key)?;
            report(json_out, "built", &entry);
        }
        ImageVerb::Push { reference } => {
            let r = parse(&reference)?;
            let digest = registry::push(cfg, &store, &r).await?;
            if json_out {
                println!("{}", json!({"pushed": r.to_string(), "digest": digest}));
            } else {
                println!("pushed {r}@{digest}");
            }
        }
        ImageVerb::Pull { reference } => {
            let r = parse(&reference)?;
            let entry = registry::pull(cfg, &store, &r).await?;
            report(json_out, "pulled", &entry);
        }
        ImageVerb::List => list(cfg, &store, json_out)?,
        ImageVerb::Inspect { reference } => {
            let r = parse(&reference)?;
            let entry = local(&store, &r, cfg)?;
            let image = LocalImage::load(&store, entry.clone(), &cfg.limits)?;
            let gadget_yaml = String::from_utf8_lossy(
                &store.read_blob(&image.manifest.config.digest, cfg.limits.config_bytes)?,
            )
            .into_owned();
            let gadget = describe_gadget(&gadget_runtime::GadgetBundle::from_image(
                &image,
                &store,
                &cfg.limits,
            )?);
            if json_out {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "reference": entry.name,
                        "digest": entry.digest,
                        "mediaType": entry.media_type,
                        "manifestDigest": image.manifest_digest,
                        "manifest": image.manifest,
                        "gadgetYaml": gadget_yaml,
                        "gadget": gadget,
                    }))?
                );
            } else {
                // Image contents are the publisher's text: escaped before the terminal sees them.
                println!("Reference: {}", gadget_model::printable(&entry.name));
                println!("Digest:    {}", entry.digest);
                println!("Manifest:  {}", image.manifest_digest);
                println!("{}", serde_json::to_string_pretty(&image.manifest)?);
                println!(
                    "gadget.yaml:\n{}",
                    gadget_model::printable_lines(&gadget_yaml)
                );
                print_gadget(&gadget);
            }
        }
        ImageVerb::Remove { references } => {
            let mut missing = Vec::new();
            for reference in references {
                let r = parse(&reference)?;
                let found = store.resolve(&r)?;
                let name = found
                    .as_ref()
                    .map(|e| e.name.clone())
                    .unwrap_or(r.to_string());
                if store.remove_ref(&name)? {
                    if let Some(e) = &found {
                        remove_orphan_signatures(&store, &e.digest)?;
                    }
                    if json_out {
                        println!("{}", json!({"removed": name}));
                    } else {
                        println!("removed {name}");
                    }
                } else {
                    missing.push(name);
                }
            }
            anyhow::ensure!(
                missing.is_empty(),
                "not in the local store: {} (see `gadget image list`)",
                missing.join(", ")
            );
        }
        ImageVerb::Tag { source, target } => {
            let (src, dst) = (parse(&source)?, parse(&target)?);
            anyhow::ensure!(
                dst.digest.is_none(),
                "the new name {target:?} must be a tag, not a digest"
            );
            let entry = local(&store, &src, cfg)?;
            store.set_ref(
                &dst.to_string(),
                oci_client::manifest::ImageIndexEntry {
                    media_type: entry.media_type,
                    digest: entry.digest,
                    size: entry.size as i64,
                    platform: None,
                    annotations: None,
                    artifact_type: None,
                },
            )?;
            let tagged = local(&store, &dst, cfg)?;
            report(json_out, "tagged", &tagged);
        }
        ImageVerb::Export { reference, file } => {
            let r = parse(&reference)?;
            archive::export(cfg, &store, &r, &file)?;
            if json_out {
                println!("{}", json!({"exported": r.to_string(), "file": file}));
            } else {
                println!("exported {r} to {}", file.display());
            }
        }
        ImageVerb::Import {
            file,
            reference,
            trust,
        } => {
            let name = reference.as_deref().map(parse).transpose()?;
            for e in archive::import_with(cfg, &store, &file, name.as_ref(), trust)? {
                if trust {
                    let key = signatures::local_key(&cfg.verify.signing_key)?;
                    let r = parse(&e.name)?;
                    signatures::sign_stored(&store, &r, &e, &key)?;
                    tracing::warn!(
                        "--trust: signed {}@{} with this host's key {}",
                        e.name,
                        e.digest,
                        cfg.verify.signing_key.display()
                    );
                }
                report(json_out, "imported", &e);
            }
        }
        ImageVerb::Sign { reference, key } => {
            let r = parse(&reference)?;
            let entry = local(&store, &r, cfg)?;
            let key = match key {
                None => signatures::local_key(&cfg.verify.signing_key)?,
                Some(path) => read_signing_key(&path)?,
            };
            let sig = signatures::sign_stored(&store, &r, &entry, &key)?;
            if json_out {
                println!(
                    "{}",
                    json!({"signed": entry.name, "digest": entry.digest, "tags": [sig.legacy_tag, sig.referrers_tag]})
                );
            } else {
                println!(
                    "signed {}@{} (tags {} and {})",
                    entry.name, entry.digest, sig.legacy_tag, sig.referrers_tag
                );
            }
        }
        ImageVerb::Verify { reference } => {
            let r = parse(&reference)?;
            let entry = local(&store, &r, cfg)?;
            let mut verify = cfg.verify.clone();
            verify.verify_image = true;
            let outcome = signatures::check_stored(&verify, &store, &r, &entry)?;
            for w in &outcome.warnings {
                eprintln!("warning: {w}");
            }
            let by = outcome.by.unwrap_or_default();
            if json_out {
                println!(
                    "{}",
                    json!({"verified": entry.name, "digest": entry.digest, "by": by})
                );
            } else {
                println!("verified {}@{}: {by}", entry.name, entry.digest);
            }
        }
    }
    Ok(())
}

/// Signature tags of `digest` go with the last image name that points at it.
fn remove_orphan_signatures(store: &Store, digest: &str) -> anyhow::Result<()> {
    let entries = store.entries()?;
    let still_named = entries
        .iter()
        .any(|e| e.digest == digest && !signatures::is_signature_name(&e.name));
    if still_named {
        return Ok(());
    }
    let tags = signatures::signature_tags(digest);
    for e in entries {
        let is_its_signature = tags
            .iter()
            .any(|t| e.name == format!("{}:{t}", gadget_image::store::repo_of(&e.name)));
        if is_its_signature {
            store.remove_ref(&e.name)?;
        }
    }
    Ok(())
}

/// A private key file: PEM, or cosign's encrypted format with `COSIGN_PASSWORD` (as cosign).
fn read_signing_key(path: &std::path::Path) -> anyhow::Result<SigningKey> {
    let text = gadget_image::config::read_text(path, "--key")?;
    if text.contains("ENCRYPTED SIGSTORE PRIVATE KEY")
        || text.contains("ENCRYPTED COSIGN PRIVATE KEY")
    {
        let password = std::env::var("COSIGN_PASSWORD").unwrap_or_default();
        return SigningKey::from_cosign_pem(&text, password.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    SigningKey::from_pem(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn local(store: &Store, r: &ImageRef, cfg: &ImageConfig) -> anyhow::Result<Entry> {
    Ok(store.resolve(r)?.ok_or_else(|| {
        gadget_image::ImageError::NotLocal(r.to_string(), cfg.store.display().to_string())
    })?)
}

fn report(json_out: bool, verb: &str, e: &Entry) {
    if json_out {
        println!("{}", json!({ verb: e.name, "digest": e.digest }));
    } else {
        println!("{verb} {}@{}", e.name, e.digest);
    }
}

/// IG's columns, plus SIZE: REPOSITORY TAG DIGEST SIZE CREATED.
fn list(cfg: &ImageConfig, store: &Store, json_out: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for e in store.entries()? {
        if signatures::is_signature_name(&e.name) {
            continue;
        }
        let r = ImageRef::parse(&e.name, &cfg.registry_prefix).ok();
        let (size, created) = match LocalImage::load(store, e.clone(), &cfg.limits) {
            Ok(img) => (
                img.size(),
                img.manifest
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(gadget_image::CREATED_ANNOTATION))
                    .cloned()
                    .unwrap_or_default(),
            ),
            Err(err) => {
                tracing::warn!("{}: {err}", e.name);
                (0, String::new())
            }
        };
        let repository = r.as_ref().map_or(e.name.clone(), |r| short_name(r, cfg));
        let tag = r.as_ref().and_then(|r| r.tag.clone()).unwrap_or_default();
        rows.push((
            repository,
            tag,
            e.digest.clone(),
            size,
            created,
            e.name.clone(),
        ));
    }
    if json_out {
        let v: Vec<_> = rows
            .iter()
            .map(|(repo, tag, digest, size, created, name)| {
                json!({"reference": name, "repository": repo, "tag": tag, "digest": digest, "size": size, "created": created})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(repo, tag, digest, size, created, _)| {
            vec![
                repo,
                tag,
                gadget_model::short_id(digest.strip_prefix("sha256:").unwrap_or(&digest))
                    .to_string(),
                human(size),
                created,
            ]
        })
        .collect();
    let header = ["REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED"];
    print!("{}", gadget_model::table::render(&header, &table));
    Ok(())
}

/// IG shows images under the default prefix by their short name.
fn short_name(r: &ImageRef, cfg: &ImageConfig) -> String {
    let full = r.name();
    for prefix in [cfg.registry_prefix.as_str(), DEFAULT_PREFIX] {
        if let Some(short) = full.strip_prefix(&format!("{}/", prefix.trim_end_matches('/')))
            && !short.contains('/')
        {
            return short.to_string();
        }
    }
    full
}

pub async fn login(args: LoginArgs, cfg: &ImageConfig) -> anyhow::Result<()> {
    let password = match (args.password, args.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().take(4096).read_to_string(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => anyhow::bail!("give the password with --password-stdin (or -p)"),
    };
    let c = auth::Credentials {
        username: args.username,
        password,
    };
    registry::check_login(cfg, &args.registry, &c).await?;
    auth::store(&cfg.auth_file, &args.registry, &c)?;
    println!(
        "login succeeded: credentials for {} saved in {}",
        args.registry,
        cfg.auth_file.display()
    );
    Ok(())
}

pub fn logout(args: LogoutArgs, cfg: &ImageConfig) -> anyhow::Result<()> {
    if auth::remove(&cfg.auth_file, &args.registry)? {
        println!("removed the credentials for {}", args.registry);
        Ok(())
    } else {
        anyhow::bail!(
            "no credentials for {} in {}",
            args.registry,
            cfg.auth_file.display()
        )
    }
}

/// What the host makes of an image's gadget, as IG would: name, datasources from the object
/// (fields, types, annotations), parameters from BTF and gadget.yaml, and warnings.
fn describe_gadget(bundle: &gadget_runtime::GadgetBundle) -> serde_json::Value {
    use gadget_model::params;
    use gadget_object::elf::ElfInfo;
    let elf = match ElfInfo::parse(&bundle.ebpf_object) {
        Ok(e) => e,
        Err(e) => return json!({ "name": bundle.metadata.name, "error": e.to_string() }),
    };
    let meta = bundle
        .metadata
        .with_object(&elf.datasources, &bundle.origin);
    let datasources: Vec<serde_json::Value> = meta
        .datasources
        .iter()
        .map(|(name, ds)| {
            let obj = elf.datasources.iter().find(|d| &d.name == name);
            json!({
                "name": name,
                "map": obj.map(|o| o.map.clone()),
                "keyType": obj.map(|o| o.key_type.clone()),
                "valueType": obj.map(|o| o.value_type.clone()),
                "annotations": ds.annotations,
                "fields": ds.fields.0.iter().map(|(f, m)| json!({
                    "name": f,
                    "cType": obj.and_then(|o| o.fields.iter().find(|x| &x.name == f)).map(|x| x.c_type.clone()),
                    "annotations": m.annotations,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let params = match params::declared_with_object(&meta, &elf) {
        Ok(decls) => decls
            .iter()
            .map(|d| {
                json!({
                    "key": d.key,
                    "global": d.global,
                    "type": d.type_name(),
                    "cType": d.btf.as_ref().map(|t| t.c_type.clone()),
                    "default": d.spec.default_value,
                    "description": d.spec.description,
                })
            })
            .collect(),
        Err(e) => vec![json!({ "error": e.to_string() })],
    };
    json!({
        "name": meta.name,
        "datasources": datasources,
        "params": params,
        "warnings": meta.warnings,
    })
}

/// Every string comes from the image: escaped before the terminal sees it.
fn print_gadget(g: &serde_json::Value) {
    let s = |v: &serde_json::Value| gadget_model::printable(v.as_str().unwrap_or("")).into_owned();
    println!("Gadget: {}", s(&g["name"]));
    if let Some(e) = g.get("error") {
        println!("  eBPF object: {}", s(e));
        return;
    }
    for ds in g["datasources"].as_array().into_iter().flatten() {
        println!(
            "Datasource {} (map {}, key {}, value {})",
            s(&ds["name"]),
            s(&ds["map"]),
            s(&ds["keyType"]),
            s(&ds["valueType"])
        );
        for (k, v) in ds["annotations"].as_object().into_iter().flatten() {
            println!("  {}: {}", gadget_model::printable(k), s(v));
        }
        for f in ds["fields"].as_array().into_iter().flatten() {
            println!("  field {} ({})", s(&f["name"]), s(&f["cType"]));
            for (k, v) in f["annotations"].as_object().into_iter().flatten() {
                println!("    {}: {}", gadget_model::printable(k), s(v));
            }
        }
    }
    for p in g["params"].as_array().into_iter().flatten() {
        if let Some(e) = p.get("error") {
            println!("Parameters: {}", s(e));
            continue;
        }
        println!(
            "Parameter --{} ({}, global {}, default {:?}): {}",
            s(&p["key"]),
            s(&p["type"]),
            s(&p["global"]),
            s(&p["default"]),
            s(&p["description"])
        );
    }
    for w in g["warnings"].as_array().into_iter().flatten() {
        println!("warning: {}", s(w));
    }
}
