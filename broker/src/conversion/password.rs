//! Password hashes as legacy systems hold them, for accounts imported from a relying party.
//!
//! The hub never signs anyone in with a legacy password: these hashes are kept only so that a
//! person can later prove, once, that they held the legacy account (the self-service claim).
//! So this module does two things: [`parse`] tells, at import, whether a stored hash is in a
//! format we can check later (and refuses it otherwise), and [`verify`] checks a password
//! against it in constant time.
//!
//! Accepted formats ([`ACCEPTED`]):
//!
//! | scheme | encodings |
//! |---|---|
//! | bcrypt | `$2a$`, `$2b$`, `$2y$` (modular crypt, 60 characters); Django's `bcrypt$$2b$…` |
//! | PBKDF2-HMAC-SHA256 | Django `pbkdf2_sha256$<iterations>$<salt>$<base64>`; passlib `$pbkdf2-sha256$<iterations>$<ab64 salt>$<ab64>` |
//! | Argon2id | PHC `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`; Django's `argon2$argon2id$…` |
//! | salted SHA-256 | LDAP `{SSHA256}<base64(digest ‖ salt)>`, digest = SHA-256(password ‖ salt); `sha256$<salt>$<hex>`, hex = SHA-256(salt ‖ password) (Django's legacy salted layout) |
//!
//! Everything else is refused with a message naming these formats: other algorithms (MD5,
//! SHA-1, crypt(3) SHA-2, scrypt, Argon2i/d), unsalted digests, and anything that could be a
//! clear-text password. Error messages never repeat the value.
//!
//! Weak parameters are accepted: a legacy system holds what it holds, and refusing its
//! hashes would only strand its users. [`HashInfo::weak`] says why a hash is weak (bcrypt cost
//! under 10, PBKDF2 under 10,000 iterations, Argon2id under 19 MiB, any salted SHA-256) so the
//! import can report it. Absurd parameters are refused, because checking such a hash would
//! take minutes or gigabytes: bcrypt cost over 16, PBKDF2 over 10,000,000 iterations, Argon2id
//! over 1 GiB, 32 passes or 64 lanes.

use std::num::NonZeroU32;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// The formats accepted, as told to people whose file holds something else.
pub const ACCEPTED: &str = "bcrypt ($2a$/$2b$/$2y$), PBKDF2-SHA256 (Django pbkdf2_sha256$… or \
passlib $pbkdf2-sha256$…), Argon2id ($argon2id$v=19$…) and salted SHA-256 ({SSHA256}… or \
sha256$<salt>$<hex>)";

/// The field errors name.
const FIELD: &str = "password_hash";

/// Highest bcrypt cost accepted (2^16 rounds: a few seconds a check).
pub const MAX_BCRYPT_COST: u32 = 16;
/// Most PBKDF2 iterations accepted.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// Most Argon2id memory accepted, in KiB (1 GiB).
pub const MAX_ARGON2_MEMORY_KIB: u32 = 1024 * 1024;
/// Most Argon2id passes accepted.
pub const MAX_ARGON2_PASSES: u32 = 32;
/// Most Argon2id lanes accepted.
pub const MAX_ARGON2_LANES: u32 = 64;

/// Below these a hash is accepted but reported as weak.
const WEAK_BCRYPT_COST: u32 = 10;
const WEAK_PBKDF2_ITERATIONS: u32 = 10_000;
const WEAK_ARGON2_MEMORY_KIB: u32 = 19 * 1024;

/// The algorithm of a legacy hash; its name is what `legacy_accounts.hash_scheme` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "&'static str")]
pub enum HashScheme {
    Bcrypt,
    Pbkdf2Sha256,
    Argon2id,
    SaltedSha256,
}

