//! Config validation in Kafka Connect's `ConfigInfos` shape: the common keys and the
//! plugin's keys, each with its definition, value and errors.

use std::collections::BTreeMap;

use wasmconnect_sdk::config::ConfigIssue;

use crate::config::connector::{self, COMMON_GROUP};
use crate::config::transforms;
use crate::plugin::{ConfigKeyDef, Plugin, PluginRegistry};

/// One key's definition (if known), value and errors.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldInfo {
    pub definition: Option<ConfigKeyDef>,
    pub value: ConfigValueInfo,
}

/// `ConfigValueInfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigValueInfo {
    pub name: String,
    pub value: Option<String>,
    pub recommended_values: Vec<String>,
    pub errors: Vec<String>,
    pub visible: bool,
}

/// `ConfigInfos`: the answer of a validate call.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigInfos {
    pub name: String,
    pub error_count: usize,
    pub groups: Vec<String>,
    pub configs: Vec<FieldInfo>,
}

impl ConfigInfos {
    /// The errors as Kafka Connect lists them in a 400 on create or update.
    pub fn error_message(&self) -> String {
        let errors: Vec<String> = self
            .configs
            .iter()
            .flat_map(|f| {
                f.value
                    .errors
                    .iter()
                    .map(move |e| format!("{}: {e}", f.value.name))
            })
            .collect();
        format!(
            "Connector configuration is invalid and contains the following {} error(s):\n{}\nYou can also find the above list of errors at the endpoint `/connector-plugins/{{connectorType}}/config/validate`",
            errors.len(),
            errors.join("\n")
        )
    }
}

/// Validates `config` (placeholders as given) for `plugin`: the common keys first, then the
/// plugin's definition, then the plugin's own `validate`.
pub async fn validate(
    plugin: &Plugin,
    registry: &PluginRegistry,
    config: &BTreeMap<String, String>,
) -> ConfigInfos {
    let mut issues: Vec<ConfigIssue> = connector::validate_common(config, plugin.kind);
    issues.extend(transforms::validate(config, registry).await);
    let common = connector::common_definitions(plugin.kind);
    for key in &plugin.config_def {
        if key.required && !config.contains_key(&key.name) {
            issues.push(ConfigIssue::new(
                &key.name,
                format!(
                    "Missing required configuration \"{}\" which has no default value.",
                    key.name
                ),
            ));
        }
    }
    match plugin.validate(config).await {
        Ok(plugin_issues) => {
            for issue in plugin_issues {
                if !issues
                    .iter()
                    .any(|i| i.key == issue.key && i.message == issue.message)
                {
                    issues.push(issue);
                }
            }
        }
        Err(err) => issues.push(ConfigIssue::new(
            connector::CONNECTOR_CLASS,
            format!("The plugin failed to validate the config: {err}"),
        )),
    }
    let mut groups = vec![COMMON_GROUP.to_owned()];
    let mut configs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for def in common.into_iter().chain(plugin.config_def.iter().cloned()) {
        if !seen.insert(def.name.clone()) {
            continue;
        }
        if let Some(g) = &def.group
            && !groups.contains(g)
        {
            groups.push(g.clone());
        }
        configs.push(field(Some(def.clone()), &def.name, config, &issues));
    }
    for key in config.keys() {
        if !seen.contains(key) {
            configs.push(field(None, key, config, &issues));
        }
    }
    // An issue about a key nobody defined or gave still counts.
    for issue in &issues {
        if !configs.iter().any(|f| f.value.name == issue.key) {
            configs.push(field(None, &issue.key, config, &issues));
        }
    }
    ConfigInfos {
        name: config
            .get(connector::CONNECTOR_CLASS)
            .cloned()
            .unwrap_or_default(),
        error_count: issues.len(),
        groups,
        configs,
    }
}

fn field(
    definition: Option<ConfigKeyDef>,
    name: &str,
    config: &BTreeMap<String, String>,
    issues: &[ConfigIssue],
) -> FieldInfo {
    let value = config
        .get(name)
        .cloned()
        .or_else(|| definition.as_ref().and_then(|d| d.default_value.clone()));
    let secret = definition
        .as_ref()
        .is_some_and(|d| d.config_type == wasmconnect_sdk::config::ConfigType::Password);
    let value = if secret {
        value.map(|_| "[hidden]".to_owned())
    } else {
        value
    };
    let recommended_values = definition
        .as_ref()
        .map(|d| d.recommended_values.clone())
        .unwrap_or_default();
    FieldInfo {
        definition,
        value: ConfigValueInfo {
            name: name.to_owned(),
            value,
            recommended_values,
            errors: issues
                .iter()
                .filter(|i| i.key == name)
                .map(|i| i.message.clone())
                .collect(),
            visible: true,
        },
    }
}
