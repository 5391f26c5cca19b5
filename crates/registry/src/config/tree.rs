//! The configuration as an untyped tree, between the YAML text and the typed `Config`.
//!
//! Environment overrides are applied to this tree (registry:2 applies them to its parsed structs,
//! which has the same effect). Every node remembers where it came from, so an error can say
//! "line 12" or "set by REGISTRY_HTTP_ADDR", and every scalar keeps its source text, so a string
//! key reads `0123` as `"0123"` rather than as the number 123.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, MessageFormatter, Spanned};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The config file (or string), at this 1-based line and column.
    File { line: u64, column: u64 },
    /// An environment variable.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { line, .. } => write!(f, "line {line}"),
            Origin::Env(variable) => write!(f, "set by {variable}"),
        }
    }
}

/// What YAML made of a scalar when no target type was known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Typed {
    Str,
    Bool(bool),
    UInt(u64),
    Int(i64),
    Float(f64),
}

/// One value of the tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) origin: Origin,
}

/// The shape of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    /// `text` is the scalar as written (without quotes for a quoted scalar); `typed` is what it
    /// resolves to when the target accepts anything.
    Scalar {
        text: String,
        typed: Typed,
    },
    Seq(Vec<Node>),
    /// Entries in document order; keys are unique.
    Map(Vec<(String, Node)>),
}

impl Node {
    pub(crate) fn new(value: Value, origin: Origin) -> Self {
        Node { value, origin }
    }

    /// A string scalar.
    pub(crate) fn string(text: impl Into<String>, origin: Origin) -> Self {
        Node::new(
            Value::Scalar {
                text: text.into(),
                typed: Typed::Str,
            },
            origin,
        )
    }

    /// An empty map.
    pub(crate) fn map(origin: Origin) -> Self {
        Node::new(Value::Map(Vec::new()), origin)
    }

    /// The value under `key`, if this is a map that has it.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value under `key`, mutably.
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.value {
            Value::Map(entries) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Removes `key` from this map and returns its value.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Node> {
        match &mut self.value {
            Value::Map(entries) => {
                let index = entries.iter().position(|(k, _)| k == key)?;
                Some(entries.remove(index).1)
            }
            _ => None,
        }
    }

    /// Sets `key` in this map (replacing an existing value in place), turning a non-map into an
    /// empty map first.
    pub(crate) fn insert(&mut self, key: &str, value: Node) {
        if !matches!(self.value, Value::Map(_)) {
            self.value = Value::Map(Vec::new());
        }
        if let Value::Map(entries) = &mut self.value {
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some((_, existing)) => *existing = value,
                None => entries.push((key.to_owned(), value)),
            }
        }
    }

    /// The scalar's text, if this is a scalar.
    pub(crate) fn as_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this is null (an empty value, `~` or `null`).
    pub(crate) fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }
}

/// A YAML syntax error, with its 1-based position when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) line: u64,
    pub(crate) column: u64,
    pub(crate) message: String,
}

/// A parsed document and what the parser noticed along the way.
pub(crate) struct Parsed {
    pub(crate) root: Node,
    /// One-sentence notes, such as a key written twice.
    pub(crate) warnings: Vec<String>,
}

/// How deep maps and lists may nest, in a file or through an environment override. registry:2's
/// deepest keys are five levels down. The bound is what keeps every recursion over the document
/// off the end of the stack: serde-saphyr's, whose frames in a debug build cost about 35 KiB a
/// level, overflows a 2 MiB thread (a test's, a tokio worker's) at about 60 levels.
pub(crate) const MAX_DEPTH: usize = 32;

/// How many values (maps, lists and scalars) a document may hold once its aliases are expanded.
/// registry:2's reference configuration has about 400. A "billion laughs" document (ten aliases
/// of ten aliases of ... one value) is refused when it reaches this many, after building at most
/// a few megabytes, rather than when it has filled the memory.
const MAX_VALUES: usize = 50_000;

