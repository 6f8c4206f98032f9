//! The directory: agencies (a tree keyed by agency identifier code) and accounts (citizens,
//! organisations, state agencies), with every identifier validated before it is stored.

pub mod accounts;
pub mod admin_grants;
pub mod agencies;
mod fold;

pub use fold::fold_name;
