//! Start-up errors of the real binary: bad input stops it with a message that
//! names the value, and a non-zero exit.

use std::{net::TcpListener, process::Command};

/// A site folder with a `pkg/` bundle, so that only the flag under test is wrong.
fn site() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vo-startup-site-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("pkg")).unwrap();
    dir
}

fn run(args: &[&str]) -> (i32, String) {
    let site = site();
    let out = Command::new(env!("CARGO_BIN_EXE_version-observer"))
        .arg("--site-root")
        .arg(&site)
        .args(args)
        .env_remove("VO_APP_VERSION")
        .env_remove("VO_LISTEN")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_non_semver_app_version_stops_startup_naming_it() {
    for bad in ["1.0", "one", "1.0.0-"] {
        let (code, stderr) = run(&["--listen", "127.0.0.1:0", "--app-version", bad]);
        assert_ne!(code, 0, "{bad} was accepted");
        assert!(stderr.contains(&format!("'{bad}'")), "{bad}: {stderr}");
        assert!(stderr.contains("not a semantic version"), "{stderr}");
    }
}

#[test]
fn a_bad_version_from_the_environment_is_named_too() {
    let out = Command::new(env!("CARGO_BIN_EXE_version-observer"))
        .args(["--listen", "127.0.0.1:0"])
        .env("VO_APP_VERSION", "2.x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'2.x'"));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run(&["--listen", &addr]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn a_missing_site_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_version-observer"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--site-root",
            "/nonexistent/site",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/site"), "{stderr}");
    assert!(stderr.contains("pkg/"), "{stderr}");
}

#[test]
fn bad_release_flags_stop_startup_naming_them() {
    for (flag, bad, why) in [
        ("--release-severity", "urgent", "use optional or required"),
        ("--release-notes-url", "javascript:alert(1)", "https://"),
        ("--release-notes-url", "//evil.example/notes", "single '/'"),
        (
            "--release-notes-url",
            "https://example.com/a b",
            "printable ASCII",
        ),
        ("--min-supported-version", "1.4", "not a semantic version"),
    ] {
        let (code, stderr) = run(&["--listen", "127.0.0.1:0", flag, bad]);
        assert_eq!(code, 2, "{flag} {bad} was accepted: {stderr}");
        assert!(stderr.contains(&format!("'{bad}'")), "{bad}: {stderr}");
        assert!(stderr.contains(flag), "{stderr}");
        assert!(stderr.contains(why), "{bad}: {stderr}");
    }
    // From the environment too.
    let out = Command::new(env!("CARGO_BIN_EXE_version-observer"))
        .args(["--listen", "127.0.0.1:0"])
        .env("VO_RELEASE_NOTES_URL", "data:text/html,x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'data:text/html,x'"));
}

#[test]
fn a_bad_nats_url_stops_startup_naming_it() {
    for bad in [
        "localhost:4222",
        "nats://a:1,,nats://b:2",
        "nats://u:secret@h:99999",
    ] {
        let (code, stderr) = run(&["--listen", "127.0.0.1:0", "--nats", bad]);
        assert_ne!(code, 0, "{bad} was accepted");
        assert!(stderr.contains("invalid NATS URL"), "{bad}: {stderr}");
        assert!(!stderr.contains("secret"), "the password leaked: {stderr}");
    }
}

