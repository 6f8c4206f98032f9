//! `ministry-portal`: the example ministry portal (SAML SP) on its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use fedhub_example_ministry_portal::{app, metadata, Config};

/// An example ministry portal that signs people in through fedhub with SAML 2.0.
#[derive(Debug, Parser)]
#[command(name = "ministry-portal", version)]
struct Args {
    /// Where to listen.
    #[arg(long, env = "PORTAL_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// The portal's URL as browsers reach it (default: http://LISTEN).
    #[arg(long, env = "PORTAL_PUBLIC_URL")]
    public_url: Option<String>,
    /// The hub's base URL; its IdP metadata is read from HUB/saml/metadata.
    #[arg(long, env = "PORTAL_HUB", default_value = "http://127.0.0.1:8080")]
    hub: String,
    /// Folder for the portal's key and certificate (created on first start).
    #[arg(long, env = "PORTAL_DATA_DIR", default_value = "ministry-portal-data")]
    data_dir: PathBuf,
    /// The SP entityID (default: PUBLIC_URL/saml/metadata).
    #[arg(long, env = "PORTAL_ENTITY_ID")]
    entity_id: Option<String>,
    /// Print the signed SP metadata and exit.
    #[arg(long)]
    print_metadata: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = Config::new(args.listen, &args.hub);
    if let Some(url) = args.public_url {
        config.public_url = url.trim_end_matches('/').to_string();
    }
    config.data_dir = Some(args.data_dir);
    config.entity_id = args.entity_id;
    if args.print_metadata {
        return match metadata(&config) {
            Ok(xml) => {
                println!("{xml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ministry-portal: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ministry-portal: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ministry-portal: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
                "{} is already in use: choose another with --listen",
                config.listen
            ),
            _ => anyhow::anyhow!("cannot listen on {}: {e}", config.listen),
        })?;
    let router = app(config.clone()).await?;
    eprintln!(
        "ministry portal at {}\n  metadata: {}/saml/metadata\n  hub: {}\n  register it: fedhub rp add-saml --metadata {}/saml/metadata --owner AGENCY_CODE",
        config.base_url(),
        config.base_url(),
        config.hub_url,
        config.base_url()
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
