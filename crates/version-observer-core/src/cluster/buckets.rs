//! The cluster's KV bucket, as one node sees it: closed (opening it is due
//! at some moment), opening (the driver is opening or creating it), or
//! open (lease and record calls may go out).
//!
//! A connect makes an open bucket closed and due at once (NATS may have
//! lost it while the node was away); an open that fails is tried again
//! after [`BUCKET_RETRY`], or [`BUCKET_MISCONFIGURED_RETRY`] when the bucket
//! exists with settings a node cannot use; a KV call that could not
//! complete closes an open bucket the same way, so the next open creates
//! what is missing. Plain data, time passed in; the coordinator asks only
//! while connected.

use super::coordinator::KvError;
use crate::timing::{BUCKET_MISCONFIGURED_RETRY, BUCKET_RETRY};
use std::time::Instant;

/// Where the bucket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Buckets {
    /// Not open; opening it is due at `retry_at` (once connected).
    Closed {
        /// When to open it.
        retry_at: Instant,
    },
    /// An open is in flight.
    Opening,
    /// Open: KV calls may go out.
    Open,
}

impl Buckets {
    /// Closed, due at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Buckets::Closed { retry_at: now }
    }

    /// Whether KV calls may go out.
    pub(crate) fn is_open(&self) -> bool {
        *self == Buckets::Open
    }

    /// The connection is up (again): open the bucket at once, creating
    /// what is missing, unless an open is already in flight.
    pub(crate) fn connected(&mut self, now: Instant) {
        if *self != Buckets::Opening {
            *self = Buckets::Closed { retry_at: now };
        }
    }

    /// Whether to open the bucket now (it then counts as opening).
    pub(crate) fn poll(&mut self, now: Instant) -> bool {
        match *self {
            Buckets::Closed { retry_at } if now >= retry_at => {
                *self = Buckets::Opening;
                true
            }
            _ => false,
        }
    }

    /// The result of an open.
    pub(crate) fn opened(&mut self, result: &Result<(), KvError>, now: Instant) {
        *self = match result {
            Ok(()) => Buckets::Open,
            Err(KvError::Incompatible(_)) => Buckets::Closed {
                retry_at: now + BUCKET_MISCONFIGURED_RETRY,
            },
            Err(_) => Buckets::Closed {
                retry_at: now + BUCKET_RETRY,
            },
        };
    }

    /// A KV call failed with `error`: if it could not complete, the bucket
    /// (or its stream) may be gone, so an open one is opened again soon.
    pub(crate) fn failed(&mut self, error: &KvError, now: Instant) {
        if matches!(error, KvError::Unavailable(_)) && self.is_open() {
            *self = Buckets::Closed {
                retry_at: now + BUCKET_RETRY,
            };
        }
    }

    /// When [`poll`](Self::poll) next has something to do (while connected).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match *self {
            Buckets::Closed { retry_at } => Some(retry_at),
            Buckets::Opening | Buckets::Open => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn unavailable() -> KvError {
        KvError::Unavailable("no JetStream".into())
    }

    #[test]
    fn opening_is_due_at_once_then_waits_for_its_result() {
        let t0 = Instant::now();
        let mut b = Buckets::new(t0);
        assert_eq!(b.next_deadline(), Some(t0));
        assert!(b.poll(t0));
        assert_eq!(b, Buckets::Opening);
        assert_eq!(b.next_deadline(), None);
        assert!(!b.poll(t0 + Duration::from_secs(60)), "one open at a time");
        b.opened(&Ok(()), t0);
        assert!(b.is_open());
        assert_eq!(b.next_deadline(), None);
        assert!(!b.poll(t0));
    }

    #[test]
    fn a_failed_open_is_tried_again_after_its_retry() {
        let t0 = Instant::now();
        // (error, how soon the next open is due)
        let cases = [
            (unavailable(), BUCKET_RETRY),
            (KvError::Conflict("?".into()), BUCKET_RETRY),
            (
                KvError::Incompatible("no per-message TTL".into()),
                BUCKET_MISCONFIGURED_RETRY,
            ),
        ];
        for (error, retry) in cases {
            let mut b = Buckets::new(t0);
            assert!(b.poll(t0));
            b.opened(&Err(error.clone()), t0);
            assert_eq!(b.next_deadline(), Some(t0 + retry), "{error}");
            assert!(!b.poll(t0 + retry - Duration::from_millis(1)), "{error}");
            assert!(b.poll(t0 + retry), "{error}");
        }
    }

    #[test]
    fn only_a_call_that_could_not_complete_closes_an_open_bucket() {
        let t0 = Instant::now();
        let mut b = Buckets::new(t0);
        b.poll(t0);
        b.opened(&Ok(()), t0);
        b.failed(&KvError::Conflict("held".into()), t0);
        assert!(b.is_open(), "a conflict is an answer");
        let t1 = t0 + Duration::from_secs(1);
        b.failed(&unavailable(), t1);
        assert_eq!(b.next_deadline(), Some(t1 + BUCKET_RETRY));
        // Not open: a second failure does not move the retry.
        b.failed(&unavailable(), t1 + Duration::from_millis(100));
        assert_eq!(b.next_deadline(), Some(t1 + BUCKET_RETRY));
    }

    #[test]
    fn a_connect_opens_again_at_once_unless_an_open_is_in_flight() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(3);
        let mut b = Buckets::new(t0);
        b.poll(t0);
        b.opened(&Ok(()), t0);
        b.connected(t1);
        assert_eq!(b.next_deadline(), Some(t1), "NATS may have lost it");
        b.opened(&Err(unavailable()), t1);
        b.connected(t1);
        assert_eq!(b.next_deadline(), Some(t1), "no waiting out the retry");
        b.poll(t1);
        b.connected(t1);
        assert_eq!(b, Buckets::Opening);
    }
}
