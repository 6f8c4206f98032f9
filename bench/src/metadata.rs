//! `fedhub-load metadata`: a federation's signed aggregate at scale. Generates one (most
//! entities identity providers, the rest service providers), signs it, then times what the
//! hub does with it: the signature check, reading the entities, the database import (first,
//! again unchanged, again with every entity changed), the indexed lookups with thousands of
//! IdPs offered to one relying party, and the sign-in page of a running hub with and without
//! a search.
//!
//! Keys: each entity carries a certificate, but generating ten thousand RSA keys would take
//! minutes and measure nothing the hub does; entities take their certificate from a small pool
//! of real RSA-2048 certificates (`--key-pool`). Sizes and parsing work are those of distinct
//! certificates.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use diesel::prelude::*;
use fedhub::clock::{Clock, SystemClock};
use fedhub::store::{Store, StoreOptions};
use fedhub::upstream::aggregate::{connector_id_for, import};
use fedhub::upstream::lookup;
use fedhub_metadata::keys::{generate, KeyAlg};
use fedhub_metadata::xml::aggregate::verify_timed;
use fedhub_metadata::xml::aggregate::CertificateDer;
use fedhub_metadata::xml::aggregate_writer::{entity_xml, signed_aggregate, EntitySpec};
use fedhub_metadata::xml::dsig::XmlSigner;

use crate::hub::{self, Hub, HubSettings};
use crate::setup::{self, Database, Engine};

#[derive(Debug, clap::Args)]
pub struct MetadataArgs {
    /// Entities in the aggregate.
    #[arg(long, default_value_t = 10_000)]
    entities: usize,
    /// Of which service providers, one in this many (the rest are identity providers).
    #[arg(long, default_value_t = 10)]
    sp_every: usize,
    /// Distinct RSA-2048 certificates the entities take theirs from.
    #[arg(long, default_value_t = 8)]
    key_pool: usize,
    /// Identity providers the measured relying party offers.
    #[arg(long, default_value_t = 5_000)]
    rp_idps: usize,
    #[arg(long, value_enum, default_value = "sqlite")]
    engine: Engine,
    /// PostgreSQL server to create the run's database on (`--engine postgres`).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Lookups and page loads per measurement.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// The fedhub binary for the sign-in page measurement (default: next to fedhub-load).
    #[arg(long)]
    fedhub: Option<PathBuf>,
    /// Skip the sign-in page measurement (no hub process).
    #[arg(long)]
    no_hub: bool,
    /// Also write the signed aggregate here (and its signing certificate next to it, as
    /// `NAME.signer.pem`), e.g. to try `fedhub connector import-saml-aggregate` on it.
    #[arg(long)]
    write_aggregate: Option<PathBuf>,
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A certificate as PEM.
fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn entity_id(i: usize) -> String {
    format!("https://idp.org{i}.edu.vn/idp/shibboleth")
}

/// Median and 95th percentile of `samples`.
fn spread(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).copied().unwrap_or_default()
    };
    (at(0.5), at(0.95))
}

fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    let started = Instant::now();
    let v = f()?;
    Ok((v, started.elapsed()))
}

/// `requests` runs of `f(i)`: median and p95.
fn repeat(requests: usize, mut f: impl FnMut(usize) -> Result<()>) -> Result<(Duration, Duration)> {
    let mut samples = Vec::with_capacity(requests);
    for i in 0..requests {
        let started = Instant::now();
        f(i)?;
        samples.push(started.elapsed());
    }
    Ok(spread(samples))
}

