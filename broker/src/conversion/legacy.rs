//! Legacy accounts: the users a relying party held before it joined the hub, imported per
//! relying party so they can later be converted to federated accounts.
//!
//! A file (CSV or JSON) gives, for each user, the username, display name, unit (agency code),
//! user group, roles and the password hash as the legacy system stored it. The import is all
//! or nothing: every row is checked first, every problem is reported with its row number and
//! field, and nothing is written unless every row is good.
//!
//! Passwords never arrive in clear: a `password` column (or key) is refused, and the hash
//! must be in a format [`password`](super::password) accepts. Hashes are stored as given and
//! never returned: [`list`] leaves them out. Nothing here signs anyone in: the hub offers no
//! password sign-in, legacy or otherwise.

use std::collections::{BTreeMap, HashMap, HashSet};

use diesel::prelude::*;
use fedhub_identifiers::AgencyCode;
use serde::Serialize;

use super::password::{self, HashScheme};
use crate::directory::agencies;
use crate::error::{Error, Result};
use crate::store::schema::legacy_accounts::dsl as la;
use crate::store::{new_id, Db};

/// Columns a CSV may have; `username`, `display_name` and `password_hash` are required.
pub const CSV_COLUMNS: &[&str] = &[
    "username",
    "display_name",
    "unit",
    "user_group",
    "roles",
    "password_hash",
    "subject",
];
const REQUIRED: &[&str] = &["username", "display_name", "password_hash"];

const MAX_USERNAME: usize = 200;
const MAX_DISPLAY_NAME: usize = 300;
const MAX_GROUP: usize = 200;
const MAX_ROLE: usize = 100;

/// The formats a file may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    /// The format a file name's extension tells (`.csv`, `.json`).
    pub fn of_path(path: &std::path::Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// One legacy account as a file gives it, before any check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyRecord {
    /// Where the record is: the 1-based data row, and the file line for CSV.
    pub row: usize,
    pub line: Option<usize>,
    pub username: String,
    pub display_name: String,
    pub unit: Option<String>,
    pub user_group: Option<String>,
    pub roles: Vec<String>,
    pub password_hash: String,
    /// What the relying party knows the user by; the username when absent.
    pub subject: Option<String>,
}

impl LegacyRecord {
    fn at(&self) -> String {
        at(self.row, self.line)
    }
}

fn at(row: usize, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("row {row} (line {line})"),
        None => format!("row {row}"),
    }
}

/// A legacy account as stored, without its password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegacyAccount {
    pub id: String,
    pub rp_id: String,
    pub username: String,
    pub display_name: String,
    pub unit_agency_code: Option<String>,
    pub user_group: Option<String>,
    pub roles: Vec<String>,
    pub hash_scheme: String,
    pub subject: String,
    pub converted_to: Option<String>,
    pub converted_at: Option<i64>,
    pub created_at: i64,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub imported: usize,
    /// How many hashes of each scheme.
    pub schemes: BTreeMap<HashScheme, usize>,
    /// How many hashes have weak parameters (accepted all the same).
    pub weak: usize,
}

/// Reads a file's text in `format`. Structural problems (a row with the wrong number of
/// fields, an unknown or clear-text password column, JSON that is not an array of objects)
/// refuse the whole file, each with its row.
pub fn parse(text: &str, format: Format) -> Result<Vec<LegacyRecord>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records = match format {
        Format::Csv => parse_csv(text)?,
        Format::Json => parse_json(text)?,
    };
    if records.is_empty() {
        return Err(Error::invalid("file", "the file has no accounts"));
    }
    Ok(records)
}

/// Does a column or key name look like it holds a clear-text password?
fn clear_text_name(name: &str) -> bool {
    let n = name.trim().to_lowercase();
    n != "password_hash"
        && ["pass", "pwd", "mat_khau", "matkhau", "mật khẩu", "mật_khẩu"]
            .iter()
            .any(|w| n.contains(w))
}

const CLEAR_TEXT: &str =
    "clear-text passwords are never accepted; export the hash the system stores as password_hash";

