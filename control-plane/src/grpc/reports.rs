//! Device reports (NACK, tamper, warning, wipe, a revoked device's reconnection) are rate
//! limited per device and coalesced, so a hostile device credential cannot grow the audit
//! trail or occupy the database writer: a per-device token bucket (shared by all the
//! device's streams, so reconnecting does not refill it) drops the excess, each stream gathers
//! repeats of a kind for [`FLUSH_INTERVAL`] into one write, and the store folds writes of a
//! kind into the device's latest row of that kind while it is younger than its window.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};

use crate::domain::{now_micros, Micros};
use crate::store::{DeviceReport, ReportTally, Store};

/// How long a stream gathers repeated reports of a kind before writing them.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// Sustained reports per second a device may make (all kinds, all its streams).
pub const REPORTS_PER_SECOND: u32 = 10;
/// Reports a device may burst above the sustained rate.
pub const REPORT_BURST: u32 = 50;

/// The per-device token buckets, shared by every stream.
#[derive(Clone)]
pub struct ReportLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl Default for ReportLimiter {
    fn default() -> Self {
        ReportLimiter::new()
    }
}

impl ReportLimiter {
    pub fn new() -> ReportLimiter {
        let rate = NonZeroU32::new(REPORTS_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(REPORT_BURST).unwrap_or(rate);
        let limiter = Arc::new(DefaultKeyedRateLimiter::keyed(
            Quota::per_second(rate).allow_burst(burst),
        ));
        // Forget devices whose buckets are full again; the task ends with the last handle.
        let weak = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(l) = weak.upgrade() else { return };
                l.retain_recent();
                l.shrink_to_fit();
            }
        });
        ReportLimiter { limiter }
    }

    /// Whether the device may make one more report now.
    pub fn allow(&self, device_id: &str) -> bool {
        self.limiter.check_key(&device_id.to_string()).is_ok()
    }
}

/// A report as a stream keeps it between writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedReport {
    Rejected {
        version: i64,
        error: String,
    },
    Tampered {
        path: String,
        kind: String,
    },
    Wiped {
        removed: Vec<String>,
        failed: Vec<String>,
    },
    Warning {
        code: String,
        detail: String,
    },
}

impl OwnedReport {
    fn kind(&self) -> &'static str {
        match self {
            OwnedReport::Rejected { .. } => "nack",
            OwnedReport::Tampered { .. } => "tamper",
            OwnedReport::Wiped { .. } => "wipe",
            OwnedReport::Warning { .. } => "warning",
        }
    }

    fn as_report(&self) -> DeviceReport<'_> {
        match self {
            OwnedReport::Rejected { version, error } => DeviceReport::Rejected {
                version: *version,
                error,
            },
            OwnedReport::Tampered { path, kind } => DeviceReport::Tampered { path, kind },
            OwnedReport::Wiped { removed, failed } => DeviceReport::Wiped { removed, failed },
            OwnedReport::Warning { code, detail } => DeviceReport::Warning { code, detail },
        }
    }
}

struct Pending {
    /// The first report of the period stands for the rest.
    report: OwnedReport,
    count: u64,
    dropped: u64,
    first_at: Micros,
    last_at: Micros,
}

/// One stream's reports not yet written, by kind.
#[derive(Default)]
pub struct Coalescer {
    pending: HashMap<&'static str, Pending>,
}

/// What to write now.
pub type Write = (OwnedReport, ReportTally);

impl Coalescer {
    /// Takes one report. The first of a kind in a quiet period is written at once (an alert
    /// should not wait); repeats are gathered until [`Coalescer::flush`].
    pub fn add(&mut self, report: OwnedReport, allowed: bool) -> Option<Write> {
        let now = now_micros();
        let (count, dropped) = if allowed { (1, 0) } else { (0, 1) };
        match self.pending.get_mut(report.kind()) {
            Some(p) => {
                p.count += count;
                p.dropped += dropped;
                p.last_at = now;
                None
            }
            None => {
                let kind = report.kind();
                self.pending.insert(
                    kind,
                    Pending {
                        report: report.clone(),
                        count: 0,
                        dropped: 0,
                        first_at: now,
                        last_at: now,
                    },
                );
                Some((
                    report,
                    ReportTally {
                        count,
                        dropped,
                        first_at: now,
                        last_at: now,
                    },
                ))
            }
        }
    }

    /// The gathered reports to write. Kinds that were quiet for a whole period are forgotten,
    /// so their next report is written at once again.
    pub fn flush(&mut self) -> Vec<Write> {
        let mut out = Vec::new();
        self.pending.retain(|_, p| {
            if p.count == 0 && p.dropped == 0 {
                return false;
            }
            out.push((
                p.report.clone(),
                ReportTally {
                    count: p.count,
                    dropped: p.dropped,
                    first_at: p.first_at,
                    last_at: p.last_at,
                },
            ));
            p.count = 0;
            p.dropped = 0;
            p.first_at = p.last_at;
            true
        });
        out
    }
}

/// Writes gathered reports; failures are logged (the device cannot do anything about them).
pub async fn write(store: &Store, device_id: &str, writes: Vec<Write>) {
    for (report, tally) in writes {
        if let Err(e) = store
            .record_device_reports(device_id, report.as_report(), tally)
            .await
        {
            tracing::error!(%device_id, error = %e, "recording an agent report failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tamper(path: &str) -> OwnedReport {
        OwnedReport::Tampered {
            path: path.into(),
            kind: "modified".into(),
        }
    }

    #[test]
    fn repeats_are_gathered_and_counted() {
        let mut c = Coalescer::default();
        let first = c.add(tamper("/a"), true).unwrap();
        assert_eq!(first.1.count, 1);
        for i in 0..1000 {
            assert!(c.add(tamper("/b"), i % 2 == 0).is_none());
        }
        let out = c.flush();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].1.count, out[0].1.dropped), (500, 500));
        assert_eq!(out[0].0, tamper("/a"));
        // Still in a busy period: gathered, not written at once.
        assert!(c.add(tamper("/c"), true).is_none());
        assert_eq!(c.flush()[0].1.count, 1);
        // A quiet period forgets the kind.
        assert!(c.flush().is_empty());
        assert!(c.add(tamper("/d"), true).is_some());
    }
}
