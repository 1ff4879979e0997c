//! Datagen's configuration, with the keys of Confluent's datagen connector where they fit.

wasmconnect_sdk::config! {
    pub struct DatagenConfig {
        /// Topic to write the generated records to.
        #[key = "kafka.topic", importance = High, group = "Datagen"]
        pub topic: String,
        /// Milliseconds between two records (0: as fast as the worker polls).
        #[key = "max.interval", importance = Medium, default = 500, group = "Datagen"]
        pub max_interval_ms: u64,
        /// How many records to generate in all; -1 for no end.
        #[key = "iterations", importance = Medium, default = -1, group = "Datagen"]
        pub iterations: i64,
        /// Which synthetic data set to generate.
        #[key = "quickstart", importance = Medium, default = "users".to_owned(), group = "Datagen", values = ["users", "pageviews"]]
        pub quickstart: String,
        /// Seed of the generator: the same seed gives the same records.
        #[key = "random.seed", importance = Low, default = 0, group = "Datagen"]
        pub seed: u64,
    }
}
