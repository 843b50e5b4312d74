//! 9. Versus nchan and Pushpin: the fan-out benchmark ([`fanout::broadcast`]:
//!    N idle EventSource-style streams, one published message, the same load
//!    generator processes) run against our node and against the two push
//!    servers Debian packages, one server at a time, each alone on the
//!    machine, size by size. Figures per server: connect time; delivery p50,
//!    p99 and max; RSS idle, with the streams open and per connection; CPU
//!    seconds from just before the publish until the last client has the
//!    message. Memory and CPU are summed over every process of the server.
//!
//! The three servers, each on loopback ports the benchmark picks, in a
//! scratch folder, stopped with every process they started when the
//! benchmark ends (also on Ctrl-C: dropping a server kills its process tree):
//!
//! - **Ours**: the node, alone in its cluster on a nats-server, exactly as in
//!   the fan-out benchmark; `GET /api/version/events`, open once its first
//!   report arrived; the message is an announcement written to the cluster's
//!   KV record and published on NATS. One process, 2 runtime threads.
//! - **nchan** (`libnginx-mod-nchan`): nginx with the module loaded,
//!   `worker_processes 2` (one per core, as our node runs one runtime thread
//!   per core; Debian's own nginx.conf says `auto`, which is 2 here too),
//!   `worker_connections` and `worker_rlimit_nofile` at the open-file limit,
//!   access log off, and two locations on one channel:
//!
//!   ```nginx
//!   location = /sub { nchan_subscriber eventsource; nchan_channel_id updates; }
//!   location = /pub { nchan_publisher; nchan_channel_id updates; }
//!   ```
//!
//!   nchan's defaults otherwise (128 MiB shared memory, message buffer).
//!   A stream is open once nchan's `: hi` comment arrived; the message is
//!   `POST /pub` with [`PAYLOAD`] as its body, which subscribers get as
//!   `id: ...` and `data: <payload>`. Processes: nginx's master and 2 workers.
//! - **Pushpin** (`pushpin`, with its dependencies `condure` and `zurl`):
//!   its runner (`pushpin --config`) starting condure (the connection
//!   manager: client sockets), pushpin-proxy and pushpin-handler, as
//!   Debian's `/etc/pushpin/pushpin.conf` does, with every ZeroMQ socket on
//!   IPC in the scratch folder. Its route `* 127.0.0.1:<origin>` sends each
//!   new request to a tiny origin in this process, which answers as a GRIP
//!   backend does: `Content-Type: text/event-stream`, `Grip-Hold: stream`,
//!   `Grip-Channel: updates`, and no body. Pushpin reaches origins through
//!   zurl, which Debian runs as a system service; here a zurl of the
//!   server's own (same settings as Debian's `/etc/zurl.conf`, but allowing
//!   loopback origins, which Debian's denies) counts as one of Pushpin's
//!   processes. A stream is open once its response head arrived; the message
//!   is `POST /publish/` on the handler's HTTP control API (Debian's port
//!   5561; here a free one) with `{"items":[{"channel":"updates","formats":
//!   {"http-stream":{"content":"data: <payload>\n\n"}}}]}`. One change from
//!   the shipped settings: `message_rate`, the handler's deliberate limit of
//!   deliveries per second (2,500 by default, which alone would spread a
//!   19,000-client broadcast over 7.6 s), is raised out of the way so the
//!   figures show what the server can do. The origin is the application, not
//!   the push server: its memory and CPU are not counted (it only works when
//!   a stream opens). Processes: runner, condure, proxy, handler, zurl.
//!
//! Pushpin 1.36 (with condure 1.9) answers some of the streams that open
//! together (the load generators open 256 at a time, as against every
//! server) with `502 Bad Gateway` (at 10,000 streams and more, also `500
//! Internal Server Error`): its proxy logs `code=502`, its handler
//! `zhttp server: error ... received message out of sequence, canceling`,
//! while zurl got `200` from the origin for every one. Those clients are
//! reported as not connected and left out of Pushpin's figures (per
//! connection figures divide by the streams that opened).
//!
//! Each of them holds one file per stream in one process (our node; one
//! nginx worker; condure), so a size runs only where that fits under the
//! open-file limit. RSS summed over processes counts shared pages once per
//! process; that constant cancels out of the per-connection figure.
//!
//! The ratios are ours/theirs: below 1 is better for us. The goals: at the
//! largest size, our RSS per connection and our delivery p99 at most the
//! better of the two.

