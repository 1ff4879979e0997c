//! Kafka's single message transforms, with their Java class names and config keys, as one
//! wasmconnect transform plugin.
//!
//! One component answers to every class (`org.apache.kafka.connect.transforms.InsertField$Value`,
//! or the simple name `InsertField$Value`); the worker passes the alias's config with its
//! `type`, and [`KafkaTransforms::configure`] builds the transform that class names. Each
//! transform follows Kafka's behaviour on records with and without schemas, and fails a
//! record with Kafka's message where Kafka throws.

mod cast;
mod fields;
mod headers;
mod route;
mod time;
mod util;

use wasmconnect_sdk::config::{
    ConfigDef, ConfigIssue, ConfigKey, ConfigStruct, ConfigType, Importance, Width,
};
use wasmconnect_sdk::prelude::*;

/// The package of Kafka's transforms.
const PACKAGE: &str = "org.apache.kafka.connect.transforms.";

/// Which side of a record a `$Key` / `$Value` transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

/// One configured transform.
pub trait Smt: std::fmt::Debug {
    fn apply(&mut self, record: Record) -> Outcome;
}

type Build = fn(&Config, Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>>;

/// Every class: its simple name, whether it comes as `$Key` and `$Value`, and its builder.
const CLASSES: &[(&str, bool, Build)] = &[
    ("InsertField", true, fields::InsertField::build),
    ("ReplaceField", true, fields::ReplaceField::build),
    ("MaskField", true, fields::MaskField::build),
    ("ValueToKey", false, fields::ValueToKey::build),
    ("ExtractField", true, fields::ExtractField::build),
    ("HoistField", true, fields::HoistField::build),
    ("Flatten", true, fields::Flatten::build),
    ("SetSchemaMetadata", true, fields::SetSchemaMetadata::build),
    ("Cast", true, cast::Cast::build),
    ("TimestampConverter", true, time::TimestampConverter::build),
    ("TimestampRouter", false, time::TimestampRouter::build),
    ("RegexRouter", false, route::RegexRouter::build),
    ("Filter", false, headers::Filter::build),
    ("HeaderFrom", true, headers::HeaderFrom::build),
    ("InsertHeader", false, headers::InsertHeader::build),
    ("DropHeaders", false, headers::DropHeaders::build),
];

/// The names `transforms.<alias>.type` may use: Kafka's class names, full and simple.
const ALIASES: &[&str] = &[
    "org.apache.kafka.connect.transforms.InsertField$Key",
    "org.apache.kafka.connect.transforms.InsertField$Value",
    "org.apache.kafka.connect.transforms.ReplaceField$Key",
    "org.apache.kafka.connect.transforms.ReplaceField$Value",
    "org.apache.kafka.connect.transforms.MaskField$Key",
    "org.apache.kafka.connect.transforms.MaskField$Value",
    "org.apache.kafka.connect.transforms.ValueToKey",
    "org.apache.kafka.connect.transforms.ExtractField$Key",
    "org.apache.kafka.connect.transforms.ExtractField$Value",
    "org.apache.kafka.connect.transforms.HoistField$Key",
    "org.apache.kafka.connect.transforms.HoistField$Value",
    "org.apache.kafka.connect.transforms.Flatten$Key",
    "org.apache.kafka.connect.transforms.Flatten$Value",
    "org.apache.kafka.connect.transforms.SetSchemaMetadata$Key",
    "org.apache.kafka.connect.transforms.SetSchemaMetadata$Value",
    "org.apache.kafka.connect.transforms.Cast$Key",
    "org.apache.kafka.connect.transforms.Cast$Value",
    "org.apache.kafka.connect.transforms.TimestampConverter$Key",
    "org.apache.kafka.connect.transforms.TimestampConverter$Value",
    "org.apache.kafka.connect.transforms.TimestampRouter",
    "org.apache.kafka.connect.transforms.RegexRouter",
    "org.apache.kafka.connect.transforms.Filter",
    "org.apache.kafka.connect.transforms.HeaderFrom$Key",
    "org.apache.kafka.connect.transforms.HeaderFrom$Value",
    "org.apache.kafka.connect.transforms.InsertHeader",
    "org.apache.kafka.connect.transforms.DropHeaders",
    "InsertField$Key",
    "InsertField$Value",
    "ReplaceField$Key",
    "ReplaceField$Value",
    "MaskField$Key",
    "MaskField$Value",
    "ValueToKey",
    "ExtractField$Key",
    "ExtractField$Value",
    "HoistField$Key",
    "HoistField$Value",
    "Flatten$Key",
    "Flatten$Value",
    "SetSchemaMetadata$Key",
    "SetSchemaMetadata$Value",
    "Cast$Key",
    "Cast$Value",
    "TimestampConverter$Key",
    "TimestampConverter$Value",
    "TimestampRouter",
    "RegexRouter",
    "Filter",
    "HeaderFrom$Key",
    "HeaderFrom$Value",
    "InsertHeader",
    "DropHeaders",
];

/// The key holding the class name, as Kafka passes it to a transform.
pub const TYPE: &str = "type";

/// The builder and side for a class name, full or simple.
fn resolve(class: &str) -> Option<(Build, Part)> {
    let simple = class.trim().strip_prefix(PACKAGE).unwrap_or(class.trim());
    let (name, part) = match simple.split_once('$') {
        Some((name, "Key")) => (name, Some(Part::Key)),
        Some((name, "Value")) => (name, Some(Part::Value)),
        Some(_) => return None,
        None => (simple, None),
    };
    CLASSES
        .iter()
        .find(|(n, _, _)| *n == name)
        .and_then(|&(_, variants, build)| match (variants, part) {
            (true, Some(part)) => Some((build, part)),
            (false, None) => Some((build, Part::Value)),
            _ => None,
        })
}

/// The key under which the worker passes a run of this plugin's aliases to one instance.
pub const CHAIN: &str = "transforms";

/// Builds the transform a config's `type` names, or with [`CHAIN`] the chain of aliases.
///
/// # Errors
/// Every config issue, each naming its key.
pub fn build(config: &Config) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
    if config.get(CHAIN).is_some() {
        return build_chain(config);
    }
    build_one(config)
}

