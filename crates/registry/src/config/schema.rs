//! The shape of the configuration file as data: every key registryd knows and the kind of value
//! it holds.
//!
//! Two things need it before the typed [`Config`](super::Config) exists: environment overrides
//! (`REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY` is resolved key by key against it, as registry:2
//! resolves it against its Go structs) and the YAML reader (a plain scalar under a string key
//! keeps its exact text, so `secret: 0123` stays `"0123"` and `version: 0.10` stays `"0.10"`).
//! A unit test checks that a document with every key in this schema loads into `Config` without
//! an "unknown key" warning, so the two cannot drift apart silently.

/// What a key holds.
#[derive(Debug)]
pub(crate) enum Kind {
    /// Text; a plain YAML scalar keeps its exact spelling.
    Str,
    /// Text from a fixed list (documentation and tests use the list).
    Enum(&'static [&'static str]),
    /// `true`/`false` (and the YAML 1.1 spellings registry:2 accepts: yes/no/on/off/y/n).
    Bool,
    /// A non-negative whole number.
    Int,
    /// A Go duration string (`10s`), or a bare integer of nanoseconds as in registry:2.
    Duration,
    /// Anything; kept as it is (free-form parameters, sections registryd does not implement).
    Any,
    /// A list of one kind.
    List(&'static Kind),
    /// A map from free-form names (header names, field names) to one kind.
    Map(&'static Kind),
    /// A map with fixed keys; a key it does not know is a warning, as in registry:2.
    Struct(&'static [Field]),
    /// A map with fixed keys that refuses any other key (an error, not a warning): the access
    /// rules, where a misspelt key would silently change what a rule grants.
    ClosedStruct(&'static [Field]),
}

/// One fixed key of a [`Kind::Struct`].
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) kind: &'static Kind,
    pub(crate) role: Role,
}

/// How a key relates to its siblings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// An ordinary key: left out, it takes its default.
    Key,
    /// A key with no default: loading refuses a section that leaves it out.
    Required,
    /// An older name of the sibling key named here (`layerinfo` for `blobdescriptor`): read as
    /// that key, and an error when both are set.
    OlderName(&'static str),
    /// One of a set of mutually exclusive keys: a storage driver or an auth provider. The parent
    /// may also be written as the variant's name (`storage: inmemory`, `REGISTRY_STORAGE=inmemory`).
    Variant,
    /// A registry:2 key that registryd reads but does not act on yet; loading warns with this
    /// text when the key is present.
    Unsupported(&'static str),
    /// Like `Unsupported`, but the key is dropped after the warning: nothing in the typed
    /// configuration holds it (registry:2's tuning knobs of a client registryd does not use).
    Ignored(&'static str),
}

impl Kind {
    /// The fixed keys, if this is a struct (closed or not).
    pub(crate) fn fields(&self) -> Option<&'static [Field]> {
        match self {
            Kind::Struct(fields) | Kind::ClosedStruct(fields) => Some(fields),
            _ => None,
        }
    }

    /// The field named `name` (exactly, as YAML keys are case-sensitive), if this is a struct.
    pub(crate) fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields()?.iter().find(|field| field.name == name)
    }

    /// The names of this struct's variants (storage drivers, auth providers).
    pub(crate) fn variants(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.fields()
            .unwrap_or_default()
            .iter()
            .filter(|field| field.role == Role::Variant)
            .map(|field| field.name)
    }

    /// Whether a value of this kind is a single scalar (text, number, boolean, duration).
    pub(crate) fn is_scalar(&self) -> bool {
        matches!(
            self,
            Kind::Str | Kind::Enum(_) | Kind::Bool | Kind::Int | Kind::Duration
        )
    }
}

/// Every key of the configuration file, as `section.key` paths in the order of the schema: a
/// list of sections as itself and its entries' keys (`auth.access`, `auth.access[N].users`, ...),
/// and a key holding free-form content (a map such
/// as `http.headers`, a list of plain values, a section registryd keeps as written such as
/// `redis`, a driver with no parameters such as `storage.inmemory`) as one path.
/// `docs/configuration.md` documents exactly these; a test holds the two together.
pub fn key_paths() -> Vec<String> {
    let mut out = Vec::new();
    leaf_paths(&ROOT, "", &mut out);
    out
}

/// The paths of [`key_paths`] under `path`, a key of `kind`.
fn leaf_paths(kind: &Kind, path: &str, out: &mut Vec<String>) {
    match (kind, kind.fields()) {
        (_, Some(fields)) if !fields.is_empty() => {
            for field in fields.iter() {
                leaf_paths(field.kind, &child_path(path, field.name), out);
            }
        }
        (Kind::List(item), _) if item.fields().is_some_and(|fields| !fields.is_empty()) => {
            out.push(path.to_owned());
            leaf_paths(item, &format!("{path}[N]"), out);
        }
        _ => out.push(path.to_owned()),
    }
}

fn child_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The keys loading reads but registryd does not act on (it warns when one, or the section
/// holding it, is present), as in [`key_paths`]. `docs/configuration.md` lists exactly these
/// under "Accepted, not implemented yet"; a test holds the two together.
pub fn unimplemented_key_paths() -> Vec<String> {
    fn walk(kind: &Kind, path: &str, out: &mut Vec<String>) {
        let (kind, path) = match kind {
            Kind::List(item) => (*item, format!("{path}[N]")),
            _ => (kind, path.to_owned()),
        };
        for field in kind.fields().unwrap_or_default() {
            let child = child_path(&path, field.name);
            match field.role {
                Role::Unsupported(_) | Role::Ignored(_) => leaf_paths(field.kind, &child, out),
                _ => walk(field.kind, &child, out),
            }
        }
    }
    let mut out = Vec::new();
    walk(&ROOT, "", &mut out);
    out
}

const fn key(name: &'static str, kind: &'static Kind) -> Field {
    Field {
        name,
        kind,
        role: Role::Key,
    }
}

const fn required(name: &'static str, kind: &'static Kind) -> Field {
    Field {
        name,
        kind,
        role: Role::Required,
    }
}

const fn variant(name: &'static str, kind: &'static Kind) -> Field {
    Field {
        name,
        kind,
        role: Role::Variant,
    }
}

const fn unsupported(name: &'static str, kind: &'static Kind, message: &'static str) -> Field {
    Field {
        name,
        kind,
        role: Role::Unsupported(message),
    }
}

const fn ignored(name: &'static str, kind: &'static Kind, message: &'static str) -> Field {
    Field {
        name,
        kind,
        role: Role::Ignored(message),
    }
}

/// The registry:2 storage drivers registryd does not implement yet.
pub(crate) const UNSUPPORTED_DRIVERS: &[&str] = &["azure", "gcs", "swift", "oss"];

/// Values registry:2 writes and the loader reads, but registryd refuses (loading or serving
/// fails, naming the key): `(key, value)`, where the value of `storage` or `auth` is a variant's
/// name. They are never suggested nor listed among the choices of an error, so that a fix the
/// messages offer is one that works. A unit test checks that each is refused.
pub(crate) const REFUSED: &[(&str, &str)] = &[
    ("storage", "azure"),
    ("storage", "gcs"),
    ("storage", "swift"),
    ("storage", "oss"),
    ("auth", "silly"),
    ("http.net", "unix"),
    ("http.tls.minimumtls", "tls1.0"),
    ("http.tls.minimumtls", "tls1.1"),
];

/// Whether `value` at `key` is one registryd serves with (not in [`REFUSED`]). List indexes in
/// `key` are ignored (`auth.access[2].actions[0]` is `auth.access.actions`).
pub(crate) fn accepted(key: &str, value: &str) -> bool {
    let mut plain = String::with_capacity(key.len());
    let mut in_index = false;
    for c in key.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            c if !in_index => plain.push(c),
            _ => {}
        }
    }
    !REFUSED
        .iter()
        .any(|(refused_key, refused)| *refused_key == plain && refused.eq_ignore_ascii_case(value))
}

