//! Trust material for fedhub. Today: the at-rest key that seals private signing keys before
//! they reach the database. The SAML metadata and XML security layer (the only code that
//! touches libxmlsec) lands here too.

mod at_rest;
pub mod jwk;
pub mod keys;

pub use at_rest::{AtRestKey, SealError};

pub mod xml;
