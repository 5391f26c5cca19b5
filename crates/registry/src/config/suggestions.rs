//! Warnings for unknown keys, with the known key a typo most likely meant.

use super::load::join_path;
use super::schema;
use super::tree::Origin;

pub(super) fn unknown_key_warning(path: &str, origin: Option<&Origin>) -> String {
    let origin = origin
        .map(|origin| format!(" ({origin})"))
        .unwrap_or_default();
    let (parent, name) = match path.rsplit_once('.') {
        Some((parent, name)) => (parent, name),
        None => ("", path),
    };
    let suggestion = suggest(name, known_keys(parent))
        .map(|known| format!("; did you mean {}?", join_path(parent, known)))
        .unwrap_or_default();
    format!("unknown config key {path}{origin} is ignored{suggestion}")
}

/// The key in `known` that `name` is most likely a misspelling of: one a few edits away (an
/// edit being a letter added, dropped, changed, or two neighbours swapped, so `tsl` is one edit
/// from `tls`), one that `name` begins, or the same key in another case.
pub(super) fn suggest<'k>(name: &str, known: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    known
        .into_iter()
        .filter(|known| {
            strsim::osa_distance(known, name) <= (name.len() / 3).max(1)
                || (name.len() >= 4 && known.starts_with(name))
                || known.eq_ignore_ascii_case(name)
        })
        .min_by_key(|known| strsim::osa_distance(known, name))
}

/// The keys the schema knows under `path` (a struct's fields), for suggestions.
pub(super) fn known_keys(path: &str) -> Vec<&'static str> {
    let mut kind = &schema::ROOT;
    if !path.is_empty() {
        for part in path.split('.') {
            match kind.field(part) {
                Some(field) => kind = field.kind,
                None => return Vec::new(),
            }
        }
    }
    kind.fields()
        .unwrap_or_default()
        .iter()
        .map(|field| field.name)
        .collect()
}
