//! `province-gateway`: the example provincial gateway, an OpenID Connect relying party of fedhub.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use fedhub_example_province_gateway::{serve, Config, DEFAULT_SCOPES};

/// An example provincial gateway that signs people in through fedhub (OpenID Connect).
#[derive(Parser)]
#[command(name = "province-gateway", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8082")]
    listen: SocketAddr,
    /// URL people use to reach the gateway (default: http://LISTEN). The redirect URI to
    /// register is PUBLIC_URL/callback, the post-logout redirect URI PUBLIC_URL/signed-out.
    #[arg(long, env = "GATEWAY_PUBLIC_URL")]
    public_url: Option<String>,
    /// The hub's issuer URL (its server.public_url).
    #[arg(long, env = "GATEWAY_ISSUER", default_value = "http://127.0.0.1:8080")]
    issuer: String,
    /// The client id registered with `fedhub rp add-oidc`.
    #[arg(long, env = "GATEWAY_CLIENT_ID")]
    client_id: String,
    /// The client secret `fedhub rp add-oidc` printed (prefer the environment variable).
    #[arg(long, env = "GATEWAY_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// Scopes to ask for, comma-separated.
    #[arg(long, env = "GATEWAY_SCOPES", value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    /// Show the raw access, refresh and ID tokens on the page (development only).
    #[arg(long)]
    show_tokens: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = Config {
        listen: args.listen,
        public_url: args
            .public_url
            .unwrap_or_else(|| format!("http://{}", args.listen))
            .trim_end_matches('/')
            .to_string(),
        issuer: args.issuer,
        client_id: args.client_id,
        client_secret: args.client_secret,
        scopes: args
            .scopes
            .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()),
        show_tokens: args.show_tokens,
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!(
                "province-gateway: {} is already in use; choose another with --listen",
                config.listen
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("province-gateway: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(2);
        }
    };
    println!(
        "province-gateway on {} (issuer {}, client {}; redirect URI {})",
        config.public_url,
        config.issuer,
        config.client_id,
        config.redirect_uri()
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match serve(listener, config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("province-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}
