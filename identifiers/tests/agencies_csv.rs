//! Keeps `data/agencies.csv` importable: every code must parse, and the list must match the
//! post-2025 administrative map (34 provincial-level units).

use std::collections::HashSet;

use fedhub_identifiers::AgencyCode;

const CSV: &str = include_str!("../../data/agencies.csv");
const HEADER: [&str; 6] = ["code", "name_vi", "name_en", "kind", "source", "note"];

/// Minimal RFC 4180 reader (quoted fields, doubled quotes); enough for this one file and
/// avoids a dev-dependency.
fn records(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, '"') => return Err(format!("stray quote inside an unquoted field: {field}")),
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

fn data_rows() -> Result<Vec<Vec<String>>, String> {
    let mut rows = records(CSV)?;
    if rows.is_empty() || rows.remove(0) != HEADER {
        return Err(format!("header must be {}", HEADER.join(",")));
    }
    match rows.iter().find(|row| row.len() != HEADER.len()) {
        Some(row) => Err(format!("wrong field count in {row:?}")),
        None => Ok(rows),
    }
}

#[test]
fn every_code_is_a_canonical_level_1_agency_code() {
    for row in data_rows().unwrap() {
        let code = AgencyCode::parse(&row[0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            code.as_str(),
            row[0],
            "code must be written in canonical form"
        );
        assert_eq!(code.level(), 1, "{}", row[0]);
    }
}

#[test]
fn codes_are_unique() {
    let rows = data_rows().unwrap();
    let codes: HashSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(codes.len(), rows.len());
}

#[test]
fn kinds_sources_and_names_are_valid() {
    for row in data_rows().unwrap() {
        let (code, kind, source) = (&row[0], row[3].as_str(), row[4].as_str());
        assert!(
            ["official", "observed", "secondary", "derived"].contains(&source),
            "{code}: source {source}"
        );
        let letter = match kind {
            "ministry" | "government_agency" => "G",
            "province" => "H",
            other => panic!("{code}: kind {other}"),
        };
        let level1 = AgencyCode::parse(code).unwrap();
        assert!(
            level1.level1().starts_with(letter),
            "{code} is not a {kind} code"
        );
        assert!(
            !row[1].trim().is_empty() && !row[2].trim().is_empty(),
            "{code}: names"
        );
    }
}

#[test]
fn there_are_34_provinces_and_the_anchors_hold() {
    let rows = data_rows().unwrap();
    let provinces = rows.iter().filter(|r| r[3] == "province").count();
    assert_eq!(provinces, 34);
    let source = |code: &str| {
        rows.iter()
            .find(|r| r[0] == code)
            .map(|r| r[4].clone())
            .unwrap_or_default()
    };
    assert_eq!(source("000.00.00.G12"), "official");
    assert_eq!(source("000.00.00.G22"), "official");
    assert_eq!(source("000.00.00.H49"), "official");
    assert_eq!(source("000.00.00.H57"), "official");
    assert_eq!(source("000.00.00.H29"), "observed");
}

#[test]
fn reader_handles_quotes() {
    let rows = records("a,\"b, c\",\"say \"\"hi\"\"\"\r\nd,,e").unwrap();
    assert_eq!(rows, [vec!["a", "b, c", "say \"hi\""], vec!["d", "", "e"]]);
    assert!(records("a,b\"c").is_err());
    assert!(records("a,\"b").is_err());
}
