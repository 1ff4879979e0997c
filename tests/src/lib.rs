//! End-to-end tests of the `wasmconnect` binary live in `tests/tests/`; this crate has no
//! code of its own.
