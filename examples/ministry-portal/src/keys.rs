//! The portal's own signing key and self-signed certificate: loaded from the data folder, or
//! generated there on first start (RSA 2048, certificate valid for 10 years).

use std::path::Path;

use anyhow::{Context, Result};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509NameBuilder, X509};

pub const KEY_FILE: &str = "sp-key.pem";
pub const CERT_FILE: &str = "sp-cert.pem";

/// The key that signs AuthnRequests, logout messages and the metadata.
#[derive(Clone)]
pub struct SpKey {
    pub key: PKey<Private>,
    /// PKCS#8 DER, for xmlsec.
    pub key_der: Vec<u8>,
    pub cert_der: Vec<u8>,
}

impl SpKey {
    /// Loads `sp-key.pem` and `sp-cert.pem` from `dir`, or creates them (the folder too).
    pub fn load_or_generate(dir: &Path, common_name: &str) -> Result<SpKey> {
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        if key_path.exists() && cert_path.exists() {
            let key_pem = std::fs::read(&key_path)
                .with_context(|| format!("cannot read {}", key_path.display()))?;
            let cert_pem = std::fs::read(&cert_path)
                .with_context(|| format!("cannot read {}", cert_path.display()))?;
            let key = PKey::private_key_from_pem(&key_pem)
                .with_context(|| format!("{} is not a PEM private key", key_path.display()))?;
            let cert = X509::from_pem(&cert_pem)
                .with_context(|| format!("{} is not a PEM certificate", cert_path.display()))?;
            let matches = cert
                .public_key()
                .map(|p| p.public_eq(&key))
                .unwrap_or(false);
            if !matches {
                anyhow::bail!(
                    "{} does not hold the public key of {}",
                    cert_path.display(),
                    key_path.display()
                );
            }
            return Self::from_parts(key, &cert);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let (key, cert) = generate(common_name)?;
        write_private(&key_path, &key.private_key_to_pem_pkcs8()?)?;
        std::fs::write(&cert_path, cert.to_pem()?)
            .with_context(|| format!("cannot write {}", cert_path.display()))?;
        Self::from_parts(key, &cert)
    }

    /// A fresh key that is never written anywhere (tests, `--print-metadata` without a folder).
    pub fn ephemeral(common_name: &str) -> Result<SpKey> {
        let (key, cert) = generate(common_name)?;
        Self::from_parts(key, &cert)
    }

    fn from_parts(key: PKey<Private>, cert: &X509) -> Result<SpKey> {
        Ok(SpKey {
            key_der: key.private_key_to_pkcs8()?,
            cert_der: cert.to_der()?,
            key,
        })
    }
}

fn generate(common_name: &str) -> Result<(PKey<Private>, X509)> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut name = X509NameBuilder::new()?;
    // X.509 CN is limited to 64 characters.
    let cn: String = common_name.chars().take(64).collect();
    name.append_entry_by_text("CN", &cn)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(128, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(3650)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((key, b.build()))
}

#[cfg(unix)]
fn write_private(path: &Path, pem: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(pem)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, pem: &[u8]) -> Result<()> {
    std::fs::write(path, pem).with_context(|| format!("cannot write {}", path.display()))
}