use crate::{
    client::{self, Stream},
    fanout::{self, Broadcast, FanoutNode, Load},
    report::{Goal, Report},
    sys,
};
use anyhow::{bail, Context};
use std::{fmt::Write as _, net::SocketAddr, path::Path, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    process::Command,
    task::JoinHandle,
};
use vo_lab::{free_port, process::Managed, scratch::ScratchDir, wait, NatsServer};

/// The published message: an event the size and shape of a node's report,
/// with the announced version the clients wait for.
pub const PAYLOAD: &str = concat!(
    r#"{"node_version":"1.0.0","announced_version":"2.0.0","#,
    r#""cluster":{"members":1,"versions":{"1.0.0":1},"state":"announced"},"#,
    r#""previous_version":"1.0.0"}"#
);
/// What shows the message in a stream, for every server.
const MARKER: &str = r#""announced_version":"2.0.0""#;
const CHANNEL: &str = "updates";
const NCHAN_MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";
/// How long a push server may take to start.
const READY: Duration = Duration::from_secs(15);

pub struct Args {
    pub sizes: Vec<usize>,
    pub sources: u8,
}

/// The figures the ratios and goals compare.
struct Compared {
    rss_per_connection: f64,
    p99: f64,
}

impl Compared {
    fn of(b: &Broadcast) -> Option<Self> {
        let summary = crate::report::summarize(&b.latencies)?;
        Some(Self {
            rss_per_connection: b.rss_per_connection_kib(),
            p99: summary.p99,
        })
    }
}

pub async fn run(report: &mut Report, binary: &Path, args: &Args) -> anyhow::Result<()> {
    report.section(
        "9 push servers",
        "9. Versus nchan and Pushpin: one message to N idle EventSource streams",
    );
    for (program, package) in [
        (Path::new(NCHAN_MODULE), "libnginx-mod-nchan"),
        (&vo_lab::tools::nginx(), "nginx"),
        (Path::new("/usr/bin/pushpin"), "pushpin"),
        (Path::new("/usr/bin/condure"), "condure"),
        (Path::new("/usr/bin/zurl"), "zurl"),
    ] {
        if !program.exists() {
            bail!(
                "{} is missing: install {package} (scripts/bench.sh does)",
                program.display()
            );
        }
    }
    report.input("ours", format!("{} (2 runtime threads)", binary.display()));
    report.input(
        "nchan",
        "nginx + libnginx-mod-nchan, 2 worker processes, eventsource subscriber",
    );
    report.input(
        "pushpin",
        "runner + condure + proxy + handler + zurl, http-stream publish",
    );
    report.input("message", format!("{} bytes of JSON", PAYLOAD.len()));
    let fd_limit = fanout::load_limits(report, args.sources);
    let nats = NatsServer::start().await?;
    let client = async_nats::connect(nats.url()).await?;
    let mut largest = None;
    for &n in &args.sizes {
        if !fanout::fits(n, fd_limit) {
            report.note(&format!(
                "{n} clients: not run. Each server holds one file per stream in one process \
                 (our node, one nginx worker, condure), and this machine's open-file limit is \
                 {fd_limit} (hard; raising it needs CAP_SYS_RESOURCE, which this sandbox withholds)"
            ));
            continue;
        }
        let node = FanoutNode::start(binary, &nats.url(), n).await?;
        let ours = node.broadcast(&client, n, args.sources).await?;
        print(report, n, "ours", &ours);
        node.stop().await?;

        let mut theirs = Vec::new();
        for kind in [Kind::Nchan, Kind::Pushpin] {
            let server = PushServer::start(kind, fd_limit).await?;
            let b = server.broadcast(n, args.sources).await?;
            print(report, n, kind.name(), &b);
            server.stop().await;
            theirs.push((kind, b));
        }
        let ours = Compared::of(&ours).context("no client of our node got the message")?;
        for (kind, b) in &theirs {
            let Some(them) = Compared::of(b) else {
                report.note(&format!(
                    "[{n}] no client of {} got the message",
                    kind.name()
                ));
                continue;
            };
            let name = kind.name();
            report.figure(
                &format!("[{n}] RSS/conn ours/{name}"),
                ours.rss_per_connection / them.rss_per_connection,
                "",
                None,
            );
            report.figure(
                &format!("[{n}] delivery p99 ours/{name}"),
                ours.p99 / them.p99,
                "",
                None,
            );
        }
        let best = |f: fn(&Compared) -> f64| {
            theirs
                .iter()
                .filter_map(|(_, b)| Compared::of(b))
                .map(|c| f(&c))
                .fold(f64::INFINITY, f64::min)
        };
        largest = Some((
            n,
            ours.rss_per_connection / best(|c| c.rss_per_connection),
            ours.p99 / best(|c| c.p99),
        ));
    }
    if let Some((n, rss, p99)) = largest {
        report.figure(
            &format!("[{n}] RSS/conn ours/min(nchan, pushpin)"),
            rss,
            "",
            Some(Goal::AtMost(1.0)),
        );
        report.figure(
            &format!("[{n}] delivery p99 ours/min(nchan, pushpin)"),
            p99,
            "",
            Some(Goal::AtMost(1.0)),
        );
    }
    Ok(())
}

