//! Tests that need the loader's internals: the schema against the typed `Config`, and
//! environment overrides of every scalar key.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Value as Json, json};

use super::load::join_path;
use super::schema::{Field, Kind, ROOT, Role};
use super::*;

/// A valid value for every key of `kind`, choosing `variants` where a struct has variants.
fn example(kind: &Kind, path: &str, variants: &[&str]) -> Json {
    match kind {
        Kind::Str if path == "version" => json!("0.1"),
        Kind::Str => json!("x"),
        Kind::Enum(choices) => json!(choices[0]),
        Kind::Bool => json!(true),
        Kind::Int => json!(1),
        Kind::Duration => json!("1s"),
        Kind::Any => json!({}),
        Kind::List(item) => json!([example(item, path, variants)]),
        Kind::Map(value) => json!({ "name": example(value, path, variants) }),
        Kind::Struct(fields) | Kind::ClosedStruct(fields) => Json::Object(
            fields
                .iter()
                .filter(|field| field.role != Role::Variant || variants.contains(&field.name))
                .filter(|field| !matches!(field.role, Role::OlderName(_)))
                .map(|field| {
                    let child = join_path(path, field.name);
                    (field.name.to_owned(), example(field.kind, &child, variants))
                })
                .collect(),
        ),
    }
}

#[test]
fn every_schema_key_is_a_config_field() {
    for storage in ["filesystem", "inmemory", "s3"] {
        for auth in ["htpasswd", "silly", "token"] {
            let document = example(&ROOT, "", &[storage, auth]).to_string();
            let loaded = Config::from_yaml(&document, []);
            let warnings = loaded
                .as_ref()
                .map(|l| l.warnings.clone())
                .unwrap_or_default();
            assert!(loaded.is_ok(), "{storage}/{auth}: {loaded:?}\n{document}");
            let unknown: Vec<&String> = warnings
                .iter()
                .filter(|w| w.starts_with("unknown"))
                .collect();
            assert!(unknown.is_empty(), "{storage}/{auth}: {unknown:?}");
        }
    }
}

/// Checks that every key of `value` (a serialized `Config`) is in the schema.
fn assert_known(value: &Json, kind: &Kind, path: &str) {
    match (value, kind) {
        (_, Kind::Any) => {}
        (Json::Object(map), Kind::Struct(_) | Kind::ClosedStruct(_)) => {
            for (key, child) in map {
                let child_path = join_path(path, key);
                let field: Option<&Field> = kind.field(key);
                let Some(field) = field else {
                    panic!("{child_path} is not in the schema")
                };
                assert_known(child, field.kind, &child_path);
            }
        }
        (Json::Object(map), Kind::Map(item)) => {
            map.values().for_each(|v| assert_known(v, item, path))
        }
        (Json::Array(items), Kind::List(item)) => {
            items.iter().for_each(|v| assert_known(v, item, path))
        }
        (Json::Object(_) | Json::Array(_), _) => panic!("{path} has the wrong shape in the schema"),
        _ => {}
    }
}

#[test]
fn every_config_field_is_in_the_schema() {
    for storage in ["filesystem", "inmemory", "s3"] {
        for auth in ["htpasswd", "silly", "token"] {
            let document = example(&ROOT, "", &[storage, auth]).to_string();
            let config = Config::from_yaml(&document, [])
                .map(|l| l.config)
                .unwrap_or_default();
            let serialized = serde_json::to_value(&config).unwrap_or_default();
            assert_known(&serialized, &ROOT, "");
        }
    }
}

/// A document every scalar override below can be applied to on its own: the sections with
/// required keys are present.
const BASE: &str = "
auth:
  htpasswd:
    realm: r
    path: /p
http:
  tls:
    certificate: /c.pem
    key: /k.pem
  debug:
    addr: :5001
proxy:
  remoteurl: https://upstream.example
";

