//! The example portals in the demo: the ministry portal (a SAML SP, `examples/ministry-portal`)
//! and the provincial gateway (an OIDC RP, `examples/province-gateway`). They are separate
//! programs, built next to `fedhub` (`scripts/demo` builds all three); the demo registers them
//! with the hub as an operator would, gives them members and a province admin for the tour,
//! and runs them as child processes that end with the demo.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::admin::memberships::{self as ms, Admin};
use crate::directory::{accounts, admin_grants};
use crate::error::{Error, Result};
use crate::rp::oidc::OidcRegistration;
use crate::rp::saml::SamlRegistration;
use crate::store::{Db, Store};

pub const MINISTRY_BINARY: &str = "ministry-portal";
pub const GATEWAY_BINARY: &str = "province-gateway";

/// The gateway's client id at the hub.
pub const GATEWAY_CLIENT_ID: &str = "cong-dvc-quang-ninh";
/// The ministry portal belongs to the Ministry of Finance; the gateway to Quảng Ninh.
const MINISTRY_OWNER: &str = "000.00.00.G12";
const PROVINCE: &str = "000.00.00.H49";
/// The role both portals give their members.
pub const STAFF_ROLE: &str = "Chuyên viên";

/// The province top admin of the tour: an agency account of Quảng Ninh's People's Committee
/// office, signed in with the demo connector by CCCD.
pub const ADMIN_NAME: &str = "Phạm Thị Hoa";
pub const ADMIN_NATIONAL_ID: &str = "022190000456";

/// The ports the portals listen on, held from the start so that a used one stops the demo
/// before anything is written.
pub struct Reserved {
    ministry: std::net::TcpListener,
    gateway: std::net::TcpListener,
}

impl Reserved {
    pub fn take(ministry: SocketAddr, gateway: SocketAddr) -> Result<Reserved> {
        let bind = |addr: SocketAddr, what: &str| {
            std::net::TcpListener::bind(addr).map_err(|e| {
                Error::invalid(
                    "--listen",
                    format!(
                        "the {what} of the demo needs {addr}, which is in use ({e}); \
                         stop what uses it or pick other ports with --listen"
                    ),
                )
            })
        };
        Ok(Reserved {
            ministry: bind(ministry, "ministry portal")?,
            gateway: bind(gateway, "provincial gateway")?,
        })
    }

    fn addrs(&self) -> Result<(SocketAddr, SocketAddr)> {
        let addr = |l: &std::net::TcpListener| l.local_addr().map_err(Error::internal);
        Ok((addr(&self.ministry)?, addr(&self.gateway)?))
    }
}

/// Where the example programs are: next to the running `fedhub`.
pub fn binaries() -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::current_exe().ok()?.parent()?.to_path_buf();
    let find = |name: &str| {
        let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        path.is_file().then_some(path)
    };
    Some((find(MINISTRY_BINARY)?, find(GATEWAY_BINARY)?))
}

/// The running portals. Dropping this stops them.
pub struct Portals {
    pub ministry_url: String,
    pub gateway_url: String,
    _children: Vec<tokio::process::Child>,
}