impl HashScheme {
    pub const ALL: [HashScheme; 4] = [
        HashScheme::Bcrypt,
        HashScheme::Pbkdf2Sha256,
        HashScheme::Argon2id,
        HashScheme::SaltedSha256,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HashScheme::Bcrypt => "bcrypt",
            HashScheme::Pbkdf2Sha256 => "pbkdf2-sha256",
            HashScheme::Argon2id => "argon2id",
            HashScheme::SaltedSha256 => "salted-sha256",
        }
    }

    /// The scheme a stored name stands for.
    pub fn from_name(name: &str) -> Option<HashScheme> {
        HashScheme::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl From<HashScheme> for &'static str {
    fn from(s: HashScheme) -> Self {
        s.as_str()
    }
}

impl std::fmt::Display for HashScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`parse`] learnt of a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashInfo {
    pub scheme: HashScheme,
    /// How it is written: `modular-crypt`, `django`, `passlib`, `phc`, `ldap` or `hex`.
    pub encoding: &'static str,
    /// Why it is weak, when it is (accepted all the same).
    pub weak: Option<String>,
}

/// Tells the scheme of a stored hash, or why it is refused. The value itself never appears
/// in the error.
pub fn parse(stored: &str) -> Result<HashInfo> {
    Ok(decode(stored)?.info())
}

/// Checks `password` against a stored hash, in constant time for the comparison (and in the
/// hash's own cost). `Ok(false)` is a wrong password; an error is a hash [`parse`] refuses.
/// bcrypt looks at the first 72 bytes of the password only, as the legacy systems did.
pub fn verify(stored: &str, password: &str) -> Result<bool> {
    let pw = password.as_bytes();
    match decode(stored)? {
        Decoded::Bcrypt { hash, .. } => {
            bcrypt::verify(pw, hash).map_err(|e| Error::invalid(FIELD, format!("bcrypt: {e}")))
        }
        Decoded::Pbkdf2 {
            iterations,
            salt,
            hash,
            ..
        } => Ok(ring::pbkdf2::verify(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            pw,
            &hash,
        )
        .is_ok()),
        Decoded::Argon2id { params, salt, hash } => {
            let mut out = vec![0u8; hash.len()];
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(pw, &salt, &mut out)
                .map_err(|e| Error::invalid(FIELD, format!("argon2id: {e}")))?;
            Ok(bool::from(out.ct_eq(&hash)))
        }
        Decoded::SaltedSha256 {
            salt,
            hash,
            salt_first,
            ..
        } => {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            if salt_first {
                ctx.update(&salt);
                ctx.update(pw);
            } else {
                ctx.update(pw);
                ctx.update(&salt);
            }
            Ok(bool::from(ctx.finish().as_ref().ct_eq(&hash[..])))
        }
    }
}

/// A stored hash taken apart.
enum Decoded<'a> {
    Bcrypt {
        hash: &'a str,
        cost: u32,
    },
    Pbkdf2 {
        encoding: &'static str,
        iterations: NonZeroU32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Argon2id {
        params: argon2::Params,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    SaltedSha256 {
        encoding: &'static str,
        salt: Vec<u8>,
        hash: [u8; 32],
        /// `sha256$salt$hex` hashes salt then password; `{SSHA256}` password then salt.
        salt_first: bool,
    },
}

impl Decoded<'_> {
    fn info(&self) -> HashInfo {
        match self {
            Decoded::Bcrypt { cost, .. } => HashInfo {
                scheme: HashScheme::Bcrypt,
                encoding: "modular-crypt",
                weak: (*cost < WEAK_BCRYPT_COST)
                    .then(|| format!("bcrypt cost {cost} is under {WEAK_BCRYPT_COST}")),
            },
            Decoded::Pbkdf2 {
                encoding,
                iterations,
                ..
            } => HashInfo {
                scheme: HashScheme::Pbkdf2Sha256,
                encoding,
                weak: (iterations.get() < WEAK_PBKDF2_ITERATIONS).then(|| {
                    format!("{iterations} PBKDF2 iterations is under {WEAK_PBKDF2_ITERATIONS}")
                }),
            },
            Decoded::Argon2id { params, .. } => HashInfo {
                scheme: HashScheme::Argon2id,
                encoding: "phc",
                weak: (params.m_cost() < WEAK_ARGON2_MEMORY_KIB).then(|| {
                    format!(
                        "Argon2id memory {} KiB is under {WEAK_ARGON2_MEMORY_KIB} KiB",
                        params.m_cost()
                    )
                }),
            },
            Decoded::SaltedSha256 { encoding, .. } => HashInfo {
                scheme: HashScheme::SaltedSha256,
                encoding,
                weak: Some("salted SHA-256 is a single fast digest".into()),
            },
        }
    }
}

