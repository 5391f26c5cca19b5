//! Resumable writers over S3: content grows into a multipart upload, part by part, and a writer
//! that closes leaves its state in an object beside the key so the next writer (the next `PATCH`
//! of an upload, on any replica) continues it.
//!
//! - Content that never reaches one part (`chunksize`) is written as a plain object at the key,
//!   on close as on commit, as registry:2 does.
//! - Past that, parts of at least `chunksize` go to a multipart upload as they fill. On close, what
//!   is left over (less than S3's 5 MiB minimum part, or anything up to `chunksize` bytes) is kept
//!   in the state object together with the upload's id and its parts, so that `stat` knows the
//!   size and the next writer can continue. On commit the rest becomes the last part and the
//!   upload is completed.
//!
//! The state object is one line of JSON and then the left-over bytes: one object, written in one
//! `PUT`, so no crash can pair a part list with the wrong tail.

use async_trait::async_trait;
use bytes::Bytes;
use object_store::multipart::{MultipartStore, PartId};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use registry_storage::{FileWriter, StorageError, StoragePath};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::keys::object_path;
use crate::{Inner, error};

/// How much of a state object a `stat` reads first: the JSON line of an upload with up to about
/// a thousand parts.
const STATE_HEAD: u64 = 64 << 10;

/// A multipart upload in progress, as kept in the state object's first line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MultipartState {
    /// S3's id of the upload.
    upload: String,
    /// The parts uploaded so far, in order.
    parts: Vec<Part>,
    /// The logical size of the object: the parts and the tail after the JSON line.
    size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Part {
    etag: String,
    size: u64,
}

impl MultipartState {
    /// The logical size of the object the state describes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The upload's id.
    pub(crate) fn upload(&self) -> &str {
        &self.upload
    }

    fn encode(&self, tail: &[Bytes]) -> Result<PutPayload, serde_json::Error> {
        let mut line = serde_json::to_vec(self)?;
        line.push(b'\n');
        Ok(std::iter::once(Bytes::from(line))
            .chain(tail.iter().cloned())
            .collect())
    }

    /// The state and the tail in `object`, the content of a state object.
    fn decode(object: &Bytes) -> Option<(MultipartState, Bytes)> {
        let end = object.iter().position(|&byte| byte == b'\n')?;
        let state: MultipartState = serde_json::from_slice(&object[..end]).ok()?;
        Some((state, object.slice(end + 1..)))
    }
}

/// Reads the state of the writer left open at `path`: `None` when there is none. With `whole`
/// the tail is read too; without, only enough for the JSON line (what `stat` needs).
pub(crate) async fn read_state(
    inner: &Inner,
    path: &StoragePath,
    whole: bool,
) -> Result<Option<(MultipartState, Bytes, std::time::SystemTime)>, StorageError> {
    let location = object_path(&inner.keys.writer_state(path));
    let options = GetOptions {
        range: (!whole).then_some(GetRange::Bounded(0..STATE_HEAD)),
        ..GetOptions::default()
    };
    let result = match inner.store.get_opts(&location, options).await {
        Ok(result) => result,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error::from_store("read writer state", path, error)),
    };
    let modified = result.meta.last_modified.into();
    let mut object = result
        .bytes()
        .await
        .map_err(|error| error::from_store("read writer state", path, error))?;
    if !whole && !object.contains(&b'\n') {
        // A JSON line longer than the first read: read all of it.
        object = inner
            .store
            .get(&location)
            .await
            .map_err(|error| error::from_store("read writer state", path, error))?
            .bytes()
            .await
            .map_err(|error| error::from_store("read writer state", path, error))?;
    }
    let Some((state, tail)) = MultipartState::decode(&object) else {
        return Err(error::corrupt(path, "its writer state cannot be read"));
    };
    Ok(Some((state, tail, modified)))
}

/// A writer for one object; see the module documentation.
pub(crate) struct S3Writer {
    inner: Arc<Inner>,
    path: StoragePath,
    /// The upload the content grows into, once it has outgrown one part.
    multipart: Option<MultipartState>,
    /// Content not yet sent as a part.
    pending: Vec<Bytes>,
    pending_size: u64,
    /// Total size: parts and pending.
    size: u64,
    /// Whether a state object holds this object's earlier state (so commit removes it).
    has_state: bool,
    /// Whether this writer started empty, so an earlier writer's state may linger and must go.
    fresh: bool,
}

