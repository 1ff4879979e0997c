//! Config providers (KIP-297): `${provider:[path:]key}` placeholders resolved in the worker.
//!
//! Configs are stored and shown with their placeholders; only the copy handed to a running
//! task is resolved, so secrets never reach the REST API or the logs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;

/// A placeholder that could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    #[error("unknown config provider '{0}' (configure it in config.providers)")]
    UnknownProvider(String),
    #[error("config provider '{provider}': {message}")]
    Failed { provider: String, message: String },
    #[error("config.providers.{alias}.class: unsupported provider class {class}")]
    UnsupportedClass { alias: String, class: String },
}

#[derive(Debug, Clone)]
enum Provider {
    /// `FileConfigProvider`: a key of a properties file.
    File { allowed: Vec<PathBuf> },
    /// `DirectoryConfigProvider`: a file in a folder, its content the value.
    Directory { allowed: Vec<PathBuf> },
    /// `EnvVarConfigProvider`: an environment variable.
    Env { allowlist: Option<Regex> },
}

/// The providers a worker was configured with.
#[derive(Debug, Clone, Default)]
pub struct ConfigProviders {
    providers: BTreeMap<String, Provider>,
}

fn placeholder() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        // Kafka's ConfigTransformer.DEFAULT_PATTERN: ${provider:[path:]key}
        Regex::new(r"\$\{([^}]*?):(([^}]*?):)?([^}]*?)\}").unwrap_or_else(|_| unreachable!())
    })
}

