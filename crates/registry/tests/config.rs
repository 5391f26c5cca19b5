//! The configuration loader through its public API: registry:2 files, defaults, `REGISTRY_*`
//! overrides, warnings and errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use registry::config::{
    AccessRule, AuthConfig, BlobDescriptorCache, ClientAuth, Config, ConfigError, FilesystemConfig,
    HtpasswdConfig, IndexPlatforms, LoadedConfig, LogFormatter, LogLevel, Net, PlatformConfig,
    RuleAction, S3Config, StorageDriverConfig, TlsVersion,
};
use registry::content::{IndexChildren, ManifestValidation, OsArchitecture, UrlPolicy};

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

#[track_caller]
fn load(yaml: &str, vars: &[(&str, &str)]) -> LoadedConfig {
    match Config::from_yaml(yaml, env(vars)) {
        Ok(loaded) => loaded,
        Err(error) => panic!("config should load: {error}"),
    }
}

#[track_caller]
fn load_error(yaml: &str, vars: &[(&str, &str)]) -> String {
    match Config::from_yaml(yaml, env(vars)) {
        Ok(loaded) => panic!("config should not load, got {loaded:#?}"),
        Err(error) => error.to_string(),
    }
}

fn filesystem(config: &Config) -> &FilesystemConfig {
    match &config.storage.driver {
        StorageDriverConfig::Filesystem(params) => params,
        other => panic!("expected the filesystem driver, got {other:?}"),
    }
}

// ---- registry:2 files -----------------------------------------------------------------------

/// `/etc/docker/registry/config.yml` in the registry:2 image (distribution's
/// cmd/registry/config-example.yml).
const REGISTRY2_IMAGE_CONFIG: &str = "\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
";

#[test]
fn registry2_image_config_loads_without_warnings() {
    let loaded = load(REGISTRY2_IMAGE_CONFIG, &[]);
    let config = &loaded.config;
    assert_eq!(config.version, "0.1");
    assert_eq!(
        config.log.fields.get("service"),
        Some(&serde_json::json!("registry"))
    );
    assert_eq!(
        config.storage.cache.blobdescriptor,
        Some(BlobDescriptorCache::InMemory)
    );
    assert_eq!(
        filesystem(config).rootdirectory,
        PathBuf::from("/var/lib/registry")
    );
    assert_eq!(config.http.addr, ":5000");
    assert_eq!(
        config.http.headers.get("X-Content-Type-Options"),
        Some(&vec!["nosniff".to_owned()])
    );
    assert!(config.health.storagedriver.enabled);
    assert_eq!(config.health.storagedriver.threshold, 3);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn a_redis_blob_descriptor_cache_warns_that_sizes_are_cached_in_memory() {
    let loaded = load(
        "storage:\n  cache:\n    blobdescriptor: redis\n    blobdescriptorsize: 0\n",
        &[],
    );
    assert_eq!(
        loaded.warnings,
        [
            "config key storage.cache.blobdescriptor (line 3) is redis, which registryd does not support; blob sizes are cached in this process's memory instead (blobdescriptorsize entries)"
        ]
    );
    assert_eq!(
        loaded.config.storage.cache.blob_size_entries(),
        registry::config::CacheConfig::UNLIMITED_ENTRIES
    );
}

/// The "Development configuration" example of the registry:2 configuration reference.
#[test]
fn registry2_development_example_loads() {
    let yaml = "\
version: 0.1
log:
  level: debug
storage:
    filesystem:
        rootdirectory: /var/lib/registry
http:
    addr: localhost:5000
    secret: asecretforlocaldevelopment
    debug:
        addr: localhost:5001
";
    let loaded = load(yaml, &[]);
    assert_eq!(
        loaded.warnings,
        [
            "config key http.secret (line 9): registryd does not need it (upload state lives in storage, so any instance can continue any upload); the key is ignored"
        ]
    );
    let config = loaded.config;
    assert_eq!(config.log.level, LogLevel::Debug);
    assert_eq!(config.http.addr, "localhost:5000");
    assert_eq!(
        config.http.secret.as_deref(),
        Some("asecretforlocaldevelopment")
    );
    assert_eq!(
        config.http.debug.map(|debug| debug.addr).as_deref(),
        Some("localhost:5001")
    );
}

/// The reference's "List of configuration options", with one storage driver and one auth
/// provider kept (registry:2 itself refuses more than one) and the proxy's placeholder
/// `[username]` lists written as strings.
const REFERENCE_OPTIONS: &str = r#"
version: 0.1
log:
  accesslog:
    disabled: true
  level: debug
  formatter: text
  fields:
    service: registry
    environment: staging
  hooks:
    - type: mail
      disabled: true
      levels:
        - panic
      options:
        smtp:
          addr: mail.example.com:25
          username: mailuser
          password: password
          insecure: true
        from: sender@example.com
        to:
          - errors@example.com
loglevel: debug # deprecated: use "log"
storage:
  filesystem:
    rootdirectory: /var/lib/registry
    maxthreads: 100
  tag:
    concurrencylimit: 8
  delete:
    enabled: false
  redirect:
    disable: false
  cache:
    blobdescriptor: redis
    blobdescriptorsize: 10000
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
    readonly:
      enabled: false
auth:
  htpasswd:
    realm: basic-realm
    path: /path/to/htpasswd
middleware:
  registry:
    - name: ARegistryMiddleware
      options:
        foo: bar
  repository:
    - name: ARepositoryMiddleware
      options:
        foo: bar
  storage:
    - name: cloudfront
      options:
        baseurl: https://my.cloudfronted.domain.com/
        privatekey: /path/to/pem
        keypairid: cloudfrontkeypairid
        duration: 3000s
        ipfilteredby: awsregion
        awsregion: us-east-1, use-east-2
        updatefrequency: 12h
        iprangesurl: https://ip-ranges.amazonaws.com/ip-ranges.json
  storage:
    - name: redirect
      options:
        baseurl: https://example.com/
catalog:
  maxentries: 1000
tags:
  maxtags: 1000
http:
  addr: localhost:5000
  prefix: /my/nested/registry/
  host: https://myregistryaddress.org:5000
  secret: asecretforlocaldevelopment
  relativeurls: false
  draintimeout: 60s
  tls:
    certificate: /path/to/x509/public
    key: /path/to/x509/private
    clientcas:
      - /path/to/ca.pem
      - /path/to/another/ca.pem
    clientauth: require-and-verify-client-cert
    minimumtls: tls1.2
    ciphersuites:
      - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
      - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    letsencrypt:
      cachefile: /path/to/cache-file
      email: emailused@letsencrypt.com
      hosts: [myregistryaddress.org]
      directoryurl: https://acme-v02.api.letsencrypt.org/directory
  debug:
    addr: localhost:5001
    prometheus:
      enabled: true
      path: /metrics
  headers:
    X-Content-Type-Options: [nosniff]
  http2:
    disabled: false
  h2c:
    enabled: false
notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      disabled: false
      url: https://my.listener.com/event
      # The reference writes `headers: <http.Header>`, a placeholder registry:2 refuses too.
      headers:
        Authorization: [Bearer asecret]
      timeout: 1s
      threshold: 10
      backoff: 1s
      ignoredmediatypes:
        - application/octet-stream
      ignore:
        mediatypes:
           - application/octet-stream
        actions:
           - pull
redis:
  tls:
    certificate: /path/to/cert.crt
    key: /path/to/key.pem
    rootcas:
      - /path/to/ca.pem
  addrs: [localhost:6379]
  password: asecret
  db: 0
  dialtimeout: 10ms
  readtimeout: 10ms
  writetimeout: 10ms
  maxidleconns: 16
  poolsize: 64
  connmaxidletime: 300s
  tls:
    enabled: false
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
  file:
    - file: /path/to/checked/file
      interval: 10s
  http:
    - uri: http://server.to.check/must/return/200
      headers:
        Authorization: [Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==]
      statuscode: 200
      timeout: 3s
      interval: 10s
      threshold: 3
  tcp:
    - addr: redis-server.domain.com:6379
      timeout: 3s
      interval: 10s
      threshold: 3
proxy:
  remoteurl: https://registry-1.docker.io
  username: username
  password: password
  exec:
    command: docker-credential-helper
    lifetime: 1h
  ttl: 168h
validation:
  manifests:
    urls:
      allow:
        - ^https?://([^/]+\.)*example\.com/
      deny:
        - ^https?://www\.example\.com/
    indexes:
      platforms: List
      platformlist:
      - architecture: amd64
        os: linux
"#;

#[test]
fn registry2_reference_options_load_with_warnings_only() {
    let loaded = load(REFERENCE_OPTIONS, &[]);
    let config = &loaded.config;
    assert_eq!(config.log.level, LogLevel::Debug);
    assert!(config.log.accesslog.disabled);
    assert_eq!(filesystem(config).maxthreads, 100);
    assert_eq!(config.storage.tag.concurrencylimit, 8);
    assert_eq!(
        config.storage.cache.blobdescriptor,
        Some(BlobDescriptorCache::Redis)
    );
    assert_eq!(config.http.prefix.as_deref(), Some("/my/nested/registry/"));
    assert_eq!(
        config.http.host.as_deref(),
        Some("https://myregistryaddress.org:5000")
    );
    assert_eq!(config.http.draintimeout, Some(Duration::from_secs(60)));
    let tls = config.http.tls.as_ref().map(|tls| {
        (
            tls.certificate.clone(),
            tls.key.clone(),
            tls.clientcas.len(),
            tls.clientauth,
            tls.minimumtls,
            tls.ciphersuites.len(),
        )
    });
    assert_eq!(
        tls,
        Some((
            PathBuf::from("/path/to/x509/public"),
            PathBuf::from("/path/to/x509/private"),
            2,
            ClientAuth::RequireAndVerifyClientCert,
            TlsVersion::Tls12,
            2
        ))
    );
    assert_eq!(
        config.http.debug.as_ref().map(|d| d.prometheus.enabled),
        Some(true)
    );
    assert_eq!(
        config.proxy.as_ref().map(|p| p.ttl),
        Some(Some(Duration::from_secs(168 * 3600)))
    );
    assert_eq!(
        config.auth,
        Some(AuthConfig::Htpasswd(HtpasswdConfig {
            realm: "basic-realm".to_owned(),
            path: PathBuf::from("/path/to/htpasswd"),
        }))
    );

    let urls = &config.validation.manifests.urls;
    assert_eq!(urls.allow, [r"^https?://([^/]+\.)*example\.com/"]);
    assert_eq!(urls.deny, [r"^https?://www\.example\.com/"]);
    let indexes = &config.validation.manifests.indexes;
    assert_eq!(
        indexes.platforms,
        IndexPlatforms::List,
        "read without regard to case"
    );
    assert_eq!(
        indexes.platformlist,
        [PlatformConfig {
            os: "linux".to_owned(),
            architecture: "amd64".to_owned(),
        }]
    );

    let mentioned: Vec<&str> = loaded
        .warnings
        .iter()
        .map(|warning| {
            warning
                .trim_start_matches("unknown ")
                .trim_start_matches("config key ")
                .split([' ', ':'])
                .next()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        mentioned,
        [
            "middleware.storage", // written twice; the later one wins
            "redis.tls",          // likewise
            "loglevel",
            "http.tls.letsencrypt",
            "log.hooks",
            "storage.filesystem.maxthreads",
            "storage.tag.concurrencylimit",
            "middleware",
            "http.secret",
            "http.h2c",
            "redis",
            "health.file",
            "health.http",
            "health.tcp",
            "proxy.exec",
            "proxy.ttl",
            "storage.cache.blobdescriptor", // redis: cached in memory instead
        ],
        "{:#?}",
        loaded.warnings
    );
}

// ---- defaults -------------------------------------------------------------------------------

#[test]
fn empty_document_gives_every_default() {
    let loaded = load("", &[]);
    assert_eq!(loaded.warnings, Vec::<String>::new());
    assert_eq!(loaded.config, Config::default());
}

#[test]
fn defaults_match_the_documented_values() {
    let config = Config::default();
    assert_eq!(config.version, "0.1");
    assert_eq!(config.log.level, LogLevel::Info);
    assert_eq!(config.log.formatter, LogFormatter::Text);
    assert_eq!(config.http.addr, ":5000");
    assert_eq!(config.http.net, Net::Tcp);
    assert_eq!(config.http.tls, None);
    assert_eq!(config.http.secret, None);
    assert_eq!(config.http.draintimeout, None);
    assert!(config.http.headers.is_empty());
    assert_eq!(filesystem(&config).rootdirectory, PathBuf::from("./data"));
    assert_eq!(filesystem(&config).maxthreads, 100);
    assert!(!filesystem(&config).directio);
    assert!(!config.storage.delete.enabled);
    assert!(!config.storage.redirect.disable);
    let purging = &config.storage.maintenance.uploadpurging;
    assert!(purging.enabled);
    assert_eq!(purging.age, Duration::from_secs(168 * 3600));
    assert_eq!(purging.interval, Duration::from_secs(24 * 3600));
    assert!(!purging.dryrun);
    assert!(!config.storage.maintenance.readonly.enabled);
    assert_eq!(config.storage.cache.blobdescriptor, None);
    assert_eq!(config.storage.cache.blobdescriptorsize, 10_000);
    assert_eq!(config.auth, None);
    assert!(config.access.is_empty());
    assert_eq!(config.catalog.maxentries, 1000);
    assert_eq!(config.tags.maxtags, 1000);
    assert_eq!(config.proxy, None);
}

#[test]
fn a_partial_section_keeps_the_defaults_of_the_keys_left_out() {
    let config = load(
        "storage:\n  maintenance:\n    uploadpurging:\n      age: 1h\n",
        &[],
    )
    .config;
    let purging = &config.storage.maintenance.uploadpurging;
    assert_eq!(purging.age, Duration::from_secs(3600));
    assert_eq!(purging.interval, Duration::from_secs(24 * 3600));
    assert!(purging.enabled);
}

#[test]
fn direct_io_is_read_from_the_file_and_the_environment() {
    let yaml = "storage:\n  filesystem:\n    rootdirectory: /srv/registry\n    directio: true\n";
    assert!(filesystem(&load(yaml, &[]).config).directio);
    let from_env = load("", &[("REGISTRY_STORAGE_FILESYSTEM_DIRECTIO", "true")]).config;
    assert!(filesystem(&from_env).directio);
    let error = load_error("storage:\n  filesystem:\n    directio: sometimes\n", &[]);
    assert!(error.contains("storage.filesystem.directio"), "{error}");
}

#[test]
fn storage_without_a_driver_uses_the_default_filesystem() {
    let config = load("storage:\n  delete:\n    enabled: true\n", &[]).config;
    assert_eq!(config.storage.driver, StorageDriverConfig::default());
    assert!(config.storage.delete.enabled);
}

#[test]
fn empty_values_mean_the_default() {
    let config = load("http:\n  addr:\nstorage:\n  inmemory:\n  delete:\n", &[]).config;
    assert_eq!(config.http.addr, ":5000");
    assert_eq!(config.storage.driver, StorageDriverConfig::InMemory);
}

#[test]
fn load_without_a_path_gives_the_defaults() {
    // Other engineers' tests may set REGISTRY_* variables in this process; compare only what
    // the process environment cannot plausibly touch.
    let loaded = Config::load(None);
    assert!(loaded.is_ok(), "{loaded:?}");
}

#[test]
fn load_reads_the_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().ok();
    let Some(dir) = dir else {
        panic!("no temporary directory")
    };
    let path = dir.path().join("config.yml");
    std::fs::write(&path, "version: 0.1\nhttp:\n  addr: :6000\n").ok();
    let loaded = Config::from_file(&path, []);
    assert_eq!(
        loaded.ok().map(|l| l.config.http.addr),
        Some(":6000".to_owned())
    );

    std::fs::write(&path, "version: 0.1\nhttp:\n  addr: [\n").ok();
    let error = Config::from_file(&path, [])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        error,
        format!(
            "config file {} line 3 column 9: unclosed bracket '['",
            path.display()
        )
    );
}

