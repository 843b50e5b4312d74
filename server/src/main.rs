//! The `version-observer` binary: parse the configuration, start one node, run
//! it until SIGINT or SIGTERM. Everything else lives in the library.

use anyhow::Context;
use version_observer_node::{telemetry, Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    // Before the flags are read: --max-streams defaults to what the raised
    // limit allows.
    let open_files = version_observer_node::limits::raise_open_files();
    let config = Config::load();
    tracing::debug!(
        ?open_files,
        max_streams = config.max_streams,
        "open-files limit"
    );
    // A signal during start-up (NATS slow to answer, say) stops it cleanly too.
    let app = tokio::select! {
        app = Application::build(config) => app.context("version-observer could not start")?,
        signal = version_observer::server::shutdown_signal() => {
            tracing::info!(signal, "stopped during start-up");
            return Ok(());
        }
    };
    tokio::spawn(app.observer().stop_on_signal());
    app.run_until_stopped()
        .await
        .context("version-observer stopped with an error")
}