/// The file line a byte offset is on, past any blank lines the reader skipped there.
fn line_at(text: &str, byte: u64) -> usize {
    let bytes = text.as_bytes();
    let start = usize::try_from(byte).map_or(bytes.len(), |b| b.min(bytes.len()));
    let blank = bytes[start..]
        .iter()
        .take_while(|b| matches!(b, b'\n' | b'\r'))
        .count();
    1 + newlines(&bytes[..start + blank])
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

fn summarise(problems: &[String]) -> String {
    const SHOWN: usize = 20;
    let shown: Vec<&str> = problems.iter().take(SHOWN).map(String::as_str).collect();
    let mut text = format!(
        "{} problem(s), nothing imported: {}",
        problems.len(),
        shown.join("; ")
    );
    if problems.len() > SHOWN {
        text.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    text
}

fn parse_csv(text: &str) -> Result<Vec<LegacyRecord>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Error::invalid("file", format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let mut problems = Vec::new();
    if headers.len() == 1 && headers[0].contains(';') {
        return Err(Error::invalid(
            "file",
            "header (line 1): one column only: separate the columns with commas, not `;` \
             (roles, within their column, are the ones separated by `;`)",
        ));
    }
    let mut clear_columns = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        if clear_text_name(h) {
            clear_columns.push(i);
        } else if !CSV_COLUMNS.contains(&h.as_str()) {
            problems.push(format!(
                "header (line 1): unknown column `{h}`; columns are: {}",
                CSV_COLUMNS.join(", ")
            ));
        }
    }
    for required in REQUIRED {
        if !headers.iter().any(|h| h == required) {
            problems.push(format!(
                "header (line 1): the `{required}` column is missing"
            ));
        }
    }
    let seen: HashSet<&str> = headers.iter().map(String::as_str).collect();
    if seen.len() != headers.len() {
        problems.push("header (line 1): a column is named twice".into());
    }
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (username, display_name, unit, group, roles, hash, subject) = (
        column("username"),
        column("display_name"),
        column("unit"),
        column("user_group"),
        column("roles"),
        column("password_hash"),
        column("subject"),
    );
    let mut records = Vec::new();
    let mut row = 0;
    for result in reader.records() {
        row += 1;
        let record = match result {
            Ok(r) => r,
            Err(e) => {
                let (line, rule) = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        pos,
                        expected_len,
                        len,
                    } => (
                        pos.as_ref().map(|p| line_at(text, p.byte())),
                        format!("{len} field(s) where the header has {expected_len}"),
                    ),
                    csv::ErrorKind::Utf8 { pos, .. } => (
                        pos.as_ref().map(|p| line_at(text, p.byte())),
                        "not UTF-8".to_string(),
                    ),
                    _ => return Err(Error::invalid("file", format!("cannot read the CSV: {e}"))),
                };
                problems.push(format!("{}: {rule}", at(row, line)));
                continue;
            }
        };
        let line = Some(line_at(text, record.position().map_or(0, |p| p.byte())));
        for &i in &clear_columns {
            if !record.get(i).unwrap_or_default().is_empty() {
                problems.push(format!("{}: {}: {CLEAR_TEXT}", at(row, line), headers[i]));
            }
        }
        let get = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or_default();
        let optional = |i: Option<usize>| Some(get(i).to_string()).filter(|s| !s.is_empty());
        records.push(LegacyRecord {
            row,
            line,
            username: get(username).to_string(),
            display_name: get(display_name).to_string(),
            unit: optional(unit),
            user_group: optional(group),
            roles: get(roles)
                .split(';')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(String::from)
                .collect(),
            password_hash: get(hash).to_string(),
            subject: optional(subject),
        });
    }
    if let Some(&i) = clear_columns.first() {
        if !problems.iter().any(|p| p.contains(CLEAR_TEXT)) {
            problems.push(format!("header (line 1): {}: {CLEAR_TEXT}", headers[i]));
        }
    }
    if !problems.is_empty() {
        return Err(Error::invalid("file", summarise(&problems)));
    }
    Ok(records)
}

fn parse_json(text: &str) -> Result<Vec<LegacyRecord>> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::invalid("file", format!("not JSON: {e}")))?;
    let serde_json::Value::Array(items) = value else {
        return Err(Error::invalid(
            "file",
            "expected a JSON array of account objects",
        ));
    };
    let mut problems = Vec::new();
    let mut records = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let row = i + 1;
        match json_record(row, item) {
            Ok(r) => records.push(r),
            Err(mut found) => problems.append(&mut found),
        }
    }
    if !problems.is_empty() {
        return Err(Error::invalid("file", summarise(&problems)));
    }
    Ok(records)
}

