//! The REST API: Kafka Connect's paths, status codes and bodies (reference section 1).

mod entities;
mod error;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Map, Value as Json, json};
use wasmconnect_sdk::PluginKind;

use crate::config::transforms::PREDICATE_CLASSES;
use crate::convert::CONVERTER_CLASSES;
use crate::herder::connector_offsets::OffsetChange;
use crate::herder::{Herder, TargetState};

pub use error::ApiError;
use error::ForwardTo;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub herder: Arc<Herder>,
    pub kafka_cluster_id: Option<String>,
}

type ApiResult = Result<Response, ApiError>;

/// The application: every route, with Connect-style answers for unknown paths and methods.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(server_info))
        .route("/health", get(health))
        .route("/connectors", get(list_connectors).post(create_connector))
        .route(
            "/connectors/{name}",
            get(get_connector).delete(delete_connector),
        )
        .route(
            "/connectors/{name}/config",
            get(get_config).put(put_config).patch(patch_config),
        )
        .route("/connectors/{name}/status", get(connector_status))
        .route("/connectors/{name}/restart", post(restart_connector))
        .route("/connectors/{name}/pause", put(pause_connector))
        .route("/connectors/{name}/resume", put(resume_connector))
        .route("/connectors/{name}/stop", put(stop_connector))
        .route(
            "/connectors/{name}/tasks",
            get(list_tasks).post(put_task_configs),
        )
        .route("/connectors/{name}/tasks/{task}/status", get(task_status))
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(restart_task),
        )
        .route(
            "/connectors/{name}/offsets",
            get(connector_offsets)
                .patch(alter_offsets)
                .delete(reset_offsets),
        )
        .route("/connectors/{name}/topics", get(connector_topics))
        .route("/connectors/{name}/topics/reset", put(reset_topics))
        .route("/connector-plugins", get(list_plugins))
        .route("/connector-plugins/{plugin}/config", get(plugin_config))
        .route(
            "/connector-plugins/{plugin}/config/validate",
            put(validate_config),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "HTTP 404 Not Found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "HTTP 405 Method Not Allowed",
            )
        })
        .layer(axum::middleware::from_fn(forwarding))
        .with_state(state)
}

/// Leader-only requests that reach another worker are re-issued to the leader (or to the
/// worker that runs the task) with the same method, path, query and body, following
/// Connect's `forward` rule: none → `forward=true`, `true` → `forward=false`, `false` → 409.
async fn forwarding(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return ApiError::bad_request("Cannot read the request body").into_response();
    };
    let again =
        axum::extract::Request::from_parts(parts.clone(), axum::body::Body::from(body.clone()));
    let response = next.run(again).await;
    let Some(ForwardTo(target)) = response.extensions().get::<ForwardTo>().cloned() else {
        return response;
    };
    let params = query_params(parts.uri.query().map(str::to_owned));
    let next_forward = match params
        .iter()
        .find(|(k, _)| k == "forward")
        .map(|(_, v)| v.as_str())
    {
        None => "true",
        Some("false") => {
            return ApiError::new(
                StatusCode::CONFLICT,
                "Cannot complete request because of a conflicting operation (e.g. worker rebalance)",
            )
            .into_response();
        }
        Some(_) => "false",
    };
    let Some(target) = target else {
        return response;
    };
    // The serializer is not Send: finish it before the first await.
    let query = {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.iter().filter(|(k, _)| k != "forward") {
            query.append_pair(k, v);
        }
        query.append_pair("forward", next_forward).finish()
    };
    let url = format!(
        "{}{}?{query}",
        target.trim_end_matches('/'),
        parts.uri.path(),
    );
    let Ok(method) = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()) else {
        return response;
    };
    let client = CLIENT.get_or_init(reqwest::Client::new);
    let mut forwarded = client.request(method, &url).body(body.to_vec());
    if let Some(ct) = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        forwarded = forwarded.header(reqwest::header::CONTENT_TYPE, ct);
    }
    tracing::debug!(url = %url, "Forwarding a request.");
    match forwarded.send().await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status().as_u16())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let content_type = answer
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut out = (status, bytes.to_vec()).into_response();
            if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                out.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            out
        }
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Cannot forward the request to {target}: {e}"),
        )
        .into_response(),
    }
}

fn ok(json: Json) -> ApiResult {
    Ok((StatusCode::OK, axum::Json(json)).into_response())
}

fn status_only(code: StatusCode) -> ApiResult {
    Ok(code.into_response())
}

fn parse_json(body: &Bytes) -> Result<Json, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("Request body is empty"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Cannot deserialize request body: {e}")))
}

fn full_map(json: &Json) -> Result<BTreeMap<String, String>, ApiError> {
    let map = entities::string_map(json).map_err(ApiError::bad_request)?;
    map.into_iter()
        .map(|(k, v)| match v {
            Some(v) => Ok((k, v)),
            None => Err(ApiError::bad_request(format!(
                "Configuration value of {k} must not be null"
            ))),
        })
        .collect()
}

