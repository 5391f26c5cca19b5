//! The configuration loader over input nobody checked: arbitrary text, YAML documents of random
//! keys (mostly the schema's), values, anchors, aliases and merge keys, and `REGISTRY_*`
//! variables with random names and values. Loading must end in a configuration or an error of
//! one line, never a panic, and documents that expand through aliases or nest deeply are refused
//! before they cost more than a few megabytes.

use proptest::prelude::*;

use super::load::join_path;
use super::schema::{Kind, ROOT};
use super::*;

/// Every key name of the schema, at any level.
fn schema_keys() -> Vec<&'static str> {
    fn walk(kind: &'static Kind, out: &mut Vec<&'static str>) {
        match kind {
            Kind::Struct(fields) | Kind::ClosedStruct(fields) => {
                for field in fields.iter() {
                    out.push(field.name);
                    walk(field.kind, out);
                }
            }
            Kind::List(item) | Kind::Map(item) => walk(item, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&ROOT, &mut out);
    out.sort_unstable();
    out.dedup();
    out
}

/// Every key path of the schema, with `0` for list items and `name` for free-form map keys.
fn schema_paths() -> Vec<String> {
    fn walk(kind: &'static Kind, path: &str, out: &mut Vec<String>) {
        if !path.is_empty() {
            out.push(path.to_owned());
        }
        match kind {
            Kind::Struct(fields) | Kind::ClosedStruct(fields) => {
                for field in fields.iter() {
                    walk(field.kind, &join_path(path, field.name), out);
                }
            }
            Kind::List(item) => walk(item, &format!("{path}[0]"), out),
            Kind::Map(item) => walk(item, &join_path(path, "name"), out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&ROOT, "", &mut out);
    out
}

/// A YAML document as the generator builds it.
#[derive(Clone, Debug)]
enum Yaml {
    /// Written as it is: a plain scalar.
    Plain(String),
    /// Written as a double-quoted scalar.
    Quoted(String),
    Map(Vec<(String, Yaml)>),
    Seq(Vec<Yaml>),
    /// `&aN value`.
    Anchored(u8, Box<Yaml>),
    /// `*aN`, which may name an anchor not defined (yet).
    Alias(u8),
}

impl Yaml {
    /// Whether [`Yaml::render`] writes this in block style (on lines of its own).
    fn is_block(&self, block_levels: usize) -> bool {
        block_levels > 0
            && match self {
                Yaml::Map(entries) => !entries.is_empty(),
                Yaml::Seq(items) => !items.is_empty(),
                _ => false,
            }
    }

    /// Block style for the first `block_levels` levels of maps and lists, flow style below.
    fn render(&self, out: &mut String, indent: usize, block_levels: usize) {
        if self.is_block(block_levels)
            && let Yaml::Map(entries) = self
        {
            for (key, value) in entries {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                push_key(out, key);
                out.push(':');
                if !value.is_block(block_levels - 1) {
                    out.push(' ');
                }
                value.render(out, indent + 2, block_levels - 1);
            }
            return;
        }
        match self {
            Yaml::Seq(items) if self.is_block(block_levels) => {
                for item in items {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                    out.push_str("- ");
                    item.render(out, indent + 2, 0);
                }
            }
            Yaml::Plain(text) => out.push_str(text),
            Yaml::Quoted(text) => out.push_str(&serde_json::to_string(text).unwrap_or_default()),
            Yaml::Map(entries) => {
                out.push('{');
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    push_key(out, key);
                    out.push_str(": ");
                    value.render(out, indent, 0);
                }
                out.push('}');
            }
            Yaml::Seq(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    item.render(out, indent, 0);
                }
                out.push(']');
            }
            Yaml::Anchored(id, value) => {
                out.push_str(&format!("&a{id} "));
                value.render(out, indent, 0);
            }
            Yaml::Alias(id) => out.push_str(&format!("*a{id}")),
        }
    }
}

/// Schema keys and `<<` are written plain, anything else quoted.
fn push_key(out: &mut String, key: &str) {
    if key == "<<" || key.bytes().all(|b| b.is_ascii_alphanumeric()) && !key.is_empty() {
        out.push_str(key);
    } else {
        out.push_str(&serde_json::to_string(key).unwrap_or_default());
    }
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => prop::sample::select(schema_keys()).prop_map(str::to_owned),
        1 => Just("<<".to_owned()),
        1 => "[a-zA-Z]{1,10}",
        1 => "\\PC{0,10}",
    ]
}

