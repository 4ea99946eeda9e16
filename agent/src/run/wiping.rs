//! The crash-safe wipe: a pending marker first, then lockdown, then the key files and
//! credentials, then the record; a restart finds the marker and finishes the wipe.

use super::*;

impl Agent {
    pub(super) async fn wipe(&mut self, reason: String, link: &mut Link) {
        let pending = PendingWipe {
            reason,
            device_id: self.device.as_ref().map(|d| d.device_id.clone()),
            started_at_unix_ms: now_unix_ms(),
        };
        // Without the marker a crash before (c) would not be finished at the next start; the
        // wipe goes ahead anyway, since stopping here would keep the credentials.
        if let Err(e) = self.state.save_pending_wipe(&pending) {
            tracing::error!(error = %e, "cannot mark the wipe as started; wiping anyway");
        }
        wipe::crash_point("wipe-pending");
        let record = self.finish_wipe(pending).await;

        match std::mem::replace(link, Link::Idle) {
            Link::Up { mut stream, .. } => {
                stream.send(AgentEvent::Wipe(record));
                stream.close_send();
                *link = Link::Closing {
                    stream,
                    until: Box::pin(tokio::time::sleep(CLOSE_GRACE)),
                };
            }
            _ => *link = Link::Idle,
        }
        self.outbox.clear();
        self.watch_state(true);
    }

    /// At start: finishes a wipe a crash interrupted (its marker is still there), before the
    /// cached policy could be applied or a connection opened.
    pub(super) async fn resume_wipe(&mut self) {
        let pending = match self.state.load_pending_wipe() {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "unreadable wipe marker: finishing the wipe anyway");
                PendingWipe {
                    reason: "an interrupted wipe (unreadable marker)".into(),
                    ..PendingWipe::default()
                }
            }
        };
        tracing::warn!(reason = %pending.reason, "a wipe was interrupted: finishing it");
        self.finish_wipe(pending).await;
        // A device enrolled after the crash (kept by the wipe) connects; status says wiped
        // until its first snapshot, as after any re-enrollment.
        self.device = self.state.load_device().ok().flatten();
    }

    /// The wipe's steps after the marker: (a) lockdown policy, (b) files and Keychain,
    /// (c) record in `status.json`, then the marker goes. Each step is safe to repeat.
    pub(super) async fn finish_wipe(&mut self, pending: PendingWipe) -> WipeRecord {
        let mut record = WipeRecord {
            reason: pending.reason.clone(),
            ..WipeRecord::default()
        };
        // With proxy delivery Claude Code stays pointed at the relay, which now refuses with
        // the message the developer must see ("your access was removed by your organisation").
        let was_relayed = self
            .cached
            .as_ref()
            .is_some_and(|c| c.key_delivery == KeyDelivery::Proxy);
        self.device = None;
        self.cached = None;
        self.wiped = true;
        self.offline_lockdown = false;
        self.key_warning = None;
        self.api_key = None;
        // (a) Lockdown first: whatever happens next, Claude Code is restricted; the relay
        // refuses from here on, and every local token ever issued dies with the old secret.
        self.sync_relay();
        if let Some(relay) = &self.relay {
            match TokenSecret::rotate(&self.state) {
                Ok(secret) => relay.set_secret(secret),
                Err(e) => {
                    relay.set_secret(TokenSecret::random());
                    record.failed.push(format!("relay token secret: {e}"));
                }
            }
            relay.reset_usage();
        }
        self.set_delivery(was_relayed);
        if let Err(e) = self.enforcer.apply(&palisade_policy::lockdown()) {
            record.failed.push(format!("lockdown policy: {e}"));
        }
        self.arm_watches();
        wipe::crash_point("wipe-lockdown");

        // (b) A device.json of another device is a new enrollment made after a crash: kept.
        let newer_enrollment = match (self.state.load_device(), &pending.device_id) {
            (Ok(Some(d)), Some(id)) => d.device_id != *id,
            _ => false,
        };
        let keep: &[&str] = if newer_enrollment {
            &[DEVICE_FILE, CA_FILE]
        } else {
            &[]
        };
        wipe::remove_files(
            &self.state,
            &self.paths.claude_config_dir,
            keep,
            &mut record,
        );
        wipe::wipe_keychain(&self.paths.claude_config_dir, &mut record).await;
        if was_relayed {
            if let Some(k) = &self.user_key {
                if let Err(e) = k.save(crate::relay::token::REVOKED_TOKEN) {
                    tracing::warn!(error = %e, "cannot leave the revoked marker for the helper");
                }
            }
        }
        wipe::crash_point("wipe-removed");

        // (c) Recorded last, so "wiped" in status means the files are gone.
        record.wiped_at_unix_ms = now_unix_ms();
        let earlier = self.status.wiped.take();
        if let Some(earlier) = earlier.filter(|e| e.reason == record.reason) {
            // A crash after (c) last time: keep what that run removed.
            let mut removed = earlier.removed;
            for r in record.removed.drain(..) {
                if !removed.contains(&r) {
                    removed.push(r);
                }
            }
            record.removed = removed;
        }
        if record.failed.is_empty() {
            tracing::warn!(removed = ?record.removed, "wiped; lockdown policy written");
        } else {
            tracing::error!(removed = ?record.removed, failed = ?record.failed, "wipe incomplete");
        }
        self.status.wiped = Some(record.clone());
        self.status.connected = false;
        self.sync_policy_status();
        self.status.updated_at_unix_ms = now_unix_ms();
        match self.state.save_status(&self.status) {
            Ok(()) => {
                wipe::crash_point("wipe-recorded");
                if let Err(e) = self.state.remove(WIPE_PENDING_FILE) {
                    tracing::warn!(error = %e, "cannot remove the wipe marker");
                }
            }
            // The marker stays: the next start records it again.
            Err(e) => tracing::error!(error = %e, "cannot record the wipe"),
        }
        record
    }

    pub(super) fn write_lockdown(&mut self) {
        if let Err(e) = self.enforcer.apply(&palisade_policy::lockdown()) {
            tracing::error!(error = %e, "cannot write the lockdown policy");
            self.status.last_error = Some(format!("cannot write the lockdown policy: {e}"));
        }
    }

    // -----------------------------------------------------------------------------------------
    // File-system signals.
}
