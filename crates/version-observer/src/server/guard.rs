//! The request guard: an axum/tower layer in front of the host app's routes.
//!
//! - A request from a page of a version this node can serve passes.
//! - One from a page of another version is, in a cluster with affinity on,
//!   passed to a live member of a matching version, whose answer comes back
//!   unchanged (`server::forward`, private); a server function call prefers the
//!   page's exact build. When nobody can take it, or forwarding is off, it
//!   is answered `409 Conflict` with a typed JSON body ([`StaleClient`])
//!   and never runs, so an old tab's server function never runs with the
//!   arguments of another build. The rules are the core's
//!   [`affinity::route`] and [`skew::check`].
//! - While the node retires, page loads are refused with `503` and
//!   `Retry-After`, so a proxy asks another node.
//!
//! Requests without the page-version header pass untouched (but for page
//! loads of a retiring node).

use super::{forward::Forwarded, observer::VersionObserver};
use axum::{
    body::Body,
    http::{header, HeaderValue, Method, Request, StatusCode},
    response::{IntoResponse, Response},
};
use futures::future::{BoxFuture, Either, Ready};
use std::task::{Context, Poll};
use version_observer_core::{
    affinity::{self, Otherwise, Route, FORWARDED_HEADER},
    assets,
    skew::{self, ForwardFailure, StaleClient, PAGE_VERSION_HEADER},
    Version,
};

/// The layer of [`VersionObserver::request_guard`].
#[derive(Clone)]
pub struct RequestGuardLayer {
    observer: VersionObserver,
}

impl std::fmt::Debug for RequestGuardLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestGuardLayer").finish_non_exhaustive()
    }
}

/// The service of [`RequestGuardLayer`].
#[derive(Clone)]
pub struct RequestGuard<S> {
    observer: VersionObserver,
    inner: S,
}

impl<S> std::fmt::Debug for RequestGuard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestGuard").finish_non_exhaustive()
    }
}

impl<S> tower::Layer<S> for RequestGuardLayer {
    type Service = RequestGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestGuard {
            observer: self.observer.clone(),
            inner,
        }
    }
}

type Answer<E> = Result<Response, E>;

/// The app's own answer, passed through `fix` (a function pointer, so the
/// future's type stays nameable).
type Local<F, E> = futures::future::Map<F, fn(Answer<E>) -> Answer<E>>;

impl<S> tower::Service<Request<Body>> for RequestGuard<S>
where
    S: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<
        Either<Ready<Answer<S::Error>>, Local<S::Future, S::Error>>,
        BoxFuture<'static, Answer<S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let ready = |response| Either::Left(Either::Left(futures::future::ready(Ok(response))));
        // An unhashed bundle file (`/pkg/app.wasm`) is another build's after
        // a deploy: browsers must revalidate it, whatever serves it.
        let fix: fn(Answer<S::Error>) -> Answer<S::Error> =
            if matches!(*request.method(), Method::GET | Method::HEAD)
                && assets::needs_revalidation(request.uri().path())
            {
                revalidate
            } else {
                std::convert::identity
            };
        let local = |future: S::Future| {
            use futures::FutureExt;
            Either::Left(Either::Right(future.map(fix)))
        };
        // Only this process's own forwarded requests carry its mark; from
        // outside, the header is removed and means nothing.
        let forwarded = request
            .headers_mut()
            .remove(FORWARDED_HEADER)
            .is_some_and(|mark| self.observer.is_own_forward_mark(&mark));
        let page = page_version(request.headers().get(PAGE_VERSION_HEADER));
        let Some(page) = page else {
            if !forwarded && self.observer.is_retiring() && is_page_load(&request) {
                return ready(retiring());
            }
            return local(self.inner.call(request));
        };
        let method_ok = affinity::forwardable(
            request.method().as_str(),
            request.headers().contains_key(header::UPGRADE),
        );
        match self
            .observer
            .route(&page, request.uri().path(), forwarded || !method_ok)
        {
            Route::Local => local(self.inner.call(request)),
            Route::Refuse(answer) => {
                self.observer.count_refused_stale_client(answer.forward);
                ready(refusal(&answer))
            }
            Route::Forward { targets, otherwise } => {
                // The service that was polled ready goes into the future (a
                // clone stays for the next request), as tower asks.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let observer = self.observer.clone();
                Either::Right(Box::pin(async move {
                    let Some(affinity) = observer.affinity() else {
                        return inner.call(request).await;
                    };
                    match affinity.forward(request, &targets).await {
                        Forwarded::Answer(response) => Ok(response),
                        Forwarded::NotRun(reason, request) => {
                            match otherwise.with_failure(reason) {
                                Otherwise::Local => inner.call(request).await,
                                Otherwise::Refuse(answer) => {
                                    observer.count_refused_stale_client(answer.forward);
                                    // Read what the client is still sending
                                    // (a bounded amount), so that it reads
                                    // the answer rather than a reset.
                                    drain(request.into_body()).await;
                                    Ok(refusal(&answer))
                                }
                            }
                        }
                        Forwarded::MayHaveRun(reason) => match otherwise.with_failure(reason) {
                            Otherwise::Local => {
                                affinity.stats.failed(reason);
                                Ok(gateway_error(reason))
                            }
                            Otherwise::Refuse(answer) => {
                                observer.count_refused_stale_client(answer.forward);
                                Ok(refusal(&answer))
                            }
                        },
                    }
                }))
            }
        }
    }
}

/// The most of a refused request's body read (and dropped) before the
/// answer, and how long that may take.
const DRAIN: (usize, std::time::Duration) = (1 << 20, std::time::Duration::from_secs(1));

