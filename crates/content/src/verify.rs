//! Verifying the store, a scrub: every blob is hashed again and compared with the digest its path
//! names, and every link of every repository is read and followed the way the registry reads it
//! when serving. With repair, the links found dangling or bad are removed; blobs never are.
//!
//! Memory stays flat however large the store. The scan never collects the paths of the store: it
//! holds one directory listing per level of the tree it is in (a blob prefix directory, one
//! repository's `_layers/sha256`, the namespaces above it) and lets each go when it is done, and it
//! hashes blobs as streams. So what it holds is bounded by the largest directory, not by the store.
//!
//! It is safe while registryd serves the same store. Without repair it writes nothing. Whatever
//! disappears during the scan (a blob or link deleted by a request) is skipped, not reported. A
//! link found bad is checked again before it is reported or removed, so a push or delete caught
//! halfway (a tag being deleted just after its manifest) is not taken for damage, and repair
//! removes only what is still bad at that moment.

use std::fmt;

use futures_util::StreamExt;
use registry_model::{Digest, DigestAlgorithm, Digester, RepositoryName, Tag};
use registry_storage::{StorageError, StoragePath};

use crate::hashing::BackgroundDigester;
use crate::lease::Lease;
use crate::links::{delete_if_exists, read_link};
use crate::{ContentError, ContentStore, Repository, layout};

/// How [`ContentStore::verify`] runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Remove the links found dangling or bad, each checked again just before it is removed.
    /// Blobs are never removed: a corrupt blob is only reported.
    pub repair: bool,
}

/// The totals of a verification, so far or in the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blobs read and hashed in full.
    pub blobs_checked: u64,
    /// Bytes of blob data read and hashed.
    pub bytes_hashed: u64,
    /// Links read and followed: layer links, manifest revision links, tags (current link and
    /// history) and referrer records.
    pub links_checked: u64,
    /// Problems found, each also told as a [`VerifyEvent::Problem`].
    pub problems: u64,
    /// Links removed by repair.
    pub repaired: u64,
}

impl VerifyReport {
    /// Whether nothing was found wrong.
    pub fn is_clean(&self) -> bool {
        self.problems == 0
    }
}

/// Something found wrong in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: a blob's `data`, a `link`, a referrer's `descriptor`, or an entry the registry cannot
    /// address.
    pub path: StoragePath,
    /// What is wrong there.
    pub kind: ProblemKind,
    /// What repair did about it.
    pub repair: Repair,
}

/// What is wrong at a [`Problem`]'s path.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The blob's data does not hash to the digest its path names.
    CorruptBlob {
        /// What the data hashes to.
        actual: Digest,
    },
    /// The link holds no digest (or the referrer record no descriptor).
    Unparsable {
        /// Why it could not be read as one.
        reason: String,
    },
    /// The link names another digest than the one its path names.
    WrongDigest {
        /// The digest it holds.
        found: Digest,
    },
    /// The blob the link leads to has no data in the blob store.
    MissingBlob {
        /// The blob.
        digest: Digest,
    },
    /// The manifest the tag or referrer record names is not in the repository: no revision link
    /// names it.
    MissingManifest {
        /// The manifest.
        digest: Digest,
    },
    /// An entry the registry cannot address, so never reads: a name that is not a digest, a tag
    /// or a repository name, or blob data under the wrong prefix directory. Repair leaves it, as
    /// it may not be the registry's.
    UnexpectedEntry {
        /// Why the registry cannot address it.
        reason: &'static str,
    },
    /// The storage driver failed to read it (an I/O error, not a missing file). Repair leaves it:
    /// the failure may pass.
    ReadFailed {
        /// The driver's error.
        error: String,
    },
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProblemKind::CorruptBlob { actual } => write!(f, "corrupt blob: content is {actual}"),
            ProblemKind::Unparsable { reason } => write!(f, "bad link: unreadable: {reason}"),
            ProblemKind::WrongDigest { found } => {
                write!(f, "bad link: names {found}, not the digest of its path")
            }
            ProblemKind::MissingBlob { digest } => {
                write!(f, "dangling link: the data of blob {digest} is missing")
            }
            ProblemKind::MissingManifest { digest } => {
                write!(
                    f,
                    "dangling link: manifest {digest} is not in the repository"
                )
            }
            ProblemKind::UnexpectedEntry { reason } => write!(f, "unexpected entry: {reason}"),
            ProblemKind::ReadFailed { error } => write!(f, "cannot be read: {error}"),
        }
    }
}

