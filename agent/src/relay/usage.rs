//! Usage attribution: reading the Messages API's `usage` fields from responses as they pass
//! (server-sent events or one JSON body) and keeping cumulative counters per UTC day and model,
//! which the agent reports on the policy stream and saves in its state directory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The state file holding the counters.
pub const USAGE_FILE: &str = "usage.json";
/// Days of counters kept (and reported).
const DAYS_KEPT: i64 = 8;
/// Counters kept at most (days × models; one more, "other", takes new models when full): the
/// control plane takes at most 64 per report.
const MAX_COUNTERS: usize = 62;
/// The largest non-streamed body read for its usage (a Messages answer is far smaller).
const MAX_JSON_BODY: usize = 8 << 20;
/// The largest single server-sent event kept while waiting for its end.
const MAX_EVENT: usize = 1 << 20;

/// Tokens of one response (or of all responses of a counter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tokens {
    /// Requests forwarded.
    pub requests: u64,
    /// Input tokens (uncached).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
}

impl Tokens {
    fn add(&mut self, other: &Tokens) {
        self.requests = self.requests.saturating_add(other.requests);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cache_creation_input_tokens = self
            .cache_creation_input_tokens
            .saturating_add(other.cache_creation_input_tokens);
        self.cache_read_input_tokens = self
            .cache_read_input_tokens
            .saturating_add(other.cache_read_input_tokens);
    }

    /// Takes what a `usage` object says (absent fields keep their value: a streamed answer's
    /// `message_delta` carries only what changed).
    fn read(&mut self, usage: &Value) {
        let field = |name: &str| usage.get(name).and_then(Value::as_u64);
        if let Some(v) = field("input_tokens") {
            self.input_tokens = v;
        }
        if let Some(v) = field("output_tokens") {
            self.output_tokens = v;
        }
        if let Some(v) = field("cache_creation_input_tokens") {
            self.cache_creation_input_tokens = v;
        }
        if let Some(v) = field("cache_read_input_tokens") {
            self.cache_read_input_tokens = v;
        }
    }
}

/// Cumulative counters since `epoch` began.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageCounters {
    /// A random id; a new one starts when the counters are lost or reset.
    pub epoch: String,
    /// (day since 1970-01-01 UTC, model) → totals.
    pub counters: BTreeMap<String, BTreeMap<String, Tokens>>,
    /// Changed since last reported.
    #[serde(skip)]
    pub dirty: bool,
}

impl UsageCounters {
    /// Empty counters of a new epoch.
    pub fn new_epoch() -> UsageCounters {
        UsageCounters {
            epoch: hex::encode(rand::random::<[u8; 12]>()),
            counters: BTreeMap::new(),
            dirty: false,
        }
    }

    /// Adds one response's tokens.
    pub fn record(&mut self, day: i64, model: &str, tokens: &Tokens) {
        let model: String = if model.is_empty() {
            "unknown".to_owned()
        } else {
            model
                .chars()
                .filter(|c| !c.is_control())
                .take(128)
                .collect()
        };
        let key = format!("{day:08}");
        self.trim(day);
        let known = self
            .counters
            .get(&key)
            .is_some_and(|models| models.contains_key(&model));
        // Full: older days make room first; past that, new models share one counter.
        let model = if known || self.len() < MAX_COUNTERS {
            model
        } else {
            while self.len() >= MAX_COUNTERS && self.counters.len() > 1 {
                let Some(first) = self.counters.keys().next().cloned() else {
                    break;
                };
                if first == key {
                    break;
                }
                self.counters.remove(&first);
            }
            if self.len() < MAX_COUNTERS {
                model
            } else {
                "other".to_owned()
            }
        };
        self.counters
            .entry(key)
            .or_default()
            .entry(model)
            .or_default()
            .add(tokens);
        self.dirty = true;
    }

    fn len(&self) -> usize {
        self.counters.values().map(BTreeMap::len).sum()
    }

    fn trim(&mut self, today: i64) {
        let oldest = format!("{:08}", today - DAYS_KEPT + 1);
        self.counters.retain(|day, _| *day >= oldest);
    }

    /// Every kept counter as (day, model, totals).
    pub fn entries(&self) -> Vec<(i64, String, Tokens)> {
        self.counters
            .iter()
            .flat_map(|(day, models)| {
                let day: i64 = day.parse().unwrap_or_default();
                models.iter().map(move |(m, t)| (day, m.clone(), *t))
            })
            .collect()
    }
}

