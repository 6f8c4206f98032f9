//! `fedhub-load directory-data`: a fresh database holding a directory of national size.
//!
//! What goes through the product, and what is written in bulk:
//! - the schema: `Store::connect` + `migrate`;
//! - agencies: `directory::agencies::import_csv`, first the shipped list (`BUILTIN_CSV`),
//!   then a generated CSV of units at levels 2–4 under every level-1 agency;
//! - relying parties: `rp::oidc::add` and `rp::saml::add` (from generated SP metadata), and
//!   `admin::memberships::ensure_builtin_roles` for each;
//! - accounts: each one checked by `AccountInput::validate`, then inserted in batches with
//!   the columns `directory::accounts::add` writes (`search_name` = `fold_name`);
//! - memberships: inserted in batches with the columns `admin::memberships::add` writes
//!   (`unit_path` = `admin::memberships::unit_path`, `search_name` copied from the account,
//!   `subject` =
//!   `login::resolve::pairwise_subject`), then statuses, groups and roles as the console
//!   would leave them.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use base64::Engine as _;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use fedhub::clock::{Clock, SystemClock};
use fedhub::directory::accounts::AccountInput;
use fedhub::directory::{agencies, fold_name};
use fedhub::store::schema::{
    accounts as ac, agencies as ag, membership_roles as mr, memberships as m, roles,
};
use fedhub::store::Db;
use fedhub_identifiers::AgencyCode;
use fedhub_metadata::AtRestKey;

use super::names::{self, Rng, Weighted};
use super::DataArgs;
use crate::setup::Engine;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Accounts: citizens (CCCD, mostly with a phone) and about 5% organisations (tax code).
    #[arg(long, default_value_t = 100_000)]
    pub accounts: usize,
    /// Agencies in all: the shipped level-1 list plus generated units at levels 2–4.
    #[arg(long, default_value_t = 3_400)]
    pub agencies: usize,
    /// Relying parties: three in four OIDC clients, the rest SAML service providers.
    #[arg(long, default_value_t = 200)]
    pub relying_parties: usize,
    /// Seed of the generator: the same seed and sizes give the same directory (ids aside).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// SQLite only: leave the planner without statistics. By default the data set gets
    /// what `fedhub serve` and `fedhub migrate` do on every start (`Store::optimize`:
    /// `PRAGMA optimize`, a bounded ANALYZE); this shows the case of a database bulk-loaded
    /// behind a running hub. (PostgreSQL always gets VACUUM (ANALYZE) of the filled tables:
    /// its autovacuum does the same soon after a bulk load.)
    #[arg(long)]
    pub sqlite_no_statistics: bool,
    /// Remove the data set (the SQLite file or the PostgreSQL schema) and stop.
    #[arg(long)]
    pub drop: bool,
}

/// A multi-row INSERT on the connection's own engine (diesel's multi-engine connection
/// cannot batch inserts).
macro_rules! batch_insert {
    ($conn:expr, $table:expr, $rows:expr) => {
        match $conn {
            Db::Sqlite(c) => diesel::insert_into($table).values($rows).execute(c),
            Db::Postgres(c) => diesel::insert_into($table).values($rows).execute(c),
        }
    };
}

/// Rows per INSERT statement: well under SQLite's 32,766 and PostgreSQL's 65,535 bound
/// parameters at 12 columns.
const BATCH: usize = 1000;

/// Statuses of the generated memberships, with their shares.
const STATUSES: &[(&str, f64)] = &[
    (fedhub::admin::memberships::ACTIVATED, 0.65),
    (fedhub::admin::memberships::NOT_ACTIVATED, 0.25),
    (fedhub::admin::memberships::LOCKED, 0.10),
];

/// Share of an RP's memberships in units of its owner's level-1 subtree (a ministry's
/// portal is used mostly by that ministry's units); the rest are anywhere.
const OWN_SUBTREE_SHARE: f64 = 0.4;

