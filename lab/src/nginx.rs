//! Debian's nginx on loopback: a round-robin load balancer in front of the
//! nodes, set up for Server-Sent Events (no buffering, long read timeouts), or
//! a static file server for comparisons. It runs in the foreground as one
//! process (`master_process off`) unless more workers are asked for, so a lab
//! that dies takes it along; with workers, dropping it kills its whole process
//! group (see `process`).

use crate::{free_port, process::Managed, scratch::ScratchDir, tools, wait, LabError};
use std::{fmt::Write as _, path::PathBuf, time::Duration};
use tokio::process::Command;

const READY: Duration = Duration::from_secs(10);

/// What nginx serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// Round robin over nodes on these loopback ports; a node that refuses
    /// connections is skipped, so slots may be empty.
    Proxy { upstreams: Vec<u16> },
    /// Files from this folder.
    Static { root: PathBuf },
    /// `upstream` and `server` blocks given as text (e.g. the README's),
    /// placed in the `http` block as they are, listening on `port`.
    Raw { blocks: String },
}

#[derive(Debug)]
pub struct Nginx {
    port: u16,
    scratch: ScratchDir,
    process: Managed,
}

impl Nginx {
    /// Starts nginx on `port` (0: a free one) with `workers` worker processes.
    pub async fn start(port: u16, site: &Site, workers: usize) -> Result<Self, LabError> {
        let port = if port == 0 { free_port()? } else { port };
        let scratch = ScratchDir::new("vo-nginx")?;
        for dir in ["tmp", "logs"] {
            std::fs::create_dir_all(scratch.join(dir))
                .map_err(|e| LabError::io("cannot prepare nginx's folders", e))?;
        }
        // Workers may run as an unprivileged user: let them use the temp folder.
        set_mode(&scratch.join("tmp"), 0o777)?;
        set_mode(scratch.path(), 0o755)?;
        let conf = scratch.join("nginx.conf");
        let text = config(port, site, workers, &scratch.path().to_string_lossy());
        std::fs::write(&conf, text).map_err(|e| LabError::io("cannot write nginx.conf", e))?;

        let mut command = Command::new(tools::nginx());
        command
            .arg("-p")
            .arg(scratch.path())
            .arg("-e")
            .arg(scratch.join("logs/error.log"))
            .arg("-c")
            .arg(&conf);
        let mut process = Managed::spawn("nginx", command, &scratch.join("nginx.out"))?;
        let ready = wait::eventually("nginx to accept connections", READY, async || {
            if let Some(status) = process.exited() {
                let logs = std::fs::read_to_string(scratch.join("logs/error.log"))
                    .unwrap_or_default()
                    + &process.logs();
                return Some(Err(LabError::Exited {
                    name: "nginx".into(),
                    status,
                    logs,
                }));
            }
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| Ok(()))
        })
        .await;
        let nginx = Self {
            port,
            scratch,
            process,
        };
        ready??;
        Ok(nginx)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.scratch.join("logs/error.log")).unwrap_or_default()
    }

    /// Stops nginx (SIGTERM: a fast shutdown).
    pub async fn stop(mut self) {
        let _ = self.process.terminate(Duration::from_secs(5)).await;
    }
}

fn set_mode(path: &std::path::Path, mode: u32) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io(format!("cannot chmod {}", path.display()), e))
}

