//! A task's transform chain, applied in order to a batch, each alias to the records its
//! predicate selects.
//!
//! Consecutive aliases of one plugin that declares the `transforms` key (Kafka's transforms
//! do), none with a predicate, share one instance: the worker passes them as a connector
//! config would (`transforms=a,b`, `transforms.a.*`) and the batch crosses the boundary once
//! for the run instead of once per alias.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmconnect_sdk::data::{Outcome, Record};

use super::{TaskContext, TaskFailure};
use crate::config::transforms::{self, TransformSpec};
use crate::plugin::{Limits, TransformInstance};

/// What the chain did with one record.
#[derive(Debug)]
pub enum Transformed {
    Keep(Record),
    /// Filtered out by a transform.
    Drop,
    /// A transform failed this record; the error policy decides what follows.
    Failed {
        /// The transform's class, as configured (`__connect.errors.class.name`).
        class: String,
        message: String,
    },
}

/// One instance: a single alias, or a run of aliases of one plugin.
struct Stage {
    /// The aliases it runs, in order; more than one only without predicates.
    specs: Vec<TransformSpec>,
    instance: TransformInstance,
}

/// The config key by which a transform plugin says it takes a run of its aliases.
const CHAIN_KEY: &str = "transforms";

impl Stage {
    fn applies_to(&self, record: &Record) -> bool {
        self.specs.iter().all(|s| s.applies_to(record))
    }

    fn name(&self) -> String {
        let aliases: Vec<&str> = self.specs.iter().map(|s| s.alias.as_str()).collect();
        let classes: Vec<&str> = self.specs.iter().map(|s| s.class.as_str()).collect();
        format!("{} ({})", aliases.join(","), classes.join(", "))
    }

    /// The config for the instance: the alias's own, or the run's as a connector has it.
    fn config(specs: &[TransformSpec]) -> BTreeMap<String, String> {
        let [spec] = specs else {
            let mut config = BTreeMap::new();
            let aliases: Vec<&str> = specs.iter().map(|s| s.alias.as_str()).collect();
            config.insert(CHAIN_KEY.to_owned(), aliases.join(","));
            for spec in specs {
                for (k, v) in &spec.config {
                    config.insert(format!("{CHAIN_KEY}.{}.{k}", spec.alias), v.clone());
                }
            }
            return config;
        };
        spec.config.clone()
    }

    /// Which class failed a record, and why: a run's plugin names the class first.
    fn failure(&self, message: String) -> (String, String) {
        if let [spec] = self.specs.as_slice() {
            return (spec.class.clone(), message);
        }
        for spec in &self.specs {
            if let Some(rest) = message.strip_prefix(&format!("{}: ", spec.class)) {
                return (spec.class.clone(), rest.to_owned());
            }
        }
        let classes: Vec<&str> = self.specs.iter().map(|s| s.class.as_str()).collect();
        (classes.join(", "), message)
    }
}

/// Whether `next` can join the run of `run`'s plugin in one instance.
fn joins(run: &[TransformSpec], next: &TransformSpec) -> bool {
    let Some(first) = run.first() else {
        return false;
    };
    Arc::ptr_eq(&first.plugin, &next.plugin)
        && first.predicate.is_none()
        && next.predicate.is_none()
        && next.plugin.config_def.iter().any(|k| k.name == CHAIN_KEY)
}

/// The configured transforms, instantiated.
pub struct Chain {
    stages: Vec<Stage>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.stages.iter().map(Stage::name))
            .finish()
    }
}

impl Chain {
    /// Instantiates and configures every transform.
    ///
    /// # Errors
    /// When a transform cannot be instantiated or refuses its config.
    pub async fn start(specs: Vec<TransformSpec>, limits: Limits) -> Result<Chain, TaskFailure> {
        let mut runs: Vec<Vec<TransformSpec>> = Vec::new();
        for spec in specs {
            match runs.last_mut() {
                Some(run) if joins(run, &spec) => run.push(spec),
                _ => runs.push(vec![spec]),
            }
        }
        let mut stages = Vec::with_capacity(runs.len());
        for specs in runs {
            let plugin = specs[0].plugin.clone();
            let config = Stage::config(&specs);
            let mut instance = match plugin.transform(limits).await {
                Ok(i) => i,
                Err(e) => return Err(start_failure(&specs, &e)),
            };
            if let Err(e) = instance.configure(&config).await {
                return Err(start_failure(&specs, &e));
            }
            stages.push(Stage { specs, instance });
        }
        Ok(Chain { stages })
    }

    /// The chain of a task's connector config (`transforms=...`).
    ///
    /// # Errors
    /// When the chain's config is invalid, or a transform cannot start.
    pub async fn for_task(ctx: &TaskContext, limits: Limits) -> Result<Chain, TaskFailure> {
        let specs = transforms::parse(&ctx.connector_config, &ctx.worker.plugins)
            .map_err(|issues| TaskFailure(super::join_issues(&issues)))?;
        Chain::start(specs, limits).await
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs a batch through every transform: one result per record, in order.
    ///
    /// # Errors
    /// When a transform traps or breaks the contract: a task failure, not a record's.
    pub async fn apply(&mut self, records: Vec<Record>) -> Result<Vec<Transformed>, TaskFailure> {
        let mut slots: Vec<Transformed> = records.into_iter().map(Transformed::Keep).collect();
        for stage in &mut self.stages {
            let mut picked = Vec::new();
            let mut batch = Vec::new();
            for (i, slot) in slots.iter_mut().enumerate() {
                if let Transformed::Keep(r) = slot
                    && stage.applies_to(r)
                {
                    let Transformed::Keep(r) = std::mem::replace(slot, Transformed::Drop) else {
                        unreachable!("matched above")
                    };
                    picked.push(i);
                    batch.push(r);
                }
            }
            if batch.is_empty() {
                continue;
            }
            let outcomes = stage
                .instance
                .apply(&batch)
                .await
                .map_err(|e| TaskFailure(format!("Transform {} failed: {e}", stage.name())))?;
            for (i, outcome) in picked.into_iter().zip(outcomes) {
                slots[i] = match outcome {
                    Outcome::Keep(r) => Transformed::Keep(r),
                    Outcome::Drop => Transformed::Drop,
                    Outcome::Failed(message) => {
                        let (class, message) = stage.failure(message);
                        Transformed::Failed { class, message }
                    }
                };
            }
        }
        Ok(slots)
    }

    pub async fn close(&mut self) {
        for stage in &mut self.stages {
            if let Err(e) = stage.instance.close().await {
                tracing::warn!(transform = %stage.name(), error = %e, "Transform failed to close.");
            }
        }
    }
}

fn start_failure(specs: &[TransformSpec], e: &dyn std::fmt::Display) -> TaskFailure {
    let aliases: Vec<String> = specs
        .iter()
        .map(|s| format!("{} ({})", s.alias, s.class))
        .collect();
    TaskFailure(format!(
        "Cannot start transform {}: {e}",
        aliases.join(", ")
    ))
}
