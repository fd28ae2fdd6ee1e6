//! Peers that misbehave at the TCP level, for the mail servers and the
//! webhook receivers of the battery: one that accepts and closes, one that
//! resets, one that accepts and never says a byte; and a port where nothing
//! listens.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// How a bad peer treats a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Accepts, then closes at once (a FIN before the TLS handshake).
    AcceptClose = 0,
    /// Accepts, then resets (SO_LINGER 0: an RST).
    Reset = 1,
    /// Accepts and holds the connection without a byte, until the client goes.
    Silent = 2,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::AcceptClose, Mode::Reset, Mode::Silent];
    pub fn name(self) -> &'static str {
        match self {
            Mode::AcceptClose => "accepts and closes",
            Mode::Reset => "resets",
            Mode::Silent => "accepts and never speaks",
        }
    }
}

/// A listener on a thread that treats each connection as its [`Mode`] says.
pub fn bad_server(mode: Arc<AtomicU8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            match mode.load(Ordering::SeqCst) {
                0 => drop(conn),
                1 => {
                    let socket = socket2::SockRef::from(&conn);
                    let _ = socket.set_linger(Some(Duration::ZERO));
                    drop(conn);
                }
                _ => {
                    // Held until the client closes it (a read then ends).
                    std::thread::spawn(move || {
                        let mut conn = conn;
                        let mut sink = [0u8; 1024];
                        while matches!(std::io::Read::read(&mut conn, &mut sink), Ok(n) if n > 0) {}
                    });
                }
            }
        }
    });
    address
}

/// `host:port` where nothing listens.
pub fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    drop(listener);
    address
}