/// The log levels registry:2 accepts.
pub(crate) const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug"];

const STRINGS: Kind = Kind::List(&Kind::Str);

const LOG: Kind = Kind::Struct(&[
    key("level", &Kind::Enum(LOG_LEVELS)),
    key("formatter", &Kind::Enum(&["text", "json", "logstash"])),
    key("fields", &Kind::Map(&Kind::Any)),
    key("accesslog", &Kind::Struct(&[key("disabled", &Kind::Bool)])),
    key("reportcaller", &Kind::Bool),
    unsupported(
        "hooks",
        &Kind::List(&Kind::Any),
        "log hooks (mail on error) are not supported yet; they are ignored",
    ),
]);

const FILESYSTEM: Kind = Kind::Struct(&[
    key("rootdirectory", &Kind::Str),
    unsupported(
        "maxthreads",
        &Kind::Int,
        "the filesystem driver does not bound its file operations yet; the key is ignored",
    ),
    key("directio", &Kind::Bool),
]);

/// `storage.s3`: registry:2's keys.
const S3: Kind = Kind::Struct(&[
    key("accesskey", &Kind::Str),
    key("secretkey", &Kind::Str),
    key("sessiontoken", &Kind::Str),
    required("region", &Kind::Str),
    key("regionendpoint", &Kind::Str),
    required("bucket", &Kind::Str),
    key("rootdirectory", &Kind::Str),
    key("secure", &Kind::Bool),
    key("v4auth", &Kind::Bool),
    key("chunksize", &Kind::Int),
    key("forcepathstyle", &Kind::Bool),
    key("encrypt", &Kind::Bool),
    key("keyid", &Kind::Str),
    ignored(
        "skipverify",
        &Kind::Bool,
        "skipping TLS verification is not supported; give the endpoint a certificate the \
         system trusts",
    ),
    ignored(
        "storageclass",
        &Kind::Str,
        "objects get the bucket's default storage class",
    ),
    ignored(
        "objectacl",
        &Kind::Str,
        "objects get the bucket's default ACL (private unless the bucket says otherwise)",
    ),
    ignored(
        "redirectendpoint",
        &Kind::Str,
        "redirect URLs point at regionendpoint; set storage.redirect.disable to serve blobs \
         through registryd instead",
    ),
    ignored("useragent", &Kind::Str, "registryd's client sends its own"),
    ignored(
        "usedualstack",
        &Kind::Bool,
        "not supported; set regionendpoint to a dual-stack endpoint instead",
    ),
    ignored(
        "accelerate",
        &Kind::Bool,
        "not supported; set regionendpoint to the bucket's accelerate endpoint instead",
    ),
    ignored(
        "usefipsendpoint",
        &Kind::Bool,
        "not supported; set regionendpoint to a FIPS endpoint instead",
    ),
    ignored(
        "multipartcopychunksize",
        &Kind::Int,
        "objects are copied in one request (S3 allows up to 5 GiB)",
    ),
    ignored(
        "multipartcopymaxconcurrency",
        &Kind::Int,
        "objects are copied in one request (S3 allows up to 5 GiB)",
    ),
    ignored(
        "multipartcopythresholdsize",
        &Kind::Int,
        "objects are copied in one request (S3 allows up to 5 GiB)",
    ),
    ignored(
        "loglevel",
        &Kind::Str,
        "the S3 client logs under log.level (target registry_storage_s3)",
    ),
]);

