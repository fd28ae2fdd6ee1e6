//! The `inboxlink` binary: everything lives in the library, see [`inboxlink::cli`].

fn main() -> std::process::ExitCode {
    inboxlink::cli::main()
}