/// How many bytes of scalar text a document may hold once its aliases are expanded: one long
/// value repeated through aliases is refused here.
const MAX_SCALAR_BYTES: usize = 4 * 1024 * 1024;

/// Parses a YAML document into a tree whose nodes carry the given origin (`None`: their
/// position in `yaml`). An empty document is null.
///
/// What the tree may cost is bounded whatever the input: serde-saphyr's budget counts the values
/// and scalar bytes of every alias it replays, and refuses the document past [`MAX_VALUES`],
/// [`MAX_SCALAR_BYTES`] or [`MAX_DEPTH`].
pub(crate) fn parse(yaml: &str, origin: Option<&Origin>) -> Result<Parsed, SyntaxError> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_VALUES;
    budget.max_total_scalar_bytes = MAX_SCALAR_BYTES;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_VALUES;
    // registry:2 (Go's yaml.v2) lets a repeated key override the earlier one; the reference
    // configuration in its own docs repeats keys. Take the last and warn.
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    let raw: Spanned<Raw> =
        serde_saphyr::from_str_with_options(yaml, options).map_err(|error| {
            let location = error.location();
            let message = limit_message(&error).map_or_else(
                || serde_saphyr::DefaultMessageFormatter.format_message(error.without_snippet()),
                Cow::Owned,
            );
            SyntaxError {
                line: location.map(|l| l.line()).unwrap_or(0),
                column: location.map(|l| l.column()).unwrap_or(0),
                message: message
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect(),
            }
        })?;
    let mut warnings = Vec::new();
    let root = Builder {
        source: yaml,
        origin,
        warnings: &mut warnings,
    }
    .node(raw, None, "");
    Ok(Parsed { root, warnings })
}

/// The sentence for a document refused by one of the limits above, which the library words in
/// its own terms ("budget breached: Nodes { nodes: 50001 }").
fn limit_message(mut error: &serde_saphyr::Error) -> Option<String> {
    use serde_saphyr::Error;
    use serde_saphyr::budget::BudgetBreach;
    // An error met while replaying an alias comes wrapped with where the alias was used.
    while let Error::AliasError { error: inner, .. } | Error::WithSnippet { error: inner, .. } =
        error
    {
        error = inner;
    }
    let what = match error {
        Error::Budget {
            breach: BudgetBreach::Nodes { .. },
            ..
        }
        | Error::AliasReplayLimitExceeded { .. } => {
            format!("it holds more than {MAX_VALUES} values once its aliases are expanded")
        }
        Error::Budget {
            breach: BudgetBreach::ScalarBytes { .. },
            ..
        } => format!(
            "it holds more than {} MiB of text once its aliases are expanded",
            MAX_SCALAR_BYTES / (1024 * 1024)
        ),
        Error::Budget {
            breach: BudgetBreach::Depth { .. },
            ..
        } => format!("its maps and lists nest more than {MAX_DEPTH} deep"),
        _ => return None,
    };
    Some(format!(
        "the document is refused because {what}, far beyond what a configuration needs"
    ))
}

struct Builder<'a> {
    source: &'a str,
    origin: Option<&'a Origin>,
    warnings: &'a mut Vec<String>,
}

