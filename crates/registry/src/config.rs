//! Configuration: the registry:2 (CNCF Distribution) YAML file and its `REGISTRY_*` environment
//! overrides, read into typed settings.
//!
//! A registry:2 `config.yml` loads as it is. Sections registryd does not implement yet
//! (`redis`, `proxy`, `middleware`, ...) are accepted with a warning,
//! unknown keys are warnings that name their path, and a wrong value is an error that names its
//! key, where it came from and what to write instead:
//!
//! ```
//! use registry::config::{Config, StorageDriverConfig};
//!
//! let yaml = "
//! version: 0.1
//! storage:
//!   filesystem:
//!     rootdirectory: /var/lib/registry
//!   delete:
//!     enabled: true
//! http:
//!   addr: :5000
//! ";
//! let env = [("REGISTRY_HTTP_ADDR".to_owned(), ":5001".to_owned())];
//! let loaded = Config::from_yaml(yaml, env)?;
//! assert_eq!(loaded.config.http.addr, ":5001");
//! assert!(loaded.config.storage.delete.enabled);
//! assert!(matches!(loaded.config.storage.driver, StorageDriverConfig::Filesystem(_)));
//!
//! let error = Config::from_yaml("storage:\n  delete:\n    enabled: maybe\n", []).unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "config key storage.delete.enabled (line 3): expected a boolean (true or false), got \"maybe\""
//! );
//! # Ok::<(), registry::config::ConfigError>(())
//! ```
//!
//! One key is registryd's own: `auth.access`, the access rules beside the auth provider, read
//! into [`Config::access`] (see [`Config::access_rules`]).
//!
//! Every default lives in the `Default` impls below; `docs/configuration.md` lists them with
//! the differences from registry:2.
//!
//! This file holds the typed settings. The rest, by what it does:
//! - `schema`: every key and the kind of value it holds, as data;
//! - `tree` (YAML with positions), `env` (`REGISTRY_*` overrides), `convert` (registry:2's
//!   cross-key rules, and the tree as JSON of each key's kind) and `load` (the pipeline end to
//!   end, then the checks that span keys);
//! - `variants`: serde for the sections whose keys choose a variant (`storage`, `auth`);
//! - `suggestions`: "did you mean" for unknown keys; `redact`: [`Config::redacted`];
//! - `duration` (Go durations) and `error` ([`ConfigError`] and its wording).

mod convert;
mod duration;
mod env;
mod error;
mod load;
mod redact;
mod schema;
mod suggestions;
mod tree;
mod variants;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use registry_auth::AccessRules;
use registry_content::{
    DEFAULT_GRACE_PERIOD, GcOptions, IndexChildren, ManifestValidation, OsArchitecture,
    PatternError, RepositoryPattern, RetentionPolicy, TagPattern, UrlPatternError, UrlPolicy,
};
use serde::{Deserialize, Serialize};

pub use duration::{DurationError, format_duration, parse_duration};
pub use error::ConfigError;
pub use registry_auth::{AccessRule, RuleAction};
pub use schema::{key_paths, unimplemented_key_paths};

use duration::{serde_duration, serde_option_duration};
use load::load_document;

/// An address to listen on as registry:2 writes it (`http.addr`, `http.debug.addr`): `host:port`,
/// or `:port` for every interface. `key` names the setting in the error.
pub fn listen_address(key: &str, addr: &str) -> Result<std::net::SocketAddr, String> {
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    };
    if let Ok(address) = full.parse() {
        return Ok(address);
    }
    std::net::ToSocketAddrs::to_socket_addrs(&full)
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| {
            format!(
                "config key {key}: {addr:?} is not an address to listen on (write host:port or :port)"
            )
        })
}

/// The text that replaces secrets in [`Config::redacted`].
pub const REDACTED: &str = "<redacted>";

