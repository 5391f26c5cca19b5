//! Retention policies: which tags of a repository a garbage collection removes, and how long it
//! keeps manifests no tag reaches, as Harbor and zot offer them.
//!
//! A policy applies to the repositories its patterns match; the first policy that matches a
//! repository is the one for it, and a repository no policy matches keeps every tag. A policy
//! with tag rules keeps a tag when any rule keeps it: it is among the `keep_newest` most recently
//! pushed, or it matches one of `keep_tags`, or it was pushed within the grace period. Every other
//! tag is deleted as a client's `DELETE` of the tag would delete it; the manifests it named are
//! then collected like any other untagged manifest.

use std::fmt;
use std::time::{Duration, SystemTime};

use regex::Regex;
use registry_model::{RepositoryName, Tag};

/// A retention policy (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// The repositories the policy is for.
    pub repositories: Vec<RepositoryPattern>,
    /// Keep this many of the most recently pushed tags; `None`: this rule keeps none.
    pub keep_newest: Option<usize>,
    /// Keep the tags matching any of these.
    pub keep_tags: Vec<TagPattern>,
    /// Delete manifests no kept tag reaches once they were pushed longer ago than this (whether
    /// or not the collection deletes untagged manifests elsewhere); `None`: as elsewhere.
    pub untagged_older_than: Option<Duration>,
}

impl RetentionPolicy {
    /// Whether the policy is for the repository `name`.
    pub fn applies_to(&self, name: &RepositoryName) -> bool {
        self.repositories
            .iter()
            .any(|pattern| pattern.matches(name))
    }

    /// Whether the policy removes tags at all: without a tag rule every tag is kept.
    pub fn has_tag_rules(&self) -> bool {
        self.keep_newest.is_some() || !self.keep_tags.is_empty()
    }

    /// The tags of `tags` (each with when it was last pushed, `None` if unknown) that the policy
    /// removes. Tags pushed after `grace_cutoff`, or at an unknown time, are always kept.
    pub fn tags_to_remove<'t>(
        &self,
        tags: &'t [(Tag, Option<SystemTime>)],
        grace_cutoff: SystemTime,
    ) -> Vec<&'t Tag> {
        if !self.has_tag_rules() {
            return Vec::new();
        }
        let mut newest_first: Vec<&(Tag, Option<SystemTime>)> = tags.iter().collect();
        // Unknown times sort as newest. Tags pushed within one tick of the storage's clock tie:
        // the later name counts as the newer (`v2` before `v1`), the same choice every run.
        newest_first.sort_by(|(a_tag, a_time), (b_tag, b_time)| {
            let newer = |time: &Option<SystemTime>| time.unwrap_or(SystemTime::UNIX_EPOCH);
            (b_time.is_none(), newer(b_time))
                .cmp(&(a_time.is_none(), newer(a_time)))
                .then_with(|| b_tag.as_str().cmp(a_tag.as_str()))
        });
        let keep_newest = self.keep_newest.unwrap_or(0);
        newest_first
            .into_iter()
            .enumerate()
            .filter(|(rank, (tag, pushed))| {
                let kept = *rank < keep_newest
                    || self.keep_tags.iter().any(|pattern| pattern.matches(tag))
                    || pushed.is_none_or(|pushed| pushed > grace_cutoff);
                !kept
            })
            .map(|(_, (tag, _))| tag)
            .collect()
    }
}

/// The policy for the repository `name`: the first of `policies` that applies to it.
pub(crate) fn policy_for<'p>(
    policies: &'p [RetentionPolicy],
    name: &RepositoryName,
) -> Option<&'p RetentionPolicy> {
    policies.iter().find(|policy| policy.applies_to(name))
}

/// A pattern of repository names, as zot writes them: `*` stands for any characters but `/`,
/// `**` for any characters at all, everything else for itself. `team/*` matches `team/app` but
/// not `team/app/cache`; `team/**` matches both; `**` matches every repository.
#[derive(Clone)]
pub struct RepositoryPattern {
    text: String,
    regex: Regex,
}

