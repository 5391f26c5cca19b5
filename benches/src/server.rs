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

/// A running registry server; killed, and its temporary directory removed, when dropped.
#[derive(Debug)]
pub struct RegistryProcess {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
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
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n",
                dir.join("data").display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("server.log"))?;
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
        let mut server = RegistryProcess { child, addr, dir };
        server.wait_ready().map_err(|e| {
            format!(
                "{} did not start: {e}\n--- server.log\n{}",
                binary.display(),
                server.log()
            )
        })?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("it exited with {status}").into());
            }
            if answers_v2(self.addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(
                    format!("no answer on http://{}/v2/ in {START_TIMEOUT:?}", self.addr).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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

fn answers_v2(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut head = [0u8; 9];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.")
}
