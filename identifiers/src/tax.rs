//! Enterprise tax code (mã số thuế): a 10-digit base with a check digit, or a 13-digit branch
//! code written `NNNNNNNNNN-NNN`.

use crate::{string_identifier, IdError, IdKind};

const WEIGHTS: [u32; 9] = [31, 29, 23, 19, 17, 13, 7, 5, 3];

/// Check digit for the first nine digits (ASCII), or `None` when the rule gives 10: no valid
/// code has that prefix.
fn check_digit(first9: &[u8]) -> Option<u8> {
    let sum: u32 = first9
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = 10 - sum % 11;
    u8::try_from(check).ok().filter(|&c| c < 10)
}

/// A validated tax code: `0301519977` or, for a branch, `0301519977-029`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaxCode(String);

string_identifier!(TaxCode);

impl TaxCode {
    /// Parses a tax code; a 13-digit branch code without the dash is canonicalised to dashed.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let raw = input.trim();
        let err = |rule: String| IdError::new(IdKind::TaxCode, raw, rule);
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let (base, branch) = match raw.split_once('-') {
            None if raw.len() == 10 && digits(raw) => (raw, None),
            None if raw.len() == 13 && digits(raw) => (&raw[..10], Some(&raw[10..])),
            Some((b, s)) if b.len() == 10 && s.len() == 3 && digits(b) && digits(s) => (b, Some(s)),
            _ => {
                return Err(err(
                    "must be 10 digits, or 13 digits written NNNNNNNNNN-NNN for a branch".into(),
                ))
            }
        };
        let b = base.as_bytes();
        match check_digit(&b[..9]) {
            None => {
                return Err(err(format!(
                    "no valid tax code starts with {}: its check digit would be 10",
                    &base[..9]
                )))
            }
            Some(c) if c != b[9] - b'0' => {
                return Err(err(format!(
                    "check digit (10th digit) must be {c} for {}, got {}",
                    &base[..9],
                    char::from(b[9])
                )))
            }
            Some(_) => {}
        }
        // Digits 1-2 are the issuing province; digits 3-9 the serial, which starts at 0000001.
        if &base[2..9] == "0000000" {
            return Err(err("serial (digits 3-9) must not be 0000000".into()));
        }
        match branch {
            Some("000") => Err(err("branch suffix must be 001-999, not 000".into())),
            Some(s) => Ok(TaxCode(format!("{base}-{s}"))),
            None => Ok(TaxCode(base.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 10-digit enterprise code (the whole code unless this is a branch).
    pub fn base(&self) -> &str {
        &self.0[..10]
    }

    /// The 3-digit branch suffix, if any.
    pub fn branch(&self) -> Option<&str> {
        self.0.get(11..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(s: &str) -> String {
        let e = TaxCode::parse(s).unwrap_err();
        assert_eq!(e.kind, IdKind::TaxCode);
        e.rule
    }

    #[test]
    fn real_enterprise_and_branch() {
        let t = TaxCode::parse(" 0301519977 ").unwrap();
        assert_eq!(
            (t.as_str(), t.base(), t.branch()),
            ("0301519977", "0301519977", None)
        );

        let b = TaxCode::parse("0301519977-029").unwrap();
        assert_eq!(b.base(), "0301519977");
        assert_eq!(b.branch(), Some("029"));

        let undashed = TaxCode::parse("0301519977029").unwrap();
        assert_eq!(undashed, b);
        assert_eq!(undashed.to_string(), "0301519977-029");
    }

    #[test]
    fn check_digit_matches_worked_example() {
        // 0*31+3*29+0*23+1*19+5*17+1*13+9*7+9*5+7*3 = 333; 333 mod 11 = 3; 10 - 3 = 7.
        assert_eq!(check_digit(b"030151997"), Some(7));
    }

    #[test]
    fn rejects_wrong_shape() {
        let shape = "must be 10 digits, or 13 digits written NNNNNNNNNN-NNN for a branch";
        for bad in [
            "",
            "030151997",
            "03015199770",
            "030151997a",
            "0301 519977",
            "0301519977-29",
            "0301519977-0290",
            "030151997-7029",
            "0301519977-02a",
            "0301519977--029",
            "03015199770290",
        ] {
            assert_eq!(rule(bad), shape, "{bad:?}");
        }
    }

    #[test]
    fn rejects_wrong_check_digit() {
        assert_eq!(
            rule("0301519978"),
            "check digit (10th digit) must be 7 for 030151997, got 8"
        );
        assert!(rule("0301519978-029").starts_with("check digit"));
    }

    #[test]
    fn rejects_prefix_whose_check_would_be_10() {
        // 010000005: 1*29 + 5*3 = 44 = 0 mod 11, so the check digit would be 10.
        assert_eq!(check_digit(b"010000005"), None);
        assert_eq!(
            rule("0100000050"),
            "no valid tax code starts with 010000005: its check digit would be 10"
        );
    }

    #[test]
    fn rejects_zero_serial() {
        // 01 + 0000000: 1*29 = 29, 29 mod 11 = 7, check 3: passes the checksum, fails the serial.
        assert_eq!(
            rule("0100000003"),
            "serial (digits 3-9) must not be 0000000"
        );
    }

    #[test]
    fn rejects_branch_000() {
        assert_eq!(
            rule("0301519977-000"),
            "branch suffix must be 001-999, not 000"
        );
        assert_eq!(
            rule("0301519977000"),
            "branch suffix must be 001-999, not 000"
        );
    }

    #[test]
    fn serde_goes_through_parse() {
        let t: TaxCode = crate::from_str_de("0301519977029").unwrap();
        assert_eq!(t.as_str(), "0301519977-029");
        assert!(crate::from_str_de::<TaxCode>("0301519978").is_err());
    }

    /// Nine digits with a non-zero serial whose check digit exists.
    fn valid_prefix() -> impl Strategy<Value = String> {
        "[0-9]{9}".prop_filter("valid prefix", |p| {
            &p[2..] != "0000000" && check_digit(p.as_bytes()).is_some()
        })
    }

    fn valid_code() -> impl Strategy<Value = TaxCode> {
        (valid_prefix(), proptest::option::of(1u16..=999)).prop_map(|(p, branch)| {
            let check = check_digit(p.as_bytes()).unwrap();
            let s = match branch {
                Some(n) => format!("{p}{check}-{n:03}"),
                None => format!("{p}{check}"),
            };
            TaxCode::parse(&s).unwrap()
        })
    }

    proptest! {
        #[test]
        fn round_trips_through_display(t in valid_code()) {
            prop_assert_eq!(TaxCode::parse(&format!("{t}")).unwrap(), t.clone());
            prop_assert_eq!(TaxCode::parse(&t.as_str().replace('-', "")).unwrap(), t);
        }

        #[test]
        fn wrong_check_digit_is_always_rejected(p in "[0-9]{9}", d in 0u8..10) {
            prop_assume!(check_digit(p.as_bytes()) != Some(d));
            let e = TaxCode::parse(&format!("{p}{d}")).unwrap_err();
            prop_assert!(e.rule.starts_with("check digit") || e.rule.starts_with("no valid tax code"));
        }

        #[test]
        fn never_panics_on_arbitrary_input(s in ".{0,20}") {
            let _ = TaxCode::parse(&s);
        }
    }
}
