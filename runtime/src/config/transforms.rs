//! `transforms=` and `predicates=`: the chain a connector's records go through, in Kafka
//! Connect's syntax (`transforms.<alias>.type`, `.predicate`, `.negate` and each transform's
//! own keys; `predicates.<alias>.type` and its keys).
//!
//! Transforms are plugins; the three predicates Kafka ships run in the worker.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;
use wasmconnect_sdk::PluginKind;
use wasmconnect_sdk::config::ConfigIssue;
use wasmconnect_sdk::data::Record;

use super::connector::{PREDICATES, TRANSFORMS};
use super::list;
use super::worker::prefixed;
use crate::plugin::{Plugin, PluginRegistry};

/// Kafka's predicates (`org.apache.kafka.connect.transforms.predicates.*`).
#[derive(Debug, Clone)]
pub enum Predicate {
    /// `TopicNameMatches`: the whole topic matches `pattern`.
    TopicNameMatches(Regex),
    /// `HasHeaderKey`: a header called `name` exists.
    HasHeaderKey(String),
    /// `RecordIsTombstone`: the value is null.
    RecordIsTombstone,
}

impl Predicate {
    pub fn test(&self, record: &Record) -> bool {
        match self {
            Predicate::TopicNameMatches(regex) => regex.is_match(&record.topic),
            Predicate::HasHeaderKey(name) => record.headers.iter().any(|h| h.key == *name),
            Predicate::RecordIsTombstone => record.is_tombstone(),
        }
    }
}

/// One transform of the chain, resolved to its plugin.
#[derive(Debug, Clone)]
pub struct TransformSpec {
    pub alias: String,
    /// As given in `transforms.<alias>.type`.
    pub class: String,
    pub plugin: Arc<Plugin>,
    /// The alias's keys without their prefix, `type` included (as Kafka passes them);
    /// `predicate` and `negate` removed.
    pub config: BTreeMap<String, String>,
    /// Applied only to records the predicate matches (or, negated, does not match).
    pub predicate: Option<(Predicate, bool)>,
}

impl TransformSpec {
    /// Whether this transform applies to `record`.
    pub fn applies_to(&self, record: &Record) -> bool {
        match &self.predicate {
            None => true,
            Some((p, negate)) => p.test(record) != *negate,
        }
    }
}

const PREDICATE_PACKAGE: &str = "org.apache.kafka.connect.transforms.predicates.";

/// The predicates the worker runs, by class name (`GET /connector-plugins` lists them).
pub const PREDICATE_CLASSES: [&str; 3] = [
    "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
    "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
];

fn missing(key: &str) -> ConfigIssue {
    ConfigIssue::new(
        key,
        format!("Missing required configuration \"{key}\" which has no default value."),
    )
}

