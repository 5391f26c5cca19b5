//! Repository names, tags and manifest references, validated against the distribution spec's
//! grammars.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestError};

/// The longest repository name registryd accepts, in bytes.
pub const MAX_REPOSITORY_NAME_LEN: usize = 255;

/// The longest tag the grammar allows, in bytes.
pub const MAX_TAG_LEN: usize = 128;

/// A repository name (the `<name>` of `/v2/<name>/...`).
///
/// The distribution spec: "`<name>` MUST match the following regular expression:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`". registryd also
/// limits names to 255 bytes: "Many clients impose a limit of 255 characters" on the registry
/// host plus the name, and "registries should avoid values of `<name>` that would cause this
/// limit to be exceeded". So every `/`-separated component
/// is non-empty, starts and ends with `[a-z0-9]`, and joins alphanumeric runs with exactly one
/// `.`, one `_`, two `_` or any number of `-` ("a--b" is valid, "a___b" and "a..b" are not).
/// No component is `.` or `..`, so a name is always safe to use as a relative storage path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepositoryName(String);

impl RepositoryName {
    /// The name as a string, e.g. `library/alpine`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated components, in order; each is non-empty.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    fn parse_owned(name: String) -> Result<RepositoryName, NameError> {
        match check_repository_name(&name) {
            Ok(()) => Ok(RepositoryName(name)),
            Err(reason) => Err(NameError { name, reason }),
        }
    }
}

fn check_repository_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a repository name must not be empty");
    }
    if name.len() > MAX_REPOSITORY_NAME_LEN {
        return Err("a repository name must be at most 255 bytes");
    }
    name.split('/').try_for_each(check_component)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn check_component(component: &str) -> Result<(), &'static str> {
    let bytes = component.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return Err("a repository name must not start or end with '/' or contain '//'");
    };
    let is_alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if let Some(bad) = bytes
        .iter()
        .find(|b| !is_alnum(b) && !matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(if bad.is_ascii_uppercase() {
            "a repository name must be lowercase"
        } else {
            "a repository name may contain only [a-z0-9], '.', '_', '-' and '/'"
        });
    }
    if !is_alnum(first) || !is_alnum(last) {
        return Err("each path component must start and end with [a-z0-9]");
    }
    // Every maximal run of separator bytes must be ".", "_", "__" or "-"+.
    for run in bytes.split(is_alnum).filter(|run| !run.is_empty()) {
        let valid = matches!(run, b"." | b"_" | b"__") || run.iter().all(|b| *b == b'-');
        if !valid {
            return Err("components must be joined by '.', '_', '__' or a run of '-'");
        }
    }
    Ok(())
}

impl FromStr for RepositoryName {
    type Err = NameError;

    /// Parses and validates a repository name (see [`RepositoryName`] for the grammar).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RepositoryName::parse_owned(s.to_owned())
    }
}

impl TryFrom<String> for RepositoryName {
    type Error = NameError;

    /// Same rules as [`FromStr`], reusing the string's allocation.
    fn try_from(value: String) -> Result<Self, Self::Error> {
        RepositoryName::parse_owned(value)
    }
}

impl From<RepositoryName> for String {
    fn from(name: RepositoryName) -> String {
        name.0
    }
}

impl AsRef<str> for RepositoryName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag, e.g. `latest` or `1.2.3`.
///
/// The distribution spec: "`<tag-or-digest>` as a tag MUST be at most 128 characters in length
/// and MUST match the following regular expression: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`". A tag
/// never contains `/` and never starts with `.` or `-`, so it is safe as a storage path component.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse_owned(tag: String) -> Result<Tag, TagError> {
        let bytes = tag.as_bytes();
        let valid = match bytes.split_first() {
            Some((first, rest)) => {
                (first.is_ascii_alphanumeric() || *first == b'_')
                    && rest.len() < MAX_TAG_LEN
                    && rest
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            }
            None => false,
        };
        if valid {
            Ok(Tag(tag))
        } else {
            Err(TagError { tag })
        }
    }
}

impl FromStr for Tag {
    type Err = TagError;

    /// Parses and validates a tag against `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tag::parse_owned(s.to_owned())
    }
}

impl TryFrom<String> for Tag {
    type Error = TagError;

    /// Same rules as [`FromStr`], reusing the string's allocation.
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Tag::parse_owned(value)
    }
}

impl From<Tag> for String {
    fn from(tag: Tag) -> String {
        tag.0
    }
}

impl AsRef<str> for Tag {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `<reference>` of `/v2/<name>/manifests/<reference>`: a tag or a digest.
///
/// The distribution spec: "`<tag-or-digest>` MUST be either (a) the digest of the manifest or (b)
/// a tag. The `<tag-or-digest>` MUST NOT be in any other format." A tag cannot contain `:` and a
/// digest always does, so parsing is unambiguous: a string containing `:` must be a valid digest,
/// anything else must be a valid tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A tag, e.g. `latest`.
    Tag(Tag),
    /// A digest, e.g. `sha256:...`.
    Digest(Digest),
}