#[test]
fn missing_file_error_names_the_file() {
    let error = Config::from_file(Path::new("/nonexistent/x.yml"), []).err();
    assert!(matches!(error, Some(ConfigError::Read { .. })));
    assert_eq!(
        error.map(|e| e.to_string()).unwrap_or_default(),
        "cannot read config file /nonexistent/x.yml: No such file or directory"
    );
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let error = load_error("version: 0.1\nhttp:\n  addr: :5000\n    bad: [\n", &[]);
    assert!(error.starts_with("config line 4 column "), "{error}");
    assert!(!error.contains('\n'), "{error}");
}

#[test]
fn a_document_that_is_not_a_map_is_rejected() {
    let error = load_error("just a string\n", &[]);
    assert_eq!(
        error,
        "config line 1 column 1: expected a map of keys such as version, storage and http at the top level"
    );
}

// ---- reading values ----------------------------------------------------------------------

#[test]
fn string_keys_keep_numeric_looking_text() {
    let yaml = "version: 0.1\nhttp:\n  secret: 0123\n  host: 123456789012345678901234567890\nauth:\n  silly:\n    realm: 1.50\n    service: yes\n";
    let config = load(yaml, &[]).config;
    assert_eq!(config.http.secret.as_deref(), Some("0123"));
    assert_eq!(
        config.http.host.as_deref(),
        Some("123456789012345678901234567890")
    );
    let Some(AuthConfig::Silly(silly)) = config.auth else {
        panic!("expected silly auth")
    };
    assert_eq!(
        (silly.realm.as_str(), silly.service.as_str()),
        ("1.50", "yes")
    );
}

#[test]
fn booleans_accept_registry2_yaml_spellings() {
    let config = load(
        "storage:\n  delete:\n    enabled: yes\n  redirect:\n    disable: on\n",
        &[],
    )
    .config;
    assert!(config.storage.delete.enabled);
    assert!(config.storage.redirect.disable);
}

#[test]
fn choices_are_read_without_regard_to_case() {
    let config = load("log:\n  level: DEBUG\nhttp:\n  net: TCP\n", &[]).config;
    assert_eq!(config.log.level, LogLevel::Debug);
    assert_eq!(config.http.net, Net::Tcp);
}

