//! Everything the service logs during the test binary's run, captured as JSON lines.

use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

use inboxlink::config::{LogFormat, LogSettings};

/// The captured log; forced by every [`super::TestApp`] start.
pub static LOGS: LazyLock<Arc<Mutex<Vec<u8>>>> = LazyLock::new(|| {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = LogWriter(buffer.clone());
    let settings = LogSettings {
        filter: "debug,actix_server=info,h2=info,hyper=info,reqwest=info".into(),
        format: LogFormat::Json,
    };
    inboxlink::telemetry::init(&settings, move || writer.clone());
    buffer
});

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured log so far, as text.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().expect("log buffer")).into_owned()
}

/// The JSON log lines whose span carries `request_id`.
pub fn logged_with(request_id: &str) -> Vec<serde_json::Value> {
    logs()
        .lines()
        .filter(|l| l.contains(request_id))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON log lines"))
        .filter(|l| l["span"]["request_id"] == request_id)
        .collect()
}
