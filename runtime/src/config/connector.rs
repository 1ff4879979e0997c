//! The keys every connector has (Kafka Connect's `ConnectorConfig`, `SinkConnectorConfig`,
//! `SourceConnectorConfig`), validated before any plugin code runs.

use std::collections::BTreeMap;

use regex::Regex;
use wasmconnect_sdk::PluginKind;
use wasmconnect_sdk::config::{ConfigIssue, ConfigType, Importance, Width};

use super::errors;
use crate::kafka::TopicSpec;
use crate::plugin::{ConfigKeyDef, Limits};

pub const NAME: &str = "name";
pub const CONNECTOR_CLASS: &str = "connector.class";
pub const TASKS_MAX: &str = "tasks.max";
pub const TOPICS: &str = "topics";
pub const TOPICS_REGEX: &str = "topics.regex";
pub const TRANSFORMS: &str = "transforms";
pub const PREDICATES: &str = "predicates";
pub const BATCH_MAX_RECORDS: &str = "batch.max.records";

/// The group of the common keys in a validate answer.
pub const COMMON_GROUP: &str = "Common";

#[allow(clippy::too_many_arguments)]
fn key(
    name: &str,
    t: ConfigType,
    default: Option<&str>,
    importance: Importance,
    doc: &str,
    order: i32,
    display: &str,
) -> ConfigKeyDef {
    ConfigKeyDef {
        name: name.into(),
        config_type: t,
        default_value: default.map(str::to_owned),
        required: default.is_none(),
        importance,
        documentation: doc.into(),
        group: Some(COMMON_GROUP.into()),
        order,
        width: Width::Medium,
        display_name: display.into(),
        recommended_values: Vec::new(),
    }
}