/// The whole configuration: the registry:2 file format, version 0.1.
///
/// Each field is the top-level key of the same name, except [`access`](Config::access), which is
/// read from and written back to `auth.access`. Keys left out take their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The configuration format's version. registry:2 knows only `0.1`, and so does registryd.
    pub version: String,
    /// Logging (`log`; the deprecated top-level `loglevel` is read into `log.level`).
    pub log: LogConfig,
    /// Where and how content is stored (`storage`).
    pub storage: StorageConfig,
    /// Who is asking: the authentication provider in `auth`; `None` lets everyone push and pull.
    pub auth: Option<AuthConfig>,
    /// What they may do: the access rules in `auth.access` (a registryd extension), checked as a
    /// union. Empty (the default) keeps registry:2's behaviour: any authenticated user may do
    /// everything. Rules need a provider in [`auth`](Config::auth); loading refuses them
    /// without one. [`Config::access_rules`] gives them to the access controller.
    pub access: Vec<AccessRule>,
    /// The HTTP server (`http`).
    pub http: HttpConfig,
    /// The `/v2/_catalog` endpoint (`catalog`).
    pub catalog: CatalogConfig,
    /// The tags list endpoint (`tags`).
    pub tags: TagsConfig,
    /// Pull-through cache settings (`proxy`).
    pub proxy: Option<ProxyConfig>,
    /// Webhooks that receive the registry's events (`notifications`).
    pub notifications: NotificationsConfig,
    /// registry:2's `redis` section, kept as written. Not implemented: loading warns.
    pub redis: Option<serde_json::Value>,
    /// Health checks (`health`).
    pub health: HealthConfig,
    /// What pushed manifests are checked for (`validation`).
    pub validation: ValidationConfig,
    /// registry:2's `compatibility` section, kept as written. Not implemented: loading warns.
    pub compatibility: Option<serde_json::Value>,
    /// registry:2's `middleware` section, kept as written. Not implemented: loading warns.
    pub middleware: Option<serde_json::Value>,
    /// registry:2's `reporting` section, kept as written. Not implemented: loading warns.
    pub reporting: Option<serde_json::Value>,
    /// registry:2's `policy` section, kept as written. Not implemented: loading warns.
    pub policy: Option<serde_json::Value>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: "0.1".to_owned(),
            log: LogConfig::default(),
            storage: StorageConfig::default(),
            auth: None,
            access: Vec::new(),
            http: HttpConfig::default(),
            catalog: CatalogConfig::default(),
            tags: TagsConfig::default(),
            proxy: None,
            notifications: NotificationsConfig::default(),
            redis: None,
            health: HealthConfig::default(),
            validation: ValidationConfig::default(),
            compatibility: None,
            middleware: None,
            reporting: None,
            policy: None,
        }
    }
}

/// A configuration and the warnings loading it produced (unknown keys, deprecated keys,
/// sections registryd does not implement, environment variables that set nothing). Each warning
/// is one sentence naming the key or variable.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: Config,
    /// One sentence each, in the order they were found.
    pub warnings: Vec<String>,
    /// The keys `REGISTRY_*` environment variables set, in the order they were applied. Names
    /// only: a value may be a secret.
    pub from_env: Vec<EnvOverride>,
}

/// A key an environment variable set. Holds no value, so it can be logged as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOverride {
    /// The variable, such as `REGISTRY_HTTP_ADDR`.
    pub variable: String,
    /// The key it set, such as `http.addr`.
    pub key: String,
}

impl fmt::Display for EnvOverride {
    /// `http.addr (REGISTRY_HTTP_ADDR)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.key, self.variable)
    }
}

/// Logging (`log`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// The least severe level logged (`log.level`, default `info`).
    pub level: LogLevel,
    /// The log line format (`log.formatter`, default `text`).
    pub formatter: LogFormatter,
    /// Fields added to every log line (`log.fields`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Access log settings (`log.accesslog`).
    pub accesslog: AccessLogConfig,
    /// Whether log lines name the function that logged them (`log.reportcaller`).
    pub reportcaller: bool,
    /// registry:2's log hooks (mail on error), kept as written. Not implemented: loading warns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<serde_json::Value>,
}

/// A log level. Read without regard to case, as registry:2 does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Errors, warnings and information (the default).
    #[default]
    Info,
    /// Everything.
    Debug,
}

impl LogLevel {
    /// The level as written in the configuration: `error`, `warn`, `info` or `debug`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The log line format (`log.formatter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatter {
    /// `key=value` text (the default).
    #[default]
    Text,
    /// One JSON object a line.
    Json,
    /// Logstash's JSON layout.
    Logstash,
}

/// Access log settings (`log.accesslog`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AccessLogConfig {
    /// Turns the access log off.
    pub disabled: bool,
}

/// Storage (`storage`): exactly one driver, plus settings that apply to any driver.
///
/// When no driver is named, the filesystem driver with its defaults is used (registry:2 refuses
/// to start instead).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StorageConfig {
    /// The storage driver (`storage.filesystem` or `storage.inmemory`).
    pub driver: StorageDriverConfig,
    /// Deleting manifests and blobs by digest (`storage.delete`).
    pub delete: DeleteConfig,
    /// Redirects to the storage backend (`storage.redirect`).
    pub redirect: RedirectConfig,
    /// Caching of blob metadata (`storage.cache`): how many blob sizes are kept in memory.
    pub cache: CacheConfig,
    /// Background maintenance and read-only mode (`storage.maintenance`).
    pub maintenance: MaintenanceConfig,
    /// Tag lookup settings (`storage.tag`).
    pub tag: TagConfig,
}

/// The storage driver and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageDriverConfig {
    /// Files under a local directory (`storage.filesystem`), in registry:2's layout.
    Filesystem(FilesystemConfig),
    /// Memory only, lost on exit (`storage.inmemory`); for tests.
    InMemory,
    /// Objects in an S3 bucket or an S3-compatible service (`storage.s3`), in registry:2's
    /// layout.
    S3(S3Config),
}

impl Default for StorageDriverConfig {
    fn default() -> Self {
        StorageDriverConfig::Filesystem(FilesystemConfig::default())
    }
}

