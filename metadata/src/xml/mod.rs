//! The XML security layer: the only code in fedhub that touches libxmlsec (through samael).
//! Every SAML message and metadata document passes here before anything trusts it.
//!
//! Rules (each has a test that fails without it):
//! - size is capped before and after DEFLATE; any DOCTYPE or ENTITY declaration is refused;
//! - signatures are checked only with keys from registered metadata, never with a key the
//!   message carries, and only with the allowed algorithms (RSA/ECDSA with SHA-256 or stronger);
//! - a signed POST message is reduced to its signed content before it is parsed, so an
//!   unsigned wrapper cannot smuggle in its own ACS URL;
//! - before libxmlsec sees a signed message, every `URI` must be same-document (`""` or
//!   `"#id"`) and every `Algorithm` a c14n, enveloped-signature, RSA/ECDSA or digest method:
//!   libxmlsec fetches URLs, reads files and runs XPath/XSLT before it checks a signature;
//! - HTTP-Redirect signatures are checked over the raw query bytes as received;
//! - panics inside samael/libxml become errors.

pub mod aggregate;
pub mod aggregate_writer;
pub mod authn;
pub mod decrypt;
pub mod dsig;
pub mod encrypt;
pub mod guard;
pub mod idp;
pub mod logout;
pub mod redirect;
pub mod response;
pub mod sign;
pub mod sp;

pub use authn::{decode_authn_request, Binding, VerifiedAuthnRequest};
pub use guard::Limits;
pub use idp::IdpMetadata;
pub use sp::{Acs, SpMetadata};

/// A registered SAML peer whose signed messages the hub verifies: only its metadata's
/// entity ID and signing keys count, never a key a message carries.
pub trait Peer {
    fn entity_id(&self) -> &str;
    fn signing_certs(&self) -> &[samael::crypto::CertificateDer];
}

impl Peer for SpMetadata {
    fn entity_id(&self) -> &str {
        &self.entity_id
    }
    fn signing_certs(&self) -> &[samael::crypto::CertificateDer] {
        &self.signing_certs
    }
}

/// Why an XML message or document was refused. The text is safe to show to the SP's
/// operators (it never echoes the message back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("message larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("DOCTYPE and ENTITY declarations are not allowed")]
    Doctype,
    #[error("cannot decode the message: {0}")]
    Decode(String),
    #[error("not well-formed SAML: {0}")]
    Parse(String),
    #[error("the message must be signed")]
    MissingSignature,
    #[error("signature algorithm not allowed: {0}")]
    Algorithm(String),
    #[error("signature does not verify with the keys in the registered metadata")]
    BadSignature,
    #[error("no signing key in the registered metadata")]
    NoSigningKey,
    #[error("duplicate query parameter {0}")]
    DuplicateParameter(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the XML library failed on this input")]
    Panicked,
}

/// Signature algorithms we accept (XML-DSig and Redirect `SigAlg`): SHA-256 or stronger.
pub const ALLOWED: &[samael::crypto::AllowedSignatureAlgorithm] = {
    use samael::crypto::AllowedSignatureAlgorithm as A;
    &[
        A::RsaSha256,
        A::RsaSha384,
        A::RsaSha512,
        A::EcdsaSha256,
        A::EcdsaSha384,
        A::EcdsaSha512,
    ]
};
