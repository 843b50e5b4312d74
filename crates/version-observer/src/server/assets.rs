//! The site's bundle ([`Bundle`], whose docs tell the whole story):
//! content-hashed file names, caching headers that fit them, and, in
//! cluster mode, the cluster's asset store.

use async_nats::jetstream::{
    self,
    object_store::{self, GetErrorKind, InfoErrorKind, ObjectMetadata, ObjectStore},
};
use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::StreamExt;
use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};
use tokio::{
    io::AsyncReadExt,
    sync::{watch, Semaphore},
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use version_observer_core::{
    assets::{
        bundle_files, index_object_name, is_hashed_name, is_safe_name, parse_hash_file, prune_plan,
        AssetIndex, HashFileError, INDEX_PREFIX,
    },
    protocol::Names,
    status::ClusterStatus,
    timing::assets::{FETCH_TIMEOUT, PUBLISH_TIMEOUT, RETRY_FIRST, RETRY_JITTER, RETRY_MAX},
    Version,
};

/// `Cache-Control` of a content-hashed file: its bytes never change.
pub(crate) const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of everything else: browsers revalidate.
pub(crate) const REVALIDATE: &str = "no-cache";
/// The largest object fetched from the store.
pub(crate) const MAX_OBJECT: usize = 32 * 1024 * 1024;
/// The memory cache of fetched objects, at most.
pub(crate) const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Store lookups in flight at once; beyond them, `503`.
const MAX_FETCHES: usize = 8;
/// The hash file's name (cargo-leptos' default).
pub(crate) const HASH_FILE: &str = "hash.txt";

/// The bundle files of a built site (wasm, JS, CSS), for a rolling deploy:
/// content-hashed file names, caching headers that fit them, and, in
/// cluster mode, the cluster's asset store, so that a page of one version
/// can load its own bundle from a node of another.
///
/// - This type: the bundle files of the site a node serves, found from
///   cargo-leptos' hash file (`hash-files = true`), or under plain names
///   ([`find`](Self::find)).
/// - Serving ([`VersionObserverRoutes::version_observer_asset_routes`](crate::VersionObserverRoutes::version_observer_asset_routes)),
///   `GET <pkg>/<name>`: a hashed name ([`is_hashed_name`]) is sent with
///   `Cache-Control: public, max-age=31536000, immutable` (its bytes can
///   never change), anything else with `no-cache` (browsers revalidate).
///   A plain bundle name (`version-observer.css`) is this node's own hashed
///   file, so markup that names it keeps working.
/// - In cluster mode ([`ObserverBuilder::bundle`](crate::ObserverBuilder::bundle)
///   and `nats`), each node puts its bundle into the object store bucket
///   [`Names::asset_bucket`] at start (each file under its hashed name,
///   skipped when already there, and an index object for its version;
///   start-up waits up to 10 s for it, so that this version's pages find
///   their bundle on every node at once), and prunes the versions beyond
///   the newest [`asset_versions`](crate::ObserverBuilder::asset_versions)
///   that no live node runs ([`prune_plan`]). Then it checks, once every
///   safety interval ([`Timings::safety_interval`](crate::Timings::safety_interval)),
///   that its version's index is still there, and puts its bundle back if
///   not (the bucket was lost with a NATS server's storage, deleted by
///   hand, or pruned by a node that did not yet know this version runs).
///   A hashed name the node does not have is fetched from the bucket, kept
///   in a bounded memory cache, and served; a name that is not in the
///   bucket is a `404`, a NATS failure a `503`. Request names are checked
///   before anything else ([`is_safe_name`]): never a path, and only hashed
///   names are ever looked up.
#[derive(Debug, Clone)]
pub struct Bundle {
    pkg_dir: PathBuf,
    url_path: String,
    output_name: String,
    /// `(ext, file name)`: hashed names, or plain ones.
    files: Vec<(String, String)>,
    hash_file: Option<PathBuf>,
}

/// Why a site's bundle cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The hash file cannot be read.
    #[error("cannot read the hash file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The hash file is not what cargo-leptos writes.
    #[error("the hash file {path} is not cargo-leptos' (`js: <hash>` lines): {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: HashFileError,
    },
    /// A file the hash file names is not in the site.
    #[error("the hash file {path} names {file}, which is not in {dir}: the site and the hash file are from different builds")]
    Missing {
        /// The hash file.
        path: PathBuf,
        /// The file it names.
        file: String,
        /// The folder it should be in.
        dir: PathBuf,
    },
}

