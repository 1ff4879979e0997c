//! The `wasmconnect` command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use wasmconnect::config::{WorkerConfig, properties};
use wasmconnect::herder::TargetState;
use wasmconnect::worker::Worker;

#[derive(Parser, Debug)]
#[command(
    name = "wasmconnect",
    version,
    about = "Kafka Connect, rebuilt in Rust, with WebAssembly plugins."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a standalone worker, like `connect-standalone.sh`.
    Standalone {
        /// The worker's .properties file.
        worker: PathBuf,
        /// Connector configs: .properties files, JSON maps, or JSON `POST /connectors` bodies.
        connectors: Vec<PathBuf>,
    },
    /// Runs a worker of a distributed cluster, like `connect-distributed.sh`: workers with
    /// the same `group.id` share connectors and tasks; Kafka is the only coordinator.
    Distributed {
        /// The worker's .properties file (`group.id`, `config.storage.topic`, ...).
        worker: PathBuf,
    },
}

/// A connector file: a JSON map, a JSON `{"name","config","initial_state"}` body, or a
/// .properties file, tried in that order as Kafka does.
fn read_connector(path: &Path) -> anyhow::Result<(String, BTreeMap<String, String>, TargetState)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(&text) {
        let (config_json, initial) = match o.get("config") {
            Some(serde_json::Value::Object(c)) => {
                (c.clone(), o.get("initial_state").and_then(|s| s.as_str()))
            }
            _ => (o.clone(), None),
        };
        let mut config = BTreeMap::new();
        for (k, v) in config_json {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => bail!(
                    "{}: value of {k} must be a string, not {other}",
                    path.display()
                ),
            };
            config.insert(k, v);
        }
        let name = o
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_owned)
            .or_else(|| config.get("name").cloned())
            .with_context(|| format!("{}: connector config has no name", path.display()))?;
        let initial = match initial {
            None => TargetState::Started,
            Some(s) => TargetState::from_initial_state(s)
                .with_context(|| format!("{}: bad initial_state {s}", path.display()))?,
        };
        return Ok((name, config, initial));
    }
    let config = properties::parse(&text).with_context(|| format!("{}", path.display()))?;
    let name = config
        .get("name")
        .cloned()
        .with_context(|| format!("{}: connector config has no name", path.display()))?;
    Ok((name, config, TargetState::Started))
}

async fn standalone(worker_file: &Path, connector_files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(worker_file)
        .with_context(|| format!("cannot read {}", worker_file.display()))?;
    let raw = properties::parse(&text).with_context(|| format!("{}", worker_file.display()))?;
    let config =
        WorkerConfig::from_map(raw).with_context(|| format!("{}", worker_file.display()))?;
    let mut connectors = Vec::new();
    for file in connector_files {
        match read_connector(file) {
            Ok(c) => connectors.push(c),
            Err(err) => {
                eprintln!("Failed to read connector config: {err:#}");
                return Ok(ExitCode::from(3));
            }
        }
    }
    let worker = Worker::start(config).await?;
    for (name, config, initial) in connectors {
        if let Err(err) = worker.add_connector(&name, config, initial).await {
            eprintln!("Failed to create connector: {err}");
            worker.shutdown().await;
            return Ok(ExitCode::from(3));
        }
    }
    shutdown_signal().await;
    worker.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn distributed(worker_file: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(worker_file)
        .with_context(|| format!("cannot read {}", worker_file.display()))?;
    let raw = properties::parse(&text).with_context(|| format!("{}", worker_file.display()))?;
    let config =
        WorkerConfig::from_map(raw).with_context(|| format!("{}", worker_file.display()))?;
    let worker = Worker::start_distributed(config)
        .await
        .with_context(|| format!("{}", worker_file.display()))?;
    shutdown_signal().await;
    worker.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,librdkafka=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Standalone { worker, connectors } => standalone(&worker, &connectors).await,
        Command::Distributed { worker } => distributed(&worker).await,
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("wasmconnect: {err:#}");
            ExitCode::FAILURE
        }
    }
}
