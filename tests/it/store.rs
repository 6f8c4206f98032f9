//! The store conformance suite: every case runs on SQLite and on PostgreSQL.

use diesel::prelude::*;
use fedhub::audit::{self, Event, Outcome};
use fedhub::directory::{accounts, agencies};
use fedhub::store::schema;
use fedhub::store::{counters, Store};
use fedhub::{tokens, Error};
use fedhub_identifiers::AgencyCode;

use crate::support::NOW;

on_both_engines!(
    migrations_are_idempotent,
    agency_needs_its_parent,
    agency_duplicate_is_a_conflict,
    agency_import_is_all_or_nothing,
    agency_import_orders_parents_and_updates,
    builtin_agencies_import,
    account_rules_leave_nothing_behind,
    account_search_finds_each_identifier,
    audit_log_is_append_only,
    audited_failure_is_recorded_and_rolled_back,
    write_transaction_rolls_back,
    concurrent_read_then_write_transactions,
    api_tokens_verify_and_revoke,
    foreign_keys_are_enforced,
    whole_domain_schema_round_trips,
    change_counters_move,
    signing_key_rotation,
    two_first_sign_ins_of_one_person_at_once,
);

fn code(s: &str) -> AgencyCode {
    AgencyCode::parse(s).unwrap()
}

fn agency(c: &str, name: &str) -> agencies::ValidAgency {
    agencies::AgencyInput {
        code: c.into(),
        name_vi: name.into(),
        ..Default::default()
    }
    .validate()
    .unwrap()
}

fn add_agency(store: &Store, c: &str, name: &str) {
    let a = agency(c, name);
    store.write(|conn| agencies::add(conn, &a, NOW)).unwrap();
}

fn agency_count(store: &Store) -> i64 {
    store.read(agencies::count).unwrap()
}

fn citizen(name: &str, id: &str) -> accounts::ValidAccount {
    accounts::AccountInput {
        kind: "citizen".into(),
        display_name: name.into(),
        national_id: Some(id.into()),
        ..Default::default()
    }
    .validate()
    .unwrap()
}

fn migrations_are_idempotent(store: &Store) {
    assert_eq!(store.migrate().unwrap(), 0, "already migrated");
    assert_eq!(store.pending_migrations().unwrap(), 0);
    store.ping().unwrap();
}

fn agency_needs_its_parent(store: &Store) {
    let child = agency("000.00.18.G12", "Cục Thuế");
    let err = store.write(|c| agencies::add(c, &child, NOW)).unwrap_err();
    match err {
        Error::Invalid { field, rule } => {
            assert_eq!(field, "agency_code");
            assert!(rule.contains("000.00.00.G12"), "{rule}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(agency_count(store), 0, "nothing half-written");
    add_agency(store, "000.00.00.G12", "Bộ Tài chính");
    add_agency(store, "000.00.18.G12", "Cục Thuế");
    let got = store
        .read(|c| agencies::get(c, &code("000.00.18.G12")))
        .unwrap();
    assert_eq!(got.level, 2);
    assert_eq!(got.parent_code.as_deref(), Some("000.00.00.G12"));
    assert_eq!(got.kind, "unit");
    let children = store
        .read(|c| agencies::list(c, Some(&code("000.00.00.G12"))))
        .unwrap();
    assert_eq!(children.len(), 1);
}

fn agency_duplicate_is_a_conflict(store: &Store) {
    add_agency(store, "000.00.00.H49", "UBND tỉnh Quảng Ninh");
    let again = agency("000.00.00.h49", "Trùng");
    let err = store.write(|c| agencies::add(c, &again, NOW)).unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { field, .. } if field == "agency_code"),
        "{err:?}"
    );
    let kept = store
        .read(|c| agencies::get(c, &code("000.00.00.H49")))
        .unwrap();
    assert_eq!(kept.name_vi, "UBND tỉnh Quảng Ninh");
}

fn agency_import_is_all_or_nothing(store: &Store) {
    let csv = "code,name_vi\n000.00.00.G12,Bộ Tài chính\n000.00.18.G12,Cục Thuế\n000.05.00.G12,Khoảng trống\n000.00.01.H99,Không có cha\n";
    let err = store
        .write(|c| agencies::import_csv(c, csv, NOW))
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("line 4"), "{text}");
    assert!(text.contains("line 5"), "{text}");
    assert!(text.contains("000.00.00.H99"), "{text}");
    assert_eq!(agency_count(store), 0, "a bad row refuses the whole file");
    let err = store
        .write(|c| agencies::import_csv(c, "code,name\n000.00.00.G12,x\n", NOW))
        .unwrap_err();
    assert!(err.to_string().contains("unknown column `name`"), "{err}");
    let err = store
        .write(|c| agencies::import_csv(c, "code,name_vi,nam_en\n000.00.00.G12,x,y\n", NOW))
        .unwrap_err();
    assert!(
        err.to_string().contains("nam_en"),
        "a header typo is refused, not silently dropped: {err}"
    );
    // Line numbers are file lines, blank lines included.
    let err = store
        .write(|c| {
            agencies::import_csv(
                c,
                "code,name_vi\n000.00.00.G12,Bộ Tài chính\n\n\n000.00.00.G1,x\n",
                NOW,
            )
        })
        .unwrap_err();
    assert!(err.to_string().contains("line 5"), "{err}");
    assert_eq!(agency_count(store), 0);
}

