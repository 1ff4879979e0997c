//! The error policy keys (Kafka Connect's `errors.*` of KIP-298, and this worker's opt-in
//! automatic task restart).

use std::collections::BTreeMap;
use std::time::Duration;

use wasmconnect_sdk::config::ConfigIssue;

pub const TOLERANCE: &str = "errors.tolerance";
pub const RETRY_TIMEOUT: &str = "errors.retry.timeout";
pub const RETRY_DELAY_MAX: &str = "errors.retry.delay.max.ms";
pub const LOG_ENABLE: &str = "errors.log.enable";
pub const LOG_MESSAGES: &str = "errors.log.include.messages";
pub const DLQ_TOPIC: &str = "errors.deadletterqueue.topic.name";
pub const DLQ_REPLICATION: &str = "errors.deadletterqueue.topic.replication.factor";
pub const DLQ_HEADERS: &str = "errors.deadletterqueue.context.headers.enable";
pub const RESTART_ENABLE: &str = "errors.task.restart.enable";
pub const RESTART_MAX: &str = "errors.task.restart.max.attempts";
pub const RESTART_BACKOFF: &str = "errors.task.restart.backoff.ms";
pub const RESTART_BACKOFF_MAX: &str = "errors.task.restart.backoff.max.ms";

/// Where failed records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterQueue {
    pub topic: String,
    pub replication_factor: i32,
    pub context_headers: bool,
}

/// Automatic restart of a failed task (not in Kafka Connect, which never restarts a task
/// by itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts after the first failure before the task is left FAILED; `None`: no limit.
    pub max_attempts: Option<u32>,
    /// Delay before the first restart; it doubles with every further one.
    pub backoff: Duration,
    pub backoff_max: Duration,
}

impl RestartPolicy {
    /// The delay before restart number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2_u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.backoff.saturating_mul(factor).min(self.backoff_max)
    }
}

/// A connector's error policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorConfig {
    /// `errors.tolerance=all`: skip bad records instead of failing the task.
    pub tolerate_all: bool,
    /// How long a retriable failure is retried; `None` for ever.
    pub retry_timeout: Option<Duration>,
    pub retry_delay_max: Duration,
    pub log: bool,
    pub log_messages: bool,
    pub dlq: Option<DeadLetterQueue>,
    pub restart: Option<RestartPolicy>,
}

impl Default for ErrorConfig {
    fn default() -> ErrorConfig {
        ErrorConfig {
            tolerate_all: false,
            retry_timeout: Some(Duration::ZERO),
            retry_delay_max: Duration::from_secs(60),
            log: false,
            log_messages: false,
            dlq: None,
            restart: None,
        }
    }
}

struct Parser<'a> {
    config: &'a BTreeMap<String, String>,
    issues: Vec<ConfigIssue>,
}

impl Parser<'_> {
    fn raw(&self, key: &str) -> Option<&str> {
        self.config.get(key).map(|v| v.trim())
    }

    fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.raw(key).map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(v) => {
                let issue = ConfigIssue::new(
                    key,
                    format!(
                        "Invalid value {v} for configuration {key}: Expected value to be either true or false"
                    ),
                );
                self.issues.push(issue);
                default
            }
        }
    }

    /// A long of at least `min`.
    fn long(&mut self, key: &str, default: i64, min: i64) -> i64 {
        let Some(v) = self.raw(key) else {
            return default;
        };
        match v.parse::<i64>() {
            Ok(n) if n >= min => n,
            Ok(_) => {
                let issue = ConfigIssue::new(
                    key,
                    format!(
                        "Invalid value {v} for configuration {key}: Value must be at least {min}"
                    ),
                );
                self.issues.push(issue);
                default
            }
            Err(_) => {
                let issue = ConfigIssue::new(
                    key,
                    format!("Invalid value {v} for configuration {key}: Not a number of type LONG"),
                );
                self.issues.push(issue);
                default
            }
        }
    }
}

fn millis(n: i64) -> Duration {
    Duration::from_millis(u64::try_from(n).unwrap_or(0))
}

