//! registryd as a library: an OCI container registry to run or to embed.
//!
//! [`Registry`] composes the layers: a storage driver ([`registry_storage`]), the content logic
//! ([`registry_content`]) and the HTTP API ([`registry_http`]). Build one from a registry:2
//! compatible [`Config`] with [`Registry::from_config`], or piece by piece with
//! [`Registry::builder`] (your own driver, say), then [`serve`](Registry::serve) it or mount its
//! [`service`](Registry::service) in your own hyper or axum application.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use registry::{Registry, storage::InMemoryDriver};
//!
//! let registry = Registry::builder()
//!     .driver(Arc::new(InMemoryDriver::new()))
//!     .delete_enabled(true)
//!     .build();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! registry.serve(listener, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

pub mod config;
mod debug_server;
mod health;
mod maintenance;
mod notifications;
mod server;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{HeaderName, HeaderValue};
use registry_content::{
    ContentOptions, ContentSource, ContentStore, GcOptions, ManifestValidation,
};
use registry_http::layers::{self, ObservedService};
use registry_http::{Health, HttpOptions, RegistryService, UrlBase};
use registry_storage::{FilesystemDriver, InMemoryDriver, MeteredDriver, StorageDriver};
use registry_storage_s3::{OptionsError, S3Driver, S3Options};

pub use config::Config;
use config::{AuthConfig, StorageDriverConfig};
pub use debug_server::{HEALTH_PATH, READY_PATH};
pub use health::{StorageHealthCheck, storage_check_name};
pub use maintenance::{GarbageCollection, UploadPurging};
pub use notifications::notifier_options;
pub use registry_auth as auth;
use registry_auth::htpasswd::HtpasswdAuthenticator;
use registry_auth::token::{TokenAuthenticator, TokenSettings};
use registry_auth::{AccessController, Authenticator};
pub use registry_content as content;
pub use registry_events as events;
use registry_events::{EventSink, Notifier};
pub use registry_http as http_api;
pub use registry_model as model;
pub use registry_proxy as proxy;
use registry_proxy::{CacheBound, Mirror, Upstream, Upstreams};
pub use registry_storage as storage;
pub use server::{ServeError, ServerOptions};
pub use tls::{ReloadableTls, TlsError};

/// A registry ready to serve: a storage driver, the content layer over it and the HTTP API.
#[derive(Clone, Debug)]
pub struct Registry {
    service: RegistryService,
    server: ServerOptions,
    upload_purging: Option<UploadPurging>,
    garbage_collection: Option<GarbageCollection>,
    tls: Option<ReloadableTls>,
    notifier: Option<Arc<Notifier>>,
    /// Where events go (the notifier or a sink of the embedder's), for the tags retention removes.
    events: Option<Arc<dyn EventSink>>,
    health: Arc<Health>,
    storage_check: Option<StorageHealthCheck>,
    metrics_path: Option<String>,
    /// Whether the service records request metrics.
    record_metrics: bool,
    /// Whether [`Registry::serve`] is serving and not shutting down, for the readiness probe.
    ready: Arc<AtomicBool>,
    /// The pull-through cache in front of the content store, if there is one.
    mirror: Option<Arc<Mirror>>,
    cache_bound: Option<CacheBound>,
}

/// Builds a [`Registry`] piece by piece. Starts from the in-memory driver and registry:2's
/// defaults (deletes disabled, 4 MiB manifests, no prefix), without upload purging or garbage
/// collection, writable.
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    driver: Option<Arc<dyn StorageDriver>>,
    content: ContentOptions,
    http: HttpOptions,
    server: ServerOptions,
    upload_purging: Option<UploadPurging>,
    garbage_collection: Option<GarbageCollection>,
    read_only: bool,
    tls: Option<ReloadableTls>,
    notifier: Option<Arc<Notifier>>,
    storage_check: Option<StorageHealthCheck>,
    metrics_path: Option<String>,
    record_metrics: bool,
    mirror: Option<Upstreams>,
    cache_bound: Option<CacheBound>,
}

