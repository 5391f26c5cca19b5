//! How the batches of a [`FilesystemWriter`](super::FilesystemWriter) reach its file: through the
//! page cache, or, when the driver is made with direct I/O
//! ([`FilesystemDriver::with_direct_io`](super::FilesystemDriver::with_direct_io)), for large
//! sequential data on Linux, with `O_DIRECT`.
//!
//! Why: copying an upload into the page cache can be most of what the upload costs the CPU (the
//! kernel touches every page of cache it fills, which is slow where fresh memory is slow to touch,
//! as on many virtual machines), and it pushes data that is read often out of the cache. With
//! direct I/O the disk reads the bytes from the writer's own buffer. The price: a blob just
//! uploaded is not in the page cache, so its first download reads the disk. That is why it is a
//! choice and not the default.
//!
//! How: a writer starts buffered. With its first full batch ([`WRITE_BATCH`]) it turns `O_DIRECT`
//! on for its file descriptor (`fcntl(F_SETFL)`), if the file offset is a multiple of
//! [`ALIGNMENT`]. That is always so for a new object; a writer appending to an object whose size is
//! not a multiple stays buffered to the end (the simplest correct choice: the first block would
//! have to be rewritten otherwise). From then on the batches are copied, on the blocking thread,
//! into one aligned buffer of [`WRITE_BATCH`] bytes, allocated only then (small objects never get
//! one), and every whole multiple of [`ALIGNMENT`] is written directly; the rest, fewer than
//! [`ALIGNMENT`] bytes, waits at the front of the buffer for the next batch. The last batch turns
//! `O_DIRECT` off again and writes the final partial block through the page cache, so the file
//! can be synced, renamed and appended to as any other.
//!
//! Fallback: when the file refuses `O_DIRECT` (a filesystem without direct I/O) or a direct write
//! fails with `EINVAL` (a device needing a larger alignment, or a file that grew under the
//! writer), the bytes not written yet and everything after them go through the page cache for the
//! rest of the writer. The file offset is tracked byte by byte, so nothing is lost or written
//! twice. Other systems than Linux always write through the page cache.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes};

use super::WRITE_BATCH;

/// What direct I/O needs a multiple of: the buffer's address, the file offset and the length of
/// every write. 4096 is the page size and the largest logical block size of common disks.
const ALIGNMENT: usize = 4096;

/// A full aligned buffer is a whole number of blocks.
const _: () = assert!(WRITE_BATCH.is_multiple_of(ALIGNMENT));

/// The most slices handed to one `write_vectored` call (Linux's `IOV_MAX`).
const MAX_IO_SLICES: usize = 1024;

/// A writer's open file, with how its bytes are written; it travels to the blocking thread that
/// writes a batch and back.
#[derive(Debug)]
pub(super) struct OutputFile {
    file: File,
    /// Where the next write lands: the bytes written to the file, by this writer and before it.
    offset: u64,
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    /// Buffered so far; the first full batch decides.
    Undecided,
    /// `O_DIRECT` is on: whole blocks go from the buffer to the disk.
    Direct(AlignedBuffer),
    /// Through the page cache to the end of the writer.
    Buffered,
}

impl OutputFile {
    /// `file`, positioned at its end, which is `offset` bytes in; with `direct_io`, its first full
    /// batch may turn direct I/O on, else it is written through the page cache throughout.
    pub(super) fn new(file: File, offset: u64, direct_io: bool) -> Self {
        OutputFile {
            file,
            offset,
            mode: if direct_io {
                Mode::Undecided
            } else {
                Mode::Buffered
            },
        }
    }

    /// Writes a full batch (at least [`WRITE_BATCH`] bytes); the first one turns direct I/O on if
    /// the file allows it.
    pub(super) fn write_batch(&mut self, batch: Vec<Bytes>) -> io::Result<()> {
        if matches!(self.mode, Mode::Undecided) {
            let aligned = self.offset.is_multiple_of(ALIGNMENT as u64);
            self.mode = if aligned && direct::enable(&self.file).is_ok() {
                Mode::Direct(AlignedBuffer::new())
            } else {
                Mode::Buffered
            };
        }
        self.write(batch)
    }

    /// Writes the last batch, of any size, and whatever still waits in the aligned buffer, and
    /// turns `O_DIRECT` off: afterwards the file holds every byte and is an ordinary file again.
    pub(super) fn write_last(&mut self, batch: Vec<Bytes>) -> io::Result<()> {
        self.write(batch)?;
        if let Mode::Direct(buffer) = &self.mode {
            direct::disable(&self.file)?;
            let tail = buffer.pending();
            self.file.write_all(tail)?;
            self.offset += tail.len() as u64;
            self.mode = Mode::Buffered;
        }
        Ok(())
    }

