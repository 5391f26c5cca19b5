//! `registryd config check`: validates a configuration the way `serve` would and prints the
//! effective settings with secrets redacted.

use std::path::Path;

use registry::Registry;
use registry::config::Config;

/// Loads the configuration, checks that it can be served (storage, TLS files, password file),
/// and prints the effective configuration as YAML, secrets replaced by `<redacted>`.
pub(crate) fn run(config_path: Option<&Path>) -> Result<(), String> {
    let loaded = Config::load(config_path).map_err(|error| error.to_string())?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    Registry::from_config(&loaded.config).map_err(|error| error.to_string())?;
    let yaml = serde_saphyr::to_string(&loaded.config.redacted())
        .map_err(|error| format!("cannot print the configuration: {error}"))?;
    match config_path {
        Some(path) => eprintln!("{}: valid", path.display()),
        None => eprintln!("built-in defaults: valid"),
    }
    print!("{yaml}");
    if !yaml.ends_with('\n') {
        println!();
    }
    Ok(())
}
