//! From the untyped tree to the JSON value the typed `Config` is read from.
//!
//! Each scalar is read as the kind its key wants (the schema says which), so a string key keeps
//! the text as written, a boolean key accepts registry:2's YAML 1.1 spellings, and a duration key
//! accepts a bare number of nanoseconds like registry:2 does. The registry:2 rules that span
//! several keys (deprecated `loglevel`, `auth: none`, TLS without a certificate) are applied here
//! too, before typing.

use std::collections::HashMap;

use serde_json::{Map, Number, Value as Json};

use super::error::ConfigError;
use super::schema::{Kind, Role};
use super::tree::{Node, Origin, Typed, Value};

/// The JSON form of the tree and where each of its values came from.
pub(crate) struct Converted {
    pub(crate) json: Json,
    /// Origin of every value, keyed by path (`http.tls.clientcas[0]`).
    pub(crate) origins: HashMap<String, Origin>,
}

/// Converts `root` (the whole document) using `schema`, adding notes to `warnings`.
pub(crate) fn to_json(root: &Node, schema: &Kind, warnings: &mut Vec<String>) -> Converted {
    let mut converter = Converter {
        origins: HashMap::new(),
        warnings,
    };
    let json = match converter.node(root, schema, "") {
        Json::Null => Json::Object(Map::new()),
        json => json,
    };
    Converted {
        json,
        origins: converter.origins,
    }
}

struct Converter<'a> {
    origins: HashMap<String, Origin>,
    warnings: &'a mut Vec<String>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl Converter<'_> {
    fn node(&mut self, node: &Node, kind: &Kind, path: &str) -> Json {
        if !path.is_empty() {
            self.origins.insert(path.to_owned(), node.origin.clone());
        }
        match (&node.value, kind) {
            (Value::Null, _) => Json::Null,
            (Value::Map(entries), Kind::Struct(_)) => {
                let mut object = Map::new();
                for (key, child) in entries {
                    let child_path = join(path, key);
                    let Some(field) = kind.field(key) else {
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
                        Role::Key | Role::Variant => {}
                    }
                    object.insert(key.clone(), self.node(child, field.kind, &child_path));
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
            (Value::Scalar { text, .. }, Kind::Enum(choices)) => Json::String(
                choices
                    .iter()
                    .find(|choice| choice.eq_ignore_ascii_case(text))
                    .map_or_else(|| text.clone(), |choice| (*choice).to_owned()),
            ),
            (Value::Scalar { text, typed }, Kind::Bool) => match typed {
                Typed::Bool(b) => Json::Bool(*b),
                _ => Json::String(text.clone()),
            },
            (Value::Scalar { text, typed }, Kind::Int) => match typed {
                Typed::UInt(n) => Json::from(*n),
                Typed::Int(n) => Json::from(*n),
                Typed::Float(n) => {
                    Number::from_f64(*n).map_or_else(|| Json::String(text.clone()), Json::Number)
                }
                _ => Json::String(text.clone()),
            },
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
            _ => self.any(node, path),
        }
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
    let Kind::Struct(fields) = kind else { return };
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