/// Every scalar key under the sections of `BASE`, with its kind.
fn scalar_keys() -> Vec<(String, &'static Kind)> {
    fn walk(kind: &'static Kind, path: &str, out: &mut Vec<(String, &'static Kind)>) {
        if kind.is_scalar() {
            out.push((path.to_owned(), kind));
        }
        if let Some(fields) = kind.fields() {
            for field in fields.iter() {
                let skip = matches!(field.name, "loglevel" | "letsencrypt")
                    || matches!(field.role, Role::OlderName(_))
                    || (field.role == Role::Variant
                        && !matches!(field.name, "filesystem" | "htpasswd"))
                    || matches!(field.role, Role::Unsupported(_) | Role::Ignored(_));
                if !skip {
                    walk(field.kind, &join_path(path, field.name), out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&ROOT, "", &mut out);
    out
}

#[derive(Debug, Clone)]
enum EnvValue {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl EnvValue {
    fn text(&self) -> String {
        match self {
            EnvValue::Bool(b) => b.to_string(),
            EnvValue::Int(n) => n.to_string(),
            EnvValue::Text(text) => text.clone(),
        }
    }
}

fn env_value() -> impl Strategy<Value = EnvValue> {
    prop_oneof![
        any::<bool>().prop_map(EnvValue::Bool),
        any::<i64>().prop_map(EnvValue::Int),
        (0i64..100_000).prop_map(EnvValue::Int),
        "[a-zA-Z][a-zA-Z0-9 ./:_-]{0,12}".prop_map(EnvValue::Text),
        prop::sample::select(vec![
            "0.1",
            "debug",
            "WARN",
            "json",
            "unix",
            "TCP",
            "tls1.3",
            "inmemory",
            "redis",
            "require-any-client-cert",
            "yes",
            "Off",
            "y",
            "n",
            "1h30m",
            "500ms",
            "0",
            "0.5s",
        ])
        .prop_map(|text| EnvValue::Text(text.to_owned())),
    ]
}

/// What reading `text` into a key of `kind` should give: the serialized value, or `None` for
/// an error.
fn expected(path: &str, kind: &Kind, text: &str) -> Option<Json> {
    match kind {
        Kind::Str if path == "version" => (text == "0.1").then(|| json!(text)),
        Kind::Str => Some(json!(text)),
        Kind::Enum(choices) => choices
            .iter()
            .find(|choice| choice.eq_ignore_ascii_case(text))
            .map(|choice| json!(choice)),
        Kind::Bool => match text.trim().to_lowercase().as_str() {
            "true" | "yes" | "y" | "on" => Some(json!(true)),
            "false" | "no" | "n" | "off" => Some(json!(false)),
            _ => None,
        },
        Kind::Int => text.parse::<u64>().ok().map(|n| json!(n)),
        Kind::Duration => match text.parse::<i64>() {
            Ok(n) => u64::try_from(n)
                .ok()
                .map(|n| json!(format_duration(Duration::from_nanos(n)))),
            Err(_) => parse_duration(text).ok().map(|d| json!(format_duration(d))),
        },
        _ => None,
    }
}

fn lookup<'a>(value: &'a Json, path: &str) -> Option<&'a Json> {
    path.split('.').try_fold(value, |value, key| value.get(key))
}

/// Writes the parts of a variable name in random case: `REGISTRY_storage_Delete_ENABLED`.
fn mixed_case(name: &str, pattern: u64) -> String {
    let (prefix, rest) = name.split_at("REGISTRY_".len());
    let parts: Vec<String> = rest
        .split('_')
        .enumerate()
        .map(|(i, part)| match (pattern >> (2 * i)) & 3 {
            0 => part.to_lowercase(),
            1 => {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|c| c.to_string() + &chars.as_str().to_lowercase())
                    .unwrap_or_default()
            }
            _ => part.to_owned(),
        })
        .collect();
    format!("{prefix}{}", parts.join("_"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn an_env_override_of_a_scalar_key_reads_back_or_names_the_key(
        key in prop::sample::select(scalar_keys()),
        value in env_value(),
        case_pattern in any::<u64>(),
    ) {
        let (path, kind) = key;
        let text = value.text();
        let variable = mixed_case(&error::env_name(&path), case_pattern);
        let result = Config::from_yaml(BASE, [(variable.clone(), text.clone())]);
        match (result, expected(&path, kind, &text)) {
            (Ok(loaded), Some(want)) => {
                let serialized = serde_json::to_value(&loaded.config).unwrap_or_default();
                prop_assert_eq!(lookup(&serialized, &path), Some(&want), "{} = {:?}", variable, text);
            }
            (Err(error), None) => {
                let message = error.to_string();
                prop_assert!(message.contains(&path), "{} = {:?}: {}", variable, text, message);
            }
            (Ok(loaded), None) => {
                let serialized = serde_json::to_value(&loaded.config).unwrap_or_default();
                prop_assert!(false, "{} = {:?} should fail, read {:?}", variable, text, lookup(&serialized, &path));
            }
            (Err(error), Some(want)) => {
                prop_assert!(false, "{} = {:?} should read {}, failed: {}", variable, text, want, error);
            }
        }
    }
}

#[test]
fn scalar_keys_cover_the_sections_with_required_keys() {
    let keys: Vec<String> = scalar_keys().into_iter().map(|(path, _)| path).collect();
    for expected in [
        "version",
        "storage.filesystem.rootdirectory",
        "auth.htpasswd.path",
        "http.tls.minimumtls",
        "proxy.remoteurl",
        "http.debug.prometheus.path",
    ] {
        assert!(
            keys.iter().any(|key| key == expected),
            "{expected} missing from {keys:?}"
        );
    }
}

#[test]
fn rule_actions_in_the_schema_are_the_rule_action_names() {
    for name in super::schema::RULE_ACTIONS {
        let action: Result<RuleAction, _> = serde_json::from_value(json!(name));
        let action = action.unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(serde_json::to_value(action).ok(), Some(json!(name)));
    }
}

#[test]
fn config_deserialized_directly_refuses_access_rules_without_a_provider() {
    let rules = json!([{ "users": ["ci"], "repositories": ["a"], "actions": ["pull"] }]);
    let error = serde_json::from_value::<Config>(json!({ "auth": { "access": rules } }))
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    assert!(
        error.starts_with("auth.access needs an auth provider"),
        "{error}"
    );
    let config: Config = serde_json::from_value(json!({
        "auth": { "htpasswd": { "realm": "r", "path": "/p" }, "access": rules }
    }))
    .unwrap_or_default();
    assert_eq!(config.access.len(), 1);
    assert!(config.auth.is_some());
}

#[test]
fn auth_config_alone_refuses_access_rules_rather_than_dropping_them() {
    let section = json!({
        "htpasswd": { "realm": "r", "path": "/p" },
        "access": [{ "users": ["ci"], "repositories": ["a"], "actions": ["pull"] }],
    });
    assert!(serde_json::from_value::<AuthConfig>(section).is_err());
    let section = json!({ "htpasswd": { "realm": "r", "path": "/p" } });
    assert!(serde_json::from_value::<AuthConfig>(section).is_ok());
}

#[test]
fn index_platform_choices_in_the_schema_are_the_index_platforms_names() {
    for name in super::schema::INDEX_PLATFORMS {
        let platforms: Result<IndexPlatforms, _> = serde_json::from_value(json!(name));
        let platforms = platforms.unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(serde_json::to_value(platforms).ok(), Some(json!(name)));
    }
}

/// The path of every key in `value` (a document from [`example`]), as the steps to reach it.
fn document_keys(value: &Json, steps: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Json::Object(map) => {
            for (key, child) in map {
                steps.push(key.clone());
                out.push(steps.clone());
                document_keys(child, steps, out);
                steps.pop();
            }
        }
        Json::Array(items) => {
            if let Some(first) = items.first() {
                steps.push("0".to_owned());
                document_keys(first, steps, out);
                steps.pop();
            }
        }
        _ => {}
    }
}

/// `document` without the key at `steps`, and the schema's role for that key.
fn without(document: &Json, steps: &[String]) -> (Json, Option<Role>) {
    let mut document = document.clone();
    let Some((last, parents)) = steps.split_last() else {
        return (document, None);
    };
    let mut value = &mut document;
    let mut kind = &ROOT;
    for step in parents {
        (value, kind) = match (value, kind) {
            (Json::Array(items), Kind::List(item)) => (&mut items[0], *item),
            (Json::Object(map), _) => {
                let child = kind.field(step).map_or(&Kind::Any, |field| field.kind);
                (&mut map[step.as_str()], child)
            }
            (value, _) => (value, &Kind::Any),
        };
    }
    if let Json::Object(map) = value {
        map.remove(last.as_str());
    }
    (document, kind.field(last).map(|field| field.role))
}

#[test]
fn a_key_is_required_exactly_when_the_schema_marks_it_required() {
    for storage in ["filesystem", "inmemory", "s3"] {
        for auth in ["htpasswd", "silly", "token"] {
            // Without a certificate, Let's Encrypt is refused: a rule across keys.
            let (document, _) = without(
                &example(&ROOT, "", &[storage, auth]),
                &["http".into(), "tls".into(), "letsencrypt".into()],
            );
            let mut keys = Vec::new();
            document_keys(&document, &mut Vec::new(), &mut keys);
            for steps in keys {
                let (smaller, role) = without(&document, &steps);
                if role == Some(Role::Variant) {
                    // Leaving out the provider is a rule across keys (access rules need one).
                    continue;
                }
                let loaded = Config::from_yaml(&smaller.to_string(), []);
                let path = steps.join(".");
                if role == Some(Role::Required) {
                    let error = loaded.err().map(|e| e.to_string()).unwrap_or_default();
                    assert!(
                        error.contains("required but missing"),
                        "{storage}/{auth}: without {path}: {error}"
                    );
                } else {
                    assert!(
                        loaded.is_ok(),
                        "{storage}/{auth}: without {path}: {:?}",
                        loaded.err()
                    );
                }
            }
        }
    }
}

/// A configuration with `value` at `key`, as the [`schema::REFUSED`] test needs it.
fn with_refused(key: &str, value: &str, certificate: &Path, private_key: &Path) -> String {
    match key {
        "storage" => format!("storage: {value}\n"),
        "auth" => format!("storage: inmemory\nauth:\n  {value}: {{realm: r, service: s}}\n"),
        "http.net" => format!("storage: inmemory\nhttp:\n  net: {value}\n"),
        "http.tls.minimumtls" => format!(
            "storage: inmemory\nhttp:\n  tls:\n    certificate: {}\n    key: {}\n    minimumtls: {value}\n",
            certificate.display(),
            private_key.display()
        ),
        other => panic!("no configuration for refused key {other}; add one here"),
    }
}

#[test]
fn every_value_the_schema_calls_refused_is_refused_naming_its_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("tempdir: {error}"));
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .unwrap_or_else(|error| panic!("certificate: {error}"));
    let certificate = dir.path().join("server.crt");
    let private_key = dir.path().join("server.key");
    std::fs::write(&certificate, issued.cert.pem()).unwrap_or_else(|error| panic!("{error}"));
    std::fs::write(&private_key, issued.signing_key.serialize_pem())
        .unwrap_or_else(|error| panic!("{error}"));
    for (key, value) in super::schema::REFUSED {
        assert!(!super::schema::accepted(key, value));
        let yaml = with_refused(key, value, &certificate, &private_key);
        let error = match Config::from_yaml(&yaml, []) {
            Err(error) => error.to_string(),
            Ok(loaded) => match crate::Registry::from_config(&loaded.config) {
                Err(error) => error.to_string(),
                Ok(_) => panic!("{key}: {value} is served with:\n{yaml}"),
            },
        };
        assert!(error.contains(key), "{key}: {value}: {error}");
    }
}

