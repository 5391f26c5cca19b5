//! Hand-written serde for the sections whose keys choose a variant (`storage`, `auth`) and for
//! the top level, which reads them.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::suggestions::suggest;
use super::{
    AccessRule, AuthConfig, CacheConfig, Config, HealthConfig, StorageConfig, StorageDriverConfig,
    TagConfig, schema,
};

/// Fails with `message` where a value was expected, so the error's path names the key.
struct Reject(String);

impl<'de> DeserializeSeed<'de> for Reject {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, _deserializer: D) -> Result<(), D::Error> {
        Err(D::Error::custom(self.0))
    }
}

/// `storage.inmemory` takes no parameters; unknown ones are reported like any unknown key.
#[derive(Serialize, Deserialize)]
struct InMemoryParams {}

impl<'de> Deserialize<'de> for StorageConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StorageVisitor)
    }
}

struct StorageVisitor;

impl<'de> Visitor<'de> for StorageVisitor {
    type Value = StorageConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with one storage driver (filesystem, s3 or inmemory)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StorageConfig, A::Error> {
        let mut config = StorageConfig::default();
        let mut driver: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "delete" => config.delete = map.next_value()?,
                "redirect" => config.redirect = map.next_value()?,
                "cache" => config.cache = map.next_value()?,
                "maintenance" => config.maintenance = map.next_value()?,
                "tag" => config.tag = map.next_value()?,
                "filesystem" | "inmemory" | "s3" => {
                    if let Some(previous) = &driver {
                        return Err(A::Error::custom(format!(
                            "more than one storage driver is configured ({previous} and {key}); keep exactly one"
                        )));
                    }
                    config.driver = match key.as_str() {
                        "filesystem" => StorageDriverConfig::Filesystem(map.next_value()?),
                        "s3" => StorageDriverConfig::S3(map.next_value()?),
                        _ => {
                            map.next_value::<InMemoryParams>()?;
                            StorageDriverConfig::InMemory
                        }
                    };
                    driver = Some(key);
                }
                name if schema::UNSUPPORTED_DRIVERS.contains(&name) => {
                    map.next_value_seed(Reject(format!(
                        "storage driver {name} is not supported yet; use filesystem, s3 or inmemory"
                    )))?;
                }
                name => {
                    let suggestion = suggest(
                        name,
                        [
                            "filesystem",
                            "s3",
                            "inmemory",
                            "delete",
                            "redirect",
                            "cache",
                            "maintenance",
                            "tag",
                        ],
                    )
                    .map(|known| format!("; did you mean storage.{known}?"))
                    .unwrap_or_default();
                    map.next_value_seed(Reject(format!(
                        "unknown storage driver {name}; use filesystem, s3 or inmemory (the other keys here are delete, redirect, cache, maintenance and tag){suggestion}"
                    )))?;
                }
            }
        }
        Ok(config)
    }
}

impl Serialize for StorageConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // `cache` and `tag` are not acted on; left out at their defaults, a printed
        // configuration does not look as if they were in effect.
        let cache = (self.cache != CacheConfig::default()).then_some(&self.cache);
        let tag = (self.tag != TagConfig::default()).then_some(&self.tag);
        let len = 4 + usize::from(cache.is_some()) + usize::from(tag.is_some());
        let mut map = serializer.serialize_map(Some(len))?;
        match &self.driver {
            StorageDriverConfig::Filesystem(params) => map.serialize_entry("filesystem", params)?,
            StorageDriverConfig::InMemory => map.serialize_entry("inmemory", &InMemoryParams {})?,
            StorageDriverConfig::S3(params) => map.serialize_entry("s3", params)?,
        }
        map.serialize_entry("delete", &self.delete)?;
        map.serialize_entry("redirect", &self.redirect)?;
        if let Some(cache) = cache {
            map.serialize_entry("cache", cache)?;
        }
        map.serialize_entry("maintenance", &self.maintenance)?;
        if let Some(tag) = tag {
            map.serialize_entry("tag", tag)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ConfigVisitor)
    }
}

struct ConfigVisitor;

impl<'de> Visitor<'de> for ConfigVisitor {
    type Value = Config;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of keys such as version, storage and http")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Config, A::Error> {
        let mut config = Config::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "version" => config.version = map.next_value()?,
                "log" => config.log = map.next_value()?,
                "storage" => config.storage = map.next_value()?,
                "auth" => {
                    let section: Option<AuthSection> = map.next_value()?;
                    let section = section.unwrap_or_default();
                    config.auth = section.provider;
                    config.access = section.access;
                }
                "http" => config.http = map.next_value()?,
                "catalog" => config.catalog = map.next_value()?,
                "tags" => config.tags = map.next_value()?,
                "proxy" => config.proxy = map.next_value()?,
                "notifications" => config.notifications = map.next_value()?,
                "redis" => config.redis = map.next_value()?,
                "health" => {
                    let section: Option<HealthConfig> = map.next_value()?;
                    config.health = section.unwrap_or_default();
                }
                "validation" => config.validation = map.next_value()?,
                "compatibility" => config.compatibility = map.next_value()?,
                "middleware" => config.middleware = map.next_value()?,
                "reporting" => config.reporting = map.next_value()?,
                "policy" => config.policy = map.next_value()?,
                // Skipped this way, an unknown key is reported as one (with its path).
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(config)
    }
}