fn agency_import_orders_parents_and_updates(store: &Store) {
    let csv = "code,name_vi,name_en\n000.01.01.H49,Phòng Ngân sách,\n000.00.01.H49,Sở Tài chính,Department of Finance\n000.00.00.H49,UBND tỉnh Quảng Ninh,\n";
    let r = store.write(|c| agencies::import_csv(c, csv, NOW)).unwrap();
    assert_eq!((r.added, r.updated, r.unchanged), (3, 0, 0));
    let r = store.write(|c| agencies::import_csv(c, csv, NOW)).unwrap();
    assert_eq!((r.added, r.updated, r.unchanged), (0, 0, 3));
    let renamed = csv.replace("Sở Tài chính,", "Sở Tài chính tỉnh Quảng Ninh,");
    let r = store
        .write(|c| agencies::import_csv(c, &renamed, NOW + 1))
        .unwrap();
    assert_eq!((r.added, r.updated, r.unchanged), (0, 1, 2));
    let a = store
        .read(|c| agencies::get(c, &code("000.00.01.H49")))
        .unwrap();
    assert_eq!(a.name_vi, "Sở Tài chính tỉnh Quảng Ninh");
    assert_eq!(a.updated_at, NOW + 1);
    assert_eq!(
        store
            .read(|c| agencies::get(c, &code("000.01.01.H49")))
            .unwrap()
            .level,
        3
    );
}

fn builtin_agencies_import(store: &Store) {
    let r = store
        .write(|c| agencies::import_csv(c, agencies::BUILTIN_CSV, NOW))
        .unwrap();
    assert!(r.added >= 34 + 14, "{r:?}");
    let level1 = store.read(|c| agencies::list(c, None)).unwrap();
    assert_eq!(level1.iter().filter(|a| a.kind == "province").count(), 34);
    let qn = level1.iter().find(|a| a.code == "000.00.00.H49").unwrap();
    assert_eq!(qn.source, "official");
}

fn account_rules_leave_nothing_behind(store: &Store) {
    let no_id = accounts::AccountInput {
        kind: "citizen".into(),
        display_name: "Nguyễn Văn An".into(),
        ..Default::default()
    };
    assert!(
        matches!(no_id.validate(), Err(Error::Invalid { field, .. }) if field == "national_id")
    );
    let bad = accounts::AccountInput {
        national_id: Some("999204012345".into()),
        ..no_id.clone()
    };
    assert!(
        matches!(bad.validate(), Err(Error::Invalid { field, rule }) if field == "national_id" && rule.contains("province"))
    );

    let an = citizen("Nguyễn Văn An", "001204012345");
    store.write(|c| accounts::add(c, &an, NOW)).unwrap();
    let twin = citizen("Người Khác", "001204012345");
    let err = store.write(|c| accounts::add(c, &twin, NOW)).unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { field, .. } if field == "national_id"),
        "{err:?}"
    );

    let agency_account = accounts::AccountInput {
        kind: "agency".into(),
        display_name: "UBND tỉnh Quảng Ninh".into(),
        agency_code: Some("000.00.00.H49".into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let err = store
        .write(|c| accounts::add(c, &agency_account, NOW))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "agency_code"),
        "{err:?}"
    );
    assert_eq!(
        store.read(accounts::count).unwrap(),
        1,
        "refused accounts leave nothing behind"
    );
}

