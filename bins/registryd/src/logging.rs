//! Logging to stderr as `log` configures it: `level`, `formatter` (`text`, `json`, `logstash`)
//! and `fields` added to every line, as registry:2's logrus output has them, and with
//! `reportcaller` the source file and line of each event (logrus names the function instead).
//!
//! | formatter | a line |
//! |---|---|
//! | `text` | `2026-12-05T12:00:00.000000Z  INFO registryd: registryd listening ... service=registry` |
//! | `json` | `{"timestamp":"...","level":"INFO","message":"...","target":"registryd","service":"registry"}` |
//! | `logstash` | `{"@timestamp":"...","@version":"1","level":"INFO","message":"...","service":"registry"}` |
//!
//! The fields are written by [`FieldsWriter`], which sees each formatted event as one write (the
//! formatter buffers a whole line before writing it).

use std::io::{self, Write};

use registry::config::{LogConfig, LogFormatter, LogLevel};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Crates whose debug output is about wire frames and handshakes, not about the registry: at
/// `log.level: debug` they stay at `info` unless `RUST_LOG` asks for them.
const NOISY: &[&str] = &["h2", "hyper", "hyper_util", "rustls", "tokio_rustls"];

/// Installs the process's logger. `RUST_LOG`, when set, takes precedence over `log.level` for
/// finer filtering.
pub(crate) fn init(log: &LogConfig) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| default_filter(log.level));
    let writer = FieldsWriter::new(log.formatter, &log.fields);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true)
        .with_file(log.reportcaller)
        .with_line_number(log.reportcaller);
    match log.formatter {
        LogFormatter::Text => builder
            .with_ansi(log.fields.is_empty() && io::IsTerminal::is_terminal(&io::stderr()))
            .init(),
        LogFormatter::Json | LogFormatter::Logstash => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// `level` for the registry, and at most `info` for the [`NOISY`] crates.
fn default_filter(level: LogLevel) -> EnvFilter {
    let mut directives = level.as_str().to_owned();
    if level == LogLevel::Debug {
        for noisy in NOISY {
            directives.push_str(&format!(",{noisy}=info"));
        }
    }
    EnvFilter::new(directives)
}

/// Writes formatted events to stderr with `log.fields` added, and a JSON line in logstash's
/// layout for `logstash`.
#[derive(Clone, Debug)]
struct FieldsWriter {
    formatter: LogFormatter,
    /// `"key":value,` pairs for JSON lines.
    json_fields: String,
    /// ` key=value` pairs for text lines.
    text_fields: String,
}

impl FieldsWriter {
    fn new(
        formatter: LogFormatter,
        fields: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> FieldsWriter {
        let mut json_fields = String::new();
        let mut text_fields = String::new();
        for (key, value) in fields {
            let key_json = serde_json::Value::from(key.as_str()).to_string();
            json_fields.push_str(&format!("{key_json}:{value},"));
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            text_fields.push_str(&format!(" {key}={text}"));
        }
        FieldsWriter {
            formatter,
            json_fields,
            text_fields,
        }
    }

    /// `line` (one formatted event) as it is written.
    fn rewrite(&self, line: &[u8]) -> Vec<u8> {
        match self.formatter {
            LogFormatter::Text => {
                let body = line.strip_suffix(b"\n").unwrap_or(line);
                let mut out = Vec::with_capacity(line.len() + self.text_fields.len() + 1);
                out.extend_from_slice(body);
                out.extend_from_slice(self.text_fields.as_bytes());
                out.push(b'\n');
                out
            }
            LogFormatter::Json | LogFormatter::Logstash => {
                let Some(rest) = line.strip_prefix(b"{") else {
                    return line.to_vec();
                };
                let mut out = Vec::with_capacity(line.len() + self.json_fields.len() + 32);
                out.push(b'{');
                out.extend_from_slice(self.json_fields.as_bytes());
                if self.formatter == LogFormatter::Logstash {
                    out.extend_from_slice(b"\"@version\":\"1\",");
                    if let Some(after) = rest.strip_prefix(b"\"timestamp\":") {
                        out.extend_from_slice(b"\"@timestamp\":");
                        out.extend_from_slice(after);
                        return out;
                    }
                }
                out.extend_from_slice(rest);
                out
            }
        }
    }
}

impl<'a> MakeWriter<'a> for FieldsWriter {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> EventWriter<'a> {
        EventWriter { fields: self }
    }
}

/// Writes one event.
struct EventWriter<'a> {
    fields: &'a FieldsWriter,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let plain =
            self.fields.formatter == LogFormatter::Text && self.fields.text_fields.is_empty();
        if plain {
            io::stderr().write_all(buf)?;
        } else {
            io::stderr().write_all(&self.fields.rewrite(buf))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn fields() -> BTreeMap<String, serde_json::Value> {
        BTreeMap::from([
            ("environment".to_owned(), serde_json::json!("staging")),
            ("service".to_owned(), serde_json::json!("registry")),
        ])
    }

    #[test]
    fn json_lines_get_the_fields_as_members() {
        let writer = FieldsWriter::new(LogFormatter::Json, &fields());
        let line = writer.rewrite(b"{\"timestamp\":\"t\",\"level\":\"INFO\",\"message\":\"m\"}\n");
        let parsed: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
        assert_eq!(parsed["service"], "registry");
        assert_eq!(parsed["environment"], "staging");
        assert_eq!(parsed["message"], "m");
        assert_eq!(parsed["timestamp"], "t");
    }

    #[test]
    fn logstash_lines_have_its_timestamp_and_version() {
        let writer = FieldsWriter::new(LogFormatter::Logstash, &fields());
        let line = writer.rewrite(b"{\"timestamp\":\"t\",\"level\":\"INFO\",\"message\":\"m\"}\n");
        let parsed: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
        assert_eq!(parsed["@timestamp"], "t");
        assert_eq!(parsed["@version"], "1");
        assert_eq!(parsed["service"], "registry");
        assert!(parsed.get("timestamp").is_none());
    }

    #[test]
    fn text_lines_end_with_the_fields() {
        let writer = FieldsWriter::new(LogFormatter::Text, &fields());
        let line = writer.rewrite(b"2026  INFO registryd: started\n");
        assert_eq!(
            String::from_utf8_lossy(&line),
            "2026  INFO registryd: started environment=staging service=registry\n"
        );
    }

    #[test]
    fn debug_keeps_wire_level_crates_at_info() {
        let filter = default_filter(LogLevel::Debug).to_string();
        assert!(
            filter.contains("h2=info") && filter.contains("hyper=info"),
            "{filter}"
        );
        assert_eq!(default_filter(LogLevel::Info).to_string(), "info");
    }
}
