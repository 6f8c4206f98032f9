//! `fedhub demo`: the hub on 127.0.0.1 with a fresh SQLite database, the shipped agency
//! list, demo agencies and accounts, and an admin API token, then a short guided tour.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::audit::{self, Event};
use crate::cli::{init_logging, store_options, Failure};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::directory::{accounts, agencies};
use crate::error::{Error, Result};
use crate::store::{Db, Store};
use crate::{tokens, web};

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where to listen (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Folder for the demo database and key; emptied of earlier demo files on start.
    #[arg(long, default_value = "demo-data")]
    pub data_dir: PathBuf,
    /// Seed and print the tour, then exit instead of serving (for scripts).
    #[arg(long)]
    pub seed_only: bool,
}

/// Demo agencies below the shipped level-1 list: `code, name_vi, name_en`.
const DEMO_AGENCIES: &[(&str, &str, &str)] = &[
    ("000.00.18.G12", "Cục Thuế", "Tax Department"),
    (
        "000.00.01.H49",
        "Sở Tài chính tỉnh Quảng Ninh",
        "Quang Ninh Department of Finance",
    ),
    (
        "000.00.02.H49",
        "Sở Nội vụ tỉnh Quảng Ninh",
        "Quang Ninh Department of Home Affairs",
    ),
    (
        "000.01.01.H49",
        "Phòng Ngân sách - Sở Tài chính",
        "Budget Division, Department of Finance",
    ),
    (
        "000.00.01.H29",
        "Sở Tài chính Thành phố Hồ Chí Minh",
        "Ho Chi Minh City Department of Finance",
    ),
];

/// Demo accounts: `kind, name, national id / tax code / agency code, phone, email`.
const DEMO_ACCOUNTS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "citizen",
        "Nguyễn Văn An",
        "001204012345",
        "0912345678",
        "an.nguyen@example.vn",
    ),
    (
        "citizen",
        "Trần Thị Bình",
        "022195000123",
        "0987654321",
        "binh.tran@example.vn",
    ),
    (
        "citizen",
        "Lê Minh Cường",
        "079088004567",
        "0905123456",
        "cuong.le@example.vn",
    ),
    (
        "organisation",
        "Công ty TNHH Dịch vụ Số Hạ Long",
        "0101234565",
        "02033123456",
        "lienhe@halong-digital.example.vn",
    ),
    (
        "agency",
        "Ủy ban nhân dân tỉnh Quảng Ninh",
        "000.00.00.H49",
        "02033835555",
        "vanthu@quangninh.example.gov.vn",
    ),
    (
        "agency",
        "Sở Tài chính tỉnh Quảng Ninh",
        "000.00.01.H49",
        "02033836666",
        "stc@quangninh.example.gov.vn",
    ),
];

pub fn run(args: DemoArgs, env: &[(String, String)]) -> std::result::Result<(), Failure> {
    if !args.listen.ip().is_loopback() {
        return Err(
            Error::invalid("--listen", "the demo listens on loopback only (127.0.0.1)").into(),
        );
    }
    let mut config = Config::default();
    config.server.listen = args.listen.to_string();
    config.server.public_url = format!("http://{}", args.listen);
    config.cookies.secure = false;
    config.logging.level = env
        .iter()
        .find(|(k, _)| k == "FEDHUB_LOGGING_LEVEL")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "info,tower_http=warn".into());
    init_logging(&config);

    let runtime = tokio::runtime::Runtime::new().map_err(Error::internal)?;
    // Take the port first: a used port stops the demo before it touches anything.
    let listener = runtime.block_on(web::bind(args.listen))?;
    let demo = prepare(&args.data_dir, config)?;
    print_tour(&demo.config, &demo.api_token);
    if args.seed_only {
        return Ok(());
    }
    // The mobile-signature provider, simulated on a free loopback port.
    let sim_listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(Error::internal)?;
    let sim_url = format!(
        "http://{}",
        sim_listener.local_addr().map_err(Error::internal)?
    );
    let sim = seed_simpki(&demo, &sim_url)?;
    runtime.spawn(crate::simpki_simulator::serve(sim_listener, sim));
    println!(
        "SIM-PKI simulator: {sim_url}. Choose \"{SIMPKI_NAME}\" and type a demo phone number\n\
         (0912345678, 0987654321, 0905123456); the phone confirms after 3 seconds.\n"
    );
    let state = web::AppState::new(demo.config, demo.store, Arc::new(SystemClock))?;
    let grace = state.config.server.shutdown_grace;
    runtime.block_on(web::serve(listener, state, web::shutdown_signal(), grace))?;
    Ok(())
}