/// Registers both portals, seeds their members and the province admin, and starts them.
/// Call inside a Tokio runtime (the children are Tokio processes, killed on drop).
pub fn start(
    store: &Store,
    vault: &fedhub_metadata::AtRestKey,
    hub_url: &str,
    data_dir: &Path,
    reserved: Reserved,
    (ministry_bin, gateway_bin): (PathBuf, PathBuf),
    now: i64,
) -> Result<Portals> {
    let (ministry_addr, gateway_addr) = reserved.addrs()?;
    let ministry_url = format!("http://{ministry_addr}");
    let gateway_url = format!("http://{gateway_addr}");
    let ministry_dir = data_dir.join("ministry-portal");
    let ministry_args = |cmd: &mut std::process::Command| {
        cmd.arg("--listen")
            .arg(ministry_addr.to_string())
            .arg("--public-url")
            .arg(&ministry_url)
            .arg("--hub")
            .arg(hub_url)
            .arg("--data-dir")
            .arg(&ministry_dir);
    };

    // The portal makes its key on first start; its metadata is what a ministry sends in.
    let mut print = std::process::Command::new(&ministry_bin);
    ministry_args(&mut print);
    let out = print
        .arg("--print-metadata")
        .output()
        .map_err(|e| Error::internal(format!("cannot run {}: {e}", ministry_bin.display())))?;
    if !out.status.success() {
        return Err(Error::internal(format!(
            "{} --print-metadata failed: {}",
            ministry_bin.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let metadata_xml = String::from_utf8(out.stdout).map_err(Error::internal)?;

    let secret = seed(store, vault, &metadata_xml, &gateway_url, now)?;

    // Free the reserved ports just before the portals bind them.
    drop(reserved);
    let mut children = Vec::new();
    let mut ministry = std::process::Command::new(&ministry_bin);
    ministry_args(&mut ministry);
    children.push(spawn(ministry)?);
    let mut gateway = std::process::Command::new(&gateway_bin);
    gateway
        .arg("--listen")
        .arg(gateway_addr.to_string())
        .arg("--public-url")
        .arg(&gateway_url)
        .arg("--issuer")
        .arg(hub_url)
        .arg("--client-id")
        .arg(GATEWAY_CLIENT_ID)
        .env("GATEWAY_CLIENT_SECRET", secret);
    children.push(spawn(gateway)?);
    Ok(Portals {
        ministry_url,
        gateway_url,
        _children: children,
    })
}

/// Registers the ministry portal (from its metadata) and the gateway (at `gateway_url`), and
/// seeds the tour's members and province admin, in one transaction; returns the gateway's
/// client secret. (The end-to-end tests run the portals in-process and call this too.)
pub fn seed(
    store: &Store,
    vault: &fedhub_metadata::AtRestKey,
    ministry_metadata: &str,
    gateway_url: &str,
    now: i64,
) -> Result<String> {
    store.write(|c| {
        let (ministry, gateway, secret) = register(c, ministry_metadata, gateway_url, now)?;
        seed_people(c, vault, &ministry, &gateway, now)?;
        Ok(secret)
    })
}

fn spawn(cmd: std::process::Command) -> Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd.spawn()
        .map_err(|e| Error::internal(format!("cannot start an example portal: {e}")))
}

/// Registers the ministry portal from its metadata and the gateway as an OIDC client; returns
/// their ids and the gateway's client secret.
fn register(
    c: &mut Db,
    metadata_xml: &str,
    gateway_url: &str,
    now: i64,
) -> Result<(String, String, String)> {
    let ministry = crate::rp::saml::add(
        c,
        &SamlRegistration {
            metadata_xml: metadata_xml.to_string(),
            metadata_url: None,
            owner_agency_code: MINISTRY_OWNER.into(),
            display_name: Some("Cổng thông tin Bộ Tài chính (ví dụ)".into()),
            sign: None,
            encrypt_assertion: None,
            name_id_format: None,
            release: None,
            require_activated_membership: Some(true),
        },
        now,
    )?;
    let gateway = crate::rp::oidc::add(
        c,
        &OidcRegistration {
            client_id: Some(GATEWAY_CLIENT_ID.into()),
            owner_agency_code: PROVINCE.into(),
            display_name: Some("Cổng dịch vụ công tỉnh Quảng Ninh (ví dụ)".into()),
            redirect_uris: vec![format!("{gateway_url}/callback")],
            post_logout_redirect_uris: vec![format!("{gateway_url}/signed-out")],
            backchannel_logout_uri: Some(format!("{gateway_url}/backchannel-logout")),
            scopes: Some(
                crate::rp::oidc::SCOPES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            require_activated_membership: Some(true),
            ..Default::default()
        },
        now,
    )?;
    let secret = gateway
        .client_secret
        .ok_or_else(|| Error::internal("the gateway was registered without a secret"))?;
    Ok((ministry.id, gateway.rp.id, secret))
}

/// The tour's people: Nguyễn Văn An, an activated member of both portals; Trần Thị Bình, not
/// yet activated at the ministry portal (refused there) and a member in Hồ Chí Minh City at
/// the gateway (outside the province admin's reach); Lê Minh Cường, waiting at the gateway for
/// the province admin to activate him; and that admin, top admin of the gateway for Quảng Ninh.
fn seed_people(
    c: &mut Db,
    vault: &fedhub_metadata::AtRestKey,
    ministry: &str,
    gateway: &str,
    now: i64,
) -> Result<()> {
    let operator = Admin::operator("demo");
    let person = |c: &mut Db, national_id: &str| -> Result<String> {
        accounts::find(c, national_id, 1)?
            .into_iter()
            .next()
            .map(|a| a.id)
            .ok_or_else(|| Error::not_found("account", national_id))
    };
    let an = person(c, super::CITIZEN_AN)?;
    let binh = person(c, super::CITIZEN_BINH)?;
    let cuong = person(c, super::CITIZEN_CUONG)?;
    let admin = person(c, ADMIN_NATIONAL_ID)?;
    let staff = [STAFF_ROLE.to_string()];
    for rp in [ministry, gateway] {
        ms::add_role(c, &operator, rp, STAFF_ROLE, now)?;
    }
    let member = |c: &mut Db, rp: &str, account: &str, unit: &str| {
        ms::add(c, vault, &operator, rp, account, Some(unit), now)
    };
    // The Ministry of Finance's portal: its Tax Department's staff.
    let m = member(c, ministry, &an, "000.00.18.G12")?;
    ms::activate(c, &operator, &m.id, now)?;
    ms::assign_roles(c, &operator, &m.id, &staff, Some("Phòng Kê khai"), now)?;
    member(c, ministry, &binh, "000.00.18.G12")?;
    // Quảng Ninh's gateway.
    let g = member(c, gateway, &an, "000.00.01.H49")?;
    ms::activate(c, &operator, &g.id, now)?;
    ms::assign_roles(c, &operator, &g.id, &staff, None, now)?;
    member(c, gateway, &cuong, "000.01.01.H49")?;
    member(c, gateway, &binh, "000.00.01.H29")?;
    admin_grants::grant_top(
        c,
        &admin_grants::TopGrant {
            account_id: admin,
            rp_id: gateway.to_string(),
            scope_agency_code: PROVINCE.into(),
            delegated_office_code: None,
        },
        now,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_used_portal_port_stops_the_demo_naming_it() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy_addr = busy.local_addr().unwrap();
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let free_addr = free.local_addr().unwrap();
        drop(free);
        let err = match Reserved::take(free_addr, busy_addr) {
            Ok(_) => panic!("a used port was taken"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(&busy_addr.to_string()), "{err}");
        assert!(err.contains("provincial gateway"), "{err}");
        // Nothing is held after the refusal: the free port is free again.
        std::net::TcpListener::bind(free_addr).unwrap();
    }
}