impl RegistryBuilder {
    /// Stores everything in `driver`.
    pub fn driver(mut self, driver: Arc<dyn StorageDriver>) -> Self {
        self.driver = Some(driver);
        self
    }

    /// Allows deleting blobs, manifests and tags (registry:2's `storage.delete.enabled`).
    pub fn delete_enabled(mut self, enabled: bool) -> Self {
        self.content.delete_enabled = enabled;
        self
    }

    /// What pushed manifests are checked for beyond their format (registry:2's
    /// `validation.manifests`); registry:2's default refuses URLs in layers and requires every
    /// child of an index.
    pub fn manifest_validation(mut self, validation: ManifestValidation) -> Self {
        self.content.manifest_validation = validation;
        self
    }

    /// How many blob sizes to keep in memory (registry:2's `storage.cache.blobdescriptorsize`;
    /// 0: none). Sizes never change for a digest, so this only spares reads of storage.
    pub fn blob_size_cache(mut self, entries: usize) -> Self {
        self.content.blob_size_cache_entries = entries;
        self
    }

    /// Serves the API under `prefix` (registry:2's `http.prefix`), e.g. `/registry`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.http.prefix = prefix.into();
        self
    }

    /// Decides who may do what; `None` (the default) lets every request through, as registry:2
    /// does without `auth`.
    pub fn access_controller(mut self, controller: Option<AccessController>) -> Self {
        self.http.access = controller;
        self
    }

    /// The largest catalog page (also its default size) and the largest tags-list page
    /// (registry:2's `catalog.maxentries` and `tags.maxtags`; 1,000 each by default).
    pub fn listing_limits(mut self, catalog_max_entries: usize, max_tags: usize) -> Self {
        self.http.catalog_max_entries = catalog_max_entries;
        self.http.max_tags = max_tags;
        self
    }

    /// Adds `name: value` to every response (registry:2's `http.headers`).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.http.headers.push((name, value));
        self
    }

    /// How [`Registry::serve`] runs connections.
    pub fn server_options(mut self, options: ServerOptions) -> Self {
        self.server = options;
        self
    }

    /// Removes abandoned uploads on a schedule while [`Registry::serve`] runs; `None` never does.
    pub fn upload_purging(mut self, policy: Option<UploadPurging>) -> Self {
        self.upload_purging = policy;
        self
    }

    /// Collects garbage on a schedule while [`Registry::serve`] runs; `None` (the default) never
    /// does.
    pub fn garbage_collection(mut self, schedule: Option<GarbageCollection>) -> Self {
        self.garbage_collection = schedule;
        self
    }

    /// Starts in read-only mode (registry:2's `storage.maintenance.readonly`): pulls work, every
    /// push and delete is refused with 405 `UNSUPPORTED`, and purging and collection pause.
    /// [`Registry::set_read_only`] switches it later.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Serves over TLS with this configuration (registry:2's `http.tls`); `None` serves plain
    /// HTTP.
    pub fn tls(mut self, tls: Option<ReloadableTls>) -> Self {
        self.tls = tls;
        self
    }

    /// Sends events to `notifier`, whose tasks start with [`Registry::serve`] (or with the first
    /// event, for a service mounted elsewhere) and stop for good when `serve` returns: events of
    /// a registry served again are not recorded, so build a new one (its outbox is the same).
    /// Replaces any [`event_sink`](RegistryBuilder::event_sink).
    pub fn notifier(mut self, notifier: Option<Arc<Notifier>>) -> Self {
        self.http.events = notifier
            .clone()
            .map(|notifier| notifier as Arc<dyn EventSink>);
        self.notifier = notifier;
        self
    }

    /// Sends events to a sink of your own (no outbox, no delivery unless it does them).
    /// Replaces any [`notifier`](RegistryBuilder::notifier).
    pub fn event_sink(mut self, sink: Option<Arc<dyn EventSink>>) -> Self {
        self.http.events = sink;
        self.notifier = None;
        self
    }

    /// Checks the storage driver on a schedule while serving (registry:2's
    /// `health.storagedriver`); `None` (the default) for no check.
    pub fn storage_health_check(mut self, check: Option<StorageHealthCheck>) -> Self {
        self.storage_check = check;
        self
    }

    /// Records request metrics through the `metrics` facade even without
    /// [`metrics_path`](RegistryBuilder::metrics_path): for an application that installed its
    /// own recorder. Off by default, as recording costs about a microsecond a request.
    pub fn record_metrics(mut self, record: bool) -> Self {
        self.record_metrics = record;
        self
    }

    /// Where [`Registry::serve_debug`] serves Prometheus metrics (`http.debug.prometheus.path`);
    /// `None` (the default) for none. Installs the Prometheus recorder as the process's
    /// `metrics` recorder, unless another is installed already (which then gets the metrics).
    pub fn metrics_path(mut self, path: Option<String>) -> Self {
        self.metrics_path = path;
        self
    }

    /// How `Location` URLs begin: from the request (the default, as registry:2), from a fixed
    /// URL (`http.host`), or relative (`http.relativeurls`).
    pub fn urls(mut self, urls: UrlBase) -> Self {
        self.http.urls = urls;
        self
    }

    /// Reads through to `upstreams` what the store lacks (a pull-through cache, registry:2's
    /// `proxy`); the repositories they mirror take no pushes. `None` (the default) for none.
    pub fn mirror(mut self, upstreams: Option<Upstreams>) -> Self {
        self.mirror = upstreams;
        self
    }

    /// Keeps what the mirror cached within `bound` while serving (see [`Mirror::make_room`]);
    /// `None` (the default) for no bound. Without [`mirror`](RegistryBuilder::mirror), nothing.
    pub fn cache_bound(mut self, bound: Option<CacheBound>) -> Self {
        self.cache_bound = bound;
        self
    }

    /// The registry.
    pub fn build(mut self) -> Registry {
        // Before anything registers its metrics.
        if self.metrics_path.is_some() {
            debug_server::prometheus();
        }
        let driver = self
            .driver
            .unwrap_or_else(|| Arc::new(InMemoryDriver::new()));
        let record_metrics = self.record_metrics || self.metrics_path.is_some();
        let driver: Arc<dyn StorageDriver> = if record_metrics {
            Arc::new(MeteredDriver::new(driver))
        } else {
            driver
        };
        let content = ContentStore::new(driver, self.content);
        content.set_read_only(self.read_only);
        let mirror = self
            .mirror
            .map(|upstreams| Arc::new(Mirror::new(content.clone(), upstreams)));
        if let Some(mirror) = &mirror {
            self.http.source = Some(Arc::clone(mirror) as Arc<dyn ContentSource>);
        }
        let health = Arc::new(Health::new());
        self.http.health = Some(Arc::clone(&health));
        let events = self.http.events.clone();
        Registry {
            cache_bound: mirror.as_ref().and(self.cache_bound),
            mirror,
            service: RegistryService::new(content, self.http),
            server: self.server,
            upload_purging: self.upload_purging,
            garbage_collection: self.garbage_collection,
            tls: self.tls,
            notifier: self.notifier,
            events,
            health,
            storage_check: self.storage_check,
            record_metrics,
            metrics_path: self.metrics_path,
            ready: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Registry {
    /// A builder starting from the defaults.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// The HTTP API, to mount in an application of your own: a `tower_service::Service` (axum's
    /// `Router::fallback_service` or `route_service` take it) with request ids, the access log
    /// (unless `log.accesslog.disabled`) and metrics around [`RegistryService`]. For fewer layers,
    /// stack the ones wanted from [`registry_http::layers`] around [`Registry::api`].
    pub fn service(&self) -> ObservedService<RegistryService> {
        layers::observed(
            self.service.clone(),
            self.server.access_log,
            self.record_metrics,
        )
    }

    /// The HTTP API alone, without layers.
    pub fn api(&self) -> RegistryService {
        self.service.clone()
    }

    /// The pull-through cache reads go through, when [`RegistryBuilder::mirror`] set one up.
    pub fn mirror(&self) -> Option<&Arc<Mirror>> {
        self.mirror.as_ref()
    }

    /// The content store the API answers from.
    pub fn content(&self) -> &ContentStore {
        self.service.content()
    }

    /// The health checks' state: what `/debug/health` reports and `GET /v2/` answers 503 for.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The storage driver everything is kept in.
    pub fn driver(&self) -> &Arc<dyn StorageDriver> {
        self.service.content().driver()
    }

    /// The TLS configuration connections are served with, if any.
    pub fn tls(&self) -> Option<&ReloadableTls> {
        self.tls.as_ref()
    }

    /// Reads the TLS certificate, key and client CA files again; new connections use them,
    /// open connections keep the old ones. `Ok(false)` when TLS is not configured. On error the
    /// previous configuration stays in use.
    ///
    /// Reads files synchronously: call it from a blocking context when on an async runtime.
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        match &self.tls {
            Some(tls) => tls.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// Switches read-only mode on or off at once, for every connection (see
    /// [`RegistryBuilder::read_only`]). A request already past its check finishes.
    pub fn set_read_only(&self, read_only: bool) {
        self.service.content().set_read_only(read_only);
    }

    /// Whether the registry is in read-only mode.
    pub fn is_read_only(&self) -> bool {
        self.service.content().is_read_only()
    }

    /// Serves the API on `listener` (HTTP/1.1 and HTTP/2, over TLS when configured) until
    /// `shutdown` completes, then stops accepting and lets in-flight requests finish (up to the
    /// drain timeout). Upload purging and garbage collection, when configured, run alongside.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let content = self.service.content();
        if let Some(notifier) = &self.notifier {
            notifier.start();
        }
        let purging = self.upload_purging.clone().map(|policy| {
            tokio::spawn(maintenance::purge_uploads_periodically(
                content.clone(),
                policy,
            ))
        });
        let collecting = self.garbage_collection.clone().map(|schedule| {
            tokio::spawn(maintenance::collect_garbage_periodically(
                content.clone(),
                schedule,
                self.events.clone(),
            ))
        });
        let bounding = self
            .mirror
            .clone()
            .zip(self.cache_bound.clone())
            .map(|(mirror, bound)| tokio::spawn(registry_proxy::keep_within(mirror, bound)));
        let checking = self.storage_check.clone().map(|check| {
            tokio::spawn(health::check_storage_periodically(
                Arc::clone(content.driver()),
                check,
                Arc::clone(&self.health),
            ))
        });
        self.ready.store(true, Ordering::Relaxed);
        let ready = Arc::clone(&self.ready);
        let shutdown = async move {
            shutdown.await;
            ready.store(false, Ordering::Relaxed);
        };
        let served = server::serve(
            self.service(),
            &self.server,
            self.tls.clone(),
            listener,
            shutdown,
        )
        .await;
        self.ready.store(false, Ordering::Relaxed);
        for task in purging
            .into_iter()
            .chain(collecting)
            .chain(checking)
            .chain(bounding)
        {
            task.abort();
        }
        if let Some(notifier) = &self.notifier {
            notifier.shutdown().await;
        }
        served
    }

    /// Serves the debug endpoints on `listener` until `shutdown` completes: the metrics at the
    /// path set with [`RegistryBuilder::metrics_path`] (`http.debug.prometheus.path`), the health
    /// report at [`HEALTH_PATH`] and the readiness probe at [`READY_PATH`], which answers 200
    /// only while [`Registry::serve`] serves and every health check passes. Run it beside
    /// `serve`, on the address of `http.debug.addr`.
    pub async fn serve_debug(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        let metrics = self
            .metrics_path
            .clone()
            .and_then(|path| debug_server::prometheus().map(|handle| (path, handle)));
        debug_server::serve(
            listener,
            metrics,
            Arc::clone(&self.health),
            Arc::clone(&self.ready),
            shutdown,
        )
        .await;
    }
}

/// Why a [`Config`] could not be made into a [`Registry`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The storage driver could not be set up.
    #[error("config key {key}: {source}")]
    Storage {
        /// The config key naming the driver's settings.
        key: &'static str,
        /// What went wrong.
        #[source]
        source: storage::StorageError,
    },
    /// The configuration asks for something this version does not do.
    #[error("config key {key}: {reason}")]
    Unsupported {
        /// The config key.
        key: &'static str,
        /// What is missing and what to do instead.
        reason: &'static str,
    },
    /// A value is not usable.
    #[error("config key {key}: {reason}")]
    Invalid {
        /// The config key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The authentication configuration (`auth`) could not be loaded.
    #[error("config key {key}: {reason}")]
    Auth {
        /// The config key.
        key: &'static str,
        /// What is wrong, naming the file and line where there is one.
        reason: String,
    },
    /// The TLS configuration (`http.tls`) could not be loaded.
    #[error("config key {0}")]
    Tls(#[from] TlsError),
}

impl Registry {
    /// The registry a registry:2 compatible configuration describes.
    ///
    /// Loads everything the configuration names (htpasswd file, token keys, TLS certificates),
    /// so a broken file stops start-up instead of the first request. Refuses, rather than ignores,
    /// settings whose absence would surprise (unix sockets, silly auth).
    pub fn from_config(config: &Config) -> Result<Registry, BuildError> {
        Registry::from_config_with_driver(config, driver_from_config(config)?)
    }

    /// [`Registry::from_config`] over `driver` instead of the driver the configuration's
    /// `storage` section names: how a binary serves its own [`StorageDriver`] with everything
    /// else (auth, TLS, maintenance, notifications) read from a registry:2 configuration. The
    /// storage section's `delete` and `maintenance` still apply; whether blob GETs redirect is
    /// the driver's own answer (`StorageDriver::redirect_url`).
    pub fn from_config_with_driver(
        config: &Config,
        driver: Arc<dyn StorageDriver>,
    ) -> Result<Registry, BuildError> {
        if config.http.net == config::Net::Unix {
            return Err(BuildError::Unsupported {
                key: "http.net",
                reason: "unix sockets are not supported yet; use tcp with http.addr HOST:PORT",
            });
        }
        let access = access_controller(config)?;
        let tls = config
            .http
            .tls
            .as_ref()
            .map(|tls| ReloadableTls::load(tls, !config.http.http2.disabled))
            .transpose()?;
        let metrics_path = config
            .http
            .debug
            .as_ref()
            .filter(|debug| debug.prometheus.enabled)
            .map(|debug| debug.prometheus.path.clone());
        let notifier = notifications::notifier(config, Arc::clone(&driver))?;
        let mut builder = Registry::builder()
            .driver(driver)
            .urls(url_base(config)?)
            .mirror(mirror_from_config(config)?)
            .cache_bound(cache_bound_from_config(config)?)
            .notifier(notifier)
            .delete_enabled(config.storage.delete.enabled)
            .blob_size_cache(config.storage.cache.blob_size_entries())
            .manifest_validation(manifest_validation(config)?)
            .access_controller(access)
            .listing_limits(config.catalog.maxentries, config.tags.maxtags);
        if let Some(prefix) = &config.http.prefix {
            builder = builder.prefix(prefix.clone());
        }
        for (name, values) in &config.http.headers {
            let header_name =
                HeaderName::try_from(name.as_str()).map_err(|_| BuildError::Invalid {
                    key: format!("http.headers.{name}"),
                    reason: "not a valid HTTP header name".to_owned(),
                })?;
            for value in values {
                let header_value =
                    HeaderValue::try_from(value.as_str()).map_err(|_| BuildError::Invalid {
                        key: format!("http.headers.{name}"),
                        reason: format!("{value:?} is not a valid HTTP header value"),
                    })?;
                builder = builder.header(header_name.clone(), header_value);
            }
        }
        let mut server = ServerOptions {
            access_log: !config.log.accesslog.disabled,
            body_idle_timeout: config.http.bodyidletimeout,
            max_connections: config.http.maxconnections,
            ..ServerOptions::default()
        };
        if let Some(drain_timeout) = config.http.draintimeout {
            server.drain_timeout = drain_timeout;
        }
        let purging = &config.storage.maintenance.uploadpurging;
        let upload_purging = purging.enabled.then_some(UploadPurging {
            age: purging.age,
            interval: purging.interval,
            dry_run: purging.dryrun,
        });
        let gc = &config.storage.maintenance.gc;
        let gc_options = gc_options(config)?;
        if gc.enabled && gc.interval.is_zero() {
            return Err(BuildError::Invalid {
                key: "storage.maintenance.gc.interval".to_owned(),
                reason: "must be longer than 0 (for example 24h)".to_owned(),
            });
        }
        let garbage_collection = gc.enabled.then_some(GarbageCollection {
            interval: gc.interval,
            options: gc_options,
        });
        let storage_check = &config.health.storagedriver;
        let storage_check = storage_check.enabled.then(|| StorageHealthCheck {
            interval: storage_check
                .interval
                .max(std::time::Duration::from_millis(10)),
            threshold: u32::try_from(storage_check.threshold).unwrap_or(u32::MAX),
        });
        Ok(builder
            .storage_health_check(storage_check)
            .metrics_path(metrics_path)
            .server_options(server)
            .upload_purging(upload_purging)
            .garbage_collection(garbage_collection)
            .read_only(config.storage.maintenance.readonly.enabled)
            .tls(tls)
            .build())
    }
}

/// How `Location` URLs begin: `http.relativeurls` wins, then `http.host`, else the request.
fn url_base(config: &Config) -> Result<UrlBase, BuildError> {
    if config.http.relativeurls {
        return Ok(UrlBase::Relative);
    }
    let Some(host) = config.http.host.as_deref().filter(|host| !host.is_empty()) else {
        return Ok(UrlBase::FromRequest);
    };
    let valid = host
        .parse::<http::Uri>()
        .ok()
        .filter(|uri| matches!(uri.scheme_str(), Some("http" | "https")))
        .filter(|uri| uri.authority().is_some())
        .is_some();
    if !valid {
        return Err(BuildError::Invalid {
            key: "http.host".to_owned(),
            reason: format!(
                "{host:?} is not an absolute URL: write the address clients reach the registry \
                 at, e.g. https://registry.example.com"
            ),
        });
    }
    Ok(UrlBase::Fixed(host.trim_end_matches('/').to_owned()))
}

/// The upstreams a configuration's `proxy` section names: `remoteurl` for every repository,
/// `upstreams` by prefix.
fn mirror_from_config(config: &Config) -> Result<Option<Upstreams>, BuildError> {
    let Some(proxy) = &config.proxy else {
        return Ok(None);
    };
    let mut upstreams = Vec::new();
    if !proxy.remoteurl.is_empty() {
        upstreams.push(Upstream {
            url: proxy.remoteurl.clone(),
            username: proxy.username.clone(),
            password: proxy.password.clone(),
            prefix: String::new(),
        });
    }
    for upstream in &proxy.upstreams {
        if upstream.prefix.trim_matches('/').is_empty() {
            return Err(BuildError::Invalid {
                key: "proxy.upstreams.prefix".to_owned(),
                reason: format!(
                    "the upstream {} needs a prefix (for example docker.io); use \
                     proxy.remoteurl for an upstream of every repository",
                    upstream.remoteurl
                ),
            });
        }
        upstreams.push(Upstream {
            url: upstream.remoteurl.clone(),
            username: upstream.username.clone(),
            password: upstream.password.clone(),
            prefix: upstream.prefix.clone(),
        });
    }
    if upstreams.is_empty() {
        return Err(BuildError::Invalid {
            key: "proxy.remoteurl".to_owned(),
            reason: "a pull-through cache needs an upstream: set proxy.remoteurl (for example \
                     https://registry-1.docker.io) or proxy.upstreams"
                .to_owned(),
        });
    }
    Upstreams::new(&upstreams)
        .map(Some)
        .map_err(|error| BuildError::Invalid {
            key: "proxy".to_owned(),
            reason: error.to_string(),
        })
}

/// The bound `proxy.maxsize` sets on the mirror's cache, checked every minute; its collections
/// run as `storage.maintenance.gc` says (its grace period, retention, untagged manifests).
fn cache_bound_from_config(config: &Config) -> Result<Option<CacheBound>, BuildError> {
    let Some(max_bytes) = config.proxy.as_ref().and_then(|proxy| proxy.maxsize) else {
        return Ok(None);
    };
    Ok(Some(CacheBound {
        max_bytes,
        interval: std::time::Duration::from_secs(60),
        collection: gc_options(config)?,
    }))
}

/// Everything [`Registry::from_config`] checks, without its side effects: the files the
/// configuration names are read and parsed (TLS, htpasswd, token keys) and the S3 settings
/// checked (no request is made), but a filesystem root directory is not created: it must be a
/// directory, or a path whose nearest existing ancestor is one. What `registryd config check`
/// runs.
pub fn check_config(config: &Config) -> Result<(), BuildError> {
    match &config.storage.driver {
        StorageDriverConfig::Filesystem(filesystem) => {
            check_root_directory(&filesystem.rootdirectory)?;
        }
        StorageDriverConfig::InMemory => {}
        StorageDriverConfig::S3(s3) => {
            s3_driver(s3, !config.storage.redirect.disable)?;
        }
    }
    Registry::from_config_with_driver(config, Arc::new(InMemoryDriver::new()))?;
    Ok(())
}

/// A filesystem root that serving could use or create: a directory, or missing below one.
fn check_root_directory(root: &std::path::Path) -> Result<(), BuildError> {
    let invalid = |reason: String| BuildError::Invalid {
        key: "storage.filesystem.rootdirectory".to_owned(),
        reason,
    };
    let mut missing = false;
    for ancestor in root.ancestors() {
        match std::fs::metadata(ancestor) {
            Ok(metadata) if metadata.is_dir() => return Ok(()),
            Ok(_) if missing => {
                return Err(invalid(format!(
                    "{} cannot be created: {} is not a directory",
                    root.display(),
                    ancestor.display()
                )));
            }
            Ok(_) => return Err(invalid(format!("{} is not a directory", root.display()))),
            // Missing, or below a file (which the next ancestor shows).
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                missing = true;
            }
            Err(error) => return Err(invalid(format!("{}: {error}", ancestor.display()))),
        }
    }
    // A relative root whose every ancestor is missing resolves against the working directory.
    Ok(())
}

/// The content store over the storage driver a configuration's `storage` section describes,
/// built as [`Registry::from_config`] builds it but without the HTTP API, authentication or TLS:
/// what offline tools (`registryd verify`) work on. Creates the filesystem root if it is missing.
pub fn content_store_from_config(config: &Config) -> Result<ContentStore, BuildError> {
    let options = ContentOptions {
        delete_enabled: config.storage.delete.enabled,
        manifest_validation: manifest_validation(config)?,
        blob_size_cache_entries: config.storage.cache.blob_size_entries(),
        ..ContentOptions::default()
    };
    Ok(ContentStore::new(driver_from_config(config)?, options))
}

/// The garbage collection `storage.maintenance.gc` describes, retention policies included: what
/// the server's scheduled collections and `registryd garbage-collect` do.
pub fn gc_options(config: &Config) -> Result<GcOptions, BuildError> {
    config
        .storage
        .maintenance
        .gc
        .gc_options()
        .map_err(|(key, error)| BuildError::Invalid {
            key,
            reason: error.to_string(),
        })
}

/// The manifest validation `validation` describes.
fn manifest_validation(config: &Config) -> Result<ManifestValidation, BuildError> {
    config
        .validation
        .manifest_validation()
        .map_err(|error| BuildError::Invalid {
            key: format!("validation.manifests.urls.{}[{}]", error.list, error.index),
            reason: format!("not a valid regular expression ({})", error.message),
        })
}

/// The storage driver `storage` describes.
fn driver_from_config(config: &Config) -> Result<Arc<dyn StorageDriver>, BuildError> {
    Ok(match &config.storage.driver {
        StorageDriverConfig::Filesystem(filesystem) => Arc::new(
            FilesystemDriver::new(&filesystem.rootdirectory)
                .map_err(|source| BuildError::Storage {
                    key: "storage.filesystem.rootdirectory",
                    source,
                })?
                .with_direct_io(filesystem.directio),
        ),
        StorageDriverConfig::InMemory => Arc::new(InMemoryDriver::new()),
        StorageDriverConfig::S3(s3) => Arc::new(s3_driver(s3, !config.storage.redirect.disable)?),
    })
}

/// The S3 driver `storage.s3` describes; `redirect` lets it answer blob GETs with presigned URLs.
fn s3_driver(s3: &config::S3Config, redirect: bool) -> Result<S3Driver, BuildError> {
    if !s3.v4auth {
        return Err(BuildError::Unsupported {
            key: "storage.s3.v4auth",
            reason: "only Version 4 signatures are supported (S3 and its clones have dropped \
                     Version 2); remove v4auth or set it to true",
        });
    }
    let mut options = S3Options::new(&s3.bucket, &s3.region);
    options.endpoint = s3.regionendpoint.clone();
    options.access_key = s3.accesskey.clone();
    options.secret_key = s3.secretkey.clone();
    options.session_token = s3.sessiontoken.clone();
    options.secure = s3.secure;
    options.force_path_style = s3.forcepathstyle;
    options.encrypt = s3.encrypt;
    options.kms_key_id = s3.keyid.clone();
    options.root_directory = s3.rootdirectory.clone();
    options.chunk_size = s3.chunksize;
    options.redirect = redirect;
    S3Driver::new(options).map_err(|error| match error {
        OptionsError::Invalid(reason) => BuildError::Invalid {
            key: "storage.s3".to_owned(),
            reason,
        },
    })
}

/// The access controller `auth` describes: its authenticator and `auth.access` rules.
fn access_controller(config: &Config) -> Result<Option<AccessController>, BuildError> {
    let authenticator: Arc<dyn Authenticator> = match &config.auth {
        None if config.access.is_empty() => return Ok(None),
        None => {
            return Err(BuildError::Unsupported {
                key: "auth.access",
                reason: "access rules need an auth provider (auth.htpasswd or auth.token)",
            });
        }
        Some(AuthConfig::Htpasswd(htpasswd)) => Arc::new(
            HtpasswdAuthenticator::open(htpasswd.realm.clone(), htpasswd.path.clone()).map_err(
                |error| BuildError::Auth {
                    key: "auth.htpasswd.path",
                    reason: error.to_string(),
                },
            )?,
        ),
        Some(AuthConfig::Token(token)) => Arc::new(
            TokenAuthenticator::new(TokenSettings {
                realm: token.realm.clone(),
                service: token.service.clone(),
                issuer: token.issuer.clone(),
                root_cert_bundle: token.rootcertbundle.clone(),
                jwks: token.jwks.clone(),
                signing_algorithms: token.signingalgorithms.clone(),
            })
            .map_err(|error| BuildError::Auth {
                key: "auth.token",
                reason: error.to_string(),
            })?,
        ),
        Some(AuthConfig::Silly(_)) => {
            return Err(BuildError::Unsupported {
                key: "auth.silly",
                reason: "silly auth accepts any credentials; use auth.htpasswd or auth.token",
            });
        }
    };
    Ok(Some(AccessController::new(
        authenticator,
        config.access_rules(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml, []).expect("config").config
    }

    #[test]
    fn location_urls_follow_http_host_and_relativeurls() {
        assert_eq!(url_base(&config("")).ok(), Some(UrlBase::FromRequest));
        assert_eq!(
            url_base(&config("http:\n  host: https://registry.example.com/\n")).ok(),
            Some(UrlBase::Fixed("https://registry.example.com".to_owned()))
        );
        assert_eq!(
            url_base(&config(
                "http:\n  host: https://registry.example.com\n  relativeurls: true\n"
            ))
            .ok(),
            Some(UrlBase::Relative)
        );
        let refused = url_base(&config("http:\n  host: registry.example.com\n"));
        assert!(
            matches!(&refused, Err(BuildError::Invalid { key, .. }) if key == "http.host"),
            "{refused:?}"
        );
    }
}
