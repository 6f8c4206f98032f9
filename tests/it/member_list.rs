//! The user-management list (`admin::memberships::list`) on both engines: what an admin sees
//! of a relying party's members (their agency subtrees only, in name order, paged with a
//! count) and how the search box finds people, also after the upgrade that copied names onto
//! memberships.

use fedhub::admin::memberships::{self as ms, Admin, ListQuery, Page};
use fedhub::admin::policy::{GrantView, Level};
use fedhub::directory::{accounts, agencies};
use fedhub::store::Store;
use fedhub_identifiers::AgencyCode;

use crate::support::{vault, NOW};

on_both_engines!(
    an_admin_sees_their_subtrees_in_name_order,
    the_search_box_finds_names_and_identifiers_within_scope,
    filters_and_pages_keep_the_count,
    the_upgrade_copies_names_onto_existing_memberships,
    a_large_subtree_pages_in_name_order_with_either_plan,
);

/// Quảng Ninh (H49) with a level-2 unit, a level-3 unit under it and a level-4 unit under
/// that, a second level-2 unit, and a level-2 unit of Hồ Chí Minh City (H29).
const QN: &str = "000.00.00.H49";
const QN_FINANCE: &str = "000.00.01.H49";
const QN_BUDGET: &str = "000.01.01.H49";
const QN_BUDGET_TEAM: &str = "001.01.01.H49";
const QN_HEALTH: &str = "000.00.02.H49";
const HCM_FINANCE: &str = "000.00.01.H29";

struct Person {
    name: &'static str,
    national_id: Option<&'static str>,
    tax_code: Option<&'static str>,
    phone: Option<&'static str>,
    unit: &'static str,
}

const PEOPLE: &[Person] = &[
    Person {
        name: "Nguyễn Thị Hương",
        national_id: Some("022185000101"),
        tax_code: None,
        phone: Some("0912345601"),
        unit: QN_FINANCE,
    },
    Person {
        name: "Nguyễn Văn An",
        national_id: Some("022085000102"),
        tax_code: None,
        phone: None,
        unit: QN_BUDGET,
    },
    Person {
        name: "Trần Thị Hương",
        national_id: Some("022185000103"),
        tax_code: None,
        phone: Some("02033 825 104"),
        unit: QN_BUDGET_TEAM,
    },
    Person {
        name: "Lê Văn Bình",
        national_id: Some("022085000104"),
        tax_code: None,
        phone: None,
        unit: QN_HEALTH,
    },
    Person {
        name: "Hoàng Văn Hải",
        national_id: Some("079085000105"),
        tax_code: None,
        phone: Some("0912345605"),
        unit: HCM_FINANCE,
    },
    Person {
        name: "Công ty Cổ phần Than Hạ Long",
        national_id: None,
        tax_code: Some("0101234565"),
        phone: None,
        unit: QN_FINANCE,
    },
];

struct Seeded {
    rp_id: String,
    /// Membership ids, in the order of `PEOPLE`.
    members: Vec<String>,
}