impl Builder<'_> {
    /// The source text of a scalar where it was defined (an alias points back at its anchor).
    fn source_text(&self, defined: &serde_saphyr::Location) -> Option<String> {
        let span = defined.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        let text = self.source.get(start..start.checked_add(len)?)?;
        Some(text.trim().to_owned())
    }

    fn origin(&self, location: &serde_saphyr::Location) -> Origin {
        match self.origin {
            Some(origin) => origin.clone(),
            None => Origin::File {
                line: location.line(),
                column: location.column(),
            },
        }
    }

    /// Builds the node for `spanned`; `key` is the position of the map key it is the value of.
    fn node(
        &mut self,
        spanned: Spanned<Raw>,
        key: Option<&serde_saphyr::Location>,
        path: &str,
    ) -> Node {
        let Spanned {
            value,
            referenced,
            defined,
        } = spanned;
        let origin = self.origin(key.unwrap_or(&referenced));
        let scalar = |typed: Typed, fallback: String| Value::Scalar {
            text: self.source_text(&defined).unwrap_or(fallback),
            typed,
        };
        let value = match value {
            Raw::Null => Value::Null,
            Raw::Str(text) => Value::Scalar {
                text,
                typed: Typed::Str,
            },
            Raw::Bool(b) => scalar(Typed::Bool(b), b.to_string()),
            Raw::UInt(n) => scalar(Typed::UInt(n), n.to_string()),
            Raw::Int(n) => scalar(Typed::Int(n), n.to_string()),
            Raw::Float(n) => scalar(Typed::Float(n), n.to_string()),
            Raw::Seq(items) => Value::Seq(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| self.node(item, None, &format!("{path}[{i}]")))
                    .collect(),
            ),
            Raw::Map(entries) => {
                let mut out: Vec<(String, Node)> = Vec::with_capacity(entries.len());
                for (
                    Spanned {
                        value: key,
                        referenced: key_location,
                        ..
                    },
                    item,
                ) in entries
                {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    let child = self.node(item, Some(&key_location), &child_path);
                    if let Some(index) = out.iter().position(|(k, _)| *k == key) {
                        let (_, earlier) = out.remove(index);
                        self.warnings.push(format!(
                            "config key {child_path} is set twice ({} and {}); the later value is used",
                            earlier.origin, child.origin
                        ));
                    }
                    out.push((key, child));
                }
                Value::Map(out)
            }
        };
        Node::new(value, origin)
    }
}