/// The text of every Rust source file that may act on a configuration key: the workspace's
/// `crates/*/src` and `bins/*/src`, without comments, and without the parts of the config module
/// that only read, convert, print or test keys (`config.rs` and `load.rs` stay: they hold the
/// checks and methods that use keys).
fn acting_sources() -> String {
    fn walk(dir: &Path, out: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
                continue;
            }
            let only_reads_keys = path
                .parent()
                .is_some_and(|parent| parent.ends_with("src/config"))
                && path.file_name().is_some_and(|name| name != "load.rs");
            if path.extension().is_some_and(|ext| ext == "rs") && !only_reads_keys {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for line in text
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("//"))
                {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = String::new();
    for group in ["crates", "bins"] {
        let Ok(members) = std::fs::read_dir(root.join(group)) else {
            continue;
        };
        for member in members.flatten() {
            walk(&member.path().join("src"), &mut out);
        }
    }
    out
}

/// Keys acted on by name rather than through a field: `loglevel` is read into `log.level`
/// before typing (`convert`).
const ACTED_ON_BY_NAME: &[&str] = &["loglevel"];

/// Every key that is neither marked as warned about (`Unsupported`, `Ignored`) nor a variant's
/// name, with its field name.
fn keys_said_to_be_acted_on() -> Vec<(String, &'static str)> {
    fn walk(kind: &'static Kind, path: &str, out: &mut Vec<(String, &'static str)>) {
        let item = match kind {
            Kind::List(item) | Kind::Map(item) => item,
            _ => kind,
        };
        for field in item.fields().unwrap_or_default() {
            let child = join_path(path, field.name);
            match field.role {
                Role::Unsupported(_) | Role::Ignored(_) | Role::OlderName(_) => continue,
                Role::Variant => {}
                Role::Key | Role::Required => out.push((child.clone(), field.name)),
            }
            walk(field.kind, &child, out);
        }
    }
    let mut out = Vec::new();
    walk(&ROOT, "", &mut out);
    out
}

