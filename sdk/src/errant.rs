//! Records a sink could not write, found out after the `put` that gave them had returned:
//! a sink that writes a batch while the worker hands it the next reports them here, in the
//! next `put` or in `flush`, and the worker gives them to the error policy (Connect's
//! `ErrantRecordReporter`).

/// Reports record `index` of the batch given to the last `put` that returned ok as not
/// written. The worker keeps that batch until the next `put` or `flush` returns ok; a
/// record reported here is handled like a [`crate::data::RecordFailure`] that `put`
/// returns.
///
/// # Errors
/// An index outside the previous batch, a record already reported, or (outside the
/// worker) no worker to report to.
pub fn report_previous(index: u32, message: &str) -> Result<(), String> {
    imp::report_previous(index, message)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::__guest::wasmconnect::plugin::errant_records as host;

    pub fn report_previous(index: u32, message: &str) -> Result<(), String> {
        host::report_previous(index, message)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    pub fn report_previous(index: u32, _message: &str) -> Result<(), String> {
        Err(format!(
            "cannot report record {index}: errant records are reported only inside the wasmconnect worker"
        ))
    }
}