/// Definitions of the common keys for a connector of `kind`.
pub fn common_definitions(kind: PluginKind) -> Vec<ConfigKeyDef> {
    let mut defs = vec![
        key(
            NAME,
            ConfigType::String,
            None,
            Importance::High,
            "Globally unique name to use for this connector.",
            1,
            "Connector name",
        ),
        key(
            CONNECTOR_CLASS,
            ConfigType::String,
            None,
            Importance::High,
            "Name or alias of the plugin to use for this connector.",
            2,
            "Connector class",
        ),
        key(
            TASKS_MAX,
            ConfigType::Int,
            Some("1"),
            Importance::High,
            "Maximum number of tasks to use for this connector.",
            3,
            "Tasks max",
        ),
        key(
            "key.converter",
            ConfigType::Class,
            Some(""),
            Importance::Low,
            "Converter class for keys; overrides the worker's.",
            4,
            "Key converter class",
        ),
        key(
            "value.converter",
            ConfigType::Class,
            Some(""),
            Importance::Low,
            "Converter class for values; overrides the worker's.",
            5,
            "Value converter class",
        ),
        key(
            "header.converter",
            ConfigType::Class,
            Some(""),
            Importance::Low,
            "Converter class for headers; overrides the worker's.",
            6,
            "Header converter class",
        ),
        key(
            TRANSFORMS,
            ConfigType::List,
            Some(""),
            Importance::Low,
            "Aliases for the transformations to be applied to records.",
            7,
            "Transforms",
        ),
        key(
            PREDICATES,
            ConfigType::List,
            Some(""),
            Importance::Low,
            "Aliases for the predicates used by transformations.",
            8,
            "Predicates",
        ),
        key(
            errors::TOLERANCE,
            ConfigType::String,
            Some("none"),
            Importance::Medium,
            "Behavior for tolerating errors during connector operation. 'none' fails the task at the first error.",
            9,
            "Error tolerance",
        ),
        key(
            "plugin.memory.max.bytes",
            ConfigType::Long,
            Some(&Limits::DEFAULT_MEMORY_BYTES.to_string()),
            Importance::Low,
            "Largest linear memory a task's plugin may use; overrides the worker's.",
            10,
            "Plugin memory cap",
        ),
        key(
            "plugin.call.timeout.ms",
            ConfigType::Long,
            Some(&Limits::DEFAULT_CALL_TIMEOUT.as_millis().to_string()),
            Importance::Low,
            "Longest one call into the plugin may run; overrides the worker's.",
            11,
            "Plugin call timeout",
        ),
        key(
            BATCH_MAX_RECORDS,
            ConfigType::Int,
            Some("500"),
            Importance::Low,
            "Most records handed to the plugin in one call.",
            12,
            "Batch size",
        ),
    ];
    let errors: [(&str, ConfigType, &str, &str); 11] = [
        (
            errors::RETRY_TIMEOUT,
            ConfigType::Long,
            "0",
            "Milliseconds to retry a failed operation; -1 retries for ever. A sink's retriable write errors are redelivered for ever when 0.",
        ),
        (
            errors::RETRY_DELAY_MAX,
            ConfigType::Long,
            "60000",
            "Largest delay between two retries (300 ms doubling, with jitter).",
        ),
        (
            errors::LOG_ENABLE,
            ConfigType::Boolean,
            "false",
            "Log each error and the record's position at ERROR.",
        ),
        (
            errors::LOG_MESSAGES,
            ConfigType::Boolean,
            "false",
            "Also log the failed record's key, value and headers.",
        ),
        (
            errors::DLQ_TOPIC,
            ConfigType::String,
            "",
            "Topic for records that failed under errors.tolerance=all (sinks, and beyond Kafka Connect sources too).",
        ),
        (
            errors::DLQ_REPLICATION,
            ConfigType::Int,
            "3",
            "Replication factor of the DLQ topic when it is created (with 1 partition).",
        ),
        (
            errors::DLQ_HEADERS,
            ConfigType::Boolean,
            "false",
            "Add Kafka Connect's __connect.errors.* headers to DLQ records.",
        ),
        (
            errors::RESTART_ENABLE,
            ConfigType::Boolean,
            "false",
            "Restart a failed task automatically, with backoff (not in Kafka Connect).",
        ),
        (
            errors::RESTART_MAX,
            ConfigType::Int,
            "10",
            "Automatic restarts before a task is left FAILED; -1 for no limit.",
        ),
        (
            errors::RESTART_BACKOFF,
            ConfigType::Long,
            "1000",
            "Delay before the first automatic restart; it doubles each time.",
        ),
        (
            errors::RESTART_BACKOFF_MAX,
            ConfigType::Long,
            "60000",
            "Longest delay between automatic restarts.",
        ),
    ];
    for (i, (name, t, default, doc)) in errors.into_iter().enumerate() {
        let order = 20 + i32::try_from(i).unwrap_or(0);
        defs.push(key(
            name,
            t,
            Some(default),
            Importance::Low,
            doc,
            order,
            name,
        ));
    }
    if kind == PluginKind::Sink {
        defs.push(key(
            TOPICS,
            ConfigType::List,
            Some(""),
            Importance::High,
            "List of topics to consume, separated by commas.",
            13,
            "Topics",
        ));
        defs.push(key(
            TOPICS_REGEX,
            ConfigType::String,
            Some(""),
            Importance::High,
            "Regular expression giving topics to consume.",
            14,
            "Topics regex",
        ));
    }
    defs
}

fn is_set(config: &BTreeMap<String, String>, key: &str) -> bool {
    config.get(key).is_some_and(|v| !v.trim().is_empty())
}