/// What repair did about a [`Problem`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repair {
    /// Nothing: repair was not asked for, or the problem is not a bad link (a corrupt blob, an
    /// unexpected entry, a failed read).
    None,
    /// The link was removed: this path and everything below it.
    Removed(StoragePath),
    /// Removing the link failed; it is still there.
    Failed {
        /// What was to be removed.
        path: StoragePath,
        /// The driver's error.
        error: String,
    },
}

/// What [`ContentStore::verify`] tells its observer as it goes.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum VerifyEvent<'a> {
    /// A problem was found (and, with repair, dealt with).
    Problem(&'a Problem),
    /// The totals so far, told after every link checked and every chunk of blob data hashed.
    Progress(&'a VerifyReport),
}

impl ContentStore {
    /// Verifies the whole store: hashes every blob (sha256 and sha512) and checks every layer link,
    /// manifest revision link, tag and referrer record of every repository. Each problem is told
    /// to `observe` as it is found, with the totals after every step; the final totals are
    /// returned. With [`VerifyOptions::repair`], links found dangling or bad are removed once
    /// checked again.
    ///
    /// What is checked: a blob's data must hash to the digest its path names. A link must hold
    /// the digest its path names (a tag's current link names any), and what it leads to must be
    /// there: the blob's data for a layer or revision link, the manifest's revision link and data
    /// for a tag, the manifest's revision link for a referrer record. A tag's history entries
    /// (`index/`) are checked for their digest only: the registry keeps them after the manifests
    /// they name are deleted.
    ///
    /// Problems in the store are reported, not returned: `Err` only when the scan cannot go on.
    /// Memory does not grow with the number of blobs or links (one directory listing per level
    /// of the tree is held at a time). The scan is safe while the store is being served: what a
    /// concurrent delete removes during the scan is skipped, and a link found bad is checked
    /// again before it is reported or removed.
    pub async fn verify(
        &self,
        options: &VerifyOptions,
        mut observe: impl FnMut(VerifyEvent<'_>) + Send,
    ) -> Result<VerifyReport, ContentError> {
        let mut scan = Scan {
            store: self,
            repair: options.repair,
            report: VerifyReport::default(),
            observe: &mut observe,
        };
        scan.blobs().await?;
        scan.repositories().await?;
        Ok(scan.report)
    }
}

/// One verification in progress.
struct Scan<'a> {
    store: &'a ContentStore,
    repair: bool,
    report: VerifyReport,
    observe: &'a mut (dyn FnMut(VerifyEvent<'_>) + Send),
}

