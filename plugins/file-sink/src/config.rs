//! The file sink's configuration.

wasmconnect_sdk::config! {
    pub struct FileSinkConfig {
        /// Path of the file the records are appended to, one JSON line each. The worker
        /// grants the task this file's folder and nothing else.
        #[key = "file", importance = High, group = "File"]
        pub file: String,
        /// Write each record as an object with its topic, partition, offset, key and value
        /// instead of the value alone.
        #[key = "include.metadata", importance = Low, default = false, group = "File"]
        pub include_metadata: bool,
    }
}