/// The filesystem driver's parameters (`storage.filesystem`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FilesystemConfig {
    /// The directory everything is stored under (default `./data`; registry:2's is
    /// `/var/lib/registry`).
    pub rootdirectory: PathBuf,
    /// registry:2's bound on file operations run at once (default 100). Read, not acted on yet:
    /// loading warns, and printing leaves the default out.
    #[serde(skip_serializing_if = "is_default_maxthreads")]
    pub maxthreads: u64,
    /// registryd only: writes large uploads with direct I/O, bypassing the page cache (default
    /// off). Uploads take less CPU; a blob just pushed is read from disk on its first pull.
    pub directio: bool,
}

impl Default for FilesystemConfig {
    fn default() -> Self {
        FilesystemConfig {
            rootdirectory: PathBuf::from("./data"),
            maxthreads: 100,
            directio: false,
        }
    }
}

/// The S3 driver's parameters (`storage.s3`): registry:2's keys and defaults.
///
/// Without `accesskey` and `secretkey`, credentials come from the environment as AWS's tools find
/// them (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, a web identity token, the ECS container
/// endpoint, the EC2 instance profile). registry:2's `skipverify`, `storageclass`, `objectacl`,
/// `redirectendpoint`, `useragent`, `usedualstack`, `accelerate`, `usefipsendpoint`,
/// `multipartcopy*` and `loglevel` are read and dropped with a warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Config {
    /// The access key; with `secretkey`, overrides the environment's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accesskey: Option<String>,
    /// The secret key. Shown as `<redacted>` when printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secretkey: Option<String>,
    /// A session token for temporary credentials. Shown as `<redacted>` when printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessiontoken: Option<String>,
    /// The bucket's region, e.g. `us-east-1` (required).
    pub region: String,
    /// The endpoint of an S3-compatible service (`http://minio:9000`); none for Amazon S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regionendpoint: Option<String>,
    /// The bucket, which must exist (required).
    pub bucket: String,
    /// The prefix of every key, so that several registries can share a bucket (default none).
    #[serde(default)]
    pub rootdirectory: String,
    /// HTTPS to the endpoint (default true).
    #[serde(default = "default_true")]
    pub secure: bool,
    /// Version 4 signatures (default true); false, registry:2 2.x's Version 2, is refused.
    #[serde(default = "default_true")]
    pub v4auth: bool,
    /// The part size of uploads, at least 5 MiB (default 10 MiB): each upload in progress holds
    /// up to one part in memory.
    #[serde(default = "default_s3_chunk_size")]
    pub chunksize: u64,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted style
    /// (`bucket.endpoint/key`); most S3-compatible services need it (default false).
    #[serde(default)]
    pub forcepathstyle: bool,
    /// Server-side encryption: SSE-KMS with `keyid` when it is set, else SSE-S3 (default false).
    #[serde(default)]
    pub encrypt: bool,
    /// The KMS key for `encrypt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
}

fn is_default_maxthreads(maxthreads: &u64) -> bool {
    *maxthreads == FilesystemConfig::default().maxthreads
}

/// Whether `value` is its type's default; printing leaves such keys out when registryd does not
/// act on them, so a printed configuration does not look as if they were in effect.
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn default_true() -> bool {
    true
}

fn default_s3_chunk_size() -> u64 {
    10 << 20
}

/// Deleting by digest (`storage.delete`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeleteConfig {
    /// Allows `DELETE` of manifests and blobs (default off: such requests get 405).
    pub enabled: bool,
}

/// Redirects to the storage backend (`storage.redirect`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RedirectConfig {
    /// Serves blob content through the registry even when the driver could redirect clients to
    /// the backend.
    pub disable: bool,
}

/// Caching of blob metadata (`storage.cache`), as registry:2 configures it. registryd always
/// keeps the sizes of blobs it has served in memory (a digest's size never changes), as
/// registry:2 does with `blobdescriptor: inmemory`; `redis` warns and is served from memory too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheConfig {
    /// Which cache holds blob descriptors (`blobdescriptor`, formerly `layerinfo`); `None` when
    /// the section leaves it out.
    #[serde(alias = "layerinfo", skip_serializing_if = "Option::is_none")]
    pub blobdescriptor: Option<BlobDescriptorCache>,
    /// How many descriptors the in-memory cache holds (default 10000; 0 for no limit, which
    /// registryd caps at [`CacheConfig::UNLIMITED_ENTRIES`]).
    pub blobdescriptorsize: u64,
}

impl CacheConfig {
    /// What `blobdescriptorsize: 0` ("no limit" in registry:2) keeps: a million sizes, about
    /// 128 MB.
    pub const UNLIMITED_ENTRIES: usize = 1_000_000;

    /// How many blob sizes the content store keeps.
    pub fn blob_size_entries(&self) -> usize {
        match self.blobdescriptorsize {
            0 => CacheConfig::UNLIMITED_ENTRIES,
            entries => usize::try_from(entries)
                .unwrap_or(usize::MAX)
                .min(CacheConfig::UNLIMITED_ENTRIES),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            blobdescriptor: None,
            blobdescriptorsize: 10_000,
        }
    }
}