/// A YAML node as serde-saphyr hands it over, before the source text is attached.
enum Raw {
    Null,
    Bool(bool),
    UInt(u64),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    /// Keys carry their position: a value's origin is where its key is written.
    Map(Vec<(Spanned<String>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::UInt(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        match u64::try_from(v) {
            Ok(v) => Ok(Raw::UInt(v)),
            Err(_) => Ok(Raw::Int(v)),
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        // Too big for any setting; keep it so the typed step reports it with its key.
        Ok(Raw::Float(v as f64))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Float(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<Spanned<String>, Spanned<Raw>>()? {
            entries.push(entry);
        }
        Ok(Raw::Map(entries))
    }
}

/// Builds the node for an environment value aimed at a scalar key: the text as it is, except that
/// a YAML-quoted value (`'x'`, `"x"`) is unquoted. It then resolves like a plain YAML scalar
/// (`true` is a boolean, `5` a number) for keys that want one. registry:2 runs the value through
/// a YAML parser, which turns `#abc` into an empty string and rejects `a: b`; registryd keeps
/// such values literally.
pub(crate) fn env_scalar(text: &str, origin: Origin) -> Node {
    let trimmed = text.trim();
    let quoted = trimmed.len() >= 2
        && ((trimmed.starts_with('"') && trimmed.ends_with('"'))
            || (trimmed.starts_with('\'') && trimmed.ends_with('\'')));
    if quoted
        && let Ok(parsed) = parse(trimmed, Some(&origin))
        && let Value::Scalar {
            text,
            typed: Typed::Str,
        } = parsed.root.value
    {
        return Node::string(text, origin);
    }
    if trimmed.is_empty() {
        return Node::new(Value::Null, origin);
    }
    let typed = match parse(trimmed, Some(&origin)) {
        Ok(Parsed {
            root:
                Node {
                    value: Value::Scalar { typed, .. },
                    ..
                },
            ..
        }) => typed,
        _ => Typed::Str,
    };
    Node::new(
        Value::Scalar {
            text: text.to_owned(),
            typed,
        },
        origin,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(yaml: &str) -> Parsed {
        match parse(yaml, None) {
            Ok(parsed) => parsed,
            Err(error) => panic!("{yaml:?} should parse: {error:?}"),
        }
    }

    fn scalar(node: Option<&Node>) -> Option<(&str, Typed)> {
        match &node?.value {
            Value::Scalar { text, typed } => Some((text, *typed)),
            _ => None,
        }
    }

    #[test]
    fn plain_scalars_keep_their_source_text() {
        let root = parse_ok(
            "a: 0.10\nb: 0123\nc: yes\nd: \"quoted: x\"\ne: 123456789012345678901234567890\n",
        )
        .root;
        assert_eq!(scalar(root.get("a")), Some(("0.10", Typed::Float(0.1))));
        assert_eq!(scalar(root.get("b")).map(|s| s.0), Some("0123"));
        assert_eq!(scalar(root.get("c")), Some(("yes", Typed::Bool(true))));
        assert_eq!(scalar(root.get("d")), Some(("quoted: x", Typed::Str)));
        assert_eq!(
            scalar(root.get("e")).map(|s| s.0),
            Some("123456789012345678901234567890")
        );
    }

    #[test]
    fn nodes_remember_their_line() {
        let root = parse_ok("a:\n  b: 1\n").root;
        let b = root.get("a").and_then(|a| a.get("b"));
        assert_eq!(
            b.map(|b| b.origin.clone()),
            Some(Origin::File { line: 2, column: 3 })
        );
    }

    #[test]
    fn aliases_and_merge_keys_resolve() {
        let root = parse_ok("base: &b {x: 1}\ncopy: *b\nmerged:\n  <<: *b\n  y: 2\n").root;
        assert_eq!(
            scalar(root.get("copy").and_then(|c| c.get("x"))),
            Some(("1", Typed::UInt(1)))
        );
        assert_eq!(
            scalar(root.get("merged").and_then(|c| c.get("x"))),
            Some(("1", Typed::UInt(1)))
        );
    }

    #[test]
    fn a_repeated_key_keeps_the_later_value_and_warns() {
        let parsed = parse_ok("a: 1\nb: 2\na: 3\n");
        assert_eq!(scalar(parsed.root.get("a")).map(|s| s.0), Some("3"));
        assert_eq!(
            parsed.warnings,
            vec![
                "config key a is set twice (line 1 and line 3); the later value is used".to_owned()
            ]
        );
    }

    #[test]
    fn syntax_errors_carry_their_position() {
        let error = parse("a: 1\n b: [\n", None).err();
        assert_eq!(error.as_ref().map(|e| (e.line, e.column)), Some((2, 3)));
        assert!(error.is_some_and(|e| !e.message.contains('\n') && !e.message.is_empty()));
    }

    #[test]
    fn an_empty_document_is_null() {
        assert!(parse_ok("").root.is_null());
        assert!(parse_ok("# only a comment\n").root.is_null());
    }

    #[test]
    fn env_scalars_are_literal_unless_quoted() {
        let origin = Origin::Env("X".to_owned());
        assert_eq!(env_scalar("#abc", origin.clone()).as_text(), Some("#abc"));
        assert_eq!(env_scalar("a: b", origin.clone()).as_text(), Some("a: b"));
        assert_eq!(
            env_scalar("'quoted'", origin.clone()).as_text(),
            Some("quoted")
        );
        assert_eq!(
            env_scalar("\"a\\tb\"", origin.clone()).as_text(),
            Some("a\tb")
        );
        assert_eq!(env_scalar(":5001", origin.clone()).as_text(), Some(":5001"));
        assert!(matches!(
            env_scalar("true", origin.clone()).value,
            Value::Scalar {
                typed: Typed::Bool(true),
                ..
            }
        ));
        assert!(matches!(
            env_scalar("'true'", origin.clone()).value,
            Value::Scalar {
                typed: Typed::Str,
                ..
            }
        ));
        assert!(env_scalar("", origin).is_null());
    }
}
