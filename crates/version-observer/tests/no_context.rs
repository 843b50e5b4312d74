//! A page rendered without `observer.context()` says so in the server's log,
//! once per process, naming the fix: its banner could never show.
//!
//! A test binary of its own: the warning is said once per process, so no
//! other test may render before it.
#![cfg(feature = "ssr")]

use leptos::prelude::*;
use std::{
    io::Write,
    sync::{Arc, Mutex},
};
use version_observer::{use_version_observer, VersionObserver};

/// The log, as the server's operator would read it.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn warnings(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| line.contains("WARN"))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn a_page_rendered_without_the_observers_context_says_so_once() {
    let observer = VersionObserver::builder("1.0.0".parse().unwrap())
        .start()
        .await
        .unwrap();
    let log = Log::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .finish();
    // A page's components, rendered on the server with or without the
    // observer's context (what `leptos_routes_with_context` provides).
    let render = |with_context: bool| {
        Owner::new().with(|| {
            if with_context {
                (observer.context())();
            }
            let status = use_version_observer();
            status.page.map(|page| page.version)
        })
    };
    tracing::subscriber::with_default(subscriber, || {
        assert_eq!(render(true), Some("1.0.0".parse().unwrap()));
        assert_eq!(log.warnings(), Vec::<String>::new(), "with the context");
        assert_eq!(render(false), None);
        assert_eq!(render(false), None);
    });
    let warnings = log.warnings();
    assert_eq!(warnings.len(), 1, "said once: {warnings:?}");
    assert!(
        warnings[0].contains("without observer.context() in leptos_routes_with_context"),
        "names the fix: {warnings:?}"
    );
    observer.stop();
    observer.shutdown().await;
}
