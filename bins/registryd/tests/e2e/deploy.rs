//! The deployment files under `deploy/` are valid for the tools that read them.

use std::path::Path;
use std::process::Command;

use super::harness::{Need, e2e_gate, registryd, run};
use super::{QUICK, temp_dir};

/// The repository's root, where `deploy/` is.
fn repository() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let Some(tools) = e2e_gate(
        "the_systemd_unit_passes_systemd_analyze_verify",
        &[Need::SystemdAnalyze],
    ) else {
        return;
    };
    let unit = std::fs::read_to_string(repository().join("deploy/systemd/registryd.service"))
        .expect("deploy/systemd/registryd.service");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/registryd serve "),
        "the unit starts the installed binary"
    );
    // verify checks that ExecStart exists: point it at the binary under test.
    let dir = temp_dir("registry-e2e-unit-");
    let path = dir.path().join("registryd.service");
    let binary = registryd();
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/registryd", &binary.to_string_lossy()),
    )
    .expect("write the unit");
    let verified = run(
        Command::new(tools.systemd_analyze())
            .arg("verify")
            .arg(&path),
        QUICK,
    );
    assert!(
        verified.status.success() && verified.stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{}",
        verified.stdout,
        verified.stderr
    );
}