impl Scan<'_> {
    fn problem(&mut self, path: StoragePath, kind: ProblemKind, repair: Repair) {
        self.report.problems += 1;
        if matches!(repair, Repair::Removed(_)) {
            self.report.repaired += 1;
        }
        let problem = Problem { path, kind, repair };
        (self.observe)(VerifyEvent::Problem(&problem));
    }

    fn unexpected(&mut self, path: StoragePath, reason: &'static str) {
        self.problem(path, ProblemKind::UnexpectedEntry { reason }, Repair::None);
    }

    fn read_failed(&mut self, path: StoragePath, error: &StorageError) {
        let error = error.to_string();
        self.problem(path, ProblemKind::ReadFailed { error }, Repair::None);
    }

    fn progress(&mut self) {
        (self.observe)(VerifyEvent::Progress(&self.report));
    }

    /// The entries of the directory `dir`; `None` when there is none (nothing stored there, or
    /// deleted meanwhile) or it cannot be listed, which is reported.
    async fn list(&mut self, dir: &StoragePath) -> Option<Vec<StoragePath>> {
        match self.store.driver.list(dir).await {
            Ok(entries) => Some(entries),
            Err(StorageError::NotFound { .. }) => None,
            Err(error) => {
                self.read_failed(dir.clone(), &error);
                None
            }
        }
    }

    /// Hashes every blob, one prefix directory listing at a time.
    async fn blobs(&mut self) -> Result<(), ContentError> {
        for algorithm in layout::ALGORITHMS {
            let Some(prefixes) = self.list(&layout::blobs_dir(algorithm)?).await else {
                continue;
            };
            for prefix in prefixes {
                let Some(entries) = self.list(&prefix).await else {
                    continue;
                };
                for entry in entries {
                    self.blob(algorithm, entry).await?;
                }
            }
        }
        Ok(())
    }

    /// Hashes the blob whose directory is `entry`, streaming its data through a hasher on the
    /// blocking pool while the next chunk is read.
    async fn blob(
        &mut self,
        algorithm: DigestAlgorithm,
        entry: StoragePath,
    ) -> Result<(), ContentError> {
        let Some(digest) = entry
            .file_name()
            .and_then(|hex| Digest::new(algorithm, hex).ok())
        else {
            self.unexpected(entry, NOT_A_DIGEST);
            return Ok(());
        };
        let data = layout::blob_data(&digest)?;
        if data.parent().as_ref() != Some(&entry) {
            self.unexpected(entry, "blob under the wrong prefix directory");
            return Ok(());
        }
        let mut stream = match self.store.driver.reader(&data, 0, None).await {
            Ok(stream) => stream,
            // An empty blob directory, or a blob deleted since the listing.
            Err(StorageError::NotFound { .. }) => return Ok(()),
            Err(error) => {
                self.read_failed(data, &error);
                return Ok(());
            }
        };
        let mut hashing = BackgroundDigester::new(Digester::new(algorithm));
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    self.report.bytes_hashed += chunk.len() as u64;
                    hashing.update(chunk).await?;
                    self.progress();
                }
                Err(StorageError::NotFound { .. }) => return Ok(()),
                Err(error) => {
                    self.read_failed(data, &error);
                    return Ok(());
                }
            }
        }
        let actual = hashing.finish().await?.finalize();
        self.report.blobs_checked += 1;
        if actual != digest {
            self.problem(data, ProblemKind::CorruptBlob { actual }, Repair::None);
        }
        self.progress();
        Ok(())
    }

    /// Checks the links of every repository, walking the repository tree depth first with one
    /// listing per level (namespaces nest a few levels at most).
    async fn repositories(&mut self) -> Result<(), ContentError> {
        let root = layout::repositories_root()?;
        let Some(top) = self.list(&root).await else {
            return Ok(());
        };
        let mut pending = vec![top.into_iter()];
        while let Some(level) = pending.last_mut() {
            let Some(dir) = level.next() else {
                pending.pop();
                continue;
            };
            // `None` also for a stray file, which lists as nothing.
            let Some(entries) = self.list(&dir).await else {
                continue;
            };
            if entries.iter().any(is_repository_folder) {
                self.repository(&root, dir).await?;
            }
            let below: Vec<StoragePath> = entries
                .into_iter()
                .filter(|entry| !is_repository_folder(entry))
                .collect();
            pending.push(below.into_iter());
        }
        Ok(())
    }

    /// Checks the links of the repository in `dir`.
    async fn repository(
        &mut self,
        root: &StoragePath,
        dir: StoragePath,
    ) -> Result<(), ContentError> {
        let Some(name) = dir
            .as_str()
            .get(root.as_str().len() + 1..)
            .and_then(|relative| relative.parse::<RepositoryName>().ok())
        else {
            self.unexpected(dir, "not a valid repository name");
            return Ok(());
        };
        let repository = self.store.repository(name);
        let name = repository.name();
        for algorithm in layout::ALGORITHMS {
            let layers = layout::layer_links_dir(name, algorithm)?;
            self.digest_links(&repository, &layers, algorithm, Link::Layer)
                .await?;
            let revisions = layout::revision_links_dir(name, algorithm)?;
            self.digest_links(&repository, &revisions, algorithm, Link::Revision)
                .await?;
        }
        if let Some(tags) = self.list(&layout::tags_dir(name)?).await {
            for entry in tags {
                let Some(tag) = entry.file_name().and_then(|tag| tag.parse::<Tag>().ok()) else {
                    self.unexpected(entry, "not a valid tag");
                    continue;
                };
                self.link(&repository, Link::TagCurrent(tag.clone()))
                    .await?;
                for algorithm in layout::ALGORITHMS {
                    let history = layout::tag_index_dir(name, &tag, algorithm)?;
                    self.digest_links(&repository, &history, algorithm, |digest| {
                        Link::TagIndex(tag.clone(), digest)
                    })
                    .await?;
                }
            }
        }
        for algorithm in layout::ALGORITHMS {
            let subjects = layout::referrer_subjects_dir(name, algorithm)?;
            let Some(subjects) = self.list(&subjects).await else {
                continue;
            };
            for entry in subjects {
                let Some(subject) = entry
                    .file_name()
                    .and_then(|hex| Digest::new(algorithm, hex).ok())
                else {
                    self.unexpected(entry, NOT_A_DIGEST);
                    continue;
                };
                for referrer_algorithm in layout::ALGORITHMS {
                    let records = layout::referrer_entries_dir(name, &subject, referrer_algorithm)?;
                    self.digest_links(&repository, &records, referrer_algorithm, |referrer| {
                        Link::Referrer {
                            subject: subject.clone(),
                            referrer,
                        }
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Checks the link in each entry of `dir`, whose names are the hex of `algorithm` digests.
    async fn digest_links(
        &mut self,
        repository: &Repository,
        dir: &StoragePath,
        algorithm: DigestAlgorithm,
        link: impl Fn(Digest) -> Link,
    ) -> Result<(), ContentError> {
        let Some(entries) = self.list(dir).await else {
            return Ok(());
        };
        for entry in entries {
            match entry
                .file_name()
                .and_then(|hex| Digest::new(algorithm, hex).ok())
            {
                Some(digest) => self.link(repository, link(digest)).await?,
                None => self.unexpected(entry, NOT_A_DIGEST),
            }
        }
        Ok(())
    }

    /// Checks `link`, and reports it (removed, with repair) if it is still bad when checked again.
    async fn link(&mut self, repository: &Repository, link: Link) -> Result<(), ContentError> {
        let verdict = repository.check_link(&link).await?;
        if !matches!(verdict, Verdict::Gone) {
            self.report.links_checked += 1;
        }
        if matches!(verdict, Verdict::Bad(_) | Verdict::Failed(_)) {
            // A second look: a concurrent push or delete may have been halfway through (a tag
            // whose manifest was just deleted is itself deleted next).
            let (verdict, repair) = if self.repair {
                repository.repair_link(&link).await?
            } else {
                (repository.check_link(&link).await?, Repair::None)
            };
            let path = link.path(repository.name())?;
            match verdict {
                Verdict::Bad(kind) => self.problem(path, kind, repair),
                Verdict::Failed(error) => {
                    self.problem(path, ProblemKind::ReadFailed { error }, Repair::None);
                }
                Verdict::Fine | Verdict::Gone => {}
            }
        }
        self.progress();
        Ok(())
    }
}

const NOT_A_DIGEST: &str = "not named by a digest";

/// Whether `entry` of a repository tree is one of a repository's own folders (`_manifests`,
/// `_layers`, `_uploads`, ...), which a repository name can never be.
fn is_repository_folder(entry: &StoragePath) -> bool {
    entry.file_name().is_some_and(|name| name.starts_with('_'))
}

/// One link of a repository, known by what its path names.
#[derive(Debug)]
enum Link {
    /// `_layers/<alg>/<hex>/link`.
    Layer(Digest),
    /// `_manifests/revisions/<alg>/<hex>/link`.
    Revision(Digest),
    /// `_manifests/tags/<tag>/current/link`.
    TagCurrent(Tag),
    /// `_manifests/tags/<tag>/index/<alg>/<hex>/link`.
    TagIndex(Tag, Digest),
    /// `_referrers/<alg>/<subject hex>/<alg>/<hex>/descriptor`.
    Referrer { subject: Digest, referrer: Digest },
}

impl Link {
    /// The file holding the link.
    fn path(&self, name: &RepositoryName) -> Result<StoragePath, StorageError> {
        match self {
            Link::Layer(digest) => layout::link(&layout::layer_link_dir(name, digest)?),
            Link::Revision(digest) => layout::link(&layout::revision_link_dir(name, digest)?),
            Link::TagCurrent(tag) => layout::tag_current_link(name, tag),
            Link::TagIndex(tag, digest) => layout::tag_index_link(name, tag, digest),
            Link::Referrer { subject, referrer } => {
                layout::referrer_descriptor(name, subject, referrer)
            }
        }
    }

    /// What repair removes: the link's directory, as the registry's own deletes do. For a tag's
    /// current link that is the whole tag, as deleting the tag would: a tag directory without a
    /// current link would still be listed among the tags.
    fn removal(&self, name: &RepositoryName) -> Result<StoragePath, StorageError> {
        match self {
            Link::Layer(digest) => layout::layer_link_dir(name, digest),
            Link::Revision(digest) => layout::revision_link_dir(name, digest),
            Link::TagCurrent(tag) => layout::tag_dir(name, tag),
            Link::TagIndex(..) | Link::Referrer { .. } => {
                let path = self.path(name)?;
                Ok(path.parent().unwrap_or(path))
            }
        }
    }

    /// The digest the link's path names, which the link must hold.
    fn named(&self) -> Option<&Digest> {
        match self {
            Link::Layer(digest) | Link::Revision(digest) | Link::TagIndex(_, digest) => {
                Some(digest)
            }
            Link::Referrer { referrer, .. } => Some(referrer),
            Link::TagCurrent(_) => None,
        }
    }
}

/// What checking a link found.
#[derive(Debug)]
enum Verdict {
    Fine,
    /// There is no link (any more): nothing to check.
    Gone,
    Bad(ProblemKind),
    /// The driver failed reading the link or what it leads to.
    Failed(String),
}

impl Repository {
    /// Checks `link` as the registry reads it when serving: with [`read_link`], and looking for
    /// the blob data and the revision link where the registry does.
    async fn check_link(&self, link: &Link) -> Result<Verdict, ContentError> {
        let path = link.path(&self.name)?;
        let held = match link {
            Link::Referrer { .. } => self
                .referrer_record(&path)
                .await
                .map(|record| record.map(|descriptor| descriptor.digest)),
            _ => read_link(self.driver(), &path).await,
        };
        let target = match held {
            Ok(Some(target)) => target,
            Ok(None) => return Ok(Verdict::Gone),
            Err(ContentError::Corrupt { reason, .. }) => {
                return Ok(Verdict::Bad(ProblemKind::Unparsable { reason }));
            }
            Err(error) => return Ok(Verdict::Failed(error.to_string())),
        };
        if let Some(named) = link.named()
            && named != &target
        {
            return Ok(Verdict::Bad(ProblemKind::WrongDigest { found: target }));
        }
        if matches!(link, Link::TagCurrent(_) | Link::Referrer { .. }) {
            let revision = layout::link(&layout::revision_link_dir(&self.name, &target)?)?;
            match read_link(self.driver(), &revision).await {
                Ok(Some(found)) if found == target => {}
                // Missing, or itself bad (reported on its own): the manifest is not there.
                Ok(_) | Err(ContentError::Corrupt { .. }) => {
                    return Ok(Verdict::Bad(ProblemKind::MissingManifest {
                        digest: target,
                    }));
                }
                Err(error) => return Ok(Verdict::Failed(error.to_string())),
            }
        }
        if matches!(link, Link::TagIndex(..) | Link::Referrer { .. }) {
            return Ok(Verdict::Fine);
        }
        match self.stored_blob(&target).await {
            Ok(Some(_)) => Ok(Verdict::Fine),
            Ok(None) => Ok(Verdict::Bad(ProblemKind::MissingBlob { digest: target })),
            Err(error) => Ok(Verdict::Failed(error.to_string())),
        }
    }

    /// Checks `link` again and removes it if it is still bad, returning what the check found and
    /// what was done. The only place the scrub removes anything.
    ///
    /// It holds the repository's lease from the check to the removal, as every push and delete of
    /// manifests and tags does, so none of them can make a manifest or tag link good in between.
    /// Layer links are written outside that lease (after the blob's data, by uploads and mounts):
    /// a dangling layer link is checked once more after its removal and written back if its blob
    /// has arrived meanwhile.
    async fn repair_link(&self, link: &Link) -> Result<(Verdict, Repair), ContentError> {
        let lease = self.lease_tags().await?;
        let repaired = self.repair_link_leased(link, &lease).await;
        lease.release().await?;
        repaired
    }

    async fn repair_link_leased(
        &self,
        link: &Link,
        lease: &Lease,
    ) -> Result<(Verdict, Repair), ContentError> {
        let verdict = self.check_link(link).await?;
        let Verdict::Bad(_) = &verdict else {
            return Ok((verdict, Repair::None));
        };
        let removal = link.removal(&self.name)?;
        lease.ensure_held()?;
        if let Err(error) = delete_if_exists(self.driver(), &removal).await {
            let repair = Repair::Failed {
                path: removal,
                error: error.to_string(),
            };
            return Ok((verdict, repair));
        }
        let dangling = matches!(verdict, Verdict::Bad(ProblemKind::MissingBlob { .. }));
        if let Link::Layer(digest) = link
            && dangling
            && self.stored_blob(digest).await?.is_some()
            && self.link_blob_or_unlink(digest).await?
        {
            return Ok((Verdict::Fine, Repair::None));
        }
        Ok((verdict, Repair::Removed(removal)))
    }
}
