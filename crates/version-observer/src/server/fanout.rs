//! Direct fan-out to lean streams: one task writes each change, and each
//! keep-alive comment, straight into every lean stream's socket.
//!
//! Why: a stream that waits for a change in its own task costs, per change
//! and per keep-alive tick, one wake-up, one pass of the scheduler and one
//! poll of that task before its `write`. With tens of thousands of streams
//! that is most of the work of a broadcast, and all of the work of an idle
//! node. Here [`Fanout::send`] walks the registered streams and makes one
//! non-blocking `write` per socket; no stream's task runs.
//!
//! A socket that cannot take the whole event at once (a reader that is slow,
//! or has stopped reading) keeps the rest as its backlog ([`Out`]) and its
//! task is woken to write it as the socket drains, dropping the stream after
//! [`WRITE_TIMEOUT`](version_observer_core::timing::http::WRITE_TIMEOUT). A backlog holds at most
//! the unfinished event and the newest report after it: every report is the
//! node's whole state, so a stream that lags skips reports in between, never
//! the last, and never gets one out of order (each carries its sequence
//! number as the SSE `id`). Keep-alive comments are only for idle sockets: one
//! with a backlog is not idle.
//!
//! Streams on a connection that already carried other requests go through
//! hyper and [`super::sse::events`] instead (rare: browsers and proxies open
//! a new connection for a stream).

use bytes::Bytes;
use std::{
    collections::HashMap,
    io,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};
use tokio::{net::TcpStream, sync::Notify};

use super::hub::Snapshot;

/// Sockets written between two yields to the scheduler during one send, so
/// a broadcast to many streams does not hold a runtime thread for long.
const WRITES_PER_YIELD: usize = 512;

/// What one send carries to every stream.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A report as one event; `seq` is its SSE id.
    Report { seq: u64, event: Bytes },
    /// A keep-alive comment: only written to a socket with nothing pending.
    KeepAlive,
}

impl Item {
    pub(crate) fn report(snapshot: &Snapshot) -> Self {
        Item::Report {
            seq: snapshot.seq,
            event: snapshot.event.clone(),
        }
    }
}

/// What is still to be written to one stream. No I/O: the write is passed in.
#[derive(Debug, Default)]
pub(crate) struct Out {
    /// The sequence number of the newest report queued or written.
    seq: u64,
    /// The rest of an event the socket took only part of; it goes first.
    unfinished: Option<Bytes>,
    /// The newest report not started yet.
    next: Option<Bytes>,
    /// The socket failed: the stream is over.
    failed: bool,
}

/// What [`Out::offer`] leaves for the stream's own task.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Offered {
    /// Written in full, or nothing to do.
    Done,
    /// A backlog is waiting for the socket, or the socket failed: the
    /// stream's task must run.
    Wake,
}

impl Out {
    /// A stream that has been sent the report `seq` (its first event).
    pub(crate) fn after(seq: u64) -> Self {
        Self {
            seq,
            ..Self::default()
        }
    }

    /// Offers `item` to the stream: writes it at once with `write` (one
    /// non-blocking write) if nothing is pending, else queues a report
    /// behind the pending bytes (replacing an older queued one) and drops a
    /// keep-alive. A report not newer than the last one is ignored.
    pub(crate) fn offer(
        &mut self,
        item: &Item,
        write: impl FnOnce(&[u8]) -> io::Result<usize>,
    ) -> Offered {
        if self.failed {
            return Offered::Wake;
        }
        let bytes = match item {
            Item::Report { seq, event } => {
                if *seq <= self.seq {
                    return Offered::Done;
                }
                self.seq = *seq;
                event.clone()
            }
            Item::KeepAlive if self.pending() => return Offered::Done,
            Item::KeepAlive => Bytes::from_static(super::sse::KEEPALIVE),
        };
        if self.pending() {
            self.next = Some(bytes);
            return Offered::Wake;
        }
        self.write_from(bytes, write)
    }

    /// The bytes to write next (unfinished ones first), if any.
    pub(crate) fn take(&mut self) -> Option<Bytes> {
        self.unfinished.take().or_else(|| self.next.take())
    }

