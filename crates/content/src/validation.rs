//! What a pushed manifest must satisfy beyond its format and the presence of what it references:
//! the external URLs its descriptors may carry, and which children of an index must already be in
//! the repository (registry:2's `validation.manifests`).

use regex::Regex;
use registry_model::Descriptor;

/// How pushed manifests are validated beyond their format (registry:2's
/// `validation.manifests`). The default is registry:2's: no URLs accepted, every child of an
/// index required.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestValidation {
    /// The URLs descriptors may carry.
    pub urls: UrlPolicy,
    /// Which children of an index must be in the repository when the index is pushed.
    pub index_children: IndexChildren,
}

impl ManifestValidation {
    /// No validation beyond the format, as registry:2 does with `validation.disabled: true`: any
    /// http or https URL is accepted and an index may be pushed without its children.
    pub fn disabled() -> ManifestValidation {
        ManifestValidation {
            urls: UrlPolicy::any(),
            index_children: IndexChildren::NoneRequired,
        }
    }
}

/// Which URLs the descriptors of a pushed manifest may carry: the `urls` from which clients fetch
/// layers whose content is not pushed (non-distributable and foreign layers).
///
/// A URL must be `http` or `https` with a host and without a fragment, as registry:2 requires,
/// and then be allowed by the policy. Patterns are regular expressions in the syntax of Go's
/// `regexp` (RE2), matched anywhere in the URL unless anchored with `^` and `$`.
#[derive(Clone, Debug)]
pub struct UrlPolicy {
    allow: Allowed,
    deny: Vec<Regex>,
}

#[derive(Clone, Debug)]
enum Allowed {
    Any,
    Nothing,
    Matching(Vec<Regex>),
}

impl UrlPolicy {
    /// The policy registry:2 builds from `allow` and `deny` pattern lists. With neither, no URL
    /// is accepted. With `allow`, a URL must match one of its patterns; with `deny`, it must match
    /// none of those. With `deny` alone, every URL it does not match is accepted.
    pub fn new<S: AsRef<str>>(allow: &[S], deny: &[S]) -> Result<UrlPolicy, UrlPatternError> {
        let allow_patterns = compile("allow", allow)?;
        let deny = compile("deny", deny)?;
        let allow = if !allow_patterns.is_empty() {
            Allowed::Matching(allow_patterns)
        } else if deny.is_empty() {
            Allowed::Nothing
        } else {
            Allowed::Any
        };
        Ok(UrlPolicy { allow, deny })
    }

    /// Accepts every http or https URL.
    pub fn any() -> UrlPolicy {
        UrlPolicy {
            allow: Allowed::Any,
            deny: Vec::new(),
        }
    }

    /// Accepts no URL at all: a manifest whose descriptors carry `urls` is refused.
    pub fn nothing() -> UrlPolicy {
        UrlPolicy {
            allow: Allowed::Nothing,
            deny: Vec::new(),
        }
    }

    /// Whether a descriptor may carry `url`.
    pub fn allows(&self, url: &str) -> bool {
        let allowed = match &self.allow {
            Allowed::Any => true,
            Allowed::Nothing => false,
            Allowed::Matching(patterns) => patterns.iter().any(|pattern| pattern.is_match(url)),
        };
        allowed && is_http_url(url) && !self.deny.iter().any(|pattern| pattern.is_match(url))
    }
}

/// Registry:2's default: no URL is accepted.
impl Default for UrlPolicy {
    fn default() -> Self {
        UrlPolicy::nothing()
    }
}

/// Two policies are equal when they were made from the same patterns.
impl PartialEq for UrlPolicy {
    fn eq(&self, other: &Self) -> bool {
        let allow_equal = match (&self.allow, &other.allow) {
            (Allowed::Any, Allowed::Any) | (Allowed::Nothing, Allowed::Nothing) => true,
            (Allowed::Matching(mine), Allowed::Matching(theirs)) => same_patterns(mine, theirs),
            _ => false,
        };
        allow_equal && same_patterns(&self.deny, &other.deny)
    }
}

impl Eq for UrlPolicy {}

fn same_patterns(mine: &[Regex], theirs: &[Regex]) -> bool {
    mine.len() == theirs.len()
        && mine
            .iter()
            .zip(theirs)
            .all(|(mine, theirs)| mine.as_str() == theirs.as_str())
}

fn compile<S: AsRef<str>>(
    list: &'static str,
    patterns: &[S],
) -> Result<Vec<Regex>, UrlPatternError> {
    patterns
        .iter()
        .enumerate()
        .map(|(index, pattern)| {
            Regex::new(pattern.as_ref()).map_err(|error| UrlPatternError {
                list,
                index,
                message: one_line(&error),
            })
        })
        .collect()
}

/// `http://` or `https://` (in any case), a host, no fragment and nothing a URL cannot hold.
fn is_http_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && !rest.is_empty()
        && !rest.starts_with('/')
        && !url.contains('#')
        && !url.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// What `error` says, on one line: the regex crate draws the pattern and a caret under the fault