impl S3Writer {
    /// A writer that starts empty.
    pub(crate) fn new(inner: Arc<Inner>, path: StoragePath) -> S3Writer {
        S3Writer {
            inner,
            path,
            multipart: None,
            pending: Vec::new(),
            pending_size: 0,
            size: 0,
            has_state: false,
            fresh: true,
        }
    }

    /// A writer that continues what an earlier writer closed at `path`; `NotFound` if none did.
    pub(crate) async fn append(
        inner: Arc<Inner>,
        path: StoragePath,
    ) -> Result<S3Writer, StorageError> {
        if let Some((state, tail, _)) = read_state(&inner, &path, true).await? {
            let tail_size = tail.len() as u64;
            return Ok(S3Writer {
                inner,
                path,
                size: state.size,
                multipart: Some(state),
                pending: vec![tail],
                pending_size: tail_size,
                has_state: true,
                fresh: false,
            });
        }
        let key = object_path(&inner.keys.object(&path));
        let content = match inner.store.get(&key).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|error| error::from_store("read", &path, error))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::NotFound { path });
            }
            Err(error) => return Err(error::from_store("read", &path, error)),
        };
        let size = content.len() as u64;
        Ok(S3Writer {
            inner,
            path,
            multipart: None,
            pending: vec![content],
            pending_size: size,
            size,
            has_state: false,
            fresh: false,
        })
    }

    fn key(&self) -> object_store::path::Path {
        object_path(&self.inner.keys.object(&self.path))
    }

    /// Sends everything pending as the next part, starting the multipart upload if needed.
    async fn send_part(&mut self) -> Result<(), StorageError> {
        let key = self.key();
        let multipart = match &mut self.multipart {
            Some(multipart) => multipart,
            None => {
                let upload = self
                    .inner
                    .store
                    .create_multipart(&key)
                    .await
                    .map_err(|error| {
                        error::from_store("start multipart upload", &self.path, error)
                    })?;
                self.multipart.insert(MultipartState {
                    upload,
                    parts: Vec::new(),
                    size: 0,
                })
            }
        };
        let payload: PutPayload = std::mem::take(&mut self.pending).into_iter().collect();
        let part = self
            .inner
            .store
            .put_part(&key, &multipart.upload, multipart.parts.len(), payload)
            .await
            .map_err(|error| error::from_store("upload part", &self.path, error))?;
        multipart.parts.push(Part {
            etag: part.content_id,
            size: self.pending_size,
        });
        self.pending_size = 0;
        Ok(())
    }

    /// Removes the state an earlier writer left at this path (aborting its upload), if any.
    async fn discard_earlier_state(&self) -> Result<(), StorageError> {
        if let Some((state, _, _)) = read_state(&self.inner, &self.path, false).await? {
            abort_upload(&self.inner, &self.path, &state).await;
            self.delete_state().await?;
        }
        Ok(())
    }

    async fn delete_state(&self) -> Result<(), StorageError> {
        let location = object_path(&self.inner.keys.writer_state(&self.path));
        match self.inner.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error::from_store("delete writer state", &self.path, error)),
        }
    }

    async fn put_plain(&mut self) -> Result<(), StorageError> {
        let payload: PutPayload = std::mem::take(&mut self.pending).into_iter().collect();
        self.pending_size = 0;
        self.inner
            .store
            .put(&self.key(), payload)
            .await
            .map_err(|error| error::from_store("write", &self.path, error))?;
        Ok(())
    }
}

/// Aborts the multipart upload of `state`; a failure only leaves parts for the bucket's lifecycle
/// rule to remove, so it is logged, not returned.
pub(crate) async fn abort_upload(inner: &Inner, path: &StoragePath, state: &MultipartState) {
    let key = object_path(&inner.keys.object(path));
    let upload = state.upload().to_owned();
    if let Err(error) = inner.store.abort_multipart(&key, &upload).await
        && !matches!(error, object_store::Error::NotFound { .. })
    {
        tracing::warn!(%path, %error, "could not abort a multipart upload; its parts stay until the bucket's lifecycle rule removes them");
    }
}

