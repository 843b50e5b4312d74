//! The process signals that mean "stop gracefully".

/// Resolves on the first SIGINT or SIGTERM (Ctrl-C elsewhere) and names
/// it: for a host that wants the same signals before it has an observer
/// (during its own start-up), as [`VersionObserver::stop_on_signal`](super::VersionObserver::stop_on_signal)
/// uses after.
///
/// ```no_run
/// # async fn demo() {
/// let signal = version_observer::shutdown_signal().await;
/// println!("stopping on {signal}");
/// # }
/// ```
pub async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => "SIGINT",
        _ = term => "SIGTERM",
    }
}