    /// Makes what was written durable; call it after [`OutputFile::write_last`].
    pub(super) fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn write(&mut self, batch: Vec<Bytes>) -> io::Result<()> {
        let Mode::Direct(buffer) = &mut self.mode else {
            return write_chunks(&mut self.file, &mut self.offset, batch);
        };
        let mut rest = VecDeque::from(batch);
        let mut accepted = true;
        while let Some(chunk) = rest.front_mut() {
            let copied = buffer.fill(chunk);
            chunk.advance(copied);
            if chunk.is_empty() {
                rest.pop_front();
            }
            if buffer.is_full() {
                accepted = buffer.write_blocks(&mut self.file, &mut self.offset)?;
                if !accepted {
                    break;
                }
            }
        }
        if accepted {
            accepted = buffer.write_blocks(&mut self.file, &mut self.offset)?;
        }
        if accepted {
            return Ok(());
        }
        // Refused: the bytes not written yet are at the front of the buffer, followed by `rest`.
        direct::disable(&self.file)?;
        let pending = buffer.pending();
        self.file.write_all(pending)?;
        self.offset += pending.len() as u64;
        self.mode = Mode::Buffered;
        write_chunks(&mut self.file, &mut self.offset, Vec::from(rest))
    }

    /// Whether the writes go direct to the disk now.
    #[cfg(test)]
    pub(super) fn is_direct(&self) -> bool {
        matches!(self.mode, Mode::Direct(_))
    }

    /// Where the next write lands.
    #[cfg(test)]
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }
}

/// [`WRITE_BATCH`] bytes whose address is a multiple of [`ALIGNMENT`], inside a plain vector, of
/// which the first `filled` wait to be written.
#[derive(Debug)]
struct AlignedBuffer {
    memory: Vec<u8>,
    /// Where the aligned bytes start in `memory`.
    start: usize,
    filled: usize,
}

impl AlignedBuffer {
    fn new() -> Self {
        let memory = vec![0; WRITE_BATCH + ALIGNMENT];
        let misalignment = memory.as_ptr().addr() % ALIGNMENT;
        AlignedBuffer {
            memory,
            start: (ALIGNMENT - misalignment) % ALIGNMENT,
            filled: 0,
        }
    }

    /// The bytes waiting to be written.
    fn pending(&self) -> &[u8] {
        &self.memory[self.start..self.start + self.filled]
    }

    fn is_full(&self) -> bool {
        self.filled == WRITE_BATCH
    }

    /// Copies as much of `data` as fits after the waiting bytes; how much that is.
    fn fill(&mut self, data: &[u8]) -> usize {
        let free = &mut self.memory[self.start + self.filled..self.start + WRITE_BATCH];
        let copied = free.len().min(data.len());
        free[..copied].copy_from_slice(&data[..copied]);
        self.filled += copied;
        copied
    }

    /// Writes the whole blocks of the waiting bytes with direct I/O, advancing `offset` by what was
    /// written, and moves the rest to the front. `Ok(false)` when the kernel refuses (`EINVAL`):
    /// the bytes not written stay waiting.
    fn write_blocks(&mut self, file: &mut File, offset: &mut u64) -> io::Result<bool> {
        let blocks = self.filled - self.filled % ALIGNMENT;
        let mut written = 0;
        let outcome = loop {
            if written == blocks {
                break Ok(true);
            }
            match file.write(&self.memory[self.start + written..self.start + blocks]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(count) => {
                    written += count;
                    *offset += count as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if direct::is_refused(&error) => break Ok(false),
                Err(error) => break Err(error),
            }
        };
        if written > 0 {
            self.memory
                .copy_within(self.start + written..self.start + self.filled, self.start);
            self.filled -= written;
        }
        outcome
    }
}

/// Writes every chunk of `batch`, in order, through the page cache with as few system calls as
/// possible, advancing `offset` by what was written.
fn write_chunks(file: &mut File, offset: &mut u64, mut batch: Vec<Bytes>) -> io::Result<()> {
    batch.retain(|chunk| !chunk.is_empty());
    let mut first = 0;
    while first < batch.len() {
        let slices: Vec<IoSlice<'_>> = batch[first..]
            .iter()
            .take(MAX_IO_SLICES)
            .map(|chunk| IoSlice::new(chunk))
            .collect();
        let mut written = match file.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => written,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        drop(slices);
        *offset += written as u64;
        while written > 0 {
            let chunk = &mut batch[first];
            if written >= chunk.len() {
                written -= chunk.len();
                first += 1;
            } else {
                chunk.advance(written);
                written = 0;
            }
        }
    }
    Ok(())
}

/// Turning `O_DIRECT` on and off.
#[cfg(target_os = "linux")]
mod direct {
    use std::fs::File;
    use std::io;

    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};

    pub(super) fn enable(file: &File) -> io::Result<()> {
        set(file, true)
    }

    pub(super) fn disable(file: &File) -> io::Result<()> {
        set(file, false)
    }

    fn set(file: &File, direct: bool) -> io::Result<()> {
        let mut flags = fcntl_getfl(file)?;
        flags.set(OFlags::DIRECT, direct);
        fcntl_setfl(file, flags)?;
        Ok(())
    }

    /// Whether a direct write failed because the file or the device cannot take it (alignment,
    /// no direct I/O), so the same bytes can go through the page cache instead.
    pub(super) fn is_refused(error: &io::Error) -> bool {
        error.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
    }
}

