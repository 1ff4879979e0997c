//! The source plugin on a thread of its own.
//!
//! The task loop asks for the next batch before it converts and sends the last one, so
//! the guest builds batch n+1 on one core while the converters and the producer handle
//! batch n on another. Calls reach the plugin in the order they were made: a commit
//! made between two polls reaches it between them, and `close` comes last.

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;
use wasmconnect_sdk::data::{SourcePosition, SourceRecord};

use crate::plugin::{CallError, SourceInstance};

/// Calls waiting for the plugin, at most: one poll (the loop asks for the next batch only
/// once it has the last) and the commits of the offset flushes made meanwhile.
const QUEUED_CALLS: usize = 4;

type Polled = Result<Vec<SourceRecord>, CallError>;

enum Call {
    Poll {
        max_records: u32,
        reply: oneshot::Sender<Polled>,
    },
    Commit(Vec<SourcePosition>),
}

/// Who the log lines of the plugin's thread are about.
pub(super) struct TaskName {
    pub connector: String,
    pub task_id: u32,
}

/// A running source plugin. Dropping it without [`Poller::close`] still closes the
/// plugin, once the calls already made are done.
pub(super) struct Poller {
    calls: mpsc::Sender<Call>,
    served: JoinHandle<()>,
}

/// A batch asked for and not yet taken.
pub(super) struct NextBatch(oneshot::Receiver<Polled>);

impl NextBatch {
    /// Waits for the batch.
    ///
    /// # Errors
    /// The plugin's error or trap, or [`CallError::Trap`] if the plugin's thread ended
    /// without answering.
    pub async fn take(self) -> Polled {
        self.0.await.unwrap_or_else(|_| {
            Err(CallError::Trap(
                "the source plugin's thread ended before it answered".into(),
            ))
        })
    }
}

impl Poller {
    pub fn start(plugin: SourceInstance, name: TaskName) -> Poller {
        let (calls, queue) = mpsc::channel(QUEUED_CALLS);
        // On a thread of its own, as Kafka Connect runs each task on its own. A poll is
        // milliseconds of CPU between yields (the store yields at epoch ticks only); as a
        // runtime task it waited in the LIFO slot of the worker whose loop woke it, which
        // other workers cannot steal from, so the poll and the send of the last batch ran
        // one after the other. The database and Kafka I/O stays on the runtime. In the
        // task's span, so that the plugin's log lines say whose they are.
        let runtime = Handle::current();
        let span = tracing::Span::current();
        let served = tokio::task::spawn_blocking(move || {
            runtime.block_on(serve(plugin, queue, name).instrument(span));
        });
        Poller { calls, served }
    }

    /// Asks the plugin for up to `max_records` records; the poll starts at once.
    pub async fn poll(&self, max_records: u32) -> NextBatch {
        let (reply, batch) = oneshot::channel();
        // If the plugin's thread is gone, the reply is dropped and `take` says so.
        let _ = self.calls.send(Call::Poll { max_records, reply }).await;
        NextBatch(batch)
    }

    /// Tells the plugin which positions are stored, after the calls already made.
    pub async fn commit(&self, positions: Vec<SourcePosition>) {
        let _ = self.calls.send(Call::Commit(positions)).await;
    }

    /// Closes the plugin after the calls already made, and waits until it is closed.
    pub async fn close(self) {
        let Poller { calls, served } = self;
        drop(calls);
        if let Err(e) = served.await {
            tracing::error!(error = %e, "The source plugin's thread panicked.");
        }
    }
}

async fn serve(mut plugin: SourceInstance, mut calls: mpsc::Receiver<Call>, name: TaskName) {
    let TaskName { connector, task_id } = &name;
    while let Some(call) = calls.recv().await {
        match call {
            Call::Poll { max_records, reply } => {
                // The loop may have stopped waiting (it was cancelled): nothing to do.
                let _ = reply.send(plugin.poll(max_records).await);
            }
            Call::Commit(positions) => {
                if let Err(e) = plugin.commit(&positions).await {
                    tracing::warn!(connector = %connector, task = task_id, error = %e, "Source plugin failed to handle a commit.");
                }
            }
        }
    }
    if let Err(e) = plugin.close().await {
        tracing::warn!(connector = %connector, task = task_id, error = %e, "Source plugin failed to close.");
    }
}
