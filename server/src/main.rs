//! The `version-observer` binary: parse the configuration, start one node, run
//! it until SIGINT or SIGTERM. Everything else lives in the library.

use std::{io::Write, process::ExitCode};

use anyhow::Context;
use version_observer_node::{telemetry, tools, Application, Config};

fn main() -> ExitCode {
    telemetry::init();
    let code = match run() {
        Ok(code) => code,
        Err(e) => {
            // Not `eprintln!`: a failed write must not panic.
            let _ = writeln!(std::io::stderr(), "Error: {e:?}");
            ExitCode::FAILURE
        }
    };
    // The last lines (the error above, a flag's error) reach stderr before
    // the process exits.
    telemetry::flush();
    code
}

#[tokio::main]
async fn run() -> anyhow::Result<ExitCode> {
    // Before the flags are read: --max-streams defaults to what the raised
    // limit allows.
    // `version-observer wait|status …`: a tool, not a node.
    if std::env::args()
        .nth(1)
        .is_some_and(|first| tools::NAMES.contains(&first.as_str()))
    {
        let cli = match <tools::ToolCli as clap::Parser>::try_parse() {
            Ok(cli) => cli,
            Err(e) => {
                let _ = e.print();
                return Ok(ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2)));
            }
        };
        telemetry::start(telemetry::LogFormat::Text);
        return tools::run(cli).await;
    }
    let open_files = version_observer_node::limits::raise_open_files();
    let mut config = match Config::load() {
        Ok(config) => config,
        // A bad flag, or --help / --version: clap's message and exit code.
        Err(e) => {
            let _ = e.print();
            return Ok(ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2)));
        }
    };
    // Named now, so that every log line (JSON ones carry it) names it.
    let node_id = config
        .node_id
        .get_or_insert_with(version_observer::default_node_id);
    telemetry::set_node(
        node_id,
        config
            .connection
            .nats
            .is_some()
            .then_some(config.connection.cluster.as_str()),
    );
    telemetry::start(config.log_format);
    tracing::debug!(
        ?open_files,
        max_streams = config.max_streams,
        "open-files limit"
    );
    // A signal during start-up (NATS slow to answer, say) stops it cleanly too.
    let app = tokio::select! {
        app = Application::build(config) => app.context("version-observer could not start")?,
        signal = version_observer::shutdown_signal() => {
            tracing::info!(signal, "stopped during start-up");
            return Ok(ExitCode::SUCCESS);
        }
    };
    tokio::spawn(app.observer().stop_on_signal());
    app.run_until_stopped()
        .await
        .context("version-observer stopped with an error")?;
    Ok(ExitCode::SUCCESS)
}