/// Without `O_DIRECT`: every writer stays buffered.
#[cfg(not(target_os = "linux"))]
mod direct {
    use std::fs::File;
    use std::io;

    pub(super) fn enable(_file: &File) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(super) fn disable(_file: &File) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn is_refused(_error: &io::Error) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};

    use super::*;

    fn pattern(length: usize) -> Vec<u8> {
        super::super::pattern(length, 0x9e37_79b9)
    }

    /// `data` in chunks of odd sizes.
    fn chunks(data: &[u8]) -> Vec<Bytes> {
        let sizes = [7, 65_537, (1 << 20) + 3, 1, 300_001];
        let mut chunks = Vec::new();
        let mut at = 0;
        for size in sizes.iter().cycle() {
            if at == data.len() {
                break;
            }
            let end = (at + size).min(data.len());
            chunks.push(Bytes::copy_from_slice(&data[at..end]));
            at = end;
        }
        chunks
    }

    /// Writes `data` as a writer does: full batches, then the last one.
    fn write_as_a_writer(output: &mut OutputFile, data: &[u8]) {
        let mut batch = Vec::new();
        let mut batched = 0;
        for chunk in chunks(data) {
            batched += chunk.len();
            batch.push(chunk);
            if batched >= WRITE_BATCH {
                output
                    .write_batch(std::mem::take(&mut batch))
                    .expect("batch");
                batched = 0;
            }
        }
        output.write_last(batch).expect("last batch");
    }

    /// Whether files in `directory` take `O_DIRECT`.
    fn supports_direct_io(directory: &std::path::Path) -> bool {
        let probe = directory.join("probe");
        let file = File::create(&probe).expect("probe file");
        let supported = direct::enable(&file).is_ok();
        drop(file);
        fs::remove_file(probe).expect("remove probe");
        supported
    }

    #[test]
    fn aligned_buffer_starts_at_an_aligned_address() {
        for _ in 0..16 {
            let buffer = AlignedBuffer::new();
            let region = &buffer.memory[buffer.start..buffer.start + WRITE_BATCH];
            assert_eq!(region.as_ptr().addr() % ALIGNMENT, 0);
            assert_eq!(region.len(), WRITE_BATCH);
        }
    }

    #[test]
    fn large_writes_go_direct_where_the_filesystem_supports_it() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("object");
        let data = pattern((5 << 20) + 12_345);
        let mut output = OutputFile::new(File::create(&path).expect("create"), 0, true);
        let first = chunks(&data[..(1 << 20) + 10]);
        output.write_batch(first).expect("first batch");
        assert_eq!(
            output.is_direct(),
            cfg!(target_os = "linux") && supports_direct_io(directory.path()),
            "direct I/O is on exactly where the filesystem takes it"
        );
        if output.is_direct() {
            assert_eq!(
                output.offset(),
                1 << 20,
                "whole blocks written, the rest waits"
            );
        }
        write_as_a_writer(&mut output, &data[(1 << 20) + 10..]);
        assert!(!output.is_direct(), "the last batch turns direct I/O off");
        assert_eq!(output.offset(), data.len() as u64);
        output.sync_all().expect("sync");
        drop(output);
        assert!(
            fs::read(&path).expect("read") == data,
            "read back unchanged"
        );
    }

    #[test]
    #[cfg(unix)]
    fn a_file_refusing_direct_io_is_written_buffered() {
        // A character device never takes O_DIRECT: turning it on fails with EINVAL.
        let null = OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .expect("/dev/null");
        let mut output = OutputFile::new(null, 0, true);
        output
            .write_batch(chunks(&pattern(3 << 20)))
            .expect("batch");
        assert!(!output.is_direct());
        assert_eq!(output.offset(), 3 << 20, "every byte written once");
    }

    #[test]
    fn a_refused_direct_write_writes_the_same_bytes_buffered() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("object");
        // Another writer appended 100 bytes after this one found the file empty: the direct write
        // lands at an unaligned offset and fails with EINVAL.
        fs::write(&path, b"x".repeat(100)).expect("write");
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open for append");
        let mut output = OutputFile::new(file, 0, true);
        let data = pattern((3 << 20) + 5);
        write_as_a_writer(&mut output, &data);
        assert!(!output.is_direct());
        assert_eq!(
            output.offset(),
            data.len() as u64,
            "every byte written once"
        );
        drop(output);
        let mut expected = b"x".repeat(100);
        expected.extend_from_slice(&data);
        assert!(
            fs::read(&path).expect("read") == expected,
            "nothing lost or doubled"
        );
    }

    #[test]
    fn an_append_at_an_unaligned_size_stays_buffered() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("object");
        fs::write(&path, b"y".repeat(4097)).expect("write");
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open for append");
        let mut output = OutputFile::new(file, 4097, true);
        let data = pattern((2 << 20) + 1);
        output.write_batch(chunks(&data)).expect("batch");
        assert!(!output.is_direct());
        output.write_last(Vec::new()).expect("last batch");
        drop(output);
        let mut expected = b"y".repeat(4097);
        expected.extend_from_slice(&data);
        assert!(fs::read(&path).expect("read") == expected);
    }
}