impl Bundle {
    /// The bundle of the site in `site_root`, under `pkg_dir` (cargo-leptos'
    /// `site-pkg-dir`, e.g. `pkg`), named after `output_name`:
    ///
    /// 1. `<site_root>/hash.txt`, if present (copy cargo-leptos' hash file
    ///    there, and the site is self-contained, wherever it is deployed);
    /// 2. else the hash file next to this executable, where cargo-leptos
    ///    writes it (and where Leptos looks by default), if the files it
    ///    names are in this site;
    /// 3. else the plain names, `<output_name>.js` etc. (an unhashed
    ///    build; those present).
    ///
    /// A hash file in the site that is unreadable, malformed or names files
    /// the site does not have is an error.
    pub fn find(site_root: &Path, pkg_dir: &str, output_name: &str) -> Result<Self, BundleError> {
        let dir = site_root.join(pkg_dir);
        let plain = || Self {
            pkg_dir: dir.clone(),
            url_path: format!("/{}", pkg_dir.trim_matches('/')),
            output_name: output_name.to_owned(),
            files: ["js", "wasm", "css"]
                .into_iter()
                .map(|ext| (ext.to_owned(), format!("{output_name}.{ext}")))
                .filter(|(_, name)| dir.join(name).is_file())
                .collect(),
            hash_file: None,
        };
        let in_site = site_root.join(HASH_FILE);
        if in_site.is_file() {
            return plain().with_hash_file(in_site);
        }
        let beside_exe = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join(HASH_FILE)));
        if let Some(path) = beside_exe.filter(|p| p.is_file()) {
            if let Ok(bundle) = plain().with_hash_file(path) {
                return Ok(bundle);
            }
        }
        Ok(plain())
    }

    fn with_hash_file(mut self, path: PathBuf) -> Result<Self, BundleError> {
        let text = std::fs::read_to_string(&path).map_err(|source| BundleError::Read {
            path: path.clone(),
            source,
        })?;
        let hashes = parse_hash_file(&text).map_err(|source| BundleError::Parse {
            path: path.clone(),
            source,
        })?;
        let files = bundle_files(&self.output_name, &hashes);
        if let Some((_, file)) = files.iter().find(|(_, f)| !self.pkg_dir.join(f).is_file()) {
            return Err(BundleError::Missing {
                path,
                file: file.clone(),
                dir: self.pkg_dir.clone(),
            });
        }
        self.files = files;
        // Absolute, so that Leptos (which joins it to the executable's
        // folder) finds it wherever the node runs from.
        self.hash_file = Some(std::path::absolute(&path).unwrap_or(path));
        Ok(self)
    }

    /// The hash file the names come from (absolute), for
    /// `LeptosOptions::hash_file` with `hash_files(true)`; `None` for an
    /// unhashed build.
    pub fn hash_file(&self) -> Option<&Path> {
        self.hash_file.as_deref()
    }

    /// Whether the names carry content hashes.
    pub fn is_hashed(&self) -> bool {
        self.hash_file.is_some()
    }

    /// The file with this extension (`js`, `wasm`, `css`), if the bundle has one.
    pub fn file(&self, ext: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(e, _)| e == ext)
            .map(|(_, f)| f.as_str())
    }

    /// The URL path of the file with this extension, e.g.
    /// `/pkg/version-observer.<hash>.css` (for a `<link rel="stylesheet">`).
    pub fn href(&self, ext: &str) -> Option<String> {
        Some(format!("{}/{}", self.url_path, self.file(ext)?))
    }

    /// The bundle's file names.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|(_, f)| f.as_str())
    }

    /// The folder the files are in.
    pub fn dir(&self) -> &Path {
        &self.pkg_dir
    }

    /// The URL path the files are served under, e.g. `/pkg`.
    pub fn url_path(&self) -> &str {
        &self.url_path
    }

    /// The own file a plain bundle name stands for (`version-observer.css`
    /// is this build's CSS, whatever its hash).
    fn alias(&self, name: &str) -> Option<&str> {
        let ext = name.strip_prefix(&self.output_name)?.strip_prefix('.')?;
        self.file(ext)
    }
}