/// One server's figures at size `n`.
fn print(report: &mut Report, n: usize, name: &str, b: &Broadcast) {
    report.input(
        &format!("[{n}] {name}: clients connected"),
        format!("{} by {} load generators", b.connected, b.workers),
    );
    if b.failed > 0 {
        report.note(&format!(
            "[{n}] {name}: {} of {n} clients could not connect: {}",
            b.failed, b.error
        ));
    }
    report.input(
        &format!("[{n}] {name}: processes, streams open"),
        processes(b),
    );
    report.figure(&format!("[{n}] {name} connect"), b.connect_s, "s", None);
    report.distribution(&format!("[{n}] {name} delivery"), &b.latencies, "ms", None);
    if b.missing > 0 {
        report.note(&format!(
            "[{n}] {}: {} clients never received the message",
            name, b.missing
        ));
    }
    let mib = |bytes: u64| bytes as f64 / 1_048_576.0;
    report.figure(
        &format!("[{n}] {name} RSS, idle"),
        mib(b.rss_idle),
        "MiB",
        None,
    );
    report.figure(
        &format!("[{n}] {name} RSS, streams open"),
        mib(b.rss_open),
        "MiB",
        None,
    );
    report.figure(
        &format!("[{n}] {name} RSS per connection"),
        b.rss_per_connection_kib(),
        "KiB",
        None,
    );
    report.figure(
        &format!("[{n}] {name} CPU for the broadcast"),
        b.cpu_s,
        "s",
        None,
    );
}

/// "nginx (12 files), nginx (9804 files), ..." for every process of a server.
fn processes(b: &Broadcast) -> String {
    let listed: Vec<String> = b
        .processes
        .iter()
        .map(|(name, files)| format!("{name} ({files} files)"))
        .collect();
    listed.join(", ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nchan,
    Pushpin,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Nchan => "nchan",
            Kind::Pushpin => "pushpin",
        }
    }

    fn stream(self) -> Stream<'static> {
        match self {
            Kind::Nchan => Stream {
                path: "/sub",
                ready: b": hi\n\n",
            },
            Kind::Pushpin => Stream {
                path: "/stream",
                ready: b"",
            },
        }
    }
}

/// nchan or Pushpin, running.
struct PushServer {
    kind: Kind,
    port: u16,
    publish_url: String,
    /// The processes it was started as; each one's descendants are the
    /// server's too (nginx's workers; Pushpin's services).
    processes: Vec<Managed>,
    /// Pushpin's origin, answering in this process.
    origin: Option<JoinHandle<()>>,
    http: reqwest::Client,
    scratch: ScratchDir,
}

impl PushServer {
    async fn start(kind: Kind, fd_limit: u64) -> anyhow::Result<Self> {
        let scratch = ScratchDir::new(&format!("vo-bench-{}", kind.name()))?;
        let port = free_port()?;
        // nchan publishes on the subscribers' port; Pushpin's handler has its own.
        let publish_port = match kind {
            Kind::Nchan => port,
            Kind::Pushpin => free_port()?,
        };
        let mut server = Self {
            kind,
            port,
            publish_url: String::new(),
            processes: Vec::new(),
            origin: None,
            http: reqwest::Client::new(),
            scratch,
        };
        let dir = server.scratch.path().to_owned();
        match kind {
            Kind::Nchan => {
                std::fs::create_dir_all(dir.join("tmp"))?;
                let conf = dir.join("nginx.conf");
                std::fs::write(&conf, nchan_config(port, fd_limit, &dir))?;
                let mut command = Command::new(vo_lab::tools::nginx());
                command
                    .arg("-p")
                    .arg(&dir)
                    .arg("-e")
                    .arg(dir.join("error.log"))
                    .arg("-c")
                    .arg(&conf);
                server.spawn("nginx", command)?;
                server.publish_url = format!("http://127.0.0.1:{publish_port}/pub");
            }
            Kind::Pushpin => {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let origin = listener.local_addr()?;
                server.origin = Some(tokio::spawn(grip_origin(listener)));
                let run = dir.join("run");
                std::fs::create_dir_all(&run)?;
                std::fs::create_dir_all(dir.join("log"))?;
                std::fs::write(dir.join("routes"), format!("* {origin}\n"))?;
                std::fs::write(dir.join("zurl.conf"), zurl_config(&run))?;
                let conf = dir.join("pushpin.conf");
                std::fs::write(&conf, pushpin_config(port, publish_port, &dir))?;
                let mut zurl = Command::new("/usr/bin/zurl");
                zurl.arg(format!("--config={}", dir.join("zurl.conf").display()));
                server.spawn("zurl", zurl)?;
                let mut pushpin = Command::new("/usr/bin/pushpin");
                pushpin.arg("--config").arg(&conf);
                server.spawn("pushpin", pushpin)?;
                server.publish_url = format!("http://127.0.0.1:{publish_port}/publish/");
            }
        }
        server.until_ready(publish_port).await?;
        Ok(server)
    }

