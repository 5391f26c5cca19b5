//! A local S3 for tests and benchmarks: moto's server (`moto[server]` from PyPI) on 127.0.0.1,
//! installed into a virtualenv by `.ci/moto-setup` on first use.
//!
//! [`MotoServer::start`] gives `None` (the caller skips) when moto cannot be installed or started,
//! unless `CI` or `REGISTRY_S3_TESTS=require` is set: then it panics, so CI never passes by
//! skipping the S3 tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::S3Options;

/// The credentials and region the servers accept (moto checks none of them).
const ACCESS_KEY: &str = "registryd-test";
const SECRET_KEY: &str = "registryd-test-secret";
const REGION: &str = "us-east-1";

/// How long moto may take to install and to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A moto S3 server, stopped when dropped.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
}

impl MotoServer {
    /// Installs moto if needed and starts it on a free port of 127.0.0.1; `None` when that is not
    /// possible here and the tests are not required (see the module documentation).
    pub fn start() -> Option<MotoServer> {
        match Self::try_start() {
            Ok(server) => Some(server),
            Err(reason) if required() => {
                panic!("moto (the local S3 for the S3 tests) is required here: {reason}")
            }
            Err(reason) => {
                eprintln!(
                    "skipping: no local S3 ({reason}); set REGISTRY_S3_TESTS=require to fail instead"
                );
                None
            }
        }
    }

    fn try_start() -> Result<MotoServer, String> {
        let server = install()?;
        let port = free_port().map_err(|error| format!("no free port: {error}"))?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::env::temp_dir().join(format!("registryd-moto-{port}.log"));
        let log_file =
            std::fs::File::create(&log).map_err(|error| format!("{}: {error}", log.display()))?;
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|error| format!("{}: {error}", server.display()))?;
        let mut moto = MotoServer {
            child,
            address,
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while request(address, "GET", "/").is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("moto exited with {status}: {}", moto.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!("moto did not answer within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(moto)
    }

    /// The server's endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Creates the bucket `name`.
    pub fn create_bucket(&self, name: &str) {
        match request(self.address, "PUT", &format!("/{name}")) {
            Ok(200) => {}
            Ok(status) => panic!("moto: creating bucket {name} answered {status}"),
            Err(error) => panic!("moto: creating bucket {name}: {error}"),
        }
    }

    /// Driver options for `bucket` on this server: path-style, plain HTTP, test credentials.
    pub fn options(&self, bucket: &str) -> S3Options {
        let mut options = S3Options::new(bucket, REGION);
        options.endpoint = Some(self.endpoint());
        options.access_key = Some(ACCESS_KEY.to_owned());
        options.secret_key = Some(SECRET_KEY.to_owned());
        options.secure = false;
        options.force_path_style = true;
        options
    }

    /// The `storage.s3` section of a registry configuration (YAML, indented for under `s3:`)
    /// for `bucket` on this server, as registry:2 and registryd read it.
    pub fn config_yaml(&self, bucket: &str, indent: usize) -> String {
        let pad = " ".repeat(indent);
        [
            format!("accesskey: {ACCESS_KEY}"),
            format!("secretkey: {SECRET_KEY}"),
            format!("region: {REGION}"),
            format!("regionendpoint: {}", self.endpoint()),
            format!("bucket: {bucket}"),
            "secure: false".to_owned(),
            "forcepathstyle: true".to_owned(),
        ]
        .iter()
        .map(|line| format!("{pad}{line}\n"))
        .collect()
    }

    /// How many S3 requests the server has answered so far (its access log's lines).
    pub fn requests(&self) -> usize {
        let Ok(log) = std::fs::File::open(&self.log) else {
            return 0;
        };
        BufReader::new(log)
            .lines()
            .map_while(Result::ok)
            .filter(|line| line.contains("\" ") && line.contains("HTTP/1.1"))
            .count()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn required() -> bool {
    std::env::var_os("CI").is_some_and(|value| !value.is_empty())
        || std::env::var("REGISTRY_S3_TESTS").is_ok_and(|value| value == "require")
}

/// The server program (moto answering one request at a time), installed by `.ci/moto-setup`.
fn install() -> Result<PathBuf, String> {
    if let Some(server) = std::env::var_os("REGISTRY_MOTO_SERVER") {
        return Ok(PathBuf::from(server));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = workspace.join(".ci/moto-setup");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{}: {error}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let server = stdout
        .lines()
        .last()
        .map(PathBuf::from)
        .ok_or_else(|| format!("{} named no server", script.display()))?;
    Ok(server)
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Sends a bodiless request to moto and gives the answer's status code.
fn request(address: SocketAddr, method: &str, target: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    // moto needs an AWS-style Authorization header to know the request is S3's; it checks no
    // signature.
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/{REGION}/s3/aws4_request, \
         SignedHeaders=host, Signature=0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {answer:.80}")))
}
