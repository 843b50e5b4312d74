//! A child process the lab started. Its output goes to a log file; it can be
//! stopped (SIGTERM, then waited for), killed (SIGKILL), paused and resumed;
//! and it is killed when dropped, so a lab never leaves anything running.
//! Each runs in its own process group and a kill goes to the whole group, so
//! what it forked (nginx's worker processes) goes with it.
//!
//! When the lab runs its processes from the main thread (the `vo-lab` binary
//! does), they also get a parent-death signal: even a `kill -9` of the lab
//! takes them down. (Linux sends it when the *thread* that forked exits, so it
//! is only safe from the main thread, which lives as long as the process.)

use crate::LabError;
use std::{
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};
use tokio::process::{Child, Command};

#[derive(Debug)]
pub struct Managed {
    name: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Managed {
    /// Starts `command` with its stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self, LabError> {
        let open = |what| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| LabError::io(format!("cannot open {what} log {}", log.display()), e))
        };
        command
            .stdin(Stdio::null())
            .stdout(open("stdout")?)
            .stderr(open("stderr")?)
            // Its own process group: a Ctrl-C in the lab's terminal reaches the
            // lab only, which then stops everything in order.
            .process_group(0)
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let program = PathBuf::from(command.as_std().get_program());
        let child = command
            .spawn()
            .map_err(|source| LabError::Spawn { program, source })?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            status: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Sends a signal (e.g. `libc::SIGSTOP`); false if it is gone.
    pub fn signal(&mut self, signal: i32) -> bool {
        if self.exited().is_some() {
            return false;
        }
        match self.child.id() {
            // SAFETY: kill(2) on a pid we spawned and have not reaped.
            Some(pid) => unsafe { libc::kill(pid as libc::pid_t, signal) == 0 },
            None => false,
        }
    }

    /// SIGTERM, then waits up to `grace` for the exit (killing it after that).
    pub async fn terminate(&mut self, grace: Duration) -> Result<ExitStatus, LabError> {
        if let Some(status) = self.exited() {
            return Ok(status);
        }
        self.signal(libc::SIGTERM);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => {
                self.status = Some(status);
                Ok(status)
            }
            Ok(Err(e)) => Err(LabError::io(format!("cannot wait for {}", self.name), e)),
            Err(_) => {
                self.kill().await;
                Err(LabError::StopTimeout {
                    name: self.name.clone(),
                    grace_ms: grace.as_millis(),
                    logs: self.logs(),
                })
            }
        }
    }

    /// SIGKILL to its process group, and waits for the exit.
    pub async fn kill(&mut self) -> Option<ExitStatus> {
        if self.exited().is_none() {
            self.kill_group();
            let _ = self.child.kill().await;
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// SIGKILL to the process group it leads (it and whatever it forked).
    fn kill_group(&mut self) {
        if self.exited().is_some() {
            return;
        }
        if let Some(pid) = self.child.id() {
            // SAFETY: killpg(2) on the group our unreaped child leads
            // (spawned with `process_group(0)`, so its pgid is its pid).
            unsafe {
                libc::killpg(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Resolves on SIGINT or SIGTERM, naming it: how `vo-lab` and `vo-bench`
/// learn to stop what they started. If the handlers cannot be installed, it
/// never resolves and the signals keep their default action (exit).
pub async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        // `kill_on_drop` alone would reach the leader only: nginx's workers
        // would outlive a master killed that way.
        self.kill_group();
    }
}

#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    // SAFETY: getpid/gettid have no preconditions.
    let on_main_thread = unsafe { libc::getpid() == libc::gettid() };
    if on_main_thread {
        // SAFETY: prctl is async-signal-safe, as pre_exec requires.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_: &mut Command) {}

/// Raises this process's soft open-file limit to its hard limit (children
/// inherit it); returns the new limit.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}
