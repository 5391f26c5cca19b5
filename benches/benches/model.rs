//! Micro-benchmarks of the model and routing hot paths: digest hashing (MB/s), manifest parsing
//! (an OCI image manifest as registries see them, and a large image index), repository name and
//! reference parsing, and matching request paths to API routes.
//!
//! `cargo bench -p registry-bench --bench model` (add `-- --measurement-time 2` for a quick run).

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use registry_http::Route;
use registry_model::{DigestAlgorithm, Digester, Reference, RepositoryName, parse_manifest};
use serde_json::json;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn hex64(seed: u64) -> String {
    let mut out = String::with_capacity(64);
    let mut x = seed | 1;
    while out.len() < 64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("{x:016x}"));
    }
    out.truncate(64);
    out
}

/// A manifest shaped like a real multi-layer image: config, 8 gzip layers, annotations.
fn image_manifest() -> Vec<u8> {
    let layers: Vec<_> = (0..8)
        .map(|i| {
            json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": format!("sha256:{}", hex64(100 + i)),
                "size": 1_000_000 + i * 7919,
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{}", hex64(1)),
            "size": 7023,
        },
        "layers": layers,
        "annotations": {
            "org.opencontainers.image.created": "2026-11-24T09:00:00Z",
            "org.opencontainers.image.source": "https://example.com/app",
            "org.opencontainers.image.revision": hex64(2),
        },
    }))
    .expect("serialize manifest")
}

/// An image index of 256 platform manifests.
fn large_index() -> Vec<u8> {
    let manifests: Vec<_> = (0..256u64)
        .map(|i| {
            let architecture = ["amd64", "arm64", "ppc64le", "s390x"][(i % 4) as usize];
            json!({
                "mediaType": OCI_MANIFEST,
                "digest": format!("sha256:{}", hex64(1000 + i)),
                "size": 1500 + i,
                "platform": {
                    "architecture": architecture,
                    "os": "linux",
                    "variant": if i % 4 == 1 { "v8" } else { "" },
                },
                "annotations": {"org.example.build": format!("build-{i}")},
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .expect("serialize index")
}

fn digests(c: &mut Criterion) {
    let data = vec![0x5au8; 1 << 20];
    let mut group = c.benchmark_group("digest");
    group.throughput(Throughput::Bytes(data.len() as u64));
    for (name, algorithm) in [
        ("sha256 1 MiB", DigestAlgorithm::Sha256),
        ("sha512 1 MiB", DigestAlgorithm::Sha512),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut digester = Digester::new(algorithm);
                digester.update(black_box(&data));
                digester.finalize()
            })
        });
    }
    group.finish();
}

fn manifests(c: &mut Criterion) {
    let manifest = image_manifest();
    let index = large_index();
    let mut group = c.benchmark_group("parse_manifest");
    group.throughput(Throughput::Bytes(manifest.len() as u64));
    group.bench_function("OCI image manifest, 8 layers", |b| {
        b.iter(|| parse_manifest(black_box(&manifest), Some(OCI_MANIFEST)).expect("valid"))
    });
    group.throughput(Throughput::Bytes(index.len() as u64));
    group.bench_function("OCI image index, 256 manifests", |b| {
        b.iter(|| parse_manifest(black_box(&index), Some(OCI_INDEX)).expect("valid"))
    });
    group.finish();
}

fn names(c: &mut Criterion) {
    let digest = format!("sha256:{}", hex64(9));
    let mut group = c.benchmark_group("parse_name");
    for (label, name) in [
        ("repository library/ubuntu", "library/ubuntu"),
        (
            "repository 5 components",
            "team-a/platform/services/billing/api-server",
        ),
    ] {
        group.bench_function(label, |b| {
            b.iter(|| black_box(name).parse::<RepositoryName>().expect("valid"))
        });
    }
    group.bench_function("reference tag", |b| {
        b.iter(|| {
            black_box("v1.2.3-alpine")
                .parse::<Reference>()
                .expect("valid")
        })
    });
    group.bench_function("reference digest", |b| {
        b.iter(|| {
            black_box(digest.as_str())
                .parse::<Reference>()
                .expect("valid")
        })
    });
    group.finish();
}

fn routes(c: &mut Criterion) {
    let digest = format!("sha256:{}", hex64(3));
    let paths = [
        ("base", "/v2/".to_string()),
        (
            "manifest by tag",
            "/v2/library/ubuntu/manifests/24.04".to_string(),
        ),
        ("blob", format!("/v2/team/app/blobs/{digest}")),
        (
            "upload session",
            "/v2/team/app/blobs/uploads/6f1c2b8e-3d4a-4e5f-9a0b-1c2d3e4f5a6b".to_string(),
        ),
        ("tags list", "/v2/library/ubuntu/tags/list".to_string()),
    ];
    let mut group = c.benchmark_group("route");
    for (label, path) in &paths {
        group.bench_function(*label, |b| {
            b.iter(|| {
                Route::parse(black_box(path))
                    .expect("valid")
                    .expect("a route")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, digests, manifests, names, routes);
criterion_main!(benches);
