//! 7. WASM bundle: the `.wasm`, `.js` and `.css` the browser downloads, raw,
//!    gzip (level 9) and brotli (quality 11), as a server would precompress them;
//!    and what embedding version-observer costs a host app: the example app's
//!    wasm (`examples/todo`) against the same app without it
//!    (`bench/embedding-baseline`, the example's source less the banner):
//!    the budget's figure with the banner's default parts only (the same
//!    crate with feature `banner`, site `todo-default-parts`: the example
//!    less its optional `<ReloadOnNavigation/>`), and the example as it is.

use crate::report::{Goal, Report};
use anyhow::Context;
use std::{io::Write, path::Path};

/// The size budgets: over either, on release builds, the benchmark fails.
pub const NODE_WASM_BUDGET_KB: f64 = 150.0;
/// See [`NODE_WASM_BUDGET_KB`].
pub const EMBEDDING_BUDGET_KB: f64 = 15.0;

/// The sites the benchmark reads.
pub struct Sites<'a> {
    /// The reference node's `pkg` folder.
    pub pkg: &'a Path,
    /// The example app's.
    pub example: &'a Path,
    /// The example app's with the banner's default parts only (less its
    /// `<ReloadOnNavigation/>`): what the budget holds.
    pub default_parts: &'a Path,
    /// The example app's without version-observer.
    pub baseline: &'a Path,
    /// A debug build is an error (the budgets must be checked).
    pub require_release: bool,
}

pub fn run(report: &mut Report, sites: &Sites<'_>) -> anyhow::Result<()> {
    let pkg = sites.pkg;
    report.section("7 bundle", "7. WASM bundle: what a browser downloads");
    report.input("folder", pkg.display());
    let wasm = std::fs::read(bundle_file(pkg, "wasm")?)
        .context("reading the wasm (build the site first)")?;
    // The folder holds whatever cargo-leptos built last; the wasm tells which:
    // a debug build keeps every function's name in a `name` section.
    let release = is_release(&wasm);
    report.input(
        "build (read from the wasm)",
        if release {
            "release (no name section)"
        } else {
            "debug (a name section)"
        },
    );
    if !release && sites.require_release {
        anyhow::bail!(
            "{} is a debug build: the size budgets are checked on release builds (build_site --release)",
            pkg.display()
        );
    }
    let mut over = Vec::new();
    for (ext, goal) in [
        ("wasm", Some(Goal::AtMost(NODE_WASM_BUDGET_KB))),
        ("js", None),
        ("css", None),
    ] {
        // The figures keep their plain names, whatever the build's hashes.
        let file = format!("version-observer.{ext}");
        let path = bundle_file(pkg, ext)?;
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading {} (build the site first)", path.display()))?;
        report.figure(&format!("{file} raw"), kb(bytes.len()), "KB", None);
        if release {
            let (gz, br) = (gzip(&bytes)?, brotli(&bytes)?);
            report.figure(&format!("{file} gzip"), kb(gz), "KB", None);
            report.figure(&format!("{file} brotli"), kb(br), "KB", goal);
            if goal.is_some_and(|g| !g.met(kb(br))) {
                over.push(format!(
                    "the reference node's wasm is {:.1} KB brotli (budget {NODE_WASM_BUDGET_KB} KB)",
                    kb(br)
                ));
            }
        }
    }
    if !release {
        // Compressing megabytes of debug wasm at brotli's best takes minutes
        // and says nothing about what users download.
        report.note(
            "a debug bundle: not compressed, no goal applies (scripts/bench.sh builds release)",
        );
    }
    // The budget: the banner with the parts every host gets (one stream
    // per browser, the request guard's half in the page, GuardedError), in
    // the example less its optional <ReloadOnNavigation/>.
    let budget = Some(Goal::AtMost(EMBEDDING_BUDGET_KB));
    if let Some(adds) = embedding(
        report,
        "the banner adds",
        sites.default_parts,
        sites.baseline,
        release,
        budget,
    )? {
        if !Goal::AtMost(EMBEDDING_BUDGET_KB).met(adds) {
            over.push(format!(
                "the banner adds {adds:.2} KB brotli to the example app (budget {EMBEDDING_BUDGET_KB} KB)"
            ));
        }
    }
    // For the record: the example as it is, <ReloadOnNavigation/> included.
    embedding(
        report,
        "the example's embedding adds",
        sites.example,
        sites.baseline,
        release,
        None,
    )?;
    if !over.is_empty() {
        anyhow::bail!("over the size budget: {}", over.join("; "));
    }
    Ok(())
}