fn account_search_finds_each_identifier(store: &Store) {
    add_agency(store, "000.00.00.H49", "UBND tỉnh Quảng Ninh");
    let mut an = citizen("Nguyễn Văn An", "001204012345");
    an.phone = Some(fedhub_identifiers::Phone::parse("0912345678").unwrap());
    let an = store.write(|c| accounts::add(c, &an, NOW)).unwrap();
    store
        .write(|c| accounts::add(c, &citizen("Trần Thị Bình", "022195000123"), NOW))
        .unwrap();
    let org = accounts::AccountInput {
        kind: "organisation".into(),
        display_name: "Công ty Hạ Long".into(),
        tax_code: Some("0101234565".into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    store.write(|c| accounts::add(c, &org, NOW)).unwrap();
    let ag = accounts::AccountInput {
        kind: "agency".into(),
        display_name: "UBND tỉnh Quảng Ninh".into(),
        agency_code: Some("000.00.00.H49".into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    store.write(|c| accounts::add(c, &ag, NOW)).unwrap();

    let names = |q: &str| -> Vec<String> {
        store
            .read(|c| accounts::find(c, q, 50))
            .unwrap()
            .into_iter()
            .map(|a| a.display_name)
            .collect()
    };
    assert_eq!(names("001204012345"), vec!["Nguyễn Văn An"]);
    assert_eq!(
        names("+84 912 345 678"),
        vec!["Nguyễn Văn An"],
        "phone in another form"
    );
    assert_eq!(
        names("nguyen van"),
        vec!["Nguyễn Văn An"],
        "name without diacritics"
    );
    assert_eq!(names("THỊ BÌNH"), vec!["Trần Thị Bình"]);
    assert_eq!(names("0101234565"), vec!["Công ty Hạ Long"]);
    assert_eq!(names("000.00.00.h49"), vec!["UBND tỉnh Quảng Ninh"]);
    assert_eq!(names(&an.id), vec!["Nguyễn Văn An"]);
    assert!(names("100%_").is_empty(), "LIKE wildcards are literal");
    assert!(matches!(
        store.read(|c| accounts::find(c, " a ", 5)),
        Err(Error::Invalid { .. })
    ));
}

fn audit_log_is_append_only(store: &Store) {
    use schema::audit_log::dsl as al;
    store
        .write(|c| audit::record(c, &Event::new("tester", "thing.do").target("x"), NOW))
        .unwrap();
    let upd = store.write(|c| {
        Ok(diesel::update(al::audit_log)
            .set(al::actor.eq("forger"))
            .execute(c)?)
    });
    assert!(upd.is_err(), "UPDATE on audit_log must fail");
    let del = store.write(|c| Ok(diesel::delete(al::audit_log).execute(c)?));
    assert!(del.is_err(), "DELETE on audit_log must fail");
    let rows = store.read(|c| audit::tail(c, 10)).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].actor, "tester");
}

fn audited_failure_is_recorded_and_rolled_back(store: &Store) {
    let result: Result<(), Error> = audit::audited(
        store,
        Event::new("admin-1", "agency.add").target("000.00.00.G12"),
        NOW,
        |c| {
            agencies::add(c, &agency("000.00.00.G12", "Bộ Tài chính"), NOW)?;
            Err(Error::Forbidden("not your agency".into()))
        },
    );
    assert!(result.is_err());
    assert_eq!(agency_count(store), 0, "the action was rolled back");
    let rows = store.read(|c| audit::tail(c, 10)).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, Outcome::Denied.as_str());
    assert!(rows[0]
        .detail
        .as_deref()
        .unwrap_or("")
        .contains("not your agency"));

    audit::audited(store, Event::new("admin-1", "agency.add"), NOW + 5, |c| {
        agencies::add(c, &agency("000.00.00.G12", "Bộ Tài chính"), NOW)
    })
    .unwrap();
    let rows = store.read(|c| audit::since(c, NOW + 1, 100)).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, "success");
    let mut csv = Vec::new();
    audit::write_csv(&rows, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("id,at,actor,action"), "{csv}");
    assert!(
        csv.contains("2026-11-27T00:00:05Z,admin-1,agency.add"),
        "{csv}"
    );
}

fn write_transaction_rolls_back(store: &Store) {
    let result: Result<(), Error> = store.write(|c| {
        agencies::add(c, &agency("000.00.00.G12", "Bộ Tài chính"), NOW)?;
        agencies::add(c, &agency("000.00.18.G12", "Cục Thuế"), NOW)?;
        Err(Error::invalid("test", "fail after two writes"))
    });
    assert!(result.is_err());
    assert_eq!(agency_count(store), 0);
    // The pooled connection is usable again afterwards.
    add_agency(store, "000.00.00.G12", "Bộ Tài chính");
    assert_eq!(agency_count(store), 1);
}

