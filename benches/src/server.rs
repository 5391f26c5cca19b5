//! A registry server process under benchmark: `BINARY serve CONFIG` with a registry:2-format
//! configuration over a temporary filesystem root, listening on a free 127.0.0.1 port. registryd
//! and CNCF Distribution (`docker-registry`) both take the same file, so either can be measured.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Error;

/// How long a server may take to answer `GET /v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How often readiness is polled while a server starts (a refused connection costs microseconds).
const READY_POLL: Duration = Duration::from_millis(1);

/// Configuration beyond the storage root and the address, the same for every server.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// `storage.cache.blobdescriptor: inmemory`, as a stock registry:2 install has.
    pub blobdescriptor_inmemory: bool,
    /// `log.accesslog.disabled: true`: no line per request.
    pub accesslog_disabled: bool,
    /// `catalog.maxentries`: the largest catalog page a server answers (registry:2 caps `n`
    /// at 1000 by default).
    pub catalog_maxentries: Option<u64>,
    /// `tags.maxtags`: the largest tags-list page registryd answers when `n` is given (registry:2
    /// 2.8 has no such limit and ignores the key).
    pub tags_maxtags: Option<u64>,
    /// `storage.filesystem.directio: true` (a registryd-only key): large uploads bypass the page
    /// cache.
    pub direct_io: bool,
    /// Another storage driver's section instead of the filesystem, indented for under
    /// `storage:` (`  s3:\n    bucket: ...`).
    pub driver_yaml: Option<String>,
}

impl Settings {
    fn yaml(&self, root: &Path, addr: SocketAddr) -> String {
        let mut yaml = String::from("version: 0.1\nlog:\n  level: warn\n");
        if self.accesslog_disabled {
            yaml.push_str("  accesslog:\n    disabled: true\n");
        }
        yaml.push_str("storage:\n");
        match &self.driver_yaml {
            Some(driver) => yaml.push_str(driver),
            None => {
                yaml.push_str(&format!(
                    "  filesystem:\n    rootdirectory: {}\n",
                    root.display()
                ));
                if self.direct_io {
                    yaml.push_str("    directio: true\n");
                }
            }
        }
        yaml.push_str("  delete:\n    enabled: true\n");
        if self.blobdescriptor_inmemory {
            yaml.push_str("  cache:\n    blobdescriptor: inmemory\n");
        }
        yaml.push_str(&format!("http:\n  addr: {addr}\n"));
        if let Some(max) = self.catalog_maxentries {
            yaml.push_str(&format!("catalog:\n  maxentries: {max}\n"));
        }
        if let Some(max) = self.tags_maxtags {
            yaml.push_str(&format!("tags:\n  maxtags: {max}\n"));
        }
        yaml
    }
}

/// A running registry server; killed, and its temporary directory removed, when dropped.
#[derive(Debug)]
pub struct RegistryProcess {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    /// From spawning the process to its first answer on `GET /v2/`, and that answer's status.
    ready: (Duration, u16),
}

/// The registryd binary to benchmark: `$REGISTRYD_BIN`, else the `registryd` next to the running
/// benchmark (`cargo build --release` puts both in `target/release/`).
pub fn default_registryd() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os("REGISTRYD_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("this executable has no directory")?;
    Ok(dir.join("registryd"))
}

impl RegistryProcess {
    /// Starts `binary serve CONFIG` with storage in a new temporary directory and waits until
    /// `GET /v2/` answers. The server's output goes to `server.log` in that directory.
    pub fn start(binary: &Path) -> Result<RegistryProcess, Error> {
        RegistryProcess::start_with(binary, |_| Ok(Vec::new()))
    }

    /// Like [`RegistryProcess::start`], after `setup` has run with the temporary directory (to
    /// write an htpasswd file there, say): the server gets the environment variables `setup`
    /// returns (`REGISTRY_AUTH=htpasswd`, ...) on top of this process's environment.
    pub fn start_with(
        binary: &Path,
        setup: impl FnOnce(&Path) -> Result<Vec<(String, String)>, Error>,
    ) -> Result<RegistryProcess, Error> {
        RegistryProcess::start_configured(binary, &Settings::default(), setup)
    }

    /// Like [`RegistryProcess::start_with`], with `settings` in the configuration. `setup` may
    /// also fill the storage root ([`RegistryProcess::data_dir`] is `DIR/data`) before the
    /// server starts.
    pub fn start_configured(
        binary: &Path,
        settings: &Settings,
        setup: impl FnOnce(&Path) -> Result<Vec<(String, String)>, Error>,
    ) -> Result<RegistryProcess, Error> {
        let dir = unique_temp_dir()?;
        let env = match setup(&dir) {
            Ok(env) => env,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let config = dir.join("config.yml");
        std::fs::write(&config, settings.yaml(&dir.join("data"), addr))?;
        let log = std::fs::File::create(dir.join("server.log"))?;
        let spawned = Instant::now();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {}: {e} (build it with `cargo build --release -p registryd`, \
                     or name another server with --server)",
                    binary.display()
                )
            })?;
        let mut server = RegistryProcess {
            child,
            addr,
            dir,
            ready: (Duration::ZERO, 0),
        };
        server.ready = server.wait_ready(spawned).map_err(|e| {
            format!(
                "{} did not start: {e}\n--- server.log\n{}",
                binary.display(),
                server.log()
            )
        })?;
        Ok(server)
    }

    fn wait_ready(&mut self, spawned: Instant) -> Result<(Duration, u16), Error> {
        let deadline = spawned + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("it exited with {status}").into());
            }
            if let Some(status) = answers_v2(self.addr) {
                return Ok((spawned.elapsed(), status));
            }
            if Instant::now() > deadline {
                return Err(
                    format!("no answer on http://{}/v2/ in {START_TIMEOUT:?}", self.addr).into(),
                );
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// The time from spawning the process to the end of its first answer on `GET /v2/`
    /// (polled every millisecond), and that answer's status (200, or 401 with auth).
    pub fn startup(&self) -> (Duration, u16) {
        self.ready
    }

    /// The process id, for [`crate::procfs::Memory::of_pid`].
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The storage root directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        std::fs::read(self.dir.join("server.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the server's log, headed for an error message.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!("--- last lines of the server log\n{tail}")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unique_temp_dir() -> Result<PathBuf, Error> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("registry-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The status of `GET /v2/`, or `None` when nothing answers.
fn answers_v2(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut head = [0u8; 12];
    stream.write_all(request.as_bytes()).ok()?;
    stream.read_exact(&mut head).ok()?;
    if !head.starts_with(b"HTTP/1.") {
        return None;
    }
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
