//! A cluster of real `nats-server`s with JetStream on loopback, joined by
//! routes, each with its own store in one scratch folder, all killed when the
//! cluster is dropped; one can be killed (a crash) and restarted to rejoin.
//!
//! Each server picks its own client port (`-p -1`, read back from its ports
//! file, as [`crate::nats`] does). The route ports cannot be picked that way:
//! a JetStream server in a cluster refuses to start without configured routes
//! ("JetStream cluster requires configured routes"), so every server must be
//! given the others' route ports up front. They are found by binding free
//! ports and releasing them (racy, like the nodes' ports); a start that loses
//! the race (a server cannot bind its route port) is retried with new ports.
//! Every server gets routes to all the others, the same on a restart, which
//! comes back on the same client port, route port and store.
//!
//! The servers do not advertise each other to clients (`--no_advertise`): a
//! client knows exactly the URLs it was given, so one behind a
//! [`FaultProxy`](crate::FaultProxy) cannot walk around it to a server's own
//! port.
//!
//! [`NatsCluster::start`] returns once every server accepts clients and the
//! cluster's JetStream works: a stream replicated on every server (up to
//! three) can be created.

use crate::{
    nats::{exited, ports_file, ready, READY},
    process::Managed,
    scratch::ScratchDir,
    tools, wait, LabError,
};
use async_nats::jetstream;
use serde::Deserialize;
use std::{
    path::{Path, PathBuf},
    time::Duration,
};
use tokio::process::Command;

/// How long a new cluster may take to elect its JetStream meta leader and
/// place a replicated stream.
const JETSTREAM_READY: Duration = Duration::from_secs(30);

/// How many times a start that lost the race for its route ports is tried.
const ATTEMPTS: usize = 3;

#[derive(Debug)]
pub struct NatsCluster {
    // Dropped first: the servers die before their store is removed.
    servers: Vec<Server>,
    /// Its `--cluster_name`, the same over restarts.
    name: String,
    scratch: ScratchDir,
}

#[derive(Debug)]
struct Server {
    /// Its `--server_name`, unique in the cluster, and its folder's name.
    name: String,
    client: u16,
    /// Its route port; `None` in a cluster of one (a plain server).
    route: Option<u16>,
    process: Option<Managed>,
}

impl NatsCluster {
    /// A cluster of `servers` servers (three, say; one is a plain JetStream
    /// server), once every one accepts clients and JetStream works.
    ///
    /// # Panics
    ///
    /// If `servers` is 0.
    pub async fn start(servers: usize) -> Result<NatsCluster, LabError> {
        assert!(servers > 0, "a NATS cluster needs at least one server");
        let mut attempt = 1;
        loop {
            let routes: Vec<Option<u16>> = if servers > 1 {
                free_ports(servers)?.into_iter().map(Some).collect()
            } else {
                vec![None]
            };
            match Self::start_on(&routes).await {
                Err(e) if attempt < ATTEMPTS && lost_a_port(&e) => attempt += 1,
                result => return result,
            }
        }
    }

    /// A cluster of one server per entry of `routes`, listening for routes
    /// on that port (`None`: a server of its own).
    async fn start_on(routes: &[Option<u16>]) -> Result<NatsCluster, LabError> {
        let count = routes.len();
        let scratch = ScratchDir::new("vo-nats-cluster")?;
        let mut cluster = NatsCluster {
            servers: Vec::with_capacity(count),
            name: format!("vo-lab-{:016x}", fastrand::u64(..)),
            scratch,
        };
        let mut ports_dirs = Vec::with_capacity(count);
        for (index, route) in routes.iter().enumerate() {
            let name = format!("n{index}");
            let dir = cluster.scratch.join(&name);
            let ports_dir = dir.join("ports");
            std::fs::create_dir_all(&ports_dir)
                .map_err(|e| LabError::io(format!("cannot create {}", ports_dir.display()), e))?;
            let others: Vec<u16> = routes
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .filter_map(|(_, route)| *route)
                .collect();
            let mut command = command(&dir, &name, "-1", &cluster.name, *route, &others);
            command.arg("--ports_file_dir").arg(&ports_dir);
            let process = Managed::spawn("nats-server", command, &dir.join("nats.log"))?;
            cluster.servers.push(Server {
                name,
                client: 0,
                route: *route,
                process: Some(process),
            });
            ports_dirs.push(ports_dir);
        }
        for (server, ports_dir) in cluster.servers.iter_mut().zip(&ports_dirs) {
            let process = server.process.as_mut().expect("just started");
            server.client = wait::eventually(
                "a clustered nats-server to write its ports file",
                READY,
                async || {
                    if let Some(status) = process.exited() {
                        return Some(Err(exited(process, status)));
                    }
                    read_client_port(ports_dir, process.pid()?).map(Ok)
                },
            )
            .await??;
        }
        for server in &mut cluster.servers {
            let process = server.process.as_mut().expect("just started");
            ready(process, server.client).await?;
        }
        cluster.jetstream_ready().await?;
        Ok(cluster)
    }

