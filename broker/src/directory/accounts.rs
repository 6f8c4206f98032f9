//! Accounts: the people and bodies that sign in through the hub. A citizen is known by a
//! personal ID (CCCD or old CMND), an organisation by its tax code, a state agency by its
//! agency identifier code. Ids are UUIDs, as the national portal's screens show them.

use diesel::prelude::*;
use fedhub_identifiers::{AgencyCode, Email, PersonalId, Phone, TaxCode};
use serde::{Deserialize, Serialize};

use super::{agencies, fold_name};
use crate::error::{Error, Result};
use crate::store::schema::accounts::dsl as ac;
use crate::store::{new_id, Db};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = crate::store::schema::accounts)]
pub struct Account {
    pub id: String,
    pub kind: String,
    pub display_name: String,
    #[serde(skip)]
    pub search_name: String,
    pub national_id: Option<String>,
    pub tax_code: Option<String>,
    pub agency_code: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    Citizen,
    Organisation,
    Agency,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Citizen => "citizen",
            AccountKind::Organisation => "organisation",
            AccountKind::Agency => "agency",
        }
    }

    pub fn parse(s: &str) -> Result<AccountKind> {
        match s.trim() {
            "citizen" => Ok(AccountKind::Citizen),
            "organisation" | "organization" => Ok(AccountKind::Organisation),
            "agency" => Ok(AccountKind::Agency),
            other => Err(Error::invalid(
                "kind",
                format!("{other:?} is not one of: citizen, organisation, agency"),
            )),
        }
    }
}

/// An account as given by a person, a file or the API, not yet checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    pub kind: String,
    pub display_name: String,
    #[serde(default)]
    pub national_id: Option<String>,
    #[serde(default)]
    pub tax_code: Option<String>,
    #[serde(default)]
    pub agency_code: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// An account whose fields all passed their rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAccount {
    pub kind: AccountKind,
    pub display_name: String,
    pub national_id: Option<PersonalId>,
    pub tax_code: Option<TaxCode>,
    pub agency_code: Option<AgencyCode>,
    pub phone: Option<Phone>,
    pub email: Option<Email>,
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl AccountInput {
    /// The identifier that names this account in the audit log, as given.
    pub fn key_identifier(&self) -> String {
        present(&self.national_id)
            .or(present(&self.tax_code))
            .or(present(&self.agency_code))
            .unwrap_or(self.display_name.trim())
            .to_string()
    }

    pub fn validate(&self) -> Result<ValidAccount> {
        let kind = AccountKind::parse(&self.kind)?;
        let display_name = self
            .display_name
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if display_name.is_empty() {
            return Err(Error::invalid("display_name", "the name is required"));
        }
        if display_name.chars().count() > 200 {
            return Err(Error::invalid("display_name", "at most 200 characters"));
        }
        // Errors name the field the caller filled in, whichever rule (CCCD or CMND) failed.
        let national_id = present(&self.national_id)
            .map(PersonalId::parse)
            .transpose()
            .map_err(|e| Error::invalid("national_id", e.to_string()))?;
        let tax_code = present(&self.tax_code).map(TaxCode::parse).transpose()?;
        let agency_code = present(&self.agency_code)
            .map(AgencyCode::parse)
            .transpose()?;
        let phone = present(&self.phone).map(Phone::parse).transpose()?;
        let email = present(&self.email).map(Email::parse).transpose()?;
        match kind {
            AccountKind::Citizen if national_id.is_none() => {
                return Err(Error::invalid(
                    "national_id",
                    "a citizen account needs a CCCD (12 digits) or CMND (9 digits)",
                ))
            }
            AccountKind::Organisation if tax_code.is_none() => {
                return Err(Error::invalid(
                    "tax_code",
                    "an organisation account needs its tax code (MST)",
                ))
            }
            AccountKind::Agency if agency_code.is_none() => {
                return Err(Error::invalid(
                    "agency_code",
                    "a state-agency account needs its agency identifier code",
                ))
            }
            _ => {}
        }
        Ok(ValidAccount {
            kind,
            display_name,
            national_id,
            tax_code,
            agency_code,
            phone,
            email,
        })
    }
}