/// Query parameters; a key may repeat (`expand=status&expand=info`).
fn query_params(raw: Option<String>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    raw.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn bool_param(params: &[(String, String)], key: &str, default: bool) -> Result<bool, ApiError> {
    match params.iter().find(|(k, _)| k == key) {
        None => Ok(default),
        Some((_, v)) => match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ApiError::bad_request(format!(
                "Query parameter {key} must be true or false, not {v}"
            ))),
        },
    }
}

fn worker_id(state: &AppState) -> String {
    state.herder.worker().config.advertised.clone()
}

async fn server_info(State(state): State<AppState>) -> ApiResult {
    ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": option_env!("WASMCONNECT_COMMIT").unwrap_or("unknown"),
        "kafka_cluster_id": state.kafka_cluster_id,
    }))
}

async fn health() -> ApiResult {
    ok(
        json!({"status": "healthy", "message": "Worker has completed startup and is ready to handle requests."}),
    )
}

async fn list_connectors(State(state): State<AppState>, RawQuery(query): RawQuery) -> ApiResult {
    let params = query_params(query);
    let expand: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "expand")
        .map(|(_, v)| v.as_str())
        .collect();
    let names = state.herder.connector_names().await;
    if expand.is_empty() {
        return ok(json!(names));
    }
    let wid = worker_id(&state);
    let mut out = Map::new();
    for name in names {
        let mut entry = Map::new();
        if expand.contains(&"status")
            && let Ok(s) = state.herder.status(&name).await
        {
            entry.insert("status".into(), entities::connector_status(&s, &wid));
        }
        if expand.contains(&"info")
            && let Ok(i) = state.herder.info(&name).await
        {
            entry.insert("info".into(), entities::connector_info(&i));
        }
        out.insert(name, Json::Object(entry));
    }
    ok(Json::Object(out))
}

fn check_name_matches(config: &BTreeMap<String, String>, name: &str) -> Result<(), ApiError> {
    match config.get("name") {
        Some(n) if n != name => Err(ApiError::bad_request(format!(
            "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

fn created(name: &str, body: Json) -> ApiResult {
    let mut headers = HeaderMap::new();
    let location = format!("/connectors/{name}");
    if let Ok(v) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::CREATED, headers, axum::Json(body)).into_response())
}

async fn create_connector(State(state): State<AppState>, body: Bytes) -> ApiResult {
    let json = parse_json(&body)?;
    let name = json
        .get("name")
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("Connector name must be given as a non-empty string in \"name\"")
        })?
        .to_owned();
    let config = full_map(json.get("config").unwrap_or(&Json::Null))?;
    check_name_matches(&config, &name)?;
    let initial = match json.get("initial_state") {
        None | Some(Json::Null) => TargetState::Started,
        Some(Json::String(s)) => TargetState::from_initial_state(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid initial_state {s}: expected RUNNING, PAUSED or STOPPED"
            ))
        })?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid initial_state {other}"
            )));
        }
    };
    let info = state.herder.create(&name, config, initial).await?;
    created(&name, entities::connector_info(&info))
}

async fn get_connector(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    ok(entities::connector_info(&state.herder.info(&name).await?))
}

async fn delete_connector(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    state.herder.delete(&name).await?;
    status_only(StatusCode::NO_CONTENT)
}

async fn get_config(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    ok(json!(state.herder.config(&name).await?))
}

async fn put_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let config = full_map(&parse_json(&body)?)?;
    check_name_matches(&config, &name)?;
    let (was_created, info) = state.herder.put_config(&name, config).await?;
    if was_created {
        created(&name, entities::connector_info(&info))
    } else {
        ok(entities::connector_info(&info))
    }
}

async fn patch_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let patch = entities::string_map(&parse_json(&body)?).map_err(ApiError::bad_request)?;
    if let Some(Some(n)) = patch.get("name")
        && n != &name
    {
        return Err(ApiError::bad_request(format!(
            "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
        )));
    }
    ok(entities::connector_info(
        &state.herder.patch_config(&name, patch).await?,
    ))
}

async fn connector_status(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let s = state.herder.status(&name).await?;
    ok(entities::connector_status(&s, &worker_id(&state)))
}

async fn restart_connector(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let params = query_params(query);
    let include_tasks = bool_param(&params, "includeTasks", false)?;
    let only_failed = bool_param(&params, "onlyFailed", false)?;
    match state
        .herder
        .restart(&name, include_tasks, only_failed)
        .await?
    {
        None => status_only(StatusCode::NO_CONTENT),
        Some(planned) => Ok((
            StatusCode::ACCEPTED,
            axum::Json(entities::connector_status(&planned, &worker_id(&state))),
        )
            .into_response()),
    }
}

async fn pause_connector(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    state.herder.pause(&name).await?;
    status_only(StatusCode::ACCEPTED)
}

async fn resume_connector(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    state.herder.resume(&name).await?;
    status_only(StatusCode::ACCEPTED)
}

async fn stop_connector(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    state.herder.stop(&name).await?;
    status_only(StatusCode::NO_CONTENT)
}

