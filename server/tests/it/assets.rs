//! The bundle in a rolling deploy: content-hashed names served immutable,
//! and, in a cluster, another version's bundle served from the cluster's
//! asset store (a real nats-server, real node processes), with untrusted
//! names refused before any lookup and old versions pruned.
//!
//! Each node serves a fake site of its own: `pkg/` with a JS, wasm and CSS
//! file under random hashes, and the `hash.txt` that names them (what
//! `scripts/lib.sh`'s `build_site` puts beside `pkg/`).

use crate::support::{
    cluster::{eventually, names, nats, node_with, NodeProcess},
    TestNode, DEADLINE,
};
use async_nats::jetstream::object_store::{GetErrorKind, ObjectStore};
use std::path::PathBuf;
use tokio::io::AsyncReadExt;

/// `Cache-Control` of a content-hashed file, as browsers must see it.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of any other name: browsers revalidate.
const REVALIDATE: &str = "no-cache";

/// A built site stand-in, removed on drop.
struct FakeSite {
    root: PathBuf,
    /// `(ext, hashed name, bytes)`.
    files: Vec<(&'static str, String, Vec<u8>)>,
}

fn random_hash() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..22)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

impl FakeSite {
    fn new(tag: &str) -> Self {
        Self::with_wasm_size(tag, 300_000)
    }

