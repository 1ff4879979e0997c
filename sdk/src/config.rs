//! Typed connector configuration: the definition the worker serves as Kafka Connect's
//! `ConfigKeyInfo`, and validation derived from it.
//!
//! Declare a config struct with [`config!`](crate::config!); it gets a
//! [`ConfigStruct`] implementation that produces its [`ConfigDef`] and parses a [`Config`]
//! into typed fields, reporting every bad key by name.

use std::collections::BTreeMap;

/// Kafka Connect's `ConfigDef.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    /// The name Kafka Connect's REST API uses (`"STRING"`, `"LIST"`, ...).
    pub fn connect_name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

/// Kafka Connect's `ConfigDef.Importance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    High,
    Medium,
    Low,
}

impl Importance {
    pub fn connect_name(self) -> &'static str {
        match self {
            Importance::High => "HIGH",
            Importance::Medium => "MEDIUM",
            Importance::Low => "LOW",
        }
    }
}

/// Kafka Connect's `ConfigDef.Width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Width {
    #[default]
    None,
    Short,
    Medium,
    Long,
}

impl Width {
    pub fn connect_name(self) -> &'static str {
        match self {
            Width::None => "NONE",
            Width::Short => "SHORT",
            Width::Medium => "MEDIUM",
            Width::Long => "LONG",
        }
    }
}

/// One config key.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigKey {
    pub name: String,
    pub config_type: ConfigType,
    pub default_value: Option<String>,
    pub required: bool,
    pub importance: Importance,
    pub documentation: String,
    pub group: Option<String>,
    pub order: i32,
    pub width: Width,
    pub display_name: String,
    pub recommended_values: Vec<String>,
}

/// A plugin's config definition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigDef {
    pub keys: Vec<ConfigKey>,
}

impl ConfigDef {
    pub fn new() -> ConfigDef {
        ConfigDef::default()
    }

    /// Adds a key (builder style).
    pub fn key(mut self, key: ConfigKey) -> ConfigDef {
        self.keys.push(key);
        self
    }

