//! Account conversion: bringing the accounts a relying party held before the hub (its
//! legacy users, with their password hashes) into the federation.
//!
//! `legacy` imports and lists a relying party's legacy accounts; `password` recognises and
//! checks the password hashes they come with. Legacy passwords never sign anyone in.
//! `convert` converts one account (legacy → federated, or a hand-over between federated
//! accounts) with its report and dry run; `bulk` converts a CSV of pairs; `webhook` tells a
//! relying party's registered URL about each conversion after it commits.

pub mod bulk;
pub mod convert;
pub mod legacy;
pub mod password;
pub mod webhook;
