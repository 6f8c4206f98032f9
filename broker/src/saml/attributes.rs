//! The attributes the hub releases, with their SAML names. Standard directory OIDs where one
//! exists (eduPerson/inetOrgPerson usage), the hub's own URN otherwise. Documented in
//! docs/attributes.md; changing a name breaks every SP that maps it.

/// `(internal name, SAML Name (URI), FriendlyName)`.
pub const ATTRIBUTES: &[(&str, &str, &str)] = &[
    (
        "national_id",
        "urn:fedhub:attribute:national_id",
        "nationalId",
    ),
    ("name", "urn:oid:2.16.840.1.113730.3.1.241", "displayName"),
    ("phone", "urn:oid:2.5.4.20", "telephoneNumber"),
    ("email", "urn:oid:0.9.2342.19200300.100.1.3", "mail"),
    (
        "account_type",
        "urn:fedhub:attribute:account_type",
        "accountType",
    ),
    (
        "agency_code",
        "urn:fedhub:attribute:agency_code",
        "agencyCode",
    ),
    (
        "agency_name",
        "urn:fedhub:attribute:agency_name",
        "agencyName",
    ),
    ("roles", "urn:fedhub:attribute:roles", "roles"),
    (
        "admin_level",
        "urn:fedhub:attribute:admin_level",
        "adminLevel",
    ),
];

pub const NAME_FORMAT_URI: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri";

/// The SAML name and friendly name of an internal attribute.
pub fn saml_names(internal: &str) -> Option<(&'static str, &'static str)> {
    ATTRIBUTES
        .iter()
        .find(|(n, _, _)| *n == internal)
        .map(|(_, uri, friendly)| (*uri, *friendly))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_releasable_attribute_has_a_saml_name() {
        for name in crate::rp::saml::ATTRIBUTES {
            assert!(super::saml_names(name).is_some(), "{name}");
        }
    }
}