/// Several aliases run in one call: `transforms=a,b` with each alias's keys under
/// `transforms.<alias>.`, exactly as in a connector config. A failed record's message
/// starts with the class that failed it (`<class>: <message>`).
#[derive(Debug)]
struct Chain {
    stages: Vec<(String, Box<dyn Smt>)>,
}

impl Smt for Chain {
    fn apply(&mut self, mut record: Record) -> Outcome {
        for (class, stage) in &mut self.stages {
            match stage.apply(record) {
                Outcome::Keep(r) => record = r,
                Outcome::Drop => return Outcome::Drop,
                Outcome::Failed(message) => return Outcome::Failed(format!("{class}: {message}")),
            }
        }
        Outcome::Keep(record)
    }
}

fn build_chain(config: &Config) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let mut stages = Vec::new();
    for alias in util::list(config, CHAIN, &mut issues) {
        let prefix = format!("{CHAIN}.{alias}.");
        let own: Config = config
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?, v)))
            .collect();
        match build_one(&own) {
            Ok(stage) => stages.push((own.get(TYPE).unwrap_or_default().to_owned(), stage)),
            Err(found) => issues.extend(
                found
                    .into_iter()
                    .map(|i| ConfigIssue::new(format!("{prefix}{}", i.key), i.message)),
            ),
        }
    }
    util::done(Box::new(Chain { stages }) as Box<dyn Smt>, issues)
}

fn build_one(config: &Config) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
    let Some(class) = config.get(TYPE) else {
        return Err(vec![ConfigIssue::new(
            TYPE,
            "Missing required configuration \"type\" which has no default value.",
        )]);
    };
    let Some((build, part)) = resolve(class) else {
        return Err(vec![ConfigIssue::new(
            TYPE,
            format!("Invalid value {class} for configuration type: not a transform of this plugin"),
        )]);
    };
    build(config, part)
}