/// over several lines, which a log line or a configuration error cannot hold.
fn one_line(error: &regex::Error) -> String {
    let text = error.to_string();
    match text.lines().find_map(|line| line.strip_prefix("error: ")) {
        Some(cause) => cause.trim().to_owned(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// A pattern given to [`UrlPolicy::new`] that is not a valid regular expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{list}[{index}] is not a valid regular expression: {message}")]
pub struct UrlPatternError {
    /// The list it is in: `allow` or `deny`.
    pub list: &'static str,
    /// Its position in the list, from 0.
    pub index: usize,
    /// What is wrong with it.
    pub message: String,
}

/// Which children of an image index (or Docker manifest list) must already be in the repository
/// when the index is pushed (registry:2's `validation.manifests.indexes.platforms`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IndexChildren {
    /// Every child (`platforms: all`, the default).
    #[default]
    AllRequired,
    /// None: an index may be pushed before its children, or without some of them ever (a mirror
    /// of one platform of a multi-platform image); it is served as pushed (`platforms: none`).
    NoneRequired,
    /// The children whose platform has one of these OS and architecture pairs; children for
    /// other platforms, and those that name none, need not exist (`platforms: list` with its
    /// `platformlist`).
    PlatformsRequired(Vec<OsArchitecture>),
}

impl IndexChildren {
    /// Whether the child `descriptor` of a pushed index must be in the repository.
    pub fn requires(&self, descriptor: &Descriptor) -> bool {
        match self {
            IndexChildren::AllRequired => true,
            IndexChildren::NoneRequired => false,
            IndexChildren::PlatformsRequired(platforms) => {
                descriptor.platform.as_ref().is_some_and(|platform| {
                    platforms.iter().any(|wanted| {
                        wanted.os == platform.os && wanted.architecture == platform.architecture
                    })
                })
            }
        }
    }
}

/// An operating system and CPU architecture, as an index's platform names them (`linux`,
/// `amd64`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OsArchitecture {
    /// The operating system, in `GOOS` terms.
    pub os: String,
    /// The CPU architecture, in `GOARCH` terms.
    pub architecture: String,
}

#[cfg(test)]
mod tests {
    use registry_model::{Digest, Platform};

    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> UrlPolicy {
        UrlPolicy::new(allow, deny).expect("valid patterns")
    }

    #[test]
    fn without_patterns_no_url_is_accepted() {
        let policy = policy(&[], &[]);
        assert!(!policy.allows("https://example.com/layer.tar"));
        assert_eq!(policy, UrlPolicy::default());
    }

    #[test]
    fn allow_and_deny_combine_as_in_registry2() {
        let policy = policy(
            &[r"^https?://([^/]+\.)*example\.com/"],
            &[r"^https?://www\.example\.com/"],
        );
        assert!(policy.allows("https://cdn.example.com/layer.tar"));
        assert!(policy.allows("http://example.com/layer.tar"));
        assert!(
            !policy.allows("https://www.example.com/layer.tar"),
            "denied"
        );
        assert!(
            !policy.allows("https://example.org/layer.tar"),
            "not allowed"
        );
    }

    #[test]
    fn deny_alone_accepts_every_other_url() {
        let policy = policy(&[], &["evil"]);
        assert!(policy.allows("https://example.com/layer.tar"));
        assert!(!policy.allows("https://evil.example/layer.tar"));
    }

    #[test]
    fn only_http_urls_without_fragments_are_accepted() {
        let any = UrlPolicy::any();
        assert!(any.allows("HTTPS://example.com/a"));
        for url in [
            "ftp://example.com/a",
            "file:///etc/passwd",
            "https://example.com/a#part",
            "https:///no-host",
            "https://exa mple.com/",
            "example.com/a",
            "",
        ] {
            assert!(!any.allows(url), "{url:?}");
        }
    }

    #[test]
    fn a_bad_pattern_is_reported_with_its_list_and_position() {
        let error = UrlPolicy::new(&["fine", "("], &[]).expect_err("unclosed group");
        assert_eq!((error.list, error.index), ("allow", 1));
        let error = UrlPolicy::new(&[], &["[z-a]"]).expect_err("bad range");
        assert_eq!((error.list, error.index), ("deny", 0));
    }

    #[test]
    fn policies_from_the_same_patterns_are_equal() {
        assert_eq!(policy(&["a"], &["b"]), policy(&["a"], &["b"]));
        assert_ne!(policy(&["a"], &["b"]), policy(&["a"], &["c"]));
        assert_ne!(policy(&[], &["b"]), policy(&["b"], &[]));
        assert_ne!(UrlPolicy::any(), UrlPolicy::nothing());
    }

    fn child(platform: Option<(&str, &str)>) -> Descriptor {
        let mut descriptor = Descriptor::new(
            registry_model::media_type::OCI_IMAGE_MANIFEST,
            Digest::sha256(b"child"),
            5,
        );
        descriptor.platform = platform.map(|(os, architecture)| Platform {
            architecture: architecture.to_owned(),
            os: os.to_owned(),
            os_version: None,
            os_features: None,
            variant: None,
            features: None,
        });
        descriptor
    }

    #[test]
    fn a_platform_list_requires_only_the_children_it_names() {
        let listed = IndexChildren::PlatformsRequired(vec![OsArchitecture {
            os: "linux".to_owned(),
            architecture: "amd64".to_owned(),
        }]);
        assert!(listed.requires(&child(Some(("linux", "amd64")))));
        assert!(!listed.requires(&child(Some(("linux", "arm64")))));
        assert!(!listed.requires(&child(Some(("windows", "amd64")))));
        assert!(!listed.requires(&child(None)));
        assert!(IndexChildren::AllRequired.requires(&child(None)));
        assert!(!IndexChildren::NoneRequired.requires(&child(Some(("linux", "amd64")))));
    }
}
