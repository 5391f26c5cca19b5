//! From the untyped tree to the JSON value the typed `Config` is read from.
//!
//! Each scalar is read as the kind its key wants (the schema says which), so a string key keeps
//! the text as written, a boolean key accepts registry:2's YAML 1.1 spellings, and a duration key
//! accepts a bare number of nanoseconds like registry:2 does. The registry:2 rules that span
//! several keys (deprecated `loglevel`, `auth: none`, TLS without a certificate) are applied here
//! too, before typing.

use std::collections::HashMap;

use serde_json::{Map, Number, Value as Json};

use super::error::{self, ConfigError};
use super::schema::{self, Field, Kind, Role};
use super::suggestions::suggest;
use super::tree::{Node, Origin, Typed, Value};

/// The JSON form of the tree and where each of its values came from.
pub(crate) struct Converted {
    pub(crate) json: Json,
    /// Origin of every value, keyed by path (`http.tls.clientcas[0]`).
    pub(crate) origins: HashMap<String, Origin>,
}

/// Converts `root` (the whole document) using `schema`, adding notes to `warnings`.
///
/// Fails, naming the key, on the first value (in document order) that the schema says cannot
/// be read into its key: the wrong kind of value, a choice that is not on the list, a required
/// key left out, or an unknown key where the schema refuses unknown keys. What it lets through
/// reads into the typed configuration, so its errors are the schema's, not the deserializer's.
pub(crate) fn to_json(
    root: &Node,
    schema: &Kind,
    warnings: &mut Vec<String>,
) -> Result<Converted, ConfigError> {
    let mut converter = Converter {
        origins: HashMap::new(),
        warnings,
        error: None,
    };
    let json = match converter.node(root, schema, "") {
        Json::Null => Json::Object(Map::new()),
        json => json,
    };
    match converter.error {
        Some(error) => Err(error),
        None => Ok(Converted {
            json,
            origins: converter.origins,
        }),
    }
}

struct Converter<'a> {
    origins: HashMap<String, Origin>,
    warnings: &'a mut Vec<String>,
    /// The first error found; converting goes on so that later values keep their origins.
    error: Option<ConfigError>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// What a key of `kind` holds, for "expected ..., got ..." (`path` names the key).
fn expected(kind: &Kind, path: &str) -> String {
    match kind {
        Kind::Str => "a string".to_owned(),
        Kind::Enum(choices) => {
            let accepted: Vec<&str> = choices
                .iter()
                .copied()
                .filter(|choice| schema::accepted(path, choice))
                .collect();
            format!("one of {}", accepted.join(", "))
        }
        Kind::Bool => "a boolean (true or false)".to_owned(),
        Kind::Int => "a whole number (0 or more)".to_owned(),
        Kind::Duration => "a duration such as 10s, 5m or 168h".to_owned(),
        Kind::List(_) => "a list".to_owned(),
        Kind::Any | Kind::Map(_) | Kind::ClosedStruct(_) => "a map of keys".to_owned(),
        Kind::Struct(_) => match path {
            "storage" => "a map with one storage driver (filesystem, s3 or inmemory)".to_owned(),
            "auth" => "a map with one auth provider (htpasswd or token)".to_owned(),
            _ => "a map of keys".to_owned(),
        },
    }
}

/// What a value is, for "expected ..., got ...": text in quotes, other scalars as written.
fn got(node: &Node) -> String {
    match &node.value {
        Value::Null => "nothing".to_owned(),
        Value::Scalar {
            text,
            typed: Typed::Str,
        } => format!("{text:?}"),
        Value::Scalar { text, .. } => text.clone(),
        Value::Seq(_) => "a list".to_owned(),
        Value::Map(_) => "a map".to_owned(),
    }
}