const SIMPKI_NAME: &str = "SIM ký số (mô phỏng)";

/// Starts a SIM-PKI simulator whose subscribers are the demo citizens and registers it as
/// the `sim` connector.
fn seed_simpki(demo: &Prepared, url: &str) -> Result<crate::simpki_simulator::Simulator> {
    let api_key = tokens::random_secret("sim-")?;
    let sim = crate::simpki_simulator::Simulator::new(
        std::time::Duration::from_secs(3),
        api_key.clone(),
    )?;
    for (kind, name, id, phone, _) in DEMO_ACCOUNTS {
        if *kind == "citizen" {
            let msisdn = fedhub_connectors::simpki::normalise_msisdn(phone)
                .map_err(|e| Error::internal(e.to_string()))?;
            sim.add_subscriber(&msisdn, id, name)?;
        }
    }
    let reg = crate::upstream::SimPkiRegistration {
        id: "sim".into(),
        display_name: SIMPKI_NAME.into(),
        provider_url: url.to_string(),
        api_key,
        certificate: fedhub_connectors::certificate::CertificateConfig::new(vec![sim.ca_pem()]),
    };
    let vault = demo
        .config
        .at_rest_key()
        .map_err(|e| Error::internal(e.to_string()))?
        .ok_or_else(|| Error::internal("demo at-rest key missing"))?;
    let now = SystemClock.now();
    let event = Event::new("demo", "connector.add_simpki").target("sim");
    audit::audited(&demo.store, event, now, |c| {
        crate::upstream::add_simpki(c, &vault, &reg, now)
    })?;
    Ok(sim)
}

/// A seeded demo, ready to serve.
pub struct Prepared {
    pub config: Config,
    pub store: Store,
    pub api_token: String,
}

/// Fresh database and key in `data_dir`, migrated and seeded; `config` gives the rest.
pub fn prepare(
    data_dir: &std::path::Path,
    mut config: Config,
) -> std::result::Result<Prepared, Failure> {
    let key_file = prepare_dir(data_dir)?;
    config.keys.at_rest_key_file = Some(key_file);
    config.database.url = format!("sqlite://{}", data_dir.join("demo.db").display());
    config.validate()?;
    let store = Store::connect(&config.database.url, &store_options(&config))?;
    store.migrate()?;
    let now = SystemClock.now();
    let api_token = seed(&store, now)?;
    let vault = config
        .at_rest_key()?
        .ok_or_else(|| Error::internal("demo at-rest key missing"))?;
    store.write(|c| {
        crate::keys::ensure(
            c,
            &vault,
            crate::keys::Purpose::Saml,
            config.saml_key_alg(),
            now,
        )
    })?;
    let saml_alg = config.saml_key_alg();
    store
        .write(|c| crate::keys::ensure_all(c, &vault, crate::keys::Purpose::Oidc, saml_alg, now))?;
    Ok(Prepared {
        config,
        store,
        api_token,
    })
}

/// Creates the folder, removes an earlier demo database, writes a fresh at-rest key.
fn prepare_dir(dir: &std::path::Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::invalid(
            "--data-dir",
            format!("cannot create {}: {e}", dir.display()),
        )
    })?;
    for name in ["demo.db", "demo.db-wal", "demo.db-shm"] {
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| {
                Error::invalid(
                    "--data-dir",
                    format!("cannot remove {}: {e}", path.display()),
                )
            })?;
        }
    }
    let key = fedhub_metadata::AtRestKey::generate_base64().map_err(Error::internal)?;
    let key_file = dir.join("at-rest.key");
    std::fs::write(&key_file, key).map_err(|e| {
        Error::invalid(
            "--data-dir",
            format!("cannot write {}: {e}", key_file.display()),
        )
    })?;
    Ok(key_file)
}

