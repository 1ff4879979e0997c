//! `file` sink: appends records to a file as JSON lines, like Kafka's `FileStreamSink` but
//! with structured values. `flush` syncs the file, so committed offsets never run ahead of
//! what is on disk.

mod config;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};

use wasmconnect_sdk::data::json;
use wasmconnect_sdk::prelude::*;

pub use config::FileSinkConfig;

#[derive(Debug)]
pub struct FileSink {
    path: String,
    out: BufWriter<File>,
    include_metadata: bool,
    line: String,
}

impl FileSink {
    fn render(&mut self, record: &Record) {
        self.line.clear();
        if self.include_metadata {
            self.line.push_str("{\"topic\":");
            json::write_string(&record.topic, &mut self.line);
            self.line.push_str(&format!(
                ",\"partition\":{},\"offset\":{},\"key\":",
                record.partition.unwrap_or(-1),
                record.offset.unwrap_or(-1)
            ));
            json::write_value(record.key.value(), &mut self.line);
            self.line.push_str(",\"value\":");
            json::write_value(record.value.value(), &mut self.line);
            self.line.push('}');
        } else {
            json::write_value(record.value.value(), &mut self.line);
        }
        self.line.push('\n');
    }
}

impl Sink for FileSink {
    type Config = FileSinkConfig;

    fn metadata() -> Metadata {
        Metadata::new(
            "FileSinkConnector",
            env!("CARGO_PKG_VERSION"),
            "Appends records to a file as JSON lines.",
        )
        .aliases(&[
            "file",
            "FileStreamSink",
            "org.apache.kafka.connect.file.FileStreamSinkConnector",
        ])
        .file_grants(&["file"])
    }

    fn task_configs(config: &Config, _max_tasks: u32) -> Result<Vec<Config>, PluginError> {
        // One writer per file: more tasks would interleave partial lines.
        Ok(vec![config.clone()])
    }

    fn open(config: FileSinkConfig) -> Result<Self, PluginError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.file)
            .map_err(|e| PluginError::config(format!("cannot open file {}: {e}", config.file)))?;
        wasmconnect_sdk::info!("Writing records to {}.", config.file);
        Ok(FileSink {
            path: config.file,
            out: BufWriter::with_capacity(64 * 1024, file),
            include_metadata: config.include_metadata,
            line: String::new(),
        })
    }

    fn put(&mut self, records: Vec<Record>) -> Result<Vec<RecordFailure>, PluginError> {
        for record in &records {
            self.render(record);
            let line = std::mem::take(&mut self.line);
            let written = self.out.write_all(line.as_bytes());
            self.line = line;
            written.map_err(|e| {
                PluginError::retriable(format!("write to {} failed: {e}", self.path))
            })?;
        }
        Ok(Vec::new())
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        self.out
            .flush()
            .and_then(|()| self.out.get_ref().sync_data())
            .map_err(|e| PluginError::retriable(format!("flush of {} failed: {e}", self.path)))
    }

    fn close(&mut self) {
        if let Err(err) = self.flush() {
            wasmconnect_sdk::warn!("{err}");
        }
    }
}

wasmconnect_sdk::export_sink!(FileSink);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn writes_json_lines_and_flushes() {
        let dir = std::env::temp_dir().join(format!("file-sink-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("out.jsonl");
        let config = Config::new().with("file", path.to_string_lossy());
        let mut h = testing::SinkHarness::<FileSink>::open(config).expect("open");
        let schema = Arc::new(Schema::structure().field("n", Schema::new(SchemaType::Int32)));
        let records = (0..3)
            .map(|n| {
                let s = Struct::new(schema.clone())
                    .and_then(|s| s.put("n", n))
                    .expect("struct");
                Record::new("t", Data::new(schema.clone(), Value::Struct(s)))
            })
            .collect();
        assert!(h.put(records).expect("put").is_empty());
        h.flush().expect("flush");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn missing_file_key_is_reported_by_name() {
        let issues = FileSink::validate(&Config::new());
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "file");
    }
}