pub fn run(args: &GenerateArgs) -> Result<()> {
    let data = &args.data;
    if args.drop {
        data.drop_data()?;
        eprintln!("fedhub-load: removed {}", data.describe());
        return Ok(());
    }
    let started = Instant::now();
    let mut rng = Rng::new(args.seed);
    let now = SystemClock.now();
    data.recreate()?;
    let store = data.open(2)?;
    store.migrate().context("migrating")?;
    let mut phase = Phase::new();
    phase.done("schema (Store::connect + migrate)");

    // Agencies: the shipped list, then units under each level-1 agency.
    let shipped = store
        .write(|c| agencies::import_csv(c, agencies::BUILTIN_CSV, now))
        .context("importing the shipped agency list")?;
    let level1 = store.read(|c| agencies::list(c, None))?;
    let csv = units_csv(
        &level1,
        args.agencies.saturating_sub(shipped.added),
        &mut rng,
    )?;
    let units = store
        .write(|c| agencies::import_csv(c, &csv, now))
        .context("importing the generated units")?;
    let tree = Tree::load(&store)?;
    phase.done(&format!(
        "agencies: {} shipped + {} generated units = {} (levels 1/2/3/4: {})",
        shipped.added,
        units.added,
        tree.codes.len(),
        tree.level_counts()
    ));

    // Relying parties through the product's registration, each with its built-in roles.
    let rps = add_relying_parties(&store, &tree, args.relying_parties, &mut rng, now)?;
    phase.done(&format!(
        "relying parties: {} ({} OIDC, {} SAML) with their built-in roles",
        rps.len(),
        rps.iter().filter(|r| !r.saml).count(),
        rps.iter().filter(|r| r.saml).count()
    ));

    let accounts = make_accounts(args.accounts, &mut rng)?;
    let organisations = accounts.iter().filter(|a| a.tax_code.is_some()).count();
    store.write(|c| {
        bulk_cache(c)?;
        insert_accounts(c, &accounts)
    })?;
    phase.done(&format!(
        "accounts: {} ({} citizens, {organisations} organisations)",
        accounts.len(),
        accounts.len() - organisations
    ));

    let vault = AtRestKey::from_base64(
        &AtRestKey::generate_base64().map_err(|e| anyhow!("at-rest key: {e}"))?,
    )
    .map_err(|e| anyhow!("at-rest key: {e}"))?;
    let memberships = make_memberships(&accounts, &rps, &tree, &vault, &mut rng, now);
    let role_rows = pick_roles(&memberships, &rps, &mut rng);
    store.write(|c| {
        bulk_cache(c)?;
        insert_memberships(c, &memberships, &rps, &role_rows)
    })?;
    phase.done(&format!(
        "memberships: {} ({:.2} per account), {} with a role",
        memberships.len(),
        memberships.len() as f64 / accounts.len().max(1) as f64,
        role_rows.len()
    ));

    match data.engine {
        Engine::Postgres => {
            let sql = "VACUUM (ANALYZE) agencies, accounts, relying_parties, roles, memberships, membership_roles";
            store.read(|c| Ok(c.batch_execute(sql)?))?;
            phase.done(sql);
        }
        Engine::Sqlite if args.sqlite_no_statistics => {}
        Engine::Sqlite => {
            store.optimize()?;
            phase.done("PRAGMA optimize (as `fedhub serve` on start)");
        }
    }

    summary(&store)?;
    println!(
        "generated in {:.1} s: {} agencies, {} accounts, {} relying parties, {} memberships in {}",
        started.elapsed().as_secs_f64(),
        tree.codes.len(),
        accounts.len(),
        rps.len(),
        memberships.len(),
        data.describe()
    );
    Ok(())
}

/// Prints how long each step took.
struct Phase(Instant);

impl Phase {
    fn new() -> Phase {
        Phase(Instant::now())
    }

    fn done(&mut self, what: &str) {
        eprintln!(
            "fedhub-load: {:>6.1} s  {what}",
            self.0.elapsed().as_secs_f64()
        );
        self.0 = Instant::now();
    }
}

/// Department names by level; a number is appended when a parent has more children.
const PROVINCE_L2: &[&str] = &[
    "Văn phòng Ủy ban nhân dân",
    "Sở Nội vụ",
    "Sở Tư pháp",
    "Sở Tài chính",
    "Sở Công Thương",
    "Sở Xây dựng",
    "Sở Giáo dục và Đào tạo",
    "Sở Y tế",
    "Sở Nông nghiệp và Môi trường",
    "Sở Khoa học và Công nghệ",
    "Sở Văn hóa, Thể thao và Du lịch",
    "Thanh tra tỉnh",
    "Ban Quản lý các khu công nghiệp",
];
const MINISTRY_L2: &[&str] = &[
    "Văn phòng Bộ",
    "Vụ Tổ chức cán bộ",
    "Vụ Pháp chế",
    "Vụ Kế hoạch - Tài chính",
    "Thanh tra Bộ",
    "Cục Công nghệ thông tin",
    "Cục Quản lý chất lượng",
    "Tổng cục Thống kê",
    "Cục Kiểm tra văn bản",
    "Trung tâm Dữ liệu",
];
const L3: &[&str] = &[
    "Phòng Tổ chức - Hành chính",
    "Phòng Kế hoạch - Tài chính",
    "Phòng Pháp chế",
    "Chi cục Quản lý thị trường",
    "Phòng Một cửa",
    "Trung tâm Phục vụ hành chính công",
    "Ủy ban nhân dân phường",
    "Ủy ban nhân dân xã",
];
const L4: &[&str] = &[
    "Tổ tiếp nhận hồ sơ",
    "Bộ phận trả kết quả",
    "Tổ công tác",
    "Đội kiểm tra",
];

