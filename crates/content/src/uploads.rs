//! Upload sessions: a blob arriving in one or more pieces, hashed as it streams, becoming a blob
//! only once its digest is verified.
//!
//! A session is a directory in the driver (`_uploads/<id>/`), so it survives a restart and any
//! registryd process over the same store can continue it. After each piece the running hash is
//! saved beside the data, so continuing a session never re-reads what was already received unless
//! that saved state is missing.
//!
//! A blob that arrives whole in one request (a monolithic upload, or a completion of a session
//! that holds nothing yet) skips the session's data: it is written straight to the blob's place
//! and made final only once its digest is verified ([`Repository::put_blob`]).

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use registry_model::{Digest, DigestAlgorithm, Digester};
use registry_storage::{FileWriter, StorageError, StoragePath};

use crate::hashing::BackgroundDigester;
use crate::lease::{Busy, Kind, Lease};
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

/// An upload session opened by a request for one more piece of data: the data's writer, and the
/// lease that makes this request the session's only user (none for a session no other request
/// can know of).
///
/// Dropped while the writer is still open (the request was cancelled halfway: its connection
/// closed, the server stopped), it closes the writer and only then releases the lease, in the
/// background: the lease is never free while this request's writes may still land.
struct OpenSession {
    writer: Option<Box<dyn FileWriter>>,
    lease: Option<Lease>,
    /// The size before this piece.
    start: u64,
}

impl OpenSession {
    /// `Ok` while this request may still write to the session.
    fn ensure_held(&self) -> Result<(), ContentError> {
        self.lease.as_ref().map_or(Ok(()), Lease::ensure_held)
    }

    /// Ends the request's use of the session, which goes on for later requests.
    async fn release(mut self) -> Result<(), ContentError> {
        if let Some(writer) = self.writer.take() {
            writer.close().await?;
        }
        match self.lease.take() {
            Some(lease) => lease.release().await,
            None => Ok(()),
        }
    }

    /// Ends the request's use of a session that was removed, lease and all.
    fn forget(mut self) {
        if let Some(lease) = self.lease.take() {
            lease.forget();
        }
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        let Some(writer) = self.writer.take() else {
            // Nothing in flight: the lease, if any, releases itself as it drops.
            return;
        };
        let lease = self.lease.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // Best effort: what fails here is found by the next request, which reads the
                // session's true size; a lease not released expires.
                let _ = writer.close().await;
                if let Some(lease) = lease {
                    let _ = lease.release().await;
                }
            });
        }
    }
}

/// How a piece of an upload ended.
enum PieceEnd {
    /// More pieces may follow: keep the data for a later writer.
    Close,
    /// This was the last piece: make the data final.
    Commit,
}

/// What leasing an upload session to a request found.
enum Leased {
    /// The session, leased to this request, and the size of its data.
    Session(Lease, u64),
    /// An earlier request's completion was cut short after the data had become the blob
    /// `digest`; that completion is now finished and the session gone.
    Completed(Digest),
}