async fn list_tasks(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    ok(entities::task_infos(&state.herder.tasks(&name).await?))
}

fn task_id(name: &str, raw: &str) -> Result<u32, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("Unknown task {name}-{raw}")))
}

/// The internal endpoint a connector's worker sends generated task configs to.
async fn put_task_configs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let json = parse_json(&body)?;
    let list = json
        .as_array()
        .ok_or_else(|| ApiError::bad_request("Task configs must be a JSON array of objects"))?;
    let configs = list.iter().map(full_map).collect::<Result<Vec<_>, _>>()?;
    state.herder.put_task_configs(&name, configs).await?;
    status_only(StatusCode::NO_CONTENT)
}

async fn task_status(
    State(state): State<AppState>,
    Path((name, task)): Path<(String, String)>,
) -> ApiResult {
    let id = task_id(&name, &task)?;
    let s = state.herder.task_status(&name, id).await?;
    ok(entities::task_state(id, &s, &worker_id(&state)))
}

async fn restart_task(
    State(state): State<AppState>,
    Path((name, task)): Path<(String, String)>,
) -> ApiResult {
    let id = task_id(&name, &task)?;
    state.herder.restart_task(&name, id).await?;
    status_only(StatusCode::NO_CONTENT)
}

async fn connector_topics(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let topics = state.herder.topics(&name).await?;
    ok(json!({ name: {"topics": topics} }))
}

async fn connector_offsets(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    ok(json!({ "offsets": state.herder.offsets(&name).await? }))
}

async fn alter_offsets(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let entries = entities::offset_entries(&parse_json(&body)?).map_err(ApiError::bad_request)?;
    let message = state
        .herder
        .modify_offsets(&name, OffsetChange::Alter(entries))
        .await?;
    ok(json!({ "message": message }))
}

async fn reset_offsets(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let message = state
        .herder
        .modify_offsets(&name, OffsetChange::Reset)
        .await?;
    ok(json!({ "message": message }))
}

async fn reset_topics(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    state.herder.reset_topics(&name).await?;
    status_only(StatusCode::ACCEPTED)
}

async fn list_plugins(State(state): State<AppState>, RawQuery(query): RawQuery) -> ApiResult {
    let params = query_params(query);
    let connectors_only = bool_param(&params, "connectorsOnly", true)?;
    let mut out: Vec<Json> = state
        .herder
        .registry()
        .all()
        .iter()
        .filter(|p| !connectors_only || p.kind != PluginKind::Transform)
        .flat_map(|p| {
            // A transform plugin is listed under each Java class name it answers to, as
            // Kafka Connect lists its transformations.
            let classes: Vec<&str> = match p.kind {
                PluginKind::Transform if p.aliases.iter().any(|a| a.contains('.')) => {
                    p.aliases.iter().filter(|a| a.contains('.')).map(String::as_str).collect()
                }
                _ => vec![p.name.as_str()],
            };
            classes
                .into_iter()
                .map(|class| json!({"class": class, "type": entities::kind_name(p.kind), "version": p.version}))
                .collect::<Vec<_>>()
        })
        .collect();
    if !connectors_only {
        for class in PREDICATE_CLASSES {
            out.push(
                json!({"class": class, "type": "predicate", "version": env!("CARGO_PKG_VERSION")}),
            );
        }
        for class in CONVERTER_CLASSES {
            let kind = if class.ends_with("HeaderConverter") {
                "header_converter"
            } else {
                "converter"
            };
            out.push(json!({"class": class, "type": kind, "version": env!("CARGO_PKG_VERSION")}));
        }
    }
    ok(Json::Array(out))
}

async fn plugin_config(State(state): State<AppState>, Path(plugin): Path<String>) -> ApiResult {
    let Some(p) = state.herder.registry().find(&plugin) else {
        if PREDICATE_CLASSES.iter().any(|c| c.ends_with(&plugin)) {
            return ok(json!([]));
        }
        if CONVERTER_CLASSES.iter().any(|c| c.ends_with(&plugin)) {
            return ok(json!([]));
        }
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Unknown plugin {plugin}."),
        ));
    };
    ok(Json::Array(
        p.config_def.iter().map(entities::config_key_info).collect(),
    ))
}

async fn validate_config(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
    body: Bytes,
) -> ApiResult {
    let config = full_map(&parse_json(&body)?)?;
    let Some(class) = config.get("connector.class") else {
        return Err(ApiError::bad_request(format!(
            "Connector config {} contains no connector type",
            json!(config)
        )));
    };
    let strip = |s: &str| s.strip_suffix("Connector").unwrap_or(s).to_owned();
    let matches = class.ends_with(&plugin)
        || strip(class).ends_with(&strip(&plugin))
        || state
            .herder
            .registry()
            .find(&plugin)
            .is_some_and(|p| p.answers_to(class));
    if !matches {
        return Err(ApiError::bad_request(format!(
            "Included connector type {class} does not match request type {plugin}"
        )));
    }
    let infos = state.herder.validate(&config).await?;
    ok(entities::config_infos(&infos))
}
