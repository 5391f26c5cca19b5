//! `registryd config check`: validates a configuration the way `serve` would and prints the
//! effective settings with secrets redacted.

use std::path::Path;

use registry::config::Config;

/// Loads the configuration, prints the absolute path of every file and directory it names, runs
/// every check `serve` runs before listening (listen addresses, storage settings, TLS files,
/// password file; see [`registry::check_config`]) without binding a socket or creating the
/// storage directory, and prints the effective configuration as YAML, secrets replaced by
/// `<redacted>`.
///
/// Warnings (unknown keys with the key they most likely meant, keys registryd does not act on)
/// go to stderr. With `strict`, any warning fails the check; without it, the check passes and
/// says that `--strict` would not.
pub(crate) fn run(config_path: Option<&Path>, strict: bool) -> Result<(), String> {
    let loaded = Config::load(config_path).map_err(|error| error.to_string())?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    // Before the checks, so that a file that cannot be read is shown where it was looked for.
    print_paths(&loaded.config);
    crate::listen_addresses(&loaded.config)?;
    registry::check_config(&loaded.config).map_err(|error| error.to_string())?;
    let warnings = match loaded.warnings.len() {
        0 => String::new(),
        1 => " with 1 warning".to_owned(),
        n => format!(" with {n} warnings"),
    };
    if strict && !warnings.is_empty() {
        return Err(format!("valid{warnings}, which --strict does not allow"));
    }
    let yaml = serde_saphyr::to_string(&loaded.config.redacted())
        .map_err(|error| format!("cannot print the configuration: {error}"))?;
    let source = crate::configuration_source(config_path, &loaded.from_env);
    if warnings.is_empty() {
        eprintln!("{source}: valid");
    } else {
        eprintln!("{source}: valid{warnings} (config check --strict would fail)");
    }
    print!("{yaml}");
    if !yaml.ends_with('\n') {
        println!();
    }
    Ok(())
}

/// Prints each file and directory the configuration names as serving will resolve it: a
/// relative path against the working directory, as in registry:2.
fn print_paths(config: &Config) {
    let paths = config.named_paths();
    if paths.is_empty() {
        return;
    }
    match std::env::current_dir() {
        Ok(dir) => eprintln!(
            "paths (a relative one resolves against the working directory, {}, as in registry:2):",
            dir.display()
        ),
        Err(error) => eprintln!("paths (the working directory cannot be read: {error}):"),
    }
    for (key, written) in paths {
        match std::path::absolute(written) {
            Ok(resolved) if resolved == written => eprintln!("  {key}: {}", resolved.display()),
            Ok(resolved) => eprintln!(
                "  {key}: {} (written {})",
                resolved.display(),
                written.display()
            ),
            Err(error) => eprintln!("  {key}: {} ({error})", written.display()),
        }
    }
}
