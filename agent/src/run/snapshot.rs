//! Applying a snapshot: the policy first, then the API key (a key failure becomes a warning,
//! never a NACK), then the cache and the status.

use super::*;

impl Agent {
    /// Applies a snapshot and returns the ACK, or the NACK that keeps the last good policy.
    pub(super) fn apply_snapshot(&mut self, snapshot: Snapshot) -> AgentEvent {
        let Snapshot {
            version,
            nonce,
            policy,
            valid_until_unix_ms,
            offline_rule,
            api_key,
            policy_sha256,
            device_unverified,
            confirm_url,
            key_delivery,
            upstream_url,
        } = snapshot;
        let refuse = |agent: &mut Agent, error: String| {
            tracing::warn!(version, %error, "refusing a snapshot; keeping the last good policy");
            agent.status.last_error = Some(format!("policy version {version} refused: {error}"));
            AgentEvent::Nack {
                version,
                nonce: nonce.clone(),
                error,
            }
        };
        // An unconfirmed (MDM-enrolled) device tells its developer where to confirm it.
        self.enforcer
            .set_announcement(confirm_url.as_deref().filter(|_| device_unverified).map(|url| {
                format!(
                    "Palisade: confirm that this computer is yours to receive your organisation's API key: {url}"
                )
            }));
        self.status.device_unverified = device_unverified;
        self.status.confirm_url = confirm_url.filter(|_| device_unverified);
        // Proxy delivery points Claude Code at the relay (when it runs).
        let relayed = key_delivery == KeyDelivery::Proxy && self.ensure_relay();
        self.set_delivery(relayed);
        // The policy first: a key that cannot be written must not keep it off the disk.
        let written = match self.enforcer.apply(&policy) {
            Ok(written) => written,
            Err(e) => return refuse(self, e.to_string()),
        };
        self.arm_watches();
        // Proxy delivery without a running relay serves no key: the organisation asked for it
        // to stay off the developer's account.
        let for_helper = api_key
            .as_deref()
            .filter(|_| key_delivery == KeyDelivery::Helper || relayed);
        let stored = match for_helper {
            Some(key) => self.store_api_key(key, relayed),
            None => self.remove_api_key(),
        };
        self.api_key = api_key.clone();
        self.key_warning = match stored {
            Ok(()) => None,
            Err(e) => {
                let verb = if api_key.is_some() {
                    "stored"
                } else {
                    "removed"
                };
                tracing::error!(version, error = %e, "policy applied, but the API key was not {verb}");
                Some(Warning {
                    code: sources::CODE_API_KEY_UNAVAILABLE.to_owned(),
                    detail: format!(
                        "policy version {version} applied, but its API key could not be {verb}: {e}"
                    ),
                })
            }
        };
        let device_id = self
            .device
            .as_ref()
            .map(|d| d.device_id.clone())
            .unwrap_or_default();
        let cached = CachedPolicy {
            device_id,
            version,
            policy,
            valid_until_unix_ms,
            offline_deadline_unix_ms: valid_until_unix_ms
                .map(|v| v.saturating_add(self.clock_skew_ms)),
            offline_rule,
            sha256: policy_sha256,
            applied_at_unix_ms: now_unix_ms(),
            key_delivery,
            upstream_url,
        };
        if let Err(e) = self.state.save_policy(&cached) {
            tracing::error!(error = %e, "policy applied but not cached for the next start");
        }
        self.cached = Some(cached);
        self.expired = false;
        self.offline_lockdown = false;
        if self.wiped {
            self.wiped = false;
            self.status.wiped = None;
        }
        self.status.last_error = None;
        self.sync_policy_status();
        tracing::info!(
            version,
            written,
            has_api_key = api_key.is_some(),
            "applied policy"
        );
        AgentEvent::Ack { version, nonce }
    }

    /// Saves what Claude Code's helper prints — the key itself, or with the relay the
    /// developer's local token while the key goes to the root-only `upstream-key` — in the
    /// state directory and in the developer's key file (each tried even when another fails).
    pub(super) fn store_api_key(&self, key: &str, relayed: bool) -> Result<(), String> {
        let mut failed = Vec::new();
        let token = if relayed {
            match self.relay.as_ref().and_then(Relay::local_token) {
                Some(t) => Some(t),
                // Never fall back to handing the developer the key itself.
                None => return Err("the relay has no enrollment to issue a local token for".into()),
            }
        } else {
            None
        };
        let for_helper = match &token {
            Some(t) => {
                if let Err(e) = self
                    .state
                    .write_bytes(UPSTREAM_KEY_FILE, key.trim().as_bytes())
                {
                    failed.push(e.to_string());
                }
                t.as_str()
            }
            None => {
                if let Err(e) = self.state.remove(UPSTREAM_KEY_FILE) {
                    failed.push(e.to_string());
                }
                key
            }
        };
        if let Err(e) = self.state.save_api_key(for_helper) {
            failed.push(e.to_string());
        }
        if let Some(k) = &self.user_key {
            if let Err(e) = k.save(for_helper) {
                failed.push(e.to_string());
            }
        }
        joined(failed)
    }

    /// Removes the key (and any local token) from the state directory and every developer's
    /// key file.
    pub(super) fn remove_api_key(&self) -> Result<(), String> {
        let (_, mut failed) = keyfile::remove_all(&keyfile::keys_root(self.state.root()));
        for name in [API_KEY_FILE, UPSTREAM_KEY_FILE] {
            if let Err(e) = self.state.remove(name) {
                failed.push(e.to_string());
            }
        }
        joined(failed)
    }
}
