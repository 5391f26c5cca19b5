//! `registryd`: the registry server. A thin binary over the `registry` crate: command line,
//! logging, signals and exit codes.
//!
//! Each subcommand is a variant of [`Command`] and a function returning the process's
//! [`ExitCode`]; `main` only dispatches.

mod cert;
mod config_check;
mod garbage_collect;
mod health;
mod htpasswd;
mod logging;
mod run_as;
mod systemd;
mod verify;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use registry::Registry;
use registry::config::{Config, EnvOverride, LoadedConfig, StorageDriverConfig};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// An OCI container registry, a drop-in replacement for CNCF Distribution (registry:2).
#[derive(Debug, Parser)]
#[command(
    name = "registryd",
    version,
    about,
    args_conflicts_with_subcommands = true,
    after_help = format!("{CONFIGURATION}\n\n{SIGNALS}\n\n{QUICK_START}\n\n{DOCS}")
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The configuration file (registry:2's config.yml format); same as `registryd serve CONFIG`.
    config: Option<PathBuf>,
}

/// In `registryd --help` and `registryd serve --help`: which configuration is read, as
/// [`config_path`] and `Config::load` do.
const CONFIGURATION: &str = "\
Configuration:
  registryd [serve] CONFIG reads the file CONFIG (registry:2's config.yml); without it,
  $REGISTRY_CONFIGURATION_PATH; without either, the built-in defaults (0.0.0.0:5000, filesystem
  storage in ./data). No default path is read: the container image passes
  /etc/docker/registry/config.yml.
  REGISTRY_<SECTION>_<KEY> variables override the file's settings, as with registry:2:
  REGISTRY_HTTP_ADDR=:5001, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry,
  REGISTRY_LOG_LEVEL=debug. `registryd config check` prints the settings they add up to.
  RUST_LOG adds log filters, for dependencies' lines (RUST_LOG=h2=debug).";

/// In `registryd --help` and `registryd serve --help`: the signals [`serve`] handles.
const SIGNALS: &str = "\
Signals, while serving:
  SIGHUP           reload the TLS certificate, key and client CAs, and read-only mode
                   (storage.maintenance.readonly.enabled); other settings need a restart
  SIGTERM, SIGINT  stop accepting connections and let requests in flight finish (at most
                   http.draintimeout, 20s by default); a second one exits at once";

/// The end of `registryd --help`: the first commands a newcomer needs.
const QUICK_START: &str = "\
Quick start:
  registryd                              serve on :5000, storing images in ./data
  docker push localhost:5000/demo/app:1  push to it (plain HTTP is fine on localhost)
  registryd serve /etc/docker/registry/config.yml
                                         serve with a registry:2 configuration file
  REGISTRY_HTTP_ADDR=:5001 registryd     any setting as REGISTRY_<SECTION>_<KEY>, as registry:2
  registryd cert --host registry.example.com --out certs
                                         a CA and a certificate, for HTTPS
  registryd htpasswd alice >> htpasswd   a user, for REGISTRY_AUTH=htpasswd";

/// Where the documentation is.
const DOCS: &str = concat!(
    "Docs: docs/configuration.md, docs/security.md, docs/deployment.md, docs/operations.md in the\n\
     source tree (",
    env!("CARGO_PKG_REPOSITORY"),
    "); `registryd man` prints the manual page."
);

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the registry (the default).
    #[command(after_help = format!("{CONFIGURATION}\n\n{SIGNALS}\n\n{DOCS}"))]
    Serve {
        /// The configuration file; else $REGISTRY_CONFIGURATION_PATH; else the built-in default
        /// (0.0.0.0:5000, filesystem storage in ./data).
        config: Option<PathBuf>,
        /// Started as root, serve as this user and group instead (numeric, `65532:65532`), where
        /// the data directory and the files the configuration names allow it: an empty data
        /// directory is given to them, one owned by another user is served as its owner, and data
        /// or keys only root may read keep registryd root (logged). Also $REGISTRYD_RUN_AS, which
        /// the container image sets.
        #[arg(long, value_name = "UID:GID")]
        run_as: Option<run_as::RunAs>,
    },
    /// Create a private CA and a server certificate signed by it, for serving HTTPS.
    ///
    /// Writes ca.crt, ca.key, server.crt (the server certificate alone) and server.key to DIR,
    /// then prints how to configure registryd and make Docker and the system trust the CA.
    /// `--renew` reissues only server.crt and server.key from the CA already in DIR.
    Cert(cert::CertArgs),
    /// Print an htpasswd line with a bcrypt hash for USER, replacing `htpasswd -Bbn`.
    ///
    /// Without PASSWORD, asks for it twice without echo on a terminal, or reads the first line
    /// of standard input (`echo "$PASSWORD" | registryd htpasswd alice`).
    Htpasswd(htpasswd::HtpasswdArgs),
    /// Work with the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check the store: re-hash every blob and check every link.
    ///
    /// Prints each problem by its storage path. Safe while registryd serves the same store.
    /// Exits 0 when the store is clean, 1 when anything was wrong (even if repaired), 2 when it
    /// could not be verified.
    Verify(verify::VerifyArgs),
    /// Delete what no tag reaches, as registry:2's `garbage-collect` does.
    ///
    /// Prints what it marks and deletes. Safe while registryd serves the same store: nothing
    /// linked within the grace period is deleted, and pushes running meanwhile keep what they
    /// were told is stored.
    GarbageCollect(garbage_collect::GcArgs),
    /// Ask a running registryd whether it is healthy (exit 0) or not (exit 1).
    ///
    /// For a container's HEALTHCHECK: asks the registryd serving the configuration.
    ///
    /// Sends GET /v2/ to http.addr (over TLS when http.tls is set; 200 and 401 are healthy), or
    /// GET /debug/health to http.debug.addr when the debug server is on.
    Health(health::HealthArgs),
    /// Print a shell completion script for registryd.
    ///
    /// bash: `registryd completions bash > /etc/bash_completion.d/registryd`; zsh: into a
    /// directory of `$fpath` as `_registryd`; fish: `~/.config/fish/completions/registryd.fish`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page, registryd(1), in roff.
    ///
    /// `registryd man > /usr/local/share/man/man1/registryd.1`, then `man registryd`.
    Man,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration as `serve` would (including the files it names) and print the
    /// effective settings, secrets redacted.
    ///
    /// Runs every check `serve` runs before it listens (the listen addresses, TLS files, the
    /// password file, storage), without binding a socket. Warnings (unknown keys, keys registryd
    /// does not act on) are printed; with --strict they make the check fail.
    Check {
        /// The configuration file; else $REGISTRY_CONFIGURATION_PATH; else the built-in default.
        config: Option<PathBuf>,
        /// Fail (exit 1) when loading warns, for instance about an unknown key.
        #[arg(long)]
        strict: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve { config, run_as }) => serve_command(config, run_as),
        None => serve_command(cli.config, None),
        Some(Command::Cert(args)) => report("cert", cert::run(&args)),
        Some(Command::Htpasswd(args)) => report("htpasswd", htpasswd::run(args)),
        Some(Command::Config(ConfigCommand::Check { config, strict })) => report(
            "config check",
            config_check::run(config_path(config).as_deref(), strict),
        ),
        Some(Command::Verify(args)) => verify::run(args),
        Some(Command::GarbageCollect(args)) => {
            report("garbage-collect", garbage_collect::run(args))
        }
        Some(Command::Health(args)) => {
            let config = config_path(args.config.clone());
            report("health", health::run(&args, config))
        }
        Some(Command::Completions { shell }) => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "registryd", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Some(Command::Man) => report("man", manual_page()),
    }
}