/// Checks the common keys; the plugin's own keys are checked by the plugin.
pub fn validate_common(config: &BTreeMap<String, String>, kind: PluginKind) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    match config.get(NAME) {
        None => issues.push(ConfigIssue::new(
            NAME,
            "Missing required configuration \"name\" which has no default value.",
        )),
        Some(n) if n.trim().is_empty() => {
            issues.push(ConfigIssue::new(NAME, "Connector name must not be empty"))
        }
        Some(n) if n.chars().any(char::is_control) => issues.push(ConfigIssue::new(
            NAME,
            "Connector name must not contain ISO control characters",
        )),
        Some(_) => {}
    }
    if let Some(v) = config.get(TASKS_MAX) {
        match v.trim().parse::<i32>() {
            Ok(n) if n >= 1 => {}
            Ok(_) => issues.push(ConfigIssue::new(
                TASKS_MAX,
                format!("Invalid value {v} for configuration tasks.max: Value must be at least 1"),
            )),
            Err(_) => issues.push(ConfigIssue::new(
                TASKS_MAX,
                format!("Invalid value {v} for configuration tasks.max: Not a number of type INT"),
            )),
        }
    }
    for key in [
        "plugin.memory.max.bytes",
        "plugin.call.timeout.ms",
        BATCH_MAX_RECORDS,
    ] {
        if let Some(v) = config.get(key)
            && v.trim().parse::<u64>().map_or(true, |n| n == 0)
        {
            issues.push(ConfigIssue::new(
                key,
                format!("Invalid value {v} for configuration {key}: must be a positive number"),
            ));
        }
    }
    if let Err(found) = errors::parse(config) {
        issues.extend(found);
    }
    if kind == PluginKind::Sink {
        match (is_set(config, TOPICS), is_set(config, TOPICS_REGEX)) {
            (true, true) => {
                let msg =
                    "topics and topics.regex are mutually exclusive options, but both are set.";
                issues.push(ConfigIssue::new(TOPICS, msg));
                issues.push(ConfigIssue::new(TOPICS_REGEX, msg));
            }
            (false, false) => {
                let msg = "Must configure one of topics or topics.regex";
                issues.push(ConfigIssue::new(TOPICS, msg));
                issues.push(ConfigIssue::new(TOPICS_REGEX, msg));
            }
            (false, true) => {
                if let Some(Err(e)) = config.get(TOPICS_REGEX).map(|r| Regex::new(r)) {
                    issues.push(ConfigIssue::new(
                        TOPICS_REGEX,
                        format!("Invalid regex: {e}"),
                    ));
                }
            }
            (true, false) => {}
        }
        if let Some(dlq) = config.get(errors::DLQ_TOPIC).map(|t| t.trim())
            && !dlq.is_empty()
        {
            let consumed = sink_subscription(config);
            let regex_hit = config
                .get(TOPICS_REGEX)
                .filter(|r| !r.trim().is_empty())
                .and_then(|r| Regex::new(&format!("^(?:{})$", r.trim())).ok())
                .is_some_and(|r| r.is_match(dlq));
            if regex_hit || (!is_set(config, TOPICS_REGEX) && consumed.iter().any(|t| t == dlq)) {
                issues.push(ConfigIssue::new(
                    errors::DLQ_TOPIC,
                    format!("The DLQ topic '{dlq}' may not be included in the list of topics ('topics' or 'topics.regex') to be consumed."),
                ));
            }
        }
    }
    if kind == PluginKind::Source
        && let Err(issue) = TopicCreation::from_config(config)
    {
        issues.push(issue);
    }
    issues
}

/// `tasks.max` of a valid config.
pub fn tasks_max(config: &BTreeMap<String, String>) -> u32 {
    config
        .get(TASKS_MAX)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1)
}

/// The consumer group a sink connector's tasks commit to: `connect-<name>`, or
/// `consumer.override.group.id`.
pub fn sink_group(name: &str, config: &BTreeMap<String, String>) -> String {
    config
        .get("consumer.override.group.id")
        .cloned()
        .unwrap_or_else(|| format!("connect-{name}"))
}

/// The topics a sink subscribes to: a list, or a regex in librdkafka's `^` form.
pub fn sink_subscription(config: &BTreeMap<String, String>) -> Vec<String> {
    if let Some(regex) = config.get(TOPICS_REGEX).filter(|r| !r.trim().is_empty()) {
        let r = regex.trim();
        return vec![if r.starts_with('^') {
            r.to_owned()
        } else {
            format!("^{r}")
        }];
    }
    super::list(config, TOPICS)
}

/// The connector's limits: its own `plugin.*` keys over the worker's.
pub fn limits(config: &BTreeMap<String, String>, worker: Limits) -> Limits {
    Limits {
        memory_bytes: config
            .get("plugin.memory.max.bytes")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(worker.memory_bytes),
        call_timeout: config
            .get("plugin.call.timeout.ms")
            .and_then(|v| v.trim().parse().ok())
            .map(std::time::Duration::from_millis)
            .unwrap_or(worker.call_timeout),
    }
}

/// Records per plugin call.
pub fn batch_max_records(config: &BTreeMap<String, String>) -> usize {
    positive(config, BATCH_MAX_RECORDS).unwrap_or(500)
}

