//! The accept side of the small servers: a listener on a free port of
//! `127.0.0.1` whose thread hands every connection to a thread of its own,
//! until the value is dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};

use super::LOCAL_IP;

#[derive(Debug)]
pub(super) struct Acceptor {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    /// Listens on a free port; runs `serve` for each connection on a
    /// detached thread `{name}-conn` (it ends on its own: QUIT, EOF, timeout).
    ///
    /// # Panics
    /// If no local port can be bound.
    pub(super) fn start(name: &str, serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Self {
        let listener =
            TcpListener::bind((LOCAL_IP, 0)).unwrap_or_else(|e| panic!("{name}: bind: {e}"));
        let addr = listener.local_addr().expect("the listener's address");
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (stopped, counted) = (Arc::clone(&stop), Arc::clone(&connections));
        let serve = Arc::new(serve);
        let conn_name = format!("{name}-conn");
        let accept = move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                counted.fetch_add(1, Ordering::SeqCst);
                let serve = Arc::clone(&serve);
                let connection = thread::Builder::new().name(conn_name.clone());
                drop(connection.spawn(move || serve(stream)));
            }
        };
        let thread = thread::Builder::new().name(name.to_owned()).spawn(accept);
        Self {
            addr,
            stop,
            connections,
            thread: Some(thread.expect("spawn the accept thread")),
        }
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub(super) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        drop(TcpStream::connect(self.addr));
        if let Some(t) = self.thread.take() {
            drop(t.join());
        }
    }
}