/// Where blob descriptors are cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobDescriptorCache {
    /// In this process's memory.
    #[serde(rename = "inmemory")]
    InMemory,
    /// In the Redis configured under `redis`.
    #[serde(rename = "redis")]
    Redis,
}

/// Background maintenance (`storage.maintenance`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MaintenanceConfig {
    /// Removal of abandoned uploads (`uploadpurging`).
    pub uploadpurging: UploadPurgingConfig,
    /// Read-only mode (`readonly`).
    pub readonly: ReadOnlyConfig,
    /// Garbage collection while serving, and retention policies (`gc`, registryd only).
    pub gc: GcConfig,
}

/// Removal of abandoned uploads (`storage.maintenance.uploadpurging`). Keys left out keep their
/// defaults, as in registry:2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UploadPurgingConfig {
    /// Whether abandoned uploads are removed (default true).
    pub enabled: bool,
    /// Uploads older than this are removed (default 168h).
    #[serde(with = "serde_duration")]
    pub age: Duration,
    /// How often to look for them (default 24h).
    #[serde(with = "serde_duration")]
    pub interval: Duration,
    /// Only log what would be removed (default false).
    pub dryrun: bool,
}

impl Default for UploadPurgingConfig {
    fn default() -> Self {
        UploadPurgingConfig {
            enabled: true,
            age: Duration::from_secs(168 * 3600),
            interval: Duration::from_secs(24 * 3600),
            dryrun: false,
        }
    }
}

/// Read-only mode (`storage.maintenance.readonly`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReadOnlyConfig {
    /// Refuses every write (pushes, deletes), for example while garbage collection runs.
    pub enabled: bool,
}

/// Garbage collection inside the server (`storage.maintenance.gc`, registryd only; registry:2
/// collects only offline). Off by default: nothing is deleted unasked. The retention policies
/// also apply to `registryd garbage-collect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GcConfig {
    /// Whether the server collects on a schedule (default false).
    pub enabled: bool,
    /// How often (default 24h).
    #[serde(with = "serde_duration")]
    pub interval: Duration,
    /// Nothing pushed, linked or mounted within this long is collected (default 1h).
    #[serde(with = "serde_duration")]
    pub graceperiod: Duration,
    /// Also delete manifests no tag reaches, as `garbage-collect --delete-untagged` (default
    /// false).
    pub deleteuntagged: bool,
    /// Only log what would be deleted (default false).
    pub dryrun: bool,
    /// Retention policies, in order: the first whose `repositories` match a repository is its
    /// policy.
    pub retention: Vec<RetentionConfig>,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            enabled: false,
            interval: Duration::from_secs(24 * 3600),
            graceperiod: DEFAULT_GRACE_PERIOD,
            deleteuntagged: false,
            dryrun: false,
            retention: Vec::new(),
        }
    }
}

/// One retention policy (`storage.maintenance.gc.retention[N]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionConfig {
    /// Repository patterns: `*` within one path component, `**` across them.
    pub repositories: Vec<String>,
    /// Keep this many of the most recently pushed tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepnewest: Option<usize>,
    /// Keep tags matching any of these regular expressions (each matches the whole tag).
    pub keeptags: Vec<String>,
    /// Delete manifests no kept tag reaches once they are older than this.
    #[serde(
        with = "serde_option_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub untaggedolderthan: Option<Duration>,
}

impl GcConfig {
    /// The options of a collection as configured; `dry_run` and `delete_untagged` are also set
    /// when the command line asks for them. Fails on a pattern that does not compile, naming
    /// its key.
    pub fn gc_options(&self) -> Result<GcOptions, (String, PatternError)> {
        let mut retention = Vec::with_capacity(self.retention.len());
        for (index, policy) in self.retention.iter().enumerate() {
            let key = |list: &str, at: usize| {
                format!("storage.maintenance.gc.retention[{index}].{list}[{at}]")
            };
            let repositories = policy
                .repositories
                .iter()
                .enumerate()
                .map(|(at, text)| {
                    RepositoryPattern::new(text).map_err(|error| (key("repositories", at), error))
                })
                .collect::<Result<_, _>>()?;
            let keep_tags = policy
                .keeptags
                .iter()
                .enumerate()
                .map(|(at, text)| {
                    TagPattern::new(text).map_err(|error| (key("keeptags", at), error))
                })
                .collect::<Result<_, _>>()?;
            retention.push(RetentionPolicy {
                repositories,
                keep_newest: policy.keepnewest,
                keep_tags,
                untagged_older_than: policy.untaggedolderthan,
            });
        }
        Ok(GcOptions {
            dry_run: self.dryrun,
            delete_untagged: self.deleteuntagged,
            grace_period: self.graceperiod,
            retention,
        })
    }
}

