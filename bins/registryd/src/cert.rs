//! `registryd cert`: a private certificate authority and a server certificate signed by it, so a
//! registry can serve HTTPS without a public CA. Clients then trust the CA (`ca.crt`), the
//! registry serves the server certificate.
//!
//! The CA is name-constrained to the hosts it was made for: it cannot issue a certificate that
//! clients would accept for any other name, so installing it in a system trust store does not
//! let whoever holds `ca.key` impersonate other sites.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose, NameConstraints,
    SanType,
};
use time::{Duration, OffsetDateTime};

/// The files `registryd cert` writes, in the order it reports them.
pub(crate) const CA_CERTIFICATE: &str = "ca.crt";
pub(crate) const CA_KEY: &str = "ca.key";
pub(crate) const SERVER_CERTIFICATE: &str = "server.crt";
pub(crate) const SERVER_KEY: &str = "server.key";

/// The CA outlives the server certificates it signs, so that a new server certificate does not
/// mean handing every client a new CA.
const CA_MINIMUM_DAYS: u32 = 3650;

/// Creates a CA (`ca.crt`, `ca.key`) and a server certificate signed by it (`server.crt`,
/// `server.key`) valid for every --host, then tells where to put them.
///
/// `server.crt` holds the server certificate alone, not the CA: clients must trust `ca.crt`
/// anyway, and a CA sent in the chain is never used to decide trust. The keys are ECDSA P-256
/// and written with mode 0600.
#[derive(Debug, clap::Args)]
pub(crate) struct CertArgs {
    /// A host name or IP address clients reach the registry by; repeat for each
    /// (`--host registry.example.com --host 192.0.2.10`).
    #[arg(long = "host", value_name = "NAME|IP", required = true)]
    hosts: Vec<String>,
    /// The directory to write the files to; created if missing.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// How many days the server certificate is valid (the CA: 10 years, or longer if this is).
    /// Apple clients refuse server certificates valid for more than 825 days.
    #[arg(long, value_name = "N", default_value_t = 825,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
    /// The port clients use, for the Docker instructions; default: the port of
    /// $REGISTRY_HTTP_ADDR, else 5000.
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,
    /// Replaces files that already exist in DIR (a new CA must then be given to every client).
    #[arg(long)]
    force: bool,
}

/// A `--host`, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Dns(String),
    Ip(IpAddr),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Dns(name) => f.write_str(name),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl Host {
    /// `host:port` as Docker names the registry (`/etc/docker/certs.d/<this>/`).
    fn with_port(&self, port: u16) -> String {
        match self {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
            host => format!("{host}:{port}"),
        }
    }
}

/// Runs `registryd cert`: prints where the files went and how to use them, or says what is
/// wrong.
pub(crate) fn run(args: &CertArgs) -> Result<(), String> {
    let hosts = parse_hosts(&args.hosts)?;
    let port = match args.port {
        Some(port) => port,
        None => port_from_env()?,
    };
    let files = generate(&hosts, args.days)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|error| format!("cannot create {}: {error}", args.out.display()))?;
    let out = std::fs::canonicalize(&args.out).unwrap_or_else(|_| args.out.clone());
    if !args.force {
        let existing: Vec<_> = [CA_CERTIFICATE, CA_KEY, SERVER_CERTIFICATE, SERVER_KEY]
            .iter()
            .filter(|name| out.join(name).exists())
            .map(|name| out.join(name).display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(format!(
                "{} already exist{}; choose another --out directory, or add --force to replace \
                 them (clients that trust the old CA must then be given the new ca.crt)",
                existing.join(", "),
                if existing.len() == 1 { "s" } else { "" }
            ));
        }
    }
    write_file(&out.join(CA_KEY), &files.ca_key, 0o600, args.force)?;
    write_file(
        &out.join(CA_CERTIFICATE),
        &files.ca_certificate,
        0o644,
        args.force,
    )?;
    write_file(&out.join(SERVER_KEY), &files.server_key, 0o600, args.force)?;
    write_file(
        &out.join(SERVER_CERTIFICATE),
        &files.server_certificate,
        0o644,
        args.force,
    )?;
    print!(
        "{}",
        instructions(&out, &hosts, port, &files.server_expires)
    );
    Ok(())
}

