//! A real `nats-server` with JetStream on loopback, its store in a scratch
//! folder (so a restart keeps the KV buckets), killed when dropped.
//!
//! The server picks its own ports (`-p -1`, `-m -1`) and writes them to a
//! ports file (`--ports_file_dir`), which the lab reads: no port is chosen
//! here and then raced for. A restart asks for the ports learned the first
//! time, so clients reconnect to the same URL.

use crate::{process::Managed, scratch::ScratchDir, tools, wait, LabError};
use serde::Deserialize;
use std::{
    path::{Path, PathBuf},
    time::Duration,
};
use tokio::{io::AsyncReadExt, net::TcpStream, process::Command};

/// How long a nats-server may take to accept clients.
pub(crate) const READY: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct NatsServer {
    ports: Ports,
    scratch: ScratchDir,
    config: Option<PathBuf>,
    process: Option<Managed>,
}

/// How to start a server beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// Serve the HTTP monitoring endpoints too.
    pub monitoring: bool,
    /// A configuration file's text (authorization, accounts, TLS...); the
    /// lab's own flags (ports, JetStream store) still apply.
    pub config: Option<String>,
}

/// The ports a server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ports {
    client: u16,
    monitoring: Option<u16>,
}

impl NatsServer {
    pub async fn start() -> Result<Self, LabError> {
        Self::start_with(false).await
    }

    /// With `monitoring`, the server also serves its HTTP monitoring endpoints
    /// (`/varz` counts messages), on [`monitoring_url`](Self::monitoring_url).
    pub async fn start_with(monitoring: bool) -> Result<Self, LabError> {
        Self::start_with_options(NatsOptions {
            monitoring,
            ..NatsOptions::default()
        })
        .await
    }

    /// A server with these options, e.g. a configuration that demands
    /// credentials ([`crate::credentials`]).
    pub async fn start_with_options(options: NatsOptions) -> Result<Self, LabError> {
        let monitoring = options.monitoring;
        let scratch = ScratchDir::new("vo-nats")?;
        let config = match &options.config {
            Some(text) => {
                let path = scratch.join("nats.conf");
                std::fs::write(&path, text)
                    .map_err(|e| LabError::io(format!("cannot write {}", path.display()), e))?;
                Some(path)
            }
            None => None,
        };
        let ports_dir = scratch.join("ports");
        std::fs::create_dir_all(&ports_dir)
            .map_err(|e| LabError::io(format!("cannot create {}", ports_dir.display()), e))?;
        // -1: a random free port, chosen by the server itself.
        let mut command = command(
            &scratch,
            "-1",
            monitoring.then_some("-1"),
            config.as_deref(),
        );
        command.arg("--ports_file_dir").arg(&ports_dir);
        let mut process = Managed::spawn("nats-server", command, &scratch.join("nats.log"))?;
        let ports = wait::eventually("nats-server to write its ports file", READY, async || {
            if let Some(status) = process.exited() {
                return Some(Err(exited(&process, status)));
            }
            read_ports_file(&ports_dir, process.pid()?, monitoring).map(Ok)
        })
        .await??;
        ready(&mut process, ports.client).await?;
        Ok(Self {
            ports,
            scratch,
            config,
            process: Some(process),
        })
    }

    pub fn port(&self) -> u16 {
        self.ports.client
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.ports.client)
    }

    pub fn monitoring_url(&self) -> Option<String> {
        self.ports
            .monitoring
            .map(|port| format!("http://127.0.0.1:{port}"))
    }

    /// Restarts on the same ports and store: JetStream data survives, and
    /// clients reconnect to the same URL.
    pub async fn restart(&mut self) -> Result<(), LabError> {
        self.stop().await;
        self.start_again().await
    }

    /// Starts a server that [`stop`](Self::stop) killed again, on the same
    /// ports and store (a no-op while it runs).
    pub async fn start_again(&mut self) -> Result<(), LabError> {
        if self.process.is_some() {
            return Ok(());
        }
        let client = self.ports.client.to_string();
        let monitoring = self.ports.monitoring.map(|port| port.to_string());
        let command = command(
            &self.scratch,
            &client,
            monitoring.as_deref(),
            self.config.as_deref(),
        );
        let mut process = Managed::spawn("nats-server", command, &self.scratch.join("nats.log"))?;
        let ready = ready(&mut process, self.ports.client).await;
        self.process = Some(process);
        ready
    }

    /// Kills the server (clients see the connection drop, as in a crash).
    pub async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().await;
        }
    }

    pub fn logs(&self) -> String {
        self.process.as_ref().map(Managed::logs).unwrap_or_default()
    }
}