    fn spawn(&mut self, name: &str, command: Command) -> anyhow::Result<()> {
        let log = self.scratch.join(format!("{name}.out"));
        self.processes.push(Managed::spawn(name, command, &log)?);
        Ok(())
    }

    /// Until a stream opens and the publish port accepts connections.
    async fn until_ready(&mut self, publish_port: u16) -> anyhow::Result<()> {
        let target = self.target();
        let stream = self.kind.stream();
        let ready = wait::eventually(
            &format!("{} to open a stream", self.kind.name()),
            READY,
            async || {
                if let Some(gone) = self.processes.iter_mut().find_map(|p| {
                    let status = p.exited()?;
                    Some(format!("{} exited ({status}): {}", p.name(), p.logs()))
                }) {
                    return Some(Err(anyhow::anyhow!(gone)));
                }
                let opened = async {
                    let mut sse = client::SseClient::open_path(
                        target,
                        client::loopback_source(1),
                        stream.path,
                    )
                    .await?;
                    if !stream.ready.is_empty() {
                        sse.wait_for(stream.ready).await?;
                    }
                    tokio::net::TcpStream::connect(("127.0.0.1", publish_port)).await?;
                    anyhow::Ok(())
                };
                match tokio::time::timeout(Duration::from_secs(2), opened).await {
                    Ok(Ok(())) => Some(Ok(())),
                    _ => None,
                }
            },
        )
        .await;
        match ready {
            Ok(outcome) => outcome,
            Err(e) => Err(anyhow::anyhow!("{e}: {}", self.logs())),
        }
    }

    fn target(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn roots(&self) -> Vec<u32> {
        self.processes.iter().filter_map(Managed::pid).collect()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for p in &self.processes {
            let _ = write!(out, "\n{}: {}", p.name(), p.logs());
        }
        out
    }

    async fn broadcast(&self, n: usize, sources: u8) -> anyhow::Result<Broadcast> {
        let load = Load {
            target: self.target(),
            stream: self.kind.stream(),
            marker: MARKER,
            clients: n,
            sources,
        };
        fanout::broadcast(&self.roots(), &load, self.publish()).await
    }

    /// Publishes [`PAYLOAD`]; returns when (`sys::mono_ns`) it was sent.
    async fn publish(&self) -> anyhow::Result<u64> {
        let body = match self.kind {
            Kind::Nchan => PAYLOAD.to_owned(),
            Kind::Pushpin => serde_json::json!({
                "items": [{
                    "channel": CHANNEL,
                    "formats": {"http-stream": {"content": format!("data: {PAYLOAD}\n\n")}},
                }]
            })
            .to_string(),
        };
        let request = self.http.post(&self.publish_url).body(body);
        let at = sys::mono_ns();
        let response = request.send().await.context("publishing")?;
        if !response.status().is_success() {
            bail!(
                "{} refused the publish: {} {}",
                self.kind.name(),
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        Ok(at)
    }

    /// SIGTERM to each process it started (Pushpin's runner stops its
    /// services, nginx's master its workers); whatever is left is killed on drop.
    async fn stop(mut self) {
        for p in self.processes.iter_mut().rev() {
            let _ = p.terminate(Duration::from_secs(5)).await;
        }
    }
}

impl Drop for PushServer {
    fn drop(&mut self) {
        // Pushpin's runner puts each service in a process group of its own,
        // so killing the runner's group (what dropping a `Managed` does)
        // would leave them: kill every descendant first.
        for root in self.roots() {
            for pid in sys::process_tree(root).into_iter().skip(1) {
                // SAFETY: kill(2) on a descendant of a process we started.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
        if let Some(origin) = &self.origin {
            origin.abort();
        }
    }
}

/// A GRIP backend: every request is held open as a stream on [`CHANNEL`].
/// One request per connection (`Connection: close`): no keep-alive race
/// between zurl reusing a connection and the origin closing it.
async fn grip_origin(listener: TcpListener) {
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
        Grip-Hold: stream\r\nGrip-Channel: updates\r\nContent-Length: 0\r\n\
        Connection: close\r\n\r\n";
    while let Ok((mut socket, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut head = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            while client::find(&head, b"\r\n\r\n").is_none() {
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => head.extend_from_slice(&chunk[..read]),
                }
            }
            let _ = socket.write_all(RESPONSE).await;
            let _ = socket.shutdown().await;
        });
    }
}

/// nginx.conf for nchan on `port`, everything under `dir`.
fn nchan_config(port: u16, fd_limit: u64, dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "# Written by vo-bench (push servers); removed when it ends.
load_module {NCHAN_MODULE};
daemon off;
worker_processes 2;
worker_rlimit_nofile {fd_limit};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections {fd_limit}; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location = /sub {{ nchan_subscriber eventsource; nchan_channel_id {CHANNEL}; }}
        location = /pub {{ nchan_publisher; nchan_channel_id {CHANNEL}; }}
    }}
}}
"
    )
}