impl RepositoryPattern {
    /// The pattern `text`.
    pub fn new(text: &str) -> Result<RepositoryPattern, PatternError> {
        let mut expression = String::from("^");
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("**") {
                expression.push_str(".*");
                rest = after;
            } else if let Some(after) = rest.strip_prefix('*') {
                expression.push_str("[^/]*");
                rest = after;
            } else {
                let literal = rest.find('*').unwrap_or(rest.len());
                expression.push_str(&regex::escape(&rest[..literal]));
                rest = &rest[literal..];
            }
        }
        expression.push('$');
        let regex = Regex::new(&expression).map_err(|error| PatternError {
            pattern: text.to_owned(),
            reason: error.to_string(),
        })?;
        Ok(RepositoryPattern {
            text: text.to_owned(),
            regex,
        })
    }

    /// Whether the repository `name` matches.
    pub fn matches(&self, name: &RepositoryName) -> bool {
        self.regex.is_match(name.as_str())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A pattern of tags: a regular expression (RE2 syntax, as registry:2's other patterns) that must
/// match the whole tag: `v1\..*` matches `v1.2` but not `xv1.2`.
#[derive(Clone)]
pub struct TagPattern {
    text: String,
    regex: Regex,
}

impl TagPattern {
    /// The pattern `text`.
    pub fn new(text: &str) -> Result<TagPattern, PatternError> {
        let regex = Regex::new(&format!("^(?:{text})$")).map_err(|error| PatternError {
            pattern: text.to_owned(),
            reason: error.to_string().lines().last().unwrap_or("").to_owned(),
        })?;
        Ok(TagPattern {
            text: text.to_owned(),
            regex,
        })
    }

    /// Whether `tag` matches.
    pub fn matches(&self, tag: &Tag) -> bool {
        self.regex.is_match(tag.as_str())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

macro_rules! pattern_traits {
    ($pattern:ty) => {
        impl fmt::Debug for $pattern {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.text, f)
            }
        }
        impl PartialEq for $pattern {
            fn eq(&self, other: &Self) -> bool {
                self.text == other.text
            }
        }
        impl Eq for $pattern {}
    };
}
pattern_traits!(RepositoryPattern);
pattern_traits!(TagPattern);

/// A pattern that does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{pattern:?} is not a valid pattern: {reason}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> RepositoryName {
        text.parse().expect("a valid name")
    }

    fn tag(text: &str) -> Tag {
        text.parse().expect("a valid tag")
    }

    fn at(seconds: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
    }

    fn removed(policy: &RetentionPolicy, tags: &[(Tag, Option<SystemTime>)]) -> Vec<String> {
        let cutoff = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut removed: Vec<String> = policy
            .tags_to_remove(tags, cutoff)
            .into_iter()
            .map(|tag| tag.as_str().to_owned())
            .collect();
        removed.sort();
        removed
    }

    #[test]
    fn a_single_star_stays_within_one_path_component() {
        let pattern = RepositoryPattern::new("team/*").expect("valid");
        assert!(pattern.matches(&name("team/app")));
        assert!(!pattern.matches(&name("team/app/cache")));
        assert!(!pattern.matches(&name("other/team/app")));
        let deep = RepositoryPattern::new("team/**").expect("valid");
        assert!(deep.matches(&name("team/app/cache")));
        assert!(
            RepositoryPattern::new("**")
                .expect("valid")
                .matches(&name("a/b/c"))
        );
        assert!(
            RepositoryPattern::new("a.b")
                .expect("valid")
                .matches(&name("a.b"))
        );
        assert!(
            !RepositoryPattern::new("a.b")
                .expect("valid")
                .matches(&name("axb"))
        );
    }

    #[test]
    fn tag_patterns_match_whole_tags() {
        let pattern = TagPattern::new(r"v1\..*").expect("valid");
        assert!(pattern.matches(&tag("v1.2")));
        assert!(!pattern.matches(&tag("xv1.2")));
        assert!(
            TagPattern::new("latest|stable")
                .expect("valid")
                .matches(&tag("stable"))
        );
        let error = TagPattern::new("v(").expect_err("unbalanced");
        assert_eq!(error.pattern, "v(");
    }

    #[test]
    fn the_newest_tags_and_matching_tags_are_kept() {
        let policy = RetentionPolicy {
            keep_newest: Some(2),
            keep_tags: vec![TagPattern::new("release-.*").expect("valid")],
            ..RetentionPolicy::default()
        };
        let tags = [
            (tag("a"), at(10)),
            (tag("b"), at(40)),
            (tag("c"), at(30)),
            (tag("release-1"), at(5)),
            (tag("d"), at(20)),
        ];
        assert_eq!(removed(&policy, &tags), ["a", "d"]);
    }

    #[test]
    fn tags_pushed_at_the_same_time_rank_by_name_the_later_as_newer() {
        let policy = RetentionPolicy {
            keep_newest: Some(1),
            ..RetentionPolicy::default()
        };
        let tags = [
            (tag("v1"), at(10)),
            (tag("v2"), at(10)),
            (tag("v0"), at(10)),
        ];
        assert_eq!(removed(&policy, &tags), ["v0", "v1"]);
    }

    #[test]
    fn tags_within_the_grace_period_or_of_unknown_age_are_kept() {
        let policy = RetentionPolicy {
            keep_newest: Some(0),
            ..RetentionPolicy::default()
        };
        let tags = [
            (tag("old"), at(10)),
            (tag("new"), at(2_000)),
            (tag("unknown"), None),
        ];
        assert_eq!(removed(&policy, &tags), ["old"]);
    }

    #[test]
    fn a_policy_without_tag_rules_removes_no_tag() {
        let policy = RetentionPolicy {
            untagged_older_than: Some(Duration::from_secs(60)),
            ..RetentionPolicy::default()
        };
        assert!(removed(&policy, &[(tag("old"), at(1))]).is_empty());
    }

    #[test]
    fn the_first_matching_policy_is_the_one() {
        let first = RetentionPolicy {
            repositories: vec![RepositoryPattern::new("team/*").expect("valid")],
            keep_newest: Some(1),
            ..RetentionPolicy::default()
        };
        let second = RetentionPolicy {
            repositories: vec![RepositoryPattern::new("**").expect("valid")],
            keep_newest: Some(5),
            ..RetentionPolicy::default()
        };
        let policies = [first.clone(), second.clone()];
        assert_eq!(policy_for(&policies, &name("team/app")), Some(&first));
        assert_eq!(policy_for(&policies, &name("other")), Some(&second));
        assert_eq!(policy_for(&policies[..1], &name("other")), None);
    }
}