/// Segment `n` (from 1) of a level in base 36 (0-9, A-Z), `width` characters: never all zeros.
fn segment(n: usize, width: usize) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut v = n;
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[v % 36];
        v /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A CSV of `count` units spread evenly over the level-1 agencies: about 12% at level 2,
/// 45% at level 3 and the rest at level 4, each under a random parent one level up.
fn units_csv(level1: &[agencies::Agency], count: usize, rng: &mut Rng) -> Result<String> {
    let mut csv = String::from("code,name_vi,kind,source\n");
    if level1.is_empty() {
        return Ok(csv);
    }
    let mut row = |code: &AgencyCode, name: String| {
        csv.push_str(&format!("{code},{},unit,local\n", csv_field(&name)));
    };
    let per = count / level1.len();
    let extra = count % level1.len();
    for (i, top) in level1.iter().enumerate() {
        let quota = per + usize::from(i < extra);
        if quota == 0 {
            continue;
        }
        let l1 = AgencyCode::parse(&top.code)?;
        let l1seg = l1.level1().to_string();
        let n2 = ((quota as f64 * 0.12).round() as usize).clamp(1, quota);
        let mut n3 = ((quota as f64 * 0.45).round() as usize).min(quota - n2);
        let mut n4 = quota - n2 - n3;
        if n3 == 0 {
            n3 = n4;
            n4 = 0;
        }
        let l2names = if l1seg.starts_with('H') {
            PROVINCE_L2
        } else {
            MINISTRY_L2
        };
        let numbered = |names: &[&str], k: usize| -> String {
            let base = names[k % names.len()];
            match k / names.len() {
                0 => base.to_string(),
                round => format!("{base} số {}", round + 1),
            }
        };
        let mut level2 = Vec::new();
        for k in 0..n2 {
            let code = AgencyCode::parse(&format!("000.00.{}.{l1seg}", segment(k + 1, 2)))?;
            row(&code, numbered(l2names, k));
            level2.push((code, 0usize));
        }
        let mut level3 = Vec::new();
        for k in 0..n3 {
            let parent = rng.below(level2.len());
            let (p, children) = &mut level2[parent];
            *children += 1;
            let code = AgencyCode::parse(&format!(
                "000.{}.{}",
                segment(*children, 2),
                &p.as_str()[7..]
            ))?;
            row(&code, numbered(L3, k));
            level3.push((code, 0usize));
        }
        for k in 0..n4 {
            let parent = rng.below(level3.len());
            let (p, children) = &mut level3[parent];
            *children += 1;
            let code =
                AgencyCode::parse(&format!("{}.{}", segment(*children, 3), &p.as_str()[4..]))?;
            row(&code, numbered(L4, k));
        }
    }
    Ok(csv)
}

/// Every agency, and which ones lie under each level-1 agency.
pub struct Tree {
    pub codes: Vec<AgencyCode>,
    /// Indexes into `codes` by level-1 segment (`H49`).
    pub by_level1: HashMap<String, Vec<usize>>,
}

impl Tree {
    pub fn load(store: &fedhub::store::Store) -> Result<Tree> {
        let all: Vec<String> =
            store.read(|c| Ok(ag::table.select(ag::code).order(ag::code.asc()).load(c)?))?;
        let codes = all
            .iter()
            .map(|c| AgencyCode::parse(c))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut by_level1: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, c) in codes.iter().enumerate() {
            by_level1.entry(c.level1().to_string()).or_default().push(i);
        }
        Ok(Tree { codes, by_level1 })
    }

    fn level_counts(&self) -> String {
        let mut n = [0usize; 4];
        for c in &self.codes {
            n[usize::from(c.level().clamp(1, 4)) - 1] += 1;
        }
        format!("{}/{}/{}/{}", n[0], n[1], n[2], n[3])
    }
}