#[test]
fn durations_use_go_syntax() {
    let yaml = "http:\n  draintimeout: 1m30s\nstorage:\n  maintenance:\n    uploadpurging:\n      age: 500ms\n      interval: 1.5h\n";
    let config = load(yaml, &[]).config;
    assert_eq!(config.http.draintimeout, Some(Duration::from_secs(90)));
    assert_eq!(
        config.storage.maintenance.uploadpurging.age,
        Duration::from_millis(500)
    );
    assert_eq!(
        config.storage.maintenance.uploadpurging.interval,
        Duration::from_secs(5400)
    );
}

#[test]
fn a_bare_number_duration_is_nanoseconds_with_a_warning() {
    let loaded = load("http:\n  draintimeout: 60\n", &[]);
    assert_eq!(
        loaded.config.http.draintimeout,
        Some(Duration::from_nanos(60))
    );
    assert_eq!(
        loaded.warnings,
        vec!["config key http.draintimeout (line 2): 60 has no unit, so it means 60 nanoseconds as in registry:2; write 60s for seconds".to_owned()]
    );
}

#[test]
fn a_malformed_duration_names_the_key() {
    let error = load_error(
        "storage:\n  maintenance:\n    uploadpurging:\n      age: a week\n",
        &[],
    );
    assert_eq!(
        error,
        "config key storage.maintenance.uploadpurging.age (line 4): expected a duration such as 10s, 5m or 168h, got \"a week\" (each part must be a number followed by a unit)"
    );
}

#[test]
fn deprecated_loglevel_sets_log_level_with_a_warning() {
    let loaded = load("loglevel: error\n", &[]);
    assert_eq!(loaded.config.log.level, LogLevel::Error);
    assert_eq!(
        loaded.warnings,
        vec!["config key loglevel (line 1) is deprecated; use log.level instead".to_owned()]
    );
    let config = load("loglevel: error\nlog:\n  level: warn\n", &[]).config;
    assert_eq!(config.log.level, LogLevel::Warn);
}

#[test]
fn a_repeated_key_uses_the_later_value_with_a_warning() {
    let loaded = load("http:\n  addr: :1\n  addr: :2\n", &[]);
    assert_eq!(loaded.config.http.addr, ":2");
    assert_eq!(
        loaded.warnings,
        vec![
            "config key http.addr is set twice (line 2 and line 3); the later value is used"
                .to_owned()
        ]
    );
}

// ---- errors and warnings --------------------------------------------------------------------

#[test]
fn wrong_type_names_the_key_and_the_line() {
    let error = load_error(
        "version: 0.1\nstorage:\n  delete:\n    enabled: maybe\n",
        &[],
    );
    assert_eq!(
        error,
        "config key storage.delete.enabled (line 4): expected a boolean (true or false), got \"maybe\""
    );
    let error = load_error("catalog:\n  maxentries: lots\n", &[]);
    assert_eq!(
        error,
        "config key catalog.maxentries (line 2): expected a whole number (0 or more), got \"lots\""
    );
    let error = load_error(
        "http:\n  tls:\n    certificate: /c\n    key: /k\n    clientcas: /ca.pem\n",
        &[],
    );
    assert_eq!(
        error,
        "config key http.tls.clientcas (line 5): expected a list, got \"/ca.pem\""
    );
}

#[test]
fn an_invalid_choice_lists_the_valid_ones() {
    let error = load_error("log:\n  level: trace\n", &[]);
    assert_eq!(
        error,
        "config key log.level (line 2): expected one of error, warn, info, debug, got \"trace\""
    );
}

#[test]
fn a_value_of_the_wrong_kind_reads_as_expected_then_got() {
    for (yaml, want) in [
        (
            "catalog:\n  maxentries: 1.5\n",
            "config key catalog.maxentries (line 2): expected a whole number (0 or more), got 1.5",
        ),
        (
            "http:\n  headers: {X-A: {b: c}}\n",
            "config key http.headers.X-A (line 2): expected a list, got a map",
        ),
        (
            "storage:\n  delete: true\n",
            "config key storage.delete (line 2): expected a map of keys, got true",
        ),
        (
            "http:\n  tls: {certificate: /c, key: /k, minimumtls: tls1.4}\n",
            "config key http.tls.minimumtls (line 2): expected one of tls1.2, tls1.3, got \"tls1.4\"",
        ),
        (
            "http:\n  net: udp\n",
            "config key http.net (line 2): expected one of tcp, got \"udp\"",
        ),
        (
            "http:\n  addr: [a]\n",
            "config key http.addr (line 2): expected a string, got a list",
        ),
    ] {
        assert_eq!(load_error(yaml, &[]), want, "{yaml}");
    }
}

#[test]
fn a_key_and_its_older_name_together_are_an_error() {
    let error = load_error(
        "storage:\n  cache:\n    blobdescriptor: inmemory\n    layerinfo: inmemory\n",
        &[],
    );
    assert_eq!(
        error,
        "config key storage.cache.layerinfo (line 4): blobdescriptor is set twice (once under its older name layerinfo); keep one"
    );
    let loaded = load("storage:\n  cache:\n    layerinfo: inmemory\n", &[]);
    assert_eq!(
        loaded.config.storage.cache.blobdescriptor,
        Some(BlobDescriptorCache::InMemory)
    );
}

#[test]
fn a_missing_required_key_set_by_its_variable_loads() {
    let loaded = load(
        "auth:\n  htpasswd:\n    realm: basic\n",
        &[("REGISTRY_AUTH_HTPASSWD_PATH", "/etc/htpasswd")],
    );
    assert!(matches!(
        loaded.config.auth,
        Some(AuthConfig::Htpasswd(HtpasswdConfig { ref path, .. })) if path == Path::new("/etc/htpasswd")
    ));
}

#[test]
fn a_missing_required_key_names_it_and_its_variable() {
    let error = load_error("auth:\n  htpasswd:\n    realm: basic\n", &[]);
    assert_eq!(
        error,
        "config key auth.htpasswd.path: required but missing; set it in the config file or with REGISTRY_AUTH_HTPASSWD_PATH"
    );
}

#[test]
fn unknown_key_warns_with_its_path_and_a_suggestion() {
    let loaded = load(
        "http:\n  adr: :6000\nstorage:\n  filesystem:\n    rootdir: /x\nfoo: bar\n",
        &[],
    );
    assert_eq!(
        loaded.warnings,
        // In key order: serde_json's map is sorted.
        vec![
            "unknown config key foo (line 6) is ignored".to_owned(),
            "unknown config key http.adr (line 2) is ignored; did you mean http.addr?".to_owned(),
            "unknown config key storage.filesystem.rootdir (line 5) is ignored; did you mean storage.filesystem.rootdirectory?".to_owned(),
        ]
    );
    assert_eq!(loaded.config.http.addr, ":5000");
}

#[test]
fn two_swapped_letters_suggest_the_key_they_spell() {
    let loaded = load("http:\n  tsl: {}\n", &[]);
    assert_eq!(
        loaded.warnings,
        ["unknown config key http.tsl (line 2) is ignored; did you mean http.tls?"]
    );
}

#[test]
fn unsupported_storage_driver_errors() {
    let error = load_error("storage:\n  azure:\n    accountname: a\n", &[]);
    assert_eq!(
        error,
        "config key storage.azure (line 2): storage driver azure is not supported yet; use filesystem, s3 or inmemory"
    );
}

fn s3(config: &Config) -> &S3Config {
    match &config.storage.driver {
        StorageDriverConfig::S3(params) => params,
        other => panic!("expected the s3 driver, got {other:?}"),
    }
}

/// registry:2's reference example of `storage.s3`, every key of it.
const REGISTRY2_S3: &str = "\
version: 0.1
storage:
  s3:
    accesskey: awsaccesskey
    secretkey: awssecretkey
    region: us-west-1
    regionendpoint: http://myobjects.local
    forcepathstyle: true
    accelerate: false
    bucket: bucketname
    encrypt: true
    keyid: mykeyid
    secure: true
    v4auth: true
    chunksize: 5242880
    multipartcopychunksize: 33554432
    multipartcopymaxconcurrency: 100
    multipartcopythresholdsize: 33554432
    rootdirectory: /s3/object/name/prefix
    usedualstack: false
    usefipsendpoint: false
    loglevel: debug
";

