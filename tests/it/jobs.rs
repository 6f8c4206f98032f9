//! Background jobs on both engines: one node at a time under a lease, whatever the number of
//! nodes asking at once; housekeeping removes what expired and nothing that can still be used.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use fedhub::jobs::{self, Purged, HOUSEKEEPING, SSO_KEPT_FOR};
use fedhub::store::schema;

use crate::support::{TestStore, NOW};

on_both_engines!(
    a_lease_goes_to_one_node_until_it_runs_out,
    eight_nodes_at_once_run_a_round_once,
    housekeeping_removes_only_what_can_no_longer_be_used,
    scheduled_rotation_rotates_each_due_key_line_once_on_one_node,
);

fn a_lease_goes_to_one_node_until_it_runs_out(store: &TestStore) {
    let other = store.another_node();
    let take = |s: &fedhub::store::Store, node: &str, now: i64| {
        s.write(|c| jobs::take_lease(c, HOUSEKEEPING, node, now, 300))
            .unwrap()
    };
    assert!(take(store, "node-a", NOW));
    assert!(!take(&other, "node-b", NOW), "held by node-a");
    assert!(!take(&other, "node-b", NOW + 299), "still held by node-a");
    assert!(
        take(store, "node-a", NOW + 10),
        "the holder may take it again"
    );
    assert!(take(&other, "node-b", NOW + 310), "node-a's lease ran out");
    assert!(!take(store, "node-a", NOW + 320), "now node-b holds it");
    // A job nobody introduced is never taken.
    assert!(!store
        .write(|c| jobs::take_lease(c, "no-such-job", "node-a", NOW, 300))
        .unwrap());
}

fn eight_nodes_at_once_run_a_round_once(store: &TestStore) {
    let ran = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let node = store.another_node();
            let ran = ran.clone();
            std::thread::spawn(move || {
                jobs::with_lease(
                    &node,
                    HOUSEKEEPING,
                    &format!("node-{i}"),
                    NOW,
                    Duration::from_secs(300),
                    |_| {
                        ran.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    },
                )
                .unwrap()
            })
        })
        .collect();
    let ran_here: usize = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(Option::is_some)
        .count();
    assert_eq!(ran_here, 1, "one node ran the round");
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    let runs: i64 = store
        .read(|c| {
            Ok(schema::job_leases::table
                .find(HOUSEKEEPING)
                .select(schema::job_leases::runs)
                .get_result(c)?)
        })
        .unwrap();
    assert_eq!(runs, 1);
}

fn housekeeping_removes_only_what_can_no_longer_be_used(store: &TestStore) {
    let account = store
        .write(|c| {
            let input = fedhub::directory::accounts::AccountInput {
                kind: "citizen".into(),
                display_name: "Nguyễn Văn An".into(),
                national_id: Some(crate::sso::CITIZEN.into()),
                ..Default::default()
            }
            .validate()?;
            fedhub::directory::accounts::add(c, &input, NOW)
        })
        .unwrap()
        .id;
    let (past, future) = (NOW - 1, NOW + 3_600);
    store
        .write(|c| {
            use schema::{
                auth_sessions as auth, oidc_codes as codes, oidc_par as par, oidc_tokens as tokens,
                saml_replay as replay, sso_sessions as sso,
            };
            for (id, expires_at) in [("auth-old", past), ("auth-live", future)] {
                diesel::insert_into(auth::table)
                    .values((
                        auth::id.eq(id),
                        auth::rp_id.eq("fedhub-console"),
                        auth::request.eq("{}"),
                        auth::created_at.eq(NOW - 600),
                        auth::expires_at.eq(expires_at),
                    ))
                    .execute(c)?;
            }
            // Codes: expired with a live token, expired with none, live.
            for (hash, expires_at) in [
                ("code-with-live-token", past),
                ("code-spent", past),
                ("code-live", future),
            ] {
                diesel::insert_into(codes::table)
                    .values((
                        codes::code_hash.eq(hash),
                        codes::client_id.eq("client"),
                        codes::account_id.eq(&account),
                        codes::redirect_uri.eq("https://rp.example/cb"),
                        codes::code_challenge.eq("x"),
                        codes::scope.eq("openid"),
                        codes::claims.eq("{}"),
                        codes::created_at.eq(NOW - 600),
                        codes::expires_at.eq(expires_at),
                    ))
                    .execute(c)?;
            }
            for (hash, code, expires_at) in [
                ("token-live", Some("code-with-live-token"), future),
                ("token-expired", Some("code-spent"), past),
                ("token-expired-2", None, past),
            ] {
                diesel::insert_into(tokens::table)
                    .values((
                        tokens::token_hash.eq(hash),
                        tokens::kind.eq("refresh"),
                        tokens::client_id.eq("client"),
                        tokens::account_id.eq(&account),
                        tokens::code_hash.eq(code),
                        tokens::family_id.eq("family"),
                        tokens::scope.eq("openid"),
                        tokens::created_at.eq(NOW - 600),
                        tokens::expires_at.eq(expires_at),
                    ))
                    .execute(c)?;
            }
            for (id, expires_at) in [("par-old", past), ("par-live", future)] {
                diesel::insert_into(par::table)
                    .values((
                        par::id.eq(id),
                        par::client_id.eq("client"),
                        par::params.eq("{}"),
                        par::created_at.eq(NOW - 60),
                        par::expires_at.eq(expires_at),
                    ))
                    .execute(c)?;
            }
            for (id, expires_at) in [("idp!old", past), ("idp!live", future)] {
                diesel::insert_into(replay::table)
                    .values((replay::id.eq(id), replay::expires_at.eq(expires_at)))
                    .execute(c)?;
            }
            // SSO sessions: ended two days ago, ended an hour ago, expired two days ago, live.
            for (id, expires_at, ended_at) in [
                ("sso-ended-long-ago", future, Some(NOW - 2 * SSO_KEPT_FOR)),
                ("sso-ended-recently", future, Some(NOW - 3_600)),
                ("sso-expired-long-ago", NOW - 2 * SSO_KEPT_FOR, None),
                ("sso-live", future, None),
            ] {
                diesel::insert_into(sso::table)
                    .values((
                        sso::id.eq(id),
                        sso::account_id.eq(&account),
                        sso::authn.eq("{}"),
                        sso::created_at.eq(NOW - 3 * SSO_KEPT_FOR),
                        sso::expires_at.eq(expires_at),
                        sso::ended_at.eq(ended_at),
                        sso::last_seen_at.eq(NOW - 3_600),
                    ))
                    .execute(c)?;
            }
            Ok(())
        })
        .unwrap();

    let purged = store.write(|c| jobs::purge_expired(c, NOW)).unwrap();
    assert_eq!(
        purged,
        Purged {
            auth_sessions: 1,
            codes: 1,
            tokens: 2,
            pushed_requests: 1,
            replay_entries: 1,
            sso_sessions: 2,
        }
    );
    let left = |sql: &str| -> Vec<String> {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::Text)]
            id: String,
        }
        let sql = sql.to_string();
        let mut ids: Vec<String> = store
            .read(move |c| Ok(diesel::sql_query(sql).load::<Id>(c)?))
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(left("SELECT id FROM auth_sessions"), ["auth-live"]);
    assert_eq!(
        left("SELECT code_hash AS id FROM oidc_codes"),
        ["code-live", "code-with-live-token"],
        "a code whose token lives stays, so that replaying it still revokes the token"
    );
    assert_eq!(
        left("SELECT token_hash AS id FROM oidc_tokens"),
        ["token-live"]
    );
    assert_eq!(left("SELECT id FROM oidc_par"), ["par-live"]);
    assert_eq!(left("SELECT id FROM saml_replay"), ["idp!live"]);
    assert_eq!(
        left("SELECT id FROM sso_sessions"),
        ["sso-ended-recently", "sso-live"]
    );
    // A second round finds nothing more.
    let again = store.write(|c| jobs::purge_expired(c, NOW)).unwrap();
    assert_eq!(again, Purged::default());
}

