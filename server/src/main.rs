//! The `version-observer` binary: parse the configuration, start one node, run
//! it until SIGINT or SIGTERM. Everything else lives in the library.

use anyhow::Context;
use clap::Parser;
use version_observer_node::{telemetry, Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init();
    let app = Application::build(config)
        .await
        .context("version-observer could not start")?;
    tokio::spawn(app.observer().stop_on_signal());
    app.run_until_stopped()
        .await
        .context("version-observer stopped with an error")
}
