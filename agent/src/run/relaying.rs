//! The relay's side of the loop: starting it when a policy asks for proxy delivery, pointing
//! Claude Code at it, telling it whose token to accept and whether to forward, and reporting
//! its usage counters.

use super::*;

impl Agent {
    /// Starts the relay if it is not running yet; whether it runs.
    pub(super) fn ensure_relay(&mut self) -> bool {
        if self.relay.is_some() {
            return true;
        }
        let Some(addr) = self.relay_addr else {
            return false;
        };
        match start_relay(&self.state, addr) {
            Ok(relay) => {
                self.relay = Some(relay);
                self.relay_warning = None;
                true
            }
            Err(warning) => {
                self.relay_warning = Some(warning);
                false
            }
        }
    }

    /// Points Claude Code at the relay (its URL, and a helper that checks it answers) or not,
    /// from the next policy written.
    pub(super) fn set_delivery(&mut self, relayed: bool) {
        if relayed {
            // The relay must know whose token it issues before any is handed out.
            self.sync_relay();
        }
        match self.relay.as_ref().filter(|_| relayed) {
            Some(relay) => {
                self.enforcer.set_base_url(Some(relay.url()));
                self.enforcer
                    .set_helper(format!("{} --relay {}", self.helper, relay.addr()));
            }
            None => {
                self.enforcer.set_base_url(None);
                self.enforcer.set_helper(self.helper.clone());
            }
        }
    }

    /// Tells the relay whose token to accept and whether to forward, from the agent's state.
    pub(super) fn sync_relay(&mut self) {
        let Some(relay) = &self.relay else { return };
        relay.bind(self.device.as_ref().map(|d| {
            Binding {
                device_id: d.device_id.clone(),
                developer: self
                    .user_key
                    .as_ref()
                    .map_or_else(|| "self".to_owned(), |k| k.owner().to_string()),
                developer_uid: developer_uid(self.user_key.as_ref()),
            }
        }));
        let access = match &self.cached {
            _ if self.wiped => Access::Refusing(Refusal::Deprovisioned),
            _ if self.device.is_none() => Access::Refusing(Refusal::NotEnrolled),
            _ if self.offline_lockdown => Access::Refusing(Refusal::OfflineLockdown),
            None => Access::Refusing(Refusal::NotEnrolled),
            Some(c) if c.key_delivery != KeyDelivery::Proxy => {
                Access::Refusing(Refusal::HelperDelivery)
            }
            Some(_) if self.status.device_unverified => Access::Refusing(Refusal::Unverified {
                confirm_url: self.status.confirm_url.clone(),
            }),
            Some(c) => match &self.api_key {
                None => Access::Refusing(Refusal::NoKey),
                Some(key) => Access::Serving {
                    key: key.clone(),
                    upstream: c
                        .upstream_url
                        .clone()
                        .unwrap_or_else(|| crate::relay::ANTHROPIC_API.to_owned()),
                },
            },
        };
        self.status.relay = Some(match &access {
            Access::Serving { upstream, .. } => {
                format!("{}: forwarding to {upstream}", relay.url())
            }
            Access::Refusing(why) => format!("{}: refusing ({})", relay.url(), why.message()),
        });
        relay.set_access(access);
    }

    /// The relay counted usage: report it shortly (one report for a burst of requests).
    pub(super) fn arm_usage_flush(&mut self) {
        if self.usage_flush_at.is_none() {
            self.usage_flush_at = Some(Instant::now() + USAGE_FLUSH_AFTER);
        }
    }

    /// Saves the relay's counters and sends them (when the stream is up; otherwise the next
    /// connection sends them).
    pub(super) fn flush_usage(&mut self, link: &Link) {
        self.usage_flush_at = None;
        let Some(counters) = self.relay.as_ref().and_then(Relay::usage_if_changed) else {
            return;
        };
        if let Err(e) = self.state.write_json(USAGE_FILE, &counters) {
            tracing::warn!(error = %e, "cannot save the usage counters");
        }
        send(link, usage_event(&counters));
    }
}

/// Completes when the relay counted usage; never without a relay.
pub(super) async fn usage_recorded(relay: Option<&Relay>) {
    match relay {
        Some(r) => r.usage_recorded().await,
        None => std::future::pending().await,
    }
}

/// The report of the relay's counters.
pub(super) fn usage_event(counters: &UsageCounters) -> AgentEvent {
    AgentEvent::Usage(UsageSnapshot {
        epoch: counters.epoch.clone(),
        counters: counters.entries(),
    })
}

/// The uid a relay client socket must belong to (Linux; `None` elsewhere or without a
/// developer, when the token's secrecy is the binding).
fn developer_uid(user_key: Option<&UserKeyFile>) -> Option<u32> {
    #[cfg(target_os = "linux")]
    return user_key.map(|k| k.owner().uid);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = user_key;
        None
    }
}

/// Starts the relay on `addr` with the stored token secret and counters, or says why not.
fn start_relay(state: &StateDir, addr: std::net::SocketAddr) -> Result<Relay, Warning> {
    let secret = TokenSecret::load_or_create(state).map_err(|e| {
        tracing::error!(error = %e, "cannot keep the relay's token secret: the relay is off");
        relay_off_warning(format!("cannot keep its token secret: {e}"))
    })?;
    let usage = state
        .read_json::<UsageCounters>(USAGE_FILE)
        .ok()
        .flatten()
        .filter(|u| !u.epoch.is_empty())
        .unwrap_or_else(UsageCounters::new_epoch);
    Relay::start(addr, secret, usage).map_err(|e| {
        tracing::error!(%addr, error = %e, "the relay cannot listen: with proxy key delivery no key is served");
        relay_off_warning(format!("cannot listen on {addr}: {e}"))
    })
}

fn relay_off_warning(detail: String) -> Warning {
    Warning {
        code: sources::CODE_RELAY_UNAVAILABLE.to_owned(),
        detail: format!(
            "the key relay is off ({detail}); with proxy key delivery Claude Code gets no key \
             (the organisation keeps it off the developer's account)"
        ),
    }
}