fn refuse(what: impl std::fmt::Display) -> Error {
    Error::invalid(
        FIELD,
        format!("{what} (the value is not shown); accepted formats: {ACCEPTED}"),
    )
}

fn decode(stored: &str) -> Result<Decoded<'_>> {
    if stored.is_empty() {
        return Err(refuse("is empty"));
    }
    if stored.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse(
            "contains spaces or control characters, as no accepted hash does",
        ));
    }
    if let Some(rest) = stored.strip_prefix("bcrypt$") {
        // Django's wrapper around a plain bcrypt string (not bcrypt_sha256).
        if rest.starts_with("$2") {
            return decode_bcrypt(rest);
        }
    }
    if let Some(rest) = stored.strip_prefix("argon2") {
        // Django's wrapper: `argon2$argon2id$…` is `$argon2id$…` behind a prefix.
        if rest.starts_with("$argon2id$") {
            return decode_argon2id(rest);
        }
    }
    if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
    {
        return decode_bcrypt(stored);
    }
    if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
        return decode_django_pbkdf2(rest);
    }
    if let Some(rest) = stored.strip_prefix("$pbkdf2-sha256$") {
        return decode_passlib_pbkdf2(rest);
    }
    if stored.starts_with("$argon2id$") {
        return decode_argon2id(stored);
    }
    if let Some((scheme, rest)) = stored.split_at_checked(9) {
        if scheme.eq_ignore_ascii_case("{SSHA256}") {
            return decode_ssha256(rest);
        }
    }
    if let Some(rest) = stored.strip_prefix("sha256$") {
        return decode_salted_hex(rest);
    }
    Err(refuse(recognise(stored)))
}

/// Names a refused format people will recognise, without repeating the value.
fn recognise(stored: &str) -> String {
    const KNOWN: &[(&str, &str)] = &[
        ("$2x$", "the buggy pre-2011 bcrypt variant $2x$"),
        ("$2$", "the original bcrypt variant $2$"),
        ("$1$", "MD5-crypt ($1$)"),
        ("$apr1$", "Apache MD5 ($apr1$)"),
        ("$5$", "SHA-256-crypt ($5$)"),
        ("$6$", "SHA-512-crypt ($6$)"),
        ("$argon2i$", "Argon2i"),
        ("$argon2d$", "Argon2d"),
        ("$scrypt$", "scrypt"),
        ("$7$", "scrypt ($7$)"),
        ("$pbkdf2$", "PBKDF2-SHA1 (passlib)"),
        ("$pbkdf2-sha512$", "PBKDF2-SHA512"),
        ("pbkdf2_sha1$", "PBKDF2-SHA1 (Django)"),
        ("bcrypt_sha256$", "Django's bcrypt_sha256"),
        ("$bcrypt-sha256$", "passlib's bcrypt-sha256"),
        ("md5$", "salted MD5"),
        ("sha1$", "salted SHA-1"),
        ("{SSHA}", "salted SHA-1 ({SSHA})"),
        ("{SHA}", "unsalted SHA-1 ({SHA})"),
        ("{SHA256}", "unsalted SHA-256 ({SHA256})"),
        ("{SSHA512}", "salted SHA-512 ({SSHA512})"),
        ("{SHA512}", "unsalted SHA-512 ({SHA512})"),
        ("{MD5}", "MD5 ({MD5})"),
        ("{SMD5}", "salted MD5 ({SMD5})"),
        ("{CRYPT}", "crypt(3) ({CRYPT})"),
    ];
    let upper = stored.to_ascii_uppercase();
    for (prefix, name) in KNOWN {
        let hit = if prefix.starts_with('{') {
            upper.starts_with(prefix)
        } else {
            stored.starts_with(prefix)
        };
        if hit {
            return format!("{name} is not an accepted format");
        }
    }
    if stored.bytes().all(|b| b.is_ascii_hexdigit()) {
        let name = match stored.len() {
            32 => Some("an unsalted MD5 digest"),
            40 => Some("an unsalted SHA-1 digest"),
            64 => Some("an unsalted SHA-256 digest"),
            128 => Some("an unsalted SHA-512 digest"),
            _ => None,
        };
        if let Some(name) = name {
            return format!("looks like {name}, which is not accepted");
        }
    }
    "is not a password hash in an accepted format (a clear-text password never is)".into()
}