fn positive(config: &BTreeMap<String, String>, key: &str) -> Option<usize> {
    config
        .get(key)
        .and_then(|v| v.trim().parse().ok())
        .filter(|n: &usize| *n > 0)
}

/// Records per `put` for a sink: `batch.max.records` when set, else the Java consumer's
/// `max.poll.records` (`consumer.override.max.poll.records`, then the worker's
/// `consumer.max.poll.records`), else 500.
pub fn sink_batch_max_records(
    config: &BTreeMap<String, String>,
    worker: &BTreeMap<String, String>,
) -> usize {
    positive(config, BATCH_MAX_RECORDS)
        .or_else(|| positive(config, "consumer.override.max.poll.records"))
        .or_else(|| positive(worker, "consumer.max.poll.records"))
        .unwrap_or(500)
}

#[derive(Debug, Clone)]
struct CreationGroup {
    name: String,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    spec: TopicSpec,
}

/// How a source connector's missing topics are created (KIP-158). Kafka Connect creates
/// topics only when both `topic.creation.default.*` sizes are set; because brokers here may
/// not create topics on their own, this worker always creates them, with one partition and
/// the broker's default replication unless the connector says otherwise.
#[derive(Debug, Clone)]
pub struct TopicCreation {
    groups: Vec<CreationGroup>,
    default: TopicSpec,
}

fn regex_list(config: &BTreeMap<String, String>, key: &str) -> Result<Vec<Regex>, ConfigIssue> {
    super::list(config, key)
        .into_iter()
        .map(|r| {
            Regex::new(&format!("^(?:{r})$"))
                .map_err(|e| ConfigIssue::new(key, format!("Invalid regex {r}: {e}")))
        })
        .collect()
}

fn group_spec(
    config: &BTreeMap<String, String>,
    group: &str,
    inherit: &TopicSpec,
) -> Result<TopicSpec, ConfigIssue> {
    let prefix = format!("topic.creation.{group}.");
    let num = |suffix: &str, default: i32| -> Result<i32, ConfigIssue> {
        let key = format!("{prefix}{suffix}");
        match config.get(&key) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<i32>() {
                Ok(n) if n == -1 || n >= 1 => Ok(n),
                _ => Err(ConfigIssue::new(
                    key,
                    format!("Invalid value {v}: must be -1 or at least 1"),
                )),
            },
        }
    };
    let mut configs = inherit.configs.clone();
    for (k, v) in config {
        if let Some(topic_key) = k.strip_prefix(&prefix)
            && !["replication.factor", "partitions", "include", "exclude"].contains(&topic_key)
        {
            configs.insert(topic_key.to_owned(), v.clone());
        }
    }
    Ok(TopicSpec {
        partitions: num("partitions", inherit.partitions)?,
        replication_factor: num("replication.factor", inherit.replication_factor)?,
        configs,
    })
}