pub fn run(args: &MetadataArgs) -> Result<()> {
    if args.sp_every < 2 || args.entities < 2 || args.key_pool == 0 {
        bail!("--entities and --sp-every must be at least 2, --key-pool at least 1");
    }
    let now = SystemClock.now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "aggregate of {} entities (one in {} a service provider), certificates from a pool of {}; {} cores",
        args.entities, args.sp_every, args.key_pool, cores
    );

    // 1. The federation's key, the entities' certificates, the document, its signature.
    let (pool, t) = timed(|| {
        (0..args.key_pool)
            .map(|i| {
                generate(KeyAlg::Rsa2048, &format!("entity-{i}"), now - 60, 365)
                    .map_err(|e| anyhow!("key: {e}"))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let fed =
        generate(KeyAlg::Rsa2048, "federation", now - 60, 365).map_err(|e| anyhow!("key: {e}"))?;
    println!("generate {} RSA keys: {}", args.key_pool + 1, ms(t));
    let specs: Vec<EntitySpec> = (0..args.entities)
        .map(|i| EntitySpec {
            entity_id: entity_id(i),
            display_name: format!("Trường Đại học số {i} – Tổ chức thử nghiệm"),
            scope: format!("org{i}.edu.vn"),
            idp: i % args.sp_every != 0,
            endpoint: format!("https://idp.org{i}.edu.vn/sso"),
            cert_der: pool[i % pool.len()].cert_der.clone(),
        })
        .collect();
    let idps: Vec<usize> = (0..args.entities)
        .filter(|i| i % args.sp_every != 0)
        .collect();
    let signer = XmlSigner::new(KeyAlg::Rsa2048, &fed.private_der, &fed.cert_der)
        .map_err(|e| anyhow!("signer: {e}"))?;
    let write = |valid_until: i64| -> Result<String> {
        let entities: Vec<String> = specs.iter().map(entity_xml).collect();
        signed_aggregate(&signer, "agg", "urn:vn:fedhub:load", valid_until, &entities)
            .map_err(|e| anyhow!("signing: {e}"))
    };
    let (xml, t) = timed(|| write(now + 7 * 86_400))?;
    println!(
        "write and sign (fedhub's own enveloped-signature code, RSA-SHA256): {} bytes in {}",
        xml.len(),
        ms(t)
    );
    if let Some(path) = &args.write_aggregate {
        std::fs::write(path, &xml).with_context(|| format!("writing {}", path.display()))?;
        let pem_path = path.with_extension("signer.pem");
        std::fs::write(&pem_path, pem(&fed.cert_der))
            .with_context(|| format!("writing {}", pem_path.display()))?;
        println!(
            "aggregate written to {}, its signing certificate to {}",
            path.display(),
            pem_path.display()
        );
    }

    // 2. Verification (libxmlsec through samael) and reading the entities.
    let trusted = [CertificateDer::from(fed.cert_der.clone())];
    let ((agg, phases), t_verify) =
        timed(|| verify_timed(xml.as_bytes(), &trusted, now).map_err(|e| anyhow!("verify: {e}")))?;
    println!(
        "verify + read: {} (checks {}, signature {}, entities {}): {} IdPs, {} other, {} skipped",
        ms(t_verify),
        ms(phases.checks),
        ms(phases.signature),
        ms(phases.entities),
        agg.idps.len(),
        agg.other_entities,
        agg.skipped.len()
    );
    if agg.idps.len() != idps.len() {
        bail!("expected {} IdPs, read {}", idps.len(), agg.idps.len());
    }

    // 3. The database: a fresh one, seeded as the other load tools do, with one OIDC client.
    let dir = tempfile::tempdir().context("temporary folder")?;
    let database = Database::create(args.engine, &args.postgres_url, dir.path())?;
    let prepared = setup::prepare(
        &database.url,
        dir.path(),
        KeyAlg::Rsa2048,
        &setup::UpstreamSetup::Demo,
        |store, now| {
            setup::register_oidc(
                store,
                now,
                fedhub::rp::oidc::AccessTokenFormat::Jwt,
                "RS256",
            )
        },
    )?;
    let store = Store::connect(&database.url, &StoreOptions::default())?;
    let client_id = prepared.registered.client_id.clone();
    let rp = store
        .read(|c| fedhub::rp::by_entity_id(c, &client_id))?
        .ok_or_else(|| anyhow!("the load client is not registered"))?
        .id;
    // The relying party lists its connectors (the demo one), so the import may add to it.
    store.write(|c| fedhub::upstream::allow_for_rp(c, &rp, &["demo".to_string()]))?;
    let rps = [rp.clone()];
    let (report, t_import) = timed(|| Ok(store.write(|c| import(c, "load", agg, &rps, now))?))?;
    println!(
        "import on {}: {} (one transaction): {}",
        args.engine.as_str(),
        ms(t_import),
        report.summary()
    );
    println!(
        "verify + read + import: {} ({:.0} entities per second)",
        ms(t_verify + t_import),
        args.entities as f64 / (t_verify + t_import).as_secs_f64()
    );
    let again = |xml: &str, what: &str| -> Result<()> {
        let ((agg, _), t_v) = timed(|| {
            verify_timed(xml.as_bytes(), &trusted, now).map_err(|e| anyhow!("verify: {e}"))
        })?;
        let (report, t_i) = timed(|| Ok(store.write(|c| import(c, "load", agg, &[], now))?))?;
        println!(
            "import again, {what}: verify + read {}, import {}: {}",
            ms(t_v),
            ms(t_i),
            report.summary()
        );
        Ok(())
    };
    again(&xml, "unchanged")?;
    // A new validUntil changes every entity's stored metadata: the federation's daily refresh.
    again(&write(now + 8 * 86_400)?, "every entity changed")?;

    // 4. The relying party offers `rp_idps` of them.
    let offered: Vec<String> = idps
        .iter()
        .take(args.rp_idps)
        .map(|i| connector_id_for(&entity_id(*i)))
        .collect();
    let beyond: Vec<String> = idps
        .iter()
        .skip(args.rp_idps)
        .map(|i| connector_id_for(&entity_id(*i)))
        .collect();
    store.write(|c| {
        use fedhub::store::schema::rp_connectors as rc;
        for chunk in beyond.chunks(500) {
            diesel::delete(
                rc::table
                    .filter(rc::rp_id.eq(&rp))
                    .filter(rc::connector_id.eq_any(chunk)),
            )
            .execute(c)?;
        }
        Ok(())
    })?;
    println!(
        "relying party {rp} offers {} SAML IdPs and the demo connector",
        offered.len()
    );
    lookups(args, &store, &rp, &idps)?;
    drop(store);

    // 5. The sign-in page of a running hub.
    if !args.no_hub {
        sign_in_page(args, &database, &prepared, &idps)?;
    }
    drop(database);
    Ok(())
}

/// The database side of the sign-in page and of a hinted login, in-process: before (every
/// connector of the relying party read and parsed) and after (index reads).
fn lookups(args: &MetadataArgs, store: &Store, rp: &str, idps: &[usize]) -> Result<()> {
    let n = args.requests;
    let pick = |i: usize| entity_id(idps[(i * 7919) % idps.len().min(args.rp_idps)]);
    let (p50, p95) = repeat(n, |i| {
        let hint = pick(i);
        let found = store.read(|c| lookup::by_hint(c, rp, &hint))?;
        found
            .map(|_| ())
            .ok_or_else(|| anyhow!("hint {hint} not found"))
    })?;
    println!("hint lookup (index): median {}, p95 {}", ms(p50), ms(p95));
    let (p50, p95) = repeat(n.min(20), |i| {
        let hint = pick(i);
        let all = store.read(|c| fedhub::upstream::for_rp(c, rp))?;
        all.iter()
            .find(|c| c.answers_to(&hint))
            .map(|_| ())
            .ok_or_else(|| anyhow!("hint {hint} not found"))
    })?;
    println!(
        "hint lookup as before (every connector read, settings parsed): median {}, p95 {}",
        ms(p50),
        ms(p95)
    );
    let (p50, p95) = repeat(n, |i| {
        let id = connector_id_for(&pick(i));
        let found = store.read(|c| lookup::allowed(c, rp, &id))?;
        found.map(|_| ()).ok_or_else(|| anyhow!("{id} not allowed"))
    })?;
    println!("allowed (index): median {}, p95 {}", ms(p50), ms(p95));
    let (p50, p95) = repeat(n, |_| {
        store.read(|c| lookup::offer(c, rp, None, 12, 20))?;
        Ok(())
    })?;
    println!(
        "sign-in page offer, no search: median {}, p95 {}",
        ms(p50),
        ms(p95)
    );
    let (p50, p95) = repeat(n, |i| {
        let q = format!("số {}", idps[(i * 7919) % idps.len().min(args.rp_idps)]);
        store.read(|c| lookup::offer(c, rp, Some(&q), 12, 20))?;
        Ok(())
    })?;
    println!(
        "sign-in page offer, search: median {}, p95 {}",
        ms(p50),
        ms(p95)
    );
    Ok(())
}

/// GETs of the sign-in page through a running hub: without a search, with one, and with a
/// hint that sends the browser straight to the IdP.
fn sign_in_page(
    args: &MetadataArgs,
    database: &Database,
    prepared: &setup::Prepared<setup::OidcClient>,
    idps: &[usize],
) -> Result<()> {
    let binary = hub::locate(args.fedhub.as_deref())?;
    let dir = tempfile::tempdir().context("temporary folder")?;
    let log_file = dir.path().join("hub.log");
    let mut hub = Hub::start(&HubSettings {
        binary: &binary,
        port: hub::free_port()?,
        database_url: &database.url,
        at_rest_key_file: &prepared.at_rest_key_file,
        log_level: "warn",
        pool_size: None,
        extra: &[],
        saml_algorithm: "RS256",
        log_file: &log_file,
        dir: dir.path(),
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = &prepared.registered;
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        hub.wait_ready(&http, Duration::from_secs(30)).await?;
        let base = hub.base_url.clone();
        let start = |hint: Option<String>| {
            let mut u = url::Url::parse(&format!("{base}/oidc/authorize")).map_err(anyhow::Error::from);
            if let Ok(u) = u.as_mut() {
                let mut q = u.query_pairs_mut();
                q.append_pair("response_type", "code")
                    .append_pair("client_id", &client.client_id)
                    .append_pair("redirect_uri", setup::REDIRECT_URI)
                    .append_pair("scope", "openid")
                    .append_pair("state", "s")
                    .append_pair("nonce", "n")
                    .append_pair("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
                    .append_pair("code_challenge_method", "S256");
                if let Some(h) = &hint {
                    q.append_pair("idp_hint", h);
                }
            }
            let http = http.clone();
            async move {
                let r = http.get(u?).send().await?;
                if r.status() != reqwest::StatusCode::SEE_OTHER {
                    bail!("authorize: HTTP {}", r.status());
                }
                let login = r
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("authorize: no Location"))?;
                let cookie = r
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find(|v| v.starts_with("fedhub_login="))
                    .and_then(|v| v.split(';').next())
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("authorize: no login cookie"))?;
                Ok((login, cookie))
            }
        };
        let (login, cookie) = start(None).await?;
        let page = |path: String, want: reqwest::StatusCode| {
            let (http, cookie, base) = (http.clone(), cookie.clone(), base.clone());
            async move {
                let started = Instant::now();
                let r = http
                    .get(format!("{base}{path}"))
                    .header("cookie", cookie)
                    .send()
                    .await?;
                let status = r.status();
                let body = r.bytes().await?;
                if status != want {
                    bail!("{path}: HTTP {status}");
                }
                Ok::<_, anyhow::Error>((started.elapsed(), body.len()))
            }
        };
        for (what, query) in [
            ("no search", String::new()),
            ("search by name", "?q=so+4321".to_string()),
            ("search by domain", "?q=org77".to_string()),
        ] {
            let mut samples = Vec::new();
            let mut size = 0;
            for _ in 0..args.requests {
                let (t, len) = page(format!("{login}{query}"), reqwest::StatusCode::OK).await?;
                samples.push(t);
                size = len;
            }
            let (p50, p95) = spread(samples);
            println!(
                "sign-in page over HTTP, {what}: median {}, p95 {}, {} bytes",
                ms(p50),
                ms(p95),
                size
            );
        }
        let mut samples = Vec::new();
        for i in 0..args.requests {
            let hint = entity_id(idps[(i * 7919) % idps.len().min(args.rp_idps)]);
            let (login, cookie) = start(Some(hint)).await?;
            let started = Instant::now();
            let r = http
                .get(format!("{base}{login}"))
                .header("cookie", cookie)
                .send()
                .await?;
            if r.status() != reqwest::StatusCode::SEE_OTHER {
                bail!("hinted sign-in page: HTTP {}", r.status());
            }
            samples.push(started.elapsed());
        }
        let (p50, p95) = spread(samples);
        println!(
            "hinted sign-in (straight to the IdP: signed AuthnRequest) over HTTP: median {}, p95 {}",
            ms(p50),
            ms(p95)
        );
        Ok::<_, anyhow::Error>(())
    })?;
    if !hub.running() {
        bail!("the hub stopped; its log:\n{}", hub.log_tail(20));
    }
    Ok(())
}