fn decode_bcrypt(hash: &str) -> Result<Decoded<'_>> {
    const ALPHABET: &[u8] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = hash.as_bytes();
    let shape = bytes.len() == 60
        && bytes[3] == b'$'
        && bytes[4].is_ascii_digit()
        && bytes[5].is_ascii_digit()
        && bytes[6] == b'$'
        && bytes[7..].iter().all(|b| ALPHABET.contains(b));
    if !shape {
        return Err(refuse(
            "bcrypt: expected $2b$<2-digit cost>$ then 53 characters of salt and hash",
        ));
    }
    let cost: u32 = hash[4..6]
        .parse()
        .map_err(|_| refuse("bcrypt: the cost is not a number"))?;
    if !(4..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(refuse(format!(
            "bcrypt: cost {cost} is outside 4 to {MAX_BCRYPT_COST}"
        )));
    }
    hash.parse::<bcrypt::HashParts>()
        .map_err(|e| refuse(format!("bcrypt: {e}")))?;
    Ok(Decoded::Bcrypt { hash, cost })
}

fn iterations(text: &str, scheme: &str) -> Result<NonZeroU32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse(format!(
            "{scheme}: the iteration count is not a number"
        )));
    }
    let n: u32 = text.parse().unwrap_or(u32::MAX);
    match NonZeroU32::new(n) {
        Some(n) if n.get() <= MAX_PBKDF2_ITERATIONS => Ok(n),
        _ => Err(refuse(format!(
            "{scheme}: the iteration count must be 1 to {MAX_PBKDF2_ITERATIONS}"
        ))),
    }
}

/// Base64 with `+/`, padding optional.
fn base64_std() -> GeneralPurpose {
    GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

fn derived_key(bytes: Vec<u8>, scheme: &str) -> Result<Vec<u8>> {
    if (16..=64).contains(&bytes.len()) {
        Ok(bytes)
    } else {
        Err(refuse(format!(
            "{scheme}: the derived key is {} bytes, expected 16 to 64",
            bytes.len()
        )))
    }
}

/// Django: `pbkdf2_sha256$<iterations>$<salt>$<base64 key>`; the salt is used as text.
fn decode_django_pbkdf2(rest: &str) -> Result<Decoded<'static>> {
    const SCHEME: &str = "PBKDF2-SHA256 (Django)";
    let parts: Vec<&str> = rest.split('$').collect();
    let [iter, salt, key] = parts[..] else {
        return Err(refuse(format!(
            "{SCHEME}: expected pbkdf2_sha256$<iterations>$<salt>$<base64>"
        )));
    };
    let iterations = iterations(iter, SCHEME)?;
    if salt.is_empty() {
        return Err(refuse(format!("{SCHEME}: the salt is empty")));
    }
    let key = base64_std()
        .decode(key)
        .map_err(|_| refuse(format!("{SCHEME}: the key is not base64")))?;
    Ok(Decoded::Pbkdf2 {
        encoding: "django",
        iterations,
        salt: salt.as_bytes().to_vec(),
        hash: derived_key(key, SCHEME)?,
    })
}