/// Tag lookup (`storage.tag`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TagConfig {
    /// registry:2's bound on tags read at once when looking for the tags of a manifest (0, the
    /// default, for the number of CPUs). Read, not acted on yet: loading warns.
    pub concurrencylimit: usize,
}

/// The authentication provider (`auth`): exactly one of these keys. The access rules written
/// beside it (`auth.access`) are read into [`Config::access`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthConfig {
    /// HTTP basic authentication against an Apache htpasswd file of bcrypt hashes.
    Htpasswd(HtpasswdConfig),
    /// Bearer tokens issued by a separate token service (JWT).
    Token(TokenConfig),
    /// Accepts any `Authorization` header; for development only.
    Silly(SillyConfig),
}

/// Basic authentication (`auth.htpasswd`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HtpasswdConfig {
    /// The realm in the `WWW-Authenticate` challenge.
    pub realm: String,
    /// The htpasswd file.
    pub path: PathBuf,
}

/// Token authentication (`auth.token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenConfig {
    /// The token service's URL, sent in the challenge.
    pub realm: String,
    /// The service name tokens must be issued for (their audience).
    pub service: String,
    /// The issuer tokens must name.
    pub issuer: String,
    /// Certificates whose keys sign tokens (this or `jwks` is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootcertbundle: Option<PathBuf>,
    /// A JSON Web Key Set file with the keys that sign tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<PathBuf>,
    /// registry:2's switch to derive the realm from the request's host. Read, not acted on yet:
    /// loading warns.
    #[serde(default, skip_serializing_if = "is_default")]
    pub autoredirect: bool,
    /// The path used with `autoredirect`. Read, not acted on yet: loading warns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoredirectpath: Option<String>,
    /// Accepted signing algorithms (`RS256`, `ES256`, `EdDSA`, ...); empty for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signingalgorithms: Vec<String>,
}

/// The development-only provider (`auth.silly`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SillyConfig {
    /// The realm in the challenge.
    pub realm: String,
    /// The service in the challenge.
    pub service: String,
}

/// The HTTP server (`http`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// The listening address (default `:5000`, every interface): `HOST:PORT` for TCP, a path
    /// for a Unix socket.
    pub addr: String,
    /// `tcp` (default) or `unix`.
    pub net: Net,
    /// The externally visible URL, used to build absolute URLs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A path the API is served under, with leading and trailing slashes (`/my/registry/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// registry:2's key that signs state handed to clients. registryd does not need one (upload
    /// state lives in storage, so any instance can continue any upload): read, not acted on,
    /// and loading warns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Returns relative URLs in `Location` headers.
    pub relativeurls: bool,
    /// How long to wait for connections to finish on shutdown; `None` for registry:2's
    /// behaviour of not waiting.
    #[serde(
        with = "serde_option_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub draintimeout: Option<Duration>,
    /// The most connections served at once (a registryd extension); further clients wait in the
    /// listen queue until one closes.
    pub maxconnections: usize,
    /// How long a request body may go without data before the request is ended (a registryd
    /// extension); an upload ended this way keeps what arrived and stays resumable.
    #[serde(with = "serde_duration")]
    pub bodyidletimeout: Duration,
    /// TLS; `None` for plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Headers added to every response: name -> values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// The debug server (metrics, health); `None` for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debug: Option<DebugConfig>,
    /// HTTP/2 over TLS.
    pub http2: Http2Config,
    /// HTTP/2 without TLS (h2c). Read, not acted on: clients that ask for h2c get it whatever
    /// this says, and loading warns.
    #[serde(skip_serializing_if = "is_default")]
    pub h2c: H2cConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: ":5000".to_owned(),
            net: Net::Tcp,
            host: None,
            prefix: None,
            secret: None,
            relativeurls: false,
            draintimeout: None,
            maxconnections: 4096,
            bodyidletimeout: Duration::from_secs(60),
            tls: None,
            headers: BTreeMap::new(),
            debug: None,
            http2: Http2Config::default(),
            h2c: H2cConfig::default(),
        }
    }
}

/// The kind of listening socket (`http.net`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    /// A TCP socket (the default).
    #[default]
    Tcp,
    /// A Unix domain socket; `addr` is its path.
    Unix,
}

/// TLS for the HTTP server (`http.tls`). A `tls` section without a certificate means plain HTTP,
/// as in registry:2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsConfig {
    /// The PEM certificate chain.
    pub certificate: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
    /// CA files for client certificates; empty for no client authentication.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clientcas: Vec<PathBuf>,
    /// How client certificates are checked when `clientcas` is set.
    #[serde(default)]
    pub clientauth: ClientAuth,
    /// The oldest TLS version accepted (default `tls1.2`).
    #[serde(default)]
    pub minimumtls: TlsVersion,
    /// Accepted cipher suites by their Go names (`TLS_AES_128_GCM_SHA256`, ...); empty for the
    /// defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ciphersuites: Vec<String>,
}