/// The asset side of an observer: its bundle and, in cluster mode, the store.
pub(crate) struct Assets {
    bundle: Bundle,
    store: Option<Store>,
}

impl Assets {
    pub(crate) fn single(bundle: Bundle) -> Self {
        Self {
            bundle,
            store: None,
        }
    }

    /// In cluster mode: `live` is the node's view of its cluster (the
    /// versions pruning spares), `check_every` how often the node makes
    /// sure its bundle is still in the store.
    pub(crate) fn cluster(
        bundle: Bundle,
        client: async_nats::Client,
        names: &Names,
        replicas: usize,
        keep_versions: usize,
        live: watch::Receiver<ClusterStatus>,
        check_every: Duration,
    ) -> Self {
        let store = Store {
            js: jetstream::new(client),
            bucket: names.asset_bucket(),
            replicas,
            keep_versions,
            live,
            check_every,
            opened: tokio::sync::Mutex::new(None),
            cache: Mutex::new(Cache::default()),
            fetches: Semaphore::new(MAX_FETCHES),
        };
        Self {
            bundle,
            store: Some(store),
        }
    }

    pub(crate) fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Puts this node's bundle into the store and prunes old versions,
    /// retrying (with backoff) until it has, or `stop`. Returns whether
    /// the node has a bundle to keep there.
    pub(crate) async fn publish_until_done(
        &self,
        version: &Version,
        stop: &CancellationToken,
    ) -> bool {
        let Some(store) = &self.store else {
            return false;
        };
        if !self.bundle.is_hashed() {
            tracing::info!("the bundle has no hashed names: nothing to put in the asset store");
            return false;
        }
        store
            .until_done(stop, || store.publish(&self.bundle, version))
            .await;
        true
    }

    /// After [`publish_until_done`](Self::publish_until_done): once every
    /// check interval, makes sure this version's index is still in the
    /// store, and puts the bundle back if it is not, until `stop`.
    pub(crate) async fn keep_in_store(&self, version: &Version, stop: &CancellationToken) {
        let Some(store) = &self.store else { return };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(store.check_every) => {}
            }
            store
                .until_done(stop, || store.restore(&self.bundle, version))
                .await;
        }
    }
}

