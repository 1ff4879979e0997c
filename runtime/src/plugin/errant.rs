//! The host side of `errant-records`: records of a sink's previous batch that the plugin
//! reports as not written after that batch's `put` returned (it writes asynchronously), so
//! they still reach the error policy, as Connect's `ErrantRecordReporter` does.

use wasmconnect_sdk::data::RecordFailure;

use super::bindings::errant_records;
use super::store::TaskState;

/// The reports made against a sink's previous batch.
#[derive(Debug, Default)]
pub struct ErrantRecords {
    /// One flag per record of the previous batch: whether it was reported.
    reported: Vec<bool>,
    failures: Vec<RecordFailure>,
}

impl ErrantRecords {
    /// The plugin accepted a batch of `len` records: from now on reports refer to it.
    pub(crate) fn previous_batch(&mut self, len: usize) {
        self.reported.clear();
        self.reported.resize(len, false);
    }

    /// The reports made since the last take, in the order made.
    pub(crate) fn take(&mut self) -> Vec<RecordFailure> {
        std::mem::take(&mut self.failures)
    }

    fn report(&mut self, index: u32, message: String) -> Result<(), String> {
        let len = self.reported.len();
        match self.reported.get_mut(index as usize) {
            None => Err(format!(
                "no record {index} in the previous batch ({len} records)"
            )),
            Some(true) => Err(format!(
                "record {index} of the previous batch was already reported"
            )),
            Some(reported) => {
                *reported = true;
                self.failures.push(RecordFailure { index, message });
                Ok(())
            }
        }
    }
}

impl errant_records::Host for TaskState {
    async fn report_previous(
        &mut self,
        index: u32,
        message: String,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(self.errant.report(index, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_name_a_record_of_the_previous_batch_once() {
        let mut errant = ErrantRecords::default();
        assert!(errant.report(0, "before any batch".into()).is_err());
        errant.previous_batch(3);
        assert_eq!(errant.report(2, "duplicate key".into()), Ok(()));
        let twice = errant
            .report(2, "again".into())
            .expect_err("reported twice");
        assert!(twice.contains("already reported"), "{twice}");
        let outside = errant
            .report(3, "outside".into())
            .expect_err("index 3 of 3");
        assert!(outside.contains("(3 records)"), "{outside}");
        let taken = errant.take();
        assert_eq!(taken.len(), 1);
        assert_eq!(
            (taken[0].index, taken[0].message.as_str()),
            (2, "duplicate key")
        );
        assert!(errant.take().is_empty());
        errant.previous_batch(1);
        assert_eq!(errant.report(0, "new batch".into()), Ok(()));
    }
}