impl Serialize for Config {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Destructured so that a new field cannot be forgotten here.
        let Config {
            version,
            log,
            storage,
            auth,
            access,
            http,
            catalog,
            tags,
            proxy,
            notifications,
            redis,
            health,
            validation,
            compatibility,
            middleware,
            reporting,
            policy,
        } = self;
        let kept_as_written = [
            ("redis", redis),
            ("compatibility", compatibility),
            ("middleware", middleware),
            ("reporting", reporting),
            ("policy", policy),
        ];
        let has_auth = auth.is_some() || !access.is_empty();
        let len = 9
            + usize::from(has_auth)
            + usize::from(proxy.is_some())
            + kept_as_written.iter().filter(|(_, v)| v.is_some()).count();
        let mut map = serializer.serialize_map(Some(len))?;
        map.serialize_entry("version", version)?;
        map.serialize_entry("log", log)?;
        map.serialize_entry("storage", storage)?;
        if has_auth {
            map.serialize_entry(
                "auth",
                &AuthSectionRef {
                    provider: auth.as_ref(),
                    access,
                },
            )?;
        }
        map.serialize_entry("http", http)?;
        map.serialize_entry("catalog", catalog)?;
        map.serialize_entry("tags", tags)?;
        map.serialize_entry("validation", validation)?;
        if let Some(proxy) = proxy {
            map.serialize_entry("proxy", proxy)?;
        }
        map.serialize_entry("notifications", notifications)?;
        map.serialize_entry("health", health)?;
        for (key, section) in kept_as_written {
            if let Some(section) = section {
                map.serialize_entry(key, section)?;
            }
        }
        map.end()
    }
}

/// What `auth` holds: one provider, and the access rules beside it.
#[derive(Default)]
struct AuthSection {
    /// `None` for `none` (or nothing) as the provider.
    provider: Option<AuthConfig>,
    access: Vec<AccessRule>,
}

/// The providers `auth` may name that registryd serves with, besides `none` (`silly` is read
/// but refused: see [`schema::REFUSED`]).
const AUTH_PROVIDERS: &str = "htpasswd or token";

/// Why access rules without a provider are refused.
const ACCESS_NEEDS_PROVIDER: &str = "auth.access needs an auth provider (htpasswd or token) to tell who is asking; add auth.htpasswd or auth.token beside it, or remove auth.access";

impl<'de> Deserialize<'de> for AuthSection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AuthVisitor)
    }
}

struct AuthVisitor;

impl<'de> Visitor<'de> for AuthVisitor {
    type Value = AuthSection;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a map with one auth provider ({AUTH_PROVIDERS})")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AuthSection, A::Error> {
        let mut chosen: Option<String> = None;
        let mut section = AuthSection::default();
        let mut has_access = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "access" {
                section.access = map.next_value()?;
                has_access = true;
                continue;
            }
            if !matches!(key.as_str(), "htpasswd" | "token" | "silly" | "none") {
                let suggestion = suggest(&key, ["htpasswd", "token", "none", "access"])
                    .map(|known| format!("; did you mean auth.{known}?"))
                    .unwrap_or_default();
                map.next_value_seed(Reject(format!(
                    "unknown auth provider {key}; use {AUTH_PROVIDERS} (the only other key here is access){suggestion}"
                )))?;
                continue;
            }
            if let Some(previous) = &chosen {
                return Err(A::Error::custom(format!(
                    "more than one auth provider is configured ({previous} and {key}); keep exactly one"
                )));
            }
            section.provider = match key.as_str() {
                "htpasswd" => Some(AuthConfig::Htpasswd(map.next_value()?)),
                "token" => Some(AuthConfig::Token(map.next_value()?)),
                "silly" => Some(AuthConfig::Silly(map.next_value()?)),
                _ => {
                    // `none`: no authentication, whatever it is set to.
                    map.next_value::<serde_json::Value>()?;
                    None
                }
            };
            chosen = Some(key);
        }
        if has_access && section.provider.is_none() {
            return Err(A::Error::custom(ACCESS_NEEDS_PROVIDER));
        }
        Ok(section)
    }
}

/// `auth` for printing: the provider's key and, when there are rules, `access`.
struct AuthSectionRef<'a> {
    provider: Option<&'a AuthConfig>,
    access: &'a [AccessRule],
}

impl Serialize for AuthSectionRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = usize::from(self.provider.is_some()) + usize::from(!self.access.is_empty());
        let mut map = serializer.serialize_map(Some(len))?;
        match self.provider {
            Some(AuthConfig::Htpasswd(params)) => map.serialize_entry("htpasswd", params)?,
            Some(AuthConfig::Token(params)) => map.serialize_entry("token", params)?,
            Some(AuthConfig::Silly(params)) => map.serialize_entry("silly", params)?,
            None => {}
        }
        if !self.access.is_empty() {
            map.serialize_entry("access", self.access)?;
        }
        map.end()
    }
}

/// The provider alone; access rules are [`Config::access`], so a section with `access` is
/// refused here rather than losing them.
impl<'de> Deserialize<'de> for AuthConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let section = AuthSection::deserialize(deserializer)?;
        if !section.access.is_empty() {
            return Err(D::Error::custom(
                "auth.access is read into Config::access; deserialize the whole Config to keep the rules",
            ));
        }
        section.provider.ok_or_else(|| {
            D::Error::custom(format!("expected one auth provider: {AUTH_PROVIDERS}"))
        })
    }
}