/// What [`Repository::finish_interrupted_completion`] found.
enum Unfinished {
    /// No completion to finish: the session goes on with this many bytes.
    Size(u64),
    /// A completion had made the data the blob `digest`; it is finished now.
    Completed(Digest),
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
        metrics::counter!(UPLOADS_STARTED).increment(1);
        Ok(UploadStatus { id, size: 0 })
    }

    /// Where the session `id` stands: how many bytes it holds, read from storage.
    ///
    /// A session whose completion was cut short (a crash) after its data became the blob is
    /// unknown, as it would be had the completion finished, and the blob is linked into the
    /// repository here so that the client, told to start over, finds it already there. One cut
    /// short before its data moved reports the data it holds, from which the client resumes.
    pub async fn upload_status(&self, id: &UploadId) -> Result<UploadStatus, ContentError> {
        self.ensure_upload_exists(id).await?;
        let size = match self.upload_size(id).await? {
            Some(size) => size,
            None => match self.moved_data(id).await? {
                None => 0,
                Some(became) => return self.status_after_move(id, became).await,
            },
        };
        Ok(UploadStatus {
            id: id.clone(),
            size,
        })
    }

    /// [`Repository::upload_status`] of a session whose data a completion moved away, to the blob
    /// `became` when its saved hash restores.
    async fn status_after_move(
        &self,
        id: &UploadId,
        became: Option<Digest>,
    ) -> Result<UploadStatus, ContentError> {
        match self.lease_session(id).await {
            // Data arrived in between: the session goes on.
            Ok(Leased::Session(lease, size)) => {
                lease.release().await?;
                Ok(UploadStatus {
                    id: id.clone(),
                    size,
                })
            }
            // The cut-short completion is finished now.
            Ok(Leased::Completed(_)) => Err(ContentError::upload_unknown(id)),
            // Held by the completing request, or by one a crash cut off until its lease expires;
            // whichever it is, the next request to lease the session removes it. Linking the blob
            // needs no lease: the blob is named by its content.
            Err(ContentError::UploadInUse { .. }) => {
                if let Some(digest) = became
                    && self.stored_blob(&digest).await?.is_some()
                {
                    self.link_blob_or_unlink(&digest).await?;
                }
                Err(ContentError::upload_unknown(id))
            }
            Err(error) => Err(error),
        }
    }

    /// Appends `body` to the session `id`. With `start`, the piece must begin exactly where the
    /// upload ends (chunks arrive in order), else [`ContentError::UploadOutOfOrder`].
    ///
    /// One request at a time may use a session, in any process over the store: while another
    /// holds it this fails at once with [`ContentError::UploadInUse`], before reading `body`.
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
        let (lease, size) = match self.lease_for_piece(id, start).await? {
            Leased::Session(lease, size) => (lease, size),
            Leased::Completed(_) => return Err(ContentError::upload_unknown(id)),
        };
        let (mut session, digester) = self.open_data(id, size, Some(lease)).await?;
        let written = self
            .write_piece(id, &mut session, digester, body, PieceEnd::Close)
            .await;
        session.release().await?;
        let (_, size) = written?;
        Ok(UploadStatus {
            id: id.clone(),
            size,
        })
    }

    /// Appends the final `body` (possibly empty) to the session `id`, checks the whole upload
    /// hashes to `digest`, and makes it the blob `digest` of this repository. `start` is checked
    /// as for [`Repository::append_upload`], and the session is used exclusively as there.
    ///
    /// On a digest mismatch the session is cancelled and nothing is stored. Only bytes this
    /// request hashed become the blob: the data's stored size is checked against them before it
    /// moves. A completion cut short by a crash is finished by the next request on the session: a
    /// repeated completion with the same digest then succeeds.
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
        let (lease, size) = match self.lease_for_piece(id, start).await? {
            Leased::Session(lease, size) => (lease, size),
            Leased::Completed(completed) if &completed == digest => {
                return self.blob(digest).await;
            }
            Leased::Completed(_) => return Err(ContentError::upload_unknown(id)),
        };
        if size == 0 {
            // The whole blob is in this request: straight to its place.
            let stored = self.store_blob(id, digest, body, Some(&lease)).await;
            match &stored {
                Ok(_)
                | Err(ContentError::DigestMismatch { .. } | ContentError::UploadLost { .. }) => {
                    self.discard_upload(id).await?;
                    lease.forget();
                    upload_ended(if stored.is_ok() {
                        "completed"
                    } else {
                        "failed"
                    });
                }
                Err(_) => lease.release().await?,
            }
            return stored;
        }
        let (mut session, digester) = self.open_data(id, size, Some(lease)).await?;
        let completed = self
            .finish_upload(id, digest, &mut session, digester, body)
            .await;
        match completed {
            // The session, lease and all, is gone.
            Ok(_) => {
                session.forget();
                upload_ended("completed");
            }
            Err(ContentError::DigestMismatch { .. }) => {
                session.forget();
                upload_ended("failed");
            }
            Err(_) => session.release().await?,
        }
        let blob = completed?;
        Ok(blob)
    }

    /// Stores `body` as the blob `digest` in one step (a monolithic upload). No session is kept:
    /// a monolithic upload cannot be resumed, so one that fails leaves nothing behind.
    pub async fn put_blob<S, E>(&self, digest: &Digest, body: S) -> Result<Blob, ContentError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BodyError>,
    {
        metrics::counter!(UPLOADS_STARTED).increment(1);
        let result = self
            .store_blob(&UploadId::random(), digest, body, None)
            .await;
        upload_ended(if result.is_ok() {
            "completed"
        } else {
            "failed"
        });
        result
    }

    /// Streams `body` straight into the place of the blob `digest`, where it appears only once
    /// it hashed to `digest`, and links it into this repository: content that arrives whole in
    /// one request (a monolithic upload, or the completion of a session holding nothing yet) is
    /// written once, rather than into the session and then moved. `lease`, the session's when
    /// there is one, is checked before each chunk and before the content is made final.
    ///
    /// When the body fails, the lease is lost or the digest does not match, the writer is
    /// abandoned and nothing changes. A blob stored already is claimed, as
    /// [`Repository::link_blob`] does, and this copy abandoned; if a collection deletes the
    /// stored one as it is claimed, this copy takes its place. `id` names the upload in the error
    /// when a collection deletes a blob this upload has just stored, before it is linked.
    async fn store_blob<S, E>(
        &self,
        id: &UploadId,
        digest: &Digest,
        body: S,
        lease: Option<&Lease>,
    ) -> Result<Blob, ContentError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BodyError>,
    {
        let held = || lease.map_or(Ok(()), Lease::ensure_held);
        let blob_path = layout::blob_data(digest)?;
        let mut writer = self.driver().writer(&blob_path, false).await?;
        let mut hashing = BackgroundDigester::new(Digester::new(digest.algorithm()));
        let mut body = std::pin::pin!(body);
        let streamed = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|error| ContentError::Body(error.into()))?;
                held()?;
                writer.write(chunk.clone()).await?;
                hashing.update(chunk).await?;
            }
            Ok(())
        }
        .await;
        let hashed = hashing.finish().await;
        let verified = match (streamed, hashed) {
            (Ok(()), Ok(digester)) => {
                let actual = digester.finalize();
                if &actual == digest {
                    Ok(())
                } else {
                    Err(ContentError::DigestMismatch {
                        expected: digest.clone(),
                        actual,
                    })
                }
            }
            (Err(error), _) | (Ok(()), Err(error)) => Err(error),
        };
        let size = writer.size();
        let stored_already = match verified {
            Ok(()) => exists(self.driver(), &blob_path).await,
            Err(error) => Err(error),
        }
        .and_then(|stored| held().map(|()| stored));
        let stored_already = match stored_already {
            Ok(stored) => stored,
            Err(error) => {
                // The error that matters is the one being returned; what an abandoned writer
                // leaves behind is garbage no listing shows.
                let _ = writer.abandon().await;
                return Err(error);
            }
        };
        if !stored_already {
            writer.commit().await?;
            if !self.link_blob(digest).await? {
                // A collection with no grace period deleted the data between its writing and
                // its link: nothing is left to link. Take the link back; the client uploads
                // again.
                delete_if_exists(self.driver(), &layout::layer_link_dir(&self.name, digest)?)
                    .await?;
                return Err(ContentError::UploadLost { id: id.to_string() });
            }
        } else if self.link_blob(digest).await? {
            // The stored copy is claimed: this one is redundant (and garbage if not removed).
            let _ = writer.abandon().await;
        } else if let Err(error) = writer.commit().await {
            // The stored copy was deleted by a collection as it was claimed, and this one could
            // not take its place: take the link back.
            delete_if_exists(self.driver(), &layout::layer_link_dir(&self.name, digest)?).await?;
            return Err(error.into());
        }
        self.just_stored(digest, size)
    }

    /// Cancels the session `id` and removes everything it received; [`ContentError::UploadInUse`]
    /// while another request uses it.
    pub async fn cancel_upload(&self, id: &UploadId) -> Result<(), ContentError> {
        match self.lease_session(id).await? {
            Leased::Session(lease, _) => {
                self.discard_upload(id).await?;
                lease.forget();
                upload_ended("cancelled");
                Ok(())
            }
            Leased::Completed(_) => Err(ContentError::upload_unknown(id)),
        }
    }

    async fn ensure_upload_exists(&self, id: &UploadId) -> Result<(), ContentError> {
        if exists(self.driver(), &layout::upload_started_at(&self.name, id)?).await? {
            Ok(())
        } else {
            Err(ContentError::upload_unknown(id))
        }
    }

    /// The size of the upload's data; `None` when it has no data file (nothing received yet, or
    /// the data already became a blob).
    async fn upload_size(&self, id: &UploadId) -> Result<Option<u64>, ContentError> {
        match self
            .driver()
            .stat(&layout::upload_data(&self.name, id)?)
            .await
        {
            Ok(info) => Ok(Some(info.size)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// [`Repository::lease_session`] for a piece that must begin at `start` when given, else
    /// [`ContentError::UploadOutOfOrder`].
    async fn lease_for_piece(
        &self,
        id: &UploadId,
        start: Option<u64>,
    ) -> Result<Leased, ContentError> {
        match self.lease_session(id).await? {
            Leased::Session(lease, size) => {
                if let Some(start) = start
                    && start != size
                {
                    lease.release().await?;
                    return Err(ContentError::UploadOutOfOrder { start, size });
                }
                Ok(Leased::Session(lease, size))
            }
            completed => Ok(completed),
        }
    }

    /// Leases the session `id` to this request, or fails at once with
    /// [`ContentError::UploadInUse`]; then finishes a completion an earlier request left cut short.
    async fn lease_session(&self, id: &UploadId) -> Result<Leased, ContentError> {
        // Checked first so that a request naming no session writes nothing.
        self.ensure_upload_exists(id).await?;
        let lease_path = layout::upload_lease(&self.name, id)?;
        let term = self.lease_term();
        let lease =
            match Lease::try_acquire(&self.store.driver, &lease_path, term, Kind::Removed).await? {
                Ok(lease) => lease,
                Err(Busy { retry_after }) => {
                    return Err(ContentError::UploadInUse {
                        id: id.to_string(),
                        retry_after,
                    });
                }
            };
        // Checked again under the lease, with one listing of the session: a cancel or
        // completion that came in between made the lease a lone object in a session that is
        // gone. Remove it.
        let held = match self
            .driver()
            .list(&layout::upload_dir(&self.name, id)?)
            .await
        {
            Ok(entries) => entries,
            Err(StorageError::NotFound { .. }) => Vec::new(),
            Err(error) => {
                lease.release().await?;
                return Err(error.into());
            }
        };
        if !held.contains(&layout::upload_started_at(&self.name, id)?) {
            self.driver().delete_object(&lease_path).await?;
            lease.forget();
            return Err(ContentError::upload_unknown(id));
        }
        match self.finish_interrupted_completion(id, &held).await {
            Ok(Unfinished::Size(size)) => Ok(Leased::Session(lease, size)),
            Ok(Unfinished::Completed(digest)) => {
                lease.forget();
                Ok(Leased::Completed(digest))
            }
            Err(error) => {
                lease.release().await?;
                Err(error)
            }
        }
    }

    /// The session's running hash after its `size` bytes, and the session opened for a writer
    /// appending to them under `lease`. A failure releases the lease.
    async fn open_data(
        &self,
        id: &UploadId,
        size: u64,
        lease: Option<Lease>,
    ) -> Result<(OpenSession, Digester), ContentError> {
        let mut session = OpenSession {
            writer: None,
            lease,
            start: size,
        };
        let opened = async {
            let digester = match self.load_hash_state(id, size).await? {
                Some(digester) => digester,
                None if size == 0 => Digester::new(DigestAlgorithm::Sha256),
                None => self.rehash_upload(id, DigestAlgorithm::Sha256).await?,
            };
            let writer = self
                .driver()
                .writer(&layout::upload_data(&self.name, id)?, size > 0)
                .await?;
            Ok::<_, ContentError>((writer, digester))
        };
        match opened.await {
            Ok((writer, digester)) => {
                session.writer = Some(writer);
                Ok((session, digester))
            }
            Err(error) => {
                session.release().await?;
                Err(error)
            }
        }
    }

    /// Writes the last piece, verifies the digest and turns the data into the blob `digest`.
    ///
    /// The hash of the data is saved before it moves, so that a crash anywhere in between is
    /// finished by the next request ([`Repository::finish_interrupted_completion`]) rather than
    /// leaving a session that seems to hold nothing.
    async fn finish_upload<S, E>(
        &self,
        id: &UploadId,
        digest: &Digest,
        session: &mut OpenSession,
        digester: Digester,
        body: S,
    ) -> Result<Blob, ContentError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BodyError>,
    {
        let (digester, size) = self
            .write_piece(id, session, digester, body, PieceEnd::Commit)
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
        let stored = self.upload_size(id).await?.unwrap_or(0);
        if stored != size {
            // Something other than this request's writer changed the data since it was opened:
            // what would move is not what was hashed.
            return Err(ContentError::Corrupt {
                path: data.to_string(),
                reason: format!("the upload holds {stored} bytes but {size} were hashed"),
            });
        }
        let blob_path = layout::blob_data(digest)?;
        // Content-addressed: when the blob is already stored, this upload's copy is redundant,
        // unless garbage collection deletes the stored one meanwhile.
        let moved = !exists(self.driver(), &blob_path).await?;
        if moved {
            session.ensure_held()?;
            self.driver().move_object(&data, &blob_path).await?;
        }
        if !self.link_blob(digest).await? {
            if moved {
                // A collection with no grace period deleted the data between its move and its
                // link: nothing is left to link. Take the link back and end the session; the
                // client uploads again.
                delete_if_exists(self.driver(), &layout::layer_link_dir(&self.name, digest)?)
                    .await?;
                self.discard_upload(id).await?;
                return Err(ContentError::UploadLost { id: id.to_string() });
            }
            session.ensure_held()?;
            self.driver().move_object(&data, &blob_path).await?;
        }
        self.discard_upload(id).await?;
        self.just_stored(digest, size)
    }

    /// What a session without a data file lost it to: `Some` when a completion moved the data
    /// away (the only thing that removes a session's data but not the session), with the digest
    /// the data hashed to when the saved hash restores; `None` when the session never held data.
    ///
    /// A session's running hash is saved after every piece, before any move, so a session with
    /// no data but a saved hash of a non-empty prefix had its data moved by a completion.
    async fn moved_data(&self, id: &UploadId) -> Result<Option<Option<Digest>>, ContentError> {
        // The common case, a session that has received nothing yet: one look.
        if !exists(
            self.driver(),
            &layout::upload_hash_states_root(&self.name, id)?,
        )
        .await?
        {
            return Ok(None);
        }
        for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            let states = layout::upload_hash_states(&self.name, id, algorithm)?;
            let entries = match self.driver().list(&states).await {
                Ok(entries) => entries,
                Err(StorageError::NotFound { .. }) => continue,
                Err(error) => return Err(error.into()),
            };
            let Some(hashed) = entries
                .iter()
                .filter_map(|entry| entry.file_name()?.parse::<u64>().ok())
                .max()
                .filter(|&hashed| hashed > 0)
            else {
                continue;
            };
            let digest = self
                .load_hash_state(id, hashed)
                .await?
                .map(|digester| digester.finalize());
            return Ok(Some(digest));
        }
        Ok(None)
    }

    /// Finishes what an earlier completion of the session left undone when a crash cut it short
    /// after the data moved: when the data became the blob `digest`, the blob is linked now and
    /// the session removed. A session whose data is gone without a blob to show for it is removed
    /// and unknown. Otherwise, the size of the session's data.
    ///
    /// `held` lists the session's directory: a session that has received nothing yet (no data,
    /// no saved hash) needs no other look.
    async fn finish_interrupted_completion(
        &self,
        id: &UploadId,
        held: &[StoragePath],
    ) -> Result<Unfinished, ContentError> {
        if held.contains(&layout::upload_data(&self.name, id)?)
            && let Some(size) = self.upload_size(id).await?
        {
            return Ok(Unfinished::Size(size));
        }
        if !held.contains(&layout::upload_hash_states_root(&self.name, id)?) {
            return Ok(Unfinished::Size(0));
        }
        match self.moved_data(id).await? {
            None => Ok(Unfinished::Size(0)),
            Some(Some(digest))
                if self.stored_blob(&digest).await?.is_some()
                    && self.link_blob_or_unlink(&digest).await? =>
            {
                self.discard_upload(id).await?;
                Ok(Unfinished::Completed(digest))
            }
            // Neither the data nor a blob it became: nothing is left to continue or to finish.
            Some(_) => {
                self.discard_upload(id).await?;
                Err(ContentError::upload_unknown(id))
            }
        }
    }

    /// Streams `body` into the session, hashing as it goes, and closes or commits the writer;
    /// returns the hash and the new size.
    ///
    /// Each chunk is written only while the session's lease is still held; once it is not, the
    /// writer is dropped without flushing (another request may own the session now) and the piece
    /// fails.
    async fn write_piece<S, E>(
        &self,
        id: &UploadId,
        session: &mut OpenSession,
        digester: Digester,
        body: S,
        end: PieceEnd,
    ) -> Result<(Digester, u64), ContentError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BodyError>,
    {
        let start = session.start;
        let mut hashing = BackgroundDigester::new(digester);
        let mut body = std::pin::pin!(body);
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    failure = Some(ContentError::Body(error.into()));
                    break;
                }
            };
            if let Err(lost) = session.ensure_held() {
                session.writer = None;
                return Err(lost);
            }
            let Some(writer) = session.writer.as_mut() else {
                break;
            };
            if let Err(error) = writer.write(chunk.clone()).await {
                failure = Some(ContentError::from(error));
                break;
            }
            if let Err(error) = hashing.update(chunk).await {
                failure = Some(error);
                break;
            }
        }
        let (digester, failure) = match hashing.finish().await {
            Ok(digester) => (Some(digester), failure),
            Err(error) => (None, failure.or(Some(error))),
        };
        if let Err(lost) = session.ensure_held() {
            session.writer = None;
            return Err(lost);
        }
        let Some(writer) = session.writer.take() else {
            return Err(
                failure.unwrap_or_else(|| ContentError::Body("the upload's writer is gone".into()))
            );
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
                // a hash of it, the next piece hashes the data again. When even that fails (a full
                // disk), the size on storage is whatever got there, and the next piece hashes it.
                let closed = writer.close().await;
                if let (Ok(()), Some(digester)) = (closed, digester) {
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
        // A hash of other than exactly the stored bytes would be restored for data it does not
        // describe.
        if size == previous || digester.bytes_hashed() != size {
            return Ok(());
        }
        self.save_hash_state(id, digester).await?;
        if previous == 0 && digester.algorithm() == DigestAlgorithm::Sha256 {
            // Only other algorithms save a state before the first byte (`start_upload`).
            return Ok(());
        }
        let stale = layout::upload_hash_state(&self.name, id, digester.algorithm(), previous)?;
        self.driver().delete_object(&stale).await?;
        Ok(())
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
            if size == 0 && algorithm == DigestAlgorithm::Sha256 {
                // Nothing saves a sha256 state of no bytes: that is a new digester.
                continue;
            }
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

    /// Hashes everything the upload holds, reading it back from storage and hashing on the
    /// blocking pool.
    async fn rehash_upload(
        &self,
        id: &UploadId,
        algorithm: DigestAlgorithm,
    ) -> Result<Digester, ContentError> {
        let mut hashing = BackgroundDigester::new(Digester::new(algorithm));
        let data = layout::upload_data(&self.name, id)?;
        let mut stream = match self.driver().reader(&data, 0, None).await {
            Ok(stream) => stream,
            Err(StorageError::NotFound { .. }) => return hashing.finish().await,
            Err(error) => return Err(error.into()),
        };
        while let Some(chunk) = stream.next().await {
            hashing.update(chunk?).await?;
        }
        hashing.finish().await
    }

    /// Removes the session: first the file that makes it exist, so that a crash halfway leaves an
    /// unknown session rather than one that seems to hold nothing.
    async fn discard_upload(&self, id: &UploadId) -> Result<(), ContentError> {
        self.driver()
            .delete_object(&layout::upload_started_at(&self.name, id)?)
            .await?;
        delete_if_exists(self.driver(), &layout::upload_dir(&self.name, id)?).await
    }

    fn lease_term(&self) -> std::time::Duration {
        self.store.options.lease_term
    }
}

/// The counter of upload sessions started (monolithic uploads included).
pub const UPLOADS_STARTED: &str = "registry_uploads_started_total";
/// The counter of upload sessions ended, by `outcome`: `completed`, `failed` (a wrong digest or
/// a failed monolithic upload), `cancelled` or `purged`. Summed over every instance, started
/// minus ended is the sessions open (until a restart resets the counters).
pub const UPLOADS_ENDED: &str = "registry_uploads_ended_total";

/// Counts one session ended with `outcome`.
pub(crate) fn upload_ended(outcome: &'static str) {
    metrics::counter!(UPLOADS_ENDED, "outcome" => outcome).increment(1);
}
