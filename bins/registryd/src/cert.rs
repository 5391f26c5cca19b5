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
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, PublicKeyData as _, SanType,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
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
/// `server.key`) valid for every --host, then tells where to put them; with `--renew`, only a new
/// server certificate and key from the CA already there.
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
    /// Replaces files that already exist in DIR, naming them first (a new CA must then be given
    /// to every client).
    #[arg(long)]
    force: bool,
    /// Reissues the server certificate and key from the CA already in DIR (ca.crt and ca.key
    /// stay as they are, so clients that trust it need nothing new), for the given --host names,
    /// which the CA must cover.
    #[arg(long, conflicts_with = "force")]
    renew: bool,
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
    if args.renew {
        return renew(args, &hosts);
    }
    let ca = new_ca(&hosts, args.days)?;
    let server = server_certificate(&hosts, args.days, &ca)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|error| format!("cannot create {}: {error}", args.out.display()))?;
    let out = std::fs::canonicalize(&args.out).unwrap_or_else(|_| args.out.clone());
    let existing: Vec<_> = [CA_CERTIFICATE, CA_KEY, SERVER_CERTIFICATE, SERVER_KEY]
        .iter()
        .filter(|name| out.join(name).exists())
        .map(|name| out.join(name).display().to_string())
        .collect();
    if !existing.is_empty() {
        if !args.force {
            return Err(format!(
                "{} already exist{}; choose another --out directory, add --renew to reissue only \
                 the server certificate from the CA there, or add --force to replace them \
                 (clients that trust the old CA must then be given the new ca.crt)",
                existing.join(", "),
                if existing.len() == 1 { "s" } else { "" }
            ));
        }
        eprintln!(
            "registryd cert: --force: replacing {}; clients that trust the old CA must be given \
             the new {CA_CERTIFICATE}",
            existing.join(", ")
        );
    }
    write_file(
        &out.join(CA_KEY),
        &ca.key().serialize_pem(),
        0o600,
        args.force,
    )?;
    write_file(&out.join(CA_CERTIFICATE), &ca.pem(), 0o644, args.force)?;
    write_server_files(&out, &server, args.force)?;
    print!("{}", instructions(&out, &hosts, port, &server.expires));
    Ok(())
}

/// `registryd cert --renew`: a new server key and certificate for `hosts` from the CA in
/// `args.out`, which is left as it is.
fn renew(args: &CertArgs, hosts: &[Host]) -> Result<(), String> {
    let out = std::fs::canonicalize(&args.out)
        .map_err(|error| format!("--renew: cannot open {}: {error}", args.out.display()))?;
    let read = |name: &str| {
        let path = out.join(name);
        std::fs::read_to_string(&path).map_err(|error| {
            format!(
                "--renew: cannot read {}: {error} (--renew needs the {CA_CERTIFICATE} and \
                 {CA_KEY} that an earlier `registryd cert` wrote there)",
                path.display()
            )
        })
    };
    let ca = existing_ca(&read(CA_CERTIFICATE)?, &read(CA_KEY)?, hosts)?;
    let mut days = args.days;
    let now = OffsetDateTime::now_utc();
    // A server certificate outliving its CA would stop verifying when the CA expires anyway.
    let ca_days = (ca.not_after - now).whole_days();
    if ca_days < i64::from(days) {
        days = u32::try_from(ca_days.max(1)).unwrap_or(1);
        eprintln!(
            "registryd cert: the CA expires on {}: the server certificate is valid until then",
            ca.not_after.date()
        );
    }
    let server = server_certificate(hosts, days, &ca.issuer)?;
    let replaced: Vec<String> = [SERVER_CERTIFICATE, SERVER_KEY]
        .iter()
        .filter(|name| out.join(name).exists())
        .map(|name| out.join(name).display().to_string())
        .collect();
    if !replaced.is_empty() {
        eprintln!(
            "registryd cert: --renew: replacing {}; keeping {} and {}",
            replaced.join(", "),
            out.join(CA_CERTIFICATE).display(),
            out.join(CA_KEY).display()
        );
    }
    write_server_files(&out, &server, true)?;
    print!("{}", renewed(&out, hosts, &server.expires));
    Ok(())
}

/// A CA's key, its certificate's details for signing, and when it expires.
struct ExistingCa {
    issuer: Issuer<'static, KeyPair>,
    not_after: OffsetDateTime,
}