/// Read-then-write transactions from many threads must all succeed. On SQLite this needs
/// BEGIN IMMEDIATE (a deferred transaction fails its lock upgrade with "database is locked"
/// at once, busy timeout or not), and then no update is lost.
fn concurrent_read_then_write_transactions(store: &Store) {
    use schema::change_counters::dsl as cc;
    let (threads, each) = (6, 15);
    store.write(|c| counters::bump(c, "race")).unwrap();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..each {
                    store
                        .write(|c| {
                            let v = counters::current(c, "race")?;
                            diesel::update(cc::change_counters.filter(cc::name.eq("race")))
                                .set(cc::version.eq(v + 1))
                                .execute(c)?;
                            Ok(())
                        })
                        .unwrap();
                }
            });
        }
    });
    let total = store.read(|c| counters::current(c, "race")).unwrap();
    if store.engine() == fedhub::store::Engine::Sqlite {
        assert_eq!(
            total,
            1 + (threads * each) as i64,
            "SQLite serialises writers: no lost update"
        );
    } else {
        // PostgreSQL at READ COMMITTED may lose this pattern's updates; what matters is that
        // no transaction failed. Code that needs exact counts uses atomic updates (bump).
        assert!(total > 1);
    }
}

fn api_tokens_verify_and_revoke(store: &Store) {
    let token = store
        .write(|c| tokens::create_api_token(c, "ci-bot", NOW))
        .unwrap();
    assert!(token.starts_with("fhk_") && token.len() > 40);
    assert_eq!(
        store
            .read(|c| tokens::verify_api_token(c, &token, NOW))
            .unwrap(),
        tokens::TokenOwner {
            name: "ci-bot".into(),
            account_id: None
        },
        "an operator token speaks for no account"
    );
    let stored: Vec<String> = store
        .read(|c| {
            Ok(schema::api_tokens::table
                .select(schema::api_tokens::token_hash)
                .load(c)?)
        })
        .unwrap();
    assert!(
        !stored.iter().any(|h| h.contains(&token)),
        "only the hash is stored"
    );
    assert!(matches!(
        store.write(|c| tokens::create_api_token(c, "ci-bot", NOW)),
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        store.write(|c| tokens::create_api_token(c, "bad name!", NOW)),
        Err(Error::Invalid { .. })
    ));
    store
        .write(|c| tokens::revoke_api_token(c, "ci-bot", NOW))
        .unwrap();
    assert!(matches!(
        store.read(|c| tokens::verify_api_token(c, &token, NOW)),
        Err(Error::Unauthorized(_))
    ));
    assert!(matches!(
        store.read(|c| tokens::verify_api_token(c, "fhk_guess", NOW)),
        Err(Error::Unauthorized(_))
    ));
}

