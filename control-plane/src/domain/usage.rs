//! API usage that agents' relays report: cumulative counters per counter epoch, UTC day and
//! model, and the per-person and per-group totals an organisation reads.

/// The most counters one report may carry (an agent keeps a week of days × a few models).
pub const MAX_COUNTERS_PER_REPORT: usize = 64;
/// The longest model name kept.
pub const MAX_MODEL_LEN: usize = 128;
/// The longest counter epoch kept.
pub const MAX_EPOCH_LEN: usize = 64;

/// One cumulative counter as an agent reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCounter {
    /// Days since 1970-01-01, UTC.
    pub day: i64,
    pub model: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
}

/// A device's report: its counters since `epoch` began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    pub epoch: String,
    pub counters: Vec<UsageCounter>,
}

/// Totals for one person (or one group) over a period.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct UsageTotals {
    /// The person's userName or the group's displayName.
    pub name: String,
    /// Devices that reported usage in the period.
    pub devices: i64,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
}

/// Days since 1970-01-01 (UTC) of a time in microseconds.
pub fn day_of(micros: super::Micros) -> i64 {
    micros.div_euclid(86_400_000_000)
}
