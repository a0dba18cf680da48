//! Moving images between a registry and the local store, with `oci-client` doing the protocol
//! (blob upload sessions). What it lacks is written here: manifests are fetched with a size cap
//! (its own fetch buffers any size); a bearer token is fetched here too, capped at
//! `limits.token-bytes` and never sending credentials over plain HTTP to a realm that is neither
//! loopback nor listed as insecure (oci-client reads any size and sends them anywhere), then
//! handed to oci-client, which stores it without a request; every blob is streamed into the
//! store through [`super::store::BlobWriter`], which enforces the descriptor's size as it goes
//! and checks the digest before the blob exists; a whole pull has `limits.pull-timeout-seconds`.

use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest};
use oci_client::{Client, RegistryOperation};

use super::auth::{self, Credentials};
use super::layout::{self, gadget_layers, is_index};
use super::progress::Progress;
use super::signatures::{self, StoreSource};
use super::store::{Entry, Staging, Store};
use super::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, ImageConfig, ImageError, ImageRef, OCI_INDEX,
    OCI_MANIFEST, sha256_digest,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// One registry conversation for one repository.
pub struct Session<'a> {
    cfg: &'a ImageConfig,
    r: ImageRef,
    client: Client,
    http: reqwest::Client,
    scheme: &'static str,
    credentials: Option<Credentials>,
    bearer: Option<String>,
    progress: Progress,
}