/// The command line of a server on `client` (a port, or `-1`) and, when
/// given, `monitoring`, its store in `scratch`.
fn command(
    scratch: &ScratchDir,
    client: &str,
    monitoring: Option<&str>,
    config: Option<&Path>,
) -> Command {
    let mut command = Command::new(tools::nats_server());
    if let Some(config) = config {
        command.arg("-c").arg(config);
    }
    command
        .args(["-js", "-a", "127.0.0.1", "-p", client])
        .arg("-sd")
        .arg(scratch.join("store"));
    if let Some(port) = monitoring {
        command.args(["-m", port]);
    }
    command
}

pub(crate) fn exited(process: &Managed, status: std::process::ExitStatus) -> LabError {
    LabError::Exited {
        name: "nats-server".into(),
        status,
        logs: process.logs(),
    }
}

/// Waits until the server on `port` greets clients (or fails if it exits).
pub(crate) async fn ready(process: &mut Managed, port: u16) -> Result<(), LabError> {
    wait::eventually("nats-server to accept clients", READY, async || {
        if let Some(status) = process.exited() {
            return Some(Err(exited(process, status)));
        }
        greets(port).await.then_some(Ok(()))
    })
    .await?
}

/// What nats-server writes with `--ports_file_dir`: the URLs it listens on.
#[derive(Debug, Deserialize)]
struct PortsFile {
    #[serde(default)]
    nats: Vec<String>,
    #[serde(default)]
    monitoring: Vec<String>,
}

/// The ports of the server with process id `pid`, once its ports file in
/// `dir` (`<executable>_<pid>.ports`) is complete: it names the client port,
/// and the monitoring port when `monitoring` was asked for. `None` until then.
fn read_ports_file(dir: &Path, pid: u32, monitoring: bool) -> Option<Ports> {
    let text = std::fs::read_to_string(ports_file(dir, pid)?).ok()?;
    parse_ports(&text, monitoring)
}

/// The ports file of process `pid` in `dir`, if it has been written.
pub(crate) fn ports_file(dir: &Path, pid: u32) -> Option<PathBuf> {
    let suffix = format!("_{pid}.ports");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(&suffix))
        })
}

/// The ports in a ports file's text; `None` while it is incomplete.
fn parse_ports(text: &str, monitoring: bool) -> Option<Ports> {
    let file: PortsFile = serde_json::from_str(text).ok()?;
    let port = |urls: &[String]| {
        urls.iter()
            .find_map(|url| reqwest::Url::parse(url).ok()?.port())
    };
    let client = port(&file.nats)?;
    let monitoring = if monitoring {
        Some(port(&file.monitoring)?)
    } else {
        None
    };
    Some(Ports { client, monitoring })
}

/// Whether a NATS server on `port` sends its `INFO` greeting.
async fn greets(port: u16) -> bool {
    let Ok(Ok(mut stream)) = tokio::time::timeout(
        Duration::from_millis(500),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    else {
        return false;
    };
    let mut hello = [0u8; 5];
    matches!(
        tokio::time::timeout(Duration::from_millis(500), stream.read_exact(&mut hello)).await,
        Ok(Ok(_)) if &hello == b"INFO "
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ports_file_names_the_client_and_monitoring_ports() {
        let text = r#"{"nats":["nats://127.0.0.1:33249"],"monitoring":["http://127.0.0.1:39929"]}"#;
        assert_eq!(
            parse_ports(text, true),
            Some(Ports {
                client: 33249,
                monitoring: Some(39929)
            })
        );
        assert_eq!(
            parse_ports(text, false),
            Some(Ports {
                client: 33249,
                monitoring: None
            })
        );
    }

    #[test]
    fn an_incomplete_ports_file_is_not_read_yet() {
        assert_eq!(parse_ports("", false), None);
        assert_eq!(parse_ports(r#"{"nats":["nats://127.0.0.1:4"#, false), None);
        assert_eq!(
            parse_ports(r#"{"nats":["nats://127.0.0.1:4222"]}"#, true),
            None,
            "monitoring was asked for"
        );
    }
}