    /// Writes `bytes` with `write`; whatever the socket does not take
    /// becomes the unfinished event.
    pub(crate) fn write_from(
        &mut self,
        bytes: Bytes,
        write: impl FnOnce(&[u8]) -> io::Result<usize>,
    ) -> Offered {
        match write(&bytes) {
            Ok(n) if n == bytes.len() => Offered::Done,
            Ok(n) => {
                self.unfinished = Some(bytes.slice(n..));
                Offered::Wake
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.unfinished = Some(bytes);
                Offered::Wake
            }
            Err(_) => {
                self.failed = true;
                Offered::Wake
            }
        }
    }

    fn pending(&self) -> bool {
        self.unfinished.is_some() || self.next.is_some()
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed
    }
}

/// One lean stream's socket, shared by its task (reads, backlog) and the
/// fan-out (writes).
#[derive(Debug)]
pub(crate) struct LeanConn {
    pub(crate) tcp: TcpStream,
    out: Mutex<Out>,
    /// Woken when the stream has a backlog or its socket failed.
    pub(crate) wake: Notify,
}

impl LeanConn {
    /// A stream whose first event (report `seq`) has been written.
    pub(crate) fn new(tcp: TcpStream, seq: u64) -> Self {
        Self {
            tcp,
            out: Mutex::new(Out::after(seq)),
            wake: Notify::new(),
        }
    }

    pub(crate) fn out(&self) -> MutexGuard<'_, Out> {
        // A panic while the lock was held cannot leave `Out` half-changed
        // (each change is one assignment): carry on with it.
        self.out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Offers `item` (see [`Out::offer`]), waking the task if it must run.
    pub(crate) fn offer(&self, item: &Item) {
        let offered = self.out().offer(item, |bytes| self.tcp.try_write(bytes));
        if offered == Offered::Wake {
            self.wake.notify_one();
        }
    }

    /// Writes the backlog as the socket drains, each wait for the socket
    /// bounded by `timeout`. `Err`: the socket failed or stayed full.
    pub(crate) async fn flush(&self, timeout: Duration) -> io::Result<()> {
        loop {
            {
                let mut out = self.out();
                if out.failed() {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                let Some(bytes) = out.take() else {
                    return Ok(());
                };
                if out.write_from(bytes, |b| self.tcp.try_write(b)) == Offered::Done {
                    continue;
                }
                if out.failed() {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
            }
            tokio::time::timeout(timeout, self.tcp.writable())
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        }
    }
}

/// Every lean stream, for [`send`](Self::send) to write to.
#[derive(Debug, Default)]
pub(crate) struct Fanout {
    conns: Mutex<HashMap<u64, Arc<LeanConn>>>,
    next_id: AtomicU64,
}

/// A stream's place in the [`Fanout`]; leaves it when dropped.
pub(crate) struct Registered<'a> {
    fanout: &'a Fanout,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.fanout.conns().remove(&self.id);
    }
}

impl Fanout {
    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Arc<LeanConn>>> {
        self.conns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a stream until the returned guard is dropped.
    pub(crate) fn register(&self, conn: Arc<LeanConn>) -> Registered<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns().insert(id, conn);
        Registered { fanout: self, id }
    }

    /// Whether any stream has bytes waiting for its socket.
    #[cfg(test)]
    pub(crate) fn any_backlog(&self) -> bool {
        self.conns().values().any(|conn| conn.out().pending())
    }

    /// Offers `item` to every registered stream (one non-blocking write per
    /// socket). The streams are split in one share per runtime thread, each
    /// written by its own task, so every core writes (a write on loopback or
    /// into a busy NIC queue is mostly kernel work); each task yields to the
    /// scheduler every [`WRITES_PER_YIELD`] sockets. Returns once every share
    /// is written, so items reach each stream in the order they were sent.
    pub(crate) async fn send(&self, item: &Item) {
        // A copy of the list: streams may come and go meanwhile.
        let conns: Vec<Arc<LeanConn>> = self.conns().values().cloned().collect();
        let threads = tokio::runtime::Handle::current().metrics().num_workers();
        let share = conns.len().div_ceil(threads.max(1)).max(MIN_SHARE);
        let mut shares = conns.chunks(share).map(<[_]>::to_vec);
        let Some(first) = shares.next() else { return };
        let others: Vec<_> = shares
            .map(|share| {
                let item = item.clone();
                tokio::spawn(async move { offer_all(&share, &item).await })
            })
            .collect();
        offer_all(&first, item).await;
        for other in others {
            // A share's task cannot fail (offering never panics); a runtime
            // shutting down ends the streams anyway.
            let _ = other.await;
        }
    }
}

