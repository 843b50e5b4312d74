//! The request guard: an axum/tower layer that answers a request from a page
//! of an incompatible version with `409 Conflict` and a typed JSON body
//! ([`StaleClient`]) instead of running it, so an old tab's server function
//! never runs with another build's arguments. The rule is the core's
//! [`skew::check`]; requests without the
//! page-version header pass untouched.

use super::observer::VersionObserver;
use axum::{
    http::{header, HeaderValue, Request, StatusCode},
    response::{IntoResponse, Response},
};
use futures::future::{Either, Ready};
use std::task::{Context, Poll};
use version_observer_core::{
    skew::{self, StaleClient, PAGE_VERSION_HEADER},
    Version,
};

/// The layer of [`VersionObserver::request_guard`].
#[derive(Clone)]
pub struct RequestGuardLayer {
    observer: VersionObserver,
}

/// The service of [`RequestGuardLayer`].
#[derive(Clone)]
pub struct RequestGuard<S> {
    observer: VersionObserver,
    inner: S,
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

impl<S, B> tower::Service<Request<B>> for RequestGuard<S>
where
    S: tower::Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self
            .observer
            .refuses(request.headers().get(PAGE_VERSION_HEADER))
        {
            Some(answer) => Either::Left(futures::future::ready(Ok(refusal(&answer)))),
            None => Either::Right(self.inner.call(request)),
        }
    }
}

/// The `409` answer.
fn refusal(answer: &StaleClient) -> Response {
    let body = serde_json::to_string(answer).unwrap_or_default();
    let mut response = (StatusCode::CONFLICT, body).into_response();
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
    /// The request guard, for your router: a request whose page names an
    /// incompatible version (the `x-version-observer-page` header the
    /// crate's browser side adds to every request a page makes to its own
    /// origin) is answered `409 Conflict` with a [`StaleClient`] body and
    /// never reaches your handler; so is a page older than this node's
    /// minimum supported version. Requests without the header pass
    /// untouched. Refusals are counted as
    /// `version_observer_refused_total{reason="stale_client"}`.
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

    /// This node's answer to a request naming `page` (the header's value),
    /// if it refuses it; an unreadable header is treated as absent.
    pub(crate) fn refuses(&self, page: Option<&HeaderValue>) -> Option<StaleClient> {
        let page: Version = page?.to_str().ok()?.trim().parse().ok()?;
        let answer = skew::check(
            &page,
            &self.page_info().version,
            self.compat(),
            self.release().and_then(|r| r.min_supported.as_ref()),
        )?;
        self.count_refused_stale_client();
        Some(answer)
    }
}