impl Reference {
    /// The reference as it appears in a URL: the tag or the full digest string.
    pub fn as_str(&self) -> &str {
        match self {
            Reference::Tag(tag) => tag.as_str(),
            Reference::Digest(digest) => digest.as_str(),
        }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    /// A string containing `:` is parsed as a [`Digest`], anything else as a [`Tag`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            Ok(Reference::Tag(s.parse()?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Tag> for Reference {
    fn from(tag: Tag) -> Reference {
        Reference::Tag(tag)
    }
}

impl From<Digest> for Reference {
    fn from(digest: Digest) -> Reference {
        Reference::Digest(digest)
    }
}

/// A string that is not a valid repository name.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("invalid repository name {name:?}: {reason}")]
pub struct NameError {
    /// The string that was refused.
    pub name: String,
    /// Which rule it breaks, in one phrase.
    pub reason: &'static str,
}

/// A string that is not a valid tag.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("invalid tag {tag:?}: a tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
pub struct TagError {
    /// The string that was refused.
    pub tag: String,
}

/// A string that is neither a valid tag nor a valid digest.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ReferenceError {
    /// It has no `:`, so it was read as a tag, and it is not a valid one.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// It has a `:`, so it was read as a digest, and it is not a valid one.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The distribution spec's name grammar, with bounded repetition so names stay under 255 bytes.
    const NAME_GRAMMAR: &str = "[a-z0-9]{1,4}((\\.|_|__|-{1,3})[a-z0-9]{1,4}){0,3}\
                                (/[a-z0-9]{1,4}((\\.|_|__|-{1,3})[a-z0-9]{1,4}){0,3}){0,4}";
    const TAG_GRAMMAR: &str = "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}";

    fn name_ok(s: &str) -> bool {
        s.parse::<RepositoryName>().is_ok()
    }

    #[test]
    fn common_names_are_valid() {
        for name in [
            "alpine",
            "library/alpine",
            "my-org/my.app/sub_component",
            "a--b",
            "a---b",
            "a__b",
            "a.b",
            "0",
            "team/0/x",
        ] {
            assert!(name_ok(name), "{name} should be valid");
        }
    }

    #[test]
    fn separator_rules_follow_the_grammar() {
        for name in [
            "a___b", "a..b", "a._b", "a_.b", "a-.b", "a.-b", "a-_b", "a_-b",
        ] {
            assert!(!name_ok(name), "{name} should be invalid");
        }
    }

    #[test]
    fn path_traversal_and_empty_components_are_invalid() {
        for name in [
            "", ".", "..", "../a", "a/..", "a/../b", "a/./b", "/a", "a/", "a//b", "/", "a\\b",
            "a b", "a\0b", "a:b", "a%2fb",
        ] {
            assert!(!name_ok(name), "{name:?} should be invalid");
        }
    }

    #[test]
    fn uppercase_is_invalid_with_a_reason_that_says_so() {
        let error = "Library/alpine".parse::<RepositoryName>().unwrap_err();
        assert_eq!(error.name, "Library/alpine");
        assert!(error.reason.contains("lowercase"));
        assert!(
            error
                .to_string()
                .starts_with("invalid repository name \"Library/alpine\"")
        );
    }

    #[test]
    fn names_are_limited_to_255_bytes() {
        let longest = format!("a/{}", "b".repeat(253));
        assert_eq!(longest.len(), 255);
        assert!(name_ok(&longest));
        let too_long = format!("{longest}c");
        let error = too_long.parse::<RepositoryName>().unwrap_err();
        assert!(error.reason.contains("255"));
    }

    #[test]
    fn components_split_on_slashes() {
        let name: RepositoryName = "org/team/app".parse().unwrap();
        assert_eq!(
            name.components().collect::<Vec<_>>(),
            ["org", "team", "app"]
        );
        assert_eq!(name.as_str(), "org/team/app");
        assert_eq!(name.as_ref(), "org/team/app");
        assert_eq!(name.to_string(), "org/team/app");
    }

    #[test]
    fn names_and_tags_deserialize_only_when_valid() {
        let name: RepositoryName = serde_json::from_str("\"library/alpine\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"library/alpine\"");
        assert!(serde_json::from_str::<RepositoryName>("\"../etc\"").is_err());
        let tag: Tag = serde_json::from_str("\"v1.0\"").unwrap();
        assert_eq!(serde_json::to_string(&tag).unwrap(), "\"v1.0\"");
        assert!(serde_json::from_str::<Tag>("\"-v1\"").is_err());
    }

