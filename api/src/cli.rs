//! The `inboxlink` command line: `serve` (default), `migrate`, `openapi`,
//! `token`, `doctor`, `rekey`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::auth::mint::{TokenRequest, mint};
use crate::config::{LogFormat, Settings};
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(
    name = "inboxlink",
    version,
    about = "Connects Microsoft 365 mailboxes to applications over OAuth 2.0"
)]
pub struct Cli {
    /// A TOML file adding to the environment (keys: variable names without INBOXLINK_, lower case).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Write the OpenAPI spec files (3.1 and the 3.0 form for generators).
    Openapi {
        /// Directory to write inboxlink.json and inboxlink-3.0.json into.
        #[arg(long, default_value = "openapi")]
        out: PathBuf,
    },
    /// Mint a JWT with the configured HS256 key, issuer and audience; prints the token alone.
    Token {
        /// The organisation the token acts for.
        #[arg(long)]
        org: String,
        /// A role: admin, operator, viewer or service (repeatable).
        #[arg(long = "role", required = true, value_parser = ["admin", "operator", "viewer", "service"])]
        roles: Vec<String>,
        /// The subject (who acts).
        #[arg(long, default_value = "cli")]
        sub: String,
        /// How long the token is valid, e.g. 1h, 30m, 7d; at most
        /// INBOXLINK_JWT_MAX_LIFETIME_SECONDS (default 1 day), or it is refused.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Check the configuration, the database, the clock and that every encrypted
    /// value decrypts; exits with 1 if anything FAILs. Changes nothing.
    Doctor,
    /// Re-encrypt every stored value not under the newest master key (the first
    /// of INBOXLINK_MASTER_KEY) with it. Safe to run while serving, and again;
    /// exits with 1 if a value does not decrypt (it is left as it is).
    Rekey,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<ReportedFailure>() => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("inboxlink: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Openapi { out } = &command {
        return write_spec(out);
    }
    let settings = Settings::load(cli.config.as_deref())?;
    match command {
        Command::Token {
            org,
            roles,
            sub,
            ttl,
        } => {
            let token = mint(
                &settings.jwt,
                &TokenRequest {
                    subject: sub,
                    org,
                    roles,
                    ttl,
                },
            )?;
            println!("{token}");
            Ok(())
        }
        Command::Migrate => {
            crate::telemetry::init(&settings.log, std::io::stderr);
            let store = crate::store::Store::connect(&settings.database)?;
            let applied = crate::service::lifecycle::migrate(&store)?;
            eprintln!("inboxlink: {} migration(s) applied", applied.len());
            Ok(())
        }
        Command::Serve => serve(settings),
        Command::Doctor => doctor(&settings),
        Command::Rekey => rekey(&settings),
        Command::Openapi { .. } => unreachable!("handled above"),
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    crate::telemetry::init(&settings.log, std::io::stderr);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let json = settings.log.format == LogFormat::Json;
        let can_mint = crate::config::hs256_secret(&settings.jwt).is_some();
        let generated = settings.generated.clone();
        for file in &generated {
            tracing::warn!(file = %file.display(), "generated a key on first run; keep it safe");
        }
        for exposed in crate::ops::file_modes::check(&settings).exposed {
            tracing::warn!(path = %exposed.path.display(), fix = %exposed.fix(), "{}", exposed.message());
        }
        let bind = settings.bind;
        let app = Application::build(settings).await?;
        let address = std::net::SocketAddr::new(bind.ip(), app.port());
        // On SIGTERM/SIGINT the server logs the signal, stops accepting and
        // gives requests in flight up to the shutdown timeout.
        let public_url = app.public_url().clone();
        // Start serving (which installs the SIGTERM/SIGINT handlers) before
        // announcing it, so a signal right after the banner stops gracefully.
        let server = tokio::spawn(app.run_until_stopped());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        tracing::info!(
            %address,
            version = env!("CARGO_PKG_VERSION"),
            shutdown_timeout_seconds = crate::startup::SHUTDOWN_TIMEOUT.as_secs(),
            "inboxlink is listening"
        );
        if !json {
            eprintln!("{}", banner(address, &public_url, can_mint, &generated));
        }
        server
            .await
            .map_err(|e| anyhow::anyhow!("server task: {e}"))??;
        tracing::info!("inboxlink stopped");
        Ok(())
    })
}

/// A command printed a report with failures: `main` only sets the exit code.
#[derive(Debug, thiserror::Error)]
#[error("the report shows failures")]
struct ReportedFailure;

fn doctor(settings: &Settings) -> anyhow::Result<()> {
    crate::telemetry::init(&settings.log, std::io::stderr);
    let report = block_on(crate::ops::doctor::diagnose(settings))?;
    println!("{report}");
    if report.failed() {
        return Err(ReportedFailure.into());
    }
    Ok(())
}

fn rekey(settings: &Settings) -> anyhow::Result<()> {
    crate::telemetry::init(&settings.log, std::io::stderr);
    let report = block_on(async {
        let db = settings.database.clone_settings();
        #[expect(clippy::disallowed_methods, reason = "connecting: no Store yet")]
        let store =
            tokio::task::spawn_blocking(move || crate::store::Store::connect(&db)).await??;
        let cipher = crate::crypto::Cipher::new(&settings.master_keys);
        crate::ops::rekey::rekey(&store, &cipher).await
    })??;
    println!("{report}");
    // Values that do not decrypt stay under their old key: keep it configured.
    if !report.failures.is_empty() {
        return Err(ReportedFailure.into());
    }
    Ok(())
}

/// Runs `f` on a small runtime (the store's blocking work needs one).
fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(f))
}

fn banner(
    address: std::net::SocketAddr,
    public_url: &url::Url,
    can_mint: bool,
    generated: &[PathBuf],
) -> String {
    let base = public_url.as_str().trim_end_matches('/');
    let mut text = format!(
        "\nInboxlink is listening on http://{address}\n  API docs:     {base}/docs/\n  OpenAPI spec: {base}/openapi.json\n  redirect URI: {base}/oauth/callback (register it on your Entra ID app)\n",
    );
    if can_mint {
        text.push_str(
            "  admin token:  inboxlink token --org <your-org> --role admin\n                (from a checkout: cargo run -p inboxlink -- token --org <your-org> --role admin)\n",
        );
    }
    for file in generated {
        text.push_str(&format!(
            "  generated:    {} (keep it safe; never overwritten)\n",
            file.display()
        ));
    }
    text
}

fn write_spec(out: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("inboxlink.json"), crate::openapi::spec_json())?;
    std::fs::write(
        out.join("inboxlink-3.0.json"),
        crate::openapi::spec_30_json(),
    )?;
    eprintln!(
        "inboxlink: wrote {}/inboxlink.json and inboxlink-3.0.json",
        out.display()
    );
    Ok(())
}