#[test]
fn no_key_is_silently_ignored_every_key_is_read_by_code_or_warned_about() {
    let sources = acting_sources();
    assert!(
        sources.contains("fn from_config"),
        "the sources were not found"
    );
    let read = |name: &str| {
        sources
            .match_indices(&format!(".{name}"))
            .any(|(at, found)| {
                !sources[at + found.len()..]
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    let unread: Vec<String> = keys_said_to_be_acted_on()
        .into_iter()
        .filter(|(path, name)| !ACTED_ON_BY_NAME.contains(&path.as_str()) && !read(name))
        .map(|(path, _)| path)
        .collect();
    assert!(
        unread.is_empty(),
        "no code reads these keys, so registryd would ignore them without a word; implement them \
         or mark them unsupported in config/schema.rs (which makes loading warn) and in \
         docs/configuration.md: {unread:#?}"
    );
}

#[test]
fn every_key_marked_unsupported_or_ignored_warns_naming_itself() {
    for storage in ["filesystem", "inmemory", "s3"] {
        for auth in ["htpasswd", "silly", "token"] {
            let document = example(&ROOT, "", &[storage, auth]).to_string();
            let warnings = Config::from_yaml(&document, [])
                .map(|loaded| loaded.warnings)
                .unwrap_or_else(|error| panic!("{storage}/{auth}: {error}"));
            let mut marked = Vec::new();
            fn walk(kind: &'static Kind, path: &str, variants: &[&str], out: &mut Vec<String>) {
                let item = match kind {
                    Kind::List(item) | Kind::Map(item) => item,
                    _ => kind,
                };
                for field in item.fields().unwrap_or_default() {
                    if field.role == Role::Variant && !variants.contains(&field.name) {
                        continue;
                    }
                    let child = join_path(path, field.name);
                    match field.role {
                        Role::Unsupported(_) | Role::Ignored(_) => out.push(child),
                        _ => walk(field.kind, &child, variants, out),
                    }
                }
            }
            walk(&ROOT, "", &[storage, auth], &mut marked);
            for path in marked {
                assert!(
                    warnings
                        .iter()
                        .any(|warning| warning.starts_with(&format!("config key {path} "))),
                    "{storage}/{auth}: no warning names {path}: {warnings:#?}"
                );
            }
        }
    }
}
