//! Where a sink's consumer starts reading the partitions its group gives it.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

/// How long a rebalance waits for the committed offsets before it leaves the lookup to
/// librdkafka. The lookup runs in the consumer's poll, on the intake's thread, right
/// after the group coordinator answered the join: a few hundred microseconds here.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(1);

/// A sink consumer's context: when its group assigns it partitions, it looks up their
/// committed offsets and assigns each partition with the offset to start at, where
/// `auto.offset.reset` says for a partition without one.
///
/// librdkafka left to itself looks the committed offsets up too, but a partition with
/// none then waits a fixed 100 ms before `auto.offset.reset` is applied
/// (`rd_kafka_offset_reset` in librdkafka's `rdkafka_offset.c` backs off whenever the
/// reset follows an error, and "no offset stored" counts as one). Every new connector's
/// first records waited for it; Java's consumer, which Connect's tasks use, does not.
#[derive(Debug)]
pub struct StartAtCommitted {
    /// Where a partition without a committed offset starts; `None` leaves it to
    /// librdkafka (`auto.offset.reset=error`, which fails the partition).
    reset: Option<Offset>,
}

impl StartAtCommitted {
    /// For a consumer created from `config`.
    pub fn for_config(config: &ClientConfig) -> StartAtCommitted {
        StartAtCommitted {
            reset: reset_offset(config.get("auto.offset.reset").unwrap_or("latest")),
        }
    }

    /// The assignment to make: `assigned` with each partition's committed offset, or the
    /// reset offset where it has none. On a failed lookup, `assigned` as it is, for
    /// librdkafka to look up.
    fn starts(
        &self,
        consumer: &BaseConsumer<StartAtCommitted>,
        assigned: &TopicPartitionList,
    ) -> TopicPartitionList {
        let Some(reset) = self.reset else {
            return assigned.clone();
        };
        let committed = match consumer.committed_offsets(assigned.clone(), COMMITTED_TIMEOUT) {
            Ok(committed) => committed,
            Err(e) => {
                tracing::debug!(error = %e, "Cannot look up the committed offsets; librdkafka will.");
                return assigned.clone();
            }
        };
        let mut starts = TopicPartitionList::with_capacity(committed.count());
        for p in committed.elements() {
            let offset = match p.offset() {
                Offset::Invalid if p.error().is_ok() => reset,
                offset => offset,
            };
            // Only a logical offset the list cannot hold fails here; librdkafka then
            // looks that partition up itself.
            let _ = starts.add_partition_offset(p.topic(), p.partition(), offset);
        }
        starts
    }
}

/// The start offset `auto.offset.reset` names, in librdkafka's and Java's spellings.
fn reset_offset(setting: &str) -> Option<Offset> {
    match setting {
        "smallest" | "earliest" | "beginning" => Some(Offset::Beginning),
        "largest" | "latest" | "end" => Some(Offset::End),
        _ => None,
    }
}

impl ClientContext for StartAtCommitted {}

impl ConsumerContext for StartAtCommitted {
    /// librdkafka's default rebalance (`ConsumerContext::rebalance`), with explicit start
    /// offsets for the partitions assigned.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<StartAtCommitted>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let done = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let starts = self.starts(consumer, partitions);
                if cooperative {
                    consumer.incremental_assign(&starts)
                } else {
                    consumer.assign(&starts)
                }
            }
            other => {
                if other != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    tracing::warn!(error = ?other, "Rebalance failed; giving up the partitions.");
                }
                if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                }
            }
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "Cannot apply the group's assignment.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_names_both_spellings() {
        for earliest in ["earliest", "smallest", "beginning"] {
            assert_eq!(reset_offset(earliest), Some(Offset::Beginning));
        }
        for latest in ["latest", "largest", "end"] {
            assert_eq!(reset_offset(latest), Some(Offset::End));
        }
        assert_eq!(reset_offset("error"), None);
        assert_eq!(reset_offset("none"), None);
    }
}