/// How client certificates are checked (`http.tls.clientauth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAuth {
    /// Asks for a certificate but accepts any, or none.
    RequestClientCert,
    /// Requires a certificate but does not verify it.
    RequireAnyClientCert,
    /// Verifies a certificate if one is given.
    VerifyClientCertIfGiven,
    /// Requires a certificate signed by one of `clientcas` (the default).
    #[default]
    RequireAndVerifyClientCert,
}

/// A TLS protocol version (`http.tls.minimumtls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.0.
    #[serde(rename = "tls1.0")]
    Tls10,
    /// TLS 1.1.
    #[serde(rename = "tls1.1")]
    Tls11,
    /// TLS 1.2 (the default).
    #[default]
    #[serde(rename = "tls1.2")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "tls1.3")]
    Tls13,
}

/// The debug server (`http.debug`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugConfig {
    /// Its listening address, `HOST:PORT`.
    pub addr: String,
    /// Prometheus metrics on it.
    #[serde(default)]
    pub prometheus: PrometheusConfig,
}

/// Prometheus metrics on the debug server (`http.debug.prometheus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrometheusConfig {
    /// Serves metrics.
    pub enabled: bool,
    /// Their path (default `/metrics`).
    pub path: String,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            enabled: false,
            path: "/metrics".to_owned(),
        }
    }
}

/// HTTP/2 over TLS (`http.http2`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Http2Config {
    /// Offers only HTTP/1.1.
    pub disabled: bool,
}

/// HTTP/2 without TLS (`http.h2c`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct H2cConfig {
    /// Accepts HTTP/2 cleartext connections.
    pub enabled: bool,
}

/// The catalog endpoint (`catalog`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CatalogConfig {
    /// The most repositories one `/v2/_catalog` response may list (default 1000).
    pub maxentries: usize,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig { maxentries: 1000 }
    }
}

/// The tags list endpoint (`tags`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TagsConfig {
    /// The most tags one tags list response may hold (default 1000).
    pub maxtags: usize,
}

impl Default for TagsConfig {
    fn default() -> Self {
        TagsConfig { maxtags: 1000 }
    }
}

/// Health checks (`health`). While one fails, `GET /v2/` answers 503 and `/debug/health` names
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// Checking the storage driver (`health.storagedriver`).
    pub storagedriver: StorageDriverHealthConfig,
    /// registry:2's file checks, kept as written. Not implemented: loading warns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file: Vec<serde_json::Value>,
    /// registry:2's HTTP checks, kept as written. Not implemented: loading warns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<serde_json::Value>,
    /// registry:2's TCP checks, kept as written. Not implemented: loading warns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tcp: Vec<serde_json::Value>,
}

/// Checking the storage driver (`health.storagedriver`): every `interval`, the root of the
/// storage is looked at; after `threshold` failures in a row the check fails, and it passes again
/// with the next success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageDriverHealthConfig {
    /// Whether the check runs (default false, as in registry:2).
    pub enabled: bool,
    /// How often (default 10s).
    #[serde(with = "serde_duration")]
    pub interval: Duration,
    /// Failures in a row before the check fails (default 3).
    pub threshold: u64,
}

impl Default for StorageDriverHealthConfig {
    fn default() -> Self {
        StorageDriverHealthConfig {
            enabled: false,
            interval: Duration::from_secs(10),
            threshold: 3,
        }
    }
}

/// Webhooks that receive the registry's events (`notifications`), as registry:2 configures
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationsConfig {
    /// What events carry (`notifications.events`).
    pub events: NotificationEventsConfig,
    /// The endpoints events are sent to, each with its own queue in the outbox.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointConfig>,
}

impl NotificationsConfig {
    /// Whether the section says nothing (no endpoint, no event setting).
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty() && self.events == NotificationEventsConfig::default()
    }
}

/// What events carry (`notifications.events`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationEventsConfig {
    /// Whether manifest events list the manifest's references (default false).
    pub includereferences: bool,
}

/// One endpoint (`notifications.endpoints[N]`). registry:2 requires `timeout`, `threshold` and
/// `backoff`; registryd takes 1s, 10 and 1s when they are left out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointConfig {
    /// A name for logs and metrics; it also names the endpoint's queue in the outbox.
    pub name: String,
    /// Leaves the endpoint out (default false).
    pub disabled: bool,
    /// Where events are POSTed (`http://` or `https://`).
    pub url: String,
    /// Headers sent with every delivery: name -> values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// How long one delivery may take.
    #[serde(
        with = "serde_option_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Failed deliveries in a row before backing off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u64>,
    /// How long to back off after `threshold` failures (doubling while failures go on).
    #[serde(
        with = "serde_option_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub backoff: Option<Duration>,
    /// Target media types not sent to this endpoint (registry:2's older form of
    /// `ignore.mediatypes`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignoredmediatypes: Vec<String>,
    /// Media types and actions not sent to this endpoint.
    pub ignore: IgnoreConfig,
    /// How deliveries are encoded: `registry` (registry:2's envelope, the default),
    /// `cloudevents` (CloudEvents 1.0, one event a request) or `cloudevents-batch` (a batch a
    /// request). registryd only.
    pub format: EventFormat,
    /// When set, each delivery carries `X-Registry-Signature-256: sha256=<hex HMAC-SHA256 of the
    /// body>` under this secret. registryd only. Shown as `<redacted>` when printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signingsecret: Option<String>,
}