/// The PEM texts of the four files.
struct Generated {
    ca_certificate: String,
    ca_key: String,
    server_certificate: String,
    server_key: String,
    server_expires: String,
}

fn generate(hosts: &[Host], days: u32) -> Result<Generated, String> {
    let rcgen_error = |what: &str, error: rcgen::Error| format!("cannot create {what}: {error}");
    let now = OffsetDateTime::now_utc();
    // An hour of slack for clients whose clock is a little behind.
    let not_before = now - Duration::hours(1);
    let first = hosts
        .first()
        .ok_or_else(|| "give at least one --host".to_owned())?;

    let ca_key = KeyPair::generate().map_err(|error| rcgen_error("the CA key", error))?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, format!("registryd CA for {first}"));
    ca.distinguished_name
        .push(DnType::OrganizationName, "registryd");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.name_constraints = Some(NameConstraints {
        permitted_subtrees: hosts.iter().map(permitted_subtree).collect(),
        excluded_subtrees: Vec::new(),
    });
    ca.not_before = not_before;
    ca.not_after = now + Duration::days(i64::from(days.max(CA_MINIMUM_DAYS)));
    let ca = CertifiedIssuer::self_signed(ca, ca_key)
        .map_err(|error| rcgen_error("the CA certificate", error))?;

    let server_key = KeyPair::generate().map_err(|error| rcgen_error("the server key", error))?;
    let mut server = CertificateParams::default();
    server.distinguished_name = DistinguishedName::new();
    server
        .distinguished_name
        .push(DnType::CommonName, first.to_string());
    server.subject_alt_names = hosts
        .iter()
        .map(|host| match host {
            Host::Dns(name) => name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|error| format!("--host {name}: {error}")),
            Host::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        })
        .collect::<Result<_, _>>()?;
    server.is_ca = IsCa::ExplicitNoCa;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    server.not_before = not_before;
    server.not_after = now + Duration::days(i64::from(days));
    let server_expires = server.not_after.date().to_string();
    let server_certificate = server
        .signed_by(&server_key, &ca)
        .map_err(|error| rcgen_error("the server certificate", error))?;

    Ok(Generated {
        ca_certificate: ca.pem(),
        ca_key: ca.key().serialize_pem(),
        server_certificate: server_certificate.pem(),
        server_key: server_key.serialize_pem(),
        server_expires,
    })
}

/// The CA may issue certificates for exactly this host: a DNS name and its subdomains (the
/// X.509 rule), or one IP address.
fn permitted_subtree(host: &Host) -> GeneralSubtree {
    match host {
        Host::Dns(name) => GeneralSubtree::DnsName(name.trim_start_matches("*.").to_owned()),
        Host::Ip(ip) => {
            let prefix = if ip.is_ipv4() { 32 } else { 128 };
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(*ip, prefix))
        }
    }
}

fn parse_hosts(hosts: &[String]) -> Result<Vec<Host>, String> {
    let mut parsed = Vec::new();
    for host in hosts {
        let host = parse_host(host)?;
        if !parsed.contains(&host) {
            parsed.push(host);
        }
    }
    if parsed.is_empty() {
        return Err("give at least one --host".to_owned());
    }
    Ok(parsed)
}

/// An IP address (IPv6 with or without brackets) or a DNS name, optionally a wildcard
/// (`*.example.com`).
fn parse_host(host: &str) -> Result<Host, String> {
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let invalid = |why: &str| format!("--host {host:?}: {why}");
    if host.contains(':') {
        return Err(invalid(
            "give a host name or an IP address without a port (the port is not part of a \
             certificate)",
        ));
    }
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let labels = name.strip_prefix("*.").unwrap_or(&name);
    if labels.is_empty() || name.len() > 253 {
        return Err(invalid("not a host name"));
    }
    for label in labels.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
        if !valid {
            return Err(invalid(
                "not a host name (letters, digits and hyphens in dot-separated labels; \
                 international names in their xn-- form)",
            ));
        }
    }
    Ok(Host::Dns(name))
}

/// The port of $REGISTRY_HTTP_ADDR (`host:port` or `:port`), else registry:2's 5000.
fn port_from_env() -> Result<u16, String> {
    let Some(addr) = std::env::var_os("REGISTRY_HTTP_ADDR") else {
        return Ok(5000);
    };
    let addr = addr.to_string_lossy();
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .ok_or_else(|| {
            format!(
                "REGISTRY_HTTP_ADDR={addr:?} has no port; give the port clients use with --port"
            )
        })
}

