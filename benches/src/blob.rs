//! Deterministic pseudo-random blobs, generated chunk by chunk and hashed as they are produced,
//! so a benchmark can send gigabytes without holding them.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use sha2::{Digest as _, Sha256};

/// Size of the chunks a blob is generated and sent in.
pub const GENERATE_CHUNK: usize = 1 << 20;

/// xorshift64*: fast, deterministic, and incompressible enough that no layer of the stack can
/// cheat by compressing.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator; equal seeds give equal streams. Seed 0 is mapped to a non-zero state.
    pub fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A blob being produced: `size` pseudo-random bytes from `seed`, hashed as they are handed out.
/// Shared (behind [`SharedBlob`]) by the request bodies that carry consecutive parts of it.
#[derive(Debug)]
pub struct BlobSource {
    rng: XorShift,
    hasher: Sha256,
    size: u64,
    produced: u64,
}

/// A [`BlobSource`] several request bodies take consecutive parts of.
pub type SharedBlob = Arc<Mutex<BlobSource>>;

impl BlobSource {
    /// The blob of `size` bytes from `seed`.
    pub fn new(seed: u64, size: u64) -> Self {
        BlobSource {
            rng: XorShift::new(seed),
            hasher: Sha256::new(),
            size,
            produced: 0,
        }
    }

    /// The same, shareable between request bodies.
    pub fn shared(seed: u64, size: u64) -> SharedBlob {
        Arc::new(Mutex::new(Self::new(seed, size)))
    }

    /// Total size of the blob.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes handed out so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// The next at most `max` bytes (at most [`GENERATE_CHUNK`]), or `None` at the end.
    pub fn next_chunk(&mut self, max: u64) -> Option<Bytes> {
        let n = (self.size - self.produced)
            .min(max)
            .min(GENERATE_CHUNK as u64) as usize;
        if n == 0 {
            return None;
        }
        let mut buf = vec![0u8; n];
        self.rng.fill(&mut buf);
        self.hasher.update(&buf);
        self.produced += n as u64;
        Some(Bytes::from(buf))
    }

    /// `sha256:<hex>` of everything produced, once the whole blob has been produced.
    pub fn digest(&self) -> Option<String> {
        (self.produced == self.size)
            .then(|| format!("sha256:{}", hex::encode(self.hasher.clone().finalize())))
    }

    /// Computes the digest of the blob from `seed` without sending it.
    pub fn digest_of(seed: u64, size: u64) -> String {
        let mut source = Self::new(seed, size);
        while source.next_chunk(u64::MAX).is_some() {}
        source
            .digest()
            .expect("a fully produced source has a digest")
    }
}

/// A blob generated in advance and held in memory as [`GENERATE_CHUNK`]-sized `Bytes`, with its
/// digest: sending it costs the client no generation or hashing while a transfer is timed.
#[derive(Clone, Debug)]
pub struct MemoryBlob {
    chunks: Vec<Bytes>,
    size: u64,
    digest: String,
}

impl MemoryBlob {
    /// The `size` bytes of the stream from `seed` (the same bytes as [`BlobSource::new`]).
    pub fn generate(seed: u64, size: u64) -> Self {
        let mut source = BlobSource::new(seed, size);
        let mut chunks = Vec::with_capacity(size.div_ceil(GENERATE_CHUNK as u64) as usize);
        while let Some(chunk) = source.next_chunk(u64::MAX) {
            chunks.push(chunk);
        }
        let digest = source
            .digest()
            .expect("a fully produced source has a digest");
        MemoryBlob {
            chunks,
            size,
            digest,
        }
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `sha256:<hex>`.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// `len` bytes from `offset` (both multiples of [`GENERATE_CHUNK`] except at the end), as
    /// a request body; the chunks are shared, not copied.
    pub fn body(&self, offset: u64, len: u64) -> BlobBody {
        let chunk = GENERATE_CHUNK as u64;
        let first = (offset / chunk) as usize;
        let last = (offset + len).div_ceil(chunk) as usize;
        let skip = (offset % chunk) as usize;
        let mut parts: std::collections::VecDeque<Bytes> = self.chunks
            [first.min(self.chunks.len())..last.min(self.chunks.len())]
            .iter()
            .cloned()
            .collect();
        if let Some(front) = parts.front_mut() {
            *front = front.slice(skip.min(front.len())..);
        }
        let mut remaining = len.min(self.size.saturating_sub(offset));
        let mut kept = std::collections::VecDeque::with_capacity(parts.len());
        for part in parts {
            if remaining == 0 {
                break;
            }
            let take = remaining.min(part.len() as u64);
            kept.push_back(part.slice(..take as usize));
            remaining -= take;
        }
        let total = kept.iter().map(|p| p.len() as u64).sum();
        BlobBody {
            inner: Inner::Chunks(kept),
            remaining: total,
        }
    }

    /// The whole blob as a request body.
    pub fn whole(&self) -> BlobBody {
        self.body(0, self.size)
    }

    /// Bytes `offset..offset + len` copied out (for checking a range response).
    pub fn slice(&self, offset: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len as usize);
        let mut body = self.body(offset, len);
        if let Inner::Chunks(parts) = &mut body.inner {
            for part in parts.drain(..) {
                out.extend_from_slice(&part);
            }
        }
        out
    }
}

