//! `REGISTRY_*` environment overrides, following registry:2's rule.
//!
//! A variable named `REGISTRY_` followed by a key path joined with `_` sets that key:
//! `REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/srv/registry`. Each part is matched without regard
//! to case against the keys the schema knows, so `rootdirectory` is one part (registry:2 keys
//! never contain `_`). Inside a free-form map (`http.headers`, `log.fields`) a part names the map
//! key; an existing key is matched without regard to case, a new one is written in lower case as
//! registry:2 does. Inside a list a part is an index: `REGISTRY_HTTP_TLS_CLIENTCAS_0`; the next
//! free index appends. Missing maps on the way are created.
//!
//! The value is YAML for maps and lists (`[a, b]`, `{enabled: true}`), and literal text for
//! scalar keys, read as the key's type (`true` for a boolean, `5000` for a number); quotes around
//! a scalar are removed. An empty value resets the key to its default.
//!
//! Variables are applied in lexical order of their names, so `REGISTRY_STORAGE=inmemory` comes
//! before `REGISTRY_STORAGE_INMEMORY_...`. Setting `REGISTRY_STORAGE` (or `REGISTRY_AUTH`) to a
//! driver (or provider) name selects it: the other drivers are dropped and the rest of the
//! section (`delete`, `maintenance`, `cache`, `redirect`, `tag`; `access` under `auth`) is kept.

use super::EnvOverride;
use super::error::ConfigError;
use super::schema::{self, Kind};
use super::tree::{self, Node, Origin, Value};

/// The variable registryd's binary reads the config file's path from; not an override.
pub(crate) const CONFIGURATION_PATH_VAR: &str = "REGISTRY_CONFIGURATION_PATH";

const PREFIX: &str = "REGISTRY_";

/// One step into the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

fn display(steps: &[Step]) -> String {
    let mut path = String::new();
    for step in steps {
        match step {
            Step::Key(key) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Step::Index(index) => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// Applies every `REGISTRY_*` variable in `vars` to `root`, and returns the keys they set (a
/// variable that matches no key is a warning instead).
pub(crate) fn apply(
    root: &mut Node,
    schema: &'static Kind,
    vars: impl IntoIterator<Item = (String, String)>,
    warnings: &mut Vec<String>,
) -> Result<Vec<EnvOverride>, ConfigError> {
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with(PREFIX) && name != CONFIGURATION_PATH_VAR)
        .collect();
    vars.sort();
    let mut applied = Vec::new();
    for (name, value) in vars {
        if let Some(key) = apply_one(root, schema, &name, &value, warnings)? {
            applied.push(EnvOverride {
                variable: name,
                key,
            });
        }
    }
    Ok(applied)
}

fn apply_one(
    root: &mut Node,
    schema: &'static Kind,
    name: &str,
    value: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, ConfigError> {
    let parts: Vec<&str> = name[PREFIX.len()..].split('_').collect();
    // Every part is a level of the tree (and of the recursions over it), and inside a free-form
    // section any part names a new map: without this bound, a name of 20,000 parts would nest
    // the tree 20,000 deep and overflow the stack. No key is deeper than a file may nest.
    if parts.len() > tree::MAX_DEPTH {
        let shown: String = name.chars().take(60).collect();
        warnings.push(format!(
            "environment variable {shown}... has more than {} parts, deeper than any \
             configuration key; it is ignored",
            tree::MAX_DEPTH
        ));
        return Ok(None);
    }
    let resolved = if parts.iter().any(|part| part.is_empty()) {
        None
    } else {
        resolve(schema, Some(root), &parts)
    };
    let Some((steps, kind)) = resolved else {
        warnings.push(format!(
            "environment variable {name} matches no configuration key; it is ignored"
        ));
        return Ok(None);
    };
    let origin = Origin::Env(name.to_owned());
    let path = display(&steps);
    let env_error = |message: String| ConfigError::Env {
        variable: name.to_owned(),
        message,
    };

    let node = if kind.is_scalar() {
        tree::env_scalar(value, origin.clone())
    } else {
        match tree::parse(value, Some(&origin)) {
            Ok(parsed) => parsed.root,
            Err(error) => {
                return Err(env_error(format!(
                    "the value for config key {path} is not valid YAML (column {}: {}); write a list as [a, b] and a map as {{key: value}}",
                    error.column, error.message
                )));
            }
        }
    };

    let variants: Vec<&str> = kind.variants().collect();
    if !variants.is_empty()
        && let Some(text) = node.as_text()
    {
        let Some(chosen) = variants.iter().find(|v| v.eq_ignore_ascii_case(text)) else {
            let accepted: Vec<&str> = variants
                .iter()
                .copied()
                .filter(|variant| schema::accepted(&path, variant))
                .collect();
            return Err(env_error(format!(
                "expected one of {}, got {text:?}",
                accepted.join(", ")
            )));
        };
        let target = walk(root, &steps, &origin).map_err(env_error)?;
        if !matches!(target.value, Value::Map(_)) {
            *target = Node::map(origin.clone());
        }
        for other in variants.iter().filter(|v| *v != chosen) {
            target.remove(other);
        }
        if target.get(chosen).is_none() {
            target.insert(chosen, Node::map(origin));
        }
        return Ok(Some(path));
    }

    *walk(root, &steps, &origin).map_err(env_error)? = node;
    Ok(Some(path))
}

/// Resolves `parts` (the variable's name split at `_`) against `kind`, looking at the current
/// tree `node` for existing map keys and list lengths.
fn resolve(
    kind: &'static Kind,
    node: Option<&Node>,
    parts: &[&str],
) -> Option<(Vec<Step>, &'static Kind)> {
    if parts.is_empty() {
        return Some((Vec::new(), kind));
    }
    match kind {
        Kind::Struct(fields) | Kind::ClosedStruct(fields) => (1..=parts.len()).find_map(|n| {
            let joined = parts[..n].join("_");
            let field = fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(&joined))?;
            let child = node.and_then(|node| node.get(field.name));
            let (steps, kind) = resolve(field.kind, child, &parts[n..])?;
            Some((prepend(Step::Key(field.name.to_owned()), steps), kind))
        }),
        Kind::List(item) => index_step(item, node, parts),
        Kind::Map(value_kind) => map_step(value_kind, node, parts),
        Kind::Any => match node.map(|node| &node.value) {
            Some(Value::Seq(_)) => index_step(&Kind::Any, node, parts),
            _ => map_step(&Kind::Any, node, parts),
        },
        _ => None,
    }
}

fn prepend(step: Step, mut steps: Vec<Step>) -> Vec<Step> {
    steps.insert(0, step);
    steps
}

fn index_step(
    item: &'static Kind,
    node: Option<&Node>,
    parts: &[&str],
) -> Option<(Vec<Step>, &'static Kind)> {
    let index: usize = parts[0].parse().ok()?;
    let child = match node.map(|node| &node.value) {
        Some(Value::Seq(items)) => items.get(index),
        _ => None,
    };
    let (steps, kind) = resolve(item, child, &parts[1..])?;
    Some((prepend(Step::Index(index), steps), kind))
}

fn map_step(
    value_kind: &'static Kind,
    node: Option<&Node>,
    parts: &[&str],
) -> Option<(Vec<Step>, &'static Kind)> {
    if let Some(Value::Map(entries)) = node.map(|node| &node.value) {
        for n in (1..=parts.len()).rev() {
            let joined = parts[..n].join("_");
            if let Some((key, child)) = entries
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&joined))
                && let Some((steps, kind)) = resolve(value_kind, Some(child), &parts[n..])
            {
                return Some((prepend(Step::Key(key.clone()), steps), kind));
            }
        }
    }
    if matches!(
        value_kind,
        Kind::Struct(_) | Kind::ClosedStruct(_) | Kind::Map(_) | Kind::Any
    ) {
        let (steps, kind) = resolve(value_kind, None, &parts[1..])?;
        Some((prepend(Step::Key(parts[0].to_lowercase()), steps), kind))
    } else {
        // A map of plain values (such as header name -> values): the rest is all one key.
        Some((vec![Step::Key(parts.join("_").to_lowercase())], value_kind))
    }
}