fn seed(store: &Store) -> Seeded {
    store
        .write(|c| agencies::import_csv(c, agencies::BUILTIN_CSV, NOW))
        .unwrap();
    for (code, name) in [
        (QN_FINANCE, "Sở Tài chính tỉnh Quảng Ninh"),
        (QN_BUDGET, "Phòng Ngân sách"),
        (QN_BUDGET_TEAM, "Tổ Ngân sách xã"),
        (QN_HEALTH, "Sở Y tế tỉnh Quảng Ninh"),
        (HCM_FINANCE, "Sở Tài chính Thành phố Hồ Chí Minh"),
    ] {
        let a = agencies::AgencyInput {
            code: code.into(),
            name_vi: name.into(),
            ..Default::default()
        }
        .validate()
        .unwrap();
        store.write(|c| agencies::add(c, &a, NOW)).unwrap();
    }
    let reg = crate::oidc_support::default_registration();
    let rp_id = store
        .write(|c| fedhub::rp::oidc::add(c, &reg, NOW))
        .unwrap()
        .rp
        .id;
    // Someone in the directory who is not a member: never listed.
    let stranger = accounts::AccountInput {
        kind: "citizen".into(),
        display_name: "Nguyễn Thị Hương Giang".into(),
        national_id: Some("022185000199".into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    store.write(|c| accounts::add(c, &stranger, NOW)).unwrap();

    let operator = Admin::operator("test:operator");
    let members = PEOPLE
        .iter()
        .map(|p| {
            let input = accounts::AccountInput {
                kind: if p.tax_code.is_some() {
                    "organisation"
                } else {
                    "citizen"
                }
                .into(),
                display_name: p.name.into(),
                national_id: p.national_id.map(Into::into),
                tax_code: p.tax_code.map(Into::into),
                phone: p.phone.map(Into::into),
                ..Default::default()
            }
            .validate()
            .unwrap();
            let account = store.write(|c| accounts::add(c, &input, NOW)).unwrap();
            store
                .write(|c| {
                    ms::add(
                        c,
                        &vault(),
                        &operator,
                        &rp_id,
                        &account.id,
                        Some(p.unit),
                        NOW,
                    )
                })
                .unwrap()
                .id
        })
        .collect();
    Seeded { rp_id, members }
}

fn admin(rp_id: &str, scopes: &[&str]) -> Admin {
    Admin {
        actor: "test:admin".into(),
        account_id: "test-admin".into(),
        grants: scopes
            .iter()
            .map(|s| GrantView {
                level: Level::L1,
                rp_id: Some(rp_id.into()),
                scope: Some(AgencyCode::parse(s).unwrap()),
            })
            .collect(),
    }
}

fn list(store: &Store, admin: &Admin, rp_id: &str, q: ListQuery) -> Page {
    store.read(|c| ms::list(c, admin, rp_id, &q)).unwrap()
}

fn names(page: &Page) -> Vec<&str> {
    page.items.iter().map(|m| m.display_name.as_str()).collect()
}

fn search(store: &Store, admin: &Admin, rp_id: &str, text: &str) -> Vec<String> {
    let page = list(
        store,
        admin,
        rp_id,
        ListQuery {
            q: Some(text.into()),
            ..Default::default()
        },
    );
    assert_eq!(page.total as usize, page.items.len(), "{text}: one page");
    names(&page).into_iter().map(String::from).collect()
}

fn an_admin_sees_their_subtrees_in_name_order(store: &Store) {
    let s = seed(store);
    let all = |a: &Admin| list(store, a, &s.rp_id, ListQuery::default());

    // The province's admin: everyone in Quảng Ninh, at every level below it, by folded name.
    let province = all(&admin(&s.rp_id, &[QN]));
    assert_eq!(province.total, 5);
    assert_eq!(
        names(&province),
        [
            "Công ty Cổ phần Than Hạ Long",
            "Lê Văn Bình",
            "Nguyễn Thị Hương",
            "Nguyễn Văn An",
            "Trần Thị Hương",
        ]
    );
    // Each row comes with its unit's name.
    let budget = province
        .items
        .iter()
        .find(|m| m.display_name == "Nguyễn Văn An")
        .unwrap();
    assert_eq!(budget.unit_agency_code.as_deref(), Some(QN_BUDGET));
    assert_eq!(budget.unit_name.as_deref(), Some("Phòng Ngân sách"));

    // Two grants: the union of a level-2 subtree of one province and one of another.
    let two = all(&admin(&s.rp_id, &[QN_FINANCE, HCM_FINANCE]));
    assert_eq!(
        names(&two),
        [
            "Công ty Cổ phần Than Hạ Long",
            "Hoàng Văn Hải",
            "Nguyễn Thị Hương",
            "Nguyễn Văn An",
            "Trần Thị Hương",
        ]
    );
    assert_eq!(two.total, 5);

    // A level-4 unit is its own subtree; a level-3 one holds the level-4 unit below it.
    assert_eq!(
        names(&all(&admin(&s.rp_id, &[QN_BUDGET_TEAM]))),
        ["Trần Thị Hương"]
    );
    assert_eq!(
        names(&all(&admin(&s.rp_id, &[QN_BUDGET]))),
        ["Nguyễn Văn An", "Trần Thị Hương"]
    );

    // A grant in another relying party shows nothing here.
    let elsewhere = Admin {
        grants: vec![GrantView {
            level: Level::L1,
            rp_id: Some("another-rp".into()),
            scope: Some(AgencyCode::parse(QN).unwrap()),
        }],
        ..admin(&s.rp_id, &[])
    };
    assert!(store
        .read(|c| ms::list(c, &elsewhere, &s.rp_id, &ListQuery::default()))
        .is_err());

    // The operator sees everyone.
    let operator = all(&Admin::operator("test:operator"));
    assert_eq!(operator.total, PEOPLE.len() as i64);
}

fn the_search_box_finds_names_and_identifiers_within_scope(store: &Store) {
    let s = seed(store);
    let qn = admin(&s.rp_id, &[QN]);
    let find = |text: &str| search(store, &qn, &s.rp_id, text);

    // Names: accents and case ignored, any part of the name; only members (the directory's
    // "Nguyễn Thị Hương Giang" is not one).
    assert_eq!(find("Hương"), ["Nguyễn Thị Hương", "Trần Thị Hương"]);
    assert_eq!(find("huong"), ["Nguyễn Thị Hương", "Trần Thị Hương"]);
    assert_eq!(find("NGUYEN THI"), ["Nguyễn Thị Hương"]);
    assert_eq!(
        find("  thị   hương "),
        ["Nguyễn Thị Hương", "Trần Thị Hương"]
    );
    // LIKE's wildcards are searched for as typed, not as wildcards.
    assert!(find("%").is_empty());
    assert!(find("n_uyen").is_empty());

    // CCCD, however it is spaced.
    assert_eq!(find("022185000101"), ["Nguyễn Thị Hương"]);
    assert_eq!(find("022 185 000 103"), ["Trần Thị Hương"]);
    // Mobile and landline numbers, as people type them.
    assert_eq!(find("0912 345 601"), ["Nguyễn Thị Hương"]);
    assert_eq!(find("+84912345601"), ["Nguyễn Thị Hương"]);
    assert_eq!(find("(0203) 3825104"), ["Trần Thị Hương"]);
    // An organisation by its tax code.
    assert_eq!(find("0101234565"), ["Công ty Cổ phần Than Hạ Long"]);

    // Someone outside the admin's subtree stays invisible, by name or by number.
    assert!(find("Hoàng Văn Hải").is_empty());
    assert!(find("079085000105").is_empty());
    assert!(find("0912345605").is_empty());
    // ...and a number that names nobody finds nobody.
    assert!(find("022185000999").is_empty());
    // The Hồ Chí Minh City admin finds him.
    let hcm = admin(&s.rp_id, &[HCM_FINANCE]);
    assert_eq!(
        search(store, &hcm, &s.rp_id, "079085000105"),
        ["Hoàng Văn Hải"]
    );
}

fn filters_and_pages_keep_the_count(store: &Store) {
    let s = seed(store);
    let operator = Admin::operator("test:operator");
    let qn = admin(&s.rp_id, &[QN]);
    store
        .write(|c| ms::activate(c, &operator, &s.members[1], NOW + 1))
        .unwrap();
    store
        .write(|c| ms::activate(c, &operator, &s.members[3], NOW + 1))
        .unwrap();
    store
        .write(|c| ms::lock(c, &operator, &s.members[3], NOW + 2).map(|(m, _)| m))
        .unwrap();

    let with = |q: ListQuery| list(store, &qn, &s.rp_id, q);
    let status = |s: &str| ListQuery {
        status: Some(s.into()),
        ..Default::default()
    };
    assert_eq!(names(&with(status("activated"))), ["Nguyễn Văn An"]);
    assert_eq!(names(&with(status("locked"))), ["Lê Văn Bình"]);
    assert_eq!(with(status("not_activated")).total, 3);

    // A unit narrows to its subtree, inside the admin's.
    let unit = with(ListQuery {
        unit: Some(QN_FINANCE.into()),
        ..Default::default()
    });
    assert_eq!(
        names(&unit),
        [
            "Công ty Cổ phần Than Hạ Long",
            "Nguyễn Thị Hương",
            "Nguyễn Văn An",
            "Trần Thị Hương",
        ]
    );
    // A unit outside it shows nothing (the admin's scope still applies).
    assert_eq!(
        with(ListQuery {
            unit: Some(HCM_FINANCE.into()),
            ..Default::default()
        })
        .total,
        0
    );
    // Filters combine.
    let combined = with(ListQuery {
        unit: Some(QN_FINANCE.into()),
        status: Some("not_activated".into()),
        q: Some("huong".into()),
        ..Default::default()
    });
    assert_eq!(names(&combined), ["Nguyễn Thị Hương", "Trần Thị Hương"]);

    // Pages of two: every member once, in name order, each page with the whole count.
    let page = |n: i64| {
        with(ListQuery {
            page: Some(n),
            per_page: Some(2),
            ..Default::default()
        })
    };
    let (p1, p2, p3, p4) = (page(1), page(2), page(3), page(4));
    for p in [&p1, &p2, &p3, &p4] {
        assert_eq!(p.total, 5);
        assert_eq!(p.per_page, 2);
    }
    assert_eq!(names(&p1), ["Công ty Cổ phần Than Hạ Long", "Lê Văn Bình"]);
    assert_eq!(names(&p2), ["Nguyễn Thị Hương", "Nguyễn Văn An"]);
    assert_eq!(names(&p3), ["Trần Thị Hương"]);
    assert!(p4.items.is_empty(), "past the last page");

    // Roles show on the rows that have them, and only there.
    store
        .write(|c| {
            let roles = ["Nhóm admin đơn vị".to_string()];
            ms::assign_roles(c, &operator, &s.members[0], &roles, None, NOW + 3)
        })
        .unwrap();
    let p2 = page(2);
    assert_eq!(p2.items[0].roles, ["Nhóm admin đơn vị"]);
    assert!(p2.items[1].roles.is_empty());

    // Bad filters are refused by name.
    for bad in [
        ListQuery {
            status: Some("open".into()),
            ..Default::default()
        },
        ListQuery {
            unit: Some("H49".into()),
            ..Default::default()
        },
    ] {
        match store.read(|c| ms::list(c, &qn, &s.rp_id, &bad)) {
            Err(fedhub::Error::Invalid { field, .. }) => {
                assert!(field == "status" || field == "unit", "{field}")
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A database that held memberships before names were copied onto them: the migration fills
/// the copies, so the list searches and sorts existing members straight after the upgrade.
fn the_upgrade_copies_names_onto_existing_memberships(store: &Store) {
    let s = seed(store);
    let reverted = store.revert_through("2026-12-05-000030").unwrap();
    assert_eq!(reverted.last().map(String::as_str), Some("20261205000030"));
    assert_eq!(store.migrate().unwrap(), reverted.len());
    let qn = admin(&s.rp_id, &[QN]);
    assert_eq!(
        search(store, &qn, &s.rp_id, "huong"),
        ["Nguyễn Thị Hương", "Trần Thị Hương"]
    );
    assert_eq!(
        names(&list(store, &qn, &s.rp_id, ListQuery::default())),
        [
            "Công ty Cổ phần Than Hạ Long",
            "Lê Văn Bình",
            "Nguyễn Thị Hương",
            "Nguyễn Văn An",
            "Trần Thị Hương",
        ]
    );
}

/// More matches than the list sorts from the subtree's range (`SORT_AT_MOST`, 2,000): the
/// page then walks the relying party in name order. Both ways give the same pages, in the
/// same order (name, then membership id for namesakes), with the same counts.
fn a_large_subtree_pages_in_name_order_with_either_plan(store: &Store) {
    let s = seed(store);
    const FAMILY: &[&str] = &["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng"];
    const MIDDLE: &[&str] = &["Văn", "Thị", "Minh", "Đức", "Thu"];
    const GIVEN: &[&str] = &["An", "Bình", "Cường", "Dung", "Hương", "Lan", "Quân", "Yến"];
    let units = [
        QN_FINANCE,
        QN_BUDGET,
        QN_BUDGET_TEAM,
        QN_HEALTH,
        HCM_FINANCE,
    ];
    // (membership id, name, unit, status) for every member, the six of `seed` included.
    let mut everyone: Vec<(String, String, &str, &str)> = s
        .members
        .iter()
        .zip(PEOPLE)
        .map(|(id, p)| (id.clone(), p.name.to_string(), p.unit, "not_activated"))
        .collect();
    store
        .write(|c| {
            use diesel::prelude::*;
            use fedhub::store::schema::accounts as ac;
            for i in 0..6_000usize {
                // Names repeat (280 distinct), so namesakes are ordered by membership id.
                let name = format!(
                    "{} {} {}",
                    FAMILY[i % FAMILY.len()],
                    MIDDLE[(i / 7) % MIDDLE.len()],
                    GIVEN[(i / 35) % GIVEN.len()]
                );
                let account = format!("acc-{i:05}");
                diesel::insert_into(ac::table)
                    .values((
                        ac::id.eq(&account),
                        ac::kind.eq("citizen"),
                        ac::display_name.eq(&name),
                        ac::search_name.eq(fedhub::directory::fold_name(&name)),
                        ac::status.eq("active"),
                        ac::created_at.eq(NOW),
                        ac::updated_at.eq(NOW),
                    ))
                    .execute(c)?;
                // Ids out of insertion order, so the order cannot come from the table.
                let id = format!("m-{:05}", (i * 7_919) % 10_007);
                let unit = units[i % units.len()];
                let status = if i % 2 == 0 {
                    "activated"
                } else {
                    "not_activated"
                };
                crate::support::insert_member(
                    c,
                    crate::support::MemberRow {
                        id: &id,
                        account_id: &account,
                        rp_id: &s.rp_id,
                        unit: Some(unit),
                        status,
                        user_group: None,
                        subject: &id,
                    },
                )?;
                everyone.push((id, name, unit, status));
            }
            Ok(())
        })
        .unwrap();
    let qn = admin(&s.rp_id, &[QN]);
    // What the screen must show, computed here: members within `within`, name order.
    let expected = |within: &str, status: Option<&str>, name_part: Option<&str>| {
        let scope = AgencyCode::parse(within).unwrap();
        let mut rows: Vec<(String, String, String)> = everyone
            .iter()
            .filter(|(_, _, unit, _)| AgencyCode::parse(unit).unwrap().is_within(&scope))
            .filter(|(_, _, _, st)| status.is_none_or(|want| *st == want))
            .filter(|(_, name, _, _)| {
                name_part.is_none_or(|p| fedhub::directory::fold_name(name).contains(p))
            })
            .map(|(id, name, _, _)| (fedhub::directory::fold_name(name), id.clone(), name.clone()))
            .collect();
        rows.sort();
        rows.into_iter().map(|(_, id, _)| id).collect::<Vec<_>>()
    };
    let check = |q: ListQuery, want: Vec<String>| {
        let per_page = 50;
        let pages = (want.len() as i64 + per_page - 1) / per_page;
        // The first pages, one in the middle and the last, each against the expected slice.
        for n in [1, 2, pages / 2, pages].into_iter().filter(|n| *n >= 1) {
            let page = list(
                store,
                &qn,
                &s.rp_id,
                ListQuery {
                    page: Some(n),
                    per_page: Some(per_page),
                    ..q.clone()
                },
            );
            assert_eq!(page.total as usize, want.len(), "{q:?}");
            let from = ((n - 1) * per_page) as usize;
            let to = (from + per_page as usize).min(want.len());
            let got: Vec<&str> = page.items.iter().map(|m| m.id.as_str()).collect();
            assert_eq!(got, want[from..to], "{q:?} page {n}");
        }
    };
    // Quảng Ninh holds 4/5 of the 6,000 (and 5 from `seed`): walked in name order.
    let all = expected(QN, None, None);
    assert_eq!(all.len(), 4_805);
    check(ListQuery::default(), all);
    // With Hồ Chí Minh City's level-2 unit too: everyone.
    let both = admin(&s.rp_id, &[QN, HCM_FINANCE]);
    let page = list(store, &both, &s.rp_id, ListQuery::default());
    assert_eq!(page.total, 6_006);
    // Quảng Ninh and HCM together, in name order, by the operator's view of the same data.
    let operator_first: Vec<String> = list(
        store,
        &Admin::operator("test:operator"),
        &s.rp_id,
        ListQuery::default(),
    )
    .items
    .into_iter()
    .map(|m| m.id)
    .collect();
    assert_eq!(
        page.items.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        operator_first
    );
    // Filters: a name fragment most names hold and a status (over 2,000 matches each,
    // walked in name order), a rarer name (sorted from the range), a unit's subtree.
    let many = expected(QN, None, Some("an"));
    assert!(many.len() > 2_000, "{}", many.len());
    check(
        ListQuery {
            q: Some("an".into()),
            ..Default::default()
        },
        many,
    );
    check(
        ListQuery {
            q: Some("Thị".into()),
            ..Default::default()
        },
        expected(QN, None, Some("thi")),
    );
    let activated = expected(QN, Some("activated"), None);
    assert!(activated.len() > 2_000, "{}", activated.len());
    check(
        ListQuery {
            status: Some("activated".into()),
            ..Default::default()
        },
        activated,
    );
    check(
        ListQuery {
            unit: Some(QN_BUDGET.into()),
            ..Default::default()
        },
        expected(QN_BUDGET, None, None),
    );
}
