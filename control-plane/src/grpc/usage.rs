//! Usage reports from agents' relays: checked and bounded at the edge (a hostile device
//! credential may send anything), kept per stream until the next flush (only the latest
//! matters: reports are cumulative), then folded into the store.

use palisade_proto::v1 as pb;

use crate::domain::now_micros;
use crate::domain::usage::{
    day_of, UsageCounter, UsageReport, MAX_COUNTERS_PER_REPORT, MAX_EPOCH_LEN, MAX_MODEL_LEN,
};

/// How far back a counter's day may lie (an agent keeps 8 days).
const OLDEST_DAY: i64 = 10;
/// The largest counter value taken: far beyond any real use, and small enough that sums over
/// an organisation never overflow a BIGINT.
const MAX_COUNT: u64 = 1_000_000_000_000;

/// The report as the store takes it, or why it is refused.
pub fn checked(report: pb::UsageReport) -> Result<UsageReport, String> {
    let epoch = report.epoch;
    if epoch.is_empty()
        || epoch.len() > MAX_EPOCH_LEN
        || !epoch.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err("usage report: bad epoch".into());
    }
    if report.counters.len() > MAX_COUNTERS_PER_REPORT {
        return Err(format!(
            "usage report: {} counters, at most {MAX_COUNTERS_PER_REPORT}",
            report.counters.len()
        ));
    }
    let today = day_of(now_micros());
    let count = |v: u64| {
        if v > MAX_COUNT {
            return Err("usage report: counter out of range");
        }
        i64::try_from(v).map_err(|_| "usage report: counter out of range")
    };
    let mut counters = Vec::with_capacity(report.counters.len());
    for c in report.counters {
        if c.day > today + 1 || c.day < today - OLDEST_DAY {
            return Err(format!("usage report: day {} out of range", c.day));
        }
        let model: String = c
            .model
            .chars()
            .filter(|ch| !ch.is_control())
            .take(MAX_MODEL_LEN)
            .collect();
        counters.push(UsageCounter {
            day: c.day,
            model,
            requests: count(c.requests)?,
            input_tokens: count(c.input_tokens)?,
            output_tokens: count(c.output_tokens)?,
            cache_creation_input_tokens: count(c.cache_creation_input_tokens)?,
            cache_read_input_tokens: count(c.cache_read_input_tokens)?,
        });
    }
    Ok(UsageReport { epoch, counters })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(day: i64, model: &str) -> pb::UsageCounter {
        pb::UsageCounter {
            day,
            model: model.into(),
            requests: 2,
            input_tokens: 10,
            output_tokens: 5,
            ..pb::UsageCounter::default()
        }
    }

    #[test]
    fn reports_are_bounded() {
        let today = day_of(now_micros());
        let ok = checked(pb::UsageReport {
            epoch: "e-1".into(),
            counters: vec![counter(today, "claude\u{7}-x")],
        })
        .unwrap();
        assert_eq!(ok.counters[0].model, "claude-x");
        for bad in [
            pb::UsageReport {
                epoch: String::new(),
                counters: vec![],
            },
            pb::UsageReport {
                epoch: "e".repeat(65),
                counters: vec![],
            },
            pb::UsageReport {
                epoch: "e".into(),
                counters: vec![counter(today + 5, "m")],
            },
            pb::UsageReport {
                epoch: "e".into(),
                counters: (0..65).map(|_| counter(today, "m")).collect(),
            },
            pb::UsageReport {
                epoch: "e".into(),
                counters: vec![pb::UsageCounter {
                    requests: u64::MAX,
                    ..counter(today, "m")
                }],
            },
        ] {
            assert!(checked(bad).is_err());
        }
    }
}