impl TopicCreation {
    /// # Errors
    /// A bad `topic.creation.*` value, naming its key.
    pub fn from_config(config: &BTreeMap<String, String>) -> Result<TopicCreation, ConfigIssue> {
        let base = TopicSpec {
            partitions: 1,
            replication_factor: -1,
            configs: BTreeMap::new(),
        };
        let default = group_spec(config, "default", &base)?;
        let mut groups = Vec::new();
        let names = config
            .get("topic.creation.groups")
            .cloned()
            .unwrap_or_default();
        for name in names.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            groups.push(CreationGroup {
                name: name.to_owned(),
                include: regex_list(config, &format!("topic.creation.{name}.include"))?,
                exclude: regex_list(config, &format!("topic.creation.{name}.exclude"))?,
                spec: group_spec(config, name, &default)?,
            });
        }
        Ok(TopicCreation { groups, default })
    }

    /// The spec for `topic`: the first group that includes and does not exclude it, else
    /// the default group.
    pub fn spec_for(&self, topic: &str) -> &TopicSpec {
        self.groups
            .iter()
            .find(|g| {
                g.include.iter().any(|r| r.is_match(topic))
                    && !g.exclude.iter().any(|r| r.is_match(topic))
            })
            .map_or(&self.default, |g| {
                tracing::trace!(group = %g.name, topic = %topic, "Topic creation group matched.");
                &g.spec
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::map;

    #[test]
    fn the_sink_group_follows_the_consumer_override() {
        assert_eq!(sink_group("s", &map(&[])), "connect-s");
        let config = map(&[("consumer.override.group.id", "mine")]);
        assert_eq!(sink_group("s", &config), "mine");
    }

    #[test]
    fn sink_batches_follow_batch_max_records_then_max_poll_records() {
        let worker = map(&[("consumer.max.poll.records", "300")]);
        assert_eq!(sink_batch_max_records(&map(&[]), &map(&[])), 500);
        assert_eq!(sink_batch_max_records(&map(&[]), &worker), 300);
        let poll = map(&[("consumer.override.max.poll.records", "1000")]);
        assert_eq!(sink_batch_max_records(&poll, &worker), 1000);
        let both = map(&[
            ("consumer.override.max.poll.records", "1000"),
            (BATCH_MAX_RECORDS, "50"),
        ]);
        assert_eq!(sink_batch_max_records(&both, &worker), 50);
        let java = map(&[
            ("max.poll.records", "1000"),
            ("fetch.min.bytes", "1"),
            ("fetch.max.wait.ms", "10"),
        ]);
        let config = crate::kafka::client_config("127.0.0.1:9092", &[], &[&java]);
        assert_eq!(
            config.get("max.poll.records"),
            None,
            "librdkafka refuses it"
        );
        assert_eq!(config.get("fetch.min.bytes"), Some("1"));
        assert_eq!(config.get("fetch.max.wait.ms"), None, "librdkafka's name");
        assert_eq!(config.get("fetch.wait.max.ms"), Some("10"));
        let mut config = config;
        config.set("group.id", "g");
        let consumer: Result<rdkafka::consumer::BaseConsumer, _> = config.create();
        assert!(consumer.is_ok(), "librdkafka takes every key passed");
    }

    #[test]
    fn sink_needs_exactly_one_of_topics_and_regex() {
        let base = [("name", "s"), ("connector.class", "X")];
        let none = validate_common(&map(&base), PluginKind::Sink);
        assert_eq!(
            none.iter()
                .filter(|i| i.key == TOPICS || i.key == TOPICS_REGEX)
                .count(),
            2
        );
        let both = validate_common(
            &map(&[base[0], base[1], ("topics", "a"), ("topics.regex", "b.*")]),
            PluginKind::Sink,
        );
        assert!(
            both.iter()
                .any(|i| i.message.contains("mutually exclusive"))
        );
        assert!(
            validate_common(&map(&[base[0], base[1], ("topics", "a")]), PluginKind::Sink)
                .is_empty()
        );
        assert_eq!(
            sink_subscription(&map(&[("topics.regex", "t-.*")])),
            vec!["^t-.*".to_owned()]
        );
    }

    #[test]
    fn tasks_max_and_name_rules() {
        let issues = validate_common(
            &map(&[("name", "a\u{7}"), ("tasks.max", "0")]),
            PluginKind::Source,
        );
        assert!(issues.iter().any(|i| i.key == NAME));
        assert!(
            issues
                .iter()
                .any(|i| i.key == TASKS_MAX && i.message.contains("at least 1"))
        );
    }

    #[test]
    fn topic_creation_groups_inherit_and_match_in_order() {
        let tc = TopicCreation::from_config(&map(&[
            ("topic.creation.default.partitions", "3"),
            ("topic.creation.default.cleanup.policy", "delete"),
            ("topic.creation.groups", "compacted"),
            ("topic.creation.compacted.include", "users.*,accounts"),
            ("topic.creation.compacted.exclude", "users-tmp"),
            ("topic.creation.compacted.cleanup.policy", "compact"),
        ]))
        .expect("valid");
        let users = tc.spec_for("users");
        assert_eq!(users.partitions, 3);
        assert_eq!(users.configs["cleanup.policy"], "compact");
        assert_eq!(tc.spec_for("users-tmp").configs["cleanup.policy"], "delete");
        assert_eq!(tc.spec_for("other").replication_factor, -1);
        assert!(
            TopicCreation::from_config(&map(&[("topic.creation.default.partitions", "0")]))
                .is_err()
        );
    }
}
