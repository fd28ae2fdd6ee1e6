//! A webhook receiver: a real HTTP server on `127.0.0.1` that records every
//! request it gets (when, headers, body) and answers as a test tells it (a
//! queue of statuses, then 200; optionally slowly, or by dropping the
//! connection). The tests, the sandbox (`scripts/sandbox.sh --receiver`) and
//! the benchmark use it.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Statuses to answer, in turn; 200 when empty.
    answers: VecDeque<u16>,
    delay: Duration,
    /// Print each request (the sandbox's receiver).
    print: bool,
}

/// See the module documentation.
#[derive(Clone)]
pub struct Receiver {
    state: Arc<Mutex<State>>,
    port: u16,
    _server: Arc<StopOnDrop>,
}

struct StopOnDrop(ServerHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        drop(self.0.stop(false));
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let (status, delay) = {
        let mut s = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (s.answers.pop_front().unwrap_or(200), s.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let received = Received {
        at: Instant::now(),
        path: req.path().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: body.to_vec(),
        status,
    };
    let mut s = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if s.print {
        // The headers a signature check needs, then the body as received.
        let header = |name| received.header(name).unwrap_or("-");
        println!(
            "webhook {} {} -> {status}\n  webhook-id: {}\n  webhook-timestamp: {}\n  webhook-signature: {}\n  {}",
            req.method(),
            received.path,
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
            String::from_utf8_lossy(&received.body)
        );
    }
    s.received.push(received);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .content_type("text/plain")
        .body(format!("answered {status}"))
}

impl Receiver {
    /// Starts on a free port of `127.0.0.1`, on the current Tokio runtime.
    pub async fn start() -> Receiver {
        Self::start_on("127.0.0.1:0", false).await
    }

    /// Starts on `addr`; `print`: print each request to stdout.
    pub async fn start_on(addr: &str, print: bool) -> Receiver {
        Self::try_start_on(addr, print)
            .await
            .expect("receiver: bind and listen")
    }

    /// [`Receiver::start_on`], with the error when `addr` cannot be bound.
    pub async fn try_start_on(addr: &str, print: bool) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(addr)?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State {
            print,
            ..State::default()
        }));
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::to(receive))
        })
        .workers(4)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Receiver {
            state,
            port,
            _server: Arc::new(StopOnDrop(handle)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answer the next requests with these statuses, in turn (then 200).
    pub fn answer_with(&self, statuses: &[u16]) {
        self.lock().answers.extend(statuses.iter().copied());
    }

    /// Wait this long before answering each request.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Everything received so far, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// What was received on one path.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.lock()
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// How many requests arrived on one path (without copying them).
    pub fn count_on(&self, path: &str) -> usize {
        self.lock()
            .received
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Waits until `n` requests arrived on `path` (or `timeout` passed) and
    /// returns what arrived there.
    pub async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        while self.count_on(path) < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.received_on(path)
    }
}