/// A registered relying party as the generator needs it.
struct Rp {
    id: String,
    owner_level1: String,
    saml: bool,
    role_ids: Vec<String>,
}

fn add_relying_parties(
    store: &fedhub::store::Store,
    tree: &Tree,
    count: usize,
    rng: &mut Rng,
    now: i64,
) -> Result<Vec<Rp>> {
    use fedhub::rp::{oidc, saml};
    // One SP key for every generated SAML SP: registration needs a signing certificate.
    let sp_key = fedhub_metadata::keys::generate(
        fedhub_metadata::keys::KeyAlg::EcP256,
        "fedhub-load directory SP",
        now - 86_400,
        3650,
    )
    .map_err(|e| anyhow!("SP key: {e}"))?;
    let cert = base64::engine::general_purpose::STANDARD.encode(&sp_key.cert_der);
    // Owners: level-1 agencies or their level-2 units.
    let owners: Vec<&AgencyCode> = tree.codes.iter().filter(|c| c.level() <= 2).collect();
    store.write(|c| {
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let owner = *rng.pick(&owners);
            let saml = i % 4 == 3;
            let name = format!("Hệ thống thông tin số {:03} ({owner})", i + 1);
            let rp = if saml {
                let entity = format!("https://rp-{:03}.example.gov.vn/saml", i + 1);
                let metadata_xml = format!(
                    r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}"><md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{entity}/acs" index="0" isDefault="true"/></md:SPSSODescriptor></md:EntityDescriptor>"#
                );
                saml::add(
                    c,
                    &saml::SamlRegistration {
                        metadata_xml,
                        metadata_url: None,
                        owner_agency_code: owner.to_string(),
                        display_name: Some(name),
                        sign: None,
                        encrypt_assertion: None,
                        name_id_format: None,
                        release: None,
                        require_activated_membership: None,
                    },
                    now,
                )?
            } else {
                oidc::add(
                    c,
                    &oidc::OidcRegistration {
                        client_id: Some(format!("rp-{:03}", i + 1)),
                        owner_agency_code: owner.to_string(),
                        display_name: Some(name),
                        redirect_uris: vec![format!(
                            "https://rp-{:03}.example.gov.vn/callback",
                            i + 1
                        )],
                        ..Default::default()
                    },
                    now,
                )?
                .rp
            };
            fedhub::admin::memberships::ensure_builtin_roles(c, &rp.id, now)?;
            let role_ids: Vec<String> = roles::table
                .filter(roles::rp_id.eq(&rp.id))
                .select(roles::id)
                .load(c)?;
            out.push(Rp {
                id: rp.id,
                owner_level1: owner.level1().to_string(),
                saml,
                role_ids,
            });
        }
        Ok(out)
    })
    .context("registering relying parties")
}

/// An account row as `directory::accounts::add` writes it.
pub struct NewAccount {
    pub(crate) id: String,
    kind: &'static str,
    display_name: String,
    search_name: String,
    national_id: Option<String>,
    tax_code: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    created_at: i64,
}

pub(crate) fn make_accounts(count: usize, rng: &mut Rng) -> Result<Vec<NewAccount>> {
    const MAILS: &[&str] = &["gmail.com", "yahoo.com.vn", "outlook.com", "example.vn"];
    let family = Weighted::new(names::FAMILY.iter().map(|(_, w)| *w));
    let mut taken: HashSet<String> = HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    let now = SystemClock.now();
    while out.len() < count {
        let i = out.len();
        let input = if rng.chance(0.05) {
            let tax = names::tax_code(rng);
            if !taken.insert(tax.as_str().to_string()) {
                continue;
            }
            AccountInput {
                kind: "organisation".into(),
                display_name: names::company_name(rng),
                tax_code: Some(tax.as_str().to_string()),
                phone: rng
                    .chance(0.7)
                    .then(|| names::mobile(rng).map(|p| p.national()))
                    .flatten(),
                email: rng
                    .chance(0.5)
                    .then(|| format!("lienhe{i}@congty.example.vn")),
                ..Default::default()
            }
        } else {
            let (name, female) = names::person_name(rng, &family);
            let Some(cccd) = names::cccd(rng, female) else {
                continue;
            };
            if !taken.insert(cccd.as_str().to_string()) {
                continue;
            }
            let email = rng.chance(0.3).then(|| {
                format!(
                    "{}{}@{}",
                    names::email_local(&fold_name(&name)),
                    rng.below(1000),
                    rng.pick(MAILS)
                )
            });
            AccountInput {
                kind: "citizen".into(),
                display_name: name,
                national_id: Some(cccd.as_str().to_string()),
                phone: rng
                    .chance(0.9)
                    .then(|| names::mobile(rng).map(|p| p.national()))
                    .flatten(),
                email,
                ..Default::default()
            }
        };
        // The product's own checks, as for an account typed in or imported.
        let valid = input
            .validate()
            .map_err(|e| anyhow!("generated account {}: {e}", input.key_identifier()))?;
        out.push(NewAccount {
            id: fedhub::store::new_id(),
            kind: valid.kind.as_str(),
            search_name: fold_name(&valid.display_name),
            display_name: valid.display_name,
            national_id: valid.national_id.map(|v| v.as_str().to_string()),
            tax_code: valid.tax_code.map(|v| v.as_str().to_string()),
            phone: valid.phone.map(|v| v.as_str().to_string()),
            email: valid.email.map(|v| v.as_str().to_string()),
            created_at: now - 86_400 * 1000 + rng.below(86_400 * 900) as i64,
        });
    }
    Ok(out)
}