    /// How many servers (running or not) it has; never 0.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Each server's `nats://127.0.0.1:<port>`.
    pub fn urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|server| format!("nats://127.0.0.1:{}", server.client))
            .collect()
    }

    /// All the servers' URLs, comma-separated (what a node's `--nats` takes).
    pub fn url(&self) -> String {
        self.urls().join(",")
    }

    /// Server `index`'s client port (for a [`FaultProxy`](crate::FaultProxy)
    /// in front of it).
    pub fn port(&self, index: usize) -> u16 {
        self.servers[index].client
    }

    /// Kills server `index` with SIGKILL, as in a crash.
    pub async fn kill(&mut self, index: usize) {
        if let Some(mut process) = self.servers[index].process.take() {
            process.kill().await;
        }
    }

    /// Restarts server `index` (killing it first if it runs) on the same
    /// client port, route port and store, with routes to all the others: it
    /// rejoins the cluster. Returns once it accepts clients; catching up
    /// with the others happens after that.
    pub async fn restart(&mut self, index: usize) -> Result<(), LabError> {
        self.kill(index).await;
        let others: Vec<u16> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .filter_map(|(_, server)| server.route)
            .collect();
        let server = &self.servers[index];
        let dir = self.scratch.join(&server.name);
        let command = command(
            &dir,
            &server.name,
            &server.client.to_string(),
            &self.name,
            server.route,
            &others,
        );
        let mut process = Managed::spawn("nats-server", command, &dir.join("nats.log"))?;
        let ready = ready(&mut process, server.client).await;
        self.servers[index].process = Some(process);
        ready
    }

    /// Server `index`'s log, over all its runs.
    pub fn logs(&self, index: usize) -> String {
        std::fs::read_to_string(self.log_path(index)).unwrap_or_default()
    }

    fn log_path(&self, index: usize) -> PathBuf {
        self.scratch
            .join(&self.servers[index].name)
            .join("nats.log")
    }

    /// Waits until a stream replicated on every server (up to three) can be
    /// created, which takes a JetStream meta leader and every server in the
    /// mesh; then deletes it.
    async fn jetstream_ready(&mut self) -> Result<(), LabError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(1))
            .retry_on_initial_connect()
            .connect(self.urls())
            .await
            .map_err(|e| LabError::Nats(format!("cannot connect to the cluster: {e}")))?;
        let mut js = jetstream::new(client);
        js.set_timeout(Duration::from_secs(2));
        let name = format!("vo_lab_ready_{:08x}", fastrand::u32(..));
        let config = jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("{name}.>")],
            num_replicas: self.servers.len().min(3),
            storage: jetstream::stream::StorageType::Memory,
            ..Default::default()
        };
        let mut last = String::from("no attempt yet");
        let servers = &mut self.servers;
        let found = wait::eventually(
            "the NATS cluster's JetStream to place a replicated stream",
            JETSTREAM_READY,
            async || {
                for server in servers.iter_mut() {
                    let process = server.process.as_mut()?;
                    if let Some(status) = process.exited() {
                        return Some(Err(exited(process, status)));
                    }
                }
                match js.create_stream(config.clone()).await {
                    Ok(_) => Some(Ok(())),
                    Err(e) => {
                        last = e.to_string();
                        None
                    }
                }
            },
        )
        .await;
        match found {
            Ok(result) => result?,
            Err(_) => {
                return Err(LabError::Timeout(format!(
                    "the NATS cluster's JetStream to place a replicated stream (last error: {last})"
                )))
            }
        }
        js.delete_stream(&name)
            .await
            .map_err(|e| LabError::Nats(format!("cannot delete the stream {name}: {e}")))?;
        Ok(())
    }
}

