//! Log output captured in memory, for the tests that assert what is logged and what is not.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::format::{DefaultFields, Format};
use tracing_subscriber::fmt::{MakeWriter, SubscriberBuilder};

/// The log lines written to it, shared by its clones: a `tracing_subscriber` writer.
#[derive(Clone, Debug, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|log| log.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// How many lines at `level` (`"ERROR"`, `"WARN"`, ...) contain `needle`.
    pub fn count(&self, level: &str, needle: &str) -> usize {
        self.text()
            .lines()
            .filter(|line| line.contains(level) && line.contains(needle))
            .count()
    }

    /// How many WARN lines contain `needle`.
    pub fn warnings(&self, needle: &str) -> usize {
        self.count("WARN", needle)
    }

    /// A plain-text subscriber builder writing here, up to `level`.
    pub fn builder(
        &self,
        level: tracing::Level,
    ) -> SubscriberBuilder<DefaultFields, Format, LevelFilter, CapturedLogs> {
        tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .with_max_level(level)
    }
}

/// Captures what this thread logs up to `level` while the guard lives (the tests run their
/// servers in process, so that includes the servers' logs on this thread).
pub fn capture_logs(level: tracing::Level) -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
    let logs = CapturedLogs::default();
    let guard = tracing::subscriber::set_default(logs.builder(level).finish());
    (logs, guard)
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = self.0.lock() {
            log.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