/// How an endpoint's deliveries are encoded (`notifications.endpoints[N].format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum EventFormat {
    /// registry:2's envelope.
    #[default]
    #[serde(rename = "registry")]
    Registry,
    /// CloudEvents 1.0, structured content mode: one event a request.
    #[serde(rename = "cloudevents")]
    CloudEvents,
    /// CloudEvents 1.0, batched content mode.
    #[serde(rename = "cloudevents-batch")]
    CloudEventsBatch,
}

/// What an endpoint is not sent (`notifications.endpoints[N].ignore`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IgnoreConfig {
    /// Target media types.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mediatypes: Vec<String>,
    /// Actions: `push`, `pull`, `mount`, `delete`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

/// What pushed manifests are checked for (`validation`), as in registry:2: the URLs their
/// layers may name, and which children of an index must already be in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ValidationConfig {
    /// Turns the checks below off (default false): any http or https URL is accepted, and an
    /// index is accepted without its children.
    pub disabled: bool,
    /// registry:2's former switch, deprecated for `disabled`. As in registry:2, `true` keeps the
    /// checks on even with `disabled: true`, and `false` does not turn them off; loading warns
    /// either way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The checks (`validation.manifests`).
    pub manifests: ManifestsValidationConfig,
}

/// The checks on pushed manifests (`validation.manifests`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ManifestsValidationConfig {
    /// The URLs layers may name (`validation.manifests.urls`).
    pub urls: UrlsValidationConfig,
    /// Which children of an index must exist (`validation.manifests.indexes`).
    pub indexes: IndexesValidationConfig,
}

/// The URLs a pushed manifest's layers may name for clients to fetch them from
/// (`validation.manifests.urls`): regular expressions in Go's `regexp` syntax. With neither list,
/// a manifest with URLs is refused; with `allow`, every URL must match one of its patterns;
/// with `deny`, none may match one of its patterns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UrlsValidationConfig {
    /// Patterns of the URLs accepted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Patterns of the URLs refused, even when allowed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// Which children of an image index (or manifest list) must be in the repository when the index
/// is pushed (`validation.manifests.indexes`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IndexesValidationConfig {
    /// `all` (the default), `none` or `list`.
    pub platforms: IndexPlatforms,
    /// With `platforms: list`, the platforms whose children must exist; an empty list requires
    /// every child, as in registry:2.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platformlist: Vec<PlatformConfig>,
}

/// Which children of a pushed index must exist (`validation.manifests.indexes.platforms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexPlatforms {
    /// Every child (the default).
    #[default]
    All,
    /// None: an index is accepted and served without its children (a mirror of some
    /// platforms).
    None,
    /// Those whose platform is in `platformlist`.
    List,
}

/// One platform of `validation.manifests.indexes.platformlist`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformConfig {
    /// The operating system (`linux`, `windows`, ...).
    pub os: String,
    /// The CPU architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
}

impl ValidationConfig {
    /// Whether the checks are on: unless `disabled`, or whenever the deprecated `enabled` is
    /// true (registry:2's rule).
    pub fn is_enabled(&self) -> bool {
        self.enabled == Some(true) || !self.disabled
    }

    /// The validation the content layer applies. Fails on a URL pattern that is not a valid
    /// regular expression.
    pub fn manifest_validation(&self) -> Result<ManifestValidation, UrlPatternError> {
        if !self.is_enabled() {
            return Ok(ManifestValidation::disabled());
        }
        let urls = &self.manifests.urls;
        let indexes = &self.manifests.indexes;
        let index_children = match indexes.platforms {
            IndexPlatforms::All => IndexChildren::AllRequired,
            IndexPlatforms::None => IndexChildren::NoneRequired,
            IndexPlatforms::List if indexes.platformlist.is_empty() => IndexChildren::AllRequired,
            IndexPlatforms::List => IndexChildren::PlatformsRequired(
                indexes
                    .platformlist
                    .iter()
                    .map(|platform| OsArchitecture {
                        os: platform.os.clone(),
                        architecture: platform.architecture.clone(),
                    })
                    .collect(),
            ),
        };
        Ok(ManifestValidation {
            urls: UrlPolicy::new(&urls.allow, &urls.deny)?,
            index_children,
        })
    }
}