/// Writes `contents` to a new file with `mode`; `replace` removes an existing file first, so the
/// mode is always the one given.
fn write_file(path: &Path, contents: &str, mode: u32, replace: bool) -> Result<(), String> {
    if replace {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(format!("cannot replace {}: {error}", path.display())),
        }
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

fn instructions(out: &Path, hosts: &[Host], port: u16, server_expires: &str) -> String {
    let path = |name: &str| out.join(name).display().to_string();
    let names: Vec<String> = hosts.iter().map(ToString::to_string).collect();
    let names = names.join(", ");
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "Wrote a certificate authority and a server certificate for {names} to {out}:\n\
         \x20 {ca_crt:<w$}  the CA certificate: clients trust it\n\
         \x20 {ca_key:<w$}  the CA's private key (mode 0600): keep it secret, off the server if \
         you can; it can only sign certificates for {names}\n\
         \x20 {server_crt:<w$}  the server certificate, valid until {server_expires}\n\
         \x20 {server_key:<w$}  the server's private key (mode 0600), for registryd only\n\
         \n\
         Serve HTTPS with them, in config.yml:\n\
         \x20 http:\n\
         \x20   tls:\n\
         \x20     certificate: {server_crt}\n\
         \x20     key: {server_key}\n\
         or with environment variables:\n\
         \x20 REGISTRY_HTTP_TLS_CERTIFICATE={server_crt}\n\
         \x20 REGISTRY_HTTP_TLS_KEY={server_key}\n\
         (after replacing the files, `kill -HUP` registryd to load them without a restart)\n\
         \n\
         Trust the CA in Docker, on every machine that pulls or pushes (no restart needed):\n",
        out = out.display(),
        ca_crt = path(CA_CERTIFICATE),
        ca_key = path(CA_KEY),
        server_crt = path(SERVER_CERTIFICATE),
        server_key = path(SERVER_KEY),
        w = path(SERVER_CERTIFICATE).len(),
    );
    for host in hosts {
        let directory = format!("/etc/docker/certs.d/{}", host.with_port(port));
        // Brackets (IPv6) are glob characters to the shell.
        let directory = if directory.contains('[') {
            format!("'{directory}'")
        } else {
            directory
        };
        let _ = writeln!(
            text,
            "  sudo mkdir -p {directory} && sudo cp {} {directory}/ca.crt",
            path(CA_CERTIFICATE)
        );
    }
    let _ = write!(
        text,
        "\n\
         Trust it system-wide (curl, skopeo, podman, containerd, ...), on Debian or Ubuntu:\n\
         \x20 sudo cp {} /usr/local/share/ca-certificates/registryd-ca.crt\n\
         \x20 sudo update-ca-certificates\n",
        path(CA_CERTIFICATE)
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_classified() {
        assert_eq!(
            parse_host("Registry.Example.com."),
            Ok(Host::Dns("registry.example.com".to_owned()))
        );
        assert_eq!(
            parse_host("127.0.0.1"),
            Ok(Host::Ip("127.0.0.1".parse().expect("ip")))
        );
        assert_eq!(
            parse_host("[::1]"),
            Ok(Host::Ip("::1".parse().expect("ip")))
        );
        assert_eq!(
            parse_host("*.example.com"),
            Ok(Host::Dns("*.example.com".to_owned()))
        );
        assert!(parse_host("localhost:5000").is_err());
        assert!(parse_host("bad_name").is_err());
        assert!(parse_host("").is_err());
        assert!(parse_host("-a.example").is_err());
    }

    #[test]
    fn docker_directory_brackets_ipv6() {
        assert_eq!(
            Host::Ip("::1".parse().expect("ip")).with_port(5000),
            "[::1]:5000"
        );
        assert_eq!(
            Host::Dns("localhost".to_owned()).with_port(443),
            "localhost:443"
        );
    }

    #[test]
    fn duplicate_hosts_are_listed_once() {
        let hosts = parse_hosts(&["localhost".to_owned(), "LOCALHOST".to_owned()]).expect("hosts");
        assert_eq!(hosts, [Host::Dns("localhost".to_owned())]);
    }
}