/// Reads and drops the rest of `body`, up to [`DRAIN`].
async fn drain(body: Body) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut read = 0;
    let _ = tokio::time::timeout(DRAIN.1, async {
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len());
            if read > DRAIN.0 {
                break;
            }
        }
    })
    .await;
}

/// `Cache-Control: no-cache` on a successful answer that has no
/// `Cache-Control` of its own.
fn revalidate<E>(answer: Answer<E>) -> Answer<E> {
    answer.map(|mut response| {
        let fresh = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
        if fresh && !response.headers().contains_key(header::CACHE_CONTROL) {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        }
        response
    })
}

/// The version a request's page header names; an unreadable one is absent.
fn page_version(value: Option<&HeaderValue>) -> Option<Version> {
    value?.to_str().ok()?.trim().parse().ok()
}

/// Whether a request is a browser loading a page (a navigation), rather
/// than a script's call: those a retiring node leaves to the others.
fn is_page_load<B>(request: &Request<B>) -> bool {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return false;
    }
    let headers = request.headers();
    match headers.get("sec-fetch-dest") {
        Some(dest) => dest.as_bytes() == b"document",
        None => headers
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html")),
    }
}

/// The `409` answer.
fn refusal(answer: &StaleClient) -> Response {
    json_answer(
        StatusCode::CONFLICT,
        serde_json::to_string(answer).unwrap_or_default(),
    )
}

/// A page load on a retiring node: another node will answer.
fn retiring() -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        "this node is retiring; another one will answer\n",
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A forwarded call of a page this node could have served itself (it
/// preferred the page's exact build) that may have run there, with no
/// answer to pass on: `504` for a timeout, `502` otherwise.
fn gateway_error(reason: ForwardFailure) -> Response {
    let status = if reason == ForwardFailure::Timeout {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    json_answer(
        status,
        format!(
            r#"{{"error":"forward_failed","forward":"{}"}}"#,
            reason.as_str()
        ),
    )
}

fn json_answer(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Never cached: the next request may reach another node.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl VersionObserver {
    /// The request guard, for your router, with version affinity in a
    /// cluster. A request whose page names a version this node cannot
    /// serve (the `x-version-observer-page` header the crate's browser
    /// side adds to every request a page makes to its own origin):
    ///
    /// - in a cluster with [affinity](crate::ObserverBuilder::affinity) on
    ///   (the default), goes to a live member that runs a matching version,
    ///   and its answer comes back unchanged; a server function call
    ///   prefers a member of the page's exact build, even when this node
    ///   could serve it;
    /// - otherwise (no such member, too large to forward, no answer in
    ///   time, affinity off, a single node), is answered `409 Conflict`
    ///   with a [`StaleClient`] body whose `forward` says why it was not
    ///   forwarded, and never reaches your handler; so is a page older
    ///   than this node's minimum supported version.
    ///
    /// While the node retires ([`retire_for`](crate::ObserverBuilder::retire_for)),
    /// page loads get `503` with `Retry-After`. Requests without the header
    /// otherwise pass untouched. Refusals are counted as
    /// `version_observer_refused_total{reason="stale_client"}`, forwards in
    /// `version_observer_forwarded_total`. Forwarded requests reach the
    /// member's router through its [`listener`](Self::listener): serve
    /// through it.
    ///
    /// ```no_run
    /// use axum::{routing::post, Router};
    /// # fn demo(observer: version_observer::VersionObserver) {
    /// let app: Router = Router::new()
    ///     .route("/api/orders", post(|| async { "ordered" }))
    ///     .layer(observer.request_guard());
    /// # }
    /// ```
    pub fn request_guard(&self) -> RequestGuardLayer {
        RequestGuardLayer {
            observer: self.clone(),
        }
    }

    /// Where a request from a page of `page` version, for `path`, goes;
    /// `forwarded`: it was forwarded here already (or cannot be forwarded),
    /// so it is served here or refused, never passed on.
    pub(crate) fn route(&self, page: &Version, path: &str, forwarded: bool) -> Route {
        let me = &self.page_info().version;
        let min = self.release().and_then(|r| r.min_supported.as_ref());
        match self.affinity().filter(|_| !forwarded) {
            Some(affinity) => affinity::route(
                page,
                me,
                self.compat(),
                min,
                affinity.is_server_fn(path),
                || affinity.live_versions(),
            ),
            None => match skew::check(page, me, self.compat(), min) {
                None => Route::Local,
                Some(answer) => Route::Refuse(answer),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, headers: &[(&str, &str)]) -> Request<()> {
        let mut r = Request::builder().method(method).uri("/");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn page_loads_are_told_from_script_calls() {
        let html = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8";
        for (method, headers, load) in [
            (Method::GET, vec![("sec-fetch-dest", "document")], true),
            (
                Method::GET,
                vec![("sec-fetch-dest", "empty"), ("accept", html)],
                false,
            ),
            (Method::GET, vec![("accept", html)], true),
            (Method::HEAD, vec![("accept", html)], true),
            (Method::GET, vec![("accept", "application/json")], false),
            (Method::GET, vec![], false),
            (Method::POST, vec![("sec-fetch-dest", "document")], false),
        ] {
            assert_eq!(
                is_page_load(&request(method.clone(), &headers)),
                load,
                "{method} {headers:?}"
            );
        }
    }

    #[test]
    fn a_gateway_error_names_its_reason() {
        let timeout = gateway_error(ForwardFailure::Timeout);
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            gateway_error(ForwardFailure::Failed).status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(timeout.headers()[header::CACHE_CONTROL], "no-store");
    }
}
