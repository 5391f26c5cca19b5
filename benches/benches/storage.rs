//! Micro-benchmarks of the filesystem storage driver's data paths: a writer taking 64 MiB in
//! 64 KiB chunks (then committing), and a reader streaming the 64 MiB back. The directory is
//! under the system temporary directory, so the figures are for that disk (and its page cache).
//!
//! `cargo bench -p registry-bench --bench storage`.

#![allow(missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use registry_storage::futures_util::StreamExt as _;
use registry_storage::{FilesystemDriver, StorageDriver, StoragePath};

const OBJECT: u64 = 64 << 20;
const CHUNK: usize = 64 << 10;

fn temp_root() -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    std::env::temp_dir().join(format!(
        "registry-bench-storage-{}-{nanos}",
        std::process::id()
    ))
}

fn filesystem(c: &mut Criterion) {
    let root = temp_root();
    let driver = FilesystemDriver::new(&root).expect("driver");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut data = vec![0u8; CHUNK];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3];
    }
    let chunk = Bytes::from(data);
    let path = StoragePath::parse("/bench/object").expect("path");

    let write = || async {
        let mut writer = driver.writer(&path, false).await.expect("writer");
        for _ in 0..OBJECT / CHUNK as u64 {
            writer.write(chunk.clone()).await.expect("write");
        }
        writer.commit().await.expect("commit");
    };

    let mut group = c.benchmark_group("filesystem driver");
    group.throughput(Throughput::Bytes(OBJECT));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.bench_function("writer 64 MiB in 64 KiB chunks", |b| {
        b.iter(|| runtime.block_on(write()))
    });
    runtime.block_on(write());
    group.bench_function("reader 64 MiB", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut stream = driver.reader(&path, 0, None).await.expect("reader");
                let mut total = 0u64;
                while let Some(chunk) = stream.next().await {
                    total += chunk.expect("chunk").len() as u64;
                }
                assert_eq!(total, OBJECT);
            })
        })
    });
    group.finish();
    drop(driver);
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(benches, filesystem);
criterion_main!(benches);