#[test]
fn registry2_s3_section_loads_and_warns_about_the_keys_it_ignores() {
    let loaded = load(REGISTRY2_S3, &[]);
    assert_eq!(
        *s3(&loaded.config),
        S3Config {
            accesskey: Some("awsaccesskey".to_owned()),
            secretkey: Some("awssecretkey".to_owned()),
            sessiontoken: None,
            region: "us-west-1".to_owned(),
            regionendpoint: Some("http://myobjects.local".to_owned()),
            bucket: "bucketname".to_owned(),
            rootdirectory: "/s3/object/name/prefix".to_owned(),
            secure: true,
            v4auth: true,
            chunksize: 5 << 20,
            forcepathstyle: true,
            encrypt: true,
            keyid: Some("mykeyid".to_owned()),
        }
    );
    let ignored: Vec<&str> = loaded
        .warnings
        .iter()
        .filter_map(|warning| warning.strip_prefix("config key storage.s3."))
        .filter_map(|rest| rest.split_once(' ').map(|(key, _)| key))
        .collect();
    assert_eq!(
        ignored,
        [
            "accelerate",
            "multipartcopychunksize",
            "multipartcopymaxconcurrency",
            "multipartcopythresholdsize",
            "usedualstack",
            "usefipsendpoint",
            "loglevel"
        ]
    );
    assert_eq!(
        loaded.warnings.len(),
        ignored.len(),
        "{:?}",
        loaded.warnings
    );
    assert_eq!(
        loaded.warnings[0],
        "config key storage.s3.accelerate (line 9): not supported; set regionendpoint to the \
         bucket's accelerate endpoint instead; ignored"
    );
}

#[test]
fn s3_takes_registry2_defaults_for_the_keys_left_out() {
    let config = load(
        "storage:\n  s3:\n    bucket: b\n    region: eu-west-1\n",
        &[],
    )
    .config;
    let s3 = s3(&config);
    assert_eq!(
        (s3.accesskey.as_deref(), s3.secretkey.as_deref()),
        (None, None)
    );
    assert!(s3.secure && s3.v4auth && !s3.forcepathstyle && !s3.encrypt);
    assert_eq!(s3.chunksize, 10 << 20);
    assert_eq!(s3.rootdirectory, "");
    assert!(!config.storage.redirect.disable);
}

