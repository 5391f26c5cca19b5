//! `docs/configuration.md` against the configuration the code reads.
//!
//! The code side is [`registry::config::key_paths`]: every key of the schema the loader resolves
//! environment overrides and key suggestions against. The unit tests of `registry::config` hold
//! that schema and the typed `Config` together (every schema key loads into `Config`, every key
//! a loaded `Config` serializes is in the schema), so the docs are checked against `Config`
//! through it. Keys of a conditional section (a storage driver, an auth provider, `proxy`, list
//! entries) are in the schema whether or not a file uses them, so they are checked too.
//!
//! The docs side is the first column of every table in the reference whose header starts with
//! `key` or `section`: backticked paths, where a cell may group several (`` `proxy.ttl`,
//! `proxy.exec` ``), name siblings by their last part (`` `storage.s3`, `azure` ``) or by a
//! leading dot (`` `proxy.upstreams[N].remoteurl`, `.username` ``).

use std::collections::BTreeSet;

use registry::config::{Config, key_paths, unimplemented_key_paths};

const DOCS: &str = include_str!("../../../docs/configuration.md");

/// The key paths the tables of `markdown` document.
fn documented_keys(markdown: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut in_key_table = false;
    for line in markdown.lines() {
        let Some(row) = line.trim().strip_prefix('|') else {
            in_key_table = false;
            continue;
        };
        let first_cell = row.split('|').next().unwrap_or_default().trim();
        if first_cell == "key" || first_cell == "section" {
            in_key_table = true;
            continue;
        }
        if !in_key_table || first_cell.starts_with("---") {
            continue;
        }
        let mut previous: Option<String> = None;
        for name in backticked(first_cell) {
            let parent = previous
                .as_deref()
                .and_then(|previous| previous.rsplit_once('.'))
                .map(|(parent, _)| parent);
            let key = match (name.strip_prefix('.'), parent) {
                (Some(last), Some(parent)) => format!("{parent}.{last}"),
                (None, Some(parent)) if !name.contains('.') => format!("{parent}.{name}"),
                _ => name.to_owned(),
            };
            keys.insert(key.clone());
            previous = Some(key);
        }
    }
    keys
}

/// The `code spans` of `text`, in order.
fn backticked(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

#[test]
fn every_config_key_is_documented_and_every_documented_key_exists() {
    let code: BTreeSet<String> = key_paths().into_iter().collect();
    let docs = documented_keys(DOCS);
    let undocumented: Vec<&String> = code.difference(&docs).collect();
    let unknown: Vec<&String> = docs.difference(&code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/configuration.md and the configuration schema (crates/registry/src/config/schema.rs) \
         disagree.\nKeys the code reads that no table documents: {undocumented:#?}\nKeys the \
         docs list that the code does not read: {unknown:#?}\nAdd a row `| `section.key` | type | \
         default | notes |` to the section's table, or remove the row."
    );
}

/// Sections that deliberately take any value and read none of it: `auth: none` means no
/// authentication, whatever it is set to.
const IGNORED_WHATEVER_THEY_HOLD: &[&str] = &["auth.none"];

/// A storage driver or auth provider the schema holds as one path, with no keys listed under
/// it, must be one registryd refuses ("not supported yet"), one that takes no keys (an unknown
/// key under it is reported as such), or one of [`IGNORED_WHATEVER_THEY_HOLD`]. Anything else
/// is a section the code reads keys from that the schema, and so the docs, do not list: an S3
/// driver whose parameters were never added to the schema, say.
#[test]
fn driver_and_provider_sections_without_listed_keys_take_no_keys() {
    let paths = key_paths();
    let sections: Vec<(&str, &str)> = paths
        .iter()
        .filter_map(|path| {
            let (section, name) = path.split_once('.')?;
            let has_keys = paths.iter().any(|other| {
                other
                    .strip_prefix(path.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            });
            let driver_or_provider = matches!(section, "storage" | "auth") && !name.contains('.');
            let ignored = IGNORED_WHATEVER_THEY_HOLD.contains(&path.as_str());
            (driver_or_provider && !has_keys && !ignored).then_some((section, name))
        })
        .collect();
    assert!(
        sections.contains(&("storage", "inmemory")),
        "expected storage.inmemory among {sections:?}"
    );
    for (section, name) in sections {
        let yaml = format!("{section}:\n  {name}:\n    probe: 1\n");
        let probe = format!("unknown config key {section}.{name}.probe");
        match Config::from_yaml(&yaml, []) {
            Err(error) => assert!(
                error.to_string().contains("not supported"),
                "{section}.{name} is read by the code but the schema lists no keys under it \
                 (loading `{section}: {{{name}: {{probe: 1}}}}` failed with: {error}); add its \
                 keys to crates/registry/src/config/schema.rs and docs/configuration.md"
            ),
            Ok(loaded) => assert!(
                loaded.warnings.iter().any(|w| w.starts_with(&probe)),
                "{section}.{name} takes keys the schema does not list (an unknown key under it \
                 was not reported: {:?}); add them to crates/registry/src/config/schema.rs and \
                 docs/configuration.md",
                loaded.warnings
            ),
        }
    }
}

#[test]
fn grouped_and_relative_names_in_a_cell_are_expanded() {
    let markdown = "\
| key | type |
|---|---|
| `storage.s3`, `azure` | |
| `proxy.upstreams[N].remoteurl`, `.username` | see `proxy.password` |
| `version` | |

| other | type |
|---|---|
| `not.a.key` | |
";
    let keys: Vec<String> = documented_keys(markdown).into_iter().collect();
    assert_eq!(
        keys,
        [
            "proxy.upstreams[N].remoteurl",
            "proxy.upstreams[N].username",
            "storage.azure",
            "storage.s3",
            "version",
        ]
    );
}

#[test]
fn the_accepted_not_implemented_table_lists_exactly_the_keys_loading_warns_about() {
    let start = DOCS
        .find("### Accepted, not implemented yet")
        .unwrap_or_else(|| panic!("the section is missing from docs/configuration.md"));
    let section = &DOCS[start..];
    let end = section[4..]
        .find("\n#")
        .map_or(section.len(), |end| end + 4);
    let documented = documented_keys(&section[..end]);
    let code: BTreeSet<String> = unimplemented_key_paths().into_iter().collect();
    let unmarked: Vec<&String> = code.difference(&documented).collect();
    let implemented: Vec<&String> = documented.difference(&code).collect();
    assert!(
        unmarked.is_empty() && implemented.is_empty(),
        "docs/configuration.md's \"Accepted, not implemented yet\" table and the schema's \
         unsupported and ignored keys disagree.\nWarned about but not in the table: \
         {unmarked:#?}\nIn the table but acted on: {implemented:#?}"
    );
}
