//! Logging from a plugin. Inside the worker, messages go to its log within the task's span;
//! in native tests they are kept for the test to read ([`crate::testing::take_logs`]) and
//! printed to stderr.

/// A log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Whether a message at `level` would be recorded.
pub fn enabled(level: Level) -> bool {
    imp::enabled(level)
}

/// Records a message.
pub fn write(level: Level, message: &str) {
    imp::write(level, message);
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;
    use crate::__guest::wasmconnect::plugin::log as host;

    fn to_host(level: Level) -> host::Level {
        match level {
            Level::Trace => host::Level::Trace,
            Level::Debug => host::Level::Debug,
            Level::Info => host::Level::Info,
            Level::Warn => host::Level::Warn,
            Level::Error => host::Level::Error,
        }
    }

    pub fn enabled(level: Level) -> bool {
        host::enabled(to_host(level))
    }

    pub fn write(level: Level, message: &str) {
        host::log(to_host(level), message);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::Level;
    use std::cell::RefCell;

    thread_local! {
        pub(crate) static CAPTURED: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub fn enabled(_level: Level) -> bool {
        true
    }

    pub fn write(level: Level, message: &str) {
        eprintln!("[plugin {level:?}] {message}");
        CAPTURED.with(|c| c.borrow_mut().push((level, message.to_owned())));
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn take_captured() -> Vec<(Level, String)> {
    imp::CAPTURED.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

/// Logs at a level with `format!` arguments, skipping the formatting when disabled.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {{
        let level = $level;
        if $crate::log::enabled(level) {
            $crate::log::write(level, &format!($($arg)+));
        }
    }};
}

/// Logs at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Debug, $($arg)+) };
}

/// Logs at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Info, $($arg)+) };
}

/// Logs at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Warn, $($arg)+) };
}

/// Logs at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Error, $($arg)+) };
}
