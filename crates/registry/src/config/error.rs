//! Configuration errors: one sentence each, naming the key (or file, or variable) and the fix.

use std::path::PathBuf;

/// Why a configuration could not be loaded.
///
/// Every message is one sentence that names what is wrong and where: the config key (with the
/// line or environment variable it came from), the file, or the environment variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {}", path.display(), io_message(error))]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The document is not valid YAML.
    #[error("{} line {line} column {column}: {message}", document_label(file))]
    Syntax {
        /// The file, if the document came from one.
        file: Option<PathBuf>,
        /// 1-based line of the error.
        line: u64,
        /// 1-based column of the error.
        column: u64,
        /// What the YAML parser expected.
        message: String,
    },
    /// A key holds a value of the wrong type, an invalid value, or is missing.
    #[error("config key {key}{}: {message}", origin_label(origin.as_deref()))]
    Invalid {
        /// The key's path, such as `storage.delete.enabled`.
        key: String,
        /// Where the value came from, such as `line 12` or `set by REGISTRY_HTTP_ADDR`.
        origin: Option<String>,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An environment override could not be applied.
    #[error("environment variable {variable}: {message}")]
    Env {
        /// The variable's name.
        variable: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

fn io_message(error: &std::io::Error) -> String {
    // "No such file or directory (os error 2)" reads better without the errno.
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(index) if text.ends_with(')') => text[..index].to_owned(),
        _ => text,
    }
}

fn document_label(file: &Option<PathBuf>) -> String {
    match file {
        Some(path) => format!("config file {}", path.display()),
        None => "config".to_owned(),
    }
}

fn origin_label(origin: Option<&str>) -> String {
    origin
        .map(|origin| format!(" ({origin})"))
        .unwrap_or_default()
}

/// The environment variable that sets `key` (`http.tls.clientcas[0]` ->
/// `REGISTRY_HTTP_TLS_CLIENTCAS_0`).
pub(crate) fn env_name(key: &str) -> String {
    let mut name = String::from("REGISTRY");
    for part in key.split(['.', '[']) {
        name.push('_');
        name.push_str(&part.trim_end_matches(']').to_uppercase());
    }
    name
}

/// Rewrites serde's wording ("invalid type: string \"yes\", expected a boolean") into the
/// configuration's ("expected a boolean (true or false), got \"yes\"").
pub(crate) fn describe(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(index) = rest.rfind(", expected ")
        {
            let got = &rest[..index];
            let expected = &rest[index + ", expected ".len()..];
            return format!(
                "expected {}, got {}",
                describe_expected(expected),
                describe_got(got)
            );
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        let expected = expected
            .trim_start_matches("one of ")
            .replace('`', "")
            .replace(" or ", ", ");
        let got = got.trim_matches('`');
        return format!("expected one of {expected}, got {got:?}");
    }
    if let Some(field) = message.strip_prefix("duplicate field ") {
        return format!(
            "{} is set twice (once under an older name); keep one",
            field.trim_matches('`')
        );
    }
    message.to_owned()
}

fn describe_expected(expected: &str) -> String {
    match expected {
        "a boolean" => "a boolean (true or false)".to_owned(),
        "a sequence" => "a list".to_owned(),
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "a map" => "a map of keys".to_owned(),
        other if other.starts_with("struct ") => "a map of keys".to_owned(),
        other => other.to_owned(),
    }
}

fn describe_got(got: &str) -> String {
    if let Some(text) = got.strip_prefix("string ") {
        return text.to_owned();
    }
    for prefix in ["integer ", "floating point ", "boolean "] {
        if let Some(value) = got.strip_prefix(prefix) {
            return value.trim_matches('`').to_owned();
        }
    }
    match got {
        "map" => "a map".to_owned(),
        "sequence" => "a list".to_owned(),
        "unit value" | "null" => "nothing".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_type_errors_read_as_expected_then_got() {
        assert_eq!(
            describe("invalid type: string \"maybe\", expected a boolean"),
            "expected a boolean (true or false), got \"maybe\""
        );
        assert_eq!(
            describe("invalid type: floating point `1.5`, expected u64"),
            "expected a whole number (0 or more), got 1.5"
        );
        assert_eq!(
            describe("invalid type: map, expected a sequence"),
            "expected a list, got a map"
        );
        assert_eq!(
            describe("invalid type: boolean `true`, expected struct DeleteConfig"),
            "expected a map of keys, got true"
        );
        assert_eq!(
            describe(
                "unknown variant `tls1.4`, expected one of `tls1.0`, `tls1.1`, `tls1.2`, `tls1.3`"
            ),
            "expected one of tls1.0, tls1.1, tls1.2, tls1.3, got \"tls1.4\""
        );
        assert_eq!(
            describe("unknown variant `udp`, expected `tcp` or `unix`"),
            "expected one of tcp, unix, got \"udp\""
        );
    }

    #[test]
    fn env_names_follow_the_key_path() {
        assert_eq!(
            env_name("storage.delete.enabled"),
            "REGISTRY_STORAGE_DELETE_ENABLED"
        );
        assert_eq!(
            env_name("http.tls.clientcas[0]"),
            "REGISTRY_HTTP_TLS_CLIENTCAS_0"
        );
    }

    #[test]
    fn io_errors_drop_the_errno() {
        let error = ConfigError::Read {
            path: PathBuf::from("/x.yml"),
            error: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(
            error.to_string(),
            "cannot read config file /x.yml: entity not found"
        );
        let error = ConfigError::Read {
            path: PathBuf::from("/x.yml"),
            error: std::io::Error::from_raw_os_error(2),
        };
        assert_eq!(
            error.to_string(),
            "cannot read config file /x.yml: No such file or directory"
        );
    }
}
