//! The change feed follower: wakes this process's agent streams for every new policy version
//! and every revoked device on the store-wide change sequence, whoever committed it.

use tokio::sync::watch;

use super::hub::Wakeup;
use super::{Distributor, CATCH_UP_INTERVAL, LISTEN_FALLBACK_INTERVAL};
use crate::store::{ChangeListener, StoreError};

/// The next change notification, or never when there is no listener.
pub(super) async fn next_change(listener: &mut Option<ChangeListener>) -> Result<(), StoreError> {
    match listener {
        Some(l) => l.changed().await,
        None => std::future::pending().await,
    }
}

impl Distributor {
    /// Follows the store's change sequence from where it is now: this process's commits wake it
    /// at once; on PostgreSQL a `LISTEN` on the feed's channel wakes it for other processes'
    /// commits, with a slow poll in case a notification was lost; on SQLite it polls every
    /// [`CATCH_UP_INTERVAL`] for the CLI's commits. New versions wake their users' streams,
    /// revoked devices are told to wipe, and any advance pokes the input-change worker.
    pub async fn run_catch_up(self, mut shutdown: watch::Receiver<bool>) {
        let mut cursor = match self.store.latest_policy_change_seq().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the change sequence");
                0
            }
        };
        let mut commits = self.store.watch_commits();
        let mut listener = match self.store.listen_for_changes().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for changes: polling only");
                None
            }
        };
        let interval = if listener.is_some() {
            LISTEN_FALLBACK_INTERVAL
        } else {
            CATCH_UP_INTERVAL
        };
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = commits.changed() => {}
                notified = next_change(&mut listener) => {
                    if let Err(e) = notified {
                        tracing::warn!(error = %e, "change listener failed: polling only until restart");
                        listener = None;
                    }
                }
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
            let next = self.catch_up(cursor).await;
            if next != cursor {
                self.feed_advanced.send_modify(|n| *n = n.wrapping_add(1));
            }
            cursor = next;
        }
    }

    /// One catch-up step from `cursor`; returns the new cursor.
    async fn catch_up(&self, cursor: i64) -> i64 {
        const BATCH: i64 = 10_000;
        let latest = match self.store.latest_policy_change_seq().await {
            Ok(latest) if latest > cursor => latest,
            Ok(_) => return cursor,
            Err(e) => {
                tracing::warn!(error = %e, "catch-up read failed");
                return cursor;
            }
        };
        let (policies, revoked) = match tokio::try_join!(
            self.store.user_policies_changed_since(cursor, BATCH),
            self.store.devices_revoked_since(cursor, BATCH),
        ) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "catch-up read failed");
                return cursor;
            }
        };
        // A full batch may stop short of `latest`: go no further than what both reads covered.
        let mut upto = latest;
        if policies.len() as i64 == BATCH {
            upto = upto.min(policies.last().map_or(latest, |p| p.change_seq));
        }
        if revoked.len() as i64 == BATCH {
            upto = upto.min(revoked.last().map_or(latest, |r| r.seq));
        }
        // Revocations first: a wipe must not wait behind a fan-out.
        for r in revoked.iter().filter(|r| r.seq <= upto) {
            if self.hub.is_connected(&r.user_id) {
                tracing::info!(user_id = %r.user_id, device_id = %r.device_id, reason = %r.reason, "device revoked: telling the agent to wipe");
            }
            self.hub.wake_devices(
                &r.user_id,
                &[r.device_id.as_str()],
                Wakeup::Deprovision {
                    reason: r.reason.clone(),
                },
            );
        }
        for p in policies.iter().filter(|p| p.change_seq <= upto) {
            self.hub.wake(&p.user_id, Wakeup::PolicyChanged);
        }
        upto
    }
}