fn foreign_keys_are_enforced(store: &Store) {
    use schema::upstream_links::dsl as ul;
    let err = store
        .write(|c| {
            Ok(diesel::insert_into(ul::upstream_links)
                .values((
                    ul::id.eq("l1"),
                    ul::account_id.eq("no-such-account"),
                    ul::connector_id.eq("no-such-connector"),
                    ul::issuer.eq("i"),
                    ul::subject.eq("s"),
                    ul::created_at.eq(NOW),
                    ul::last_seen_at.eq(NOW),
                ))
                .execute(c)?)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
}

/// Every table of the domain accepts a full record and gives it back.
fn whole_domain_schema_round_trips(store: &Store) {
    use schema::*;
    add_agency(store, "000.00.00.H49", "UBND tỉnh Quảng Ninh");
    let acc = store
        .write(|c| {
            fedhub::directory::accounts::add(c, &citizen("Nguyễn Văn An", "001204012345"), NOW)
        })
        .unwrap();
    let aid = acc.id.as_str();
    store
        .write(|c| {
            diesel::insert_into(connectors::table)
                .values((
                    connectors::id.eq("vneid"),
                    connectors::kind.eq("oidc"),
                    connectors::display_name.eq("VNeID"),
                    connectors::config.eq("{}"),
                    connectors::enabled.eq(true),
                    connectors::created_at.eq(NOW),
                    connectors::updated_at.eq(NOW),
                ))
                .execute(c)?;
            diesel::insert_into(upstream_links::table)
                .values((
                    upstream_links::id.eq("ul1"),
                    upstream_links::account_id.eq(aid),
                    upstream_links::connector_id.eq("vneid"),
                    upstream_links::issuer.eq("https://id.example"),
                    upstream_links::subject.eq("sub-1"),
                    upstream_links::created_at.eq(NOW),
                    upstream_links::last_seen_at.eq(NOW),
                ))
                .execute(c)?;
            diesel::insert_into(relying_parties::table)
                .values((
                    relying_parties::id.eq("rp1"),
                    relying_parties::protocol.eq("saml"),
                    relying_parties::entity_id.eq("https://dvc.quangninh.gov.vn/sp"),
                    relying_parties::display_name.eq("Cổng DVC Quảng Ninh"),
                    relying_parties::owner_agency_code.eq("000.00.00.H49"),
                    relying_parties::config.eq("{}"),
                    relying_parties::requires_membership.eq(true),
                    relying_parties::enabled.eq(true),
                    relying_parties::created_at.eq(NOW),
                    relying_parties::updated_at.eq(NOW),
                ))
                .execute(c)?;
            diesel::insert_into(rp_connectors::table)
                .values((
                    rp_connectors::rp_id.eq("rp1"),
                    rp_connectors::connector_id.eq("vneid"),
                ))
                .execute(c)?;
            diesel::insert_into(roles::table)
                .values((
                    roles::id.eq("r1"),
                    roles::rp_id.eq("rp1"),
                    roles::name.eq("Admin của Tỉnh/thành phố"),
                    roles::builtin.eq(true),
                    roles::created_at.eq(NOW),
                ))
                .execute(c)?;
            diesel::insert_into(memberships::table)
                .values((
                    memberships::id.eq("m1"),
                    memberships::account_id.eq(aid),
                    memberships::rp_id.eq("rp1"),
                    memberships::unit_agency_code.eq("000.00.00.H49"),
                    memberships::status.eq("not_activated"),
                    memberships::user_group.eq("Nhóm admin đơn vị"),
                    memberships::subject.eq("pairwise-1"),
                    memberships::created_at.eq(NOW),
                    memberships::updated_at.eq(NOW),
                ))
                .execute(c)?;
            diesel::insert_into(membership_roles::table)
                .values((
                    membership_roles::membership_id.eq("m1"),
                    membership_roles::role_id.eq("r1"),
                ))
                .execute(c)?;
            diesel::insert_into(admin_grants::table)
                .values((
                    admin_grants::id.eq("g1"),
                    admin_grants::account_id.eq(aid),
                    admin_grants::rp_id.eq("rp1"),
                    admin_grants::level.eq("top"),
                    admin_grants::scope_agency_code.eq("000.00.00.H49"),
                    admin_grants::created_at.eq(NOW),
                ))
                .execute(c)?;
            diesel::insert_into(legacy_accounts::table)
                .values((
                    legacy_accounts::id.eq("la1"),
                    legacy_accounts::rp_id.eq("rp1"),
                    legacy_accounts::username.eq("an.nv"),
                    legacy_accounts::display_name.eq("Nguyễn Văn An"),
                    legacy_accounts::roles.eq("[]"),
                    legacy_accounts::password_hash.eq("$2b$12$abcdefghijklmnopqrstuv"),
                    legacy_accounts::hash_scheme.eq("bcrypt"),
                    legacy_accounts::subject.eq("an.nv"),
                    legacy_accounts::created_at.eq(NOW),
                ))
                .execute(c)?;
            diesel::insert_into(signing_keys::table)
                .values((
                    signing_keys::kid.eq("k1"),
                    signing_keys::purpose.eq("oidc"),
                    signing_keys::alg.eq("RS256"),
                    signing_keys::public_der.eq(vec![0x30u8, 0x82, 0x01]),
                    signing_keys::private_sealed.eq(vec![1u8, 2, 3, 0, 255]),
                    signing_keys::state.eq("current"),
                    signing_keys::created_at.eq(NOW),
                ))
                .execute(c)?;
            diesel::insert_into(auth_sessions::table)
                .values((
                    auth_sessions::id.eq("as1"),
                    auth_sessions::rp_id.eq("rp1"),
                    auth_sessions::request.eq("{}"),
                    auth_sessions::created_at.eq(NOW),
                    auth_sessions::expires_at.eq(NOW + 600),
                ))
                .execute(c)?;
            diesel::insert_into(sso_sessions::table)
                .values((
                    sso_sessions::id.eq("ss1"),
                    sso_sessions::account_id.eq(aid),
                    sso_sessions::authn.eq("{}"),
                    sso_sessions::created_at.eq(NOW),
                    sso_sessions::expires_at.eq(NOW + 3600),
                ))
                .execute(c)?;
            diesel::insert_into(sso_session_rps::table)
                .values((
                    sso_session_rps::sso_session_id.eq("ss1"),
                    sso_session_rps::rp_id.eq("rp1"),
                    sso_session_rps::subject.eq("pairwise-1"),
                    sso_session_rps::served_at.eq(NOW),
                ))
                .execute(c)?;
            diesel::insert_into(oidc_codes::table)
                .values((
                    oidc_codes::code_hash.eq("ch1"),
                    oidc_codes::client_id.eq("gw"),
                    oidc_codes::account_id.eq(aid),
                    oidc_codes::redirect_uri.eq("https://gw.example/cb"),
                    oidc_codes::code_challenge.eq("abc"),
                    oidc_codes::scope.eq("openid"),
                    oidc_codes::claims.eq("{}"),
                    oidc_codes::created_at.eq(NOW),
                    oidc_codes::expires_at.eq(NOW + 60),
                ))
                .execute(c)?;
            diesel::insert_into(oidc_tokens::table)
                .values((
                    oidc_tokens::token_hash.eq("th1"),
                    oidc_tokens::kind.eq("refresh"),
                    oidc_tokens::client_id.eq("gw"),
                    oidc_tokens::account_id.eq(aid),
                    oidc_tokens::code_hash.eq("ch1"),
                    oidc_tokens::family_id.eq("f1"),
                    oidc_tokens::scope.eq("openid"),
                    oidc_tokens::created_at.eq(NOW),
                    oidc_tokens::expires_at.eq(NOW + 3600),
                ))
                .execute(c)?;
            diesel::insert_into(saml_replay::table)
                .values((
                    saml_replay::id.eq("https://idp.example!_abc"),
                    saml_replay::expires_at.eq(NOW + 300),
                ))
                .execute(c)?;
            Ok(())
        })
        .unwrap();
    let (key_blob, status, role): (Vec<u8>, String, String) = store
        .read(|c| {
            let blob = signing_keys::table
                .select(signing_keys::private_sealed)
                .first::<Vec<u8>>(c)?;
            let status = memberships::table
                .select(memberships::status)
                .first::<String>(c)?;
            let role = membership_roles::table
                .inner_join(roles::table)
                .select(roles::name)
                .first::<String>(c)?;
            Ok((blob, status, role))
        })
        .unwrap();
    assert_eq!(
        key_blob,
        vec![1u8, 2, 3, 0, 255],
        "binary survives both engines"
    );
    assert_eq!(status, "not_activated");
    assert_eq!(role, "Admin của Tỉnh/thành phố");
    // Replay cache: the same assertion id cannot be stored twice.
    let again = store.write(|c| {
        Ok(diesel::insert_into(saml_replay::table)
            .values((
                saml_replay::id.eq("https://idp.example!_abc"),
                saml_replay::expires_at.eq(NOW + 300),
            ))
            .execute(c)?)
    });
    assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");
    // Check constraints guard enumerations.
    let bad = store.write(|c| {
        Ok(diesel::update(memberships::table)
            .set(memberships::status.eq("superuser"))
            .execute(c)?)
    });
    assert!(bad.is_err());
}

fn change_counters_move(store: &Store) {
    assert_eq!(
        store
            .read(|c| counters::current(c, counters::AGENCIES))
            .unwrap(),
        0
    );
    add_agency(store, "000.00.00.G12", "Bộ Tài chính");
    assert_eq!(
        store
            .read(|c| counters::current(c, counters::AGENCIES))
            .unwrap(),
        1
    );
    store
        .write(|c| agencies::import_csv(c, "code,name_vi\n000.00.18.G12,Cục Thuế\n", NOW))
        .unwrap();
    assert_eq!(
        store
            .read(|c| counters::current(c, counters::AGENCIES))
            .unwrap(),
        2
    );
}

fn signing_key_rotation(store: &Store) {
    use fedhub::keys::{self, Purpose};
    use fedhub_metadata::keys::KeyAlg;
    let vault = crate::support::vault();
    let day = 86_400;
    store
        .write(|c| keys::ensure(c, &vault, Purpose::Saml, KeyAlg::Rsa2048, NOW))
        .unwrap();
    store
        .write(|c| keys::ensure(c, &vault, Purpose::Saml, KeyAlg::Rsa2048, NOW))
        .unwrap();
    let states = |t: i64| -> Vec<(String, String)> {
        store
            .read(|c| keys::published(c, Purpose::Saml, t))
            .unwrap()
            .into_iter()
            .map(|k| (k.kid, k.state))
            .collect()
    };
    let first = states(NOW);
    assert_eq!(
        first.len(),
        2,
        "ensure is idempotent: one current, one next"
    );
    let current = first
        .iter()
        .find(|(_, s)| s == "current")
        .unwrap()
        .0
        .clone();
    let next = first.iter().find(|(_, s)| s == "next").unwrap().0.clone();
    let signer = store
        .read(|c| keys::signer(c, &vault, Purpose::Saml))
        .unwrap();
    assert_eq!(signer.kid, current);

    let r = store
        .write(|c| {
            keys::rotate(
                c,
                &vault,
                Purpose::Saml,
                KeyAlg::Rsa2048,
                7 * day,
                NOW + day,
            )
        })
        .unwrap();
    assert_eq!(
        r.current, next,
        "the published next key is the one that starts signing"
    );
    assert_eq!(r.previous.as_deref(), Some(current.as_str()));
    assert_eq!(
        states(NOW + day).len(),
        3,
        "previous stays published during its grace"
    );
    assert_eq!(
        store
            .read(|c| keys::signer(c, &vault, Purpose::Saml))
            .unwrap()
            .kid,
        next
    );
    assert_eq!(
        states(NOW + 9 * day).len(),
        2,
        "and is no longer published after it"
    );

    let r = store
        .write(|c| {
            keys::rotate(
                c,
                &vault,
                Purpose::Saml,
                KeyAlg::Rsa2048,
                7 * day,
                NOW + 9 * day,
            )
        })
        .unwrap();
    assert_eq!(r.retired, vec![current.clone()]);
    // The private key is sealed: the stored bytes do not open with another at-rest key.
    let other = fedhub_metadata::AtRestKey::from_base64(
        &fedhub_metadata::AtRestKey::generate_base64().unwrap(),
    )
    .unwrap();
    let err = store
        .read(|c| keys::signer(c, &other, Purpose::Saml))
        .unwrap_err();
    assert!(err.to_string().contains("cannot be opened"), "{err}");
}

#[test]
fn unreachable_database_is_unavailable() {
    let opts = fedhub::store::StoreOptions {
        connect_timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let err = Store::connect("postgres://postgres@127.0.0.1:1/test", &opts).unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(err.exit_code(), 4);
    let err = Store::connect("mysql://x", &opts).unwrap_err();
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "database.url"));
}

/// Two first sign-ins of the same upstream identity at once both link it (the later insert
/// meets the unique key on PostgreSQL): both succeed, with one link.
fn two_first_sign_ins_of_one_person_at_once(store: &Store) {
    use fedhub::login::resolve;
    let input = accounts::AccountInput {
        kind: "citizen".into(),
        display_name: "Nguyễn Văn An".into(),
        national_id: Some("001204012345".into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let account = store.write(|c| accounts::add(c, &input, NOW)).unwrap();
    crate::support::add_dev_connector(store, NOW);
    let identity = fedhub_connectors::UpstreamIdentity {
        connector: "dev".into(),
        issuer: "urn:demo".into(),
        subject: "001204012345".into(),
        attributes: [("national_id".to_string(), vec!["001204012345".to_string()])]
            .into_iter()
            .collect(),
        authn: fedhub_connectors::Authn {
            auth_time: NOW,
            acr: None,
            amr: vec![],
        },
        session: None,
    };
    let barrier = std::sync::Barrier::new(2);
    let results: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    store
                        .write(|c| {
                            let a = resolve::account_for(c, &identity, NOW)?.unwrap();
                            // Keep the transaction open so that the other one meets this link.
                            std::thread::sleep(std::time::Duration::from_millis(200));
                            Ok(a.id)
                        })
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results, vec![account.id.clone(), account.id.clone()]);
    let links: i64 = store
        .read(|c| Ok(schema::upstream_links::table.count().get_result(c)?))
        .unwrap();
    assert_eq!(links, 1);
}

/// SQLite writers of one process wait their turn in order, and a writer that cannot get it
/// within `database.busy_timeout` gets a clear "busy" error instead of waiting forever.
#[test]
fn sqlite_writers_queue_and_give_up_after_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    let opts = fedhub::store::StoreOptions {
        busy_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let store = Store::connect(&url, &opts).unwrap();
    store.migrate().unwrap();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, wait_started) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let holder = store.clone();
        s.spawn(move || {
            holder
                .write(|c| {
                    counters::bump(c, "queue")?;
                    started.send(()).unwrap();
                    // Hold the write turn until the main thread has been refused.
                    held.recv().unwrap();
                    Ok(())
                })
                .unwrap();
        });
        wait_started.recv().unwrap();
        let refused = store.write(|c| counters::bump(c, "queue")).unwrap_err();
        assert!(
            matches!(&refused, Error::Unavailable(m) if m.contains("busy")),
            "{refused:?}"
        );
        release.send(()).unwrap();
    });
    // Once the turn is free, writers go through in order; nothing was lost.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10 {
                    store.write(|c| counters::bump(c, "queue")).unwrap();
                }
            });
        }
    });
    assert_eq!(store.read(|c| counters::current(c, "queue")).unwrap(), 41);
}