impl<'a> Session<'a> {
    /// A session with the credentials configured for `r`'s registry (if any).
    pub async fn open(
        cfg: &'a ImageConfig,
        r: &ImageRef,
        op: RegistryOperation,
    ) -> Result<Session<'a>, ImageError> {
        let credentials = auth::lookup(&r.registry, &cfg.auth_file)?;
        Self::connect(cfg, r, op, credentials).await
    }

    async fn connect(
        cfg: &'a ImageConfig,
        r: &ImageRef,
        op: RegistryOperation,
        credentials: Option<Credentials>,
    ) -> Result<Session<'a>, ImageError> {
        install_crypto_provider();
        let insecure = r.is_insecure(&cfg.insecure_registries);
        let client = Client::new(ClientConfig {
            protocol: if insecure {
                ClientProtocol::HttpsExcept(vec![r.registry.clone()])
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            ..Default::default()
        });
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| registry_err(r, format!("creating the HTTP client: {e}")))?;
        let scheme = if insecure { "http" } else { "https" };
        let bearer = authenticate(cfg, r, &client, &http, scheme, credentials.as_ref(), op).await?;
        Ok(Session {
            cfg,
            r: r.clone(),
            client,
            http,
            scheme,
            credentials,
            bearer,
            progress: Progress::new(&cfg.progress),
        })
    }

    fn err(&self, message: impl Into<String>) -> ImageError {
        registry_err(&self.r, message.into())
    }

    /// A GET with the session's authentication (the registry's bearer token, else basic auth).
    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let req = self.http.get(url);
        match (&self.bearer, &self.credentials) {
            (Some(token), _) => req.bearer_auth(token),
            (None, Some(c)) => req.basic_auth(&c.username, Some(&c.password)),
            (None, None) => req,
        }
    }

    /// GET a manifest (or index) with a size cap; returns its bytes, verified digest and media type.
    async fn fetch_manifest(
        &self,
        reference: &str,
        expected: Option<(&str, u64)>,
    ) -> Result<(Vec<u8>, String, String), ImageError> {
        self.fetch_manifest_if_any(reference, expected, false)
            .await?
            .ok_or_else(|| self.err(format!("manifest {reference}: not found")))
    }

    /// As [`Self::fetch_manifest`]; with `missing_ok`, a 404 is `None` (a signature that is not there).
    async fn fetch_manifest_if_any(
        &self,
        reference: &str,
        expected: Option<(&str, u64)>,
        missing_ok: bool,
    ) -> Result<Option<(Vec<u8>, String, String)>, ImageError> {
        let url = format!(
            "{}://{}/v2/{}/manifests/{reference}",
            self.scheme, self.r.registry, self.r.repository
        );
        let req = self.get(&url).header(
            "Accept",
            [
                OCI_INDEX,
                OCI_MANIFEST,
                DOCKER_MANIFEST_LIST,
                DOCKER_MANIFEST,
            ]
            .join(", "),
        );
        let resp = req
            .send()
            .await
            .map_err(|e| self.err(format!("GET {url}: {}", gadget_model::error_chain(&e))))?;
        let status = resp.status();
        if missing_ok && status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.err(http_failure(status, &url, &self.r, resp).await));
        }
        let header_digest = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = resp
            .headers()
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .unwrap_or_default();
        let limit = self.cfg.limits.manifest_bytes;
        let origin = self.r.to_string();
        let too_large = |size| ImageError::TooLarge {
            what: format!("manifest {reference}"),
            origin: origin.clone(),
            size,
            limit,
            setting: "limits.manifest-bytes",
        };
        let body = read_capped(resp, limit, too_large, |e| {
            self.err(format!("reading {url}: {}", gadget_model::error_chain(&e)))
        })
        .await?;
        let digest = sha256_digest(&body);
        let mismatch = |expected: &str| ImageError::DigestMismatch {
            what: format!("manifest {reference}"),
            origin: origin.clone(),
            expected: expected.to_string(),
            actual: digest.clone(),
        };
        if let Some((d, size)) = expected {
            if d != digest {
                return Err(mismatch(d));
            }
            if size != body.len() as u64 {
                return Err(ImageError::SizeMismatch {
                    what: format!("manifest {reference}"),
                    origin,
                    expected: size,
                    actual: body.len() as u64,
                });
            }
        }
        if let Some(h) = header_digest
            && h != digest
        {
            return Err(mismatch(&h));
        }
        // The body's own mediaType is what the digest covers; the header is the fallback.
        let media_type = serde_json::from_slice::<oci_client::manifest::Versioned>(&body)
            .ok()
            .and_then(|v| v.media_type)
            .unwrap_or(content_type);
        Ok(Some((body, digest, media_type)))
    }

    /// OCI 1.1 referrers API (`GET /v2/<repo>/referrers/<digest>`), capped; `None` when the
    /// registry does not offer it (any failure: the referrers tag is the fallback).
    async fn referrers_api(&self, digest: &str) -> Option<Vec<u8>> {
        let url = format!(
            "{}://{}/v2/{}/referrers/{digest}",
            self.scheme, self.r.registry, self.r.repository
        );
        let resp = self
            .get(&url)
            .header("Accept", OCI_INDEX)
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let limit = self.cfg.limits.manifest_bytes;
        read_capped(
            resp,
            limit,
            |size| ImageError::TooLarge {
                what: format!("referrers of {digest}"),
                origin: self.r.to_string(),
                size,
                limit,
                setting: "limits.manifest-bytes",
            },
            |e| self.err(e.to_string()),
        )
        .await
        .ok()
    }

    /// Fetches a signature manifest (by tag or digest) and the blobs it names into staging;
    /// returns its index entry. Blobs are capped at `limits.manifest-bytes` each.
    async fn fetch_signature_manifest(
        &mut self,
        store: &Store,
        staging: &mut Staging,
        reference: &str,
        expected: Option<(&str, u64)>,
    ) -> Result<Option<ImageIndexEntry>, ImageError> {
        let Some((bytes, digest, media_type)) = self
            .fetch_manifest_if_any(reference, expected, true)
            .await?
        else {
            return Ok(None);
        };
        if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
            return Err(ImageError::invalid(
                format!("signature {reference}"),
                format!(
                    "the registry returned a signature manifest of media type {media_type:?}; expected {OCI_MANIFEST:?} or {DOCKER_MANIFEST:?}"
                ),
            ));
        }
        let manifest: OciImageManifest = serde_json::from_slice(&bytes).map_err(|e| {
            ImageError::invalid(
                format!("signature {reference}"),
                format!("not a manifest: {e}"),
            )
        })?;
        let cap = self.cfg.limits.manifest_bytes;
        for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
            if u64::try_from(d.size).unwrap_or(u64::MAX) > cap {
                return Err(ImageError::TooLarge {
                    what: format!("signature blob {}", d.digest),
                    origin: self.r.to_string(),
                    size: u64::try_from(d.size).unwrap_or(u64::MAX),
                    limit: cap,
                    setting: "limits.manifest-bytes",
                });
            }
            self.fetch_blob(store, staging, d).await?;
        }
        staging.put_blob(&bytes)?;
        // What the referrers API lists for it (OCI 1.1): the manifest's artifactType, else its
        // config's media type; a referrers tag rewritten by a tool may have lost it.
        let artifact_type = manifest
            .artifact_type
            .clone()
            .unwrap_or_else(|| manifest.config.media_type.clone());
        Ok(Some(ImageIndexEntry {
            media_type,
            digest,
            size: bytes.len() as i64,
            platform: None,
            annotations: None,
            artifact_type: Some(artifact_type),
        }))
    }

    /// IG's pull of signatures: the cosign `.sig` tag and the referrers (API, else the
    /// referrers tag) into staging, as tags to publish beside the image. Failing to get them
    /// is a warning, as in IG: verification then finds nothing and refuses.
    async fn fetch_signatures(
        &mut self,
        store: &Store,
        staging: &mut Staging,
        digest: &str,
    ) -> Vec<(String, ImageIndexEntry)> {
        let mut tags = Vec::new();
        let Ok(d) = gadget_signature::Digest::parse(digest) else {
            return tags;
        };
        let repo = self.r.name();
        let legacy = d.cosign_signature_tag();
        match self
            .fetch_signature_manifest(store, staging, &legacy, None)
            .await
        {
            Ok(Some(e)) => tags.push((format!("{repo}:{legacy}"), e)),
            Ok(None) => {}
            Err(e) => tracing::warn!("pulling the signature {repo}:{legacy}: {e}"),
        }
        let referrers_tag = d.referrers_tag();
        let listed = match self.referrers_api(digest).await {
            Some(b) => Some(b),
            None => match self.fetch_manifest_if_any(&referrers_tag, None, true).await {
                Ok(found) => found.map(|(b, _, _)| b),
                Err(e) => {
                    tracing::warn!("pulling the referrers {repo}:{referrers_tag}: {e}");
                    None
                }
            },
        };
        let Some(listed) = listed else {
            return tags;
        };
        let index: gadget_signature::source::Index = match serde_json::from_slice(&listed) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("the referrers of {repo}@{digest} are not an OCI index: {e}");
                return tags;
            }
        };
        let mut kept = Vec::new();
        for m in index
            .manifests
            .into_iter()
            .take(gadget_signature::cosign::MAX_SIGNATURES)
        {
            let fetched = self
                .fetch_signature_manifest(store, staging, &m.digest, Some((&m.digest, m.size)))
                .await;
            match fetched {
                Ok(Some(found)) => kept.push(gadget_signature::Descriptor {
                    artifact_type: m.artifact_type.clone().or(found.artifact_type),
                    ..m
                }),
                Ok(None) => {}
                Err(e) => tracing::warn!("pulling the referrer {repo}@{}: {e}", m.digest),
            }
        }
        if kept.is_empty() {
            return tags;
        }
        let local = gadget_signature::source::Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: kept,
            annotations: Default::default(),
        };
        let Ok(bytes) = serde_json::to_vec(&local) else {
            return tags;
        };
        match staging.put_blob(&bytes) {
            Ok(digest) => tags.push((
                format!("{repo}:{referrers_tag}"),
                ImageIndexEntry {
                    media_type: OCI_INDEX.into(),
                    digest,
                    size: bytes.len() as i64,
                    platform: None,
                    annotations: None,
                    artifact_type: None,
                },
            )),
            Err(e) => tracing::warn!("storing the referrers of {repo}@{digest}: {e}"),
        }
        tags
    }

    /// Streams one blob into the store (skipped when already there).
    async fn fetch_blob(
        &mut self,
        store: &Store,
        staging: &mut Staging,
        d: &OciDescriptor,
    ) -> Result<(), ImageError> {
        let size = u64::try_from(d.size).unwrap_or(u64::MAX);
        if store.has_blob(&d.digest, size) {
            return Ok(());
        }
        let origin = self.r.to_string();
        let resp = self
            .client
            .pull_blob_stream_partial(&self.r.to_oci(), d, 0, None)
            .await
            .map_err(|e| self.err(format!("blob {}: {}", d.digest, describe(&e, &self.r))))?;
        let mut stream = match resp {
            BlobResponse::Full(s) | BlobResponse::Partial(s) => s,
        };
        if let Some(len) = stream.content_length
            && len > size
        {
            return Err(ImageError::SizeMismatch {
                what: format!("blob {} ({})", d.digest, d.media_type),
                origin,
                expected: size,
                actual: len,
            });
        }
        let what = format!("blob {} ({})", d.digest, d.media_type);
        let mut w = staging.blob_writer(size, &what, &origin)?;
        let mut done = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.err(format!("reading {what}: {e}")))?;
            w.write(&chunk)?;
            done += chunk.len() as u64;
            self.progress.update("pulling", &d.digest, done, size);
        }
        w.commit(&d.digest, size)?;
        self.progress.done();
        Ok(())
    }
}

