//! Listings: the repositories of the registry and the tags of a repository, in pages.

use std::sync::Arc;
use std::time::SystemTime;

use registry_model::{RepositoryName, Tag};
use registry_storage::{StorageError, StoragePath};

use crate::catalog_index::{TreeEntry, walk_repository_tree};
use crate::listing_cache::TagSnapshot;
use crate::{ContentError, ContentStore, Repository, layout};

/// Which part of a sorted listing to return: at most `n` entries after `last`, as the `n` and
/// `last` query parameters of the distribution spec ask.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The most entries to return; all when `None`.
    pub n: Option<usize>,
    /// Return only entries sorting after this one.
    pub last: Option<String>,
}

/// One page of a sorted listing. It shares the listing it was cut from instead of copying the
/// entries: a page of 10,000 tags costs one vector of positions, not 10,000 strings.
#[derive(Clone, Debug)]
pub struct Listing<T> {
    sorted: Arc<[T]>,
    /// Where the page's entries sit in `sorted`, ascending.
    positions: Vec<usize>,
    /// Whether entries follow the last one returned (the spec's `Link` header).
    pub more: bool,
}

impl<T> Listing<T> {
    /// The entries of the page, sorted.
    pub fn items(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.positions
            .iter()
            .map(|&position| &self.sorted[position])
    }

    /// The last entry of the page, where the next page starts after.
    pub fn last(&self) -> Option<&T> {
        self.items().next_back()
    }

    /// The entries of the page, copied out.
    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.items().cloned().collect()
    }
}

impl Page {
    /// The page of `sorted` (which must be sorted) holding only the entries for which `visible`
    /// holds (paged after filtering, so pages stay full).
    pub fn select<T: AsRef<str>>(
        &self,
        sorted: Arc<[T]>,
        visible: impl Fn(&T) -> bool,
    ) -> Listing<T> {
        let after = match &self.last {
            Some(last) => sorted.partition_point(|item| item.as_ref() <= last.as_str()),
            None => 0,
        };
        let mut candidates = (after..sorted.len()).filter(|&position| visible(&sorted[position]));
        let positions: Vec<usize> = candidates
            .by_ref()
            .take(self.n.unwrap_or(usize::MAX))
            .collect();
        let more = candidates.next().is_some();
        Listing {
            sorted,
            positions,
            more,
        }
    }
}

impl ContentStore {
    /// The repositories of the registry (those holding manifests), sorted by name.
    pub async fn catalog(&self, page: &Page) -> Result<Listing<RepositoryName>, ContentError> {
        self.catalog_where(page, |_| true).await
    }

    /// The repositories for which `visible` holds, sorted by name and paged after filtering (a
    /// caller sees only what it may pull, and pages stay full).
    pub async fn catalog_where(
        &self,
        page: &Page,
        visible: impl Fn(&RepositoryName) -> bool,
    ) -> Result<Listing<RepositoryName>, ContentError> {
        let names = self
            .catalog_index
            .repositories(self.driver.as_ref())
            .await?;
        Ok(page.select(names, visible))
    }

    /// Every folder named `folder` (`_uploads`) directly inside a repository, with the
    /// repository's name.
    pub(crate) async fn repository_folders(
        &self,
        folder: &str,
    ) -> Result<Vec<(RepositoryName, StoragePath)>, ContentError> {
        let mut found = Vec::new();
        let root = layout::repositories_root()?;
        let walked = walk_repository_tree(self.driver.as_ref(), &root, |entry| {
            if let TreeEntry::Folder {
                repository,
                name,
                path,
            } = entry
                && name == folder
                && let Ok(repository) = repository.parse::<RepositoryName>()
            {
                found.push((repository, path.clone()));
            }
        })
        .await;
        match walked {
            Ok(()) | Err(StorageError::NotFound { .. }) => Ok(found),
            Err(error) => Err(error.into()),
        }
    }
}

impl Repository {
    /// The tags of this repository, sorted. [`ContentError::NameUnknown`] when the repository
    /// holds no manifests.
    pub async fn tags(&self, page: &Page) -> Result<Listing<Tag>, ContentError> {
        let tags = self.tag_names().await?;
        Ok(page.select(tags, |_| true))
    }

    /// Every tag of this repository, sorted: from the snapshot when the tags directory has not
    /// changed since it was read, else read afresh.
    async fn tag_names(&self) -> Result<Arc<[Tag]>, ContentError> {
        let cache = &self.store.tag_cache;
        if let Some(snapshot) = cache.get(&self.name)
            && let Some(tags) = snapshot.current(self.driver()).await
        {
            return Ok(tags);
        }
        let began = SystemTime::now();
        let tags_dir = layout::tags_dir(&self.name)?;
        let dirs = match self.driver().list(&tags_dir).await {
            Ok(dirs) => dirs,
            Err(StorageError::NotFound { .. }) => {
                let manifests = layout::manifests_dir(&self.name)?;
                return if crate::links::exists(self.driver(), &manifests).await? {
                    Ok(Arc::new([]))
                } else {
                    Err(ContentError::NameUnknown {
                        name: self.name.clone(),
                    })
                };
            }
            Err(error) => return Err(error.into()),
        };
        let mut tags: Vec<Tag> = dirs
            .iter()
            .filter_map(|dir| dir.file_name()?.parse().ok())
            .collect();
        tags.sort();
        let tags: Arc<[Tag]> = tags.into();
        match TagSnapshot::take(self.driver(), began, Arc::clone(&tags), tags_dir).await {
            Some(snapshot) => {
                let size = snapshot.estimate();
                cache.insert(self.name.clone(), snapshot, size);
            }
            None => cache.remove(&self.name),
        }
        Ok(tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Arc<[String]> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn page(n: Option<usize>, last: Option<&str>) -> Page {
        Page {
            n,
            last: last.map(str::to_string),
        }
    }

    #[test]
    fn pages_are_cut_after_filtering_and_say_whether_more_follow() {
        let all = sorted(&["a", "b", "c", "d", "e"]);
        let not_c = |name: &String| name != "c";

        let first = page(Some(2), None).select(Arc::clone(&all), not_c);
        assert_eq!(first.to_vec(), ["a", "b"]);
        assert!(first.more);

        let second =
            page(Some(2), first.last().map(String::as_str)).select(Arc::clone(&all), not_c);
        assert_eq!(
            second.to_vec(),
            ["d", "e"],
            "the hidden entry does not shorten the page"
        );
        assert!(!second.more);

        let whole = page(None, None).select(Arc::clone(&all), |_| true);
        assert_eq!(whole.items().len(), 5);
        assert!(!whole.more);
    }

    #[test]
    fn an_empty_page_still_says_whether_entries_follow() {
        let all = sorted(&["a", "b"]);
        let none = page(Some(0), None).select(Arc::clone(&all), |_| true);
        assert!(none.last().is_none());
        assert!(none.more);

        let past_the_end = page(Some(5), Some("z")).select(all, |_| true);
        assert!(past_the_end.to_vec().is_empty());
        assert!(!past_the_end.more);
    }
}