/// Scalars of every type a key may want, and of the wrong ones.
fn scalar() -> impl Strategy<Value = Yaml> {
    prop_oneof![
        6 => prop::sample::select(vec![
            "0.1", "0.10", "true", "no", "Off", "~", "null", "0", "5000", "-1", "0x1F", "0o17",
            "1e400", ".inf", ".nan", "18446744073709551616", "10s", "1h30m", "-5m", "inmemory",
            "filesystem", "htpasswd", "token", "/var/lib/registry", ":5000", "127.0.0.1:5000",
            "debug", "json", "tls1.3", "pull", "'*'", "\"*\"",
        ])
        .prop_map(|text| Yaml::Plain(text.to_owned())),
        2 => "[a-zA-Z0-9./_-]{0,16}".prop_map(Yaml::Plain),
        2 => "\\PC{0,16}".prop_map(Yaml::Quoted),
        1 => (0u8..2).prop_map(Yaml::Alias),
    ]
}

fn value() -> impl Strategy<Value = Yaml> {
    scalar().prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            3 => prop::collection::vec((key(), inner.clone()), 0..5).prop_map(Yaml::Map),
            2 => prop::collection::vec(inner.clone(), 0..4).prop_map(Yaml::Seq),
            2 => (0u8..2, inner).prop_map(|(id, value)| Yaml::Anchored(id, Box::new(value))),
        ]
    })
}

/// A document: mostly `version: 0.1` first, then top-level sections of random content.
fn document() -> impl Strategy<Value = String> {
    (
        prop::option::weighted(
            0.9,
            Just(("version".to_owned(), Yaml::Plain("0.1".to_owned()))),
        ),
        prop::collection::vec((key(), value()), 0..6),
        0usize..4,
    )
        .prop_map(|(version, entries, block_levels)| {
            let document = Yaml::Map(version.into_iter().chain(entries).collect());
            let mut text = String::new();
            document.render(&mut text, 0, block_levels);
            text
        })
}

/// What every outcome must satisfy: a configuration of version 0.1, or one line of error.
fn check(result: Result<LoadedConfig, ConfigError>) -> Result<(), TestCaseError> {
    match result {
        Ok(loaded) => prop_assert_eq!(loaded.config.version, "0.1"),
        Err(error) => {
            let message = error.to_string();
            prop_assert!(
                !message.is_empty() && !message.contains('\n'),
                "{:?}",
                message
            );
        }
    }
    Ok(())
}

