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

/// The filter directive for registryd's own lines. Directive targets match by prefix, so this one
/// covers every crate of the workspace (`registryd`, `registry`, `registry_http`,
/// `registry_auth`, ...) and the access log (`registryd::access`), and no dependency.
const OWN_TARGETS: &str = "registry";

/// Installs the process's logger: registryd's own lines at `log.level`, its dependencies' (hyper,
/// h2, rustls, the AWS SDK...) at `info`, or at `log.level` when that is quieter, so that
/// `log.level: debug` shows what registryd decided rather than HTTP/2 frames and handshakes.
///
/// `RUST_LOG`, when set, adds its directives after these and wins where both name a target:
/// `RUST_LOG=h2=debug` shows h2's frames, `RUST_LOG=debug` every dependency's debug lines, and
/// `RUST_LOG=registry=trace` overrides `log.level` for registryd's own lines. A `RUST_LOG` that
/// does not parse is reported on stderr and ignored.
pub(crate) fn init(log: &LogConfig) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = match filter(log.level, rust_log.as_deref()) {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!("registryd: RUST_LOG ignored: {error}");
            filter(log.level, None).unwrap_or_else(|_| EnvFilter::new(log.level.as_str()))
        }
    };
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

/// The directives for `level` and then `rust_log`'s, as [`init`] describes them.
fn directives(level: LogLevel, rust_log: Option<&str>) -> String {
    let dependencies = match level {
        LogLevel::Error | LogLevel::Warn => level.as_str(),
        LogLevel::Info | LogLevel::Debug => LogLevel::Info.as_str(),
    };
    let mut directives = format!("{dependencies},{OWN_TARGETS}={level}");
    if let Some(rust_log) = rust_log.map(str::trim).filter(|text| !text.is_empty()) {
        directives.push(',');
        directives.push_str(rust_log);
    }
    directives
}

/// The filter for `level` and `rust_log`; an error when `rust_log` does not parse.
fn filter(
    level: LogLevel,
    rust_log: Option<&str>,
) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    EnvFilter::builder().parse(directives(level, rust_log))
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

    /// A shared buffer the test subscriber writes lines to.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut lines = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            lines.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The messages of a few events from registryd and from dependencies that the filter for
    /// `level` and `rust_log` lets through.
    fn shown(level: LogLevel, rust_log: Option<&str>) -> String {
        // One subscriber at a time: tracing caches callsite interest across every live
        // subscriber, so tests with different filters running at once could see each other's.
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let filter = filter(level, rust_log).unwrap_or_else(|error| panic!("{error}"));
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "registry_auth::controller", "own-debug");
            tracing::info!(target: "registryd::access", "own-info");
            tracing::debug!(target: "h2::codec", "h2-debug");
            tracing::info!(target: "hyper_util::server", "hyper-info");
            tracing::warn!(target: "rustls::server", "rustls-warn");
        });
        let shown = lines
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&shown).into_owned()
    }

    /// Which of the events [`shown`] logs got through, in order.
    fn shown_messages(level: LogLevel, rust_log: Option<&str>) -> Vec<&'static str> {
        let text = shown(level, rust_log);
        [
            "own-debug",
            "own-info",
            "h2-debug",
            "hyper-info",
            "rustls-warn",
        ]
        .into_iter()
        .filter(|message| text.contains(message))
        .collect()
    }

    #[test]
    fn debug_level_shows_registryds_debug_lines_and_keeps_dependencies_at_info() {
        assert_eq!(
            shown_messages(LogLevel::Debug, None),
            ["own-debug", "own-info", "hyper-info", "rustls-warn"]
        );
        assert_eq!(
            shown_messages(LogLevel::Info, None),
            ["own-info", "hyper-info", "rustls-warn"]
        );
        assert_eq!(shown_messages(LogLevel::Warn, None), ["rustls-warn"]);
    }

    #[test]
    fn rust_log_sets_dependencies_levels_and_can_override_registryds() {
        assert_eq!(
            shown_messages(LogLevel::Info, Some("h2=debug")),
            ["own-info", "h2-debug", "hyper-info", "rustls-warn"]
        );
        assert_eq!(
            shown_messages(LogLevel::Debug, Some("warn")),
            ["own-debug", "own-info", "rustls-warn"]
        );
        assert_eq!(
            shown_messages(LogLevel::Warn, Some("registry=debug")),
            ["own-debug", "own-info", "rustls-warn"]
        );
        assert!(filter(LogLevel::Info, Some("h2=loud")).is_err());
    }
}
