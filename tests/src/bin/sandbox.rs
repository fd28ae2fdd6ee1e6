//! `inboxlink-sandbox`: the service with a fake Microsoft sign-in and private
//! mail servers, for frontend developers and the Postman collection.
//! See [`inboxlink_tests::sandbox`]; started by `scripts/sandbox.sh`.

use std::process::ExitCode;

use inboxlink_tests::sandbox::{Sandbox, USAGE, parse_args};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("inboxlink-sandbox: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut sandbox = match Sandbox::start(&options).await {
        Ok(sandbox) => sandbox,
        Err(e) => {
            eprintln!("inboxlink-sandbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", sandbox.banner());
    let server = sandbox.take_server();
    let code = tokio::select! {
        () = stop_signal() => {
            eprintln!("inboxlink-sandbox: stopping");
            ExitCode::SUCCESS
        }
        result = async {
            match server {
                Some(server) => server.await,
                None => std::future::pending().await,
            }
        } => {
            match result {
                Ok(Ok(())) => ExitCode::SUCCESS,
                Ok(Err(e)) => {
                    eprintln!("inboxlink-sandbox: the service stopped: {e}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("inboxlink-sandbox: the service stopped: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    };
    // Stop Dovecot and remove the temp dir, then leave at once: the service's
    // worker threads end with the process.
    tokio::task::block_in_place(|| sandbox.stop());
    eprintln!("inboxlink-sandbox: stopped");
    std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
}

/// Ctrl-C (SIGINT) or SIGTERM.
async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            drop(tokio::signal::ctrl_c().await);
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