#[test]
fn s3_is_configured_by_environment_variables_alone() {
    let config = load(
        BASE,
        &[
            ("REGISTRY_STORAGE", "s3"),
            ("REGISTRY_STORAGE_S3_BUCKET", "images"),
            ("REGISTRY_STORAGE_S3_REGION", "us-east-1"),
            (
                "REGISTRY_STORAGE_S3_REGIONENDPOINT",
                "http://127.0.0.1:9000",
            ),
            ("REGISTRY_STORAGE_S3_FORCEPATHSTYLE", "true"),
            ("REGISTRY_STORAGE_S3_SECURE", "false"),
            ("REGISTRY_STORAGE_S3_CHUNKSIZE", "20971520"),
            ("REGISTRY_STORAGE_S3_ACCESSKEY", "AKIA"),
            ("REGISTRY_STORAGE_S3_SECRETKEY", "hunter2"),
            ("REGISTRY_STORAGE_S3_ROOTDIRECTORY", "/registry"),
        ],
    )
    .config;
    let s3 = s3(&config);
    assert_eq!(s3.bucket, "images");
    assert_eq!(s3.regionendpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert!(s3.forcepathstyle && !s3.secure);
    assert_eq!(s3.chunksize, 20 << 20);
    assert_eq!(s3.secretkey.as_deref(), Some("hunter2"));
    assert_eq!(s3.rootdirectory, "/registry");
}

#[test]
fn s3_without_a_bucket_names_the_key_and_its_variable() {
    let error = load_error("storage:\n  s3:\n    region: us-east-1\n", &[]);
    assert_eq!(
        error,
        "config key storage.s3.bucket: required but missing; set it in the config file or with REGISTRY_STORAGE_S3_BUCKET"
    );
}

#[test]
fn s3_secrets_are_redacted_when_printed() {
    let config = load(
        "storage:\n  s3:\n    bucket: b\n    region: r\n    accesskey: AKIA\n    secretkey: hunter2\n    sessiontoken: tok\n",
        &[],
    )
    .config
    .redacted();
    let s3 = s3(&config);
    assert_eq!(s3.accesskey.as_deref(), Some("AKIA"));
    assert_eq!(s3.secretkey.as_deref(), Some("<redacted>"));
    assert_eq!(s3.sessiontoken.as_deref(), Some("<redacted>"));
}

#[test]
fn s3_settings_the_driver_cannot_use_stop_start_up() {
    let build = |extra: &str| {
        let yaml = format!("storage:\n  s3:\n    bucket: b\n    region: r\n{extra}");
        match registry::Registry::from_config(&load(&yaml, &[]).config) {
            Ok(_) => "built".to_owned(),
            Err(error) => error.to_string(),
        }
    };
    assert_eq!(
        build("    v4auth: false\n"),
        "config key storage.s3.v4auth: only Version 4 signatures are supported (S3 and its \
         clones have dropped Version 2); remove v4auth or set it to true"
    );
    assert_eq!(
        build("    chunksize: 1048576\n"),
        "config key storage.s3: chunksize 1048576 is outside S3's part sizes (5242880 to \
         5368709120 bytes)"
    );
    assert_eq!(
        build("    accesskey: AKIA\n"),
        "config key storage.s3: accesskey and secretkey go together: give both or neither"
    );
}

#[test]
fn unknown_storage_driver_errors() {
    let error = load_error("storage:\n  ceph: {}\n", &[]);
    assert!(
        error.starts_with("config key storage.ceph (line 2): unknown storage driver ceph;"),
        "{error}"
    );
}

#[test]
fn two_storage_drivers_error() {
    let error = load_error("storage:\n  filesystem: {}\n  inmemory:\n", &[]);
    assert_eq!(
        error,
        "config key storage (line 1): more than one storage driver is configured (filesystem and inmemory); keep exactly one"
    );
}

#[test]
fn two_auth_providers_error() {
    let error = load_error(
        "auth:\n  silly: {realm: a, service: b}\n  htpasswd: {realm: a, path: /p}\n",
        &[],
    );
    assert_eq!(
        error,
        "config key auth (line 1): more than one auth provider is configured (htpasswd and silly); keep exactly one"
    );
}

#[test]
fn version_other_than_0_1_errors() {
    let error = load_error("version: 0.2\n", &[]);
    assert_eq!(
        error,
        "config key version (line 1): registryd reads version 0.1 configuration files, got \"0.2\"; set version: 0.1"
    );
}

#[test]
fn token_auth_needs_a_key_source() {
    let error = load_error(
        "auth:\n  token:\n    realm: https://auth/token\n    service: registry\n    issuer: auth\n",
        &[],
    );
    assert!(
        error.starts_with(
            "config key auth.token.rootcertbundle: required unless auth.token.jwks is set"
        ),
        "{error}"
    );
    let config = load(
        "auth:\n  token:\n    realm: https://auth/token\n    service: registry\n    issuer: auth\n    jwks: /jwks.json\n    signingalgorithms: [RS256]\n",
        &[],
    )
    .config;
    let Some(AuthConfig::Token(token)) = config.auth else {
        panic!("expected token auth")
    };
    assert_eq!(token.jwks, Some(PathBuf::from("/jwks.json")));
    assert_eq!(token.signingalgorithms, ["RS256"]);
}

#[test]
fn auth_none_means_no_authentication() {
    assert_eq!(load("auth: none\n", &[]).config.auth, None);
    assert_eq!(load("auth: {}\n", &[]).config.auth, None);
}

#[test]
fn tls_without_a_certificate_is_off_as_in_registry2() {
    let loaded = load("http:\n  tls:\n    clientcas: [/ca.pem]\n", &[]);
    assert_eq!(loaded.config.http.tls, None);
    assert_eq!(
        loaded.warnings,
        vec![
            "config key http.tls (line 2) has no certificate, so TLS is off (as in registry:2)"
                .to_owned()
        ]
    );
}

#[test]
fn lets_encrypt_without_a_certificate_is_an_error() {
    let error = load_error(
        "http:\n  tls:\n    letsencrypt:\n      cachefile: /c\n      email: a@b\n",
        &[],
    );
    assert_eq!(
        error,
        "config key http.tls.letsencrypt (line 3): Let's Encrypt is not supported yet; set http.tls.certificate and http.tls.key to certificate files instead"
    );
}

#[test]
fn tls_key_is_required_with_a_certificate() {
    let error = load_error("http:\n  tls:\n    certificate: /c.pem\n", &[]);
    assert_eq!(
        error,
        "config key http.tls.key: required but missing; set it in the config file or with REGISTRY_HTTP_TLS_KEY"
    );
}

// ---- environment overrides ----------------------------------------------------------------

const BASE: &str = "\
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: false
http:
  addr: :5000
";

#[test]
fn env_overrides_rootdirectory() {
    let config = load(
        BASE,
        &[("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/somewhere")],
    )
    .config;
    assert_eq!(
        filesystem(&config).rootdirectory,
        PathBuf::from("/somewhere")
    );
}

#[test]
fn env_overrides_http_addr() {
    let loaded = load(BASE, &[("REGISTRY_HTTP_ADDR", ":5001")]);
    assert_eq!(loaded.config.http.addr, ":5001");
    assert_eq!(loaded.warnings, Vec::<String>::new());
}

#[test]
fn env_overrides_log_level() {
    let config = load(BASE, &[("REGISTRY_LOG_LEVEL", "debug")]).config;
    assert_eq!(config.log.level, LogLevel::Debug);
}

#[test]
fn env_overrides_delete_enabled_as_a_boolean() {
    let config = load(BASE, &[("REGISTRY_STORAGE_DELETE_ENABLED", "true")]).config;
    assert!(config.storage.delete.enabled);
}

#[test]
fn env_sets_a_header_by_name() {
    let config = load(
        BASE,
        &[("REGISTRY_HTTP_HEADERS_X-CONTENT-TYPE-OPTIONS", "[nosniff]")],
    )
    .config;
    assert_eq!(
        config.http.headers,
        BTreeMap::from([(
            "x-content-type-options".to_owned(),
            vec!["nosniff".to_owned()]
        )])
    );
    // An existing header is replaced, keeping its spelling.
    let yaml = format!("{BASE}  headers:\n    X-Content-Type-Options: [nosniff]\n");
    let config = load(
        &yaml,
        &[("REGISTRY_HTTP_HEADERS_X-CONTENT-TYPE-OPTIONS", "[other]")],
    )
    .config;
    assert_eq!(
        config.http.headers,
        BTreeMap::from([(
            "X-Content-Type-Options".to_owned(),
            vec!["other".to_owned()]
        )])
    );
}

#[test]
fn env_values_for_lists_and_maps_are_yaml() {
    let config = load(
        BASE,
        &[
            ("REGISTRY_HTTP_TLS", "{certificate: /c.pem, key: /k.pem}"),
            ("REGISTRY_HTTP_TLS_CLIENTCAS", "[/a.pem, /b.pem]"),
        ],
    )
    .config;
    assert_eq!(
        config.http.tls.map(|tls| tls.clientcas),
        Some(vec![PathBuf::from("/a.pem"), PathBuf::from("/b.pem")])
    );
}

#[test]
fn env_sets_list_items_by_index_creating_missing_maps() {
    let config = load(
        "",
        &[
            ("REGISTRY_HTTP_TLS_CERTIFICATE", "/c.pem"),
            ("REGISTRY_HTTP_TLS_KEY", "/k.pem"),
            ("REGISTRY_HTTP_TLS_CLIENTCAS_0", "/a.pem"),
            ("REGISTRY_HTTP_TLS_CLIENTCAS_1", "/b.pem"),
        ],
    )
    .config;
    let tls = config.http.tls;
    assert_eq!(
        tls.as_ref().map(|tls| tls.certificate.clone()),
        Some(PathBuf::from("/c.pem"))
    );
    assert_eq!(
        tls.map(|tls| tls.clientcas),
        Some(vec![PathBuf::from("/a.pem"), PathBuf::from("/b.pem")])
    );
}

#[test]
fn env_list_index_past_the_end_errors() {
    let error = load_error(BASE, &[("REGISTRY_HTTP_TLS_CLIENTCAS_2", "/a.pem")]);
    assert_eq!(
        error,
        "environment variable REGISTRY_HTTP_TLS_CLIENTCAS_2: index 2 is past the end of the list, which has 0 items; use an index from 0 to 0"
    );
}

#[test]
fn env_var_names_match_keys_without_regard_to_case() {
    let config = load(
        BASE,
        &[
            ("REGISTRY_storage_filesystem_RootDirectory", "/lower"),
            ("REGISTRY_Http_Addr", ":7000"),
        ],
    )
    .config;
    assert_eq!(filesystem(&config).rootdirectory, PathBuf::from("/lower"));
    assert_eq!(config.http.addr, ":7000");
}

#[test]
fn the_keys_the_environment_set_are_listed_with_their_variables() {
    let loaded = load(
        "",
        &[
            ("REGISTRY_STORAGE", "inmemory"),
            ("REGISTRY_HTTP_ADDR", ":7000"),
            ("REGISTRY_DUCKS", "quack"),
        ],
    );
    let listed: Vec<String> = loaded.from_env.iter().map(ToString::to_string).collect();
    assert_eq!(
        listed,
        [
            "http.addr (REGISTRY_HTTP_ADDR)",
            "storage (REGISTRY_STORAGE)"
        ],
        "in the order applied; a variable that sets nothing is a warning, not a setting"
    );
    assert!(load("", &[]).from_env.is_empty());
}

#[test]
fn the_prefix_must_be_upper_case() {
    let loaded = load(BASE, &[("registry_HTTP_ADDR", ":7000")]);
    assert_eq!(loaded.config.http.addr, ":5000");
    assert_eq!(loaded.warnings, Vec::<String>::new());
}

#[test]
fn registry_storage_inmemory_selects_the_driver_and_keeps_other_storage_settings() {
    let yaml = "storage:\n  filesystem:\n    rootdirectory: /x\n  delete:\n    enabled: true\n  maintenance:\n    readonly:\n      enabled: true\n  redirect:\n    disable: true\n  cache:\n    blobdescriptor: inmemory\n";
    let loaded = load(yaml, &[("REGISTRY_STORAGE", "inmemory")]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let storage = loaded.config.storage;
    assert_eq!(storage.driver, StorageDriverConfig::InMemory);
    assert!(storage.delete.enabled);
    assert!(storage.maintenance.readonly.enabled);
    assert!(storage.redirect.disable);
    assert_eq!(
        storage.cache.blobdescriptor,
        Some(BlobDescriptorCache::InMemory)
    );
}

#[test]
fn registry_storage_applies_before_its_sub_keys() {
    // Lexical order, as registry:2: REGISTRY_STORAGE < REGISTRY_STORAGE_FILESYSTEM_...
    let config = load(
        "storage: inmemory\n",
        &[
            ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/tmp/testroot"),
            ("REGISTRY_STORAGE", "filesystem"),
        ],
    )
    .config;
    assert_eq!(
        filesystem(&config).rootdirectory,
        PathBuf::from("/tmp/testroot")
    );
}

#[test]
fn registry_storage_names_an_unsupported_driver() {
    let error = load_error(BASE, &[("REGISTRY_STORAGE", "swift")]);
    assert_eq!(
        error,
        "config key storage.swift (set by REGISTRY_STORAGE): storage driver swift is not supported yet; use filesystem, s3 or inmemory"
    );
    let error = load_error(BASE, &[("REGISTRY_STORAGE", "floppy")]);
    assert_eq!(
        error,
        "environment variable REGISTRY_STORAGE: expected one of filesystem, inmemory, s3, got \"floppy\""
    );
}

#[test]
fn registry_auth_htpasswd_builds_the_auth_section() {
    let config = load(
        BASE,
        &[
            ("REGISTRY_AUTH", "htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_REALM", "Registry Realm"),
            ("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd"),
        ],
    )
    .config;
    assert_eq!(
        config.auth,
        Some(AuthConfig::Htpasswd(HtpasswdConfig {
            realm: "Registry Realm".to_owned(),
            path: PathBuf::from("/auth/htpasswd"),
        }))
    );
}

#[test]
fn registry_auth_replaces_another_provider() {
    let yaml = "auth:\n  silly:\n    realm: a\n    service: b\n";
    let config = load(
        yaml,
        &[
            ("REGISTRY_AUTH", "htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_REALM", "r"),
            ("REGISTRY_AUTH_HTPASSWD_PATH", "/p"),
        ],
    )
    .config;
    assert!(matches!(config.auth, Some(AuthConfig::Htpasswd(_))));
}

#[test]
fn env_wrong_type_names_the_key_and_the_variable() {
    let error = load_error(BASE, &[("REGISTRY_STORAGE_DELETE_ENABLED", "sometimes")]);
    assert_eq!(
        error,
        "config key storage.delete.enabled (set by REGISTRY_STORAGE_DELETE_ENABLED): expected a boolean (true or false), got \"sometimes\""
    );
}

#[test]
fn env_invalid_yaml_for_a_list_names_the_variable() {
    let error = load_error(BASE, &[("REGISTRY_HTTP_HEADERS_X-FOO", "[unclosed")]);
    assert!(
        error.starts_with("environment variable REGISTRY_HTTP_HEADERS_X-FOO: the value for config key http.headers.x-foo is not valid YAML"),
        "{error}"
    );
}

#[test]
fn env_values_for_string_keys_are_literal() {
    let config = load(
        BASE,
        &[
            ("REGISTRY_HTTP_SECRET", "#not a comment: [x"),
            ("REGISTRY_HTTP_HOST", "'https://quoted.example'"),
        ],
    )
    .config;
    assert_eq!(config.http.secret.as_deref(), Some("#not a comment: [x"));
    assert_eq!(config.http.host.as_deref(), Some("https://quoted.example"));
}

#[test]
fn an_empty_env_value_resets_the_key() {
    let config = load(BASE, &[("REGISTRY_HTTP_ADDR", "")]).config;
    assert_eq!(config.http.addr, ":5000");
}

#[test]
fn env_var_that_matches_nothing_warns() {
    let loaded = load(
        BASE,
        &[
            ("REGISTRY_DUCKS", "quack"),
            ("REGISTRY_PORT_5000_TCP_ADDR", "10.0.0.1"),
            ("REGISTRY_HTTP_ADDR_EXTRA", "x"),
            ("OTHER_VARIABLE", "x"),
        ],
    );
    assert_eq!(
        loaded.warnings,
        vec![
            "environment variable REGISTRY_DUCKS matches no configuration key; it is ignored".to_owned(),
            "environment variable REGISTRY_HTTP_ADDR_EXTRA matches no configuration key; it is ignored".to_owned(),
            "environment variable REGISTRY_PORT_5000_TCP_ADDR matches no configuration key; it is ignored".to_owned(),
        ]
    );
}

#[test]
fn configuration_path_variable_is_not_an_override() {
    let loaded = load(
        BASE,
        &[("REGISTRY_CONFIGURATION_PATH", "/etc/registry/config.yml")],
    );
    assert_eq!(loaded.warnings, Vec::<String>::new());
    assert_eq!(loaded.config, load(BASE, &[]).config);
}

#[test]
fn env_sets_free_form_fields() {
    let config = load(BASE, &[("REGISTRY_LOG_FIELDS_ENVIRONMENT", "staging")]).config;
    assert_eq!(
        config.log.fields.get("environment"),
        Some(&serde_json::json!("staging"))
    );
}

#[test]
fn env_override_into_an_unsupported_section_still_warns_about_the_section() {
    let loaded = load(BASE, &[("REGISTRY_REDIS_ADDR", "localhost:6379")]);
    assert_eq!(
        loaded.warnings,
        vec!["config key redis (set by REGISTRY_REDIS_ADDR): redis is not supported yet; the section is ignored".to_owned()]
    );
}

#[test]
fn env_sets_the_pull_through_cache_and_its_unsupported_keys_warn() {
    let loaded = load(
        BASE,
        &[
            ("REGISTRY_PROXY_REMOTEURL", "https://registry-1.docker.io"),
            ("REGISTRY_PROXY_USERNAME", "robot"),
            ("REGISTRY_PROXY_PASSWORD", "secret"),
        ],
    );
    let proxy = loaded.config.proxy.expect("proxy section");
    assert_eq!(proxy.remoteurl, "https://registry-1.docker.io");
    assert_eq!(proxy.username.as_deref(), Some("robot"));
    assert_eq!(proxy.password.as_deref(), Some("secret"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    let loaded = load(
        "proxy:\n  remoteurl: https://registry-1.docker.io\n  ttl: 168h\n",
        &[],
    );
    assert_eq!(
        loaded.warnings,
        vec!["config key proxy.ttl (line 3): expiring cached content by age is not supported yet; it is kept until deleted or collected".to_owned()]
    );
}

// ---- validation -----------------------------------------------------------------------------

fn linux(architecture: &str) -> OsArchitecture {
    OsArchitecture {
        os: "linux".to_owned(),
        architecture: architecture.to_owned(),
    }
}

#[test]
fn validation_defaults_to_registry2s_refuse_urls_and_require_every_child() {
    let config = load("", &[]).config;
    assert!(config.validation.is_enabled());
    assert_eq!(
        config.validation.manifest_validation(),
        Ok(ManifestValidation {
            urls: UrlPolicy::nothing(),
            index_children: IndexChildren::AllRequired,
        })
    );
}

#[test]
fn the_validation_section_becomes_the_content_layers_checks() {
    let loaded = load(
        "
validation:
  manifests:
    urls:
      allow: ['^https://cdn\\.example\\.com/']
      deny: [secret]
    indexes:
      platforms: list
      platformlist:
        - os: linux
          architecture: amd64
        - os: linux
          architecture: arm64
",
        &[],
    );
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let validation = loaded
        .config
        .validation
        .manifest_validation()
        .expect("valid patterns");
    assert!(validation.urls.allows("https://cdn.example.com/layer"));
    assert!(
        !validation
            .urls
            .allows("https://cdn.example.com/secret/layer")
    );
    assert!(!validation.urls.allows("https://other.example.com/layer"));
    assert_eq!(
        validation.index_children,
        IndexChildren::PlatformsRequired(vec![linux("amd64"), linux("arm64")])
    );

    let none = load("validation: {manifests: {indexes: {platforms: none}}}", &[]).config;
    assert_eq!(
        none.validation
            .manifest_validation()
            .map(|v| v.index_children),
        Ok(IndexChildren::NoneRequired)
    );
}

#[test]
fn validation_is_set_by_environment_variables_like_every_key() {
    let loaded = load(
        "",
        &[
            (
                "REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW",
                "['^https://a/', '^https://b/']",
            ),
            ("REGISTRY_VALIDATION_MANIFESTS_URLS_DENY_0", "forbidden"),
            ("REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMS", "LIST"),
            (
                "REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMLIST_0_OS",
                "linux",
            ),
            (
                "REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMLIST_0_ARCHITECTURE",
                "riscv64",
            ),
        ],
    );
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let validation = &loaded.config.validation;
    assert_eq!(
        validation.manifests.urls.allow,
        ["^https://a/", "^https://b/"]
    );
    assert_eq!(validation.manifests.urls.deny, ["forbidden"]);
    assert_eq!(validation.manifests.indexes.platforms, IndexPlatforms::List);
    assert_eq!(
        validation.manifest_validation().map(|v| v.index_children),
        Ok(IndexChildren::PlatformsRequired(vec![linux("riscv64")]))
    );

    let disabled = load("", &[("REGISTRY_VALIDATION_DISABLED", "true")]).config;
    assert!(!disabled.validation.is_enabled());
    assert_eq!(
        disabled.validation.manifest_validation(),
        Ok(ManifestValidation::disabled())
    );
}

#[test]
fn an_invalid_url_pattern_names_its_key_and_origin() {
    let error = load_error(
        "validation:\n  manifests:\n    urls:\n      allow: ['^https://ok/', '(unclosed']\n",
        &[],
    );
    assert!(
        error.starts_with("config key validation.manifests.urls.allow[1] (line 4"),
        "{error}"
    );
    assert!(error.contains("not a valid regular expression"), "{error}");
    assert!(!error.contains('\n'), "{error}");
    assert!(error.contains("unclosed group"), "{error}");
    let error = load_error(
        "",
        &[("REGISTRY_VALIDATION_MANIFESTS_URLS_DENY", "['[z-a]']")],
    );
    assert!(
        error.starts_with("config key validation.manifests.urls.deny[0]"),
        "{error}"
    );
}

#[test]
fn a_platform_entry_without_its_architecture_names_the_key() {
    let error = load_error(
        "validation: {manifests: {indexes: {platforms: list, platformlist: [{os: linux}]}}}",
        &[],
    );
    assert!(
        error.starts_with(
            "config key validation.manifests.indexes.platformlist[0].architecture: required but missing"
        ),
        "{error}"
    );
}

#[test]
fn the_deprecated_enabled_switch_and_an_empty_platform_list_warn() {
    let loaded = load("validation:\n  disabled: true\n  enabled: false\n", &[]);
    assert!(!loaded.config.validation.is_enabled());
    assert_eq!(
        loaded.warnings,
        [
            "config key validation.enabled (line 3) is deprecated and false does not turn validation off (as in registry:2); use validation.disabled: true"
        ]
    );

    let loaded = load("validation:\n  disabled: true\n  enabled: true\n", &[]);
    assert!(loaded.config.validation.is_enabled(), "enabled: true wins");
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);

    let loaded = load("validation: {manifests: {indexes: {platforms: list}}}", &[]);
    assert_eq!(
        loaded
            .config
            .validation
            .manifest_validation()
            .map(|v| v.index_children),
        Ok(IndexChildren::AllRequired)
    );
    assert!(
        loaded.warnings[0].starts_with(
            "config key validation.manifests.indexes.platforms (line 1) is list but platformlist is empty"
        ),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn a_registry_built_from_a_config_validates_manifests_as_it_says() {
    let config = load(
        "storage: inmemory\nvalidation: {manifests: {indexes: {platforms: none}, urls: {allow: [x]}}}",
        &[],
    )
    .config;
    let registry = registry::Registry::from_config(&config).expect("registry");
    let validation = &registry.content().options().manifest_validation;
    assert_eq!(validation.index_children, IndexChildren::NoneRequired);
    assert_eq!(
        validation.urls,
        UrlPolicy::new(&["x"], &[]).expect("pattern")
    );

    let mut broken = config;
    broken.validation.manifests.urls.deny = vec!["(".to_owned()];
    let error = registry::Registry::from_config(&broken)
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    assert!(
        error.starts_with(
            "config key validation.manifests.urls.deny[0]: not a valid regular expression"
        ),
        "{error}"
    );
}

#[test]
fn an_unknown_validation_key_is_a_warning_with_a_suggestion() {
    let loaded = load(
        "validation:\n  manifests:\n    url:\n      allow: [x]\n",
        &[],
    );
    assert_eq!(
        loaded.warnings,
        [
            "unknown config key validation.manifests.url (line 3) is ignored; did you mean validation.manifests.urls?"
        ]
    );
}

// ---- printing -------------------------------------------------------------------------------

#[test]
fn redacted_hides_secrets_and_keeps_the_rest() {
    let config = load(REFERENCE_OPTIONS, &[]).config.redacted();
    assert_eq!(config.http.secret.as_deref(), Some("<redacted>"));
    assert_eq!(
        config.proxy.as_ref().and_then(|p| p.password.as_deref()),
        Some("<redacted>")
    );
    assert_eq!(
        config.proxy.as_ref().and_then(|p| p.username.as_deref()),
        Some("username")
    );
    let redis = config.redis.clone().unwrap_or_default();
    assert_eq!(redis["password"], serde_json::json!("<redacted>"));
    assert_eq!(redis["db"], serde_json::json!(0));
    assert_eq!(
        config.health.http[0]["headers"]["Authorization"],
        serde_json::json!("<redacted>")
    );
    assert_eq!(
        config.log.hooks[0]["options"]["smtp"]["password"],
        serde_json::json!("<redacted>")
    );
    assert_eq!(config.http.addr, "localhost:5000");
    let printed = serde_json::to_string(&config).unwrap_or_default();
    assert!(!printed.contains("asecret"), "{printed}");
}

#[test]
fn effective_config_round_trips_through_json() {
    // JSON is YAML, so `registryd config check` output can be fed back in.
    for yaml in [REGISTRY2_IMAGE_CONFIG, REFERENCE_OPTIONS, BASE, ""] {
        let config = load(yaml, &[]).config;
        let printed = serde_json::to_string_pretty(&config).unwrap_or_default();
        let reloaded = load(&printed, &[]).config;
        assert_eq!(reloaded, config, "{printed}");
    }
}

#[test]
fn an_empty_unsupported_section_does_not_warn() {
    let loaded = load("notifications:\nhealth: ~\n", &[]);
    assert_eq!(loaded.warnings, Vec::<String>::new());
    assert!(loaded.config.notifications.is_empty());
    assert_eq!(
        loaded.config.health,
        registry::config::HealthConfig::default()
    );
}

#[test]
fn out_of_range_numbers_name_the_key() {
    let error = load_error("catalog:\n  maxentries: -1\n", &[]);
    assert_eq!(
        error,
        "config key catalog.maxentries (line 2): expected a whole number (0 or more), got -1"
    );
}

#[test]
fn a_section_of_the_wrong_shape_names_the_key() {
    let error = load_error("storage:\n  - filesystem\n", &[]);
    assert_eq!(
        error,
        "config key storage (line 1): expected a map with one storage driver (filesystem, s3 or inmemory), got a list"
    );
}

// ---- access rules (auth.access) -------------------------------------------------------------

const ACCESS_RULES: &str = r#"
auth:
  htpasswd: { realm: Registry, path: /etc/registry/htpasswd }
  access:
    - { users: [anonymous, "*"], repositories: ["public/*"], actions: [pull] }
    - { users: [ci], repositories: ["team/*"], actions: [pull, push] }
    - { users: [admin], repositories: ["*"], actions: ["*"] }
"#;

fn rule(users: &[&str], repositories: &[&str], actions: &[RuleAction]) -> AccessRule {
    AccessRule {
        users: users.iter().map(|user| (*user).to_owned()).collect(),
        repositories: repositories.iter().map(|repo| (*repo).to_owned()).collect(),
        actions: actions.to_vec(),
    }
}

fn example_rules() -> Vec<AccessRule> {
    vec![
        rule(&["anonymous", "*"], &["public/*"], &[RuleAction::Pull]),
        rule(&["ci"], &["team/*"], &[RuleAction::Pull, RuleAction::Push]),
        rule(&["admin"], &["*"], &[RuleAction::All]),
    ]
}

#[test]
fn access_rules_load_beside_the_provider() {
    let loaded = load(ACCESS_RULES, &[]);
    assert_eq!(loaded.warnings, Vec::<String>::new());
    assert_eq!(
        loaded.config.auth,
        Some(AuthConfig::Htpasswd(HtpasswdConfig {
            realm: "Registry".to_owned(),
            path: PathBuf::from("/etc/registry/htpasswd"),
        }))
    );
    assert_eq!(loaded.config.access, example_rules());
    assert!(loaded.config.access_rules().is_some());
}

#[test]
fn access_rules_work_with_every_provider() {
    let access = "  access:\n    - {users: [ci], repositories: [a], actions: [pull]}\n";
    for provider in [
        "  silly: {realm: r, service: s}\n",
        "  token: {realm: https://auth/token, service: registry, issuer: auth, jwks: /jwks.json}\n",
    ] {
        let config = load(&format!("auth:\n{provider}{access}"), &[]).config;
        assert!(config.auth.is_some(), "{provider}");
        assert_eq!(config.access, [rule(&["ci"], &["a"], &[RuleAction::Pull])]);
    }
}

#[test]
fn without_access_rules_any_authenticated_user_may_do_everything() {
    let config = load(
        "auth:\n  htpasswd: {realm: r, path: /p}\n  access: []\n",
        &[],
    )
    .config;
    assert!(config.access.is_empty());
    // None, not an empty rule set (which would allow nothing): registry:2's behaviour.
    assert!(config.access_rules().is_none());
    assert!(Config::default().access_rules().is_none());
}

#[test]
fn rule_actions_are_read_without_regard_to_case() {
    let config = load(
        "auth:\n  htpasswd: {realm: r, path: /p}\n  access:\n    - {users: [ci], repositories: [a], actions: [PULL, Push, delete]}\n",
        &[],
    )
    .config;
    assert_eq!(
        config.access[0].actions,
        [RuleAction::Pull, RuleAction::Push, RuleAction::Delete]
    );
}

#[test]
fn user_names_and_patterns_keep_their_text() {
    let config = load(
        "auth:\n  htpasswd: {realm: r, path: /p}\n  access:\n    - {users: [007, yes], repositories: [1.10], actions: [pull]}\n",
        &[],
    )
    .config;
    assert_eq!(config.access[0].users, ["007", "yes"]);
    assert_eq!(config.access[0].repositories, ["1.10"]);
}

#[test]
fn access_rules_without_a_provider_are_an_error() {
    let rules = "  access:\n    - {users: [ci], repositories: [a], actions: [pull]}\n";
    let expected = "config key auth (line 1): auth.access needs an auth provider (htpasswd or token) to tell who is asking; add auth.htpasswd or auth.token beside it, or remove auth.access";
    assert_eq!(load_error(&format!("auth:\n{rules}"), &[]), expected);
    assert_eq!(
        load_error(&format!("auth:\n  none:\n{rules}"), &[]),
        expected
    );
    assert_eq!(load_error("auth:\n  access: []\n", &[]), expected);
}

#[test]
fn env_access_rules_without_a_provider_are_an_error_naming_the_variable() {
    let error = load_error(
        BASE,
        &[(
            "REGISTRY_AUTH_ACCESS",
            "[{users: [ci], repositories: [a], actions: [pull]}]",
        )],
    );
    assert!(
        error.starts_with(
            "config key auth (set by REGISTRY_AUTH_ACCESS): auth.access needs an auth provider (htpasswd or token)"
        ),
        "{error}"
    );
    let error = load_error(
        "auth: none\n",
        &[(
            "REGISTRY_AUTH_ACCESS",
            "[{users: [ci], repositories: [a], actions: [pull]}]",
        )],
    );
    assert!(
        error.contains("auth.access needs an auth provider (htpasswd or token)"),
        "{error}"
    );
}

#[test]
fn an_unknown_action_names_its_key() {
    let error = load_error(
        "auth:\n  htpasswd: {realm: r, path: /p}\n  access:\n    - {users: [ci], repositories: [a], actions: [pull]}\n    - {users: [ci], repositories: [b], actions: [pul]}\n",
        &[],
    );
    assert_eq!(
        error,
        "config key auth.access[1].actions[0] (line 5): expected one of pull, push, delete, *, got \"pul\""
    );
}

#[test]
fn an_unknown_key_in_a_rule_is_an_error_naming_it() {
    let error = load_error(
        "auth:\n  htpasswd: {realm: r, path: /p}\n  access:\n    - users: [ci]\n      repositories: [a]\n      actions: [pull]\n      action: [push]\n",
        &[],
    );
    assert_eq!(
        error,
        "config key auth.access[0].action (line 7): unknown key; the keys here are users, repositories, actions; did you mean auth.access[0].actions?"
    );
}

#[test]
fn a_rule_with_an_empty_list_is_an_error() {
    for (list, yaml) in [
        ("users", "{users: [], repositories: [a], actions: [pull]}"),
        (
            "repositories",
            "{users: [ci], repositories: [], actions: [pull]}",
        ),
        ("actions", "{users: [ci], repositories: [a], actions: []}"),
    ] {
        let error = load_error(
            &format!(
                "auth:\n  htpasswd: {{realm: r, path: /p}}\n  access:\n    - {{users: [x], repositories: [x], actions: [pull]}}\n    - {yaml}\n"
            ),
            &[],
        );
        assert!(
            error.starts_with(&format!(
                "config key auth.access[1].{list} (line 5): an empty list matches nothing, so the rule grants nothing;"
            )),
            "{error}"
        );
    }
}

#[test]
fn a_rule_missing_a_list_names_it_and_its_variable() {
    let error = load_error(
        "auth:\n  htpasswd: {realm: r, path: /p}\n  access:\n    - {users: [ci], repositories: [a]}\n",
        &[],
    );
    assert_eq!(
        error,
        "config key auth.access[0].actions: required but missing; set it in the config file or with REGISTRY_AUTH_ACCESS_0_ACTIONS"
    );
}

#[test]
fn a_rule_of_the_wrong_shape_names_its_key() {
    let error = load_error(
        "auth:\n  htpasswd: {realm: r, path: /p}\n  access:\n    - {users: ci, repositories: [a], actions: [pull]}\n",
        &[],
    );
    assert_eq!(
        error,
        "config key auth.access[0].users (line 4): expected a list, got \"ci\""
    );
}

#[test]
fn env_sets_access_rules_as_yaml_with_an_htpasswd_provider() {
    let config = load(
        "",
        &[
            ("REGISTRY_AUTH", "htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_REALM", "Registry Realm"),
            ("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd"),
            (
                "REGISTRY_AUTH_ACCESS",
                r#"[{users: [ci], repositories: ["team/*"], actions: [pull, push]}]"#,
            ),
        ],
    )
    .config;
    assert_eq!(
        config.auth,
        Some(AuthConfig::Htpasswd(HtpasswdConfig {
            realm: "Registry Realm".to_owned(),
            path: PathBuf::from("/auth/htpasswd"),
        }))
    );
    assert_eq!(
        config.access,
        [rule(
            &["ci"],
            &["team/*"],
            &[RuleAction::Pull, RuleAction::Push]
        )]
    );
}

#[test]
fn env_access_replaces_the_rules_of_the_file() {
    let config = load(
        ACCESS_RULES,
        &[(
            "REGISTRY_AUTH_ACCESS",
            "[{users: [ci], repositories: [a], actions: [pull]}]",
        )],
    )
    .config;
    assert_eq!(config.access, [rule(&["ci"], &["a"], &[RuleAction::Pull])]);
}

#[test]
fn env_sets_one_list_of_one_rule_by_index() {
    let loaded = load(
        ACCESS_RULES,
        &[
            ("REGISTRY_AUTH_ACCESS_1_ACTIONS", "[pull]"),
            (
                "REGISTRY_AUTH_ACCESS_3",
                "{users: [bot], repositories: [b], actions: [delete]}",
            ),
        ],
    );
    assert_eq!(loaded.warnings, Vec::<String>::new());
    assert_eq!(loaded.config.access[1].actions, [RuleAction::Pull]);
    assert_eq!(
        loaded.config.access[3],
        rule(&["bot"], &["b"], &[RuleAction::Delete])
    );
}

#[test]
fn env_with_an_unknown_action_names_the_key_and_the_variable() {
    let error = load_error(
        ACCESS_RULES,
        &[("REGISTRY_AUTH_ACCESS_0_ACTIONS", "[pull, fetch]")],
    );
    assert_eq!(
        error,
        "config key auth.access[0].actions[1] (set by REGISTRY_AUTH_ACCESS_0_ACTIONS): expected one of pull, push, delete, *, got \"fetch\""
    );
}

#[test]
fn registry_auth_keeps_the_access_rules_when_it_chooses_a_provider() {
    let yaml = "auth:\n  silly: {realm: a, service: b}\n  access:\n    - {users: [ci], repositories: [a], actions: [pull]}\n";
    let config = load(
        yaml,
        &[
            ("REGISTRY_AUTH", "htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_REALM", "r"),
            ("REGISTRY_AUTH_HTPASSWD_PATH", "/p"),
        ],
    )
    .config;
    assert!(matches!(config.auth, Some(AuthConfig::Htpasswd(_))));
    assert_eq!(config.access, [rule(&["ci"], &["a"], &[RuleAction::Pull])]);
}

#[test]
fn redacted_keeps_access_rules() {
    let config = load(ACCESS_RULES, &[]).config;
    let redacted = config.redacted();
    assert_eq!(redacted.access, config.access);
    assert_eq!(redacted.auth, config.auth);
}

#[test]
fn printed_access_rules_load_back_equal() {
    let config = load(ACCESS_RULES, &[]).config;
    let printed = serde_json::to_value(&config).unwrap_or_default();
    assert_eq!(
        printed["auth"]["access"][2],
        serde_json::json!({ "users": ["admin"], "repositories": ["*"], "actions": ["*"] })
    );
    assert_eq!(
        printed["auth"]["htpasswd"]["realm"],
        serde_json::json!("Registry")
    );
    let text = serde_json::to_string_pretty(&config).unwrap_or_default();
    let reloaded = load(&text, &[]);
    assert_eq!(reloaded.warnings, Vec::<String>::new());
    assert_eq!(reloaded.config, config, "{text}");
}

#[test]
fn printing_without_rules_writes_no_access_key() {
    let config = load(
        BASE,
        &[
            ("REGISTRY_AUTH", "htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_REALM", "r"),
            ("REGISTRY_AUTH_HTPASSWD_PATH", "/p"),
        ],
    )
    .config;
    let printed = serde_json::to_value(&config).unwrap_or_default();
    assert_eq!(
        printed["auth"],
        serde_json::json!({ "htpasswd": { "realm": "r", "path": "/p" } })
    );
    let printed = serde_json::to_value(Config::default()).unwrap_or_default();
    assert_eq!(printed.get("auth"), None);
}

#[test]
fn an_unknown_key_beside_the_provider_names_access() {
    let error = load_error(
        "auth:\n  htpasswd: {realm: r, path: /p}\n  acess: []\n",
        &[],
    );
    assert_eq!(
        error,
        "config key auth.acess (line 3): unknown auth provider acess; use htpasswd or token (the only other key here is access); did you mean auth.access?"
    );
}

#[test]
fn a_mistyped_auth_provider_is_offered_only_providers_registryd_serves_with() {
    let error = load_error("auth:\n  sily: {realm: r, service: s}\n", &[]);
    assert!(
        error.starts_with(
            "config key auth.sily (line 2): unknown auth provider sily; use htpasswd or token"
        ),
        "{error}"
    );
    assert!(
        !error.contains("silly"),
        "silly is refused, so never offered: {error}"
    );
    let error = load_error("", &[("REGISTRY_AUTH", "sily")]);
    assert_eq!(
        error,
        "environment variable REGISTRY_AUTH: expected one of htpasswd, token, none, got \"sily\""
    );
    let error = load_error("auth:\n  htpaswd: {realm: r, path: /p}\n", &[]);
    assert!(error.ends_with("did you mean auth.htpasswd?"), "{error}");
}

#[test]
fn a_mistyped_storage_driver_is_offered_the_driver_it_spells() {
    let error = load_error("storage:\n  filesytem: {rootdirectory: /x}\n", &[]);
    assert!(
        error.ends_with("did you mean storage.filesystem?"),
        "{error}"
    );
    let error = load_error("storage:\n  azur: {}\n", &[]);
    assert!(
        !error.contains("azure"),
        "azure is refused, so never offered: {error}"
    );
}

#[test]
fn garbage_collection_is_off_by_default_and_read_with_its_retention_policies() {
    let defaults = load("", &[]).config.storage.maintenance.gc;
    assert!(!defaults.enabled, "nothing is deleted unasked");
    assert_eq!(defaults.interval, Duration::from_secs(24 * 3600));
    assert_eq!(defaults.graceperiod, Duration::from_secs(3600));

    let yaml = "storage:\n  maintenance:\n    gc:\n      enabled: true\n      interval: 6h\n      graceperiod: 30m\n      retention:\n        - repositories: [\"team/*\"]\n          keepnewest: 10\n          keeptags: [\"v.*\", latest]\n          untaggedolderthan: 720h\n";
    let config = load(
        yaml,
        &[("REGISTRY_STORAGE_MAINTENANCE_GC_DELETEUNTAGGED", "true")],
    )
    .config;
    let gc = &config.storage.maintenance.gc;
    assert!(gc.enabled && gc.deleteuntagged && !gc.dryrun);
    assert_eq!(gc.interval, Duration::from_secs(6 * 3600));
    let options = registry::gc_options(&config).expect("valid policies");
    assert_eq!(options.grace_period, Duration::from_secs(1800));
    let policy = &options.retention[0];
    assert!(policy.applies_to(&"team/app".parse().expect("name")));
    assert!(!policy.applies_to(&"team/app/cache".parse().expect("name")));
    assert_eq!(policy.keep_newest, Some(10));
    assert_eq!(policy.keep_tags.len(), 2);
    assert_eq!(
        policy.untagged_older_than,
        Some(Duration::from_secs(720 * 3600))
    );
}

#[test]
fn a_retention_pattern_that_does_not_compile_stops_start_up_naming_its_key() {
    let yaml = "storage:\n  inmemory:\n  maintenance:\n    gc:\n      retention:\n        - repositories: [\"**\"]\n          keeptags: [\"v1\", \"v(\"]\n";
    let config = load(yaml, &[]).config;
    let error = registry::Registry::from_config(&config)
        .expect_err("a broken pattern")
        .to_string();
    assert!(
        error.starts_with("config key storage.maintenance.gc.retention[0].keeptags[1]: \"v(\""),
        "{error}"
    );
}

#[test]
fn read_only_mode_is_served_not_refused() {
    let config = load(
        "storage:\n  inmemory:\n  maintenance:\n    readonly:\n      enabled: true\n",
        &[],
    )
    .config;
    let registry = registry::Registry::from_config(&config).expect("read-only registry");
    assert!(registry.is_read_only());
    registry.set_read_only(false);
    assert!(!registry.is_read_only());
}