/// A request whose SQLite writer turn is taken does not hold its thread while it waits: the
/// write goes to the blocking pool, and a read on the same (single) request thread is
/// answered meanwhile. Both land; the waiting write is not refused or lost.
#[test]
fn a_waiting_sqlite_writer_does_not_hold_the_request_thread() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("inline.db").display());
    let store = Store::connect(&url, &Default::default()).unwrap();
    store.migrate().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, wait_started) = std::sync::mpsc::channel::<()>();
    let holder = store.clone();
    let other_writer = std::thread::spawn(move || {
        holder
            .write(|c| {
                counters::bump(c, "inline")?;
                started.send(()).unwrap();
                held.recv().unwrap();
                Ok(())
            })
            .unwrap();
    });
    wait_started.recv().unwrap();
    runtime.block_on(async {
        let writer = store.clone();
        let write = tokio::spawn(async move {
            writer
                .write_async(|c| counters::bump(c, "inline").map(|_| ()))
                .await
        });
        tokio::task::yield_now().await;
        // The write waits for its turn; the thread still answers a read at once.
        let seen = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            store.read_async(|c| counters::current(c, "inline")),
        )
        .await
        .expect("a read waited behind a queued writer")
        .unwrap();
        assert_eq!(seen, 0, "the other writer has not committed yet");
        assert!(!write.is_finished());
        release.send(()).unwrap();
        write.await.unwrap().unwrap();
    });
    other_writer.join().unwrap();
    assert_eq!(store.read(|c| counters::current(c, "inline")).unwrap(), 2);
}

