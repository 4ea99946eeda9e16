//! Coalesces devices' "seen" and "applied version" reports and writes them together every
//! [`FLUSH_INTERVAL`], so a fan-out's thousand ACKs cost one transaction instead of a thousand.
//! These are bookkeeping; NACKs, tamper and wipe reports are audited at once elsewhere.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::store::Store;

/// How long reports are gathered before being written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// Handle used by the stream sessions. Cheap to clone.
#[derive(Clone)]
pub struct ProgressRecorder {
    tx: mpsc::UnboundedSender<(String, Option<i64>)>,
}

impl ProgressRecorder {
    /// Starts the writer task; it stops when every handle is dropped.
    pub fn spawn(store: Store) -> ProgressRecorder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx));
        ProgressRecorder { tx }
    }

    /// The device is connected.
    pub fn seen(&self, device_id: &str) {
        let _ = self.tx.send((device_id.to_string(), None));
    }

    /// The device applied this version (it ACKed it).
    pub fn applied(&self, device_id: &str, version: i64) {
        let _ = self.tx.send((device_id.to_string(), Some(version)));
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<(String, Option<i64>)>) {
    while let Some(first) = rx.recv().await {
        let mut pending: HashMap<String, Option<i64>> = HashMap::new();
        let mut add = |(device, version): (String, Option<i64>)| {
            let slot = pending.entry(device).or_insert(None);
            *slot = (*slot).max(version);
        };
        add(first);
        tokio::time::sleep(FLUSH_INTERVAL).await;
        while let Ok(r) = rx.try_recv() {
            add(r);
        }
        let entries: Vec<(String, Option<i64>)> = pending.into_iter().collect();
        if let Err(e) = store.record_device_progress(&entries).await {
            tracing::error!(error = %e, devices = entries.len(), "recording devices' progress failed");
        }
    }
}
