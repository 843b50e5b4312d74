//! The node at its open-files limit: the accept loop must not stall. A
//! connection beyond the limit is refused at once with a 503, and a health
//! check still gets an answer (200, or 503 while every descriptor is taken)
//! rather than hanging in the backlog; `--max-streams` defaults to what the
//! limit allows.

use crate::support::DEADLINE;
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A node whose process may open `files` descriptors at most.
fn node_with_open_files(files: u64, extra: &[&str]) -> (Child, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let site = std::env::temp_dir().join(format!("vo-limits-site-{}", std::process::id()));
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_version-observer"));
    command
        .arg("--site-root")
        .arg(&site)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: files,
                rlim_max: files,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().unwrap();
    let deadline = Instant::now() + DEADLINE;
    while get(port, "/healthz", Duration::from_secs(1)).is_none() {
        assert!(Instant::now() < deadline, "the node never served");
        std::thread::sleep(Duration::from_millis(50)); // poll interval
    }
    (child, port)
}

/// The status line of `GET path`, if an answer came within `within`.
fn get(port: u16, path: &str, within: Duration) -> Option<String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(within)).ok()?;
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut head = [0u8; 64];
    let n = tcp.read(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]).into_owned();
    text.starts_with("HTTP/1.1")
        .then(|| text.lines().next().unwrap_or_default().to_owned())
}

fn stop(mut child: Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

#[test]
fn out_of_descriptors_connections_are_refused_at_once_and_health_checks_answer() {
    let (child, port) = node_with_open_files(96, &["--max-streams", "10000"]);
    // Hold streams until the process has no descriptor left.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)) else {
            break;
        };
        tcp.write_all(b"GET /api/version/events HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = [0u8; 12];
        match tcp.read(&mut head) {
            Ok(n) if head[..n].starts_with(b"HTTP/1.1 200") => held.push(tcp),
            Ok(n) if head[..n].starts_with(b"HTTP/1.1 503") => refused += 1,
            other => panic!("neither a stream nor a 503: {other:?}"),
        }
        if refused >= 5 {
            break;
        }
    }
    assert!(
        refused >= 5,
        "the limit was never reached ({} streams held)",
        held.len()
    );
    assert!(held.len() < 96, "{} streams on 96 descriptors", held.len());
    // At the limit, a health check is answered at once, not left hanging.
    let started = Instant::now();
    let answer = get(port, "/healthz", Duration::from_secs(3)).expect("an answer at the limit");
    assert!(answer.contains("200") || answer.contains("503"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Once streams go, it serves normally again.
    held.clear();
    let deadline = Instant::now() + DEADLINE;
    while get(port, "/healthz", Duration::from_secs(1)).is_none_or(|a| !a.contains("200")) {
        assert!(Instant::now() < deadline, "never recovered");
        std::thread::sleep(Duration::from_millis(50)); // poll interval
    }
    stop(child);
}

#[test]
fn max_streams_defaults_to_what_the_descriptor_limit_allows() {
    let (child, port) = node_with_open_files(128, &[]);
    // 128 descriptors: 96 streams, the rest kept for everything else.
    let mut held = Vec::new();
    let mut first_refusal = None;
    for i in 0..128 {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.write_all(b"GET /api/version/events HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = [0u8; 12];
        let n = tcp.read(&mut head).unwrap();
        if head[..n].starts_with(b"HTTP/1.1 503") {
            first_refusal = Some(i);
            break;
        }
        held.push(tcp);
    }
    assert_eq!(
        first_refusal,
        Some(96),
        "refused with a 503 past the default"
    );
    // The reserve still serves pages.
    assert!(get(port, "/healthz", Duration::from_secs(3)).is_some_and(|a| a.contains("200")));
    drop(held);
    stop(child);
}