/// Asks the registry how to authenticate (`GET /v2/`). A Bearer challenge: the token comes
/// from its realm here, and oci-client is handed it (it keeps it for its own requests without
/// asking anything). Otherwise (no challenge, or Basic): credentials, if any, go to oci-client
/// as basic auth; without credentials oci-client is given nothing, so it never fetches a token
/// on its own.
async fn authenticate(
    cfg: &ImageConfig,
    r: &ImageRef,
    client: &Client,
    http: &reqwest::Client,
    scheme: &str,
    credentials: Option<&Credentials>,
    op: RegistryOperation,
) -> Result<Option<String>, ImageError> {
    let url = format!("{scheme}://{}/v2/", r.registry);
    let resp = http.get(&url).send().await.map_err(|e| {
        let hint = if r.is_insecure(&[]) {
            String::new()
        } else {
            format!(
                " — if {} speaks plain HTTP, list it with --insecure-registries",
                r.registry
            )
        };
        registry_err(
            r,
            format!("GET {url}: {}{hint}", gadget_model::error_chain(&e)),
        )
    })?;
    let challenge = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer_challenge);
    // The body of /v2/ is never read.
    drop(resp);
    let oci = r.to_oci();
    let Some(challenge) = challenge else {
        if credentials.is_some() {
            client
                .auth(&oci, &Credentials::to_registry_auth(credentials), op)
                .await
                .map_err(|e| registry_err(r, describe(&e, r)))?;
        }
        return Ok(None);
    };
    let token = fetch_token(cfg, r, http, &challenge, credentials, op).await?;
    client
        .auth(
            &oci,
            &oci_client::secrets::RegistryAuth::Bearer(token.clone()),
            op,
        )
        .await
        .map_err(|e| registry_err(r, describe(&e, r)))?;
    Ok(Some(token))
}