fn json_record(
    row: usize,
    item: &serde_json::Value,
) -> std::result::Result<LegacyRecord, Vec<String>> {
    use serde_json::Value;
    let Value::Object(fields) = item else {
        return Err(vec![format!("row {row}: not a JSON object")]);
    };
    let mut problems = Vec::new();
    for key in fields.keys() {
        if clear_text_name(key) {
            problems.push(format!("row {row}: {key}: {CLEAR_TEXT}"));
        } else if !CSV_COLUMNS.contains(&key.as_str()) {
            problems.push(format!(
                "row {row}: unknown field `{key}`; fields are: {}",
                CSV_COLUMNS.join(", ")
            ));
        }
    }
    let mut text = |name: &str| -> Option<String> {
        match fields.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            Some(_) => {
                problems.push(format!("row {row}: {name}: expected a string"));
                None
            }
        }
    };
    let username = text("username").unwrap_or_default();
    let display_name = text("display_name").unwrap_or_default();
    let unit = text("unit");
    let user_group = text("user_group");
    let password_hash = text("password_hash").unwrap_or_default();
    let subject = text("subject");
    let roles = match fields.get("roles") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(|n| match n {
                Value::String(s) => Some(s.trim().to_string()),
                _ => {
                    problems.push(format!("row {row}: roles: each role is a string"));
                    None
                }
            })
            .collect(),
        Some(_) => {
            problems.push(format!("row {row}: roles: expected an array of role names"));
            Vec::new()
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(LegacyRecord {
        row,
        line: None,
        username,
        display_name,
        unit,
        user_group,
        roles,
        password_hash,
        subject,
    })
}

/// A record that passed every check, ready to insert.
struct Valid<'a> {
    record: &'a LegacyRecord,
    username: String,
    display_name: String,
    unit: Option<String>,
    user_group: Option<String>,
    roles: Vec<String>,
    password_hash: String,
    scheme: HashScheme,
    weak: bool,
    subject: String,
}

fn text_rule(value: &str, max: usize) -> Option<String> {
    if value.chars().any(char::is_control) {
        Some("must not hold control characters".into())
    } else if value.chars().count() > max {
        Some(format!("at most {max} characters"))
    } else {
        None
    }
}

/// Imports `records` as legacy accounts of relying party `rp_id`, all or nothing, in one
/// transaction (a savepoint when the caller already holds one, as `audit::audited` does).
/// Every record is checked first: username (required, new in the file and in the relying
/// party), display name (required), unit (a registered agency code, when given), user
/// group, role names, password hash (an accepted format) and subject (the username when
/// absent; new too). Any problem refuses the whole import, each named with its row and field.
pub fn import(
    conn: &mut Db,
    rp_id: &str,
    records: &[LegacyRecord],
    now: i64,
) -> Result<ImportReport> {
    conn.transaction(|conn| import_in(conn, rp_id, records, now))
}

