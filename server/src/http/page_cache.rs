//! `GET /` rendered once. The page depends on nothing but the node: its id
//! and its version (the cluster view arrives over the event stream once the
//! page has hydrated). So Leptos renders it on the first request, and the
//! node serves those bytes from memory afterwards: rendering the same reactive
//! tree again costs several times more than sending it. Only the exact URI
//! `/` is kept, and only a `200`; any other URI (`/?anything` included) is
//! rendered per request.
//!
//! Leptos stamps a fresh nonce on its inline scripts (leptos_axum always
//! enables its `nonce` feature), for a Content-Security-Policy to name. The
//! node sends no such policy, so the nonces are inert and one reused for every
//! response weakens nothing. A node that adds a nonce-based CSP must render
//! per request instead (drop this layer).

use axum::{
    body::{to_bytes, Body},
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use std::sync::{Arc, RwLock};

/// The largest page kept (the real one is about 2 KB).
const MAX_PAGE: usize = 1024 * 1024;

#[derive(Clone, Default)]
pub struct PageCache(Arc<RwLock<Option<(HeaderMap, Bytes)>>>);

fn cacheable(request: &Request) -> bool {
    request.method() == Method::GET
        && request.uri().path() == "/"
        && request.uri().query().is_none()
}

/// Middleware: answers `GET /` from memory once it has been rendered.
pub async fn serve(State(cache): State<PageCache>, request: Request, next: Next) -> Response {
    if !cacheable(&request) {
        return next.run(request).await;
    }
    if let Some((headers, body)) = cache.0.read().expect("not poisoned").clone() {
        return (headers, body).into_response();
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    match to_bytes(body, MAX_PAGE).await {
        Ok(bytes) => {
            *cache.0.write().expect("not poisoned") = Some((parts.headers.clone(), bytes.clone()));
            Response::from_parts(parts, Body::from(bytes))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot render the page");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{middleware::from_fn_with_state, routing::get, Router};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    fn app(renders: Arc<AtomicUsize>) -> Router {
        Router::new()
            .route(
                "/",
                get(move || async move {
                    let n = renders.fetch_add(1, Ordering::SeqCst) + 1;
                    ([("x-render", n.to_string())], format!("render {n}"))
                }),
            )
            .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
            .layer(from_fn_with_state(PageCache::default(), serve))
    }

    async fn get_body(app: &Router, uri: &str) -> (StatusCode, String, Option<String>) {
        let response = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let header = response
            .headers()
            .get("x-render")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = to_bytes(response.into_body(), 1024).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap(), header)
    }

    #[tokio::test]
    async fn the_page_is_rendered_once_with_its_headers() {
        let renders = Arc::new(AtomicUsize::new(0));
        let app = app(renders.clone());
        for _ in 0..3 {
            let (status, body, header) = get_body(&app, "/").await;
            assert_eq!(
                (status, body.as_str(), header.as_deref()),
                (StatusCode::OK, "render 1", Some("1"))
            );
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn other_uris_and_failures_are_not_kept() {
        let renders = Arc::new(AtomicUsize::new(0));
        let app = app(renders.clone());
        assert_eq!(get_body(&app, "/?fresh").await.1, "render 1");
        assert_eq!(get_body(&app, "/?fresh").await.1, "render 2");
        assert_eq!(get_body(&app, "/missing").await.0, StatusCode::NOT_FOUND);
        // The exact URI is kept from its first render on.
        assert_eq!(get_body(&app, "/").await.1, "render 3");
        assert_eq!(get_body(&app, "/").await.1, "render 3");
        let head = app
            .clone()
            .oneshot(Request::head("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(
            renders.load(Ordering::SeqCst),
            4,
            "HEAD is not served from memory"
        );
    }
}
