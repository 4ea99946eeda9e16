//! The registry of connected agent streams: who is connected for which user, and the wake-ups
//! sent to them when that user's policy changes or the user is deprovisioned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// What a connected stream is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wakeup {
    /// The user's stored policy changed: re-read it and send it if newer.
    PolicyChanged,
    /// The user was deprovisioned: tell the agent to wipe.
    Deprovision { reason: String },
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    by_user: HashMap<String, Vec<(u64, String, mpsc::Sender<Wakeup>)>>,
}

/// Connected streams by user. Cheap to clone.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<Mutex<Inner>>,
}

/// Removes its stream from the hub when dropped (the stream ended).
pub struct Registration {
    hub: Hub,
    user_id: String,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = self.hub.lock();
        if let Some(list) = inner.by_user.get_mut(&self.user_id) {
            list.retain(|(id, _, _)| *id != self.id);
            if list.is_empty() {
                inner.by_user.remove(&self.user_id);
            }
        }
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map inconsistent; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a stream of `device_id` for `user_id`; wake-ups arrive on the receiver.
    pub fn register(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> (Registration, mpsc::Receiver<Wakeup>) {
        let (tx, rx) = mpsc::channel(8);
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner
            .by_user
            .entry(user_id.to_string())
            .or_default()
            .push((id, device_id.to_string(), tx));
        (
            Registration {
                hub: self.clone(),
                user_id: user_id.to_string(),
                id,
            },
            rx,
        )
    }

    /// Wakes every stream of the user.
    pub fn wake(&self, user_id: &str, wakeup: Wakeup) {
        self.wake_where(user_id, |_| true, wakeup);
    }

    /// Wakes the streams of the given devices of the user (and no other device of theirs).
    pub fn wake_devices(&self, user_id: &str, device_ids: &[&str], wakeup: Wakeup) {
        self.wake_where(user_id, |device| device_ids.contains(&device), wakeup);
    }

    /// Wakes the user's streams whose device passes `device_matches` (outside the lock).
    fn wake_where(&self, user_id: &str, device_matches: impl Fn(&str) -> bool, wakeup: Wakeup) {
        let senders: Vec<mpsc::Sender<Wakeup>> = self
            .lock()
            .by_user
            .get(user_id)
            .map(|l| {
                l.iter()
                    .filter(|(_, device, _)| device_matches(device))
                    .map(|(_, _, s)| s.clone())
                    .collect()
            })
            .unwrap_or_default();
        for s in senders {
            // A full queue already holds a wake-up that will make the stream re-read the store.
            let _ = s.try_send(wakeup.clone());
        }
    }

    /// Whether any stream of the user is connected.
    pub fn is_connected(&self, user_id: &str) -> bool {
        self.lock().by_user.contains_key(user_id)
    }

    /// Number of connected streams.
    pub fn connections(&self) -> usize {
        self.lock().by_user.values().map(Vec::len).sum()
    }

    /// Users with at least one connected stream.
    pub fn connected_users(&self) -> Vec<String> {
        self.lock().by_user.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registers_wakes_and_unregisters() {
        let hub = Hub::default();
        let (reg_a, mut rx_a) = hub.register("u1", "d1");
        let (_reg_b, mut rx_b) = hub.register("u1", "d2");
        let (_reg_c, mut rx_c) = hub.register("u2", "d3");
        assert_eq!(hub.connections(), 3);
        hub.wake("u1", Wakeup::PolicyChanged);
        assert_eq!(rx_a.recv().await, Some(Wakeup::PolicyChanged));
        assert_eq!(rx_b.recv().await, Some(Wakeup::PolicyChanged));
        assert!(rx_c.try_recv().is_err());
        drop(reg_a);
        assert_eq!(hub.connections(), 2);
        assert!(hub.is_connected("u1"));
    }
}