fn import_in(
    conn: &mut Db,
    rp_id: &str,
    records: &[LegacyRecord],
    now: i64,
) -> Result<ImportReport> {
    crate::rp::get(conn, rp_id)?;
    if records.is_empty() {
        return Err(Error::invalid("file", "the file has no accounts"));
    }
    let stored: Vec<(String, String)> = la::legacy_accounts
        .filter(la::rp_id.eq(rp_id))
        .select((la::username, la::subject))
        .load(conn)?;
    let stored_usernames: HashSet<&str> = stored.iter().map(|(u, _)| u.as_str()).collect();
    let stored_subjects: HashSet<&str> = stored.iter().map(|(_, s)| s.as_str()).collect();
    let mut units: HashMap<String, std::result::Result<String, String>> = HashMap::new();
    let mut usernames: HashMap<String, usize> = HashMap::new();
    let mut subjects: HashMap<String, usize> = HashMap::new();
    let mut problems = Vec::new();
    let mut valid = Vec::with_capacity(records.len());
    for r in records {
        let before = problems.len();
        let mut problem = |field: &str, rule: String| {
            problems.push(format!("{}: {field}: {rule}", r.at()));
        };
        let username = r.username.trim().to_string();
        if username.is_empty() {
            problem("username", "required".into());
        } else if let Some(rule) = text_rule(&username, MAX_USERNAME) {
            problem("username", rule);
        } else if let Some(first) = usernames.get(&username) {
            problem("username", format!("{username} repeats row {first}"));
        } else if stored_usernames.contains(username.as_str()) {
            problem(
                "username",
                format!("{username} is already imported for this relying party"),
            );
        } else {
            usernames.insert(username.clone(), r.row);
        }
        let display_name = r.display_name.trim().to_string();
        if display_name.is_empty() {
            problem("display_name", "required".into());
        } else if let Some(rule) = text_rule(&display_name, MAX_DISPLAY_NAME) {
            problem("display_name", rule);
        }
        let unit = match r.unit.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            None => None,
            Some(given) => {
                if !units.contains_key(given) {
                    let checked = match AgencyCode::parse(given) {
                        Err(e) => Err(e.rule),
                        Ok(code) => match agencies::find(conn, &code)? {
                            Some(_) => Ok(code.as_str().to_string()),
                            None => Err(format!("agency {code} is not registered")),
                        },
                    };
                    units.insert(given.to_string(), checked);
                }
                match &units[given] {
                    Ok(code) => Some(code.clone()),
                    Err(rule) => {
                        problem("unit", rule.clone());
                        None
                    }
                }
            }
        };
        let user_group = r
            .user_group
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(String::from);
        if let Some(rule) = user_group.as_deref().and_then(|g| text_rule(g, MAX_GROUP)) {
            problem("user_group", rule);
        }
        let mut roles: Vec<String> = Vec::new();
        for role in &r.roles {
            let role = role.trim();
            if role.is_empty() {
                problem("roles", "a role name is empty".into());
            } else if let Some(rule) = text_rule(role, MAX_ROLE) {
                problem("roles", format!("{role}: {rule}"));
            } else if !roles.iter().any(|known| known == role) {
                roles.push(role.to_string());
            }
        }
        let password_hash = r.password_hash.trim().to_string();
        let info = match password::parse(&password_hash) {
            Ok(info) => Some(info),
            Err(e) => {
                // The error names the field and never the value.
                problems.push(format!("{}: {e}", r.at()));
                None
            }
        };
        let mut problem = |field: &str, rule: String| {
            problems.push(format!("{}: {field}: {rule}", r.at()));
        };
        let subject = r
            .subject
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map_or_else(|| username.clone(), String::from);
        if !subject.is_empty() {
            if let Some(rule) = text_rule(&subject, MAX_USERNAME) {
                problem("subject", rule);
            } else if let Some(first) = subjects.get(&subject) {
                problem("subject", format!("{subject} repeats row {first}"));
            } else if stored_subjects.contains(subject.as_str()) {
                problem(
                    "subject",
                    format!("{subject} is already a legacy subject of this relying party"),
                );
            } else {
                subjects.insert(subject.clone(), r.row);
            }
        }
        if let (Some(info), true) = (info, problems.len() == before) {
            valid.push(Valid {
                record: r,
                username,
                display_name,
                unit,
                user_group,
                roles,
                password_hash,
                scheme: info.scheme,
                weak: info.weak.is_some(),
                subject,
            });
        }
    }
    if !problems.is_empty() {
        return Err(Error::invalid("file", summarise(&problems)));
    }
    let mut report = ImportReport::default();
    for v in &valid {
        let roles = serde_json::to_string(&v.roles).map_err(Error::internal)?;
        diesel::insert_into(la::legacy_accounts)
            .values((
                la::id.eq(new_id()),
                la::rp_id.eq(rp_id),
                la::username.eq(&v.username),
                la::display_name.eq(&v.display_name),
                la::unit_agency_code.eq(&v.unit),
                la::user_group.eq(&v.user_group),
                la::roles.eq(&roles),
                la::password_hash.eq(&v.password_hash),
                la::hash_scheme.eq(v.scheme.as_str()),
                la::subject.eq(&v.subject),
                la::created_at.eq(now),
            ))
            .execute(conn)
            .map_err(|e| match Error::from(e) {
                Error::Conflict { field, rule } => Error::conflict(
                    "file",
                    format!("{}: {field}: {rule}; nothing imported", v.record.at()),
                ),
                other => other,
            })?;
        report.imported += 1;
        *report.schemes.entry(v.scheme).or_default() += 1;
        report.weak += usize::from(v.weak);
    }
    Ok(report)
}

type Row = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    i64,
);

