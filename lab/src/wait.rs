//! Waiting for a condition: poll with a deadline, never sleep blindly.

use crate::LabError;
use std::time::{Duration, Instant};

/// How often [`eventually`] polls.
pub const POLL: Duration = Duration::from_millis(25);

/// Polls `check` until it returns `Some`, or fails naming `what` after `timeout`.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Result<T, LabError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout(what.to_owned()));
        }
        tokio::time::sleep(POLL).await; // the poll interval, not a stand-in for the condition
    }
}
