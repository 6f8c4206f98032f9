//! Trust material for fedhub: the at-rest key that seals private signing keys before they
//! reach the database, the hub's keys and their JWKs, the SAML metadata and XML security layer
//! (the only code that touches libxmlsec), and JOSE (JWS signing and verification for OIDC).

mod at_rest;
pub mod jose;
pub mod jwk;
pub mod keys;

pub use at_rest::{AtRestKey, SealError};

pub mod xml;