/// nginx.conf for `site` on `port`, everything kept under `prefix`.
pub fn config(port: u16, site: &Site, workers: usize, prefix: &str) -> String {
    let mut c = String::new();
    let w = &mut c;
    let _ = writeln!(w, "# Written by vo-lab; removed when the lab stops.");
    let _ = writeln!(w, "daemon off;");
    if workers <= 1 {
        // One process: nothing is left behind if the lab is killed.
        let _ = writeln!(w, "master_process off;");
    } else {
        let _ = writeln!(w, "worker_processes {workers};");
    }
    let _ = writeln!(w, "pid {prefix}/nginx.pid;");
    let _ = writeln!(w, "error_log {prefix}/logs/error.log warn;");
    let _ = writeln!(w, "events {{ worker_connections 16384; }}");
    let _ = writeln!(w, "http {{");
    let _ = writeln!(w, "    access_log off;");
    for kind in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        let _ = writeln!(w, "    {kind}_temp_path {prefix}/tmp/{kind};");
    }
    match site {
        Site::Proxy { upstreams } => {
            let _ = writeln!(w, "    upstream nodes {{");
            for upstream in upstreams {
                // A stopped node refuses connections: skip it for 1 s, then try again.
                let _ = writeln!(
                    w,
                    "        server 127.0.0.1:{upstream} max_fails=1 fail_timeout=1s;"
                );
            }
            let _ = writeln!(w, "        keepalive 32;");
            let _ = writeln!(w, "    }}");
            // The same nodes for the streams alone: a stream that retries a
            // node nginx marked down holds that node's trial for as long as it
            // lives; page loads must not wait on it (README, Running a cluster).
            let _ = writeln!(w, "    upstream streams {{");
            for upstream in upstreams {
                let _ = writeln!(
                    w,
                    "        server 127.0.0.1:{upstream} max_fails=1 fail_timeout=1s;"
                );
            }
            let _ = writeln!(w, "    }}");
            let _ = writeln!(w, "    server {{");
            let _ = writeln!(w, "        listen 127.0.0.1:{port};");
            let _ = writeln!(w, "        proxy_http_version 1.1;");
            let _ = writeln!(w, "        proxy_set_header Connection \"\";");
            let _ = writeln!(w, "        proxy_set_header Host $host;");
            let _ = writeln!(w, "        proxy_connect_timeout 1s;");
            // A node that is down or full (503): the request goes to the next one.
            let _ = writeln!(
                w,
                "        proxy_next_upstream error timeout http_502 http_503;"
            );
            // Which node answered (the last one tried), for benchmarks.
            let _ = writeln!(w, "        add_header X-Upstream $upstream_addr always;");
            let _ = writeln!(w, "        location / {{ proxy_pass http://nodes; }}");
            let _ = writeln!(w, "        location = /api/version/events {{");
            let _ = writeln!(w, "            proxy_pass http://streams;");
            // Server-Sent Events: pass every byte on at once, and let an idle
            // stream (a keep-alive comment every 30 s by default) live for hours.
            let _ = writeln!(w, "            proxy_buffering off;");
            let _ = writeln!(w, "            proxy_cache off;");
            let _ = writeln!(w, "            proxy_read_timeout 1h;");
            let _ = writeln!(w, "            proxy_send_timeout 1h;");
            let _ = writeln!(w, "        }}");
            let _ = writeln!(w, "    }}");
        }
        Site::Raw { blocks } => {
            for line in blocks.lines() {
                let _ = writeln!(w, "    {line}");
            }
        }
        Site::Static { root } => {
            let _ = writeln!(w, "    sendfile on;");
            let _ = writeln!(w, "    server {{");
            let _ = writeln!(w, "        listen 127.0.0.1:{port};");
            let _ = writeln!(w, "        root {};", root.display());
            let _ = writeln!(w, "        location / {{ index index.html; }}");
            let _ = writeln!(w, "    }}");
        }
    }
    let _ = writeln!(w, "}}");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_balancer_round_robins_and_passes_events_unbuffered() {
        let text = config(
            8080,
            &Site::Proxy {
                upstreams: vec![4001, 4002, 4003],
            },
            1,
            "/tmp/x",
        );
        for port in [4001, 4002, 4003] {
            assert!(text.contains(&format!("server 127.0.0.1:{port} max_fails=1")));
        }
        assert!(text.contains("listen 127.0.0.1:8080;"));
        assert!(text.contains("master_process off;"));
        let events = &text[text.find("location = /api/version/events").unwrap()..];
        assert!(events.contains("proxy_buffering off;"));
        assert!(events.contains("proxy_read_timeout 1h;"));
        // Streams on an upstream of their own, every node in both.
        assert!(events.contains("proxy_pass http://streams;"));
        let streams = &text[text.find("upstream streams").unwrap()..];
        let streams = &streams[..streams.find('}').unwrap()];
        for port in [4001, 4002, 4003] {
            assert!(streams.contains(&format!("server 127.0.0.1:{port} ")));
        }
        assert!(text.contains("proxy_next_upstream error timeout"));
        assert!(
            !text.contains("round_robin"),
            "round robin is nginx's default"
        );
    }

    #[test]
    fn a_static_site_serves_its_folder_with_workers() {
        let text = config(
            9000,
            &Site::Static {
                root: "/srv/site".into(),
            },
            2,
            "/tmp/y",
        );
        assert!(text.contains("root /srv/site;"));
        assert!(text.contains("worker_processes 2;"));
        assert!(!text.contains("master_process off;"));
        assert!(!text.contains("upstream"));
    }
}