struct Store {
    js: jetstream::Context,
    bucket: String,
    replicas: usize,
    keep_versions: usize,
    /// The node's view of its cluster: the versions live nodes run.
    live: watch::Receiver<ClusterStatus>,
    /// How often the node checks that its bundle is still in the store.
    check_every: Duration,
    opened: tokio::sync::Mutex<Option<ObjectStore>>,
    cache: Mutex<Cache>,
    fetches: Semaphore,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Store {
    /// Runs `step` until it succeeds (each attempt bounded, with backoff
    /// between them), or `stop`.
    async fn until_done<F, Fut>(&self, stop: &CancellationToken, step: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), BoxError>>,
    {
        let mut delay = RETRY_FIRST;
        loop {
            let attempt = tokio::time::timeout(PUBLISH_TIMEOUT, step());
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                r = attempt => r,
            };
            if !matches!(result, Ok(Ok(()))) {
                // The bucket itself may be gone: open (or create) it anew.
                *self.opened.lock().await = None;
            }
            match result {
                Ok(Ok(())) => return,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, bucket = %self.bucket, "cannot put the bundle into the asset store yet; retrying")
                }
                Err(_) => {
                    tracing::warn!(bucket = %self.bucket, "putting the bundle into the asset store timed out; retrying")
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay + RETRY_JITTER.mul_f64(fastrand::f64())) => {}
            }
            delay = (delay * 2).min(RETRY_MAX);
        }
    }

    /// The bucket, opened (or created) once.
    async fn open(&self) -> Result<ObjectStore, BoxError> {
        let mut opened = self.opened.lock().await;
        if let Some(store) = &*opened {
            return Ok(store.clone());
        }
        let store = match self.js.get_object_store(&self.bucket).await {
            Ok(store) => store,
            Err(_) => {
                self.js
                    .create_object_store(object_store::Config {
                        bucket: self.bucket.clone(),
                        description: Some(
                            "version-observer: every running version's bundle files".into(),
                        ),
                        num_replicas: self.replicas,
                        ..Default::default()
                    })
                    .await?
            }
        };
        *opened = Some(store.clone());
        Ok(store)
    }

    /// Puts the bundle back if this version's index is gone from the store
    /// (and opens the bucket anew, creating it if it was lost).
    async fn restore(&self, bundle: &Bundle, version: &Version) -> Result<(), BoxError> {
        let store = self.open().await?;
        match store
            .info(index_object_name(&version.to_string()).as_str())
            .await
        {
            Ok(info) if !info.deleted => Ok(()),
            Ok(_) => self.put_back(bundle, version).await,
            Err(e) if e.kind() == InfoErrorKind::NotFound => self.put_back(bundle, version).await,
            Err(e) => Err(e.into()),
        }
    }

    async fn put_back(&self, bundle: &Bundle, version: &Version) -> Result<(), BoxError> {
        tracing::warn!(bucket = %self.bucket, %version, "this version's bundle is gone from the asset store; putting it back");
        self.publish(bundle, version).await
    }

    /// Index first (so a pruning node sees this version's files as used),
    /// then the files that are not there yet, then pruning.
    async fn publish(&self, bundle: &Bundle, version: &Version) -> Result<(), BoxError> {
        let store = self.open().await?;
        let own = version.to_string();
        let index = AssetIndex {
            version: own.clone(),
            files: bundle.files().map(str::to_owned).collect(),
            at_ms: super::unix_ms(),
        };
        let json = serde_json::to_vec(&index)?;
        store
            .put(index_object_name(&own).as_str(), &mut json.as_slice())
            .await?;
        let mut added = 0;
        for file in bundle.files() {
            match store.info(file).await {
                Ok(info) if !info.deleted => continue,
                Ok(_) => {}
                Err(e) if e.kind() == InfoErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            let mut reader = tokio::fs::File::open(bundle.dir().join(file)).await?;
            store
                .put(
                    ObjectMetadata {
                        name: file.to_owned(),
                        metadata: HashMap::from([("vo-version".to_owned(), own.clone())]),
                        ..Default::default()
                    },
                    &mut reader,
                )
                .await?;
            added += 1;
        }
        let pruned = self.prune(&store, &own).await?;
        tracing::info!(bucket = %self.bucket, version = %own, added, pruned_versions = ?pruned,
            "bundle in the asset store");
        Ok(())
    }

    /// Deletes the versions beyond the newest `keep_versions`, and the
    /// files only they used; returns the versions deleted.
    async fn prune(&self, store: &ObjectStore, own: &str) -> Result<Vec<String>, BoxError> {
        let mut names = Vec::new();
        let mut list = store.list().await?;
        while let Some(info) = list.next().await {
            let info = info?;
            if info.name.starts_with(INDEX_PREFIX) {
                names.push(info.name);
            }
        }
        let mut indexes = Vec::new();
        for name in names {
            let mut object = match store.get(&name).await {
                Ok(object) => object,
                // Pruned by another node meanwhile.
                Err(e) if e.kind() == GetErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let mut bytes = Vec::new();
            (&mut object)
                .take(64 * 1024)
                .read_to_end(&mut bytes)
                .await?;
            match serde_json::from_slice::<AssetIndex>(&bytes) {
                Ok(index) if index_object_name(&index.version) == name => indexes.push(index),
                _ => tracing::warn!(object = %name, "ignoring an asset index that does not decode"),
            }
        }
        let live = self
            .live
            .borrow()
            .members
            .iter()
            .map(|m| m.version.to_string())
            .collect();
        let plan = prune_plan(&indexes, self.keep_versions, own, &live);
        // Index objects first: a version without its index is pruned, even
        // if deleting its files is cut short.
        for version in &plan.versions {
            delete(store, &index_object_name(version)).await?;
        }
        for file in &plan.files {
            delete(store, file).await?;
        }
        Ok(plan.versions)
    }

    /// An object's bytes: from the cache, or the bucket.
    async fn fetch(&self, name: &str) -> Result<Bytes, Fetch> {
        if let Some(bytes) = self.cache.lock().expect("not poisoned").get(name) {
            return Ok(bytes);
        }
        let _permit = self.fetches.try_acquire().map_err(|_| Fetch::Busy)?;
        let bytes = tokio::time::timeout(FETCH_TIMEOUT, self.fetch_from_bucket(name))
            .await
            .map_err(|_| Fetch::Unavailable("timed out".into()))??;
        self.cache
            .lock()
            .expect("not poisoned")
            .insert(name, bytes.clone());
        Ok(bytes)
    }

    async fn fetch_from_bucket(&self, name: &str) -> Result<Bytes, Fetch> {
        let store = self.open().await.map_err(Fetch::Unavailable)?;
        let mut object = match store.get(name).await {
            Ok(object) => object,
            Err(e) if e.kind() == GetErrorKind::NotFound => return Err(Fetch::NotFound),
            Err(e) => return Err(Fetch::Unavailable(e.into())),
        };
        if object.info().size > MAX_OBJECT {
            return Err(Fetch::TooLarge);
        }
        let mut bytes = Vec::with_capacity(object.info().size);
        (&mut object)
            .take(MAX_OBJECT as u64 + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| Fetch::Unavailable(e.into()))?;
        if bytes.len() > MAX_OBJECT {
            return Err(Fetch::TooLarge);
        }
        Ok(bytes.into())
    }
}

async fn delete(store: &ObjectStore, name: &str) -> Result<(), BoxError> {
    match store.delete(name).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Why an object could not be served.
enum Fetch {
    NotFound,
    TooLarge,
    Busy,
    Unavailable(BoxError),
}

/// Fetched objects, oldest evicted first, at most [`CACHE_BYTES`].
#[derive(Default)]
struct Cache {
    map: HashMap<String, Bytes>,
    order: VecDeque<String>,
    bytes: usize,
}

impl Cache {
    fn get(&self, name: &str) -> Option<Bytes> {
        self.map.get(name).cloned()
    }

    fn insert(&mut self, name: &str, bytes: Bytes) {
        if bytes.len() > CACHE_BYTES || self.map.contains_key(name) {
            return;
        }
        while self.bytes + bytes.len() > CACHE_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.map.remove(&old) {
                self.bytes -= b.len();
            }
        }
        self.bytes += bytes.len();
        self.order.push_back(name.to_owned());
        self.map.insert(name.to_owned(), bytes);
    }
}

impl Assets {
    /// The answer to `GET <pkg>/{name}` (the handler is
    /// `routes::bundle_file`): this build's file, or another version's
    /// hashed file from the cluster's store.
    pub(crate) async fn respond(&self, name: &str, request: Request) -> Response {
        if !is_safe_name(name) {
            return not_found();
        }
        let bundle = self.bundle();
        let local = bundle.alias(name).unwrap_or(name);
        let path = bundle.dir().join(local);
        if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
            let response = match tower_http::services::ServeFile::new(&path)
                .oneshot(request)
                .await
            {
                Ok(response) => response.map(Body::new),
                Err(never) => match never {},
            };
            // An alias stands for whatever this build is: revalidate.
            return with_cache_control(response, is_hashed_name(name));
        }
        let Some(store) = &self.store else {
            return not_found();
        };
        if !is_hashed_name(name) {
            return not_found();
        }
        match store.fetch(name).await {
            Ok(bytes) => with_cache_control(
                (
                    [(header::CONTENT_TYPE, content_type(name))],
                    Body::from(bytes),
                )
                    .into_response(),
                true,
            ),
            Err(Fetch::NotFound | Fetch::TooLarge) => not_found(),
            Err(Fetch::Busy) => unavailable(),
            Err(Fetch::Unavailable(e)) => {
                tracing::warn!(object = %name, error = %e, "cannot fetch an asset from the store");
                unavailable()
            }
        }
    }
}