/// A reply's body, at most `limit` bytes: refused before reading when its length is announced
/// larger, and as soon as the bytes read pass the limit (a chunked reply announces nothing).
async fn read_capped(
    resp: reqwest::Response,
    limit: u64,
    too_large: impl Fn(u64) -> ImageError,
    read_err: impl Fn(reqwest::Error) -> ImageError,
) -> Result<Vec<u8>, ImageError> {
    if let Some(len) = resp.content_length()
        && len > limit
    {
        return Err(too_large(len));
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(&read_err)?;
        let total = body.len() as u64 + chunk.len() as u64;
        if total > limit {
            return Err(too_large(total));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The token of a Bearer challenge, from its realm: credentials only where
/// [`auth::check_realm`] allows, the reply capped at `limits.token-bytes`.
async fn fetch_token(
    cfg: &ImageConfig,
    r: &ImageRef,
    http: &reqwest::Client,
    challenge: &auth::BearerChallenge,
    credentials: Option<&Credentials>,
    op: RegistryOperation,
) -> Result<String, ImageError> {
    let realm = auth::check_realm(
        &challenge.realm,
        credentials.is_some(),
        &cfg.insecure_registries,
    )
    .map_err(|e| registry_err(r, e.to_string()))?;
    let scope = format!(
        "repository:{}:{}",
        r.repository,
        match op {
            RegistryOperation::Pull => "pull",
            RegistryOperation::Push => "pull,push",
        }
    );
    let mut req = http.get(realm.clone()).query(&[("scope", scope.as_str())]);
    if let Some(service) = &challenge.service {
        req = req.query(&[("service", service.as_str())]);
    }
    if let Some(c) = credentials {
        req = req.basic_auth(&c.username, Some(&c.password));
    }
    let what = format!("the token from {}", challenge.realm);
    let resp = req
        .send()
        .await
        .map_err(|e| registry_err(r, format!("{what}: {}", gadget_model::error_chain(&e))))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(registry_err(
            r,
            http_failure(status, &challenge.realm, r, resp).await,
        ));
    }
    let limit = cfg.limits.token_bytes;
    let too_large = |size| ImageError::TooLarge {
        what: what.clone(),
        origin: r.registry.clone(),
        size,
        limit,
        setting: "limits.token-bytes",
    };
    let body = read_capped(resp, limit, too_large, |e| {
        registry_err(
            r,
            format!("reading {what}: {}", gadget_model::error_chain(&e)),
        )
    })
    .await?;
    #[derive(serde::Deserialize)]
    struct TokenReply {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
    }
    let reply: TokenReply = serde_json::from_slice(&body)
        .map_err(|e| registry_err(r, format!("{what} is not a token reply (JSON): {e}")))?;
    reply
        .token
        .or(reply.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| registry_err(r, format!("{what}: the reply holds no token")))
}

/// Pulls `r` into the store; the reference becomes visible only once every blob is verified.
/// The whole pull has `limits.pull-timeout-seconds`: a registry that trickles cannot hold it
/// (or a daemon request waiting on it) forever; past it the store is as it was.
///
/// As IG's `image pull`, this stores the image and its signatures without judging them; `run`
/// (through [`crate::ensure`]) pulls with [`pull_verified`].
pub async fn pull(cfg: &ImageConfig, store: &Store, r: &ImageRef) -> Result<Entry, ImageError> {
    pull_with(cfg, store, r, false).await
}

/// [`pull`], refusing (before anything is stored) an image IG's policy would not run:
/// `allowed-gadgets`, and with `verify-image` a trusted signature among the pulled ones.
pub async fn pull_verified(
    cfg: &ImageConfig,
    store: &Store,
    r: &ImageRef,
) -> Result<Entry, ImageError> {
    pull_with(cfg, store, r, true).await
}

async fn pull_with(
    cfg: &ImageConfig,
    store: &Store,
    r: &ImageRef,
    verify: bool,
) -> Result<Entry, ImageError> {
    let limit = Duration::from_secs(cfg.limits.pull_timeout_seconds);
    match tokio::time::timeout(limit, pull_within(cfg, store, r, verify)).await {
        Ok(result) => result,
        Err(_) => Err(registry_err(
            r,
            format!(
                "pulling {r} did not finish within {} s (limits.pull-timeout-seconds in the config file); nothing was stored",
                limit.as_secs()
            ),
        )),
    }
}

async fn pull_within(
    cfg: &ImageConfig,
    store: &Store,
    r: &ImageRef,
    verify: bool,
) -> Result<Entry, ImageError> {
    let mut s = Session::open(cfg, r, RegistryOperation::Pull).await?;
    let origin = r.to_string();
    let top_ref = r
        .digest
        .clone()
        .or_else(|| r.tag.clone())
        .unwrap_or_default();
    let (top_bytes, top_digest, top_type) = s.fetch_manifest(&top_ref, None).await?;
    if let Some(d) = &r.digest
        && *d != top_digest
    {
        return Err(ImageError::DigestMismatch {
            what: "manifest".into(),
            origin,
            expected: d.clone(),
            actual: top_digest,
        });
    }
    let mut staging = store.staging()?;
    let signatures = s.fetch_signatures(store, &mut staging, &top_digest).await;
    // Verified before anything is published: a refused image leaves the store as it was.
    if verify {
        let pending = signatures
            .iter()
            .filter_map(|(name, e)| {
                let tag = name.rsplit_once(':')?.1.to_string();
                Some((tag, (e.digest.clone(), e.media_type.clone())))
            })
            .collect();
        let source = StoreSource::staged(store, &staging, &r.name(), pending);
        let outcome = signatures::check(&cfg.verify, &source, &origin, r, &top_digest)?;
        for w in &outcome.warnings {
            tracing::warn!("{w}");
        }
    }
    // Of an index, only this platform's manifest (and its blobs) is fetched and stored.
    let mut platform_manifest = None;
    let manifest_bytes = if is_index(&top_type) {
        let index: OciImageIndex = serde_json::from_slice(&top_bytes).map_err(|e| {
            ImageError::invalid(&origin, format!("the image index is not valid: {e}"))
        })?;
        let entry = layout::select_platform(&index, &origin)?;
        let size = layout::check_size(
            &entry_descriptor(entry),
            "the platform manifest",
            &origin,
            cfg.limits.manifest_bytes,
            "limits.manifest-bytes",
        )?;
        let (bytes, _, media_type) = s
            .fetch_manifest(&entry.digest, Some((&entry.digest, size)))
            .await?;
        if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
            return Err(wrong_type(&origin, &media_type));
        }
        platform_manifest = Some(bytes.clone());
        bytes
    } else if top_type == OCI_MANIFEST || top_type == DOCKER_MANIFEST {
        top_bytes.clone()
    } else {
        return Err(wrong_type(&origin, &top_type));
    };
    let manifest: OciImageManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| ImageError::invalid(&origin, format!("the manifest is not valid: {e}")))?;
    gadget_layers(&manifest, &origin, &cfg.limits)?;
    for d in layout::all_blobs(&manifest) {
        s.fetch_blob(store, &mut staging, d).await?;
    }
    if let Some(bytes) = &platform_manifest {
        staging.put_blob(bytes)?;
    }
    staging.put_blob(&top_bytes)?;
    let mut refs = vec![(
        origin.clone(),
        ImageIndexEntry {
            media_type: top_type.clone(),
            digest: top_digest.clone(),
            size: top_bytes.len() as i64,
            platform: None,
            annotations: None,
            artifact_type: None,
        },
    )];
    refs.extend(signatures);
    store.publish(staging, refs)?;
    store
        .resolve(r)?
        .ok_or_else(|| ImageError::invalid(origin, "pulled, but the store did not list it"))
}

