//! fedhub: the SAML 2.0 and OpenID Connect federation hub.
//!
//! Follow the data: `cli` parses a command, `config` loads settings, `store` opens the
//! database, `directory` keeps agencies and accounts, `audit` records what happened, and
//! `web` serves HTTP.

pub mod admin;
pub mod audit;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conversion;
pub mod demo;
pub mod directory;
pub mod error;
pub mod fetch;
pub mod jobs;
pub mod keys;
pub mod login;
pub mod oidc;
pub mod rp;
pub mod saml;
pub mod simpki_simulator;
pub mod store;
pub mod tokens;
pub mod upstream;
pub mod web;

pub use error::{Error, Result};
