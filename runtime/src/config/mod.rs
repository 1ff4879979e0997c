//! Worker and connector configuration: `.properties` files, config providers, and the typed
//! worker config.
pub mod properties;
pub mod providers;