/// The legacy accounts of a relying party, by username, without their password hashes.
pub fn list(conn: &mut Db, rp_id: &str) -> Result<Vec<LegacyAccount>> {
    let rows: Vec<Row> = la::legacy_accounts
        .filter(la::rp_id.eq(rp_id))
        .order(la::username.asc())
        .select((
            la::id,
            la::rp_id,
            la::username,
            la::display_name,
            la::unit_agency_code,
            la::user_group,
            la::roles,
            la::hash_scheme,
            la::subject,
            la::converted_to,
            la::converted_at,
            la::created_at,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|r| {
            let roles: Vec<String> = serde_json::from_str(&r.6)
                .map_err(|e| Error::internal(format!("legacy account {}: roles: {e}", r.0)))?;
            Ok(LegacyAccount {
                id: r.0,
                rp_id: r.1,
                username: r.2,
                display_name: r.3,
                unit_agency_code: r.4,
                user_group: r.5,
                roles,
                hash_scheme: r.7,
                subject: r.8,
                converted_to: r.9,
                converted_at: r.10,
                created_at: r.11,
            })
        })
        .collect()
}

/// How many legacy accounts a relying party has.
pub fn count(conn: &mut Db, rp_id: &str) -> Result<i64> {
    Ok(la::legacy_accounts
        .filter(la::rp_id.eq(rp_id))
        .count()
        .get_result(conn)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn csv_rows_carry_their_row_and_line() {
        let text = "\u{feff}username,display_name,unit,user_group,roles,password_hash\n\
                    an.nv,Nguyễn Văn An,,g1,admin; viewer ;,sha256$s$00\n\n\
                    \"binh\",\"Trần\nBình\",000.00.00.G12,,,x\n";
        let rows = parse(text, Format::Csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].row, rows[0].line), (1, Some(2)));
        assert_eq!(rows[0].roles, ["admin", "viewer"]);
        assert_eq!(rows[0].unit, None);
        assert_eq!(rows[0].user_group.as_deref(), Some("g1"));
        assert_eq!((rows[1].row, rows[1].line), (2, Some(4)));
        assert_eq!(rows[1].display_name, "Trần\nBình");
    }

    #[test]
    fn csv_structure_problems_name_rows() {
        let text = "username,display_name,password_hash\na,A,h\nb,B\nc,C,h,extra\n";
        let e = parse(text, Format::Csv).unwrap_err().to_string();
        assert!(e.contains("2 problem(s), nothing imported"), "{e}");
        assert!(
            e.contains("row 2 (line 3): 2 field(s) where the header has 3"),
            "{e}"
        );
        assert!(e.contains("row 3 (line 4): 4 field(s)"), "{e}");
        let e = parse(
            "username,display_name,pw_hash,password\na,A,h,secret\n",
            Format::Csv,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown column `pw_hash`"), "{e}");
        assert!(e.contains("row 1 (line 2): password: clear-text"), "{e}");
        assert!(e.contains("`password_hash` column is missing"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let e = parse("username;display_name;password_hash\na;A;h\n", Format::Csv)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not `;`"), "{e}");
    }

    #[test]
    fn json_rows_are_checked_one_by_one() {
        let text = r#"[
            {"username": "a", "display_name": "A", "roles": ["r1", "r2"], "password_hash": "h"},
            {"username": "b", "display_name": "B", "password": "secret", "password_hash": "h"},
            {"username": "c", "display_name": 5, "roles": "r1", "password_hash": "h"},
            "d"
        ]"#;
        let e = parse(text, Format::Json).unwrap_err().to_string();
        assert!(e.contains("row 2: password: clear-text"), "{e}");
        assert!(e.contains("row 3: display_name: expected a string"), "{e}");
        assert!(e.contains("row 3: roles: expected an array"), "{e}");
        assert!(e.contains("row 4: not a JSON object"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let ok = parse(
            &format!(
                "[{}]",
                text.lines().nth(1).unwrap().trim().trim_end_matches(',')
            ),
            Format::Json,
        )
        .unwrap();
        assert_eq!(ok[0].roles, ["r1", "r2"]);
        assert!(parse("[]", Format::Json).is_err());
        assert!(parse("{}", Format::Json).is_err());
    }

    #[test]
    fn formats_follow_the_extension() {
        use std::path::Path;
        assert_eq!(Format::of_path(Path::new("a/users.CSV")), Some(Format::Csv));
        assert_eq!(Format::of_path(Path::new("users.json")), Some(Format::Json));
        assert_eq!(Format::of_path(Path::new("users.txt")), None);
    }
}