/// The fewest streams worth a task of their own in [`Fanout::send`].
const MIN_SHARE: usize = 1_024;

async fn offer_all(conns: &[Arc<LeanConn>], item: &Item) {
    for (i, conn) in conns.iter().enumerate() {
        if i > 0 && i % WRITES_PER_YIELD == 0 {
            tokio::task::yield_now().await;
        }
        conn.offer(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(seq: u64, text: &'static str) -> Item {
        Item::Report {
            seq,
            event: Bytes::from_static(text.as_bytes()),
        }
    }

    /// A write that takes `n` bytes (or fails with `kind`) and records them.
    fn takes(n: usize, log: &mut Vec<u8>) -> impl FnOnce(&[u8]) -> io::Result<usize> + '_ {
        move |bytes| {
            let n = n.min(bytes.len());
            log.extend_from_slice(&bytes[..n]);
            Ok(n)
        }
    }

    fn fails(kind: io::ErrorKind) -> impl FnOnce(&[u8]) -> io::Result<usize> {
        move |_| Err(kind.into())
    }

    fn never(_: &[u8]) -> io::Result<usize> {
        panic!("nothing should be written")
    }

    #[test]
    fn an_idle_socket_gets_each_item_in_one_write() {
        let (mut out, mut log) = (Out::after(1), Vec::new());
        assert_eq!(
            out.offer(&report(2, "r2"), takes(99, &mut log)),
            Offered::Done
        );
        assert_eq!(
            out.offer(&Item::KeepAlive, takes(99, &mut log)),
            Offered::Done
        );
        assert_eq!(log, b"r2:\n\n");
        assert_eq!(out.take(), None);
    }

    #[test]
    fn reports_not_newer_than_the_last_are_ignored() {
        let mut out = Out::after(5);
        assert_eq!(out.offer(&report(5, "r5"), never), Offered::Done);
        assert_eq!(out.offer(&report(4, "r4"), never), Offered::Done);
    }

    #[test]
    fn what_the_socket_does_not_take_is_kept_and_goes_first() {
        let (mut out, mut log) = (Out::after(1), Vec::new());
        assert_eq!(
            out.offer(&report(2, "abcdef"), takes(2, &mut log)),
            Offered::Wake
        );
        assert_eq!(out.take().as_deref(), Some(&b"cdef"[..]));
        assert_eq!(out.take(), None);

        // A full socket (WouldBlock) keeps the whole event.
        let mut out = Out::after(1);
        let offered = out.offer(&report(2, "abc"), fails(io::ErrorKind::WouldBlock));
        assert_eq!(offered, Offered::Wake);
        assert_eq!(out.take().as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn a_backlog_keeps_the_unfinished_event_and_only_the_newest_report() {
        let (mut out, mut log) = (Out::after(1), Vec::new());
        out.offer(&report(2, "r2-long"), takes(3, &mut log));
        // Not written while bytes are pending: queued, each newer one
        // replacing the last; keep-alives dropped.
        assert_eq!(out.offer(&report(3, "r3"), never), Offered::Wake);
        assert_eq!(out.offer(&Item::KeepAlive, never), Offered::Done);
        assert_eq!(out.offer(&report(4, "r4"), never), Offered::Wake);
        assert_eq!(out.take().as_deref(), Some(&b"long"[..]));
        assert_eq!(out.take().as_deref(), Some(&b"r4"[..]));
        assert_eq!(out.take(), None);
        // Once drained, the next offer is written at once again.
        assert_eq!(
            out.offer(&report(5, "r5"), takes(99, &mut log)),
            Offered::Done
        );
        assert_eq!(log, b"r2-r5");
    }

    #[test]
    fn a_failed_socket_stays_failed_and_asks_for_its_task() {
        let mut out = Out::after(1);
        let offered = out.offer(&report(2, "r2"), fails(io::ErrorKind::BrokenPipe));
        assert_eq!(offered, Offered::Wake);
        assert!(out.failed());
        assert_eq!(out.offer(&report(3, "r3"), never), Offered::Wake);
        assert_eq!(out.offer(&Item::KeepAlive, never), Offered::Wake);
    }
}