/// `database.sqlite_inline`: with it (the default) a free connection serves the request on
/// its own thread; without it, or on PostgreSQL, every transaction goes to the blocking pool.
#[test]
fn sqlite_inline_runs_short_transactions_on_the_request_thread() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for inline in [true, false] {
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("{inline}.db")).display()
        );
        let opts = fedhub::store::StoreOptions {
            sqlite_inline: inline,
            ..Default::default()
        };
        let store = Store::connect(&url, &opts).unwrap();
        store.migrate().unwrap();
        let here = std::thread::current().id();
        let (read_on, write_on) = runtime.block_on(async {
            let read = store.read_async(|_| Ok(std::thread::current().id()));
            let read = read.await.unwrap();
            let write = store.write_async(|c| {
                counters::bump(c, "inline")?;
                Ok(std::thread::current().id())
            });
            (read, write.await.unwrap())
        });
        assert_eq!(read_on == here, inline, "read, sqlite_inline = {inline}");
        assert_eq!(write_on == here, inline, "write, sqlite_inline = {inline}");
        assert_eq!(store.read(|c| counters::current(c, "inline")).unwrap(), 1);
    }
}

/// Many writers at once on one request thread: none blocks it for good, each lands
/// once; a writer that cannot get its turn within `busy_timeout` is told the database is
/// busy (a 503 at the edge), not kept waiting.
#[test]
fn async_sqlite_writers_queue_and_give_up_after_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    let opts = fedhub::store::StoreOptions {
        busy_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let store = Store::connect(&url, &opts).unwrap();
    store.migrate().unwrap();
    let one_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    one_thread.block_on(async {
        let writers: Vec<_> = (0..200)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move { s.write_async(|c| counters::bump(c, "q")).await })
            })
            .collect();
        for w in writers {
            w.await.unwrap().unwrap();
        }
    });
    assert_eq!(store.read(|c| counters::current(c, "q")).unwrap(), 200);

    // A writer holds its turn (on another worker) past the next one's patience.
    let two_threads = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    two_threads.block_on(async {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, wait_started) = tokio::sync::oneshot::channel::<()>();
        let s = store.clone();
        let holder = tokio::spawn(async move {
            s.write_async(move |c| {
                counters::bump(c, "q")?;
                started.send(()).unwrap();
                held.recv().unwrap();
                Ok(())
            })
            .await
        });
        wait_started.await.unwrap();
        let refused = store
            .write_async(|c| counters::bump(c, "q"))
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, Error::Unavailable(m) if m.contains("busy")),
            "{refused:?}"
        );
        release.send(()).unwrap();
        holder.await.unwrap().unwrap();
    });
    assert_eq!(store.read(|c| counters::current(c, "q")).unwrap(), 201);
}
