//! The todo app's server: the usual Leptos + axum `main`, plus the
//! version-observer lines from the README.

use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use version_observer::{VersionObserver, VersionObserverRoutes};
use vo_example_todo::{shell, App};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = get_configuration(None)?.leptos_options;
    let addr = options.site_addr;

    // version-observer: your build's version (this example lets APP_VERSION
    // stand in for another build, to try a redeploy without recompiling).
    let version = std::env::var("APP_VERSION").unwrap_or(env!("CARGO_PKG_VERSION").into());
    let observer = VersionObserver::builder(version.parse()?)
        // Settings from VO_* variables, if any: VO_NATS=nats://... makes this
        // a cluster node (the reference node's names; see the README).
        .with_env()?
        .start()
        .await?;

    let app = Router::new()
        .leptos_routes_with_context(&options, generate_route_list(App), observer.context(), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .version_observer_routes(&observer)
        .fallback(leptos_axum::file_and_error_handler(shell))
        .layer(observer.request_guard())
        .with_state(options);

    let tcp = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", tcp.local_addr()?);
    axum::serve(observer.listener(tcp), app.into_make_service())
        .with_graceful_shutdown(observer.stop_on_signal())
        .await?;
    observer.shutdown().await;
    Ok(())
}
