//! A task's transform chain: one plugin instance per alias, applied in order to a batch,
//! each to the records its predicate selects.

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

struct Stage {
    spec: TransformSpec,
    instance: TransformInstance,
}

/// The configured transforms, instantiated.
pub struct Chain {
    stages: Vec<Stage>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.stages.iter().map(|s| &s.spec.alias))
            .finish()
    }
}

impl Chain {
    /// Instantiates and configures every transform.
    ///
    /// # Errors
    /// When a transform cannot be instantiated or refuses its config.
    pub async fn start(specs: Vec<TransformSpec>, limits: Limits) -> Result<Chain, TaskFailure> {
        let mut stages = Vec::with_capacity(specs.len());
        for spec in specs {
            let what = |e: &dyn std::fmt::Display| {
                TaskFailure(format!(
                    "Cannot start transform {} ({}): {e}",
                    spec.alias, spec.class
                ))
            };
            let mut instance = spec.plugin.transform(limits).await.map_err(|e| what(&e))?;
            instance
                .configure(&spec.config)
                .await
                .map_err(|e| what(&e))?;
            stages.push(Stage { spec, instance });
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
                    && stage.spec.applies_to(r)
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
            let outcomes = stage.instance.apply(&batch).await.map_err(|e| {
                TaskFailure(format!(
                    "Transform {} ({}) failed: {e}",
                    stage.spec.alias, stage.spec.class
                ))
            })?;
            for (i, outcome) in picked.into_iter().zip(outcomes) {
                slots[i] = match outcome {
                    Outcome::Keep(r) => Transformed::Keep(r),
                    Outcome::Drop => Transformed::Drop,
                    Outcome::Failed(message) => Transformed::Failed {
                        class: stage.spec.class.clone(),
                        message,
                    },
                };
            }
        }
        Ok(slots)
    }

    pub async fn close(&mut self) {
        for stage in &mut self.stages {
            if let Err(e) = stage.instance.close().await {
                tracing::warn!(transform = %stage.spec.alias, error = %e, "Transform failed to close.");
            }
        }
    }
}