const BLOB_DESCRIPTOR: Kind = Kind::Enum(&["inmemory", "redis"]);

const STORAGE: Kind = Kind::Struct(&[
    variant("filesystem", &FILESYSTEM),
    variant("inmemory", &Kind::Struct(&[])),
    variant("s3", &S3),
    variant("azure", &Kind::Any),
    variant("gcs", &Kind::Any),
    variant("swift", &Kind::Any),
    variant("oss", &Kind::Any),
    key("delete", &Kind::Struct(&[key("enabled", &Kind::Bool)])),
    key("redirect", &Kind::Struct(&[key("disable", &Kind::Bool)])),
    key(
        "cache",
        &Kind::Struct(&[
            key("blobdescriptor", &BLOB_DESCRIPTOR),
            Field {
                name: "layerinfo",
                kind: &BLOB_DESCRIPTOR,
                role: Role::OlderName("blobdescriptor"),
            },
            key("blobdescriptorsize", &Kind::Int),
        ]),
    ),
    key(
        "maintenance",
        &Kind::Struct(&[
            key(
                "uploadpurging",
                &Kind::Struct(&[
                    key("enabled", &Kind::Bool),
                    key("age", &Kind::Duration),
                    key("interval", &Kind::Duration),
                    key("dryrun", &Kind::Bool),
                ]),
            ),
            key("readonly", &Kind::Struct(&[key("enabled", &Kind::Bool)])),
            key(
                "gc",
                &Kind::Struct(&[
                    key("enabled", &Kind::Bool),
                    key("interval", &Kind::Duration),
                    key("graceperiod", &Kind::Duration),
                    key("deleteuntagged", &Kind::Bool),
                    key("dryrun", &Kind::Bool),
                    key("retention", &Kind::List(&RETENTION_POLICY)),
                ]),
            ),
        ]),
    ),
    key(
        "tag",
        &Kind::Struct(&[unsupported(
            "concurrencylimit",
            &Kind::Int,
            "tag lookups do not run concurrently yet; the key is ignored",
        )]),
    ),
]);