#[test]
fn the_environment_wins_over_the_file_and_flags_over_both() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = site();
    let file = dir.join("node.toml");
    // The file alone would start a node on a free port...
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\napp-version = \"1.0\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_version-observer"))
        .arg("--site-root")
        .arg(&dir)
        .arg("--config")
        .arg(&file)
        .args(["--app-version", "2.0.0"])
        .env("VO_LISTEN", &addr)
        .env_remove("VO_APP_VERSION")
        .output()
        .unwrap();
    // ...but the environment's address wins (and the flag's version wins
    // over the file's bad one, which is never even read).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn leptos_toml_in_the_working_directory_is_read_and_checked() {
    let dir = site();
    let cwd = dir.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::write(cwd.join("Leptos.toml"), "node-timeout-ms = 5\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_version-observer"))
        .current_dir(&cwd)
        .arg("--site-root")
        .arg(&dir)
        .env_remove("VO_NODE_TIMEOUT_MS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("Leptos.toml"), "{stderr}");
    assert!(stderr.contains("'5'"), "{stderr}");
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_version-observer"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--app-version",
        "--node-id",
        "--compat",
        "--site-root",
        "--max-streams",
        "--max-inflight",
        "--keepalive-secs",
        "--idle-timeout-secs",
        "--nats",
        "--nats-creds",
        "--nats-ca",
        "--cluster",
        "--node-timeout-ms",
        "--lease-ms",
        "--round-timeout-ms",
        "--safety-interval-ms",
        "--config",
        "--release-severity",
        "--release-notes-url",
        "--min-supported-version",
        "VO_RELEASE_SEVERITY",
        "VO_APP_VERSION",
        "VO_CONFIG",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_last_error_reaches_stderr_in_full_every_time() {
    // The log relay holds lines for a moment: exiting must not lose them.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let listen = format!("cannot listen on {addr}");
    let cases: [(&[&str], &[&str]); 2] = [
        // A bad flag (clap's message)...
        (
            &["--listen", "127.0.0.1:0", "--app-version", "1.0"],
            &["'1.0'", "not a semantic version", "--help"],
        ),
        // ...and a failed start (the error chain).
        (
            &["--listen", &addr],
            &["version-observer could not start", &listen],
        ),
    ];
    for (args, expected) in cases {
        // Twenty at once: on a busy machine the relay's writer runs late.
        std::thread::scope(|scope| {
            let runs: Vec<_> = (0..20).map(|_| scope.spawn(|| run(args))).collect();
            for (attempt, handle) in runs.into_iter().enumerate() {
                let (code, stderr) = handle.join().unwrap();
                assert_ne!(code, 0);
                for part in expected {
                    assert!(stderr.contains(part), "attempt {attempt}: {stderr:?}");
                }
            }
        });
    }
}

#[test]
fn a_closed_stderr_neither_stops_the_node_nor_its_shutdown() {
    // `version-observer … 2>&1 | head -1`, or a log collector that died.
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_version-observer"))
        .arg("--site-root")
        .arg(site())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take()); // the reader is gone: every write is EPIPE
    serves_then_stops_on_sigterm(child, port);
}

#[test]
fn no_stderr_at_all_neither_stops_the_node_nor_its_shutdown() {
    // `version-observer 2>&-`: descriptor 2 is not open. Logging every
    // request writes far more than a pipe holds (64 KiB), so a log write
    // that blocks would stop the node.
    let port = free_port();
    let child = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" \"$@\" 2>&-")
        .arg(env!("CARGO_BIN_EXE_version-observer"))
        .arg("--site-root")
        .arg(site())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    serves_then_stops_on_sigterm(child, port);
}

/// The node at `port` serves /healthz (then 2,000 more requests, each
/// logged at `trace`), then exits 0 on SIGTERM.
fn serves_then_stops_on_sigterm(mut child: std::process::Child, port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // It keeps serving (and logging into the void)...
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the node died with its stderr: {status}");
        }
        if healthz(port) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node never served"
        );
        std::thread::sleep(std::time::Duration::from_millis(50)); // poll interval
    }
    for request in 0..2_000 {
        if !healthz(port) {
            let _ = child.kill();
            panic!("request {request} failed: logging stopped the node");
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // ...and SIGTERM still stops it, cleanly.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node ignored SIGTERM with a closed stderr");
        }
        std::thread::sleep(std::time::Duration::from_millis(20)); // poll interval
    }
}

/// Whether `GET /healthz` on `port` answers 200 (within 5 s).
fn healthz(port: u16) -> bool {
    use std::io::{Read, Write};
    let wait = Some(std::time::Duration::from_secs(5));
    std::net::TcpStream::connect(("127.0.0.1", port))
        .and_then(|mut tcp| {
            tcp.set_read_timeout(wait)?;
            tcp.set_write_timeout(wait)?;
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut response = String::new();
            tcp.read_to_string(&mut response)?;
            Ok(response.starts_with("HTTP/1.1 200"))
        })
        .unwrap_or(false)
}

#[test]
fn logs_into_a_pipe_carry_no_colour_codes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_version-observer"))
        .arg("--site-root")
        .arg(site())
        .args(["--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("node listening");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter().any(|l| l.contains("node listening")),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|l| !l.contains('\u{1b}')),
        "colour codes: {seen:?}"
    );
}
