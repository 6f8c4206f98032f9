//! Vietnamese public-sector identifiers, validated once at the edge.
//!
//! Every identifier is a newtype over its canonical string: a value of the type is proof the
//! input passed every rule, so the rest of the hub never re-validates or re-normalises.
//! Deserialisation goes through `parse`, so a bad value in a config file, a database row or a
//! request body fails loudly instead of slipping in.
//!
//! ```
//! use fedhub_identifiers::{AgencyCode, IdKind, Phone, TaxCode};
//!
//! let tax_dept = AgencyCode::parse("000.00.18.g12")?;
//! let finance = AgencyCode::parse("000.00.00.G12")?;
//! assert!(tax_dept.is_within(&finance));
//! assert_eq!(tax_dept.parent(), Some(finance));
//! assert_eq!(Phone::parse("091 234 5678")?.e164(), "+84912345678");
//!
//! let err = TaxCode::parse("0301519978").unwrap_err();
//! assert_eq!(err.kind, IdKind::TaxCode);
//! assert_eq!(err.to_string(), r#"tax code "0301519978": check digit (10th digit) must be 7 for 030151997, got 8"#);
//! # Ok::<(), fedhub_identifiers::IdError>(())
//! ```

use std::fmt;

mod agency;
mod email;
mod person;
mod phone;
mod tax;

pub use agency::AgencyCode;
pub use email::Email;
pub use person::{Cccd, Cmnd, Gender, PersonalId};
pub use phone::Phone;
pub use tax::TaxCode;

/// One error type: names the identifier kind, the offending value, and the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value:?}: {rule}")]
pub struct IdError {
    pub kind: IdKind,
    pub value: String,
    pub rule: String,
}

/// Longest input echoed back in an error: errors end up in logs and on screens, and a
/// megabyte of pasted junk should not.
const MAX_ECHO: usize = 80;

impl IdError {
    pub(crate) fn new(kind: IdKind, value: &str, rule: impl Into<String>) -> Self {
        let value = match value.char_indices().nth(MAX_ECHO) {
            Some((cut, _)) => format!("{}…", &value[..cut]),
            None => value.to_owned(),
        };
        IdError {
            kind,
            value,
            rule: rule.into(),
        }
    }
}

/// Which identifier failed, for messages and for mapping errors onto form fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    AgencyCode,
    Cccd,
    Cmnd,
    PersonalId,
    TaxCode,
    Phone,
    Email,
}

impl IdKind {
    /// The snake_case field name a form or JSON body uses for this identifier.
    pub fn field(&self) -> &'static str {
        match self {
            IdKind::AgencyCode => "agency_code",
            IdKind::Cccd => "cccd",
            IdKind::Cmnd => "cmnd",
            IdKind::PersonalId => "national_id",
            IdKind::TaxCode => "tax_code",
            IdKind::Phone => "phone",
            IdKind::Email => "email",
        }
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::AgencyCode => "agency code",
            IdKind::Cccd => "CCCD",
            IdKind::Cmnd => "CMND",
            IdKind::PersonalId => "personal ID",
            IdKind::TaxCode => "tax code",
            IdKind::Phone => "phone number",
            IdKind::Email => "email",
        })
    }
}

/// The string-like impls every identifier shares; each type supplies `parse` and `as_str`.
macro_rules! string_identifier {
    ($ty:ident) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::parse(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <String as ::serde::Deserialize>::deserialize(d)?;
                $ty::parse(&raw).map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
    };
}
pub(crate) use string_identifier;

/// Shared test helper: deserialise from a plain string without pulling in a format crate.
#[cfg(test)]
pub(crate) fn from_str_de<T: serde::de::DeserializeOwned>(
    s: &str,
) -> Result<T, serde::de::value::Error> {
    use serde::de::IntoDeserializer;
    T::deserialize(s.to_owned().into_deserializer())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_display_and_field() {
        let all = [
            (IdKind::AgencyCode, "agency code", "agency_code"),
            (IdKind::Cccd, "CCCD", "cccd"),
            (IdKind::Cmnd, "CMND", "cmnd"),
            (IdKind::PersonalId, "personal ID", "national_id"),
            (IdKind::TaxCode, "tax code", "tax_code"),
            (IdKind::Phone, "phone number", "phone"),
            (IdKind::Email, "email", "email"),
        ];
        for (kind, shown, field) in all {
            assert_eq!(kind.to_string(), shown);
            assert_eq!(kind.field(), field);
        }
    }

    #[test]
    fn error_message_names_kind_value_and_rule() {
        let e = IdError::new(IdKind::TaxCode, "123", "must be 10 digits");
        assert_eq!(e.to_string(), r#"tax code "123": must be 10 digits"#);
    }

    #[test]
    fn error_truncates_huge_input() {
        let long = "đ".repeat(1000);
        let e = IdError::new(IdKind::Email, &long, "too long");
        assert_eq!(e.value.chars().count(), MAX_ECHO + 1);
        assert!(e.value.ends_with('…'));
    }
}
