//! `fedhub demo`: the hub on 127.0.0.1 with a fresh SQLite database, the shipped agency
//! list, demo agencies and accounts, an admin API token, the SIM-PKI simulator and the two
//! example portals (`portals`), then a short guided tour.

pub mod portals;

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

/// The demo citizens the tour names.
pub const CITIZEN_AN: &str = "001204012345";
pub const CITIZEN_BINH: &str = "022195000123";
pub const CITIZEN_CUONG: &str = "079088004567";

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
    // Take the ports first: a used port stops the demo before it touches anything.
    let listener = runtime.block_on(web::bind(args.listen))?;
    let binaries = portals::binaries();
    let reserved = match (&binaries, args.seed_only) {
        (Some(_), false) => {
            let next = |n: u16| {
                let port = args.listen.port().checked_add(n).ok_or_else(|| {
                    Error::invalid("--listen", "leave two ports above it for the portals")
                })?;
                Ok::<_, Error>(SocketAddr::new(args.listen.ip(), port))
            };
            Some(portals::Reserved::take(next(1)?, next(2)?)?)
        }
        _ => None,
    };
    let demo = prepare(&args.data_dir, config)?;
    if args.seed_only {
        print_tour(&demo.config, &demo.api_token, None);
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
    let running = match (binaries, reserved) {
        (Some(binaries), Some(reserved)) => {
            let vault = demo
                .config
                .at_rest_key()?
                .ok_or_else(|| Error::internal("demo at-rest key missing"))?;
            // The portals run as Tokio child processes, killed when the demo ends.
            let _runtime = runtime.enter();
            Some(portals::start(
                &demo.store,
                &vault,
                &demo.config.base_url(),
                &args.data_dir,
                reserved,
                binaries,
                SystemClock.now(),
            )?)
        }
        _ => None,
    };
    print_tour(&demo.config, &demo.api_token, running.as_ref());
    println!(
        "SIM-PKI simulator: {sim_url}. Choose \"{SIMPKI_NAME}\" and type a demo phone number\n\
         (0912345678, 0987654321, 0905123456); the phone confirms after 3 seconds.\n"
    );
    let state = web::AppState::new(demo.config, demo.store, Arc::new(SystemClock))?;
    let grace = state.config.server.shutdown_grace;
    runtime.block_on(web::serve(listener, state, web::shutdown_signal(), grace))?;
    drop(running);
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
    // The province admin of the tour: staff of Quảng Ninh's People's Committee office.
    let admin = accounts::AccountInput {
        kind: "agency".into(),
        display_name: portals::ADMIN_NAME.into(),
        agency_code: Some("000.00.00.H49".into()),
        national_id: Some(portals::ADMIN_NATIONAL_ID.into()),
        email: Some("hoa.pt@quangninh.example.gov.vn".into()),
        ..Default::default()
    };
    accounts::add(conn, &admin.validate()?, now)?;
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
        .chain(std::iter::once(fedhub_connectors::dev::DevPerson {
            national_id: portals::ADMIN_NATIONAL_ID.into(),
            name: portals::ADMIN_NAME.into(),
        }))
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

fn print_tour(config: &Config, api_token: &str, portals: Option<&portals::Portals>) {
    let base = config.base_url();
    let db = config.database.url.trim_start_matches("sqlite://");
    println!("\nfedhub demo at {base}  (English: {base}/?lang=en)\n");
    match portals {
        Some(p) => println!(
            "A short tour (sign in with \"Tài khoản trình diễn\", the demo accounts):\n\
             \n  1. Ministry portal (SAML):   {ministry}\
             \n     \"Đăng nhập\" → the hub → pick Nguyễn Văn An. The portal shows his unit\
             \n     (Cục Thuế, 000.00.18.G12) and role. Trần Thị Bình is refused there: her\
             \n     membership is not activated yet.\
             \n  2. Provincial gateway (OIDC): {gateway}\
             \n     \"Đăng nhập\": no second sign-in (single sign-on). It shows the ID token's claims\
             \n     and userinfo; try \"Làm mới\" (refresh).\
             \n  3. Sign out everywhere:      {base}/saml/logout\
             \n     Both portals are signed out too.\
             \n  4. Admin console:            {base}/admin\
             \n     Sign in as {admin} (top admin of the gateway for Quảng Ninh), open\
             \n     \"Quản lý người dùng\" and activate Lê Minh Cường. Trần Thị Bình, in Hồ Chí Minh\
             \n     City, is outside the admin's province: acting on her is refused.\n",
            ministry = p.ministry_url,
            gateway = p.gateway_url,
            admin = portals::ADMIN_NAME,
        ),
        None => println!(
            "The example portals are not running (build them with scripts/demo, or\
             \n`cargo build -p fedhub-example-ministry-portal -p fedhub-example-province-gateway`).\
             \nRegister your own: fedhub rp add-saml --metadata SP.xml --owner 000.00.00.H49\
             \nor fedhub rp add-oidc --owner 000.00.00.H49 --redirect-uri http://127.0.0.1:9000/cb\
             \n(with FEDHUB_DATABASE_URL=sqlite://{db}).\n"
        ),
    }
    println!(
        "More:\
         \n  SAML IdP metadata:          {base}/saml/metadata\
         \n  OpenID Provider:            {base}/.well-known/openid-configuration\
         \n  Health / metrics:           {base}/healthz  {base}/metrics\
         \n  Admin API (demo token):     curl -H 'Authorization: Bearer {api_token}' '{base}/admin/api/v1/accounts?q=nguyen'\
         \n\nStop with Ctrl-C. Data lives in {db}.\n"
    );
}