/// passlib: `$pbkdf2-sha256$<iterations>$<ab64 salt>$<ab64 key>`; ab64 is base64 with `.`
/// for `+` and no padding.
fn decode_passlib_pbkdf2(rest: &str) -> Result<Decoded<'static>> {
    const SCHEME: &str = "PBKDF2-SHA256 (passlib)";
    let parts: Vec<&str> = rest.split('$').collect();
    let [iter, salt, key] = parts[..] else {
        return Err(refuse(format!(
            "{SCHEME}: expected $pbkdf2-sha256$<iterations>$<salt>$<checksum>"
        )));
    };
    if iter.starts_with("i=") {
        return Err(refuse(format!(
            "{SCHEME}: the PHC form with i=…,l=… parameters is not accepted, only passlib's"
        )));
    }
    let iterations = iterations(iter, SCHEME)?;
    let ab64 = |s: &str, what: &str| {
        base64_std()
            .decode(s.replace('.', "+"))
            .map_err(|_| refuse(format!("{SCHEME}: the {what} is not adapted base64")))
    };
    let salt = ab64(salt, "salt")?;
    if salt.is_empty() {
        return Err(refuse(format!("{SCHEME}: the salt is empty")));
    }
    let key = ab64(key, "checksum")?;
    Ok(Decoded::Pbkdf2 {
        encoding: "passlib",
        iterations,
        salt,
        hash: derived_key(key, SCHEME)?,
    })
}

/// PHC: `$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<b64 salt>$<b64 hash>`.
fn decode_argon2id(stored: &str) -> Result<Decoded<'static>> {
    const SCHEME: &str = "Argon2id";
    let phc = argon2::PasswordHash::new(stored)
        .map_err(|e| refuse(format!("{SCHEME}: not a valid PHC string ({e})")))?;
    if phc.version != Some(19) {
        return Err(refuse(format!(
            "{SCHEME}: only version 19 (v=19) is accepted"
        )));
    }
    let params =
        argon2::Params::try_from(&phc).map_err(|e| refuse(format!("{SCHEME}: parameters: {e}")))?;
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB
        || params.t_cost() > MAX_ARGON2_PASSES
        || params.p_cost() > MAX_ARGON2_LANES
    {
        return Err(refuse(format!(
            "{SCHEME}: parameters over the limits (m ≤ {MAX_ARGON2_MEMORY_KIB} KiB, t ≤ {MAX_ARGON2_PASSES}, p ≤ {MAX_ARGON2_LANES})"
        )));
    }
    if params.keyid().len() + params.data().len() > 0 {
        return Err(refuse(format!(
            "{SCHEME}: keyid and data parameters are not accepted"
        )));
    }
    let (Some(salt), Some(hash)) = (phc.salt, phc.hash) else {
        return Err(refuse(format!("{SCHEME}: the salt or the hash is missing")));
    };
    let mut buf = [0u8; 64];
    let salt = salt
        .decode_b64(&mut buf)
        .map_err(|e| refuse(format!("{SCHEME}: the salt: {e}")))?
        .to_vec();
    if salt.len() < argon2::MIN_SALT_LEN {
        return Err(refuse(format!(
            "{SCHEME}: the salt is {} bytes, at least {} are needed",
            salt.len(),
            argon2::MIN_SALT_LEN
        )));
    }
    Ok(Decoded::Argon2id {
        params,
        salt,
        hash: hash.as_bytes().to_vec(),
    })
}

/// LDAP: `{SSHA256}` then base64 of the 32-byte digest followed by the salt.
fn decode_ssha256(b64: &str) -> Result<Decoded<'static>> {
    const SCHEME: &str = "salted SHA-256 ({SSHA256})";
    let bytes = base64_std()
        .decode(b64)
        .map_err(|_| refuse(format!("{SCHEME}: not base64")))?;
    if bytes.len() <= 32 {
        return Err(refuse(format!(
            "{SCHEME}: no salt after the 32-byte digest"
        )));
    }
    let (digest, salt) = bytes.split_at(32);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest);
    Ok(Decoded::SaltedSha256 {
        encoding: "ldap",
        salt: salt.to_vec(),
        hash,
        salt_first: false,
    })
}