/// One retention policy (`storage.maintenance.gc.retention[N]`, a registryd extension).
const RETENTION_POLICY: Kind = Kind::Struct(&[
    key("repositories", &STRINGS),
    key("keepnewest", &Kind::Int),
    key("keeptags", &STRINGS),
    key("untaggedolderthan", &Kind::Duration),
]);

/// The actions an access rule may name.
pub(crate) const RULE_ACTIONS: &[&str] = &["pull", "push", "delete", "*"];

/// One access rule (`auth.access[N]`, a registryd extension).
const ACCESS_RULE: Kind = Kind::ClosedStruct(&[
    required("users", &STRINGS),
    required("repositories", &STRINGS),
    required("actions", &Kind::List(&Kind::Enum(RULE_ACTIONS))),
]);

const AUTH: Kind = Kind::Struct(&[
    variant(
        "htpasswd",
        &Kind::Struct(&[required("realm", &Kind::Str), required("path", &Kind::Str)]),
    ),
    variant(
        "token",
        &Kind::Struct(&[
            required("realm", &Kind::Str),
            required("service", &Kind::Str),
            required("issuer", &Kind::Str),
            key("rootcertbundle", &Kind::Str),
            key("jwks", &Kind::Str),
            unsupported(
                "autoredirect",
                &Kind::Bool,
                "the challenge always names auth.token.realm; the key is ignored",
            ),
            unsupported(
                "autoredirectpath",
                &Kind::Str,
                "the challenge always names auth.token.realm; the key is ignored",
            ),
            key("signingalgorithms", &STRINGS),
        ]),
    ),
    variant(
        "silly",
        &Kind::Struct(&[
            required("realm", &Kind::Str),
            required("service", &Kind::Str),
        ]),
    ),
    variant("none", &Kind::Any),
    key("access", &Kind::List(&ACCESS_RULE)),
]);

const TLS: Kind = Kind::Struct(&[
    // A `tls` section without one means no TLS, as in registry:2 (see `convert`).
    key("certificate", &Kind::Str),
    required("key", &Kind::Str),
    key("clientcas", &STRINGS),
    key(
        "clientauth",
        &Kind::Enum(&[
            "request-client-cert",
            "require-any-client-cert",
            "verify-client-cert-if-given",
            "require-and-verify-client-cert",
        ]),
    ),
    key(
        "minimumtls",
        &Kind::Enum(&["tls1.0", "tls1.1", "tls1.2", "tls1.3"]),
    ),
    key("ciphersuites", &STRINGS),
    // Refused without a certificate and ignored with one, by `convert` before this is read.
    ignored(
        "letsencrypt",
        &Kind::Struct(&[
            key("cachefile", &Kind::Str),
            key("email", &Kind::Str),
            key("hosts", &STRINGS),
            key("directoryurl", &Kind::Str),
        ]),
        "Let's Encrypt is not supported yet",
    ),
]);

const HTTP: Kind = Kind::Struct(&[
    key("addr", &Kind::Str),
    key("net", &Kind::Enum(&["tcp", "unix"])),
    key("host", &Kind::Str),
    key("prefix", &Kind::Str),
    unsupported(
        "secret",
        &Kind::Str,
        "registryd does not need it (upload state lives in storage, so any instance can \
         continue any upload); the key is ignored",
    ),
    key("relativeurls", &Kind::Bool),
    key("draintimeout", &Kind::Duration),
    key("maxconnections", &Kind::Int),
    key("bodyidletimeout", &Kind::Duration),
    key("tls", &TLS),
    key("headers", &Kind::Map(&STRINGS)),
    key(
        "debug",
        &Kind::Struct(&[
            required("addr", &Kind::Str),
            key(
                "prometheus",
                &Kind::Struct(&[key("enabled", &Kind::Bool), key("path", &Kind::Str)]),
            ),
        ]),
    ),
    key("http2", &Kind::Struct(&[key("disabled", &Kind::Bool)])),
    unsupported(
        "h2c",
        &Kind::Struct(&[key("enabled", &Kind::Bool)]),
        "HTTP/2 without TLS is always accepted from clients that ask for it; the section is \
         ignored",
    ),
]);

/// The actions an endpoint may ignore (`notifications.endpoints[N].ignore.actions`).
pub(crate) const EVENT_ACTIONS: &[&str] = &["push", "pull", "mount", "delete"];

