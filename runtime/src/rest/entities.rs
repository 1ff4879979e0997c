//! The JSON entities of Kafka Connect's REST API, field names exact.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};
use wasmconnect_sdk::PluginKind;

use crate::herder::connector_offsets::OffsetEntry;
use crate::herder::{ConfigInfos, ConnectorInfo, ConnectorStatus, TaskInfo};
use crate::plugin::ConfigKeyDef;
use crate::task::Status;

pub fn kind_name(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Source => "source",
        PluginKind::Sink => "sink",
        PluginKind::Transform => "transformation",
    }
}

pub fn connector_info(info: &ConnectorInfo) -> Json {
    json!({
        "name": info.name,
        "config": info.config,
        "tasks": info.tasks.iter().map(|t| json!({"connector": info.name, "task": t})).collect::<Vec<_>>(),
        "type": kind_name(info.kind),
    })
}

/// A state entry; `trace` only when there is one (`@JsonInclude(NON_EMPTY)`).
pub fn state(status: &Status, worker_id: &str) -> Map<String, Json> {
    let mut o = Map::new();
    o.insert("state".into(), json!(status.state));
    o.insert(
        "worker_id".into(),
        json!(status.worker_id.as_deref().unwrap_or(worker_id)),
    );
    if let Some(trace) = status.trace.as_ref().filter(|t| !t.is_empty()) {
        o.insert("trace".into(), json!(trace));
    }
    if let Some(restarts) = status.restarts {
        o.insert("restarts".into(), json!(restarts));
    }
    o
}

pub fn task_state(id: u32, status: &Status, worker_id: &str) -> Json {
    let mut o = Map::new();
    o.insert("id".into(), json!(id));
    o.extend(state(status, worker_id));
    Json::Object(o)
}

pub fn connector_status(status: &ConnectorStatus, worker_id: &str) -> Json {
    json!({
        "name": status.name,
        "connector": Json::Object(state(&status.connector, worker_id)),
        "tasks": status.tasks.iter().map(|(id, s)| task_state(*id, s, worker_id)).collect::<Vec<_>>(),
        "type": kind_name(status.kind),
    })
}

pub fn task_infos(tasks: &[TaskInfo]) -> Json {
    Json::Array(
        tasks
            .iter()
            .map(|t| json!({"id": {"connector": t.connector, "task": t.task}, "config": t.config}))
            .collect(),
    )
}

pub fn config_key_info(def: &ConfigKeyDef) -> Json {
    json!({
        "name": def.name,
        "type": def.config_type.connect_name(),
        "required": def.required,
        "default_value": def.default_value,
        "importance": def.importance.connect_name(),
        "documentation": def.documentation,
        "group": def.group,
        "order": def.order,
        "width": def.width.connect_name(),
        "display_name": def.display_name,
        "dependents": [],
    })
}

pub fn config_infos(infos: &ConfigInfos) -> Json {
    json!({
        "name": infos.name,
        "error_count": infos.error_count,
        "groups": infos.groups,
        "configs": infos.configs.iter().map(|f| json!({
            "definition": f.definition.as_ref().map(config_key_info),
            "value": {
                "name": f.value.name,
                "value": f.value.value,
                "recommended_values": f.value.recommended_values,
                "errors": f.value.errors,
                "visible": f.value.visible,
            },
        })).collect::<Vec<_>>(),
    })
}

/// A flat string map from a JSON object: numbers and booleans become strings (as Jackson
/// coerces them); `null` is kept as `None` for PATCH.
///
/// # Errors
/// When the body is not an object or a value is an object or array; names the key.
pub fn string_map(json: &Json) -> Result<BTreeMap<String, Option<String>>, String> {
    let o = json
        .as_object()
        .ok_or("Expected a JSON object of configuration keys and values")?;
    o.iter()
        .map(|(k, v)| {
            let v = match v {
                Json::Null => None,
                Json::String(s) => Some(s.clone()),
                Json::Bool(b) => Some(b.to_string()),
                Json::Number(n) => Some(n.to_string()),
                _ => {
                    return Err(format!(
                        "Configuration value of {k} must be a string, not {v}"
                    ));
                }
            };
            Ok((k.clone(), v))
        })
        .collect()
}

/// The entries of a `ConnectorOffsets` body (`{"offsets": [{"partition", "offset"}]}`);
/// the message names what is wrong.
pub fn offset_entries(body: &Json) -> Result<Vec<OffsetEntry>, String> {
    let list = body
        .get("offsets")
        .and_then(Json::as_array)
        .filter(|l| !l.is_empty())
        .ok_or("Partitions / offsets need to be provided for an alter offsets request")?;
    list.iter()
        .enumerate()
        .map(|(i, e)| {
            let partition = e
                .get("partition")
                .filter(|p| p.is_object())
                .ok_or_else(|| format!("offsets[{i}]: the partition must be a JSON object"))?;
            let offset = match e.get("offset") {
                None | Some(Json::Null) => None,
                Some(o) if o.is_object() => Some(o.clone()),
                Some(o) => {
                    return Err(format!(
                        "offsets[{i}]: the offset must be a JSON object or null, not {o}"
                    ));
                }
            };
            Ok(OffsetEntry {
                partition: partition.clone(),
                offset,
            })
        })
        .collect()
}