/// `sha256$<salt>$<64 hex digits>`, the digest of the salt followed by the password.
fn decode_salted_hex(rest: &str) -> Result<Decoded<'static>> {
    const SCHEME: &str = "salted SHA-256 (sha256$…)";
    let parts: Vec<&str> = rest.split('$').collect();
    let [salt, digest] = parts[..] else {
        return Err(refuse(format!(
            "{SCHEME}: expected sha256$<salt>$<64 hex digits>"
        )));
    };
    if salt.is_empty() {
        return Err(refuse(format!("{SCHEME}: the salt is empty")));
    }
    let mut hash = [0u8; 32];
    hex::decode_to_slice(digest, &mut hash)
        .map_err(|_| refuse(format!("{SCHEME}: the digest is not 64 hex digits")))?;
    Ok(Decoded::SaltedSha256 {
        encoding: "hex",
        salt: salt.as_bytes().to_vec(),
        hash,
        salt_first: true,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const PASSWORD: &str = "Mật khẩu 2019!";

    /// Computed at authoring time with Python's hashlib:
    /// `hashlib.pbkdf2_hmac('sha256', PASSWORD.encode(), b'Xk4cTq9LmZr2', 36000, 32)`,
    /// in Django's layout.
    const DJANGO: &str =
        "pbkdf2_sha256$36000$Xk4cTq9LmZr2$9R90zgc8yqsRaN6P7FeQ2fRHt+tU0JSil5M/NcfY8hI=";
    /// hashlib, salt bytes 0x01..=0x10, 29000 iterations, passlib's adapted base64.
    const PASSLIB: &str =
        "$pbkdf2-sha256$29000$AQIDBAUGBwgJCgsMDQ4PEA$zyRfOE7fYojnnMJ40IW7dOZy1dRGfQ9H9.Te4vtWpEw";
    /// hashlib: sha256(PASSWORD.encode() + salt) + salt, salt 9a01fe1022334455.
    const SSHA256: &str = "{SSHA256}1E/vpicgyrEhh/ow8qe2eU5wJAFvDc3aYOLOwwp52k6aAf4QIjNEVQ==";
    /// hashlib: sha256(b'a1b2c3d4e5' + PASSWORD.encode()).hexdigest().
    const SALTED_HEX: &str =
        "sha256$a1b2c3d4e5$e706d6174f7736331810a10928be5c773420b653cb585ed3703456c4f917bc2b";

    /// Made at authoring time by other implementations (Python's bcrypt 3.2, passlib 1.7,
    /// argon2-cffi 21.1) for PASSWORD, so the crates are checked against them.
    const OTHERS: &[(&str, HashScheme)] = &[
        (
            "$2b$05$L.ASBKidfADHya8iMPHdhOrps0GEq6DLNrivH32ogL6dkpJv4Bo46",
            HashScheme::Bcrypt,
        ),
        (
            "$2a$05$hnk4MjIctVZDH5kymMRqtuyIpTvoeftXarIBHz7TI4BPD1ashu632",
            HashScheme::Bcrypt,
        ),
        (
            "$2y$05$dQnvXfSB7MdFXPDh0QxvVufpJ4MQOLSuNIdjNPmMYUHwYMIihPaVK",
            HashScheme::Bcrypt,
        ),
        (
            "$argon2id$v=19$m=1024,t=2,p=2$CHj4WluIlne5D5BxiNmbBg$+TZrleM+V7Olg+TC5T13aITIZ6l5GVQeqh7nT9MkFDc",
            HashScheme::Argon2id,
        ),
        (
            "$pbkdf2-sha256$29000$BWAMwVhLKYUwRkgpRcjZ2w$/cR.AwoSH4C/qV6z74NiLikc9umkIM4Vp.cIcy8qOp0",
            HashScheme::Pbkdf2Sha256,
        ),
        (
            "{SSHA256}MoSjjrZGIceAAD0W1MqjNbEmiESdRYLhQafFzbo1NYV7TyllrPUegw==",
            HashScheme::SaltedSha256,
        ),
        (
            "pbkdf2_sha256$36000$cnrFfqhOvdYC$RU6fg77HzRH1j6RPgRxcvFl4GJE6/IjzCf6r621KCdk=",
            HashScheme::Pbkdf2Sha256,
        ),
    ];

    #[test]
    fn hashes_made_by_other_implementations_verify() {
        for (stored, want) in OTHERS {
            assert_eq!(scheme(stored), *want, "{stored}");
            assert!(verify(stored, PASSWORD).unwrap(), "{stored}");
            assert!(!verify(stored, "Mật khẩu 2019").unwrap(), "{stored}");
        }
        // A published crypt_blowfish test vector.
        let openwall = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        assert!(verify(openwall, "U*U").unwrap());
        assert!(!verify(openwall, "U*V").unwrap());
    }

    fn argon2id(password: &str, m: u32, t: u32, p: u32) -> String {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"legacy-salt-0001").unwrap();
        let params = argon2::Params::new(m, t, p, Some(32)).unwrap();
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    fn scheme(stored: &str) -> HashScheme {
        parse(stored).unwrap().scheme
    }

    #[test]
    fn fixed_vectors_verify() {
        for (stored, want, encoding) in [
            (DJANGO, HashScheme::Pbkdf2Sha256, "django"),
            (PASSLIB, HashScheme::Pbkdf2Sha256, "passlib"),
            (SSHA256, HashScheme::SaltedSha256, "ldap"),
            (SALTED_HEX, HashScheme::SaltedSha256, "hex"),
        ] {
            let info = parse(stored).unwrap();
            assert_eq!(info.scheme, want, "{stored}");
            assert_eq!(info.encoding, encoding);
            assert!(verify(stored, PASSWORD).unwrap(), "{stored}");
            assert!(!verify(stored, "Mật khẩu 2019?").unwrap(), "{stored}");
            assert!(!verify(stored, "").unwrap(), "{stored}");
        }
        assert!(parse(DJANGO).unwrap().weak.is_none());
        assert!(parse(SSHA256).unwrap().weak.is_some());
        // LDAP scheme names are case-insensitive.
        let lower = SSHA256.replacen("{SSHA256}", "{ssha256}", 1);
        assert!(verify(&lower, PASSWORD).unwrap());
    }

    #[test]
    fn bcrypt_hashes_from_the_crate_verify_in_every_prefix() {
        let hashed = bcrypt::hash(PASSWORD, 4).unwrap();
        assert!(hashed.starts_with("$2b$04$"), "{hashed}");
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let stored = format!("{prefix}{}", &hashed[4..]);
            let info = parse(&stored).unwrap();
            assert_eq!(info.scheme, HashScheme::Bcrypt);
            assert!(info.weak.unwrap().contains("cost 4"));
            assert!(verify(&stored, PASSWORD).unwrap());
            assert!(!verify(&stored, "mật khẩu 2019!").unwrap());
        }
        // Django's wrapper around it.
        let django = format!("bcrypt${hashed}");
        assert_eq!(scheme(&django), HashScheme::Bcrypt);
        assert!(verify(&django, PASSWORD).unwrap());
        let strong = bcrypt::hash("x", 10).unwrap();
        assert!(parse(&strong).unwrap().weak.is_none());
    }

    #[test]
    fn argon2id_hashes_from_the_crate_verify() {
        let stored = argon2id(PASSWORD, 256, 2, 1);
        assert!(
            stored.starts_with("$argon2id$v=19$m=256,t=2,p=1$"),
            "{stored}"
        );
        let info = parse(&stored).unwrap();
        assert_eq!(info.scheme, HashScheme::Argon2id);
        assert!(info.weak.is_some(), "256 KiB is weak");
        assert!(verify(&stored, PASSWORD).unwrap());
        assert!(!verify(&stored, "wrong").unwrap());
        let django = format!("argon2{stored}");
        assert!(verify(&django, PASSWORD).unwrap());
        // Parameters are read from the string: another memory size is another hash.
        let other = stored.replacen("m=256", "m=512", 1);
        assert!(!verify(&other, PASSWORD).unwrap());
        assert!(parse(&argon2id("x", 19 * 1024, 2, 1))
            .unwrap()
            .weak
            .is_none());
    }

    #[test]
    fn weak_parameters_are_accepted_and_named() {
        let low = "pbkdf2_sha256$1000$salt$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let info = parse(low).unwrap();
        assert_eq!(info.scheme, HashScheme::Pbkdf2Sha256);
        assert!(info.weak.unwrap().contains("1000 PBKDF2 iterations"));
    }

    #[test]
    fn unknown_and_absurd_formats_are_refused_without_repeating_the_value() {
        let refused = [
            ("", "is empty"),
            ("hunter2", "not a password hash"),
            ("Mậtkhẩu", "not a password hash"),
            ("Mật khẩu 2019!", "spaces"),
            ("$1$abcdefgh$0123456789abcdefghijkl", "MD5-crypt"),
            ("$6$rounds=5000$salt$hash", "SHA-512-crypt"),
            (
                "$argon2i$v=19$m=256,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "Argon2i",
            ),
            ("{SSHA}c2FsdHNhbHRzYWx0c2FsdHNhbHQ=", "salted SHA-1"),
            ("5f4dcc3b5aa765d61d8327deb882cf99", "unsalted MD5"),
            (
                "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
                "unsalted SHA-256",
            ),
            (
                "$2x$10$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
                "$2x$",
            ),
            ("$2b$10$short", "53 characters"),
            (
                "$2b$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
                "cost 31",
            ),
            ("pbkdf2_sha256$0$salt$AAAA", "iteration count"),
            ("pbkdf2_sha256$99999999$salt$AAAA", "iteration count"),
            ("pbkdf2_sha256$abc$salt$AAAA", "not a number"),
            ("pbkdf2_sha256$1000$$AAAA", "salt is empty"),
            ("pbkdf2_sha256$1000$salt$!!!", "not base64"),
            ("pbkdf2_sha256$1000$salt$AAAA", "derived key is 3 bytes"),
            ("$pbkdf2-sha256$i=1000,l=32$c2FsdA$AAAA", "PHC form"),
            ("{SSHA256}AAAA", "no salt"),
            (
                "{SHA256}XohImNooBHFR0OVvjcYpJ3NgPQ1qq73WKhHvch0VQtg=",
                "unsalted SHA-256",
            ),
            ("sha256$salt$abcd", "64 hex digits"),
            ("sha256$$abcd", "salt is empty"),
            (
                "$argon2id$v=16$m=256,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "v=19",
            ),
            (
                "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "over the limits",
            ),
            ("$argon2id$v=19$m=256,t=2,p=1", "missing"),
        ];
        for (stored, reason) in refused {
            let e = parse(stored).unwrap_err();
            let text = e.to_string();
            assert!(text.starts_with("password_hash: "), "{text}");
            assert!(text.contains(reason), "{stored:?}: {text}");
            assert!(text.contains("accepted formats: bcrypt"), "{text}");
            if stored.len() > 4 {
                assert!(!text.contains(stored), "the value leaks: {text}");
            }
            assert!(verify(stored, "hunter2").is_err());
        }
    }

    #[test]
    fn scheme_names_round_trip() {
        for s in HashScheme::ALL {
            assert_eq!(HashScheme::from_name(s.as_str()), Some(s));
        }
        assert_eq!(HashScheme::from_name("md5"), None);
    }
}