    #[test]
    fn tag_rules_follow_the_grammar() {
        for tag in [
            "latest",
            "v1.2.3",
            "_hidden",
            "A-b_c.D",
            "1",
            &"x".repeat(128),
        ] {
            assert!(tag.parse::<Tag>().is_ok(), "{tag} should be valid");
        }
        for tag in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a:b",
            "a b",
            "ü",
            &"x".repeat(129),
            "..",
        ] {
            assert!(tag.parse::<Tag>().is_err(), "{tag:?} should be invalid");
        }
    }

    #[test]
    fn tag_error_names_the_grammar() {
        let error = "bad/tag".parse::<Tag>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid tag \"bad/tag\": a tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
        );
    }

    #[test]
    fn reference_with_a_colon_is_a_digest() {
        let digest = Digest::sha256(b"");
        let reference: Reference = digest.as_str().parse().unwrap();
        assert_eq!(reference, Reference::Digest(digest.clone()));
        assert_eq!(reference.to_string(), digest.as_str());
        assert!(matches!(
            "sha256:abc".parse::<Reference>(),
            Err(ReferenceError::Digest(DigestError::Invalid { .. }))
        ));
        assert!(matches!(
            "latest:1".parse::<Reference>(),
            Err(ReferenceError::Digest(_))
        ));
    }

    #[test]
    fn reference_without_a_colon_is_a_tag() {
        let reference: Reference = "latest".parse().unwrap();
        assert_eq!(reference, Reference::Tag("latest".parse().unwrap()));
        assert_eq!(reference.as_str(), "latest");
        assert!(matches!(
            "../x".parse::<Reference>(),
            Err(ReferenceError::Tag(_))
        ));
        assert_eq!(
            Reference::from(Digest::sha256(b"")),
            Reference::Digest(Digest::sha256(b""))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn names_generated_from_the_grammar_are_accepted(name in NAME_GRAMMAR) {
            let parsed: RepositoryName = name.parse().unwrap();
            prop_assert_eq!(parsed.as_str(), name.as_str());
            prop_assert_eq!(parsed.components().collect::<Vec<_>>().join("/"), name);
        }

        #[test]
        fn names_with_an_uppercase_letter_are_rejected(
            name in NAME_GRAMMAR,
            at in any::<prop::sample::Index>(),
            letter in "[A-Z]",
        ) {
            let mut name = name;
            name.insert_str(at.index(name.len() + 1), &letter);
            prop_assert!(!name_ok(&name));
        }

        #[test]
        fn names_with_double_dots_or_double_slashes_are_rejected(
            name in NAME_GRAMMAR,
            at in any::<prop::sample::Index>(),
            bad in prop_oneof![Just(".."), Just("//"), Just("___"), Just("/."), Just("-/")],
        ) {
            let mut name = name;
            name.insert_str(at.index(name.len() + 1), bad);
            prop_assert!(!name_ok(&name), "{} should be invalid", name);
        }

        #[test]
        fn names_with_leading_or_trailing_separators_are_rejected(
            name in NAME_GRAMMAR,
            separator in "[/._-]",
            leading in any::<bool>(),
        ) {
            let name = if leading {
                format!("{separator}{name}")
            } else {
                format!("{name}{separator}")
            };
            prop_assert!(!name_ok(&name));
        }

        #[test]
        fn names_of_256_bytes_are_rejected(name in NAME_GRAMMAR) {
            let padded = format!("{name}/{}", "a".repeat(255 - name.len()));
            prop_assert_eq!(padded.len(), 256);
            prop_assert!(!name_ok(&padded));
            prop_assert!(name_ok(&padded[..255]));
        }

        #[test]
        fn arbitrary_names_never_panic_and_accepted_ones_have_safe_components(
            name in "\\PC{0,40}|[a-z0-9./_-]{0,40}",
        ) {
            if let Ok(parsed) = name.parse::<RepositoryName>() {
                for component in parsed.components() {
                    prop_assert!(!component.is_empty() && component != "." && component != "..");
                }
            }
        }

        #[test]
        fn tags_generated_from_the_grammar_are_accepted(tag in TAG_GRAMMAR) {
            let parsed: Tag = tag.parse().unwrap();
            prop_assert_eq!(parsed.as_str(), tag.as_str());
            let reference: Reference = tag.parse().unwrap();
            prop_assert_eq!(reference.to_string(), tag);
        }

        #[test]
        fn tags_with_a_bad_first_byte_or_character_or_length_are_rejected(
            tag in TAG_GRAMMAR,
            first in "[.-]",
            bad in "[^a-zA-Z0-9._-]",
            at in any::<prop::sample::Index>(),
        ) {
            let leading = format!("{first}{tag}");
            prop_assert!(leading.parse::<Tag>().is_err());
            let mut with_bad = tag.clone();
            with_bad.insert_str(at.index(tag.len() + 1), &bad);
            prop_assert!(with_bad.parse::<Tag>().is_err());
            let long = format!("{tag}{}", "x".repeat(129 - tag.len()));
            prop_assert!(long.parse::<Tag>().is_err());
        }

        #[test]
        fn digest_references_round_trip(hex in "[a-f0-9]{64}") {
            let s = format!("sha256:{hex}");
            let reference: Reference = s.parse().unwrap();
            prop_assert!(matches!(reference, Reference::Digest(_)));
            prop_assert_eq!(reference.to_string(), s);
        }
    }
}