impl Converter<'_> {
    fn fail(&mut self, key: &str, origin: Option<&Origin>, message: String) {
        if self.error.is_none() {
            self.error = Some(ConfigError::Invalid {
                key: key.to_owned(),
                origin: origin.map(ToString::to_string),
                message,
            });
        }
    }

    fn wrong_kind(&mut self, node: &Node, kind: &Kind, path: &str) -> Json {
        let message = format!("expected {}, got {}", expected(kind, path), got(node));
        self.fail(path, Some(&node.origin), message);
        Json::Null
    }

    fn node(&mut self, node: &Node, kind: &Kind, path: &str) -> Json {
        if !path.is_empty() {
            self.origins.insert(path.to_owned(), node.origin.clone());
        }
        match (&node.value, kind) {
            (Value::Null, _) => Json::Null,
            (Value::Map(entries), Kind::Struct(fields) | Kind::ClosedStruct(fields)) => {
                let mut object = Map::new();
                for (key, child) in entries {
                    let child_path = join(path, key);
                    let Some(field) = kind.field(key) else {
                        if matches!(kind, Kind::ClosedStruct(_)) {
                            self.unknown_key(fields, path, key, &child.origin);
                        }
                        // Kept so that the typed step reports it as unknown, with its path.
                        object.insert(key.clone(), self.node(child, &Kind::Any, &child_path));
                        continue;
                    };
                    if child.is_null() {
                        self.origins.insert(child_path, child.origin.clone());
                        if field.role == Role::Variant {
                            // `inmemory:` with nothing after it selects the driver.
                            object.insert(key.clone(), Json::Object(Map::new()));
                        }
                        // Otherwise an empty value means "the default", as in registry:2.
                        continue;
                    }
                    match field.role {
                        Role::Unsupported(message) => self.warnings.push(format!(
                            "config key {child_path} ({}): {message}",
                            child.origin
                        )),
                        Role::Ignored(message) => {
                            self.warnings.push(format!(
                                "config key {child_path} ({}): {message}; ignored",
                                child.origin
                            ));
                            continue;
                        }
                        Role::OlderName(name)
                            if entries
                                .iter()
                                .any(|(key, value)| key == name && !value.is_null()) =>
                        {
                            self.fail(
                                &child_path,
                                Some(&child.origin),
                                format!("{name} is set twice (once under its older name {key}); keep one"),
                            );
                        }
                        Role::Key | Role::Required | Role::Variant | Role::OlderName(_) => {}
                    }
                    object.insert(key.clone(), self.node(child, field.kind, &child_path));
                }
                for field in fields.iter().filter(|field| field.role == Role::Required) {
                    if !object.contains_key(field.name) {
                        let key = join(path, field.name);
                        let variable = error::env_name(&key);
                        self.fail(
                            &key,
                            None,
                            format!(
                                "required but missing; set it in the config file or with {variable}"
                            ),
                        );
                    }
                }
                Json::Object(object)
            }
            (Value::Map(entries), Kind::Map(value_kind)) => {
                let mut object = Map::new();
                for (key, child) in entries {
                    let child_path = join(path, key);
                    if child.is_null() && !matches!(value_kind, Kind::Any) {
                        continue;
                    }
                    object.insert(key.clone(), self.node(child, value_kind, &child_path));
                }
                Json::Object(object)
            }
            (Value::Seq(items), Kind::List(item_kind)) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.node(item, item_kind, &format!("{path}[{i}]")))
                    .collect(),
            ),
            (Value::Scalar { text, .. }, Kind::Str) => Json::String(text.clone()),
            // Choices are matched without regard to case (`level: DEBUG`, `net: TCP`), as
            // registry:2 does for log levels.
            (Value::Scalar { text, .. }, Kind::Enum(choices)) => {
                match choices
                    .iter()
                    .find(|choice| choice.eq_ignore_ascii_case(text))
                {
                    Some(choice) => Json::String((*choice).to_owned()),
                    None => self.wrong_kind(node, kind, path),
                }
            }
            (
                Value::Scalar {
                    typed: Typed::Bool(b),
                    ..
                },
                Kind::Bool,
            ) => Json::Bool(*b),
            (
                Value::Scalar {
                    typed: Typed::UInt(n),
                    ..
                },
                Kind::Int,
            ) => Json::from(*n),
            (Value::Scalar { text, typed }, Kind::Duration) => match typed {
                Typed::UInt(n) => {
                    if *n != 0 {
                        self.warnings.push(format!(
                            "config key {path} ({}): {n} has no unit, so it means {n} nanoseconds as in registry:2; write {n}s for seconds",
                            node.origin
                        ));
                    }
                    Json::from(*n)
                }
                Typed::Int(n) => Json::from(*n),
                _ => Json::String(text.clone()),
            },
            (_, Kind::Any) => self.any(node, path),
            _ => self.wrong_kind(node, kind, path),
        }
    }

    /// Fails on `key`, unknown in a struct that refuses unknown keys, listing the keys it knows.
    fn unknown_key(&mut self, fields: &[Field], path: &str, key: &str, origin: &Origin) {
        let known: Vec<&str> = fields.iter().map(|field| field.name).collect();
        let suggestion = suggest(key, known.iter().copied())
            .map(|known| format!("; did you mean {}?", join(path, known)))
            .unwrap_or_default();
        self.fail(
            &join(path, key),
            Some(origin),
            format!(
                "unknown key; the keys here are {}{suggestion}",
                known.join(", ")
            ),
        );
    }

    /// A value whose target type is not known here: keep what YAML made of it.
    fn any(&mut self, node: &Node, path: &str) -> Json {
        match &node.value {
            Value::Null => Json::Null,
            Value::Scalar { text, typed } => match typed {
                Typed::Str => Json::String(text.clone()),
                Typed::Bool(b) => Json::Bool(*b),
                Typed::UInt(n) => Json::from(*n),
                Typed::Int(n) => Json::from(*n),
                Typed::Float(n) => {
                    Number::from_f64(*n).map_or_else(|| Json::String(text.clone()), Json::Number)
                }
            },
            Value::Seq(items) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.node(item, &Kind::Any, &format!("{path}[{i}]")))
                    .collect(),
            ),
            Value::Map(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(key, child)| {
                        (key.clone(), self.node(child, &Kind::Any, &join(path, key)))
                    })
                    .collect(),
            ),
        }
    }
}