const ENDPOINT: Kind = Kind::Struct(&[
    key("name", &Kind::Str),
    key("disabled", &Kind::Bool),
    key("url", &Kind::Str),
    key("headers", &Kind::Map(&STRINGS)),
    key("timeout", &Kind::Duration),
    key("threshold", &Kind::Int),
    key("backoff", &Kind::Duration),
    key("ignoredmediatypes", &STRINGS),
    key(
        "ignore",
        &Kind::Struct(&[
            key("mediatypes", &STRINGS),
            key("actions", &Kind::List(&Kind::Enum(EVENT_ACTIONS))),
        ]),
    ),
    key(
        "format",
        &Kind::Enum(&["registry", "cloudevents", "cloudevents-batch"]),
    ),
    key("signingsecret", &Kind::Str),
]);

const HEALTH: Kind = Kind::Struct(&[
    key(
        "storagedriver",
        &Kind::Struct(&[
            key("enabled", &Kind::Bool),
            key("interval", &Kind::Duration),
            key("threshold", &Kind::Int),
        ]),
    ),
    unsupported(
        "file",
        &Kind::List(&Kind::Any),
        "file health checks are not supported yet; only health.storagedriver is checked",
    ),
    unsupported(
        "http",
        &Kind::List(&Kind::Any),
        "HTTP health checks are not supported yet; only health.storagedriver is checked",
    ),
    unsupported(
        "tcp",
        &Kind::List(&Kind::Any),
        "TCP health checks are not supported yet; only health.storagedriver is checked",
    ),
]);

const NOTIFICATIONS: Kind = Kind::Struct(&[
    key(
        "events",
        &Kind::Struct(&[key("includereferences", &Kind::Bool)]),
    ),
    key("endpoints", &Kind::List(&ENDPOINT)),
]);

const PROXY: Kind = Kind::Struct(&[
    key("remoteurl", &Kind::Str),
    key("username", &Kind::Str),
    key("password", &Kind::Str),
    unsupported(
        "ttl",
        &Kind::Duration,
        "expiring cached content by age is not supported yet; it is kept until deleted or \
         collected",
    ),
    unsupported(
        "exec",
        &Kind::Any,
        "credential helpers are not supported; use proxy.username and proxy.password",
    ),
    key("maxsize", &Kind::Int),
    key("upstreams", &Kind::List(&PROXY_UPSTREAM)),
]);

/// One entry of `proxy.upstreams`.
const PROXY_UPSTREAM: Kind = Kind::Struct(&[
    required("prefix", &Kind::Str),
    required("remoteurl", &Kind::Str),
    key("username", &Kind::Str),
    key("password", &Kind::Str),
]);

/// One platform of `validation.manifests.indexes.platformlist`.
const PLATFORM: Kind = Kind::Struct(&[
    required("os", &Kind::Str),
    required("architecture", &Kind::Str),
]);

/// The values of `validation.manifests.indexes.platforms`.
pub(crate) const INDEX_PLATFORMS: &[&str] = &["all", "none", "list"];

const VALIDATION: Kind = Kind::Struct(&[
    key("disabled", &Kind::Bool),
    key("enabled", &Kind::Bool),
    key(
        "manifests",
        &Kind::Struct(&[
            key(
                "urls",
                &Kind::Struct(&[key("allow", &STRINGS), key("deny", &STRINGS)]),
            ),
            key(
                "indexes",
                &Kind::Struct(&[
                    key("platforms", &Kind::Enum(INDEX_PLATFORMS)),
                    key("platformlist", &Kind::List(&PLATFORM)),
                ]),
            ),
        ]),
    ),
]);

/// The whole configuration file.
pub(crate) const ROOT: Kind = Kind::Struct(&[
    key("version", &Kind::Str),
    key("log", &LOG),
    key("loglevel", &Kind::Enum(LOG_LEVELS)),
    key("storage", &STORAGE),
    key("auth", &AUTH),
    key("http", &HTTP),
    key("catalog", &Kind::Struct(&[key("maxentries", &Kind::Int)])),
    key("tags", &Kind::Struct(&[key("maxtags", &Kind::Int)])),
    key("proxy", &PROXY),
    key("notifications", &NOTIFICATIONS),
    unsupported(
        "redis",
        &Kind::Any,
        "redis is not supported yet; the section is ignored",
    ),
    key("health", &HEALTH),
    key("validation", &VALIDATION),
    unsupported(
        "compatibility",
        &Kind::Any,
        "schema1 compatibility is not supported; the section is ignored",
    ),
    unsupported(
        "middleware",
        &Kind::Any,
        "middleware is not supported yet; the section is ignored",
    ),
    unsupported(
        "reporting",
        &Kind::Any,
        "error reporting (bugsnag, newrelic) is not supported; the section is ignored",
    ),
    unsupported(
        "policy",
        &Kind::Any,
        "repository policies are not supported; the section is ignored",
    ),
]);