/// The CA of `certificate_pem` and `key_pem`, checked to be a pair, still valid and allowed to
/// vouch for every one of `hosts`.
fn existing_ca(certificate_pem: &str, key_pem: &str, hosts: &[Host]) -> Result<ExistingCa, String> {
    let der = CertificateDer::from_pem_slice(certificate_pem.as_bytes())
        .map_err(|error| format!("--renew: {CA_CERTIFICATE} is not a PEM certificate: {error}"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der)
        .map_err(|error| format!("--renew: {CA_CERTIFICATE} does not parse: {error}"))?;
    let key = KeyPair::from_pem(key_pem)
        .map_err(|error| format!("--renew: {CA_KEY} is not a usable private key: {error}"))?;
    if key.subject_public_key_info() != parsed.public_key().raw {
        return Err(format!(
            "--renew: {CA_KEY} is not the key of {CA_CERTIFICATE}; put the pair an earlier \
             `registryd cert` wrote back, or make a new CA with --force"
        ));
    }
    let not_after = OffsetDateTime::from_unix_timestamp(parsed.validity().not_after.timestamp())
        .map_err(|error| format!("--renew: {CA_CERTIFICATE}'s expiry date: {error}"))?;
    if not_after <= OffsetDateTime::now_utc() {
        return Err(format!(
            "--renew: {CA_CERTIFICATE} expired on {}; make a new CA with --force (and give it to \
             every client)",
            not_after.date()
        ));
    }
    let permitted = permitted_names(&parsed)?;
    let outside: Vec<String> = hosts
        .iter()
        .filter(|host| !permitted.iter().any(|subtree| subtree.covers(host)))
        .map(ToString::to_string)
        .collect();
    if !outside.is_empty() && !permitted.is_empty() {
        let covered: Vec<String> = permitted.iter().map(ToString::to_string).collect();
        return Err(format!(
            "--renew: the CA may only vouch for {}, so clients would refuse a certificate for \
             {}; renew for those names, or make a new CA with --force (and give it to every \
             client)",
            covered.join(", "),
            outside.join(", ")
        ));
    }
    let issuer = Issuer::from_ca_cert_der(&der, key)
        .map_err(|error| format!("--renew: {CA_CERTIFICATE} cannot sign: {error}"))?;
    Ok(ExistingCa { issuer, not_after })
}

/// A name a CA may vouch for (one of its permitted subtrees).
#[derive(Debug, PartialEq, Eq)]
enum PermittedName {
    /// A DNS name and its subdomains.
    Dns(String),
    /// The addresses of a network: its address and mask, of the same length.
    Ip { address: Vec<u8>, mask: Vec<u8> },
}

impl PermittedName {
    fn covers(&self, host: &Host) -> bool {
        match (self, host) {
            (PermittedName::Dns(permitted), Host::Dns(name)) => {
                let name = name.trim_start_matches("*.");
                name == permitted || name.ends_with(&format!(".{permitted}"))
            }
            (PermittedName::Ip { address, mask }, Host::Ip(ip)) => {
                let octets = match ip {
                    IpAddr::V4(ip) => ip.octets().to_vec(),
                    IpAddr::V6(ip) => ip.octets().to_vec(),
                };
                octets.len() == address.len()
                    && octets
                        .iter()
                        .zip(address)
                        .zip(mask)
                        .all(|((octet, address), mask)| octet & mask == address & mask)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for PermittedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PermittedName::Dns(name) => write!(f, "{name} (and its subdomains)"),
            PermittedName::Ip { address, .. } => {
                let ip = match address.len() {
                    4 => <[u8; 4]>::try_from(address.as_slice())
                        .ok()
                        .map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(address.as_slice())
                        .ok()
                        .map(IpAddr::from),
                    _ => None,
                };
                match ip {
                    Some(ip) => write!(f, "{ip}"),
                    None => f.write_str("an IP network"),
                }
            }
        }
    }
}

/// The names `ca` may vouch for; empty when it has no name constraints (any name).
fn permitted_names(
    ca: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<Vec<PermittedName>, String> {
    use x509_parser::extensions::GeneralName;
    let constraints = ca
        .name_constraints()
        .map_err(|error| format!("--renew: {CA_CERTIFICATE}'s name constraints: {error}"))?;
    let Some(permitted) =
        constraints.and_then(|constraints| constraints.value.permitted_subtrees.as_ref())
    else {
        return Ok(Vec::new());
    };
    Ok(permitted
        .iter()
        .filter_map(|subtree| match subtree.base {
            GeneralName::DNSName(name) => Some(PermittedName::Dns(name.to_ascii_lowercase())),
            GeneralName::IPAddress(bytes) if bytes.len() == 8 || bytes.len() == 32 => {
                let (address, mask) = bytes.split_at(bytes.len() / 2);
                Some(PermittedName::Ip {
                    address: address.to_vec(),
                    mask: mask.to_vec(),
                })
            }
            _ => None,
        })
        .collect())
}

/// The PEM texts of a server certificate and its key.
struct ServerFiles {
    certificate: String,
    key: String,
    /// The last day it is valid.
    expires: String,
}

/// An hour of slack for clients whose clock is a little behind.
fn not_before(now: OffsetDateTime) -> OffsetDateTime {
    now - Duration::hours(1)
}

/// A new CA that may vouch for `hosts` only, valid for `days` or 10 years, whichever is longer.
fn new_ca(hosts: &[Host], days: u32) -> Result<CertifiedIssuer<'static, KeyPair>, String> {
    let now = OffsetDateTime::now_utc();
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
    ca.not_before = not_before(now);
    ca.not_after = now + Duration::days(i64::from(days.max(CA_MINIMUM_DAYS)));
    CertifiedIssuer::self_signed(ca, ca_key)
        .map_err(|error| rcgen_error("the CA certificate", error))
}

/// A new server key and a certificate for `hosts`, valid for `days`, signed by `ca`.
fn server_certificate(
    hosts: &[Host],
    days: u32,
    ca: &Issuer<'_, KeyPair>,
) -> Result<ServerFiles, String> {
    let now = OffsetDateTime::now_utc();
    let first = hosts
        .first()
        .ok_or_else(|| "give at least one --host".to_owned())?;
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
    server.not_before = not_before(now);
    server.not_after = now + Duration::days(i64::from(days));
    let expires = server.not_after.date().to_string();
    let certificate = server
        .signed_by(&server_key, ca)
        .map_err(|error| rcgen_error("the server certificate", error))?;
    Ok(ServerFiles {
        certificate: certificate.pem(),
        key: server_key.serialize_pem(),
        expires,
    })
}

fn rcgen_error(what: &str, error: rcgen::Error) -> String {
    format!("cannot create {what}: {error}")
}

/// Writes `server.key`, then `server.crt`, to `out`.
fn write_server_files(out: &Path, server: &ServerFiles, replace: bool) -> Result<(), String> {
    write_file(&out.join(SERVER_KEY), &server.key, 0o600, replace)?;
    write_file(
        &out.join(SERVER_CERTIFICATE),
        &server.certificate,
        0o644,
        replace,
    )
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

/// What `--renew` did, and how to load the new files.
fn renewed(out: &Path, hosts: &[Host], server_expires: &str) -> String {
    let names: Vec<String> = hosts.iter().map(ToString::to_string).collect();
    format!(
        "Reissued the server certificate for {names} from the CA in {out}:\n\
         \x20 {server_crt}  valid until {server_expires}\n\
         \x20 {server_key}  its private key (mode 0600)\n\
         {ca_crt} and {ca_key} are unchanged: clients that trust the CA need nothing new.\n\
         `kill -HUP` registryd to serve the new certificate without a restart.\n",
        names = names.join(", "),
        out = out.display(),
        server_crt = out.join(SERVER_CERTIFICATE).display(),
        server_key = out.join(SERVER_KEY).display(),
        ca_crt = out.join(CA_CERTIFICATE).display(),
        ca_key = out.join(CA_KEY).display(),
    )
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
    fn a_permitted_name_covers_itself_its_subdomains_and_its_network_only() {
        let dns = PermittedName::Dns("example.com".to_owned());
        let host = |text: &str| parse_host(text).expect("host");
        assert!(dns.covers(&host("example.com")));
        assert!(dns.covers(&host("registry.example.com")));
        assert!(dns.covers(&host("*.example.com")));
        assert!(!dns.covers(&host("badexample.com")));
        assert!(!dns.covers(&host("192.0.2.1")));
        let ip = PermittedName::Ip {
            address: vec![192, 0, 2, 1],
            mask: vec![255, 255, 255, 255],
        };
        assert!(ip.covers(&host("192.0.2.1")));
        assert!(!ip.covers(&host("192.0.2.2")));
        assert!(!ip.covers(&host("::1")));
        assert_eq!(ip.to_string(), "192.0.2.1");
    }

    #[test]
    fn duplicate_hosts_are_listed_once() {
        let hosts = parse_hosts(&["localhost".to_owned(), "LOCALHOST".to_owned()]).expect("hosts");
        assert_eq!(hosts, [Host::Dns("localhost".to_owned())]);
    }
}