/// A `REGISTRY_*` name: the variable of a schema key, maybe with random parts after it, in any
/// case, or junk.
fn variable() -> impl Strategy<Value = String> {
    let known = (
        prop::sample::select(schema_paths()),
        prop::collection::vec(
            prop_oneof!["[0-9]{1,2}", "[A-Za-z]{1,6}", Just(String::new())],
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(|(path, suffix, lower)| {
            let mut name = error::env_name(&path);
            for part in suffix {
                name.push('_');
                name.push_str(&part);
            }
            if lower {
                name = format!("REGISTRY_{}", name["REGISTRY_".len()..].to_lowercase());
            }
            name
        });
    prop_oneof![
        6 => known,
        1 => "REGISTRY_[A-Za-z0-9_]{0,30}",
        1 => "REGISTRY_\\PC{0,20}",
    ]
}

/// A value for a variable: text, YAML for maps and lists, broken YAML, anchors.
fn variable_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => scalar().prop_map(|scalar| {
            let mut text = String::new();
            scalar.render(&mut text, 0, 0);
            text
        }),
        2 => value().prop_map(|value| {
            let mut text = String::new();
            value.render(&mut text, 0, 0);
            text
        }),
        1 => prop::sample::select(vec![
            "[a, b]", "{enabled: true}", "&a [*a]", "*a", "[[[", "{a: }", "'unterminated", "- a",
            "key: value", "\"\\u0000\"",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics_the_config_loader(text in "\\PC{0,200}") {
        check(Config::from_yaml(&text, []))?;
    }

    #[test]
    fn documents_of_random_keys_values_anchors_and_aliases_load_or_fail_in_one_line(
        document in document(),
    ) {
        check(Config::from_yaml(&document, []))?;
    }

    #[test]
    fn env_overrides_with_random_names_and_values_load_or_fail_in_one_line(
        document in prop_oneof![Just(String::new()), document()],
        vars in prop::collection::vec((variable(), variable_value()), 1..4),
    ) {
        check(Config::from_yaml(&document, vars))?;
    }
}

/// The classic alias bomb: nine levels of ten aliases each stand for 10^9 values in 600 bytes.
fn billion_laughs() -> String {
    let mut yaml = String::from("version: 0.1\nlog:\n  fields:\n    l0: &l0 [lol]\n");
    for level in 1..10 {
        let aliases = vec![format!("*l{}", level - 1); 10].join(", ");
        yaml.push_str(&format!("    l{level}: &l{level} [{aliases}]\n"));
    }
    yaml
}

#[track_caller]
fn refusal(result: Result<LoadedConfig, ConfigError>) -> String {
    match result {
        Ok(_) => panic!("the document should be refused"),
        Err(error) => error.to_string(),
    }
}

/// Refused once 50,000 values have been built (a few megabytes), not after a billion.
#[test]
fn billion_laughs_is_refused_with_an_error() {
    let message = refusal(Config::from_yaml(&billion_laughs(), []));
    assert!(message.contains("more than 50000 values"), "{message}");

    let flow = billion_laughs().replace("version: 0.1\nlog:\n  fields:\n", "");
    let flow = format!("{{{}}}", flow.trim().replace("\n    ", ", "));
    let message = refusal(Config::from_yaml(
        "version: 0.1",
        [("REGISTRY_NOTIFICATIONS".to_owned(), flow)],
    ));
    assert!(
        message.starts_with("environment variable REGISTRY_NOTIFICATIONS")
            && message.contains("more than 50000 values"),
        "{message}"
    );
}

/// One long value repeated through aliases: 64 KiB a thousand times is 64 MiB of text.
#[test]
fn long_value_repeated_through_aliases_is_refused_with_an_error() {
    let aliases = vec!["*long"; 1000].join(", ");
    let yaml = format!(
        "version: 0.1\nlog:\n  fields:\n    long: &long \"{}\"\n    copies: [{aliases}]\n",
        "x".repeat(64 * 1024)
    );
    let message = refusal(Config::from_yaml(&yaml, []));
    assert!(message.contains("more than 4 MiB of text"), "{message}");
    // A handful of copies is fine.
    let few = yaml.replace(&aliases, "*long, *long");
    assert!(Config::from_yaml(&few, []).is_ok());
}

/// Refused before the recursions over the document can reach the end of a 2 MiB stack (this
/// test's own), whether the nesting is written in flow or block style.
#[test]
fn nesting_deeper_than_32_is_refused_with_an_error() {
    let deep_flow = format!(
        "version: 0.1\nlog:\n  fields:\n    deep: {}1{}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    let mut deep_block = String::from("version: 0.1\nlog:\n  fields:\n");
    for level in 0..100 {
        deep_block.push_str(&format!("{}k{level}:\n", " ".repeat(4 + 2 * level)));
    }
    for yaml in [deep_flow, deep_block] {
        let message = refusal(Config::from_yaml(&yaml, []));
        assert!(message.contains("nest more than 32 deep"), "{message}");
    }
    let mut fine = String::from("version: 0.1\nlog:\n  fields:\n");
    for level in 0..29 {
        fine.push_str(&format!("{}k{level}:\n", " ".repeat(4 + 2 * level)));
    }
    assert!(Config::from_yaml(&fine, []).is_ok());
}

/// A name of 20,000 parts used to nest the tree 20,000 deep under a free-form section and
/// overflow the stack; now it is ignored with a warning. The deepest name accepted, with a value
/// nested as deep as a file may, loads.
#[test]
fn variable_names_of_thousands_of_parts_are_ignored_with_a_warning() {
    let name = format!("REGISTRY_REDIS{}", "_A".repeat(20_000));
    let loaded = Config::from_yaml("version: 0.1", [(name, "x".to_owned())])
        .expect("the variable is ignored");
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].contains("more than 32 parts") && loaded.warnings[0].len() < 200,
        "{}",
        loaded.warnings[0]
    );

    let name = format!("REGISTRY_REDIS{}", "_A".repeat(31));
    let value = format!("{}1{}", "[".repeat(31), "]".repeat(31));
    let loaded = Config::from_yaml("version: 0.1", [(name, value)]).expect("loads");
    assert!(loaded.config.redis.is_some());
}