/// Pushes a stored image: blobs the registry lacks, then manifests, then the tag.
pub async fn push(cfg: &ImageConfig, store: &Store, r: &ImageRef) -> Result<String, ImageError> {
    let entry = store
        .resolve(r)?
        .ok_or_else(|| ImageError::NotLocal(r.to_string(), store.root().display().to_string()))?;
    let mut s = Session::open(cfg, r, RegistryOperation::Push).await?;
    let oci = r.to_oci();
    let manifests =
        index_manifests(store, &entry.digest, &entry.media_type, cfg)?.unwrap_or_default();
    let leaves = if manifests.is_empty() {
        vec![(entry.digest.clone(), entry.media_type.clone())]
    } else {
        manifests.clone()
    };
    for (digest, media_type) in &leaves {
        if !store.blob_path(digest)?.exists() {
            return Err(s.err(format!(
                "{r} is a multi-platform image of which only this machine's platform was pulled; manifest {digest} is not stored, so it cannot be pushed as a whole"
            )));
        }
        let m: OciImageManifest = store.read_json(digest, cfg.limits.manifest_bytes)?;
        for d in std::iter::once(&m.config).chain(&m.layers) {
            let exists = s
                .client
                .blob_exists(&oci, &d.digest)
                .await
                .map_err(|e| s.err(describe(&e, r)))?;
            if exists {
                continue;
            }
            let bytes = store.read_blob(
                &d.digest,
                cfg.limits.layer_bytes.max(cfg.limits.config_bytes),
            )?;
            s.progress
                .update("pushing", &d.digest, 0, bytes.len() as u64);
            s.client
                .push_blob(&oci, bytes, &d.digest)
                .await
                .map_err(|e| s.err(format!("pushing blob {}: {}", d.digest, describe(&e, r))))?;
            s.progress
                .update("pushing", &d.digest, d.size as u64, d.size as u64);
            s.progress.done();
        }
        if !manifests.is_empty() {
            let bytes = store.read_blob(digest, cfg.limits.manifest_bytes)?;
            push_manifest(&s, &r.with_digest(digest), bytes, media_type).await?;
        }
    }
    let top = store.read_blob(&entry.digest, cfg.limits.manifest_bytes)?;
    push_manifest(&s, r, top, &entry.media_type).await?;
    push_signatures(cfg, store, &mut s, r, &entry.digest).await?;
    Ok(entry.digest)
}

