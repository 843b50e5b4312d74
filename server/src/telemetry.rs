//! Logging: `tracing` with structured fields to stderr, filtered by `RUST_LOG`
//! (default `info`): text for people (coloured only when stderr is a
//! terminal) or, with `--log-format json`, one JSON object per line with the
//! node id, cluster and role on every line, for log collectors.
//!
//! Logging must never stop the node, nor its shutdown: a log collector that
//! died (stderr a closed pipe) or stalled (a full pipe) would otherwise make
//! every write fail (and Rust's `eprintln!`, which libraries use, panics on
//! a failed write) or block. So, on Unix, the process's stderr becomes a pipe
//! the node itself drains at once into a bounded buffer; a second thread
//! writes that buffer to the real stderr, and whatever it cannot write is
//! dropped and counted, never waited for. [`flush`] at exit writes what is
//! still buffered (the last error, say), waiting a moment at most.

use std::{
    fmt,
    io::IsTerminal,
    sync::{Arc, OnceLock, RwLock},
};
use tracing::{
    field::{Field, Visit},
    Event, Subscriber,
};
use tracing_subscriber::{
    fmt::{
        format::{self, FormatEvent, FormatFields},
        time::{FormatTime, SystemTime},
        FmtContext,
    },
    registry::LookupSpan,
    EnvFilter,
};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`,
    /// the event's fields, and `node_id`, `cluster`, `role`.
    Json,
}

/// Protects the process from its stderr (call once, first thing): see the
/// module docs.
pub fn init() {
    #[cfg(unix)]
    if let Err(e) = relay::install() {
        // Logging still works, unprotected.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("cannot protect logging from a broken stderr: {e}\n").as_bytes(),
        );
    }
}

/// Starts logging in `format` (call once, when the configuration is read).
pub fn start(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
    };
}

/// Who is logging, for the JSON lines.
struct NodeContext {
    node_id: String,
    cluster: Option<String>,
    role: RwLock<Arc<dyn Fn() -> &'static str + Send + Sync>>,
}

static CONTEXT: OnceLock<NodeContext> = OnceLock::new();

/// Names this node on every JSON log line from now on (`cluster`: `None`
/// for a single node); once per process, before [`start`], so that every
/// line has it. Its role is `starting` until [`set_role`].
pub fn set_node(node_id: &str, cluster: Option<&str>) {
    let _ = CONTEXT.set(NodeContext {
        node_id: node_id.to_owned(),
        cluster: cluster.map(str::to_owned),
        role: RwLock::new(Arc::new(|| "starting")),
    });
}

/// Where the JSON lines read this node's current role from (`single`,
/// `monitor`, `member`): called once per line, so it must be cheap.
pub fn set_role(role: impl Fn() -> &'static str + Send + Sync + 'static) {
    if let Some(context) = CONTEXT.get() {
        *context.role.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(role);
    }
}

/// The JSON line format.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writeln!(writer, "{}", json_line(event))
    }
}

fn json_line(event: &Event<'_>) -> serde_json::Value {
    let meta = event.metadata();
    let mut line = serde_json::Map::new();
    let mut timestamp = String::new();
    if SystemTime
        .format_time(&mut format::Writer::new(&mut timestamp))
        .is_ok()
    {
        line.insert("timestamp".into(), timestamp.into());
    }
    line.insert("level".into(), meta.level().as_str().into());
    line.insert("target".into(), meta.target().into());
    event.record(&mut JsonFields(&mut line));
    if let Some(context) = CONTEXT.get() {
        let role = context
            .role
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        line.insert("node_id".into(), context.node_id.clone().into());
        line.insert("cluster".into(), context.cluster.clone().into());
        line.insert("role".into(), role().into());
    }
    serde_json::Value::Object(line)
}

/// An event's fields as JSON values.
struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl Visit for JsonFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
}

/// Writes out what is still buffered for stderr, waiting [`FLUSH_WAIT`] at
/// most (a stalled stderr must not hold the exit). Call it last: later
/// writes to stderr are discarded.
pub fn flush() {
    #[cfg(unix)]
    relay::flush(FLUSH_WAIT);
}

/// How long [`flush`] waits for a slow stderr.
pub const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(unix)]
mod relay {
    use std::{
        collections::VecDeque,
        fs::File,
        io::{self, Read, Write},
        os::fd::{FromRawFd, OwnedFd},
        sync::{mpsc, Arc, Condvar, Mutex, OnceLock},
        time::Duration,
    };

    /// Log bytes held for a slow stderr; beyond this the oldest are dropped.
    const CAPACITY: usize = 1 << 20;

    #[derive(Default)]
    struct Buffer {
        bytes: VecDeque<u8>,
        dropped: u64,
        /// The pipe was closed and read to its end.
        closed: bool,
    }

    /// Told when the writer has written everything, once the pipe closed.
    static WRITTEN: OnceLock<Mutex<mpsc::Receiver<()>>> = OnceLock::new();

    /// Closes the pipe (fd 2 becomes /dev/null) and waits up to `wait` for
    /// what it held to reach the real stderr.
    pub fn flush(wait: Duration) {
        let Some(written) = WRITTEN.get() else {
            return;
        };
        let Ok(null) = File::options().write(true).open("/dev/null") else {
            return;
        };
        // SAFETY: fd 2 is replaced by /dev/null; the pipe's last write end
        // closes, so the drain thread reads to its end.
        if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 2) } < 0 {
            return;
        }
        let written = written.lock().unwrap_or_else(|p| p.into_inner());
        let _ = written.recv_timeout(wait);
    }

    /// Replaces fd 2 with a pipe drained by two threads (see the module docs).
    pub fn install() -> io::Result<()> {
        // SAFETY: plain descriptor calls; every returned descriptor is checked
        // and owned exactly once below.
        let (read_end, write_end, real) = unsafe {
            let mut fds = [0; 2];
            if libc::pipe(fds.as_mut_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let real = libc::dup(2);
            if real < 0 {
                return Err(io::Error::last_os_error());
            }
            (
                OwnedFd::from_raw_fd(fds[0]),
                OwnedFd::from_raw_fd(fds[1]),
                OwnedFd::from_raw_fd(real),
            )
        };
        // SAFETY: fd 2 now refers to the pipe; `write_end` is closed when
        // dropped, fd 2 keeps the pipe open.
        if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&write_end), 2) } < 0 {
            return Err(io::Error::last_os_error());
        }
        drop(write_end);
        let shared = Arc::new((Mutex::new(Buffer::default()), Condvar::new()));
        let (reader, writer) = (shared.clone(), shared);
        let (done, written) = mpsc::channel();
        let _ = WRITTEN.set(Mutex::new(written));
        std::thread::Builder::new()
            .name("log-drain".into())
            .spawn(move || drain(File::from(read_end), &reader))?;
        std::thread::Builder::new()
            .name("log-write".into())
            .spawn(move || {
                forward(File::from(real), &writer);
                let _ = done.send(());
            })?;
        Ok(())
    }

    /// Reads the pipe as fast as it fills, never waiting on the real stderr.
    fn drain(mut pipe: File, shared: &(Mutex<Buffer>, Condvar)) {
        let mut chunk = [0u8; 8192];
        loop {
            let n = match pipe.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            let mut buffer = shared.0.lock().unwrap_or_else(|p| p.into_inner());
            if n == 0 {
                buffer.closed = true;
                shared.1.notify_one();
                return;
            }
            buffer.bytes.extend(&chunk[..n]);
            let over = buffer.bytes.len().saturating_sub(CAPACITY);
            if over > 0 {
                buffer.bytes.drain(..over);
                buffer.dropped += over as u64;
            }
            shared.1.notify_one();
        }
    }

    /// Writes the buffer to the real stderr; what fails to write is dropped.
    /// Returns once the pipe is closed and everything it held is written.
    fn forward(mut stderr: File, shared: &(Mutex<Buffer>, Condvar)) {
        loop {
            let (bytes, dropped) = {
                let mut buffer = shared.0.lock().unwrap_or_else(|p| p.into_inner());
                while buffer.bytes.is_empty() {
                    if buffer.closed {
                        return;
                    }
                    buffer = shared.1.wait(buffer).unwrap_or_else(|p| p.into_inner());
                }
                let bytes: Vec<u8> = buffer.bytes.drain(..).collect();
                (bytes, std::mem::take(&mut buffer.dropped))
            };
            if dropped > 0 {
                let _ = writeln!(stderr, "[{dropped} bytes of log dropped: stderr too slow]");
            }
            // A closed or failing stderr loses the log, nothing else.
            let _ = stderr.write_all(&bytes);
        }
    }
}