/// Seeds the demo directory; returns the admin API token.
pub fn seed(store: &Store, now: i64) -> Result<String> {
    let event = Event::new("demo", "demo.seed");
    audit::audited(store, event, now, |c| seed_directory(c, now))?;
    let event = Event::new("demo", "api_token.create").target("demo");
    audit::audited(store, event, now, |c| {
        tokens::create_api_token(c, "demo", now)
    })
}

fn seed_directory(conn: &mut Db, now: i64) -> Result<()> {
    agencies::import_csv(conn, agencies::BUILTIN_CSV, now)?;
    for (code, name_vi, name_en) in DEMO_AGENCIES {
        let input = agencies::AgencyInput {
            code: (*code).into(),
            name_vi: (*name_vi).into(),
            name_en: Some((*name_en).into()),
            kind: Some("unit".into()),
            source: Some("local".into()),
            note: None,
        };
        agencies::add(conn, &input.validate()?, now)?;
    }
    for (kind, name, id, phone, email) in DEMO_ACCOUNTS {
        let mut input = accounts::AccountInput {
            kind: (*kind).into(),
            display_name: (*name).into(),
            phone: Some((*phone).into()),
            email: Some((*email).into()),
            ..Default::default()
        };
        match *kind {
            "citizen" => input.national_id = Some((*id).into()),
            "organisation" => input.tax_code = Some((*id).into()),
            _ => input.agency_code = Some((*id).into()),
        }
        accounts::add(conn, &input.validate()?, now)?;
    }
    seed_dev_connector(conn, now)
}

/// The demo upstream: the demo citizens, signed in with a click (never on a real hub).
fn seed_dev_connector(conn: &mut Db, now: i64) -> Result<()> {
    use crate::store::schema::connectors::dsl as k;
    use diesel::prelude::*;
    let people: Vec<fedhub_connectors::dev::DevPerson> = DEMO_ACCOUNTS
        .iter()
        .filter(|(kind, ..)| *kind == "citizen")
        .map(|(_, name, id, ..)| fedhub_connectors::dev::DevPerson {
            national_id: (*id).into(),
            name: (*name).into(),
        })
        .collect();
    let config = serde_json::to_string(&fedhub_connectors::dev::DevConfig { people })
        .map_err(Error::internal)?;
    diesel::insert_into(k::connectors)
        .values((
            k::id.eq("demo"),
            k::kind.eq("dev"),
            k::display_name.eq("Tài khoản trình diễn"),
            k::config.eq(config),
            k::enabled.eq(true),
            k::created_at.eq(now),
            k::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

fn print_tour(config: &Config, api_token: &str) {
    let base = config.base_url();
    println!(
        "\nfedhub demo at {base}\n\
         \n  Home page (Vietnamese):   {base}/\n  Home page (English):      {base}/?lang=en\
         \n  Themed error page:        {base}/khong-ton-tai\n  Health / readiness:       {base}/healthz  {base}/readyz\
         \n  Metrics (Prometheus):     {base}/metrics\n\
         \nThe directory holds the shipped ministries and 34 provinces, demo units of Quảng Ninh,\
         \nand demo accounts. Try the admin API with the demo token:\n\
         \n  curl -H 'Authorization: Bearer {api_token}' '{base}/admin/api/v1/accounts?q=nguyen'\
         \n  curl -H 'Authorization: Bearer {api_token}' '{base}/admin/api/v1/agencies?parent=000.00.00.H49'\n\
         \nSAML IdP metadata for ministry portals: {base}/saml/metadata\
         \nRegister a portal: fedhub rp add-saml --metadata SP.xml --owner 000.00.00.H49 --without-membership\
         \n(with FEDHUB_DATABASE_URL=sqlite://{db}); its people then sign in with the demo accounts.\
         \nOpenID Provider for gateways: {base}/.well-known/openid-configuration\
         \nRegister a gateway: fedhub rp add-oidc --owner 000.00.00.H49 --redirect-uri http://127.0.0.1:9000/cb --without-membership\
         \n(same FEDHUB_DATABASE_URL); it prints the client secret once. The example portals arrive with a next release.\
         \nStop with Ctrl-C. Data lives in {}.\n",
        config.database.url.trim_start_matches("sqlite://"),
        db = config.database.url.trim_start_matches("sqlite://")
    );
}