/// Pushes the signature tags stored beside an image (cosign `.sig`, the referrers index and
/// each referrer with its blobs), so `image push` carries what `image sign` made.
async fn push_signatures(
    cfg: &ImageConfig,
    store: &Store,
    s: &mut Session<'_>,
    r: &ImageRef,
    digest: &str,
) -> Result<(), ImageError> {
    let repo = r.name();
    let entries = store.entries()?;
    for tag in signatures::signature_tags(digest) {
        let Some(e) = signatures::find_tag(&entries, &repo, &tag) else {
            continue;
        };
        let manifests = index_manifests(store, &e.digest, &e.media_type, cfg)?
            .unwrap_or_else(|| vec![(e.digest.clone(), e.media_type.clone())]);
        for (digest, media_type) in &manifests {
            let m: OciImageManifest = store.read_json(digest, cfg.limits.manifest_bytes)?;
            for d in std::iter::once(&m.config).chain(&m.layers) {
                let bytes = store.read_blob(&d.digest, cfg.limits.manifest_bytes)?;
                s.client
                    .push_blob(&r.to_oci(), bytes, &d.digest)
                    .await
                    .map_err(|e| {
                        s.err(format!(
                            "pushing signature blob {}: {}",
                            d.digest,
                            describe(&e, r)
                        ))
                    })?;
            }
            if is_index(&e.media_type) {
                let bytes = store.read_blob(digest, cfg.limits.manifest_bytes)?;
                push_manifest(s, &r.with_digest(digest), bytes, media_type).await?;
            }
        }
        let top = store.read_blob(&e.digest, cfg.limits.manifest_bytes)?;
        let at = ImageRef {
            tag: Some(tag.clone()),
            digest: None,
            ..r.clone()
        };
        push_manifest(s, &at, top, &e.media_type).await?;
    }
    Ok(())
}