/// Days since 1970-01-01, UTC, of a Unix time in milliseconds.
pub fn day_of_unix_ms(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// What one response said about its usage, read as its bytes pass.
#[derive(Debug)]
pub struct ResponseMeter {
    streaming: bool,
    buffer: Vec<u8>,
    overflow: bool,
    /// The model the answer names.
    pub model: String,
    /// What it reported.
    pub tokens: Tokens,
}

impl ResponseMeter {
    /// A meter for a response of this `content-type`.
    pub fn new(content_type: &str) -> ResponseMeter {
        ResponseMeter {
            streaming: content_type
                .to_ascii_lowercase()
                .starts_with("text/event-stream"),
            buffer: Vec::new(),
            overflow: false,
            model: String::new(),
            tokens: Tokens {
                requests: 1,
                ..Tokens::default()
            },
        }
    }

    /// Reads a chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.overflow {
            return;
        }
        self.buffer.extend_from_slice(chunk);
        if !self.streaming {
            if self.buffer.len() > MAX_JSON_BODY {
                self.overflow = true;
                self.buffer = Vec::new();
            }
            return;
        }
        // Events end with a blank line; take every complete one.
        while let Some(end) = find_event_end(&self.buffer) {
            let event: Vec<u8> = self.buffer.drain(..end.0 + end.1).collect();
            self.event(&event[..end.0]);
        }
        if self.buffer.len() > MAX_EVENT {
            self.buffer.clear();
        }
    }

    fn event(&mut self, event: &[u8]) {
        let text = String::from_utf8_lossy(event);
        let data: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect::<Vec<_>>()
            .join("\n");
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            return;
        };
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(m) = v.get("message") {
                    self.message(m);
                }
            }
            Some("message_delta") => {
                if let Some(u) = v.get("usage") {
                    self.tokens.read(u);
                }
            }
            _ => {}
        }
    }

    fn message(&mut self, m: &Value) {
        if let Some(model) = m.get("model").and_then(Value::as_str) {
            model.clone_into(&mut self.model);
        }
        if let Some(u) = m.get("usage") {
            self.tokens.read(u);
        }
    }

    /// The body ended: a JSON answer is read whole now.
    pub fn finish(&mut self) {
        if !self.streaming && !self.overflow {
            if let Ok(v) = serde_json::from_slice::<Value>(&self.buffer) {
                self.message(&v);
            }
        }
        self.buffer = Vec::new();
    }
}

/// Where the first event of `buf` ends: (length of the event, length of the separator).
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":7,\"output_tokens\":1}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn reads_a_streamed_answer_in_any_chunking() {
        for size in [1, 3, 17, 4096] {
            let mut m = ResponseMeter::new("text/event-stream; charset=utf-8");
            for chunk in STREAM.as_bytes().chunks(size) {
                m.feed(chunk);
            }
            m.finish();
            assert_eq!(m.model, "claude-sonnet-4-5");
            assert_eq!(
                m.tokens,
                Tokens {
                    requests: 1,
                    input_tokens: 25,
                    output_tokens: 15,
                    cache_creation_input_tokens: 0,
                    cache_read_input_tokens: 7
                },
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn reads_a_json_answer() {
        let body = br#"{"id":"m","model":"claude-haiku-4-5","usage":{"input_tokens":3,"output_tokens":4,"cache_creation_input_tokens":2}}"#;
        let mut m = ResponseMeter::new("application/json");
        for chunk in body.chunks(5) {
            m.feed(chunk);
        }
        m.finish();
        assert_eq!(m.model, "claude-haiku-4-5");
        assert_eq!(m.tokens.input_tokens, 3);
        assert_eq!(m.tokens.output_tokens, 4);
        assert_eq!(m.tokens.cache_creation_input_tokens, 2);
    }

    #[test]
    fn garbage_counts_the_request_only() {
        let mut m = ResponseMeter::new("text/event-stream");
        m.feed(b"data: {not json\n\n\n\x00\xff");
        m.finish();
        assert_eq!(
            m.tokens,
            Tokens {
                requests: 1,
                ..Tokens::default()
            }
        );
    }

    #[test]
    fn counters_accumulate_and_stay_bounded() {
        let mut c = UsageCounters::new_epoch();
        let t = Tokens {
            requests: 1,
            input_tokens: 10,
            ..Tokens::default()
        };
        c.record(20_000, "a", &t);
        c.record(20_000, "a", &t);
        c.record(20_000, "", &t);
        assert_eq!(
            c.entries(),
            vec![
                (
                    20_000,
                    "a".to_owned(),
                    Tokens {
                        requests: 2,
                        input_tokens: 20,
                        ..Tokens::default()
                    }
                ),
                (20_000, "unknown".to_owned(), t),
            ]
        );
        c.record(20_010, "a", &t);
        assert!(
            c.entries().iter().all(|(d, _, _)| *d == 20_010),
            "old days dropped"
        );
        for i in 0..100 {
            c.record(20_010, &format!("m{i}"), &t);
        }
        assert!(c.entries().len() <= MAX_COUNTERS + 1);
        assert!(c.entries().iter().any(|(_, m, _)| m == "other"));
    }
}