/// Whether a wasm is a release build: a debug build keeps every function's
/// name in a `name` section.
pub fn is_release(wasm: &[u8]) -> bool {
    !custom_sections(wasm).iter().any(|(name, _)| name == "name")
}

/// The bytes the banner (and everything of version-observer it pulls in)
/// adds to a host app's wasm (and, for the record, to its JS glue): the
/// wasm's brotli figure, on release builds.
fn embedding(
    report: &mut Report,
    what: &str,
    example: &Path,
    baseline: &Path,
    release: bool,
    goal: Option<Goal>,
) -> anyhow::Result<Option<f64>> {
    report.input(&format!("{what}: host app"), example.display());
    report.input("the same app without it", baseline.display());
    let read = |dir: &Path, ext: &str| {
        let path = bundle_file(dir, ext)?;
        std::fs::read(&path)
            .with_context(|| format!("reading {} (build the sites first)", path.display()))
    };
    let (with, without) = (read(example, "wasm")?, read(baseline, "wasm")?);
    if release && !is_release(&without) {
        anyhow::bail!(
            "{} is a debug build, the example's a release one",
            baseline.display()
        );
    }
    let raw = with.len() as f64 - without.len() as f64;
    report.figure(
        &format!("{what}: host app wasm raw"),
        kb(with.len()),
        "KB",
        None,
    );
    report.figure(
        "without version-observer raw",
        kb(without.len()),
        "KB",
        None,
    );
    report.figure(&format!("{what}, raw"), raw / 1000.0, "KB", None);
    if !release {
        return Ok(None);
    }
    let (with_br, without_br) = (brotli(&with)?, brotli(&without)?);
    report.figure(
        &format!("{what}: host app wasm brotli"),
        kb(with_br),
        "KB",
        None,
    );
    report.figure(
        "without version-observer brotli",
        kb(without_br),
        "KB",
        None,
    );
    let adds = (with_br as f64 - without_br as f64) / 1000.0;
    // To the byte, for comparing builds that differ by little.
    report.input(
        &format!("{what}, brotli bytes"),
        format!(
            "{} ({with_br} - {without_br})",
            with_br as i64 - without_br as i64
        ),
    );
    report.figure(&format!("{what}, brotli"), adds, "KB", goal);
    let (js, js_without) = (read(example, "js")?, read(baseline, "js")?);
    report.figure(
        &format!("{what} to the JS glue, brotli"),
        (brotli(&js)? as f64 - brotli(&js_without)? as f64) / 1000.0,
        "KB",
        None,
    );
    Ok(Some(adds))
}

/// The bundle's file with this extension in a site's `pkg` folder: the
/// plain `version-observer.<ext>` of an unhashed build (the example app's),
/// or the content-hashed name the site's `hash.txt` (beside `pkg`) gives.
pub fn bundle_file(pkg: &Path, ext: &str) -> anyhow::Result<std::path::PathBuf> {
    let plain = pkg.join(format!("version-observer.{ext}"));
    if plain.is_file() {
        return Ok(plain);
    }
    let hash_file = pkg.parent().unwrap_or(pkg).join("hash.txt");
    let text = std::fs::read_to_string(&hash_file).with_context(|| {
        format!(
            "neither {} nor {} (build the sites first)",
            plain.display(),
            hash_file.display()
        )
    })?;
    let hashes = version_observer_core::assets::parse_hash_file(&text)
        .with_context(|| format!("reading {}", hash_file.display()))?;
    let hash = hashes
        .get(ext)
        .with_context(|| format!("no .{ext} hash in {}", hash_file.display()))?;
    Ok(pkg.join(format!("version-observer.{hash}.{ext}")))
}

/// The custom sections of a wasm module: (name, size in bytes). Stops at
/// anything malformed.
pub fn custom_sections(wasm: &[u8]) -> Vec<(String, usize)> {
    fn leb(data: &[u8], at: &mut usize) -> Option<usize> {
        let (mut value, mut shift) = (0usize, 0u32);
        loop {
            let byte = *data.get(*at)?;
            *at += 1;
            value |= usize::from(byte & 0x7f).checked_shl(shift)?;
            if byte < 0x80 {
                return Some(value);
            }
            shift += 7;
        }
    }
    let mut found = Vec::new();
    if !wasm.starts_with(b"\0asm") {
        return found;
    }
    let mut at = 8;
    while at < wasm.len() {
        let id = wasm[at];
        at += 1;
        let Some(size) = leb(wasm, &mut at) else {
            break;
        };
        let end = at.saturating_add(size);
        if end > wasm.len() {
            break;
        }
        if id == 0 {
            let mut name_at = at;
            if let Some(len) = leb(wasm, &mut name_at) {
                if let Some(name) = wasm.get(name_at..name_at + len) {
                    found.push((String::from_utf8_lossy(name).into_owned(), size));
                }
            }
        }
        at = end;
    }
    found
}