/// The command line of server `name` (its folder `dir`) on `client` (a port,
/// or `-1`); in a cluster (`route` given), listening for routes on `route` and
/// connecting to `others`.
fn command(
    dir: &Path,
    name: &str,
    client: &str,
    cluster_name: &str,
    route: Option<u16>,
    others: &[u16],
) -> Command {
    let mut command = Command::new(tools::nats_server());
    command
        .args(["-js", "-a", "127.0.0.1", "-p", client])
        .arg("-sd")
        .arg(dir.join("store"))
        .args(["--server_name", name]);
    if let Some(route) = route {
        let routes: Vec<String> = others
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect();
        command
            .args(["--cluster_name", cluster_name])
            .arg("--cluster")
            .arg(format!("nats://127.0.0.1:{route}"))
            .arg("--routes")
            .arg(routes.join(","))
            .arg("--no_advertise");
    }
    command
}

/// Whether a start failed because a server could not bind its port (another
/// process took it after [`free_ports`] found it free).
fn lost_a_port(error: &LabError) -> bool {
    matches!(error, LabError::Exited { logs, .. } if logs.contains("address already in use"))
}

/// `count` distinct free TCP ports on 127.0.0.1 ([`crate::free_port`]).
fn free_ports(count: usize) -> Result<Vec<u16>, LabError> {
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        let port = crate::free_port()?;
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    Ok(ports)
}

/// What a clustered nats-server writes with `--ports_file_dir`.
#[derive(Debug, Deserialize)]
struct PortsFile {
    #[serde(default)]
    nats: Vec<String>,
}

/// The client port of the server with process id `pid`, once its ports file
/// in `dir` names it.
fn read_client_port(dir: &Path, pid: u32) -> Option<u16> {
    let text = std::fs::read_to_string(ports_file(dir, pid)?).ok()?;
    parse_client_port(&text)
}

fn parse_client_port(text: &str) -> Option<u16> {
    let file: PortsFile = serde_json::from_str(text).ok()?;
    file.nats
        .iter()
        .find_map(|url| reqwest::Url::parse(url).ok()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clustered_ports_file_names_the_client_port() {
        let text = r#"{"nats":["nats://127.0.0.1:39103"],"cluster":["nats://127.0.0.1:33953"]}"#;
        assert_eq!(parse_client_port(text), Some(39103));
        assert_eq!(parse_client_port(r#"{"nats":["nats://127.0.0.1:3"#), None);
    }

    #[tokio::test]
    async fn a_route_port_taken_by_someone_else_is_a_lost_race_to_retry() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let [free] = free_ports(1).unwrap()[..] else {
            unreachable!()
        };
        let error = NatsCluster::start_on(&[Some(free), Some(port)])
            .await
            .expect_err("the port is taken");
        assert!(lost_a_port(&error), "{error}");
        assert!(!lost_a_port(&LabError::Timeout("x".into())));
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(5).unwrap();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 5, "{ports:?}");
    }

    #[test]
    fn a_server_routes_to_the_others_only_in_a_cluster() {
        let dir = Path::new("/tmp/x");
        let args = |route, others: &[u16]| -> Vec<String> {
            command(dir, "n1", "-1", "c", route, others)
                .as_std()
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let clustered = args(Some(7001), &[7000, 7002]).join(" ");
        assert!(
            clustered.contains("--server_name n1 --cluster_name c --cluster nats://127.0.0.1:7001 --routes nats://127.0.0.1:7000,nats://127.0.0.1:7002 --no_advertise"),
            "{clustered}"
        );
        let alone = args(None, &[]);
        assert!(!alone.iter().any(|a| a.contains("cluster")), "{alone:?}");
    }
}
