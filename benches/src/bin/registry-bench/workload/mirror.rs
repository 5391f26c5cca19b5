//! `mirror`: registryd as a pull-through cache of another registryd.

use registry_bench::blob::MemoryBlob;
use registry_bench::client::RegistryClient;
use registry_bench::image;
use registry_bench::server::{RegistryProcess, Settings};
use registry_bench::{Error, human_bytes};

use crate::options::Options;
use crate::report::{Goal, Report, Unit, median};
use crate::subject::Runtime;

/// What the mirror workload reads through a pull-through cache.
const MIRRORED_REPO: &str = "bench/mirrored";
/// How many clients pull one image through a fresh mirror at once.
const MIRROR_PULLS: usize = 32;

/// A registryd pull-through cache of `upstream` (registry:2's `proxy.remoteurl`).
fn start_mirror(options: &Options, upstream: &RegistryProcess) -> Result<RegistryProcess, Error> {
    let remote = upstream.base_url();
    RegistryProcess::start_configured(
        &options.registryd,
        &options.settings(&options.registryd),
        |_| Ok(vec![("REGISTRY_PROXY_REMOTEURL".to_owned(), remote)]),
    )
}

/// The requests for `repository` in a registryd's access log.
fn requests_for(log: &str, repository: &str) -> Vec<String> {
    let needle = format!("path=\"/v2/{repository}/");
    log.lines()
        .filter(|line| line.contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// registryd as a pull-through cache of another registryd: a large blob pulled through it on a
/// miss and on a hit, against a pull straight from the upstream; and the upstream requests of 32
/// clients pulling one image through a fresh mirror at once.
pub(crate) fn run(rt: &Runtime, options: &Options, report: &mut Report) -> Result<(), Error> {
    println!(
        "\n## mirror: {} blob through a registryd pull-through cache of a registryd",
        human_bytes(options.blob)
    );
    // Its own upstream, logging each request, so the mirror's requests can be counted.
    let settings = Settings {
        accesslog_disabled: false,
        ..options.settings(&options.registryd)
    };
    let upstream = RegistryProcess::start_configured(&options.registryd, &settings, |_| {
        Ok(vec![("REGISTRY_LOG_LEVEL".to_owned(), "info".to_owned())])
    })?;
    let origin = RegistryClient::new(&upstream.base_url());
    let blob = MemoryBlob::generate(4242, options.blob);
    rt.block_on(origin.upload_memory_monolithic(MIRRORED_REPO, &blob))?;
    let (digest, size) = (blob.digest().to_owned(), blob.size());
    drop(blob);
    let mut direct = Vec::new();
    let mut miss = Vec::new();
    let mut hit = Vec::new();
    for round in 0..options.rounds {
        let mirror = start_mirror(options, &upstream)?;
        let through = RegistryClient::new(&mirror.base_url());
        let straight = rt.block_on(origin.download_counted(MIRRORED_REPO, &digest, size))?;
        let missed = rt.block_on(through.download_counted(MIRRORED_REPO, &digest, size))?;
        println!(
            "  round {}: straight from the upstream {:.1} MB/s, through the mirror on a miss {:.1} MB/s",
            round + 1,
            straight.mb_per_s(),
            missed.mb_per_s()
        );
        direct.push(straight.mb_per_s());
        miss.push(missed.mb_per_s());
        for sample in 0..options.download_samples {
            // Whoever goes second reads pages the first just touched: alternate.
            let (straight, cached) = if sample % 2 == 0 {
                let straight =
                    rt.block_on(origin.download_counted(MIRRORED_REPO, &digest, size))?;
                let cached = rt.block_on(through.download_counted(MIRRORED_REPO, &digest, size))?;
                (straight, cached)
            } else {
                let cached = rt.block_on(through.download_counted(MIRRORED_REPO, &digest, size))?;
                let straight =
                    rt.block_on(origin.download_counted(MIRRORED_REPO, &digest, size))?;
                (straight, cached)
            };
            println!(
                "           straight from the upstream {:.1} MB/s, from the mirror's cache {:.1} MB/s",
                straight.mb_per_s(),
                cached.mb_per_s()
            );
            direct.push(straight.mb_per_s());
            hit.push(cached.mb_per_s());
        }
    }
    let (direct, miss, hit) = (median(direct), median(miss), median(hit));
    report.add(
        &format!(
            "mirror: {} on a miss / straight from the upstream",
            human_bytes(size)
        ),
        Unit::MBps,
        [miss, direct],
        Some(Goal::RatioAtLeast(0.8)),
    );
    report.add(
        &format!(
            "mirror: {} on a hit / straight from the upstream",
            human_bytes(size)
        ),
        Unit::MBps,
        [hit, direct],
        Some(Goal::RatioAtLeast(1.0)),
    );

    let image = rt.block_on(image::push_small_image(
        &origin,
        MIRRORED_REPO,
        "latest",
        1 << 20,
        4243,
    ))?;
    let mirror = start_mirror(options, &upstream)?;
    let before = requests_for(&upstream.log(), MIRRORED_REPO).len();
    let base = mirror.base_url();
    rt.block_on(async {
        let mut pulls = tokio::task::JoinSet::new();
        for _ in 0..MIRROR_PULLS {
            let client = RegistryClient::new(&base);
            let layer = image.layer.clone();
            pulls.spawn(async move {
                let (status, _, manifest, _) = client
                    .get(&format!("/v2/{MIRRORED_REPO}/manifests/latest"))
                    .await?;
                if !status.is_success() {
                    return Err(Error::from(format!("manifest: {status}")));
                }
                let manifest: serde_json::Value = serde_json::from_slice(&manifest)?;
                let config = manifest["config"]["digest"].as_str().unwrap_or_default();
                for digest in [config, layer.as_str()] {
                    let (status, _, _, _) = client
                        .get(&format!("/v2/{MIRRORED_REPO}/blobs/{digest}"))
                        .await?;
                    if !status.is_success() {
                        return Err(format!("blob {digest}: {status}").into());
                    }
                }
                Ok(())
            });
        }
        while let Some(pulled) = pulls.join_next().await {
            pulled??;
        }
        Ok::<(), Error>(())
    })?;
    let asked = requests_for(&upstream.log(), MIRRORED_REPO).split_off(before);
    println!(
        "  {MIRROR_PULLS} concurrent pulls of one image (manifest, config, 1 MiB layer) through a \
         fresh mirror: {} upstream requests",
        asked.len()
    );
    for line in &asked {
        let request = line
            .split_whitespace()
            .filter(|word| word.starts_with("method=") || word.starts_with("path="))
            .collect::<Vec<_>>()
            .join(" ");
        println!("    {request}");
    }
    report.notes.push(format!(
        "mirror: {MIRROR_PULLS} concurrent pulls of one image (manifest, config, layer) through \
         a fresh mirror made {} upstream requests",
        asked.len()
    ));
    Ok(())
}
