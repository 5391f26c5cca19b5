//! `docker`: docker push and docker pull of a multi-layer image (skipped without a Docker
//! engine).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use registry_bench::server::RegistryProcess;
use registry_bench::{Error, human_bytes, image};

use crate::options::Options;
use crate::report::{Report, Unit, micros};
use crate::subject::{Subject, order};

/// Layers of the pushed image.
const DOCKER_LAYERS: usize = 5;
/// Upper bound of any one docker command.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs a command with its output in files, killing it after `timeout`.
fn run_bounded(command: &mut Command, timeout: Duration) -> Result<(Duration, String), Error> {
    let dir = std::env::temp_dir();
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let out_path = dir.join(format!(
        "registry-bench-cmd-{}-{stamp}.out",
        std::process::id()
    ));
    let out = std::fs::File::create(&out_path)?;
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    match status {
        Some(status) if status.success() => Ok((took, output)),
        Some(status) => Err(format!("{command:?} failed with {status}:\n{output}").into()),
        None => Err(format!("{command:?} did not finish in {timeout:?}:\n{output}").into()),
    }
}

struct Docker {
    config: PathBuf,
    forget: Vec<String>,
}

impl Docker {
    /// A docker client with a private, empty config directory, when `docker info` works.
    fn available() -> Option<Docker> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let config = std::env::temp_dir().join(format!(
            "registry-bench-docker-{}-{stamp}",
            std::process::id()
        ));
        std::fs::create_dir_all(&config).ok()?;
        let docker = Docker {
            config,
            forget: Vec::new(),
        };
        let info = docker.run(
            &["info", "--format", "{{.ServerVersion}}"],
            Duration::from_secs(20),
        );
        match info {
            Ok((_, version)) => {
                println!("  Docker engine {}", version.trim());
                Some(docker)
            }
            Err(e) => {
                let first = e.to_string().lines().next().unwrap_or_default().to_string();
                println!("  no usable Docker engine ({first}): skipping docker push/pull");
                None
            }
        }
    }

    fn run(&self, args: &[&str], timeout: Duration) -> Result<(Duration, String), Error> {
        let mut command = Command::new("docker");
        command.env("DOCKER_CONFIG", &self.config).args(args);
        run_bounded(&mut command, timeout)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        for reference in &self.forget {
            let _ = self.run(&["rmi", "-f", reference], Duration::from_secs(60));
        }
        let _ = std::fs::remove_dir_all(&self.config);
    }
}

/// Runs the workload against every subject.
pub(crate) fn run(
    options: &Options,
    subjects: &[Subject],
    report: &mut Report,
) -> Result<(), Error> {
    println!(
        "\n## docker push and pull of a {DOCKER_LAYERS}-layer image ({} of random data a layer)",
        human_bytes(options.docker_layer)
    );
    let Some(mut docker) = Docker::available() else {
        report
            .notes
            .push("docker push/pull skipped: no Docker engine".into());
        return Ok(());
    };
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let base = format!("registry-bench/layers:{}-{stamp}", std::process::id());
    let archive = std::env::temp_dir().join(format!(
        "registry-bench-image-{}-{stamp}.tar",
        std::process::id()
    ));
    image::write_docker_archive(&archive, &base, DOCKER_LAYERS, options.docker_layer, stamp)?;
    docker.forget.push(base.clone());
    let loaded = docker.run(&["load", "-i", &archive.to_string_lossy()], DOCKER_TIMEOUT);
    let _ = std::fs::remove_file(&archive);
    loaded?;
    let tags: Vec<String> = subjects
        .iter()
        .map(|s| format!("{}/bench/docker:{DOCKER_LAYERS}-layers", s.server.addr()))
        .collect();
    let mut push = [None, None];
    let mut pull = [None, None];
    for tag in &tags {
        docker.forget.push(tag.clone());
        docker.run(&["tag", &base, tag], DOCKER_TIMEOUT)?;
    }
    // Docker's first push of an image does work later pushes skip (it compresses each layer
    // and remembers the digests): do it untimed, to a throwaway registryd, so neither measured
    // server pays for it.
    {
        let warmup = RegistryProcess::start_configured(
            &options.registryd,
            &options.settings(&options.registryd),
            |_| Ok(Vec::new()),
        )?;
        let tag = format!("{}/bench/warmup:1", warmup.addr());
        docker.forget.push(tag.clone());
        docker.run(&["tag", &base, &tag], DOCKER_TIMEOUT)?;
        let (took, _) = docker.run(&["push", &tag], DOCKER_TIMEOUT)?;
        println!(
            "  untimed warm-up push to another registryd: {:.2} s",
            took.as_secs_f64()
        );
        docker.run(&["rmi", &tag], DOCKER_TIMEOUT)?;
    }
    for &i in &order(subjects.len(), 0) {
        let (took, _) = docker.run(&["push", &tags[i]], DOCKER_TIMEOUT)?;
        println!(
            "  {:<10} docker push: {:.2} s",
            subjects[i].label,
            took.as_secs_f64()
        );
        push[i] = Some(micros(took));
    }
    // Remove every name of the image, so the pulls download every layer.
    let mut names = vec![base.as_str()];
    names.extend(tags.iter().map(String::as_str));
    let mut rmi = vec!["rmi"];
    rmi.extend(names);
    docker.run(&rmi, DOCKER_TIMEOUT)?;
    for &i in &order(subjects.len(), 1) {
        let (took, _) = docker.run(&["pull", &tags[i]], DOCKER_TIMEOUT)?;
        println!(
            "  {:<10} docker pull: {:.2} s",
            subjects[i].label,
            took.as_secs_f64()
        );
        pull[i] = Some(micros(took));
        docker.run(&["rmi", &tags[i]], DOCKER_TIMEOUT)?;
    }
    report.add(
        &format!("docker push, {DOCKER_LAYERS} layers"),
        Unit::Micros,
        push,
        None,
    );
    report.add(
        &format!("docker pull, {DOCKER_LAYERS} layers"),
        Unit::Micros,
        pull,
        None,
    );
    Ok(())
}