/// The config as given: each transform parses its own keys (see [`build`]).
#[derive(Debug, Clone)]
pub struct TransformConfig(pub Config);

impl ConfigStruct for TransformConfig {
    /// Only [`CHAIN`]: declaring it tells the worker that a run of this plugin's aliases may
    /// share one instance and one call per batch. Each class's own keys are checked by
    /// `validate`.
    fn definition() -> ConfigDef {
        ConfigDef::new().key(ConfigKey {
            name: CHAIN.into(),
            config_type: ConfigType::List,
            default_value: Some(String::new()),
            required: false,
            importance: Importance::Low,
            documentation: "Set by the worker: aliases of this plugin run in one call, each \
                            with its keys under transforms.<alias>., as in a connector config."
                .into(),
            group: None,
            order: 1,
            width: Width::None,
            display_name: CHAIN.into(),
            recommended_values: Vec::new(),
        })
    }

    fn from_config(config: &Config) -> Result<Self, Vec<ConfigIssue>> {
        Ok(TransformConfig(config.clone()))
    }
}

/// The plugin: whichever transform its config's `type` names.
#[derive(Debug)]
pub struct KafkaTransforms {
    inner: Box<dyn Smt>,
}

impl Transform for KafkaTransforms {
    type Config = TransformConfig;

    fn metadata() -> Metadata {
        Metadata::new(
            "KafkaTransforms",
            env!("CARGO_PKG_VERSION"),
            "Kafka's single message transforms: InsertField, ReplaceField, MaskField, ValueToKey, \
             ExtractField, HoistField, Cast, TimestampConverter, RegexRouter, TimestampRouter, \
             Flatten, Filter, HeaderFrom, InsertHeader, DropHeaders, SetSchemaMetadata.",
        )
        .aliases(ALIASES)
    }

    fn validate(config: &Config) -> Vec<ConfigIssue> {
        build(config).err().unwrap_or_default()
    }

    fn configure(config: TransformConfig) -> Result<Self, PluginError> {
        Ok(KafkaTransforms {
            inner: build(&config.0)?,
        })
    }

    fn apply(&mut self, record: Record) -> Outcome {
        self.inner.apply(record)
    }
}

wasmconnect_sdk::export_transform!(KafkaTransforms);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_resolves_and_nothing_else_does() {
        for alias in ALIASES {
            assert!(resolve(alias).is_some(), "{alias}");
        }
        for bad in [
            "InsertField",
            "ValueToKey$Value",
            "Nope$Key",
            "org.apache.kafka.connect.transforms.Cast$Both",
        ] {
            assert!(resolve(bad).is_none(), "{bad}");
        }
        let err = build(&Config::new()).expect_err("refused");
        assert_eq!(err[0].key, "type");
    }

    #[test]
    fn a_chain_runs_its_aliases_in_order_and_names_the_class_that_failed() {
        let config: Config = [
            ("transforms", "route,cast"),
            ("transforms.route.type", "RegexRouter"),
            ("transforms.route.regex", "a"),
            ("transforms.route.replacement", "b"),
            ("transforms.cast.type", "Cast$Value"),
            ("transforms.cast.spec", "int32"),
        ]
        .into_iter()
        .collect();
        let mut chain = build(&config).expect("valid chain");
        let out = chain.apply(Record::new("a", Data::schemaless("7")));
        let Outcome::Keep(r) = out else {
            panic!("kept: {out:?}")
        };
        assert_eq!((&*r.topic, r.value.value()), ("b", &Value::Int32(7)));
        let out = chain.apply(Record::new("a", Data::schemaless("x")));
        assert_eq!(
            out,
            Outcome::Failed("Cast$Value: For input string: \"x\"".into())
        );
        let bad: Config = [
            ("transforms", "m"),
            ("transforms.m.type", "MaskField$Value"),
        ]
        .into_iter()
        .collect();
        let issues = build(&bad).expect_err("fields missing");
        assert_eq!(issues[0].key, "transforms.m.fields");
    }
}
