//! What the machine itself allows, measured with no registry in the way: how fast one core hashes,
//! how fast new data enters the page cache and reaches the disk, how fast cached data is read
//! back, and how fast one loopback TCP connection carries bytes. A registry's upload and download
//! figures cannot beat these, so a report shows them beside the registries' figures.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::blob::XorShift;

/// Size of every write and read the measurements make, as the registries' own I/O does.
const IO_CHUNK: usize = 1 << 20;

/// Bytes moved and the time it took.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// Bytes moved.
    pub bytes: u64,
    /// From the first byte handed over to the last one done.
    pub elapsed: Duration,
}

impl Rate {
    /// Decimal megabytes a second, as the registries' figures are given.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One measured bound: what was done, its rate, and which figures it bounds.
#[derive(Clone, Debug)]
pub struct Bound {
    /// What was measured.
    pub what: &'static str,
    /// How fast it ran.
    pub rate: Rate,
    /// The registry figures it limits.
    pub bounds: &'static str,
}

/// Runs every measurement over `size` bytes, with a scratch file in `dir` (on the filesystem the
/// registries store to), removed afterwards.
pub fn measure(dir: &Path, size: u64) -> Result<Vec<Bound>, Error> {
    let mut data = vec![0u8; IO_CHUNK];
    XorShift::new(7).fill(&mut data);
    let scratch = dir.join(format!("registry-bench-bounds-{}", std::process::id()));
    let files = measure_files(&scratch, &data, size);
    let _ = fs::remove_file(&scratch);
    let (fresh, synced, rewrite, read) = files?;
    Ok(vec![
        Bound {
            what: "sha256, one core, data in CPU cache",
            rate: sha256(&data, size),
            bounds: "every upload: each byte is hashed once, in order",
        },
        Bound {
            what: "write to a new file (page cache, no fsync)",
            rate: fresh,
            bounds: "buffered uploads: each byte of a blob fills a new page-cache page",
        },
        Bound {
            what: "the same, then fsync",
            rate: synced,
            bounds: "buffered uploads, which are synced before the blob is committed",
        },
        Bound {
            what: "rewrite of that file (its pages already cached)",
            rate: rewrite,
            bounds: "nothing: the copy alone, without new pages; compare with the first write",
        },
        Bound {
            what: "read of that file from the page cache",
            rate: read,
            bounds: "downloads of a cached blob",
        },
        Bound {
            what: "one TCP connection over 127.0.0.1",
            rate: loopback(&data, size)?,
            bounds: "every upload and download (the client shares the cores)",
        },
    ])
}

/// Hashes `size` bytes (`data` over and over) on this thread.
fn sha256(data: &[u8], size: u64) -> Rate {
    let started = Instant::now();
    let mut hasher = Sha256::new();
    for piece in pieces(data, size) {
        hasher.update(piece);
    }
    std::hint::black_box(hasher.finalize());
    Rate {
        bytes: size,
        elapsed: started.elapsed(),
    }
}

/// Writes `size` bytes to a new file at `path` (timed without and with the fsync), writes them
/// again over the cached pages, and reads them back: the four rates in that order.
fn measure_files(path: &Path, data: &[u8], size: u64) -> Result<(Rate, Rate, Rate, Rate), Error> {
    let mut file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    let started = Instant::now();
    write_all(&mut file, data, size)?;
    let fresh = rate(size, started);
    file.sync_all()?;
    let synced = rate(size, started);

    file.seek(SeekFrom::Start(0))?;
    let started = Instant::now();
    write_all(&mut file, data, size)?;
    let rewrite = rate(size, started);

    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; IO_CHUNK];
    let started = Instant::now();
    let mut read = 0u64;
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => read += n as u64,
        }
    }
    if read != size {
        return Err(format!("read back {read} bytes of {size}").into());
    }
    Ok((fresh, synced, rewrite, rate(size, started)))
}

/// `data` over and over, `size` bytes in all, in pieces of at most `data.len()` bytes.
fn pieces(data: &[u8], size: u64) -> impl Iterator<Item = &[u8]> {
    let mut left = if data.is_empty() { 0 } else { size };
    std::iter::from_fn(move || {
        let n = left.min(data.len() as u64) as usize;
        left -= n as u64;
        (n > 0).then(|| &data[..n])
    })
}

/// Writes `size` bytes of `data` over and over to `out`.
fn write_all(out: &mut impl Write, data: &[u8], size: u64) -> io::Result<()> {
    pieces(data, size).try_for_each(|piece| out.write_all(piece))
}

/// Sends `size` bytes over one TCP connection on 127.0.0.1 to a thread that reads and drops them.
fn loopback(data: &[u8], size: u64) -> Result<Rate, Error> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let receiver = std::thread::spawn(move || -> io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; IO_CHUNK];
        let mut received = 0u64;
        loop {
            match stream.read(&mut buf)? {
                0 => return Ok(received),
                n => received += n as u64,
            }
        }
    });
    let mut stream = TcpStream::connect(address)?;
    let started = Instant::now();
    write_all(&mut stream, data, size)?;
    drop(stream);
    let received = receiver
        .join()
        .map_err(|_| "the loopback receiver panicked")??;
    if received != size {
        return Err(format!("loopback carried {received} bytes of {size}").into());
    }
    Ok(rate(size, started))
}

fn rate(bytes: u64, started: Instant) -> Rate {
    Rate {
        bytes,
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_add_up_to_the_size_and_stop_on_empty_data() {
        let data = [1u8, 2, 3];
        let cut: Vec<&[u8]> = pieces(&data, 7).collect();
        assert_eq!(cut, [&data[..], &data[..], &data[..1]]);
        assert_eq!(pieces(&[], 7).count(), 0);
    }

    #[test]
    fn every_bound_moves_the_whole_size() {
        let dir = std::env::temp_dir();
        let bounds = measure(&dir, 3 * IO_CHUNK as u64 + 5).expect("measured");
        assert_eq!(bounds.len(), 6);
        for bound in &bounds {
            assert_eq!(bound.rate.bytes, 3 * IO_CHUNK as u64 + 5, "{}", bound.what);
            assert!(bound.rate.mb_per_s() > 0.0, "{}", bound.what);
        }
        let scratch = dir.join(format!("registry-bench-bounds-{}", std::process::id()));
        assert!(!scratch.exists(), "the scratch file is removed");
    }
}
