//! The todo app's server with version-observer's routes nested under a
//! prefix (`TODO_VO_PREFIX`, default `/vo`), and the browser's `fetch` left
//! alone when `TODO_WRAP_FETCH=0`: the same page and wasm as `todo`, for a
//! host whose routes are not where the crate puts them by default.
//!
//! Options the server knows at run time go into the pages' context beside
//! `observer.context()`; each page carries them to the browser, where the
//! banner, `<ReloadOnNavigation/>` and the hook all use them. (Options known
//! when you write the app go into `App` instead:
//! `provide_context(UseVersionObserverOptions::default().events_url(..))`.)

use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use version_observer::{UseVersionObserverOptions, VersionObserver, VersionObserverRoutes};
use vo_example_todo::{shell, App};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = get_configuration(None)?.leptos_options;
    let addr = options.site_addr;
    let version = std::env::var("APP_VERSION").unwrap_or(env!("CARGO_PKG_VERSION").into());
    let observer = VersionObserver::builder(version.parse()?)
        .with_env()?
        .start()
        .await?;

    let prefix = std::env::var("TODO_VO_PREFIX").unwrap_or_else(|_| "/vo".into());
    let page_options = UseVersionObserverOptions::default()
        .events_url(format!("{prefix}/api/version/events"))
        .wrap_fetch(std::env::var("TODO_WRAP_FETCH").as_deref() != Ok("0"));
    let context = {
        let observer_context = observer.context();
        move || {
            observer_context();
            provide_context(page_options.clone());
        }
    };

    let app = Router::new()
        .leptos_routes_with_context(&options, generate_route_list(App), context, {
            let options = options.clone();
            move || shell(options.clone())
        })
        .nest(&prefix, Router::new().version_observer_routes(&observer))
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
