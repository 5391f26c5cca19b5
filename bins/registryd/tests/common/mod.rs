//! What the tests that run the real binary over HTTP share: a registryd process on 127.0.0.1
//! over a data directory, and a minimal HTTP/1.1 client.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use sha2::Digest as _;

pub(crate) mod workload;

/// The registryd binary under test.
pub(crate) const REGISTRYD: &str = env!("CARGO_BIN_EXE_registryd");

pub(crate) fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// `len` bytes that differ with `seed`.
pub(crate) fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// One HTTP/1.1 exchange on a fresh connection: status, headers (lowercase names) and body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

pub(crate) fn exchange(
    address: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    // `Host: registry` unless the caller names the host (a presigned URL signs it).
    let host = if headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        ""
    } else {
        "Host: registry\r\n"
    };
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\n{host}Connection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut body = Vec::new();
    reader.read_to_end(&mut body)?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// The registry under test, on one data directory across restarts.
pub(crate) struct Server {
    pub(crate) dir: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) address: SocketAddr,
    child: Option<Child>,
}

impl Server {
    /// A server over `dir/data` configured by `dir/config.yml`, not started yet.
    pub(crate) fn new(dir: &Path) -> Server {
        Server::with_storage(dir, "config", "")
    }

    /// A server over `dir/data` configured by `dir/{name}.yml`, with `storage` (YAML indented
    /// by two spaces, e.g. `"  delete:\n    enabled: true\n"`) added to its `storage` section.
    pub(crate) fn with_storage(dir: &Path, name: &str, storage: &str) -> Server {
        let filesystem = format!(
            "  filesystem:\n    rootdirectory: {}\n",
            dir.join("data").display()
        );
        Server::with_storage_section(dir, name, &format!("{filesystem}{storage}"))
    }

    /// A server configured by `dir/{name}.yml` with `storage` (YAML indented by two spaces, a
    /// driver included) as its whole `storage` section, not started yet.
    pub(crate) fn with_storage_section(dir: &Path, name: &str, storage: &str) -> Server {
        let address = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let config = dir.join(format!("{name}.yml"));
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n{storage}http:\n  addr: {address}\n"
            ),
        )
        .expect("config");
        Server {
            dir: dir.to_owned(),
            config,
            address,
            child: None,
        }
    }

    /// Starts the process and waits until it accepts connections.
    pub(crate) fn start(&mut self) {
        let child = Command::new(REGISTRYD)
            .arg("serve")
            .arg(&self.config)
            .env_remove("REGISTRY_LOG_LEVEL")
            .stdout(Stdio::null())
            .stderr(self.log_file())
            .spawn()
            .expect("spawn registryd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.address).is_err() {
            assert!(Instant::now() < deadline, "registryd did not start");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sets `log.level` (`warn` unless set).
    pub(crate) fn with_log_level(self, level: &str) -> Server {
        let config = std::fs::read_to_string(&self.config).expect("config");
        let config = config.replacen("level: warn", &format!("level: {level}"), 1);
        std::fs::write(&self.config, config).expect("config rewritten");
        self
    }

    fn log_path(&self) -> PathBuf {
        self.config.with_extension("log")
    }

    fn log_file(&self) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_or_else(|_| Stdio::null(), Stdio::from)
    }

    /// What the process logged (to standard error) since its first start.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The running process's id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Ends the process at once (SIGKILL).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