/// Pull-through cache (`proxy`): registry:2's one upstream for every repository (`remoteurl`),
/// and registryd's several upstreams by repository prefix (`upstreams`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyConfig {
    /// The upstream registry every repository is read from (registry:2's key); empty when only
    /// `upstreams` are given.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remoteurl: String,
    /// The upstream user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The upstream password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// How long cached content is kept (registry:2's default is 168h; 0 for ever). Read, not
    /// acted on yet: loading warns.
    #[serde(
        default,
        with = "serde_option_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
    /// A credential helper to run instead of `username`/`password`, as written. Not supported:
    /// loading warns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<serde_json::Value>,
    /// The most bytes of blobs the mirrored repositories may reference (registryd's addition);
    /// past it, the least recently pulled images are evicted and garbage collection frees their
    /// blobs. No bound when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxsize: Option<u64>,
    /// Upstreams by repository prefix (registryd's addition): `docker.io/library/busybox` is
    /// `library/busybox` of the upstream with prefix `docker.io`. Repositories under no prefix
    /// take pushes as usual.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<ProxyUpstreamConfig>,
}

/// One entry of `proxy.upstreams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyUpstreamConfig {
    /// The repositories read from it: `<prefix>/...`.
    pub prefix: String,
    /// Its URL.
    pub remoteurl: String,
    /// The user to authenticate as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// That user's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl Config {
    /// Reads a configuration from YAML text and applies `REGISTRY_*` overrides from `env`
    /// (other variables are skipped, so passing all of `std::env::vars()` is fine).
    ///
    /// An empty document gives the defaults.
    pub fn from_yaml(
        yaml: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<LoadedConfig, ConfigError> {
        load_document(yaml, None, env)
    }

    /// Reads the configuration file at `path` and applies `REGISTRY_*` overrides from `env`.
    pub fn from_file(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<LoadedConfig, ConfigError> {
        let yaml = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        load_document(&yaml, Some(path), env)
    }

    /// Reads the configuration file at `path` (`None`: the built-in defaults, as if the file
    /// were empty) and applies overrides from this process's `REGISTRY_*` environment variables.
    ///
    /// `REGISTRY_CONFIGURATION_PATH` is not an override; the binary uses it to find `path`.
    pub fn load(path: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
        let mut warnings = Vec::new();
        let mut env = Vec::new();
        for (name, value) in std::env::vars_os() {
            match (name.into_string(), value.into_string()) {
                (Ok(name), Ok(value)) => env.push((name, value)),
                (Ok(name), Err(_)) if name.starts_with("REGISTRY_") => warnings.push(format!(
                    "environment variable {name} is not valid UTF-8; it is ignored"
                )),
                _ => {}
            }
        }
        let mut loaded = match path {
            Some(path) => Config::from_file(path, env)?,
            None => Config::from_yaml(DEFAULT_DOCUMENT, env)?,
        };
        warnings.append(&mut loaded.warnings);
        loaded.warnings = warnings;
        Ok(loaded)
    }

    /// Every key that names a file or directory serving reads, with its path as written:
    /// `storage.filesystem.rootdirectory`, `http.tls.certificate`, `http.tls.key`,
    /// `http.tls.clientcas[N]`, `auth.htpasswd.path`, `auth.token.rootcertbundle` and
    /// `auth.token.jwks`, in that order. A relative path is used as it is, so it resolves against
    /// the working directory of the process, as in registry:2.
    pub fn named_paths(&self) -> Vec<(String, &Path)> {
        let mut paths: Vec<(String, &Path)> = Vec::new();
        if let StorageDriverConfig::Filesystem(filesystem) = &self.storage.driver {
            paths.push((
                "storage.filesystem.rootdirectory".to_owned(),
                &filesystem.rootdirectory,
            ));
        }
        if let Some(tls) = &self.http.tls {
            paths.push(("http.tls.certificate".to_owned(), &tls.certificate));
            paths.push(("http.tls.key".to_owned(), &tls.key));
            for (index, ca) in tls.clientcas.iter().enumerate() {
                paths.push((format!("http.tls.clientcas[{index}]"), ca));
            }
        }
        match &self.auth {
            Some(AuthConfig::Htpasswd(htpasswd)) => {
                paths.push(("auth.htpasswd.path".to_owned(), &htpasswd.path));
            }
            Some(AuthConfig::Token(token)) => {
                if let Some(bundle) = &token.rootcertbundle {
                    paths.push(("auth.token.rootcertbundle".to_owned(), bundle));
                }
                if let Some(jwks) = &token.jwks {
                    paths.push(("auth.token.jwks".to_owned(), jwks));
                }
            }
            Some(AuthConfig::Silly(_)) | None => {}
        }
        paths
    }

    /// The access rules (`auth.access`) in the form the access controller takes
    /// (`registry_auth::AccessController::new`): `None` when there are none, which keeps
    /// registry:2's behaviour (any authenticated user may do everything). An empty
    /// [`AccessRules`] would allow nothing, so never pass one for "no rules".
    pub fn access_rules(&self) -> Option<AccessRules> {
        (!self.access.is_empty()).then(|| AccessRules::new(self.access.clone()))
    }
}

/// The document `Config::load(None)` reads: nothing, so every default applies.
const DEFAULT_DOCUMENT: &str = "";

#[cfg(test)]
mod tests;
#[cfg(test)]
mod untrusted_input_tests;