fn with_cache_control(mut response: Response, immutable: bool) -> Response {
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if immutable { IMMUTABLE } else { REVALIDATE }),
        );
    }
    response
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("wasm") => "application/wasm",
        Some("js") => "text/javascript",
        Some("css") => "text/css",
        _ => "application/octet-stream",
    }
}

pub(crate) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, REVALIDATE)],
        "not found\n",
    )
        .into_response()
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, "2"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        "asset store unavailable, retry shortly\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_evicts_the_oldest_and_stays_bounded() {
        let mut cache = Cache::default();
        let big = Bytes::from(vec![0u8; CACHE_BYTES / 2]);
        cache.insert("a", big.clone());
        cache.insert("b", big.clone());
        assert_eq!(cache.bytes, CACHE_BYTES);
        cache.insert("c", Bytes::from_static(b"x"));
        assert!(cache.get("a").is_none(), "the oldest went");
        assert!(cache.get("b").is_some() && cache.get("c").is_some());
        assert!(cache.bytes <= CACHE_BYTES);
        cache.insert("huge", Bytes::from(vec![0u8; CACHE_BYTES + 1]));
        assert!(cache.get("huge").is_none());
    }

    #[test]
    fn a_site_without_a_hash_file_has_its_plain_names() {
        let dir = std::env::temp_dir().join(format!("vo-bundle-{:x}", fastrand::u64(..)));
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        std::fs::write(dir.join("pkg/app.css"), "body{}").unwrap();
        let bundle = Bundle::find(&dir, "pkg", "app").unwrap();
        assert!(!bundle.is_hashed());
        assert_eq!(bundle.files().collect::<Vec<_>>(), ["app.css"]);
        assert_eq!(bundle.href("css").as_deref(), Some("/pkg/app.css"));
        // With a hash file in the site, its names; the files must be there.
        let h = "AAAAAAAAAAAAAAAAAAAAAA";
        std::fs::write(
            dir.join(HASH_FILE),
            format!("js: {h}\nwasm: {h}\ncss: {h}\n"),
        )
        .unwrap();
        let missing = Bundle::find(&dir, "pkg", "app").unwrap_err();
        assert!(
            missing.to_string().contains(&format!("app.{h}.js")),
            "{missing}"
        );
        for ext in ["js", "wasm", "css"] {
            std::fs::write(dir.join(format!("pkg/app.{h}.{ext}")), ext).unwrap();
        }
        let bundle = Bundle::find(&dir, "pkg", "app").unwrap();
        assert!(bundle.is_hashed() && bundle.hash_file().unwrap().is_absolute());
        assert_eq!(bundle.href("css"), Some(format!("/pkg/app.{h}.css")));
        assert_eq!(
            bundle.alias("app.wasm"),
            Some(format!("app.{h}.wasm").as_str())
        );
        assert_eq!(bundle.alias("app.txt"), None);
        assert_eq!(bundle.alias("other.css"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