/// SQLite: a page cache of 256 MiB on the loading connection (the default 2 MiB makes
/// random index inserts re-read pages from the OS). Only this connection, only the load.
pub(crate) fn bulk_cache(c: &mut Db) -> fedhub::Result<()> {
    if let Db::Sqlite(conn) = c {
        conn.batch_execute("PRAGMA cache_size = -262144")?;
    }
    Ok(())
}

pub(crate) fn insert_accounts(c: &mut Db, accounts: &[NewAccount]) -> fedhub::Result<()> {
    for chunk in accounts.chunks(BATCH) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|a| {
                (
                    ac::id.eq(&a.id),
                    ac::kind.eq(a.kind),
                    ac::display_name.eq(&a.display_name),
                    ac::search_name.eq(&a.search_name),
                    ac::national_id.eq(a.national_id.as_ref()),
                    ac::tax_code.eq(a.tax_code.as_ref()),
                    ac::agency_code.eq(None::<String>),
                    ac::phone.eq(a.phone.as_ref()),
                    ac::email.eq(a.email.as_ref()),
                    ac::status.eq("active"),
                    ac::created_at.eq(a.created_at),
                    ac::updated_at.eq(a.created_at),
                )
            })
            .collect();
        batch_insert!(c, ac::table, rows)?;
    }
    Ok(())
}

/// A membership row as `admin::memberships::add` writes it, with the status, group and
/// update time later console actions would have given it.
pub struct NewMembership {
    id: String,
    account_id: String,
    rp: usize,
    unit: String,
    unit_path: String,
    search_name: String,
    status: &'static str,
    user_group: Option<String>,
    subject: String,
    created_at: i64,
    updated_at: i64,
}

/// Each account joins 1–4 relying parties (40/30/20/10%), drawn by a Zipf-like popularity
/// (a few national portals hold most people); its unit there is in the RP owner's subtree
/// with probability [`OWN_SUBTREE_SHARE`], otherwise any agency.
fn make_memberships(
    accounts: &[NewAccount],
    rps: &[Rp],
    tree: &Tree,
    vault: &AtRestKey,
    rng: &mut Rng,
    now: i64,
) -> Vec<NewMembership> {
    let mut out = Vec::with_capacity(accounts.len() * 2);
    if rps.is_empty() || tree.codes.is_empty() {
        return out;
    }
    let popularity = Weighted::zipf(rps.len(), 1.0);
    let status = Weighted::new(STATUSES.iter().map(|(_, w)| *w));
    let mut chosen = Vec::with_capacity(4);
    for account in accounts {
        let wanted = match rng.unit() {
            x if x < 0.4 => 1,
            x if x < 0.7 => 2,
            x if x < 0.9 => 3,
            _ => 4,
        }
        .min(rps.len());
        chosen.clear();
        while chosen.len() < wanted {
            let r = popularity.sample(rng);
            if !chosen.contains(&r) {
                chosen.push(r);
            }
        }
        for &r in &chosen {
            let rp = &rps[r];
            let unit = match tree.by_level1.get(&rp.owner_level1) {
                Some(own) if rng.chance(OWN_SUBTREE_SHARE) => &tree.codes[*rng.pick(own)],
                _ => rng.pick(&tree.codes),
            };
            let created_at = account.created_at + rng.below(86_400 * 90) as i64;
            let created_at = created_at.min(now);
            out.push(NewMembership {
                id: fedhub::store::new_id(),
                account_id: account.id.clone(),
                rp: r,
                unit: unit.to_string(),
                unit_path: fedhub::admin::memberships::unit_path(unit),
                search_name: account.search_name.clone(),
                status: STATUSES[status.sample(rng)].0,
                user_group: rng
                    .chance(0.1)
                    .then(|| format!("Nhóm {}", 1 + rng.below(5))),
                subject: fedhub::login::resolve::pairwise_subject(vault, &rp.id, &account.id),
                created_at,
                updated_at: created_at + rng.below((now - created_at).max(1) as usize) as i64,
            });
        }
    }
    out
}

