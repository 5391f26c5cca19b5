//! Upload sessions: a blob arriving in one or more pieces, hashed as it streams, becoming a blob
//! only once its digest is verified.
//!
//! A session is a directory in the driver (`_uploads/<id>/`), so it survives a restart and any
//! registryd process over the same store can continue it. After each piece the running hash is
//! saved beside the data, so continuing a session never re-reads what was already received unless
//! that saved state is missing.

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use registry_model::{Digest, DigestAlgorithm, Digester};
use registry_storage::{FileWriter, StorageError};

use crate::hashing::BackgroundDigester;
use crate::links::{delete_if_exists, exists};
use crate::{Blob, BodyError, ContentError, Repository, layout, time};

/// The id of an upload session.
///
/// registryd makes UUIDs; any 1 to 64 characters of `[A-Za-z0-9_-]` are accepted so that
/// sessions started by another registry over the same storage can be continued.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    /// A new random id.
    pub fn random() -> UploadId {
        UploadId(uuid::Uuid::new_v4().to_string())
    }

    /// `id` as an upload id, or `None` when it cannot be one.
    pub fn parse(id: &str) -> Option<UploadId> {
        let valid = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| UploadId(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an upload session stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    /// The session's id.
    pub id: UploadId,
    /// How many bytes it holds.
    pub size: u64,
}

/// An upload session opened for one more piece of data.
struct OpenSession {
    writer: Box<dyn FileWriter>,
    digester: Digester,
    /// The size before this piece.
    start: u64,
}

/// How a piece of an upload ended.
enum PieceEnd {
    /// More pieces may follow: keep the data for a later writer.
    Close,
    /// This was the last piece: make the data final.
    Commit,
}

impl Repository {
    /// Starts an upload session whose content will be hashed with `algorithm` as it arrives
    /// (the `digest-algorithm` upload parameter of the distribution spec; sha256 by default).
    pub async fn start_upload(
        &self,
        algorithm: DigestAlgorithm,
    ) -> Result<UploadStatus, ContentError> {
        let id = UploadId::random();
        let started_at = time::rfc3339(SystemTime::now());
        self.driver()
            .put_content(
                &layout::upload_started_at(&self.name, &id)?,
                Bytes::from(started_at),
            )
            .await?;
        if algorithm != DigestAlgorithm::Sha256 {
            self.save_hash_state(&id, &Digester::new(algorithm)).await?;
        }
        Ok(UploadStatus { id, size: 0 })
    }

    /// Where the session `id` stands.
    pub async fn upload_status(&self, id: &UploadId) -> Result<UploadStatus, ContentError> {
        self.ensure_upload_exists(id).await?;
        Ok(UploadStatus {
            id: id.clone(),
            size: self.upload_size(id).await?,
        })
    }

    /// Appends `body` to the session `id`. With `start`, the piece must begin exactly where the
    /// upload ends (chunks arrive in order), else [`ContentError::UploadOutOfOrder`].
    ///
    /// If `body` fails midway (the client went away), what arrived is kept and the session can be
    /// continued from its new size, which [`Repository::upload_status`] reports.
    pub async fn append_upload<S, E>(
        &self,
        id: &UploadId,
        start: Option<u64>,
        body: S,
    ) -> Result<UploadStatus, ContentError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BodyError>,
    {
        let session = self.open_session(id, start).await?;
        let (_, size) = self.write_piece(id, session, body, PieceEnd::Close).await?;
        Ok(UploadStatus {
            id: id.clone(),
            size,
        })
    }

    /// Appends the final `body` (possibly empty) to the session `id`, checks the whole upload
    /// hashes to `digest`, and makes it the blob `digest` of this repository. `start` is checked
    /// as for [`Repository::append_upload`].
    ///
    /// On a digest mismatch the session is cancelled and nothing is stored.
    pub async fn complete_upload<S, E>(
        &self,
        id: &UploadId,
        digest: &Digest,
        start: Option<u64>,
        body: S,
    ) -> Result<Blob, ContentError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BodyError>,
    {
        let session = self.open_session(id, start).await?;
        let (digester, _) = self
            .write_piece(id, session, body, PieceEnd::Commit)
            .await?;
        let actual = if digester.algorithm() == digest.algorithm() {
            digester.finalize()
        } else {
            self.rehash_upload(id, digest.algorithm()).await?.finalize()
        };
        if &actual != digest {
            self.discard_upload(id).await?;
            return Err(ContentError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let data = layout::upload_data(&self.name, id)?;
        let blob_path = layout::blob_data(digest)?;
        // Content-addressed: when the blob is already stored, this upload's copy is redundant.
        if !exists(self.driver(), &blob_path).await? {
            self.driver().move_object(&data, &blob_path).await?;
        }
        self.link_blob(digest).await?;
        self.discard_upload(id).await?;
        self.blob(digest).await
    }

    /// Stores `body` as the blob `digest` in one step (a monolithic upload).
    pub async fn put_blob<S, E>(&self, digest: &Digest, body: S) -> Result<Blob, ContentError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BodyError>,
    {
        let status = self.start_upload(digest.algorithm()).await?;
        let result = self.complete_upload(&status.id, digest, None, body).await;
        if result.is_err() {
            // A monolithic upload cannot be resumed by the client: never leave it behind.
            self.discard_upload(&status.id).await?;
        }
        result
    }

    /// Cancels the session `id` and removes everything it received.
    pub async fn cancel_upload(&self, id: &UploadId) -> Result<(), ContentError> {
        self.ensure_upload_exists(id).await?;
        self.discard_upload(id).await
    }

    async fn ensure_upload_exists(&self, id: &UploadId) -> Result<(), ContentError> {
        if exists(self.driver(), &layout::upload_started_at(&self.name, id)?).await? {
            Ok(())
        } else {
            Err(ContentError::upload_unknown(id))
        }
    }

    async fn upload_size(&self, id: &UploadId) -> Result<u64, ContentError> {
        match self
            .driver()
            .stat(&layout::upload_data(&self.name, id)?)
            .await
        {
            Ok(info) => Ok(info.size),
            Err(StorageError::NotFound { .. }) => Ok(0),
            Err(error) => Err(error.into()),
        }
    }

    async fn open_session(
        &self,
        id: &UploadId,
        start: Option<u64>,
    ) -> Result<OpenSession, ContentError> {
        self.ensure_upload_exists(id).await?;
        let size = self.upload_size(id).await?;
        if let Some(start) = start
            && start != size
        {
            return Err(ContentError::UploadOutOfOrder { start, size });
        }
        let digester = match self.load_hash_state(id, size).await? {
            Some(digester) => digester,
            None if size == 0 => Digester::new(DigestAlgorithm::Sha256),
            None => self.rehash_upload(id, DigestAlgorithm::Sha256).await?,
        };
        let writer = self
            .driver()
            .writer(&layout::upload_data(&self.name, id)?, size > 0)
            .await?;
        Ok(OpenSession {
            writer,
            digester,
            start: size,
        })
    }

    /// Streams `body` into the session, hashing as it goes; returns the hash and the new size.
    async fn write_piece<S, E>(
        &self,
        id: &UploadId,
        session: OpenSession,
        body: S,
        end: PieceEnd,
    ) -> Result<(Digester, u64), ContentError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BodyError>,
    {
        let OpenSession {
            mut writer,
            digester,
            start,
        } = session;
        let mut hashing = BackgroundDigester::new(digester);
        let mut body = std::pin::pin!(body);
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    if let Err(error) = hashing.update(chunk.clone()).await {
                        failure = Some(error);
                        break;
                    }
                    if let Err(error) = writer.write(chunk).await {
                        failure = Some(ContentError::from(error));
                        break;
                    }
                }
                Err(error) => {
                    failure = Some(ContentError::Body(error.into()));
                    break;
                }
            }
        }
        let (digester, failure) = match hashing.finish().await {
            Ok(digester) => (Some(digester), failure),
            Err(error) => (None, failure.or(Some(error))),
        };
        let size = writer.size();
        match (digester, failure, end) {
            (Some(digester), None, end) => {
                match end {
                    PieceEnd::Commit => writer.commit().await?,
                    PieceEnd::Close => writer.close().await?,
                }
                self.record_hash_state(id, &digester, start, size).await?;
                Ok((digester, size))
            }
            (digester, failure, _) => {
                // Keep what arrived so the client can resume from the size it reads back; without
                // a hash of it, the next piece hashes the data again.
                writer.close().await?;
                if let Some(digester) = digester {
                    self.record_hash_state(id, &digester, start, size).await?;
                }
                Err(failure
                    .unwrap_or_else(|| ContentError::Body("hashing the upload failed".into())))
            }
        }
    }

    /// Saves the hash after `size` bytes and drops the state saved at `previous`.
    async fn record_hash_state(
        &self,
        id: &UploadId,
        digester: &Digester,
        previous: u64,
        size: u64,
    ) -> Result<(), ContentError> {
        if size == previous {
            return Ok(());
        }
        self.save_hash_state(id, digester).await?;
        let stale = layout::upload_hash_state(&self.name, id, digester.algorithm(), previous)?;
        delete_if_exists(self.driver(), &stale).await
    }

    async fn save_hash_state(
        &self,
        id: &UploadId,
        digester: &Digester,
    ) -> Result<(), ContentError> {
        let path = layout::upload_hash_state(
            &self.name,
            id,
            digester.algorithm(),
            digester.bytes_hashed(),
        )?;
        self.driver()
            .put_content(&path, Bytes::from(digester.save_state()))
            .await?;
        Ok(())
    }

    /// The saved hash of the first `size` bytes of the upload, if any algorithm has one.
    async fn load_hash_state(
        &self,
        id: &UploadId,
        size: u64,
    ) -> Result<Option<Digester>, ContentError> {
        for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            let path = layout::upload_hash_state(&self.name, id, algorithm, size)?;
            match self.driver().get_content(&path).await {
                Ok(state) => {
                    // A state that does not restore is only a lost shortcut: hash the data again.
                    if let Ok(digester) = Digester::restore_state(&state)
                        && digester.bytes_hashed() == size
                    {
                        return Ok(Some(digester));
                    }
                }
                Err(StorageError::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(None)
    }

    /// Hashes everything the upload holds, reading it back from storage.
    async fn rehash_upload(
        &self,
        id: &UploadId,
        algorithm: DigestAlgorithm,
    ) -> Result<Digester, ContentError> {
        let mut digester = Digester::new(algorithm);
        let data = layout::upload_data(&self.name, id)?;
        let mut stream = match self.driver().reader(&data, 0, None).await {
            Ok(stream) => stream,
            Err(StorageError::NotFound { .. }) => return Ok(digester),
            Err(error) => return Err(error.into()),
        };
        while let Some(chunk) = stream.next().await {
            digester.update(&chunk?);
        }
        Ok(digester)
    }

    async fn discard_upload(&self, id: &UploadId) -> Result<(), ContentError> {
        delete_if_exists(self.driver(), &layout::upload_dir(&self.name, id)?).await
    }
}
