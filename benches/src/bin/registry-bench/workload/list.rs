//! `list`: GET /v2/_catalog over many repositories and tags/list of a repository with many
//! tags, written into the storage root in registry:2's layout before the servers start.

use std::time::Duration;

use hyper::StatusCode;
use registry_bench::Error;
use registry_bench::client::RegistryClient;
use registry_bench::layout;
use registry_bench::load::format_micros;

use crate::options::Options;
use crate::report::{Goal, Report, Unit, micros, thousands};
use crate::subject::{Runtime, Samples, Subject, order};

/// GETs `path` until the listing is complete (following `Link` pages, at most 100), returning
/// the entries under `key` and the total time.
async fn list_all(
    client: &RegistryClient,
    path: &str,
    key: &str,
) -> Result<(usize, usize, Duration), Error> {
    let mut next = Some(path.to_string());
    let mut entries = 0usize;
    let mut pages = 0usize;
    let mut total = Duration::ZERO;
    while let Some(path) = next.take() {
        if pages >= 100 {
            return Err(format!("{path}: more than 100 pages").into());
        }
        let (status, link, body, took) = client.get(&path).await?;
        if status != StatusCode::OK {
            return Err(format!("GET {path}: {status}").into());
        }
        total += took;
        pages += 1;
        let value: serde_json::Value = serde_json::from_slice(&body)?;
        entries += value[key].as_array().map_or(0, Vec::len);
        // `Link: </v2/_catalog?last=x&n=y>; rel="next"`
        next = link.and_then(|l| {
            let start = l.find('<')? + 1;
            let end = l.find('>')?;
            Some(l[start..end].to_string())
        });
    }
    Ok((entries, pages, total))
}

/// Runs the workload against every subject.
pub(crate) fn run(
    rt: &Runtime,
    options: &Options,
    subjects: &[Subject],
    report: &mut Report,
) -> Result<(), Error> {
    println!(
        "\n## listings: catalog of {} repositories, tags/list of {} tags ({} requests each)",
        thousands(options.entries as u64),
        thousands(options.entries as u64),
        options.list_samples
    );
    let catalog_path = format!("/v2/_catalog?n={}", options.catalog_page());
    let tags_path = format!(
        "/v2/{}/tags/list?n={}",
        layout::TAGGED_REPOSITORY,
        options.entries
    );
    let mut catalog = Samples::default();
    let mut tags = Samples::default();
    for (path, key, want, samples) in [
        (&catalog_path, "repositories", options.entries, &mut catalog),
        (&tags_path, "tags", options.entries, &mut tags),
    ] {
        for sample in 0..options.list_samples {
            for &i in &order(subjects.len(), sample) {
                let s = &subjects[i];
                let (entries, pages, took) = rt.block_on(list_all(&s.client, path, key))?;
                if entries < want {
                    return Err(format!(
                        "{}: GET {path} listed {entries} entries, expected at least {want}",
                        s.label
                    )
                    .into());
                }
                if sample == 0 {
                    println!(
                        "  {:<10} GET {path}: {entries} entries in {pages} page(s), first request {}",
                        s.label,
                        format_micros(micros(took) as u64)
                    );
                }
                samples.push(i, micros(took));
            }
        }
    }
    let n = thousands(options.entries as u64);
    report.add(
        &format!("GET /v2/_catalog, {n} repositories"),
        Unit::Micros,
        catalog.medians(),
        Some(Goal::RatioAtMost(0.1)),
    );
    report.add(
        &format!("GET tags/list, {n} tags"),
        Unit::Micros,
        tags.medians(),
        Some(Goal::RatioAtMost(0.2)),
    );
    Ok(())
}