/// Kilobytes (1000 bytes), as the goal is stated.
fn kb(bytes: usize) -> f64 {
    bytes as f64 / 1000.0
}

pub fn gzip(data: &[u8]) -> anyhow::Result<usize> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data)?;
    Ok(encoder.finish()?.len())
}

pub fn brotli(data: &[u8]) -> anyhow::Result<usize> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
        writer.write_all(data)?;
    }
    Ok(out.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn custom_sections_are_listed() {
        // magic, version, a type section (id 1, 1 byte), a custom "name" section.
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.extend([1, 1, 0]);
        wasm.extend([0, 7, 4]);
        wasm.extend(b"name");
        wasm.extend([1, 2]);
        assert_eq!(super::custom_sections(&wasm), vec![("name".to_string(), 7)]);
        assert_eq!(super::custom_sections(b"not wasm"), vec![]);
        wasm.truncate(10);
        assert_eq!(super::custom_sections(&wasm), vec![]);
    }

    /// A site folder with `version-observer.wasm` and `.js` of these bytes.
    fn site(name: &str, wasm: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vo-bundle-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("version-observer.wasm"), wasm).unwrap();
        std::fs::write(dir.join("version-observer.js"), b"export {}").unwrap();
        std::fs::write(dir.join("version-observer.css"), b"").unwrap();
        dir
    }

    /// A release-looking wasm (no name section): a custom section `pad` of
    /// `n` bytes that do not compress (after a `name` section if `debug`).
    fn wasm(n: usize, debug: bool) -> Vec<u8> {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        if debug {
            wasm.extend([0, 5, 4]);
            wasm.extend(b"name");
        }
        wasm.push(0);
        let mut size = n + 4;
        while size >= 0x80 {
            wasm.push((size as u8 & 0x7f) | 0x80);
            size >>= 7;
        }
        wasm.push(size as u8);
        wasm.extend([3]);
        wasm.extend(b"pad");
        let mut x: u32 = 7;
        wasm.extend((0..n).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        }));
        wasm
    }

    fn incompressible(n: usize) -> Vec<u8> {
        wasm(n, false)
    }

    #[test]
    fn over_either_budget_the_benchmark_fails_and_a_debug_build_fails_when_release_is_required() {
        let run = |node: &[u8], example: &[u8], baseline: &[u8], require_release| {
            let (n, e, b) = (site("n", node), site("e", example), site("b", baseline));
            let result = super::run(
                &mut crate::report::Report::default(),
                &super::Sites {
                    pkg: &n,
                    example: &e,
                    default_parts: &e,
                    baseline: &b,
                    require_release,
                },
            );
            for dir in [n, e, b] {
                std::fs::remove_dir_all(dir).unwrap();
            }
            result.map_err(|e| e.to_string())
        };
        let small = incompressible(1_000);
        run(&small, &incompressible(11_000), &small, true).expect("within both budgets");
        let err = run(&incompressible(151_000), &small, &small, true).unwrap_err();
        assert!(err.contains("reference node's wasm"), "{err}");
        let err = run(&small, &incompressible(17_000), &small, true).unwrap_err();
        assert!(err.contains("the banner adds"), "{err}");
        // A debug build (a name section) is only an error when release is required.
        let debug = wasm(1_000, true);
        assert!(!super::is_release(&debug) && super::is_release(&small));
        run(&debug, &debug, &debug, false).expect("a debug build is only noted");
        let err = run(&debug, &debug, &debug, true).unwrap_err();
        assert!(err.contains("debug build"), "{err}");
    }

    #[test]
    fn repetitive_data_compresses() {
        let data = b"version-observer ".repeat(1000);
        let (gz, br) = (super::gzip(&data).unwrap(), super::brotli(&data).unwrap());
        assert!(gz < data.len() / 10 && br < data.len() / 10, "{gz} {br}");
        assert!(super::gzip(b"").unwrap() > 0, "a gzip stream has a header");
    }
}