/// Parses the policy; every bad key is reported by name.
///
/// # Errors
/// The issues.
pub fn parse(config: &BTreeMap<String, String>) -> Result<ErrorConfig, Vec<ConfigIssue>> {
    let mut p = Parser {
        config,
        issues: Vec::new(),
    };
    let tolerate_all = match p.raw(TOLERANCE).map(str::to_ascii_lowercase).as_deref() {
        None | Some("none") => false,
        Some("all") => true,
        Some(v) => {
            let issue = ConfigIssue::new(
                TOLERANCE,
                format!(
                    "Invalid value {v} for configuration {TOLERANCE}: String must be one of: none, all"
                ),
            );
            p.issues.push(issue);
            false
        }
    };
    let retry = p.long(RETRY_TIMEOUT, 0, -1);
    let retry_delay_max = millis(p.long(RETRY_DELAY_MAX, 60_000, 1));
    let log = p.bool(LOG_ENABLE, false);
    let log_messages = p.bool(LOG_MESSAGES, false);
    let topic = p.raw(DLQ_TOPIC).unwrap_or_default().to_owned();
    let replication = p.long(DLQ_REPLICATION, 3, -1);
    let context_headers = p.bool(DLQ_HEADERS, false);
    let restart_enabled = p.bool(RESTART_ENABLE, false);
    let max_attempts = p.long(RESTART_MAX, 10, -1);
    let backoff = millis(p.long(RESTART_BACKOFF, 1000, 0));
    let backoff_max = millis(p.long(RESTART_BACKOFF_MAX, 60_000, 0));
    if replication == 0 || replication > i64::from(i16::MAX) {
        let issue = ConfigIssue::new(
            DLQ_REPLICATION,
            format!(
                "Invalid value {replication} for configuration {DLQ_REPLICATION}: must be -1 (the broker's default) or a positive short"
            ),
        );
        p.issues.push(issue);
    }
    if !p.issues.is_empty() {
        return Err(p.issues);
    }
    Ok(ErrorConfig {
        tolerate_all,
        retry_timeout: u64::try_from(retry).ok().map(Duration::from_millis),
        retry_delay_max,
        log,
        log_messages,
        dlq: (!topic.is_empty()).then(|| DeadLetterQueue {
            topic,
            replication_factor: i32::try_from(replication).unwrap_or(-1),
            context_headers,
        }),
        restart: restart_enabled.then_some(RestartPolicy {
            max_attempts: u32::try_from(max_attempts).ok(),
            backoff,
            backoff_max: backoff_max.max(backoff),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::map;

    #[test]
    fn defaults_are_kafkas() {
        let c = parse(&BTreeMap::new()).expect("valid");
        assert_eq!(c, ErrorConfig::default());
    }

    #[test]
    fn every_key_parses_and_bad_values_are_named() {
        let c = parse(&map(&[
            (TOLERANCE, "ALL"),
            (RETRY_TIMEOUT, "-1"),
            (DLQ_TOPIC, "dlq"),
            (DLQ_REPLICATION, "1"),
            (DLQ_HEADERS, "true"),
            (RESTART_ENABLE, "true"),
            (RESTART_MAX, "-1"),
            (RESTART_BACKOFF, "100"),
            (RESTART_BACKOFF_MAX, "250"),
        ]))
        .expect("valid");
        assert!(c.tolerate_all);
        assert_eq!(c.retry_timeout, None);
        assert_eq!(
            c.dlq
                .as_ref()
                .map(|d| (d.replication_factor, d.context_headers)),
            Some((1, true))
        );
        let restart = c.restart.expect("enabled");
        assert_eq!(restart.max_attempts, None);
        let delays: Vec<u128> = (1..=4).map(|a| restart.delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 250, 250]);

        let issues = parse(&map(&[
            (TOLERANCE, "some"),
            (RETRY_TIMEOUT, "-2"),
            (LOG_ENABLE, "yes"),
        ]))
        .expect_err("invalid");
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, [TOLERANCE, RETRY_TIMEOUT, LOG_ENABLE]);
    }
}
