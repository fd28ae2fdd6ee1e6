//! `inboxlink-serve`: the product's own command line (`inboxlink`), built
//! here with both backends, for the tests that must run the service as a
//! separate process (to kill it with SIGKILL and start it again).

fn main() -> std::process::ExitCode {
    inboxlink::cli::main()
}
