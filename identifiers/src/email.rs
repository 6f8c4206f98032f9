//! Email addresses, checked just enough to catch typos and hostile input.
//!
//! Only the domain is lowercased: it is case-insensitive by definition, while the local part
//! belongs to the receiving server, so `Nguyen.Van.A@` and `nguyen.van.a@` stay distinct.

use crate::{string_identifier, IdError, IdKind};

/// A validated email address with a lowercase domain, e.g. `Nguyen.Van.A@mof.gov.vn`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

string_identifier!(Email);

/// Longest address SMTP can carry (RFC 5321: 256-octet path minus the angle brackets).
const MAX_LEN: usize = 254;
const MAX_LOCAL: usize = 64;
const MAX_LABEL: usize = 63;

impl Email {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let raw = input.trim();
        let err = |rule: &str| IdError::new(IdKind::Email, raw, rule);
        if raw.chars().count() > MAX_LEN {
            return Err(err("must be at most 254 characters long"));
        }
        let mut parts = raw.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err(
                "must contain exactly one @, between the local part and the domain",
            ));
        };
        let local_len = local.chars().count();
        if local_len == 0 || local_len > MAX_LOCAL {
            return Err(err("the part before the @ must be 1 to 64 characters long"));
        }
        if local.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(
                "the part before the @ must not contain spaces or control characters",
            ));
        }
        if !domain.contains('.') {
            return Err(err(
                "the domain must contain at least one dot, e.g. mof.gov.vn",
            ));
        }
        for label in domain.split('.') {
            if label.is_empty() {
                return Err(err(
                    "the domain must not have a leading, trailing or doubled dot",
                ));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(err(
                    "domain labels may contain only letters A-Z, digits and hyphens \
                     (write an internationalised domain in its xn-- form)",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(err("domain labels must not start or end with a hyphen"));
            }
            if label.len() > MAX_LABEL {
                return Err(err("domain labels must be at most 63 characters long"));
            }
        }
        Ok(Email(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> String {
        let e = Email::parse(s).unwrap_err();
        assert_eq!(e.kind, IdKind::Email);
        e.rule
    }

    #[test]
    fn lowercases_domain_only() {
        let e = Email::parse("  Nguyen.Van.A@MOF.Gov.VN ").unwrap();
        assert_eq!(e.as_str(), "Nguyen.Van.A@mof.gov.vn");
        assert_eq!(e.to_string(), "Nguyen.Van.A@mof.gov.vn");
        assert_ne!(e, Email::parse("nguyen.van.a@mof.gov.vn").unwrap());
    }

    #[test]
    fn accepts_real_looking_addresses() {
        for ok in [
            "vanthu@quangninh.gov.vn",
            "hotro.dichvucong+test@chinhphu.vn",
            "lê.thị.b@xn--bcher-kva.example",
            "a@b.co",
            "info@my-agency.gov.vn",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_at_count() {
        let r = "must contain exactly one @, between the local part and the domain";
        assert_eq!(rule("vanthu.quangninh.gov.vn"), r);
        assert_eq!(rule("a@b@gov.vn"), r);
        assert_eq!(rule(""), r);
    }

    #[test]
    fn rejects_bad_local_part() {
        let len = "the part before the @ must be 1 to 64 characters long";
        assert_eq!(rule("@gov.vn"), len);
        assert_eq!(rule(&format!("{}@gov.vn", "a".repeat(65))), len);
        assert!(Email::parse(&format!("{}@gov.vn", "a".repeat(64))).is_ok());
        let space = "the part before the @ must not contain spaces or control characters";
        assert_eq!(rule("van thu@gov.vn"), space);
        assert_eq!(rule("van\u{7}thu@gov.vn"), space);
    }

    #[test]
    fn rejects_bad_domain() {
        assert_eq!(
            rule("vanthu@localhost"),
            "the domain must contain at least one dot, e.g. mof.gov.vn"
        );
        assert_eq!(
            rule("vanthu@"),
            "the domain must contain at least one dot, e.g. mof.gov.vn"
        );
        for bad in ["a@gov..vn", "a@.gov.vn", "a@gov.vn."] {
            assert_eq!(
                rule(bad),
                "the domain must not have a leading, trailing or doubled dot",
                "{bad}"
            );
        }
        for bad in ["a@bộ.gov.vn", "a@gov_vn.vn", "a@gov vn.vn"] {
            assert!(
                rule(bad).starts_with("domain labels may contain only"),
                "{bad}"
            );
        }
        for bad in ["a@-mof.gov.vn", "a@mof-.gov.vn"] {
            assert_eq!(
                rule(bad),
                "domain labels must not start or end with a hyphen",
                "{bad}"
            );
        }
        assert_eq!(
            rule(&format!("a@{}.vn", "x".repeat(64))),
            "domain labels must be at most 63 characters long"
        );
        assert!(Email::parse(&format!("a@{}.vn", "x".repeat(63))).is_ok());
    }

    #[test]
    fn rejects_overlong_address() {
        let label = "x".repeat(60);
        let long = format!("a@{label}.{label}.{label}.{label}.vn"); // 2 + 4*61 + 2 = 248
        assert!(Email::parse(&long).is_ok());
        let max = format!("abcdefg@{label}.{label}.{label}.{label}.vn"); // 254
        assert!(Email::parse(&max).is_ok());
        let too_long = format!("abcdefgh@{label}.{label}.{label}.{label}.vn"); // 255
        assert_eq!(rule(&too_long), "must be at most 254 characters long");
        // The echoed value is shortened so logs are not flooded.
        assert!(Email::parse(&too_long).unwrap_err().value.len() < too_long.len());
    }

    #[test]
    fn serde_goes_through_parse() {
        let e: Email = crate::from_str_de("A@B.VN").unwrap();
        assert_eq!(e.as_str(), "A@b.vn");
        assert!(crate::from_str_de::<Email>("not an email").is_err());
    }
}