    /// Checks types and required keys without running any plugin logic.
    pub fn validate(&self, config: &Config) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        for key in &self.keys {
            match config.get(&key.name) {
                None if key.required => issues.push(ConfigIssue::new(
                    &key.name,
                    format!(
                        "Missing required configuration \"{}\" which has no default value.",
                        key.name
                    ),
                )),
                None => {}
                Some(raw) => {
                    if let Err(message) = check_type(key.config_type, raw) {
                        issues.push(ConfigIssue::new(
                            &key.name,
                            format!(
                                "Invalid value {raw} for configuration {}: {message}",
                                key.name
                            ),
                        ));
                    } else if !key.recommended_values.is_empty()
                        && !key
                            .recommended_values
                            .iter()
                            .any(|v| v.eq_ignore_ascii_case(raw.trim()))
                    {
                        issues.push(ConfigIssue::new(
                            &key.name,
                            format!(
                                "Invalid value {raw} for configuration {}: must be one of {}",
                                key.name,
                                key.recommended_values.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        issues
    }
}

fn check_type(config_type: ConfigType, raw: &str) -> Result<(), String> {
    let raw = raw.trim();
    match config_type {
        ConfigType::Boolean => bool::parse_config(raw).map(drop),
        ConfigType::Int => i32::parse_config(raw).map(drop),
        ConfigType::Long => i64::parse_config(raw).map(drop),
        ConfigType::Double => f64::parse_config(raw).map(drop),
        ConfigType::String | ConfigType::List | ConfigType::Class | ConfigType::Password => Ok(()),
    }
}

/// A problem with one config key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub message: String,
}

impl ConfigIssue {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigIssue {
        ConfigIssue {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every issue, `key: message` joined by `; `, as one config error.
impl From<Vec<ConfigIssue>> for crate::data::PluginError {
    fn from(issues: Vec<ConfigIssue>) -> crate::data::PluginError {
        crate::data::PluginError::config(
            issues
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

/// A flat string config, as Kafka Connect passes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    entries: BTreeMap<String, String>,
}

impl Config {
    pub fn new() -> Config {
        Config::default()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.entries.insert(key.into(), value.into());
    }

    /// Sets a key (builder style).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Config {
        self.set(key, value);
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Parses the value of `key`, or returns `None` when it is absent.
    ///
    /// # Errors
    /// When the value does not parse as `T`; the issue names the key and the value.
    pub fn parse<T: ConfigValue>(&self, key: &str) -> Result<Option<T>, ConfigIssue> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => T::parse_config(raw.trim()).map(Some).map_err(|message| {
                ConfigIssue::new(
                    key,
                    format!("Invalid value {raw} for configuration {key}: {message}"),
                )
            }),
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Config {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Config {
        Config {
            entries: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl IntoIterator for Config {
    type Item = (String, String);
    type IntoIter = std::collections::btree_map::IntoIter<String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// A type a config value parses into.
pub trait ConfigValue: Sized {
    const TYPE: ConfigType;

    /// Parses the trimmed text form.
    ///
    /// # Errors
    /// With a short reason when the text is not a valid value.
    fn parse_config(raw: &str) -> Result<Self, String>;

    /// The text form, as shown in a config definition's default.
    fn render_config(&self) -> String;
}

impl ConfigValue for String {
    const TYPE: ConfigType = ConfigType::String;

    fn parse_config(raw: &str) -> Result<Self, String> {
        Ok(raw.to_owned())
    }

    fn render_config(&self) -> String {
        self.clone()
    }
}

impl ConfigValue for bool {
    const TYPE: ConfigType = ConfigType::Boolean;

    fn parse_config(raw: &str) -> Result<Self, String> {
        if raw.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if raw.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err("Expected value to be either true or false".into())
        }
    }

    fn render_config(&self) -> String {
        self.to_string()
    }
}

macro_rules! number_config_value {
    ($t:ty, $kind:expr, $what:literal) => {
        impl ConfigValue for $t {
            const TYPE: ConfigType = $kind;

            fn parse_config(raw: &str) -> Result<Self, String> {
                raw.parse()
                    .map_err(|_| format!("Not a number of type {}", $what))
            }

            fn render_config(&self) -> String {
                self.to_string()
            }
        }
    };
}

number_config_value!(i32, ConfigType::Int, "INT");
number_config_value!(u32, ConfigType::Int, "INT");
number_config_value!(i64, ConfigType::Long, "LONG");
number_config_value!(u64, ConfigType::Long, "LONG");
number_config_value!(f64, ConfigType::Double, "DOUBLE");

impl ConfigValue for Vec<String> {
    const TYPE: ConfigType = ConfigType::List;

    fn parse_config(raw: &str) -> Result<Self, String> {
        Ok(raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }

    fn render_config(&self) -> String {
        self.join(",")
    }
}

/// A secret: typed `PASSWORD` in the definition, and never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[hidden]")
    }
}

impl ConfigValue for Password {
    const TYPE: ConfigType = ConfigType::Password;

    fn parse_config(raw: &str) -> Result<Self, String> {
        Ok(Password(raw.to_owned()))
    }

    fn render_config(&self) -> String {
        "[hidden]".into()
    }
}

/// A config struct: its definition, and parsing from a [`Config`].
pub trait ConfigStruct: Sized {
    /// The definition the worker serves and validates against.
    fn definition() -> ConfigDef;

    /// Parses every key.
    ///
    /// # Errors
    /// Every missing or malformed key, each named.
    fn from_config(config: &Config) -> Result<Self, Vec<ConfigIssue>>;
}

/// Parses a config struct, joining every issue into one config error.
pub(crate) fn parse_struct<C: ConfigStruct>(
    config: &Config,
) -> Result<C, crate::data::PluginError> {
    C::from_config(config).map_err(crate::data::PluginError::from)
}

/// Helper for [`config!`](crate::config!): parses one field.
#[doc(hidden)]
pub fn __field<T: ConfigValue>(
    config: &Config,
    key: &str,
    default: Option<T>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<T> {
    match config.parse::<T>(key) {
        Ok(Some(v)) => Some(v),
        Ok(None) => {
            if default.is_none() {
                issues.push(ConfigIssue::new(
                    key,
                    format!("Missing required configuration \"{key}\" which has no default value."),
                ));
            }
            default
        }
        Err(issue) => {
            issues.push(issue);
            None
        }
    }
}

/// Helper for [`config!`](crate::config!): one field's definition.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn __key<T: ConfigValue>(
    name: &str,
    default: Option<T>,
    importance: Importance,
    documentation: &[&str],
    group: Option<&str>,
    order: i32,
    recommended: &[&str],
) -> ConfigKey {
    let documentation = documentation
        .iter()
        .map(|line| line.trim())
        .collect::<Vec<_>>()
        .join(" ");
    ConfigKey {
        name: name.to_owned(),
        config_type: T::TYPE,
        required: default.is_none(),
        default_value: default.map(|d| d.render_config()),
        importance,
        documentation,
        group: group.map(str::to_owned),
        order,
        width: Width::None,
        display_name: name.to_owned(),
        recommended_values: recommended.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// Declares a config struct and implements [`ConfigStruct`] for it.
///
/// Each field has doc comments (its documentation), then one attribute naming its key, its
/// importance, and optionally a `default` (an expression of the field's type; without it the
/// key is required), a `group` and a list of allowed `values`.
///
/// ```
/// use wasmconnect_sdk::config::{Config, ConfigStruct};
///
/// wasmconnect_sdk::config! {
///     pub struct GreeterConfig {
///         /// Topic to greet.
///         #[key = "topic", importance = High]
///         pub topic: String,
///         /// How many greetings per poll.
///         #[key = "greetings.per.poll", importance = Low, default = 10]
///         pub per_poll: u32,
///     }
/// }
///
/// let def = GreeterConfig::definition();
/// assert_eq!(def.keys[1].default_value.as_deref(), Some("10"));
/// let parsed = GreeterConfig::from_config(&Config::new().with("topic", "hello")).unwrap();
/// assert_eq!((parsed.topic.as_str(), parsed.per_poll), ("hello", 10));
/// let issues = GreeterConfig::from_config(&Config::new().with("greetings.per.poll", "x")).unwrap_err();
/// assert_eq!(issues.len(), 2);
/// ```
#[macro_export]
macro_rules! config {
    (
        $(#[$smeta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                #[key = $key:literal, importance = $imp:ident
                    $(, default = $default:expr)?
                    $(, group = $group:literal)?
                    $(, values = [$($allowed:literal),* $(,)?])?
                ]
                $fvis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$smeta])*
        #[derive(Debug, Clone)]
        $vis struct $name {
            $( $(#[doc = $doc])* $fvis $field: $ty, )*
        }

        impl $crate::config::ConfigStruct for $name {
            fn definition() -> $crate::config::ConfigDef {
                let mut def = $crate::config::ConfigDef::new();
                let mut order = 0;
                $(
                    order += 1;
                    let default: Option<$ty> = None $(.or(Some($default)))?;
                    def = def.key($crate::config::__key::<$ty>(
                        $key,
                        default,
                        $crate::config::Importance::$imp,
                        &[$($doc),*],
                        None $(.or(Some($group)))?,
                        order,
                        &[$($($allowed),*)?],
                    ));
                )*
                def
            }

            fn from_config(
                config: &$crate::config::Config,
            ) -> Result<Self, Vec<$crate::config::ConfigIssue>> {
                let mut issues = Vec::new();
                $(
                    let default: Option<$ty> = None $(.or(Some($default)))?;
                    let $field = $crate::config::__field::<$ty>(config, $key, default, &mut issues);
                )*
                let mut issues_from_def = Self::definition().validate(config);
                issues_from_def.retain(|i| !issues.iter().any(|j: &$crate::config::ConfigIssue| j.key == i.key));
                issues.extend(issues_from_def);
                match ($($field,)*) {
                    ($(Some($field),)*) if issues.is_empty() => Ok($name { $($field),* }),
                    _ => Err(issues),
                }
            }
        }
    };
}
