//! Vietnamese phone numbers, stored in E.164 (`+84…`) so that one person typing
//! `091 234 5678` and another typing `+84912345678` find the same account.

use crate::{string_identifier, IdError, IdKind};

/// A validated Vietnamese mobile or landline number in E.164 form, e.g. `+84912345678`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

string_identifier!(Phone);

/// Characters people use to group digits; they carry no meaning and are dropped.
const SEPARATORS: &[char] = &[' ', '.', '-', '(', ')'];

impl Phone {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let raw = input.trim();
        let err = |rule: &str| IdError::new(IdKind::Phone, raw, rule);
        if !raw
            .chars()
            .all(|c| c.is_ascii_digit() || c == '+' || SEPARATORS.contains(&c))
        {
            return Err(err(
                "may contain only digits, spaces, dots, dashes, parentheses and a leading +",
            ));
        }
        let (open, close) = (raw.find('('), raw.find(')'));
        let one_pair = raw.matches('(').count() <= 1
            && raw.matches(')').count() <= 1
            && match (open, close) {
                (None, None) => true,
                (Some(o), Some(c)) => o < c,
                _ => false,
            };
        if !one_pair {
            return Err(err("parentheses must form a single pair, e.g. (+84)"));
        }
        let compact: String = raw.chars().filter(|c| !SEPARATORS.contains(c)).collect();
        let (international, digits) =
            match compact.strip_prefix('+') {
                Some(rest) => match rest.strip_prefix("84") {
                    Some(nsn) => (true, nsn),
                    None => return Err(err("international form must start with +84 (Vietnam)")),
                },
                None => match compact.strip_prefix("84") {
                    Some(nsn) => (true, nsn),
                    None => match compact.strip_prefix('0') {
                        Some(nsn) => (false, nsn),
                        None => return Err(err(
                            "must start with 0 (national form) or +84 / 84 (international form)",
                        )),
                    },
                },
            };
        if digits.contains('+') {
            return Err(err("+ may appear only once, at the start, before 84"));
        }
        if international && digits.starts_with('0') {
            return Err(err(
                "after the country code 84 the leading 0 must be dropped",
            ));
        }
        match digits.as_bytes().first() {
            Some(b'3' | b'5' | b'7' | b'8' | b'9') if digits.len() != 9 => Err(err(
                "a mobile number must have 9 digits after the leading 0 (10 in all), e.g. 091 234 5678",
            )),
            Some(b'2') if digits.len() != 10 => Err(err(
                "a landline number must have 10 digits after the leading 0 (11 in all), e.g. 024 3773 8668",
            )),
            Some(b'2' | b'3' | b'5' | b'7' | b'8' | b'9') => Ok(Phone(format!("+84{digits}"))),
            _ => Err(err(
                "the digit after the leading 0 must be 3, 5, 7, 8 or 9 for a mobile number, or 2 for a landline",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// E.164 form, e.g. `+84912345678`.
    pub fn e164(&self) -> &str {
        &self.0
    }

    /// National form as printed on Vietnamese screens, e.g. `0912345678`.
    pub fn national(&self) -> String {
        format!("0{}", &self.0[3..])
    }

    /// Mobile numbers can receive SMS one-time codes; landlines (area code 02x) cannot.
    pub fn is_mobile(&self) -> bool {
        !self.0[3..].starts_with('2')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> String {
        let e = Phone::parse(s).unwrap_err();
        assert_eq!(e.kind, IdKind::Phone);
        e.rule
    }

    #[test]
    fn accepts_every_common_mobile_spelling() {
        for s in [
            "0912345678",
            "091 234 5678",
            "091.234.5678",
            "091-234-5678",
            "+84912345678",
            "84912345678",
            "(+84) 912 345 678",
            "+84 91 234 56 78",
            "  0912345678\t",
        ] {
            let p = Phone::parse(s).unwrap();
            assert_eq!(p.e164(), "+84912345678", "{s}");
            assert_eq!(p.national(), "0912345678");
            assert!(p.is_mobile());
        }
    }

    #[test]
    fn every_mobile_prefix_digit() {
        for d in ['3', '5', '7', '8', '9'] {
            let p = Phone::parse(&format!("0{d}12345678")).unwrap();
            assert_eq!(p.as_str(), format!("+84{d}12345678"));
        }
    }

    #[test]
    fn landline() {
        let p = Phone::parse("024 3773 8668").unwrap();
        assert_eq!(p.e164(), "+842437738668");
        assert_eq!(p.national(), "02437738668");
        assert!(!p.is_mobile());
        assert_eq!(Phone::parse("(024) 3773 8668").unwrap(), p);
        assert_eq!(Phone::parse("+84 24 3773 8668").unwrap(), p);
    }

    #[test]
    fn rejects_foreign_characters() {
        for bad in [
            "091234567O",
            "0912/345/678",
            "091 234 5678 ext 2",
            "０９１２３４５６７８",
        ] {
            assert!(rule(bad).starts_with("may contain only digits"), "{bad}");
        }
    }

    #[test]
    fn rejects_unbalanced_parentheses() {
        for bad in [
            "(+84 912345678",
            "+84) 912345678",
            ")+84( 912345678",
            "(+84) (912) 345678",
        ] {
            assert!(
                rule(bad).starts_with("parentheses must form a single pair"),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_other_countries_and_bad_prefixes() {
        assert_eq!(
            rule("+1 212 555 0100"),
            "international form must start with +84 (Vietnam)"
        );
        assert!(rule("912345678").starts_with("must start with 0"));
        assert!(rule("").starts_with("must start with 0"));
        assert_eq!(
            rule("+84 91234+5678"),
            "+ may appear only once, at the start, before 84"
        );
        assert_eq!(
            rule("+84 0912345678"),
            "after the country code 84 the leading 0 must be dropped"
        );
        assert_eq!(
            rule("840912345678"),
            "after the country code 84 the leading 0 must be dropped"
        );
    }

    #[test]
    fn rejects_wrong_lengths() {
        assert!(rule("091234567").starts_with("a mobile number must have 9 digits"));
        assert!(rule("09123456789").starts_with("a mobile number must have 9 digits"));
        assert!(rule("0243773866").starts_with("a landline number must have 10 digits"));
        assert!(rule("024377386688").starts_with("a landline number must have 10 digits"));
    }

    #[test]
    fn rejects_unknown_first_digit() {
        for bad in ["0112345678", "0412345678", "0612345678", "01900 1234", "0"] {
            assert!(
                rule(bad).starts_with("the digit after the leading 0"),
                "{bad}"
            );
        }
    }

    #[test]
    fn serde_goes_through_parse() {
        let p: Phone = crate::from_str_de("091.234.5678").unwrap();
        assert_eq!(p.as_str(), "+84912345678");
        assert!(crate::from_str_de::<Phone>("12345").is_err());
    }
}