/// Where a [`BlobBody`] takes its bytes from.
#[derive(Debug)]
enum Inner {
    Generated(SharedBlob),
    Chunks(std::collections::VecDeque<Bytes>),
}

/// A request body carrying the next `len` bytes of a shared blob, generated while hyper sends,
/// or parts of a [`MemoryBlob`].
#[derive(Debug)]
pub struct BlobBody {
    inner: Inner,
    remaining: u64,
}

impl BlobBody {
    /// The next `len` bytes of `source` (fewer if the blob ends first).
    pub fn new(source: &SharedBlob, len: u64) -> Self {
        let left = {
            let s = source.lock().unwrap_or_else(PoisonError::into_inner);
            s.size() - s.produced()
        };
        BlobBody {
            inner: Inner::Generated(Arc::clone(source)),
            remaining: len.min(left),
        }
    }
}

impl Body for BlobBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let remaining = self.remaining;
        let chunk = match &mut self.inner {
            Inner::Generated(source) => source
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .next_chunk(remaining),
            Inner::Chunks(parts) => parts.pop_front(),
        };
        match chunk {
            Some(chunk) => {
                self.remaining -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None => {
                self.remaining = 0;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_bodies_produce_the_same_digest_as_one_pass() {
        let size = 3 * GENERATE_CHUNK as u64 + 12345;
        let expected = BlobSource::digest_of(9, size);
        let shared = BlobSource::shared(9, size);
        let mut total = 0;
        loop {
            let mut source = shared.lock().expect("lock");
            match source.next_chunk(1_000_000) {
                Some(chunk) => total += chunk.len() as u64,
                None => break,
            }
        }
        assert_eq!(total, size);
        let digest = shared.lock().expect("lock").digest();
        assert_eq!(digest.as_deref(), Some(expected.as_str()));
    }

    #[test]
    fn memory_blobs_match_the_generated_stream() {
        let size = 2 * GENERATE_CHUNK as u64 + 100;
        let blob = MemoryBlob::generate(5, size);
        assert_eq!(blob.digest(), BlobSource::digest_of(5, size));
        let mut all = vec![0u8; size as usize];
        XorShift::new(5).fill(&mut all);
        let offset = GENERATE_CHUNK as u64 - 10;
        assert_eq!(
            blob.slice(offset, 1000),
            &all[offset as usize..offset as usize + 1000]
        );
        assert_eq!(blob.slice(size - 50, 1000), &all[size as usize - 50..]);
        assert_eq!(blob.whole().size_hint().exact(), Some(size));
    }

    #[test]
    fn digest_is_known_only_at_the_end() {
        let mut source = BlobSource::new(1, 10);
        assert!(source.digest().is_none());
        assert_eq!(source.next_chunk(4).map(|c| c.len()), Some(4));
        assert!(source.digest().is_none());
        assert_eq!(source.next_chunk(100).map(|c| c.len()), Some(6));
        assert!(source.next_chunk(100).is_none());
        assert!(source.digest().is_some());
    }
}
