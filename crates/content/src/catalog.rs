//! Listings: the repositories of the registry and the tags of a repository, in pages.

use registry_model::{RepositoryName, Tag};
use registry_storage::{StorageError, StoragePath, WalkControl};

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

/// One page of a sorted listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing<T> {
    /// The entries, sorted.
    pub items: Vec<T>,
    /// Whether entries follow the last one returned (the spec's `Link` header).
    pub more: bool,
}

impl Page {
    fn apply<T: AsRef<str>>(&self, mut sorted: Vec<T>) -> Listing<T> {
        if let Some(last) = &self.last {
            let after = sorted.partition_point(|item| item.as_ref() <= last.as_str());
            sorted.drain(..after);
        }
        let more = self.n.is_some_and(|n| sorted.len() > n);
        if let Some(n) = self.n {
            sorted.truncate(n);
        }
        Listing {
            items: sorted,
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
        let mut names: Vec<RepositoryName> = self
            .repository_folders("_manifests")
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        names.retain(|name| visible(name));
        names.sort();
        Ok(page.apply(names))
    }

    /// Every folder named `folder` (`_manifests`, `_uploads`) directly inside a repository,
    /// with the repository's name. A repository is a directory holding `_manifests`; folders
    /// whose names start with `_` are never repository names, so the walk skips them.
    pub(crate) async fn repository_folders(
        &self,
        folder: &str,
    ) -> Result<Vec<(RepositoryName, StoragePath)>, ContentError> {
        let root = layout::repositories_root()?;
        let prefix_len = root.as_str().len() + 1;
        let mut found = Vec::new();
        let walked = self
            .driver
            .walk(&root, &mut |entry| {
                if !entry.is_dir {
                    return WalkControl::Continue;
                }
                match entry.path.file_name() {
                    Some(name) if name == folder => {
                        if let Some(parent) = entry.path.parent()
                            && let Some(name) = parent.as_str().get(prefix_len..)
                            && let Ok(name) = name.parse::<RepositoryName>()
                        {
                            found.push((name, entry.path.clone()));
                        }
                        WalkControl::SkipDir
                    }
                    Some(other) if other.starts_with('_') => WalkControl::SkipDir,
                    _ => WalkControl::Continue,
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
        let dirs = match self.driver().list(&layout::tags_dir(&self.name)?).await {
            Ok(dirs) => dirs,
            Err(StorageError::NotFound { .. }) => {
                let manifests = layout::manifests_dir(&self.name)?;
                if crate::links::exists(self.driver(), &manifests).await? {
                    Vec::new()
                } else {
                    return Err(ContentError::NameUnknown {
                        name: self.name.clone(),
                    });
                }
            }
            Err(error) => return Err(error.into()),
        };
        let mut tags: Vec<Tag> = dirs
            .iter()
            .filter_map(|dir| dir.file_name()?.parse().ok())
            .collect();
        tags.sort();
        Ok(page.apply(tags))
    }
}
