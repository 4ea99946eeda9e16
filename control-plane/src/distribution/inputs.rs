//! The input-change worker: claims the policy-input changes that writes recorded in the store
//! (`store::changes`), recomputes the users they name and deletes them once the new versions
//! are stored. Every replica runs one; a claim is a lease, so a replica that dies mid-way
//! leaves its claims to be taken again, and a change recorded while no control plane ran is
//! applied when one starts.

use std::time::Duration;

use tokio::sync::watch;

use super::Distributor;
use crate::domain::now_micros;
use crate::store::StoreError;

/// How long a claim holds before another process may take the changes again.
const LEASE: Duration = Duration::from_secs(60);

/// How many recorded changes one pass claims.
const CLAIM_BATCH: i64 = 256;

/// How many users one recompute transaction covers (it holds the write lock while computing).
const RECOMPUTE_CHUNK: usize = 500;

/// How often the worker looks even when nothing woke it (for leases that ran out).
const IDLE_LOOK: Duration = Duration::from_secs(5);

impl Distributor {
    /// Applies recorded policy-input changes until `shutdown`: at start (what was recorded
    /// while no control plane ran), after each commit of this process, whenever the feed sees
    /// another process's commit, and every few seconds for expired leases.
    pub async fn run_input_changes(self, mut shutdown: watch::Receiver<bool>) {
        let owner = format!("cp-{}", uuid::Uuid::new_v4().simple());
        let mut commits = self.store.watch_commits();
        let mut advanced = self.feed_advanced.subscribe();
        let mut ticker = tokio::time::interval(IDLE_LOOK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            loop {
                match self.apply_input_changes(&owner).await {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "applying policy-input changes failed; retrying when the claim expires");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = ticker.tick() => {}
                _ = commits.changed() => {}
                _ = advanced.changed() => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// Claims one batch of recorded changes, recomputes the users they name (those with an
    /// enrolled device) and deletes the records. Returns how many records it applied.
    pub async fn apply_input_changes(&self, owner: &str) -> Result<usize, StoreError> {
        let lease_micros = i64::try_from(LEASE.as_micros()).unwrap_or(i64::MAX);
        let claimed = self
            .store
            .claim_input_changes(owner, now_micros() + lease_micros, CLAIM_BATCH)
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let mut users = Vec::new();
        for change in &claimed {
            users.extend(self.store.users_of_input_change(change).await?);
        }
        users.sort();
        users.dedup();
        let mut changed = 0;
        for chunk in users.chunks(RECOMPUTE_CHUNK) {
            changed += self
                .recompute_batch(chunk)
                .await?
                .iter()
                .filter(|(_, c)| *c)
                .count();
        }
        let seqs: Vec<i64> = claimed.iter().map(|c| c.seq).collect();
        self.store.finish_input_changes(&seqs).await?;
        tracing::debug!(
            changes = seqs.len(),
            users = users.len(),
            new_versions = changed,
            "applied policy-input changes"
        );
        Ok(claimed.len())
    }
}