/// Rewrites a struct-with-variants written as a bare name (`storage: inmemory`, `auth: silly`)
/// into the map form (`storage: {inmemory: {}}`), as registry:2 accepts both.
pub(crate) fn expand_variant_names(node: &mut Node, kind: &Kind) {
    let Some(fields) = kind.fields() else { return };
    if let Some(name) = node.as_text().map(str::to_owned)
        && kind.variants().any(|variant| variant == name)
    {
        let origin = node.origin.clone();
        *node = Node::map(origin.clone());
        node.insert(&name, Node::map(origin));
        return;
    }
    for field in fields.iter() {
        if let Some(child) = node.get_mut(field.name) {
            expand_variant_names(child, field.kind);
        }
    }
}

/// Applies registry:2's rules that involve several keys, after environment overrides:
///
/// - `loglevel` (deprecated) sets `log.level` unless that is set too;
/// - `auth: none` means no authentication;
/// - `http.tls` without a certificate means no TLS (Go's registry checks `certificate != ""`),
///   while a Let's Encrypt section without a certificate is an error: registryd cannot obtain
///   certificates, and serving plain HTTP where TLS was asked for would be worse.
pub(crate) fn apply_compatibility_rules(
    root: &mut Node,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    if let Some(loglevel) = root.remove("loglevel") {
        warnings.push(format!(
            "config key loglevel ({}) is deprecated; use log.level instead",
            loglevel.origin
        ));
        let log_level_set = root
            .get("log")
            .and_then(|log| log.get("level"))
            .is_some_and(|level| !level.is_null());
        if !log_level_set && !loglevel.is_null() {
            let origin = loglevel.origin.clone();
            match root.get_mut("log") {
                Some(log) if !log.is_null() => log.insert("level", loglevel),
                _ => {
                    let mut log = Node::map(origin);
                    log.insert("level", loglevel);
                    root.insert("log", log);
                }
            }
        }
    }

    // `auth: none` and an empty `auth` section both mean no authentication.
    if let Some(auth) = root.get("auth")
        && let Value::Map(entries) = &auth.value
        && (entries.is_empty() || (entries.len() == 1 && auth.get("none").is_some()))
    {
        root.remove("auth");
    }

    if let Some(tls) = root.get_mut("http").and_then(|http| http.get_mut("tls")) {
        let certificate = tls
            .get("certificate")
            .is_some_and(|c| !c.is_null() && c.as_text() != Some(""));
        if let Some(letsencrypt) = tls.remove("letsencrypt")
            && !letsencrypt.is_null()
        {
            if !certificate {
                return Err(ConfigError::Invalid {
                    key: "http.tls.letsencrypt".to_owned(),
                    origin: Some(letsencrypt.origin.to_string()),
                    message: "Let's Encrypt is not supported yet; set http.tls.certificate and http.tls.key to certificate files instead".to_owned(),
                });
            }
            warnings.push(format!(
                "config key http.tls.letsencrypt ({}) is ignored because http.tls.certificate is set",
                letsencrypt.origin
            ));
        }
        if !certificate && !tls.is_null() {
            warnings.push(format!(
                "config key http.tls ({}) has no certificate, so TLS is off (as in registry:2)",
                tls.origin
            ));
            if let Some(http) = root.get_mut("http") {
                http.remove("tls");
            }
        }
    }
    Ok(())
}