async fn push_manifest(
    s: &Session<'_>,
    at: &ImageRef,
    bytes: Vec<u8>,
    media_type: &str,
) -> Result<(), ImageError> {
    let content_type = http::HeaderValue::from_str(media_type)
        .map_err(|_| s.err(format!("media type {media_type:?} is not a valid header")))?;
    s.client
        .push_manifest_raw(&at.to_oci(), bytes, content_type)
        .await
        .map_err(|e| s.err(format!("pushing manifest {at}: {}", describe(&e, at))))?;
    Ok(())
}

/// Checks credentials against a registry's `/v2/` endpoint (what `gadget login` does before
/// saving them).
pub async fn check_login(
    cfg: &ImageConfig,
    registry: &str,
    c: &Credentials,
) -> Result<(), ImageError> {
    // Any repository name: only the registry's authentication is exercised.
    let r = ImageRef::parse(&format!("{registry}/login-check"), "unused")?;
    let s = Session::connect(cfg, &r, RegistryOperation::Pull, Some(c.clone())).await?;
    let url = format!("{}://{registry}/v2/", s.scheme);
    let resp = s
        .get(&url)
        .send()
        .await
        .map_err(|e| s.err(format!("GET {url}: {}", gadget_model::error_chain(&e))))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        let status = resp.status();
        Err(s.err(http_failure(status, &url, &r, resp).await))
    }
}

fn entry_descriptor(e: &ImageIndexEntry) -> OciDescriptor {
    OciDescriptor {
        media_type: e.media_type.clone(),
        digest: e.digest.clone(),
        size: e.size,
        ..Default::default()
    }
}

fn wrong_type(origin: &str, media_type: &str) -> ImageError {
    ImageError::invalid(
        origin,
        format!(
            "the registry returned a manifest of media type {media_type:?}; expected {OCI_INDEX:?} or {OCI_MANIFEST:?}"
        ),
    )
}

fn registry_err(r: &ImageRef, message: String) -> ImageError {
    ImageError::Registry {
        registry: r.registry.clone(),
        message,
    }
}