#[async_trait]
impl FileWriter for S3Writer {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.size += chunk.len() as u64;
        self.pending_size += chunk.len() as u64;
        self.pending.push(chunk);
        if self.pending_size >= self.inner.chunk_size {
            self.send_part().await?;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn close(mut self: Box<Self>) -> Result<(), StorageError> {
        if self.multipart.is_none() && self.pending_size < self.inner.chunk_size {
            self.put_plain().await?;
            if self.has_state || self.fresh {
                self.discard_earlier_state().await?;
            }
            return Ok(());
        }
        if self.pending_size >= crate::options::MIN_CHUNK_SIZE {
            self.send_part().await?;
        }
        let Some(mut state) = self.multipart.take() else {
            return Err(error::corrupt(
                &self.path,
                "a writer lost its multipart upload",
            ));
        };
        if self.fresh && !self.has_state {
            // An earlier writer's upload at this path is replaced by this one.
            if let Some((earlier, _, _)) = read_state(&self.inner, &self.path, false).await?
                && earlier.upload != state.upload
            {
                abort_upload(&self.inner, &self.path, &earlier).await;
            }
        }
        state.size = self.size;
        let payload = state
            .encode(&self.pending)
            .map_err(|error| StorageError::Backend {
                driver: error::DRIVER,
                operation: "encode writer state",
                path: self.path.clone(),
                source: Box::new(error),
            })?;
        let location = object_path(&self.inner.keys.writer_state(&self.path));
        self.inner
            .store
            .put(&location, payload)
            .await
            .map_err(|error| error::from_store("write writer state", &self.path, error))?;
        // Content an earlier writer left as a plain object is now part of the upload (or was
        // replaced by it): `stat` must see the upload's size, not the old object.
        match self.inner.store.delete(&self.key()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error::from_store("delete", &self.path, error)),
        }
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        if self.multipart.is_none() {
            self.put_plain().await?;
            if self.has_state || self.fresh {
                self.discard_earlier_state().await?;
            }
            return Ok(());
        }
        if self.pending_size > 0 {
            self.send_part().await?;
        }
        let Some(state) = self.multipart.take() else {
            return Err(error::corrupt(
                &self.path,
                "a writer lost its multipart upload",
            ));
        };
        let parts = state
            .parts
            .iter()
            .map(|part| PartId {
                content_id: part.etag.clone(),
            })
            .collect();
        self.inner
            .store
            .complete_multipart(&self.key(), &state.upload, parts)
            .await
            .map_err(|error| error::from_store("complete multipart upload", &self.path, error))?;
        if self.has_state {
            self.delete_state().await?;
        } else if self.fresh {
            self.discard_earlier_state().await?;
        }
        Ok(())
    }

    async fn cancel(mut self: Box<Self>) -> Result<(), StorageError> {
        if let Some(state) = self.multipart.take() {
            abort_upload(&self.inner, &self.path, &state).await;
        }
        self.discard_earlier_state().await?;
        match self.inner.store.delete(&self.key()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error::from_store("delete", &self.path, error)),
        }
    }

    async fn abandon(mut self: Box<Self>) -> Result<(), StorageError> {
        // A fresh writer's multipart upload is its own; an appending writer's belongs to the
        // earlier writer whose state (still naming only its own parts) stays.
        if !self.has_state
            && let Some(state) = self.multipart.take()
        {
            abort_upload(&self.inner, &self.path, &state).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn a_state_object_reads_back_with_its_tail() {
        let state = MultipartState {
            upload: "id-1".to_owned(),
            parts: vec![Part {
                etag: "\"e1\"".to_owned(),
                size: 5 << 20,
            }],
            size: (5 << 20) + 6,
        };
        let payload = state
            .encode(&[Bytes::from_static(b"ab\nc"), Bytes::from_static(b"de")])
            .unwrap_or_else(|error| panic!("{error}"));
        let mut object = BytesMut::new();
        for chunk in &payload {
            object.extend_from_slice(chunk);
        }
        let (decoded, tail) = MultipartState::decode(&object.freeze())
            .unwrap_or_else(|| panic!("the state did not decode"));
        assert_eq!(decoded.upload, "id-1");
        assert_eq!(decoded.size, (5 << 20) + 6);
        assert_eq!(decoded.parts.len(), 1);
        assert_eq!(tail, Bytes::from_static(b"ab\ncde"));
    }
}
