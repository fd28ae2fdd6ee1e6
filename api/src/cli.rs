//! The `inboxlink` command line: `serve` (default), `migrate`, `openapi`, `token`.

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
        /// How long the token is valid, e.g. 1h, 30m, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
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
            let applied = store.migrate()?;
            eprintln!("inboxlink: {} migration(s) applied", applied.len());
            Ok(())
        }
        Command::Serve => serve(settings),
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
        let bind = settings.bind;
        let app = Application::build(settings).await?;
        let address = std::net::SocketAddr::new(bind.ip(), app.port());
        tracing::info!(%address, "inboxlink is listening");
        if !json {
            eprintln!(
                "{}",
                banner(address, app.public_url(), can_mint, &generated)
            );
        }
        app.run_until_stopped().await?;
        tracing::info!("inboxlink stopped");
        Ok(())
    })
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