/// pushpin.conf: Debian's, with ports and folders of its own and every
/// ZeroMQ socket on IPC under `dir`.
fn pushpin_config(port: u16, publish_port: u16, dir: &Path) -> String {
    let run = dir.join("run");
    let (dir, run) = (dir.display(), run.display());
    format!(
        "# Written by vo-bench (push servers); removed when it ends.
[global]
include={{libdir}}/internal.conf
rundir={run}
ipc_prefix=pushpin-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:{port}
logdir={dir}/log
log_level=2
client_buffer_size=8192
client_maxconn=50000
condure_bin=/usr/bin/condure

[proxy]
routesfile={dir}/routes
updates_check=off
sig_iss=pushpin
sig_key=changeme
zurl_out_specs=ipc://{run}/zurl-in
zurl_out_stream_specs=ipc://{run}/zurl-in-stream
zurl_in_specs=ipc://{run}/zurl-out

[handler]
push_in_spec=ipc://{run}/push-in
push_in_sub_specs=ipc://{run}/push-in-sub
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port={publish_port}
stats_spec=ipc://{run}/stats
command_spec=ipc://{run}/command
message_rate=1000000
message_hwm=25000
"
    )
}

/// zurl.conf: Debian's `/etc/zurl.conf` on IPC under `run`, allowing loopback.
fn zurl_config(run: &Path) -> String {
    let run = run.display();
    format!(
        "[General]
in_spec=ipc://{run}/zurl-in
in_stream_spec=ipc://{run}/zurl-in-stream
out_spec=ipc://{run}/zurl-out
defpolicy=allow
allow=
deny=
max_open_requests=2000
buffer_size=200000
timeout=600
in_hwm=1000
out_hwm=1000
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_carries_the_marker() {
        assert!(PAYLOAD.contains(MARKER));
        serde_json::from_str::<serde_json::Value>(PAYLOAD).unwrap();
    }

    #[test]
    fn nchan_publishes_and_subscribes_on_one_channel() {
        let text = nchan_config(8080, 20_000, Path::new("/tmp/x"));
        assert!(text.contains("load_module /usr/lib/nginx/modules/ngx_nchan_module.so;"));
        assert!(text.contains("worker_processes 2;"));
        assert!(text.contains("worker_connections 20000;"));
        assert!(text.contains("nchan_subscriber eventsource; nchan_channel_id updates;"));
        assert!(text.contains("nchan_publisher; nchan_channel_id updates;"));
    }

    #[test]
    fn pushpin_listens_and_publishes_where_told() {
        let text = pushpin_config(7999, 5561, Path::new("/tmp/y"));
        assert!(text.contains("http_port=127.0.0.1:7999"));
        assert!(text.contains("push_in_http_port=5561"));
        assert!(text.contains("zurl_out_specs=ipc:///tmp/y/run/zurl-in"));
        assert!(zurl_config(Path::new("/tmp/y/run")).contains("in_spec=ipc:///tmp/y/run/zurl-in\n"));
        assert!(!text.contains("tcp://"), "no fixed ports: {text}");
    }
}
