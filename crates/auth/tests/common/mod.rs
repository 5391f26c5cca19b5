//! What the test binary logs, for tests that check the reasons written to the operator's log.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Everything logged at debug level and above by this test binary.
///
/// One global subscriber, installed once: a per-thread default (`set_default`) is unreliable
/// while other tests on other threads install and drop theirs, because tracing keeps its level
/// filter and callsite interest globally. Tests find their own lines by something unique to them
/// (a user name).
#[derive(Clone, Default)]
pub(crate) struct CapturedLog(Arc<Mutex<Vec<u8>>>);

/// The binary's captured log, installing it on first use.
pub(crate) fn captured_log() -> &'static CapturedLog {
    static LOG: OnceLock<CapturedLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = CapturedLog::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        log
    })
}

impl CapturedLog {
    /// The lines logged so far that contain `marker`.
    pub(crate) fn lines_with(&self, marker: &str) -> Vec<String> {
        let text = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|line| line.contains(marker))
            .map(str::to_owned)
            .collect()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
