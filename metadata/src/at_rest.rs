//! Sealing secrets at rest with AES-256-GCM (ring). A sealed blob is
//! `version(1) || nonce(12) || ciphertext+tag`; the caller's `context` (e.g. the key id) is
//! bound as associated data, so a blob copied onto another row does not open.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("must be 32 random bytes in base64 (got {0} bytes)")]
    BadLength(usize),
    #[error("is not valid base64")]
    BadEncoding,
    #[error("sealed data is damaged, or was sealed with another key or for another record")]
    Open,
    #[error("the system random generator failed")]
    Random,
}

/// The key that encrypts private keys at rest. Never printed.
pub struct AtRestKey {
    key: LessSafeKey,
    raw: [u8; 32],
    rng: SystemRandom,
}

impl std::fmt::Debug for AtRestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AtRestKey([redacted])")
    }
}

impl AtRestKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let raw: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SealError::BadLength(bytes.len()))?;
        let unbound =
            UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::BadLength(bytes.len()))?;
        Ok(AtRestKey {
            key: LessSafeKey::new(unbound),
            raw,
            rng: SystemRandom::new(),
        })
    }

    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadEncoding)?;
        Self::from_bytes(&bytes)
    }

    /// A fresh key, base64, for `fedhub keys generate-at-rest-key`.
    pub fn generate_base64() -> Result<String, SealError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SealError::Random)?;
        Ok(STANDARD.encode(bytes))
    }

    /// A secret derived from this key for one purpose (HKDF-SHA256), e.g. pairwise subjects.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"fedhub").extract(&self.raw);
        let mut out = [0u8; 32];
        let info = [label];
        if let Ok(okm) = prk.expand(&info, ring::hkdf::HKDF_SHA256) {
            // Expanding 32 bytes from SHA-256 cannot fail; keep zeros would be wrong, so fill.
            let _ = okm.fill(&mut out);
        }
        out
    }

    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut buf,
            )
            .map_err(|_| SealError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let (version, rest) = sealed.split_first().ok_or(SealError::Open)?;
        if *version != VERSION || rest.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AtRestKey {
        AtRestKey::from_base64(&AtRestKey::generate_base64().unwrap()).unwrap()
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let k = key();
        let a = k.seal(b"kid-1", b"private key bytes").unwrap();
        let b = k.seal(b"kid-1", b"private key bytes").unwrap();
        assert_ne!(a, b, "each seal uses a new nonce");
        assert!(
            !a.windows(7).any(|w| w == b"private"),
            "plaintext must not appear"
        );
        assert_eq!(k.open(b"kid-1", &a).unwrap(), b"private key bytes");
    }

    #[test]
    fn refuses_other_context_other_key_and_tampering() {
        let k = key();
        let mut sealed = k.seal(b"kid-1", b"secret").unwrap();
        assert_eq!(k.open(b"kid-2", &sealed), Err(SealError::Open));
        assert_eq!(key().open(b"kid-1", &sealed), Err(SealError::Open));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(k.open(b"kid-1", &sealed), Err(SealError::Open));
        assert_eq!(k.open(b"kid-1", &[]), Err(SealError::Open));
    }

    #[test]
    fn derived_secrets_depend_on_key_and_label() {
        let k = key();
        assert_eq!(k.derive(b"pairwise"), k.derive(b"pairwise"));
        assert_ne!(k.derive(b"pairwise"), k.derive(b"other"));
        assert_ne!(k.derive(b"pairwise"), key().derive(b"pairwise"));
        assert_ne!(k.derive(b"pairwise"), [0u8; 32]);
    }

    #[test]
    fn key_format_is_checked() {
        assert_eq!(
            AtRestKey::from_base64("c2hvcnQ=").unwrap_err(),
            SealError::BadLength(5)
        );
        assert_eq!(
            AtRestKey::from_base64("not base64!").unwrap_err(),
            SealError::BadEncoding
        );
        assert_eq!(format!("{:?}", key()), "AtRestKey([redacted])");
    }
}