fn allowed_paths(params: &BTreeMap<String, String>) -> Vec<PathBuf> {
    params
        .get("allowed.paths")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

fn check_allowed(allowed: &[PathBuf], path: &Path) -> Result<(), String> {
    if allowed.is_empty() || allowed.iter().any(|a| path.starts_with(a)) {
        Ok(())
    } else {
        Err(format!("{} is not in allowed.paths", path.display()))
    }
}

impl ConfigProviders {
    /// Reads `config.providers`, `config.providers.<alias>.class` and
    /// `config.providers.<alias>.param.<k>` from a worker config.
    ///
    /// # Errors
    /// When an alias names a class that is not one of the three shipped providers.
    pub fn from_worker_config(
        worker: &BTreeMap<String, String>,
    ) -> Result<ConfigProviders, ProviderError> {
        let mut providers = BTreeMap::new();
        let aliases = worker
            .get("config.providers")
            .map(String::as_str)
            .unwrap_or("");
        for alias in aliases.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let prefix = format!("config.providers.{alias}.");
            let class = worker
                .get(&format!("{prefix}class"))
                .cloned()
                .unwrap_or_default();
            let param_prefix = format!("{prefix}param.");
            let params: BTreeMap<String, String> = worker
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(&param_prefix)
                        .map(|p| (p.to_owned(), v.clone()))
                })
                .collect();
            let simple = class.rsplit('.').next().unwrap_or(&class);
            let provider = match simple {
                "FileConfigProvider" => Provider::File {
                    allowed: allowed_paths(&params),
                },
                "DirectoryConfigProvider" => Provider::Directory {
                    allowed: allowed_paths(&params),
                },
                "EnvVarConfigProvider" => Provider::Env {
                    allowlist: match params.get("allowlist.pattern") {
                        None => None,
                        Some(p) => Some(Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                            ProviderError::Failed {
                                provider: alias.to_owned(),
                                message: format!("bad allowlist.pattern: {e}"),
                            }
                        })?),
                    },
                },
                _ => {
                    return Err(ProviderError::UnsupportedClass {
                        alias: alias.to_owned(),
                        class,
                    });
                }
            };
            providers.insert(alias.to_owned(), provider);
        }
        Ok(ConfigProviders { providers })
    }

    fn lookup(&self, alias: &str, path: Option<&str>, key: &str) -> Result<String, ProviderError> {
        let provider = self
            .providers
            .get(alias)
            .ok_or_else(|| ProviderError::UnknownProvider(alias.to_owned()))?;
        let fail = |message: String| ProviderError::Failed {
            provider: alias.to_owned(),
            message,
        };
        match provider {
            Provider::File { allowed } => {
                let path = path.ok_or_else(|| fail("a file placeholder needs a path".into()))?;
                check_allowed(allowed, Path::new(path)).map_err(fail)?;
                let text = std::fs::read_to_string(path)
                    .map_err(|e| fail(format!("cannot read {path}: {e}")))?;
                let map =
                    super::properties::parse(&text).map_err(|e| fail(format!("{path}: {e}")))?;
                map.get(key)
                    .cloned()
                    .ok_or_else(|| fail(format!("no key {key} in {path}")))
            }
            Provider::Directory { allowed } => {
                let dir =
                    path.ok_or_else(|| fail("a directory placeholder needs a path".into()))?;
                if key.contains('/') || key == ".." {
                    return Err(fail(format!("bad file name {key}")));
                }
                let file = Path::new(dir).join(key);
                check_allowed(allowed, &file).map_err(fail)?;
                std::fs::read_to_string(&file)
                    .map_err(|e| fail(format!("cannot read {}: {e}", file.display())))
            }
            Provider::Env { allowlist } => {
                if let Some(re) = allowlist
                    && !re.is_match(key)
                {
                    return Err(fail(format!("environment variable {key} is not allowed")));
                }
                std::env::var(key)
                    .map_err(|_| fail(format!("environment variable {key} is not set")))
            }
        }
    }

    /// Resolves every placeholder in one value.
    ///
    /// # Errors
    /// When a placeholder names an unknown provider or its value cannot be read.
    pub fn resolve_value(&self, value: &str) -> Result<String, ProviderError> {
        let mut out = String::with_capacity(value.len());
        let mut last = 0;
        for caps in placeholder().captures_iter(value) {
            let whole = caps.get(0).map_or(0..0, |m| m.range());
            let alias = caps.get(1).map_or("", |m| m.as_str());
            let path = caps.get(3).map(|m| m.as_str());
            let key = caps.get(4).map_or("", |m| m.as_str());
            out.push_str(&value[last..whole.start]);
            out.push_str(&self.lookup(alias, path, key)?);
            last = whole.end;
        }
        out.push_str(&value[last..]);
        Ok(out)
    }

    /// A copy of `config` with every placeholder resolved.
    ///
    /// # Errors
    /// The first placeholder that cannot be resolved, with its key.
    pub fn resolve(
        &self,
        config: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, (String, ProviderError)> {
        config
            .iter()
            .map(|(k, v)| {
                self.resolve_value(v)
                    .map(|r| (k.clone(), r))
                    .map_err(|e| (k.clone(), e))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn resolves_file_directory_and_env_placeholders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let props = dir.path().join("db.properties");
        std::fs::write(&props, "password=s3cret\nuser=app\n").expect("write");
        std::fs::write(dir.path().join("token"), "tok").expect("write");
        let providers = ConfigProviders::from_worker_config(&worker(&[
            ("config.providers", "file,dir,env"),
            (
                "config.providers.file.class",
                "org.apache.kafka.common.config.provider.FileConfigProvider",
            ),
            (
                "config.providers.dir.class",
                "org.apache.kafka.common.config.provider.DirectoryConfigProvider",
            ),
            (
                "config.providers.env.class",
                "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
            ),
        ]))
        .expect("providers");
        let p = props.display();
        assert_eq!(
            providers.resolve_value(&format!("${{file:{p}:password}}")),
            Ok("s3cret".into())
        );
        assert_eq!(
            providers.resolve_value(&format!(
                "u=${{file:{p}:user}};t=${{dir:{}:token}}",
                dir.path().display()
            )),
            Ok("u=app;t=tok".into())
        );
        assert_eq!(
            providers.resolve_value("${env:PATH}"),
            std::env::var("PATH").map_err(|_| unreachable!())
        );
        assert!(matches!(
            providers.resolve_value("${vault:x}"),
            Err(ProviderError::UnknownProvider(_))
        ));
        assert!(
            providers
                .resolve_value(&format!("${{file:{p}:nope}}"))
                .is_err()
        );
        assert_eq!(providers.resolve_value("plain"), Ok("plain".into()));
    }

    #[test]
    fn allowed_paths_and_allowlist_are_enforced() {
        let providers = ConfigProviders::from_worker_config(&worker(&[
            ("config.providers", "file,env"),
            ("config.providers.file.class", "FileConfigProvider"),
            (
                "config.providers.file.param.allowed.paths",
                "/nonexistent/allowed",
            ),
            ("config.providers.env.class", "EnvVarConfigProvider"),
            ("config.providers.env.param.allowlist.pattern", "DB_.*"),
        ]))
        .expect("providers");
        assert!(providers.resolve_value("${file:/etc/passwd:root}").is_err());
        assert!(providers.resolve_value("${env:PATH}").is_err());
    }
}
