//! A real `nats-server` with JetStream, on a free loopback port, its store in a
//! scratch folder (so a restart keeps the KV buckets), killed when dropped.

use crate::{free_port, process::Managed, scratch::ScratchDir, tools, wait, LabError};
use std::time::Duration;
use tokio::{io::AsyncReadExt, net::TcpStream, process::Command};

/// How long a nats-server may take to accept clients.
const READY: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    monitor_port: Option<u16>,
    scratch: ScratchDir,
    process: Option<Managed>,
}

impl NatsServer {
    pub async fn start() -> Result<Self, LabError> {
        Self::start_with(false).await
    }

    /// With `monitoring`, the server also serves its HTTP monitoring endpoints
    /// (`/varz` counts messages), on [`monitoring_url`](Self::monitoring_url).
    pub async fn start_with(monitoring: bool) -> Result<Self, LabError> {
        let mut server = Self {
            port: free_port()?,
            monitor_port: if monitoring { Some(free_port()?) } else { None },
            scratch: ScratchDir::new("vo-nats")?,
            process: None,
        };
        server.restart().await?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn monitoring_url(&self) -> Option<String> {
        self.monitor_port
            .map(|port| format!("http://127.0.0.1:{port}"))
    }

    /// (Re)starts on the same port and store: JetStream data survives.
    pub async fn restart(&mut self) -> Result<(), LabError> {
        self.stop().await;
        let mut command = Command::new(tools::nats_server());
        command
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(self.scratch.join("store"));
        if let Some(port) = self.monitor_port {
            command.args(["-m", &port.to_string()]);
        }
        let mut process = Managed::spawn("nats-server", command, &self.scratch.join("nats.log"))?;
        let port = self.port;
        let ready = wait::eventually("nats-server to accept clients", READY, async || {
            if let Some(status) = process.exited() {
                return Some(Err(LabError::Exited {
                    name: "nats-server".into(),
                    status,
                    logs: process.logs(),
                }));
            }
            greets(port).await.then_some(Ok(()))
        })
        .await;
        self.process = Some(process);
        ready?
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