fn predicate(
    config: &BTreeMap<String, String>,
    alias: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Option<Predicate> {
    let prefix = format!("{PREDICATES}.{alias}.");
    let type_key = format!("{prefix}type");
    let Some(class) = config.get(&type_key).map(|c| c.trim()) else {
        issues.push(missing(&type_key));
        return None;
    };
    let simple = class.strip_prefix(PREDICATE_PACKAGE).unwrap_or(class);
    match simple {
        "TopicNameMatches" => {
            let key = format!("{prefix}pattern");
            let Some(pattern) = config.get(&key) else {
                issues.push(missing(&key));
                return None;
            };
            match Regex::new(&format!("^(?:{pattern})$")) {
                Ok(r) => Some(Predicate::TopicNameMatches(r)),
                Err(e) => {
                    issues.push(ConfigIssue::new(
                        &key,
                        format!("Invalid value {pattern} for configuration {key}: {e}"),
                    ));
                    None
                }
            }
        }
        "HasHeaderKey" => {
            let key = format!("{prefix}name");
            match config.get(&key).map(|n| n.trim()).filter(|n| !n.is_empty()) {
                Some(name) => Some(Predicate::HasHeaderKey(name.to_owned())),
                None => {
                    issues.push(missing(&key));
                    None
                }
            }
        }
        "RecordIsTombstone" => Some(Predicate::RecordIsTombstone),
        _ => {
            issues.push(ConfigIssue::new(
                &type_key,
                format!(
                    "Invalid value {class} for configuration {type_key}: Class {class} could not be found. Predicates: TopicNameMatches, HasHeaderKey, RecordIsTombstone"
                ),
            ));
            None
        }
    }
}

/// Resolves the chain; every problem is reported, each naming its key.
///
/// # Errors
/// The config issues.
pub fn parse(
    config: &BTreeMap<String, String>,
    registry: &PluginRegistry,
) -> Result<Vec<TransformSpec>, Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let predicate_aliases = list(config, PREDICATES);
    let mut predicates = BTreeMap::new();
    for alias in &predicate_aliases {
        if let Some(p) = predicate(config, alias, &mut issues) {
            predicates.insert(alias.clone(), p);
        }
    }
    let mut specs = Vec::new();
    for alias in list(config, TRANSFORMS) {
        let prefix = format!("{TRANSFORMS}.{alias}.");
        let type_key = format!("{prefix}type");
        let Some(class) = config.get(&type_key).map(|c| c.trim().to_owned()) else {
            issues.push(missing(&type_key));
            continue;
        };
        let plugin = match registry.find(&class) {
            Some(p) if p.kind == PluginKind::Transform => p,
            _ => {
                issues.push(ConfigIssue::new(
                    &type_key,
                    format!(
                        "Invalid value {class} for configuration {type_key}: Class {class} could not be found."
                    ),
                ));
                continue;
            }
        };
        let mut own = prefixed(config, &prefix);
        let predicate_alias = own.remove("predicate");
        let negate_key = format!("{prefix}negate");
        let negate = match own.remove("negate").map(|n| n.trim().to_ascii_lowercase()) {
            None => false,
            Some(n) if n == "true" => true,
            Some(n) if n == "false" => false,
            Some(n) => {
                issues.push(ConfigIssue::new(
                    &negate_key,
                    format!("Invalid value {n} for configuration {negate_key}: Expected value to be either true or false"),
                ));
                false
            }
        };
        let predicate = match predicate_alias.as_deref().map(str::trim) {
            None | Some("") => {
                if negate {
                    issues.push(ConfigIssue::new(
                        &negate_key,
                        format!("{negate_key} is set but {prefix}predicate is not"),
                    ));
                }
                None
            }
            Some(p) => match predicates.get(p) {
                Some(found) => Some((found.clone(), negate)),
                None => {
                    let key = format!("{prefix}predicate");
                    if !predicate_aliases.iter().any(|a| a == p) {
                        issues.push(ConfigIssue::new(
                            &key,
                            format!("Invalid value {p} for configuration {key}: the predicate is not listed in predicates"),
                        ));
                    }
                    None
                }
            },
        };
        specs.push(TransformSpec {
            alias,
            class,
            plugin,
            config: own,
            predicate,
        });
    }
    if issues.is_empty() {
        Ok(specs)
    } else {
        Err(issues)
    }
}

/// Checks the chain: the worker's checks, then each transform plugin's own `validate`, its
/// issues named with the full `transforms.<alias>.` key.
pub async fn validate(
    config: &BTreeMap<String, String>,
    registry: &PluginRegistry,
) -> Vec<ConfigIssue> {
    let specs = match parse(config, registry) {
        Ok(specs) => specs,
        Err(issues) => return issues,
    };
    let mut issues = Vec::new();
    for spec in specs {
        let prefix = format!("{TRANSFORMS}.{}.", spec.alias);
        match spec.plugin.validate(&spec.config).await {
            Ok(found) => issues.extend(
                found
                    .into_iter()
                    .map(|i| ConfigIssue::new(format!("{prefix}{}", i.key), i.message)),
            ),
            Err(e) => issues.push(ConfigIssue::new(
                format!("{prefix}type"),
                format!("The transform failed to validate its config: {e}"),
            )),
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::map;

    #[test]
    fn predicates_are_checked_and_named() {
        let registry = PluginRegistry::default();
        let issues = parse(
            &map(&[
                ("predicates", "a,b,c"),
                (
                    "predicates.a.type",
                    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
                ),
                ("predicates.a.pattern", "("),
                ("predicates.b.type", "HasHeaderKey"),
                ("predicates.c.type", "Nope"),
                ("transforms", "t"),
            ]),
            &registry,
        )
        .expect_err("bad config");
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "predicates.a.pattern",
                "predicates.b.name",
                "predicates.c.type",
                "transforms.t.type"
            ]
        );
    }

    #[test]
    fn predicates_match_like_kafkas() {
        let mut issues = Vec::new();
        let config = map(&[
            ("predicates.p.type", "TopicNameMatches"),
            ("predicates.p.pattern", "orders-.*"),
        ]);
        let p = predicate(&config, "p", &mut issues).expect("valid");
        let record = |topic: &str| Record::new(topic, wasmconnect_sdk::data::Data::NULL);
        assert!(p.test(&record("orders-eu")));
        assert!(
            !p.test(&record("old-orders-eu")),
            "the whole topic must match"
        );
        assert!(Predicate::RecordIsTombstone.test(&record("t")));
        let with_header =
            record("t").with_header("trace", wasmconnect_sdk::data::Data::schemaless("x"));
        assert!(Predicate::HasHeaderKey("trace".into()).test(&with_header));
        assert!(!Predicate::HasHeaderKey("other".into()).test(&with_header));
    }
}