/// About 3% of memberships hold one of their RP's built-in roles.
fn pick_roles(memberships: &[NewMembership], rps: &[Rp], rng: &mut Rng) -> Vec<(usize, String)> {
    memberships
        .iter()
        .enumerate()
        .filter_map(|(i, ms)| {
            let roles = &rps[ms.rp].role_ids;
            (!roles.is_empty() && rng.chance(0.03)).then(|| (i, rng.pick(roles).clone()))
        })
        .collect()
}

fn insert_memberships(
    c: &mut Db,
    memberships: &[NewMembership],
    rps: &[Rp],
    role_rows: &[(usize, String)],
) -> fedhub::Result<()> {
    for chunk in memberships.chunks(BATCH) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|ms| {
                (
                    m::id.eq(&ms.id),
                    m::account_id.eq(&ms.account_id),
                    m::rp_id.eq(&rps[ms.rp].id),
                    m::unit_agency_code.eq(Some(&ms.unit)),
                    m::unit_path.eq(Some(&ms.unit_path)),
                    m::search_name.eq(&ms.search_name),
                    m::status.eq(ms.status),
                    m::user_group.eq(ms.user_group.as_ref()),
                    m::subject.eq(&ms.subject),
                    m::created_at.eq(ms.created_at),
                    m::updated_at.eq(ms.updated_at),
                )
            })
            .collect();
        batch_insert!(c, m::table, rows)?;
    }
    for chunk in role_rows.chunks(BATCH * 4) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(i, role)| {
                (
                    mr::membership_id.eq(&memberships[*i].id),
                    mr::role_id.eq(role),
                )
            })
            .collect();
        batch_insert!(c, mr::table, rows)?;
    }
    Ok(())
}

/// What the data set looks like: the biggest relying parties, and how their members spread
/// over the level-1 subtrees (what one province's admin sees).
fn summary(store: &fedhub::store::Store) -> Result<()> {
    let (top, paths) = store.read(|c| {
        let mut top: Vec<(String, String, i64)> = Vec::new();
        for (rp, n) in m::table
            .group_by(m::rp_id)
            .select((m::rp_id, diesel::dsl::count_star()))
            .order(diesel::dsl::count_star().desc())
            .limit(5)
            .load::<(String, i64)>(c)?
        {
            let entity = fedhub::rp::get(c, &rp)?.entity_id;
            top.push((rp, entity, n));
        }
        let paths: Vec<Option<String>> = match top.first() {
            Some((rp, _, _)) => m::table
                .filter(m::rp_id.eq(rp))
                .select(m::unit_path)
                .load(c)?,
            None => Vec::new(),
        };
        Ok((top, paths))
    })?;
    let mut per_level1: HashMap<String, usize> = HashMap::new();
    for p in paths.iter().flatten() {
        *per_level1
            .entry(p.get(..3).unwrap_or_default().to_string())
            .or_default() += 1;
    }
    let mut sizes: Vec<usize> = per_level1.into_values().collect();
    sizes.sort_unstable();
    eprintln!(
        "fedhub-load: largest relying parties by memberships: {}",
        top.iter()
            .map(|(_, entity, n)| format!("{entity} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let (Some(min), Some(max)) = (sizes.first(), sizes.last()) {
        eprintln!(
            "fedhub-load: the largest one's members per level-1 subtree: min {min}, median {}, max {max}",
            sizes[sizes.len() / 2]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_count_in_base_36_and_are_never_zero() {
        assert_eq!(segment(1, 2), "01");
        assert_eq!(segment(35, 2), "0Z");
        assert_eq!(segment(36, 2), "10");
        assert_eq!(segment(1, 3), "001");
    }
}