    fn with_wasm_size(tag: &str, wasm_size: usize) -> Self {
        let root = std::env::temp_dir().join(format!(
            "vo-assets-{tag}-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        let mut files = Vec::new();
        let mut hash_txt = String::new();
        for ext in ["js", "wasm", "css"] {
            let hash = random_hash();
            let name = format!("version-observer.{hash}.{ext}");
            // The wasm spans several of the store's 128 KiB chunks.
            let bytes: Vec<u8> = match ext {
                "wasm" => (0..wasm_size).map(|_| fastrand::u8(..)).collect(),
                _ => format!("/* {tag} {ext} {hash} */").into_bytes(),
            };
            std::fs::write(root.join("pkg").join(&name), &bytes).unwrap();
            hash_txt.push_str(&format!("{ext}: {hash}\n"));
            files.push((ext, name, bytes));
        }
        std::fs::write(root.join("hash.txt"), hash_txt).unwrap();
        Self { root, files }
    }

    fn arg(&self) -> String {
        self.root.display().to_string()
    }

    fn file(&self, ext: &str) -> (&str, &[u8]) {
        let (_, name, bytes) = self.files.iter().find(|(e, ..)| *e == ext).unwrap();
        (name, bytes)
    }
}

impl Drop for FakeSite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

async fn get(url: &str) -> reqwest::Response {
    tokio::time::timeout(DEADLINE, reqwest::get(url))
        .await
        .expect("an answer before the deadline")
        .unwrap()
}

fn cache_control(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_single_node_serves_its_hashed_bundle_immutable_and_names_it_in_the_page() {
    let site = FakeSite::new("single");
    let node =
        TestNode::start_with_site("127.0.0.1:0", &site.arg(), &["--app-version", "1.0.0"]).await;
    for ext in ["js", "wasm", "css"] {
        let (name, bytes) = site.file(ext);
        let response = get(&node.url(&format!("/pkg/{name}"))).await;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(cache_control(&response), IMMUTABLE, "{name}");
        assert_eq!(response.bytes().await.unwrap(), bytes, "{name}");
    }
    // The page's hydration scripts name the hashed files.
    let html = get(&node.url("/")).await.text().await.unwrap();
    for ext in ["js", "wasm"] {
        let (name, _) = site.file(ext);
        assert!(
            html.contains(&format!("/pkg/{name}")),
            "{name} not in {html}"
        );
    }
    // A plain name is this build's file, revalidated.
    let (_, css) = site.file("css");
    let plain = get(&node.url("/pkg/version-observer.css")).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(cache_control(&plain), REVALIDATE);
    assert_eq!(plain.bytes().await.unwrap(), css);
    // Without NATS there is no store: an unknown hash is a plain 404.
    let unknown = get(&node.url("/pkg/version-observer.AAAAAAAAAAAAAAAAAAAAAA.wasm")).await;
    assert_eq!(unknown.status(), 404);
    assert_ne!(cache_control(&unknown), IMMUTABLE);
    node.stop().await.unwrap();
}

/// The site `build_site` built (`target/site`, with `hash.txt`): its page
/// names the hashed files cargo-leptos wrote, and they are served.
#[tokio::test]
async fn the_built_site_is_served_under_its_hashed_names() {
    let site = vo_lab::node::repo_root().join("target/site");
    let hashes = std::fs::read_to_string(site.join("hash.txt"))
        .expect("a site built by scripts/lib.sh's build_site (hash-files = true)");
    let hashes = version_observer::core::assets::parse_hash_file(&hashes).unwrap();
    let node = TestNode::start_with_site("127.0.0.1:0", &site.display().to_string(), &[]).await;
    let html = get(&node.url("/")).await.text().await.unwrap();
    for ext in ["js", "wasm", "css"] {
        let name = format!("version-observer.{}.{ext}", hashes[ext]);
        assert!(
            html.contains(&format!("/pkg/{name}")),
            "{name} not in {html}"
        );
        let response = get(&node.url(&format!("/pkg/{name}"))).await;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(cache_control(&response), IMMUTABLE, "{name}");
        let on_disk = std::fs::read(site.join("pkg").join(&name)).unwrap();
        assert_eq!(response.bytes().await.unwrap(), on_disk, "{name}");
    }
    // The plain name still works, for links written by hand.
    let css = get(&node.url("/pkg/version-observer.css")).await;
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css");
    assert_eq!(cache_control(&css), REVALIDATE);
    node.stop().await.unwrap();
}

/// The cluster's asset store, opened from outside.
async fn asset_store(nats_url: &str) -> ObjectStore {
    let client = async_nats::connect(nats_url).await.unwrap();
    async_nats::jetstream::new(client)
        .get_object_store(names().asset_bucket())
        .await
        .expect("the asset bucket exists")
}

async fn object(store: &ObjectStore, name: &str) -> Option<Vec<u8>> {
    match store.get(name).await {
        Ok(mut object) => {
            let mut bytes = Vec::new();
            object.read_to_end(&mut bytes).await.unwrap();
            Some(bytes)
        }
        Err(e) if e.kind() == GetErrorKind::NotFound => None,
        Err(e) => panic!("{name}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_serves_another_versions_bundle_from_the_store_and_refuses_bad_names() {
    let mut nats = nats().await;
    // B's wasm is large (putting it takes a while), so A can only serve it
    // right after B starts if B waited for its bundle to be in the store.
    let (site_a, site_b) = (FakeSite::new("a"), FakeSite::with_wasm_size("b", 16 << 20));
    let a = node_with(
        &nats.url(),
        "assets-a",
        "1.0.0",
        &["--site-root", &site_a.arg()],
    )
    .await;
    let b = node_with(
        &nats.url(),
        "assets-b",
        "2.0.0",
        &["--site-root", &site_b.arg()],
    )
    .await;
    let (wasm, wasm_bytes) = site_a.file("wasm");
    assert!(!site_b.root.join("pkg").join(wasm).exists());
    // B has never had A's wasm, yet serves it at once: a node puts its
    // bundle into the store before it serves (start-up waits for it).
    let url = b.url(&format!("/pkg/{wasm}"));
    let response = get(&url).await;
    assert_eq!(response.status(), 200, "{}", b.logs());
    assert_eq!(cache_control(&response), IMMUTABLE);
    assert_eq!(response.headers()["content-type"], "application/wasm");
    assert_eq!(
        response.bytes().await.unwrap(),
        wasm_bytes,
        "byte-identical"
    );
    // And A's CSS and JS, and A serves B's wasm.
    let wanted = [
        (&b, site_a.file("js")),
        (&b, site_a.file("css")),
        (&a, site_b.file("wasm")),
    ];
    for (node, (name, bytes)) in wanted {
        let response = get(&node.url(&format!("/pkg/{name}"))).await;
        assert_eq!(response.status(), 200, "{name}: {}", node.logs());
        assert_eq!(response.bytes().await.unwrap(), bytes, "{name}");
    }

    // A hash no version has: a 404, never cached as immutable.
    let unknown = get(&b.url("/pkg/version-observer.ZZZZZZZZZZZZZZZZZZZZZZ.wasm")).await;
    assert_eq!(unknown.status(), 404);
    assert_ne!(cache_control(&unknown), IMMUTABLE);
    assert_eq!(unknown.text().await.unwrap(), "not found\n");

    // Untrusted names: with NATS gone, any lookup would be a 503, so a 404
    // (or 400) here shows none was made.
    nats.stop().await;
    let lookup = get(&b.url("/pkg/version-observer.YYYYYYYYYYYYYYYYYYYYYY.wasm")).await;
    assert_eq!(lookup.status(), 503, "a real lookup, with NATS down");
    // No internal details in the body.
    assert_eq!(
        lookup.text().await.unwrap(),
        "asset store unavailable, retry shortly\n"
    );
    let long = format!("/pkg/{}.AAAAAAAAAAAAAAAAAAAAAA.wasm", "a".repeat(200));
    let hostile = [
        "/pkg/..%2f..%2fCargo.toml".to_owned(),
        "/pkg/..%2fhash.txt".to_owned(),
        "/pkg/%2e%2e%2fhash.txt".to_owned(),
        "/pkg/.hidden".to_owned(),
        // Safe, but not hashed: never looked up either.
        "/pkg/not-hashed.wasm".to_owned(),
        "/pkg/version-observer.wasm.map".to_owned(),
        format!("/pkg/..%2fpkg%2f{wasm}"),
        "/pkg/version-observer.AAAAAAAAAAAAAAAAAAAAAA.wasm%00".to_owned(),
        "/pkg/index%2f1.0.0".to_owned(),
        long,
    ];
    for path in &hostile {
        let response = get(&b.url(path)).await;
        assert!(
            matches!(response.status().as_u16(), 400 | 404),
            "{path}: {}",
            response.status()
        );
    }
    // What B fetched before is still served from its cache.
    let cached = get(&url).await;
    assert_eq!(cached.status(), 200);
    assert_eq!(cached.bytes().await.unwrap(), wasm_bytes);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_keeps_only_the_newest_asset_versions() {
    let nats = nats().await;
    let sites = [
        FakeSite::new("v1"),
        FakeSite::new("v2"),
        FakeSite::new("v3"),
    ];
    let mut nodes = Vec::new();
    let mut store = None;
    for (i, site) in sites.iter().enumerate() {
        let version = format!("{}.0.0", i + 1);
        if i == 2 {
            // The rolling deploy has replaced 1.0.0 (a version a live node
            // runs is never pruned).
            let mut first: NodeProcess = nodes.remove(0);
            first.stop().await.unwrap();
        }
        let node = node_with(
            &nats.url(),
            &format!("keep-{}", i + 1),
            &version,
            &["--site-root", &site.arg(), "--asset-versions", "2"],
        )
        .await;
        nodes.push(node);
        // Wait until this version's files are in the store.
        let (wasm, bytes) = site.file("wasm");
        let found = eventually(
            &format!("{version}'s wasm in the store"),
            DEADLINE,
            async || {
                if store.is_none() {
                    let client = async_nats::connect(nats.url()).await.ok()?;
                    store = async_nats::jetstream::new(client)
                        .get_object_store(names().asset_bucket())
                        .await
                        .ok();
                }
                object(store.as_ref()?, wasm).await
            },
        )
        .await;
        assert_eq!(found, bytes);
    }
    let store = asset_store(&nats.url()).await;
    // The third start pruned the first version: its index and files are gone,
    // the two newest versions' are there.
    let v1_index = version_observer::core::assets::index_object_name("1.0.0");
    eventually("1.0.0 pruned", DEADLINE, async || {
        object(&store, &v1_index).await.is_none().then_some(())
    })
    .await;
    for ext in ["js", "wasm", "css"] {
        assert_eq!(
            object(&store, sites[0].file(ext).0).await,
            None,
            "1.0.0's {ext}"
        );
        for site in &sites[1..] {
            let (name, bytes) = site.file(ext);
            assert_eq!(object(&store, name).await.as_deref(), Some(bytes), "{name}");
        }
    }
    for version in ["2.0.0", "3.0.0"] {
        let index = version_observer::core::assets::index_object_name(version);
        assert!(object(&store, &index).await.is_some(), "{version}'s index");
    }
    // A node of 3.0.0 asked for 1.0.0's wasm: gone from the store, a 404.
    let gone = get(&nodes[1].url(&format!("/pkg/{}", sites[0].file("wasm").0))).await;
    assert_eq!(gone.status(), 404);
}

/// The README's node permissions let nodes use the asset store and forward
/// requests: under them, a node of one version serves another's bundle,
/// and a page's request reaching the other version's node is answered by
/// a node of its own.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_permissions_let_nodes_share_their_bundles() {
    use crate::nats_auth::{nats_with, permissions_config, with_userinfo};
    let nats = nats_with(permissions_config()).await;
    let url = with_userinfo(&nats.url(), "node:nodepass");
    let (site_a, site_b) = (FakeSite::new("perm-a"), FakeSite::new("perm-b"));
    let a = node_with(&url, "perm-a", "1.0.0", &["--site-root", &site_a.arg()]).await;
    let b = node_with(&url, "perm-b", "2.0.0", &["--site-root", &site_b.arg()]).await;
    for (from, to) in [(&site_a, &b), (&site_b, &a)] {
        let (wasm, bytes) = from.file("wasm");
        let url = to.url(&format!("/pkg/{wasm}"));
        let served = eventually(&format!("{} serves {wasm}", to.id), DEADLINE, async || {
            let response = reqwest::get(&url).await.ok()?;
            if response.status() != 200 {
                return None;
            }
            response.bytes().await.ok()
        })
        .await;
        assert_eq!(served, bytes);
    }
    // A 2.0.0 page's request on the 1.0.0 node: rendered by the 2.0.0 node.
    let page = eventually("a forwarded page request", DEADLINE, async || {
        let response = reqwest::Client::new()
            .get(a.url("/?forwarded"))
            .header("x-version-observer-page", "2.0.0")
            .send()
            .await
            .ok()?;
        let text = response.text().await.ok()?;
        text.contains("perm-b").then_some(text)
    })
    .await;
    assert!(page.contains(">2.0.0<"), "{page}");
    for node in [&a, &b] {
        // Pruning (after the files are in) ends with this line.
        eventually(
            &format!("{} to finish publishing", node.id),
            DEADLINE,
            async || {
                node.logs()
                    .contains("bundle in the asset store")
                    .then_some(())
            },
        )
        .await;
        let logs = node.logs();
        assert!(
            !logs.contains("Permissions Violation"),
            "{}: {logs}",
            node.id
        );
    }
}

/// `--asset-versions 0`: a cluster node without the asset store serves its
/// own bundle, creates no bucket, and 404s other versions' files.
#[tokio::test(flavor = "multi_thread")]
async fn asset_versions_zero_turns_the_store_off() {
    let nats = nats().await;
    let site = FakeSite::new("off");
    let node = node_with(
        &nats.url(),
        "off",
        "1.0.0",
        &["--site-root", &site.arg(), "--asset-versions", "0"],
    )
    .await;
    let (wasm, bytes) = site.file("wasm");
    let own = get(&node.url(&format!("/pkg/{wasm}"))).await;
    assert_eq!(cache_control(&own), IMMUTABLE);
    assert_eq!(own.bytes().await.unwrap(), bytes);
    let other = get(&node.url("/pkg/version-observer.QQQQQQQQQQQQQQQQQQQQQQ.wasm")).await;
    assert_eq!(other.status(), 404);
    let client = async_nats::connect(nats.url()).await.unwrap();
    let bucket = async_nats::jetstream::new(client)
        .get_object_store(names().asset_bucket())
        .await;
    assert!(bucket.is_err(), "no asset bucket");
}

/// How many times `node` has logged that its bundle is in the store, and
/// what its last such line says.
fn publications(node: &NodeProcess) -> (usize, String) {
    let logs = node.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("bundle in the asset store"))
        .collect();
    (
        lines.len(),
        lines.last().copied().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_versions_bundle_is_never_pruned_and_comes_back_if_the_store_loses_it() {
    let nats = nats().await;
    let sites = [FakeSite::new("live1"), FakeSite::new("live2")];
    let index = |v: &str| version_observer::core::assets::index_object_name(v);
    // Room for one version only, and two run: each node spares the other's.
    let start = async |i: usize| {
        node_with(
            &nats.url(),
            &format!("live-{}", i + 1),
            &format!("{}.0.0", i + 1),
            &["--site-root", &sites[i].arg(), "--asset-versions", "1"],
        )
        .await
    };
    let first = start(0).await;
    let second = start(1).await;
    eventually("each node knows the other", DEADLINE, async || {
        let members = second.cluster().await?["members"].as_array()?.len();
        (members == 2).then_some(())
    })
    .await;
    let store = asset_store(&nats.url()).await;
    // The second may have pruned the first at start, before it had heard of
    // it; the first puts its bundle back within a check interval.
    eventually("both versions in the store", DEADLINE, async || {
        let both = object(&store, &index("1.0.0")).await.is_some()
            && object(&store, &index("2.0.0")).await.is_some();
        both.then_some(())
    })
    .await;

    // Now the second version's index goes (deleted by hand): its node puts
    // its bundle back, and prunes again, knowing that 1.0.0 runs.
    let (before, _) = publications(&second);
    store.delete(index("2.0.0").as_str()).await.unwrap();
    let (_, last) = eventually(
        "the second node put its bundle back",
        DEADLINE,
        async || {
            let (count, last) = publications(&second);
            (count > before).then_some((count, last))
        },
    )
    .await;
    assert!(last.contains("pruned_versions=[]"), "{last}");
    assert!(object(&store, &index("1.0.0")).await.is_some());
    let (wasm1, bytes1) = sites[0].file("wasm");
    assert_eq!(object(&store, wasm1).await.as_deref(), Some(bytes1));

    // The whole bucket is lost (a NATS server's storage gone): both nodes
    // create it again and put their bundles back, and a node serves the
    // other version's wasm from it.
    let client = async_nats::connect(nats.url()).await.unwrap();
    async_nats::jetstream::new(client)
        .delete_object_store(names().asset_bucket())
        .await
        .unwrap();
    let store = eventually("the bucket and both bundles back", DEADLINE, async || {
        let client = async_nats::connect(nats.url()).await.ok()?;
        let store = async_nats::jetstream::new(client)
            .get_object_store(names().asset_bucket())
            .await
            .ok()?;
        for (i, site) in sites.iter().enumerate() {
            let (wasm, bytes) = site.file("wasm");
            object(&store, &index(&format!("{}.0.0", i + 1))).await?;
            (object(&store, wasm).await? == bytes).then_some(())?;
        }
        Some(store)
    })
    .await;
    drop(store);
    let served = get(&second.url(&format!("/pkg/{wasm1}"))).await;
    assert_eq!(served.status(), 200, "{}", second.logs());
    assert_eq!(served.bytes().await.unwrap(), bytes1);
    drop(first);
}