/// Writes registryd(1) to standard output: its usage, options and subcommands (each one's own
/// options are in `registryd help SUBCOMMAND`).
fn manual_page() -> Result<(), String> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|error| error.to_string())?;
    std::io::Write::write_all(&mut std::io::stdout(), &page).map_err(|error| error.to_string())
}

/// The exit code for a subcommand's outcome, printing its error.
fn report(command: &str, outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("registryd {command}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration file to read: the argument, else `REGISTRY_CONFIGURATION_PATH` (as
/// registry:2), else none (the built-in defaults).
fn config_path(argument: Option<PathBuf>) -> Option<PathBuf> {
    argument.or_else(|| std::env::var_os("REGISTRY_CONFIGURATION_PATH").map(PathBuf::from))
}

/// `REGISTRYD_RUN_AS` (`UID:GID`), when set and not empty.
fn run_as_from_env() -> Result<Option<run_as::RunAs>, String> {
    match std::env::var("REGISTRYD_RUN_AS") {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .map(Some)
            .map_err(|error| format!("REGISTRYD_RUN_AS: {error}")),
        _ => Ok(None),
    }
}

/// The content of the store the configuration at `config` names, and that configuration, for a
/// command that works on a store directly (`command` is its name, for messages): a store that
/// serving would use, never one made up by a mistyped path.
fn stored_content(
    config: Option<PathBuf>,
    command: &str,
) -> Result<(registry::content::ContentStore, Config), String> {
    let loaded = Config::load(config_path(config).as_deref()).map_err(|error| error.to_string())?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    match &loaded.config.storage.driver {
        StorageDriverConfig::InMemory => {
            return Err(format!(
                "config key storage: an inmemory store lives only inside the process serving \
                 it; there is nothing to {command}"
            ));
        }
        // Checked here because building the driver would create the directory: a mistyped path
        // must not pass for an empty store.
        StorageDriverConfig::Filesystem(filesystem) if !filesystem.rootdirectory.is_dir() => {
            return Err(format!(
                "config key storage.filesystem.rootdirectory: {} is not a directory; point it at \
                 the registry's data",
                filesystem.rootdirectory.display()
            ));
        }
        StorageDriverConfig::Filesystem(_) | StorageDriverConfig::S3(_) => {}
    }
    let content =
        registry::content_store_from_config(&loaded.config).map_err(|error| error.to_string())?;
    Ok((content, loaded.config))
}

/// `registryd [serve] [CONFIG]`.
fn serve_command(config: Option<PathBuf>, run_as: Option<run_as::RunAs>) -> ExitCode {
    let config_path = config_path(config);
    let run_as = match run_as.map_or_else(run_as_from_env, |run_as| Ok(Some(run_as))) {
        Ok(run_as) => run_as,
        Err(message) => {
            eprintln!("registryd: {message}");
            return ExitCode::from(2);
        }
    };

    let loaded = match Config::load(config_path.as_deref()) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("registryd: {error}");
            return ExitCode::from(2);
        }
    };
    logging::init(&loaded.config.log);
    if let Some(run_as) = run_as
        && let Err(message) = run_as::drop_root(&loaded.config, config_path.as_deref(), run_as)
    {
        tracing::error!("{message}");
        eprintln!("registryd: {message}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("registryd: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(loaded, config_path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("registryd: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(loaded: LoadedConfig, config_path: Option<PathBuf>) -> Result<(), String> {
    let LoadedConfig {
        config,
        warnings,
        from_env,
    } = loaded;
    tracing::info!(
        "configuration: {}",
        configuration_source(config_path.as_deref(), &from_env)
    );
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    // What the file and the REGISTRY_* variables add up to, for `log.level: debug`.
    if tracing::enabled!(tracing::Level::DEBUG) {
        match serde_json::to_string(&config.redacted()) {
            Ok(effective) => tracing::debug!(config = %effective, "effective configuration"),
            Err(error) => tracing::debug!(%error, "cannot show the effective configuration"),
        }
    }
    let Prepared {
        registry,
        addr,
        debug_addr,
    } = prepare(&config)?;
    // Installed before listening: from then on SIGHUP reloads instead of ending the process.
    match signal(SignalKind::hangup()) {
        Ok(hangups) => {
            tokio::spawn(reload_on_hangup(
                registry.clone(),
                config_path.clone(),
                hangups,
            ));
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; the configuration cannot be reloaded")
        }
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| format!("config key http.addr: cannot listen on {addr}: {error}"))?;
    // The debug server (metrics, health, readiness) runs until the registry has stopped.
    let (stop_debug, debug_stopped) = tokio::sync::oneshot::channel::<()>();
    if let (Some(debug), Some(addr)) = (&config.http.debug, debug_addr) {
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            format!("config key http.debug.addr: cannot listen on {addr}: {error}")
        })?;
        let local = listener.local_addr().unwrap_or(addr);
        let metrics = debug
            .prometheus
            .enabled
            .then_some(debug.prometheus.path.as_str());
        tracing::info!(
            metrics,
            health = registry::HEALTH_PATH,
            ready = registry::READY_PATH,
            "debug server listening on http://{local}"
        );
        let registry = registry.clone();
        tokio::spawn(async move {
            registry
                .serve_debug(listener, async {
                    let _ = debug_stopped.await;
                })
                .await;
        });
    }
    let storage = match &config.storage.driver {
        StorageDriverConfig::Filesystem(filesystem) => {
            let root = &filesystem.rootdirectory;
            let shown = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
            format!("filesystem at {}", shown.display())
        }
        StorageDriverConfig::InMemory => "in memory (lost on exit)".to_owned(),
        StorageDriverConfig::S3(s3) => {
            let endpoint = s3.regionendpoint.as_deref().unwrap_or("Amazon S3");
            match s3.rootdirectory.trim_matches('/') {
                "" => format!("s3 bucket {} at {endpoint}", s3.bucket),
                root => format!("s3 bucket {} under {root}/ at {endpoint}", s3.bucket),
            }
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    let scheme = if registry.tls().is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        %storage,
        delete_enabled = config.storage.delete.enabled,
        "registryd listening on {scheme}://{local}"
    );
    systemd::notify("READY=1");
    let served = registry
        .serve(listener, async {
            shutdown_signal().await;
            systemd::notify("STOPPING=1");
        })
        .await;
    let _ = stop_debug.send(());
    served.map_err(|error| error.to_string())?;
    tracing::info!("registryd stopped");
    Ok(())
}

/// Where a configuration came from, for the start-up log and `config check`: the file or the
/// built-in defaults, and each key a `REGISTRY_*` variable set, named with its variable and
/// never with its value (which may be a secret).
fn configuration_source(config_path: Option<&Path>, from_env: &[EnvOverride]) -> String {
    let base = match config_path {
        Some(path) => format!("config file {}", path.display()),
        None => "no configuration file, so the built-in defaults".to_owned(),
    };
    if from_env.is_empty() {
        return base;
    }
    let keys: Vec<String> = from_env.iter().map(ToString::to_string).collect();
    format!("{base}, with {} from the environment", keys.join(", "))
}

/// What `serve` builds from a configuration before it listens.
struct Prepared {
    /// The registry: storage, TLS (files read and parsed), authentication (password file or
    /// token keys read), notifications.
    registry: Registry,
    /// Where to listen (`http.addr`), parsed but not bound.
    addr: SocketAddr,
    /// Where the debug server listens (`http.debug.addr`), parsed but not bound.
    debug_addr: Option<SocketAddr>,
}

/// Every check `serve` makes of a configuration before it binds a socket. `config check` runs
/// the same checks without building the storage driver's side effects ([`listen_addresses`]
/// and [`registry::check_config`]), so a configuration it passes is one `serve` starts with
/// (unless a port is taken, the storage directory cannot be created, or a file changes in
/// between).
fn prepare(config: &Config) -> Result<Prepared, String> {
    let registry = Registry::from_config(config).map_err(|error| error.to_string())?;
    let (addr, debug_addr) = listen_addresses(config)?;
    Ok(Prepared {
        registry,
        addr,
        debug_addr,
    })
}

/// `http.addr` and, when the debug server is on, `http.debug.addr`, parsed as serving binds them.
fn listen_addresses(config: &Config) -> Result<(SocketAddr, Option<SocketAddr>), String> {
    let addr = listen_address(&config.http.addr)?;
    let debug_addr = config
        .http
        .debug
        .as_ref()
        .map(|debug| registry::config::listen_address("http.debug.addr", &debug.addr))
        .transpose()?;
    Ok((addr, debug_addr))
}

/// registry:2's `http.addr`: `host:port`, or `:port` for every interface.
fn listen_address(addr: &str) -> Result<SocketAddr, String> {
    registry::config::listen_address("http.addr", addr)
}

/// On every SIGHUP, reads the configuration again and switches read-only mode
/// (`storage.maintenance.readonly.enabled`) as it now says, and reloads the TLS certificate, key
/// and client CAs. A failed reload is logged and changes nothing. Other settings need a restart.
async fn reload_on_hangup(registry: Registry, config_path: Option<PathBuf>, mut hangups: Signal) {
    while hangups.recv().await.is_some() {
        let path = config_path.clone();
        match tokio::task::spawn_blocking(move || Config::load(path.as_deref())).await {
            Ok(Ok(loaded)) => {
                let read_only = loaded.config.storage.maintenance.readonly.enabled;
                if read_only != registry.is_read_only() {
                    registry.set_read_only(read_only);
                    if read_only {
                        tracing::info!(
                            "SIGHUP received: read-only mode on; pushes and deletes are refused"
                        );
                    } else {
                        tracing::info!("SIGHUP received: read-only mode off; pushes accepted");
                    }
                }
            }
            Ok(Err(error)) => tracing::error!(
                "SIGHUP received: the configuration does not load, read-only mode unchanged: \
                 {error}"
            ),
            Err(error) => {
                tracing::error!(%error, "SIGHUP received: reading the configuration did not finish")
            }
        }
        let reloading = registry.clone();
        match tokio::task::spawn_blocking(move || reloading.reload_tls()).await {
            Ok(Ok(true)) => tracing::info!(
                "SIGHUP received: TLS certificate and key reloaded; new connections use them"
            ),
            Ok(Ok(false)) => {
                tracing::info!("SIGHUP received: nothing to reload (TLS is not configured)");
            }
            Ok(Err(error)) => tracing::error!(
                "SIGHUP received: TLS reload failed, still serving the previous certificate: \
                 config key {error}"
            ),
            Err(error) => tracing::error!(%error, "SIGHUP received: TLS reload did not finish"),
        }
    }
}

/// Completes on the first SIGINT or SIGTERM, which starts a graceful shutdown; from then on a
/// second one ends the process at once, as an operator pressing Ctrl-C twice expects. Uploads cut
/// that way are resumable from their true size once the next registryd is up.
async fn shutdown_signal() {
    let received = stop_signal().await;
    tracing::info!(
        "{received} received, shutting down: requests in flight may finish (send it again to \
         exit at once)"
    );
    tokio::spawn(async {
        let again = stop_signal().await;
        tracing::warn!("{again} received again: exiting without waiting for requests");
        std::process::exit(1);
    });
}

/// Completes on SIGINT or SIGTERM, naming it.
async fn stop_signal() -> &'static str {
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => Some(stream),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM");
            None
        }
    };
    let terminated = async {
        match terminate.as_mut() {
            Some(stream) => {
                stream.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        () = terminated => "SIGTERM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_only_address_listens_everywhere() {
        assert_eq!(
            listen_address(":5000"),
            Ok("0.0.0.0:5000".parse().expect("addr"))
        );
        assert_eq!(
            listen_address("127.0.0.1:5001"),
            Ok("127.0.0.1:5001".parse().expect("addr"))
        );
        assert!(listen_address("nonsense").is_err());
    }
}