/// A failed HTTP reply as one line a user can act on (the body is shortened and never echoed
/// raw: a hostile registry could put anything in it).
async fn http_failure(
    status: reqwest::StatusCode,
    url: &str,
    r: &ImageRef,
    resp: reqwest::Response,
) -> String {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk);
        if body.len() > 512 {
            break;
        }
    }
    let text: String = String::from_utf8_lossy(&body[..body.len().min(200)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let hint = match status.as_u16() {
        401 | 403 => format!(
            " — not authorized: log in with `gadget login {}` (or add it to ~/.docker/config.json)",
            r.registry
        ),
        404 => format!(" — {} does not exist in this registry", r),
        _ => String::new(),
    };
    format!("GET {url}: HTTP {status}{hint} ({})", text.trim())
}

/// oci-client's errors, with the hint a user needs for the common ones.
fn describe(e: &oci_client::errors::OciDistributionError, r: &ImageRef) -> String {
    use oci_client::errors::OciDistributionError as E;
    let base = gadget_model::error_chain(e);
    match e {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => format!(
            "{base} — check the credentials for {} (`gadget login {}`)",
            r.registry, r.registry
        ),
        E::RequestError(_) if !r.is_insecure(&[]) => format!(
            "{base} — if {} speaks plain HTTP, list it with --insecure-registries",
            r.registry
        ),
        _ => base,
    }
}

/// reqwest is built without a default TLS crypto provider (to avoid aws-lc's C build): use ring.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// (digest, media type) of each manifest a stored index names; `None` when `media_type` is not
/// an index.
fn index_manifests(
    store: &Store,
    digest: &str,
    media_type: &str,
    cfg: &ImageConfig,
) -> Result<Option<Vec<(String, String)>>, ImageError> {
    if !is_index(media_type) {
        return Ok(None);
    }
    let index: OciImageIndex = store.read_json(digest, cfg.limits.manifest_bytes)?;
    Ok(Some(
        index
            .manifests
            .into_iter()
            .map(|m| (m.digest, m.media_type))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn too_large(n: u64) -> ImageError {
        ImageError::invalid("reply", format!("too large: {n}"))
    }

    fn read_err(e: reqwest::Error) -> ImageError {
        ImageError::invalid("reply", e.to_string())
    }

    fn chunked(chunks: usize, size: usize) -> reqwest::Response {
        let stream = futures::stream::iter(
            (0..chunks).map(move |_| Ok::<_, std::io::Error>(vec![b'x'; size])),
        );
        reqwest::Response::from(http::Response::new(reqwest::Body::wrap_stream(stream)))
    }

    #[tokio::test]
    async fn replies_are_read_only_up_to_the_cap() {
        let announced = reqwest::Response::from(http::Response::new(vec![b'x'; 40]));
        assert_eq!(announced.content_length(), Some(40));
        let e = read_capped(announced, 10, too_large, read_err).await;
        assert_eq!(e.unwrap_err().to_string(), too_large(40).to_string());
        // No length announced: refused at the first chunk past the cap, not after the whole body.
        let e = read_capped(chunked(10, 4), 10, too_large, read_err).await;
        assert_eq!(e.unwrap_err().to_string(), too_large(12).to_string());
        let body = read_capped(chunked(5, 2), 10, too_large, read_err).await;
        assert_eq!(body.unwrap(), vec![b'x'; 10], "exactly the cap is accepted");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 << 20), "5.0 MiB");
    }

    #[test]
    fn registry_errors_say_what_to_do() {
        use oci_client::errors::OciDistributionError as E;
        let r = ImageRef::parse(
            "reg.example:5000/g/profile:v1",
            "ghcr.io/inspektor-gadget/gadget",
        )
        .unwrap();
        let auth = describe(&E::AuthenticationFailure("denied".into()), &r);
        assert!(auth.contains("denied"), "{auth}");
        assert!(auth.contains("gadget login reg.example:5000"), "{auth}");
        let other = describe(&E::ImageManifestNotFoundError("gone".into()), &r);
        assert!(!other.contains("gadget login"), "{other}");
        let e = wrong_type("img", "text/html").to_string();
        assert!(
            e.contains("\"text/html\"") && e.contains(OCI_MANIFEST),
            "{e}"
        );
    }
}
