//! Which claims a client gets: scopes decide, and only scopes the client registered count.
//! The portal profile adds the national portal's claim names beside the standard ones, so a
//! gateway written for the portal needs no change.

use serde_json::{json, Map, Value};

use crate::login::resolve::Resolved;
use crate::rp::oidc::{ClaimProfile, SubjectType};

/// The claims each scope releases (docs/oidc.md lists them for operators).
pub const SCOPE_CLAIMS: &[(&str, &[&str])] = &[
    ("profile", &["name", "account_type"]),
    ("email", &["email"]),
    ("phone", &["phone_number"]),
    ("national_id", &["national_id", "tax_code"]),
    ("agency", &["agency_code", "agency_name"]),
    ("roles", &["roles", "admin_level"]),
];

/// The portal's names for fedhub claims.
const PORTAL_NAMES: &[(&str, &str)] = &[
    ("national_id", "SoDinhDanh"),
    ("name", "HoVaTen"),
    ("phone_number", "SoDienThoai"),
    ("email", "ThuDienTu"),
    ("account_type", "LoaiTaiKhoan"),
    ("tax_code", "MaSoThue"),
];

/// The portal's account type codes: 1 citizen, 2 organisation, 3 agency official.
fn portal_account_type(kind: &str) -> &'static str {
    match kind {
        "citizen" => "1",
        "organisation" => "2",
        _ => "3",
    }
}

/// The requested scopes the client may have, in a stable order; `openid` always first.
pub fn granted_scopes(requested: &str, allowed: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if allowed.iter().any(|a| a == s) && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out.sort_by_key(|s| (s != "openid", s.clone()));
    out
}

fn attr<'a>(resolved: &'a Resolved, name: &str) -> &'a [String] {
    resolved
        .attributes
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
        .unwrap_or(&[])
}

/// The claims released for `scope` (besides `sub`, which every token carries).
pub fn release(resolved: &Resolved, scope: &[String], profile: ClaimProfile) -> Map<String, Value> {
    let mut out = Map::new();
    for (s, names) in SCOPE_CLAIMS {
        if !scope.iter().any(|g| g == s) {
            continue;
        }
        for name in *names {
            let value = match *name {
                "phone_number" => attr(resolved, "phone").first().map(|v| json!(v)),
                "roles" => Some(json!(attr(resolved, "roles"))),
                "tax_code" => resolved.account.tax_code.as_ref().map(|v| json!(v)),
                other => attr(resolved, other).first().map(|v| json!(v)),
            };
            if let Some(v) = value {
                out.insert((*name).to_string(), v);
            }
        }
    }
    if profile == ClaimProfile::Portal {
        for (ours, theirs) in PORTAL_NAMES {
            if let Some(v) = out.get(*ours) {
                let v = if *ours == "account_type" {
                    json!(portal_account_type(v.as_str().unwrap_or_default()))
                } else {
                    v.clone()
                };
                out.insert((*theirs).to_string(), v);
            }
        }
    }
    out
}

/// The subject this client knows the person by: pairwise (the membership's subject, or one
/// derived per relying party) or the account id for public subjects.
pub fn subject(resolved: &Resolved, subject_type: SubjectType) -> String {
    match subject_type {
        SubjectType::Pairwise => resolved.subject.clone(),
        SubjectType::Public => resolved.account.id.clone(),
    }
}
