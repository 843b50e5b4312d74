//! 7. WASM bundle: the `.wasm`, `.js` and `.css` the browser downloads, raw,
//!    gzip (level 9) and brotli (quality 11), as a server would precompress them;
//!    and what embedding version-observer costs a host app: the example app's
//!    wasm (`examples/todo`) against the same app without it
//!    (`bench/embedding-baseline`, the example's source less the banner).

use crate::report::{Goal, Report};
use anyhow::Context;
use std::{io::Write, path::Path};

pub fn run(report: &mut Report, pkg: &Path, example: &Path, baseline: &Path) -> anyhow::Result<()> {
    report.section("7 bundle", "7. WASM bundle: what a browser downloads");
    report.input("folder", pkg.display());
    let wasm = std::fs::read(bundle_file(pkg, "wasm")?)
        .context("reading the wasm (build the site first)")?;
    // The folder holds whatever cargo-leptos built last; the wasm tells which:
    // a debug build keeps every function's name in a `name` section.
    let names = custom_sections(&wasm)
        .into_iter()
        .find(|(name, _)| name == "name")
        .map(|(_, size)| size);
    let release = names.is_none();
    report.input(
        "build (read from the wasm)",
        match names {
            None => "release (no name section)".to_owned(),
            Some(size) => format!("debug (a {} KB name section)", size / 1000),
        },
    );
    for (ext, goal) in [
        ("wasm", Some(Goal::AtMost(150.0))),
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
        }
    }
    if !release {
        // Compressing megabytes of debug wasm at brotli's best takes minutes
        // and says nothing about what users download.
        report.note(
            "a debug bundle: not compressed, no goal applies (scripts/bench.sh builds release)",
        );
    }
    embedding(report, example, baseline, release)
}

/// The bytes the banner (and everything of version-observer it pulls in)
/// adds to a host app's wasm.
fn embedding(
    report: &mut Report,
    example: &Path,
    baseline: &Path,
    release: bool,
) -> anyhow::Result<()> {
    report.input("host app with the banner", example.display());
    report.input("the same app without it", baseline.display());
    let read = |dir: &Path| {
        let path = bundle_file(dir, "wasm")?;
        std::fs::read(&path)
            .with_context(|| format!("reading {} (build the sites first)", path.display()))
    };
    let (with, without) = (read(example)?, read(baseline)?);
    let raw = with.len() as f64 - without.len() as f64;
    report.figure("example app wasm raw", kb(with.len()), "KB", None);
    report.figure(
        "without version-observer raw",
        kb(without.len()),
        "KB",
        None,
    );
    report.figure("the banner adds, raw", raw / 1000.0, "KB", None);
    if release {
        let (with_br, without_br) = (brotli(&with)?, brotli(&without)?);
        report.figure("example app wasm brotli", kb(with_br), "KB", None);
        report.figure(
            "without version-observer brotli",
            kb(without_br),
            "KB",
            None,
        );
        report.figure(
            "the banner adds, brotli",
            (with_br as f64 - without_br as f64) / 1000.0,
            "KB",
            Some(Goal::AtMost(20.0)),
        );
    }
    Ok(())
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

    #[test]
    fn repetitive_data_compresses() {
        let data = b"version-observer ".repeat(1000);
        let (gz, br) = (super::gzip(&data).unwrap(), super::brotli(&data).unwrap());
        assert!(gz < data.len() / 10 && br < data.len() / 10, "{gz} {br}");
        assert!(super::gzip(b"").unwrap() > 0, "a gzip stream has a header");
    }
}