/// Walks `steps` from `node`, creating missing maps, list slots and values, and returns the
/// node at the end.
fn walk<'n>(node: &'n mut Node, steps: &[Step], origin: &Origin) -> Result<&'n mut Node, String> {
    let Some((step, rest)) = steps.split_first() else {
        return Ok(node);
    };
    match step {
        Step::Key(key) => {
            if !matches!(node.value, Value::Map(_)) {
                *node = Node::map(origin.clone());
            }
            if node.get(key).is_none() {
                node.insert(key, Node::new(Value::Null, origin.clone()));
            }
            match node.get_mut(key) {
                Some(child) => walk(child, rest, origin),
                None => Err(format!("cannot set config key {key}")),
            }
        }
        Step::Index(index) => {
            if !matches!(node.value, Value::Seq(_)) {
                *node = Node::new(Value::Seq(Vec::new()), origin.clone());
            }
            let Value::Seq(items) = &mut node.value else {
                return Err("cannot set a list item".to_owned());
            };
            if *index == items.len() {
                items.push(Node::new(Value::Null, origin.clone()));
            }
            let len = items.len();
            match items.get_mut(*index) {
                Some(child) => walk(child, rest, origin),
                None => Err(format!(
                    "index {index} is past the end of the list, which has {len} items; use an index from 0 to {len}"
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::ROOT;
    use super::*;

    fn steps(name: &str) -> Option<String> {
        let parts: Vec<&str> = name.split('_').collect();
        resolve(&ROOT, None, &parts).map(|(steps, _)| display(&steps))
    }

    #[test]
    fn names_resolve_against_the_schema() {
        assert_eq!(
            steps("STORAGE_FILESYSTEM_ROOTDIRECTORY").as_deref(),
            Some("storage.filesystem.rootdirectory")
        );
        assert_eq!(
            steps("storage_Delete_ENABLED").as_deref(),
            Some("storage.delete.enabled")
        );
        assert_eq!(
            steps("HTTP_TLS_CLIENTCAS_0").as_deref(),
            Some("http.tls.clientcas[0]")
        );
        assert_eq!(
            steps("HTTP_HEADERS_X-CONTENT-TYPE-OPTIONS").as_deref(),
            Some("http.headers.x-content-type-options")
        );
        assert_eq!(
            steps("LOG_FIELDS_SERVICE").as_deref(),
            Some("log.fields.service")
        );
        assert_eq!(steps("STORAGE").as_deref(), Some("storage"));
        assert_eq!(steps("STORAGE_FILESYSTEM_ROOTDIRECTORY_X"), None);
        assert_eq!(steps("DUCKS"), None);
        assert_eq!(steps("HTTP_TLS_CLIENTCAS_FIRST"), None);
    }
}
