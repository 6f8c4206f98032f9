//! State agency identifier code (mã định danh cơ quan), Decision 20/2020/QĐ-TTg.
//!
//! Written `V1V2V3.Z1Z2.Y1Y2.X1X2X3` and read right to left: X is level 1 (ministry or
//! province), Y level 2, Z level 3, V level 4. Only the format is encoded here; which codes
//! exist is data (`data/agencies.csv`), because the government renumbers agencies.

use std::ops::Range;

use crate::{string_identifier, IdError, IdKind};

/// A validated agency code in canonical (uppercase) form, e.g. `000.00.18.G12`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgencyCode(String);

string_identifier!(AgencyCode);

/// Byte range of each level's segment in the canonical 13-character form.
const fn span(level: u8) -> Range<usize> {
    match level {
        1 => 10..13,
        2 => 7..9,
        3 => 4..6,
        _ => 0..3,
    }
}

fn is_zero(segment: &str) -> bool {
    segment.bytes().all(|b| b == b'0')
}

/// Levels 2-4: digits and uppercase letters only (input is uppercased before this check).
fn is_lower_level(segment: &str, len: usize) -> bool {
    segment.len() == len
        && segment
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

fn is_level1(segment: &str) -> bool {
    let b = segment.as_bytes();
    b.len() == 3 && b[0].is_ascii_uppercase() && b[1].is_ascii_digit() && b[2].is_ascii_digit()
}

impl AgencyCode {
    /// Parses a code, accepting lowercase letters and surrounding whitespace.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let raw = input.trim();
        let err = |rule: &str| IdError::new(IdKind::AgencyCode, raw, rule);
        let upper = raw.to_ascii_uppercase();
        let parts: Vec<&str> = upper.split('.').collect();
        let [l4, l3, l2, l1] = parts.as_slice() else {
            return Err(err(
                "must be four dot-separated segments V1V2V3.Z1Z2.Y1Y2.X1X2X3, e.g. 000.00.18.G12",
            ));
        };
        if !is_level1(l1) {
            return Err(err(
                "level-1 segment (the last one) must be one letter and two digits, e.g. G12",
            ));
        }
        if !is_lower_level(l2, 2) {
            return Err(err(
                "level-2 segment (the third one) must be two characters 0-9 or A-Z, 00 if unused",
            ));
        }
        if !is_lower_level(l3, 2) {
            return Err(err(
                "level-3 segment (the second one) must be two characters 0-9 or A-Z, 00 if unused",
            ));
        }
        if !is_lower_level(l4, 3) {
            return Err(err(
                "level-4 segment (the first one) must be three characters 0-9 or A-Z, 000 if unused",
            ));
        }
        // A unit hangs under its parent unit; a set level below an unused one has no parent.
        if is_zero(l2) && !is_zero(l3) {
            return Err(err(
                "level 3 is set but level 2 is 00: a code cannot skip a level",
            ));
        }
        if is_zero(l3) && !is_zero(l4) {
            return Err(err(
                "level 4 is set but level 3 is 00: a code cannot skip a level",
            ));
        }
        Ok(AgencyCode(upper))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    // Slicing is safe: parse only admits 13 ASCII bytes in the canonical layout.
    fn segment(&self, level: u8) -> &str {
        &self.0[span(level)]
    }

    /// Depth in the tree: 1 for a ministry or province, up to 4.
    pub fn level(&self) -> u8 {
        (2..=4)
            .rev()
            .find(|&l| !is_zero(self.segment(l)))
            .unwrap_or(1)
    }

    /// The level-1 segment, e.g. `G12`: which ministry or province the code belongs to.
    pub fn level1(&self) -> &str {
        self.segment(1)
    }

    /// The directly enclosing agency (deepest level zeroed); `None` at level 1.
    pub fn parent(&self) -> Option<AgencyCode> {
        let level = self.level();
        if level == 1 {
            return None;
        }
        let range = span(level);
        let zeros = "0".repeat(range.len());
        let mut parent = self.0.clone();
        parent.replace_range(range, &zeros);
        Some(AgencyCode(parent))
    }

    /// Whether `self` is `scope` or lies anywhere beneath it; admin rights are scoped this way.
    pub fn is_within(&self, scope: &AgencyCode) -> bool {
        // Every level that the scope sets must match; levels below the scope are free.
        (1..=scope.level()).all(|l| self.segment(l) == scope.segment(l))
    }

    /// All enclosing agencies, nearest first, ending at level 1.
    pub fn ancestors(&self) -> Vec<AgencyCode> {
        std::iter::successors(self.parent(), AgencyCode::parent).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(s: &str) -> AgencyCode {
        AgencyCode::parse(s).unwrap()
    }

    fn rule(s: &str) -> String {
        let e = AgencyCode::parse(s).unwrap_err();
        assert_eq!(e.kind, IdKind::AgencyCode);
        e.rule
    }

    #[test]
    fn ministry_of_finance_and_its_tax_department() {
        let mof = code("000.00.00.G12");
        assert_eq!(mof.level(), 1);
        assert_eq!(mof.level1(), "G12");
        assert_eq!(mof.parent(), None);
        assert!(mof.ancestors().is_empty());

        let tax = code("000.00.18.G12");
        assert_eq!(tax.level(), 2);
        assert_eq!(tax.parent(), Some(mof.clone()));
        assert!(tax.is_within(&mof));
        assert!(!mof.is_within(&tax));
        assert!(mof.is_within(&mof));
    }

    #[test]
    fn province_code() {
        let qn = code("000.00.00.H49");
        assert_eq!((qn.level(), qn.level1()), (1, "H49"));
    }

    #[test]
    fn lowercase_and_whitespace_canonicalise() {
        let c = code("  a01.b2.18.g12\n");
        assert_eq!(c.as_str(), "A01.B2.18.G12");
        assert_eq!(c.to_string(), "A01.B2.18.G12");
        assert_eq!(c.level(), 4);
    }

    #[test]
    fn ancestors_run_nearest_first_to_level_1() {
        let c = code("003.02.18.G12");
        let chain: Vec<String> = c.ancestors().iter().map(|a| a.to_string()).collect();
        assert_eq!(chain, ["000.02.18.G12", "000.00.18.G12", "000.00.00.G12"]);
    }

    #[test]
    fn is_within_rejects_siblings_and_other_ministries() {
        let unit = code("000.01.18.G12");
        assert!(unit.is_within(&code("000.00.18.G12")));
        assert!(!unit.is_within(&code("000.00.17.G12")));
        assert!(!unit.is_within(&code("000.00.18.G22")));
        assert!(!unit.is_within(&code("000.02.18.G12")));
        assert!(!unit.is_within(&code("000.00.00.H49")));
    }

    #[test]
    fn rejects_wrong_segment_count() {
        for bad in ["", "G12", "000.00.G12", "000.00.00.00.G12", "000-00-00-G12"] {
            assert!(
                rule(bad).starts_with("must be four dot-separated segments"),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_bad_level1() {
        for bad in [
            "000.00.00.123",
            "000.00.00.GG2",
            "000.00.00.G1",
            "000.00.00.G123",
            "000.00.00.000",
            "000.00.00.Ğ12",
        ] {
            assert!(rule(bad).starts_with("level-1 segment"), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_lower_levels() {
        assert!(rule("000.00.1-.G12").starts_with("level-2 segment"));
        assert!(rule("000.00.018.G12").starts_with("level-2 segment"));
        assert!(rule("000.0 .18.G12").starts_with("level-3 segment"));
        assert!(rule("000.Đ1.18.G12").starts_with("level-3 segment"));
        assert!(rule("00.00.00.G12").starts_with("level-4 segment"));
        assert!(rule("0_0.01.18.G12").starts_with("level-4 segment"));
    }

    #[test]
    fn rejects_gaps() {
        assert!(rule("000.05.00.G12").starts_with("level 3 is set but level 2 is 00"));
        assert!(rule("001.00.18.G12").starts_with("level 4 is set but level 3 is 00"));
        assert!(rule("001.00.00.G12").starts_with("level 4 is set but level 3 is 00"));
    }

    #[test]
    fn serde_goes_through_parse() {
        let ok: AgencyCode = crate::from_str_de("000.00.18.g12").unwrap();
        assert_eq!(ok.as_str(), "000.00.18.G12");
        let bad = crate::from_str_de::<AgencyCode>("000.05.00.G12").unwrap_err();
        assert!(bad.to_string().contains("cannot skip a level"));
    }

    /// A valid code of random depth: levels below the depth are zero, levels above non-zero.
    fn valid_code() -> impl Strategy<Value = AgencyCode> {
        let nonzero2 = "[0-9A-Z]{2}".prop_filter("non-zero", |s| s != "00");
        let nonzero3 = "[0-9A-Z]{3}".prop_filter("non-zero", |s| s != "000");
        (
            "[A-Z][0-9]{2}",
            nonzero2.clone(),
            nonzero2,
            nonzero3,
            1u8..=4,
        )
            .prop_map(|(l1, l2, l3, l4, depth)| {
                let l2 = if depth >= 2 { l2 } else { "00".into() };
                let l3 = if depth >= 3 { l3 } else { "00".into() };
                let l4 = if depth >= 4 { l4 } else { "000".into() };
                code(&format!("{l4}.{l3}.{l2}.{l1}"))
            })
    }

    proptest! {
        #[test]
        fn round_trips_through_display(c in valid_code()) {
            prop_assert_eq!(AgencyCode::parse(&format!("{c}")).unwrap(), c.clone());
            prop_assert_eq!(AgencyCode::parse(&c.as_str().to_lowercase()).unwrap(), c);
        }

        #[test]
        fn parent_chain_ends_at_level_1_and_contains_the_child(c in valid_code()) {
            let chain = c.ancestors();
            prop_assert_eq!(chain.len(), usize::from(c.level() - 1));
            let mut child = c.clone();
            for parent in &chain {
                prop_assert_eq!(parent.level() + 1, child.level());
                prop_assert_eq!(parent.level1(), c.level1());
                prop_assert!(child.is_within(parent));
                prop_assert!(c.is_within(parent));
                prop_assert!(!parent.is_within(&child));
                child = parent.clone();
            }
            prop_assert_eq!(child.level(), 1);
            prop_assert_eq!(child.parent(), None);
        }

        #[test]
        fn never_panics_on_arbitrary_input(s in ".{0,20}") {
            let _ = AgencyCode::parse(&s);
        }
    }
}
