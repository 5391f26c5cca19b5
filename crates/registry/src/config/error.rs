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

#[cfg(test)]
mod tests {
    use super::*;

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