fn scheduled_rotation_rotates_each_due_key_line_once_on_one_node(store: &TestStore) {
    use fedhub::keys::{self, Purpose};
    use fedhub_metadata::keys::KeyAlg;

    let vault = crate::support::vault();
    for purpose in [Purpose::Saml, Purpose::Oidc] {
        store
            .write(|c| keys::ensure_all(c, &vault, purpose, KeyAlg::Rsa2048, NOW))
            .unwrap();
    }
    let day = 86_400;
    let plan = jobs::RotationPlan {
        vault: Arc::new(crate::support::vault()),
        saml_alg: KeyAlg::Rsa2048,
        every: Duration::from_secs(30 * day as u64),
        grace: Duration::from_secs(7 * day as u64),
    };
    let current = |purpose, alg| store.read(|c| keys::current_kid(c, purpose, alg)).unwrap();
    let saml_before = current(Purpose::Saml, KeyAlg::Rsa2048);
    let rounds = |at: i64| {
        // Eight nodes ask at the same time: one of them rotates.
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (node, plan) = (store.another_node(), plan.clone());
                std::thread::spawn(move || {
                    jobs::rotate_keys_round(&node, &plan, &format!("node-{i}"), at).unwrap()
                })
            })
            .collect();
        threads
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    };

    // A day before the keys are due: the round runs and rotates nothing.
    let early = rounds(NOW + 29 * day);
    assert_eq!(
        early,
        vec![Vec::<String>::new()],
        "one node ran, nothing due"
    );
    assert_eq!(current(Purpose::Saml, KeyAlg::Rsa2048), saml_before);

    // Due: the SAML line and the three OIDC families rotate once, and the new keys were the
    // published `next` ones (a key is published before it signs).
    let next_before: Vec<String> = store
        .read(|c| {
            Ok(schema::signing_keys::table
                .filter(schema::signing_keys::state.eq("next"))
                .select(schema::signing_keys::kid)
                .load(c)?)
        })
        .unwrap();
    let lease_ran = rounds(NOW + 30 * day);
    assert_eq!(lease_ran.len(), 1, "one node rotated");
    assert_eq!(lease_ran[0].len(), 4, "{:?}", lease_ran[0]);
    let saml_after = current(Purpose::Saml, KeyAlg::Rsa2048);
    assert_ne!(saml_after, saml_before);
    assert!(next_before.contains(&saml_after));
    let audited: i64 = store
        .read(|c| {
            Ok(schema::audit_log::table
                .filter(schema::audit_log::action.eq("keys.rotate"))
                .count()
                .get_result(c)?)
        })
        .unwrap();
    assert_eq!(audited, 4);
}