/// Stores a new account after checking uniqueness and that its agency is registered.
pub fn add(conn: &mut Db, account: &ValidAccount, now: i64) -> Result<Account> {
    if let Some(nid) = &account.national_id {
        if by_national_id(conn, nid.as_str())?.is_some() {
            return Err(Error::conflict(
                "national_id",
                "an account with this personal ID already exists",
            ));
        }
    }
    if let Some(tax) = &account.tax_code {
        let taken = ac::accounts
            .filter(ac::tax_code.eq(tax.as_str()))
            .count()
            .get_result::<i64>(conn)?
            > 0;
        if taken {
            return Err(Error::conflict(
                "tax_code",
                "an account with this tax code already exists",
            ));
        }
    }
    if let Some(code) = &account.agency_code {
        if agencies::find(conn, code)?.is_none() {
            return Err(Error::invalid(
                "agency_code",
                format!("agency {code} is not registered in the directory"),
            ));
        }
    }
    let id = new_id();
    diesel::insert_into(ac::accounts)
        .values((
            ac::id.eq(&id),
            ac::kind.eq(account.kind.as_str()),
            ac::display_name.eq(&account.display_name),
            ac::search_name.eq(fold_name(&account.display_name)),
            ac::national_id.eq(account.national_id.as_ref().map(|v| v.as_str().to_string())),
            ac::tax_code.eq(account.tax_code.as_ref().map(|v| v.as_str().to_string())),
            ac::agency_code.eq(account.agency_code.as_ref().map(|v| v.as_str().to_string())),
            ac::phone.eq(account.phone.as_ref().map(|v| v.as_str().to_string())),
            ac::email.eq(account.email.as_ref().map(|v| v.as_str().to_string())),
            ac::status.eq("active"),
            ac::created_at.eq(now),
            ac::updated_at.eq(now),
        ))
        .execute(conn)?;
    get(conn, &id)
}

pub fn get(conn: &mut Db, id: &str) -> Result<Account> {
    ac::accounts
        .find(id)
        .select(Account::as_select())
        .get_result(conn)
        .optional()?
        .ok_or_else(|| Error::not_found("account", id))
}

/// The organisation registered with this tax code (an organisation's certificate carries
/// `UID=MST:`).
pub fn by_tax_code(conn: &mut Db, tax_code: &str) -> Result<Option<Account>> {
    Ok(ac::accounts
        .filter(ac::tax_code.eq(tax_code))
        .filter(ac::kind.eq("organisation"))
        .select(Account::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn by_national_id(conn: &mut Db, national_id: &str) -> Result<Option<Account>> {
    Ok(ac::accounts
        .filter(ac::national_id.eq(national_id))
        .select(Account::as_select())
        .get_result(conn)
        .optional()?)
}

/// Searches the directory the way the seed's "Add new" screen does: one box that takes a
/// CCCD/CMND, phone number, tax code, agency code, account id or part of a name. A query
/// that reads as several kinds of identifier (a 10-digit number can be a phone and a tax
/// code) matches any of them.
pub fn find(conn: &mut Db, query: &str, limit: i64) -> Result<Vec<Account>> {
    let q = query.trim();
    if q.chars().count() < 2 {
        return Err(Error::invalid("query", "type at least 2 characters"));
    }
    let mut sql = ac::accounts.select(Account::as_select()).into_boxed();
    let mut exact = false;
    if let Ok(id) = PersonalId::parse(q) {
        sql = sql.or_filter(ac::national_id.eq(id.as_str().to_string()));
        exact = true;
    }
    if let Ok(tax) = TaxCode::parse(q) {
        sql = sql.or_filter(ac::tax_code.eq(tax.as_str().to_string()));
        exact = true;
    }
    if let Ok(phone) = Phone::parse(q) {
        sql = sql.or_filter(ac::phone.eq(phone.as_str().to_string()));
        exact = true;
    }
    if let Ok(code) = AgencyCode::parse(q) {
        sql = sql.or_filter(ac::agency_code.eq(code.as_str().to_string()));
        exact = true;
    }
    if let Ok(uuid) = uuid::Uuid::parse_str(q) {
        sql = sql.or_filter(ac::id.eq(uuid.to_string()));
        exact = true;
    }
    if let Ok(email) = Email::parse(q) {
        sql = sql.or_filter(ac::email.eq(email.as_str().to_string()));
        exact = true;
    }
    let limit = limit.clamp(1, 500);
    if !exact {
        // A name fragment matches anywhere in the name, so no index range finds it. The ids
        // come first from the (search_name, id) index alone, where PostgreSQL tests the
        // pattern on the index entries instead of fetching every account in name order.
        let pattern = format!("%{}%", escape_like(&fold_name(q)));
        let ids: Vec<String> = ac::accounts
            .filter(ac::search_name.like(pattern).escape('\\'))
            .order((ac::search_name.asc(), ac::id.asc()))
            .select(ac::id)
            .limit(limit)
            .load(conn)?;
        return Ok(ac::accounts
            .filter(ac::id.eq_any(&ids))
            .select(Account::as_select())
            .order((ac::search_name.asc(), ac::id.asc()))
            .load(conn)?);
    }
    Ok(sql
        .order((ac::search_name.asc(), ac::id.asc()))
        .limit(limit)
        .load(conn)?)
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub fn count(conn: &mut Db) -> Result<i64> {
    Ok(ac::accounts.count().get_result(conn)?)
}
