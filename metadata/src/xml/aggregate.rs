//! A federation's signed metadata aggregate (`md:EntitiesDescriptor` holding many
//! `md:EntityDescriptor`s), as Shibboleth, SATOSA and Keycloak operators import it: the whole
//! document is trusted only when its root carries a valid enveloped signature by a key the
//! operator named, and only while its `validUntil` lies ahead. Each identity provider in it is
//! then cut out as a standalone EntityDescriptor (namespaces and the aggregate's `validUntil`
//! carried onto it) and checked like metadata registered alone; one that fails is reported,
//! not fatal.
//!
//! Refused as a whole: a DOCTYPE, a document over [`MAX_AGGREGATE_BYTES`], no signature, a
//! signature anywhere but directly on the root (a wrapped signature over an inner element
//! proves nothing about the rest), more than one signature, a reference to anything but the
//! root, a key or algorithm the operator did not allow, a missing or past `validUntil`.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
/// The certificate type trusted keys are given as.
pub use samael::crypto::CertificateDer;

use super::guard::{check_signature_profile, check_xml, guarded, Limits};
use super::XmlError;

/// Largest aggregate accepted (national federations publish tens of megabytes).
pub const MAX_AGGREGATE_BYTES: usize = 256 * 1024 * 1024;

const MD: &[u8] = b"urn:oasis:names:tc:SAML:2.0:metadata";
const DS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";
const MDUI: &[u8] = b"urn:oasis:names:tc:SAML:metadata:ui";
const SHIBMD: &[u8] = b"urn:mace:shibboleth:metadata:1.0";

/// An identity provider of the aggregate, checked as [`super::idp::parse`] checks metadata
/// registered alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateIdp {
    pub entity_id: String,
    /// mdui:DisplayName (Vietnamese, else English, else the first), else the organisation's
    /// display name, else the entity ID.
    pub display_name: String,
    /// The shibmd:Scope values (the organisation's domains), for search.
    pub scopes: Vec<String>,
    /// A standalone EntityDescriptor: what registering it alone would store.
    pub metadata_xml: String,
    /// The earlier of the entity's and the aggregate's `validUntil` (Unix seconds).
    pub valid_until: i64,
}

/// An entity of the aggregate that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEntity {
    pub entity_id: String,
    pub reason: String,
}

/// A verified aggregate, reduced to its identity providers.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// The root's `Name` (e.g. `urn:mace:incommon`), when it has one.
    pub name: Option<String>,
    /// The root's `validUntil` (Unix seconds).
    pub valid_until: i64,
    pub idps: Vec<AggregateIdp>,
    /// IdP entities that failed their own checks.
    pub skipped: Vec<SkippedEntity>,
    /// Entities without an IDPSSODescriptor (service providers, attribute authorities).
    pub other_entities: usize,
}

/// Verifies `xml` against `federation_certs` (never a key the document carries) at `now`,
/// then reads its identity providers.
pub fn verify(
    xml: &[u8],
    federation_certs: &[CertificateDer],
    now: i64,
) -> Result<Aggregate, XmlError> {
    verify_timed(xml, federation_certs, now).map(|(agg, _)| agg)
}

/// Where [`verify`] spent its time (for the load tool).
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// Size, DOCTYPE, the root's shape, validUntil, the signature's profile.
    pub checks: std::time::Duration,
    /// libxmlsec: parse, canonicalize, digest, verify, reduce to what is signed.
    pub signature: std::time::Duration,
    /// Cutting out the entities and each IdP's own checks.
    pub entities: std::time::Duration,
}

/// [`verify`], timing its phases.
pub fn verify_timed(
    xml: &[u8],
    federation_certs: &[CertificateDer],
    now: i64,
) -> Result<(Aggregate, Phases), XmlError> {
    use samael::crypto::{CryptoProvider, XmlSec};
    use std::time::Instant;
    let mut phases = Phases::default();
    let started = Instant::now();
    let text = check_xml(
        xml,
        Limits {
            max_xml_bytes: MAX_AGGREGATE_BYTES,
        },
    )?;
    if federation_certs.is_empty() {
        return Err(XmlError::NoSigningKey);
    }
    let shape = root_shape(text)?;
    let valid_until = shape.valid_until.ok_or_else(|| {
        XmlError::Invalid(
            "the aggregate has no validUntil (an unbounded aggregate could be replayed forever)"
                .into(),
        )
    })?;
    if valid_until <= now {
        return Err(XmlError::Invalid(
            "the aggregate has expired (validUntil is in the past)".into(),
        ));
    }
    // No external references or exotic transforms reach libxmlsec (see guard); only the one
    // signature's own text is held to that profile, so entities may still advertise algorithms
    // in their extensions.
    check_signature_profile(&text[shape.signature.clone()])?;
    check_algorithms(&shape.algorithms)?;
    phases.checks = started.elapsed();
    // One signature, on the root, over the root (checked above): verifying it covers every
    // byte of the document but the signature itself, so the document is read as it is. (The
    // reduction the other messages go through re-matches every node: quadratic here.)
    let started = Instant::now();
    let verified = federation_certs.iter().any(|cert| {
        guarded(|| {
            XmlSec::verify_signed_xml(text, cert, Some("ID")).map_err(|_| XmlError::BadSignature)
        })
        .is_ok()
    });
    if !verified {
        return Err(XmlError::BadSignature);
    }
    phases.signature = started.elapsed();
    let started = Instant::now();
    let agg = read_entities(text, shape.name, valid_until, now)?;
    phases.entities = started.elapsed();
    Ok((agg, phases))
}

/// Transforms a signature over the whole root may use: enveloped, and canonicalization
/// (which keeps every element and attribute).
const ROOT_TRANSFORMS: &[&str] = &[
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    "http://www.w3.org/2006/12/xml-c14n11",
    "http://www.w3.org/2006/12/xml-c14n11#WithComments",
];

/// Digests as strong as the allowed signature algorithms.
const DIGESTS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

/// The signature's methods: an allowed signature algorithm, a SHA-2 digest, and transforms
/// that cannot leave part of the root out.
fn check_algorithms(algorithms: &[(String, String)]) -> Result<(), XmlError> {
    let allowed_signature = |uri: &str| super::ALLOWED.iter().any(|a| a.signature_uri() == uri);
    let mut signature_methods = 0;
    for (element, uri) in algorithms {
        let ok = match element.as_str() {
            "SignatureMethod" => {
                signature_methods += 1;
                allowed_signature(uri)
            }
            "DigestMethod" => DIGESTS.contains(&uri.as_str()),
            "Transform" | "CanonicalizationMethod" => ROOT_TRANSFORMS.contains(&uri.as_str()),
            _ => false,
        };
        if !ok {
            return Err(XmlError::Algorithm(format!("{element} {uri}")));
        }
    }
    if signature_methods != 1 {
        return Err(invalid(
            "the aggregate's signature needs one SignatureMethod",
        ));
    }
    Ok(())
}

/// What is checked about the root before anything is verified.
#[derive(Debug)]
struct RootShape {
    id: Option<String>,
    name: Option<String>,
    valid_until: Option<i64>,
    /// Byte range of the one Signature element.
    signature: std::ops::Range<usize>,
    /// `(element, Algorithm)` of every method and transform in the signature.
    algorithms: Vec<(String, String)>,
}

fn invalid(m: &str) -> XmlError {
    XmlError::Invalid(m.to_string())
}

fn parse_error(e: impl std::fmt::Display) -> XmlError {
    XmlError::Parse(e.to_string())
}

/// An attribute's value, references resolved, by its qualified name as written.
fn attr(e: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, XmlError> {
    for a in e.attributes() {
        let a = a.map_err(parse_error)?;
        if a.key.as_ref() == name {
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(parse_error)?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

/// The namespaces this module looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Md,
    Ds,
    Mdui,
    Shibmd,
    Other,
}

fn ns_of(ns: &ResolveResult<'_>) -> Ns {
    match ns {
        ResolveResult::Bound(n) => match n.as_ref() {
            MD => Ns::Md,
            DS => Ns::Ds,
            MDUI => Ns::Mdui,
            SHIBMD => Ns::Shibmd,
            _ => Ns::Other,
        },
        _ => Ns::Other,
    }
}

fn is(ns: &Ns, which: Ns) -> bool {
    *ns == which
}

/// Checks the root is an EntitiesDescriptor signed by exactly one Signature, its direct child,
/// whose only Reference points at the root, and that no other element carries the root's ID.
fn root_shape(text: &str) -> Result<RootShape, XmlError> {
    let mut reader = NsReader::from_str(text);
    let mut depth = 0usize;
    let mut root: Option<RootShape> = None;
    let mut signatures = 0usize;
    let mut sig_start: Option<(usize, usize)> = None; // (byte offset, depth)
    let mut references: Vec<String> = Vec::new();
    loop {
        let before = reader.buffer_position() as usize;
        let (ns, event) = reader.read_resolved_event().map_err(parse_error)?;
        let ns = ns_of(&ns);
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let local = e.local_name();
                if depth == 0 {
                    if !(is(&ns, Ns::Md) && local.as_ref() == b"EntitiesDescriptor") {
                        return Err(invalid(
                            "not a metadata aggregate: the root must be an md:EntitiesDescriptor",
                        ));
                    }
                    root = Some(RootShape {
                        id: attr(e, b"ID")?,
                        name: attr(e, b"Name")?,
                        valid_until: match attr(e, b"validUntil")? {
                            Some(v) => Some(parse_date_time(&v).ok_or_else(|| {
                                invalid("the aggregate's validUntil is not an xs:dateTime")
                            })?),
                            None => None,
                        },
                        signature: 0..0,
                        algorithms: Vec::new(),
                    });
                    depth += 1;
                    continue;
                }
                // Another element with the root's ID would make "#ID" ambiguous.
                if let Some(id) = root.as_ref().and_then(|r| r.id.as_deref()) {
                    let raw: &[u8] = e.as_ref();
                    if raw.windows(id.len()).any(|w| w == id.as_bytes())
                        && attr(e, b"ID")?.as_deref() == Some(id)
                    {
                        return Err(invalid("the aggregate's ID is used twice"));
                    }
                }
                if local.as_ref() == b"Signature" {
                    signatures += 1;
                    if depth != 1 || !is(&ns, Ns::Ds) {
                        return Err(invalid(
                            "a signature inside the aggregate: only a signature on the root \
                             EntitiesDescriptor is accepted",
                        ));
                    }
                    sig_start = Some((before, depth));
                } else if sig_start.is_some() {
                    let name = String::from_utf8_lossy(local.as_ref()).into_owned();
                    if name == "Reference" {
                        references.push(attr(e, b"URI")?.unwrap_or_default());
                    } else if let (Some(a), Some(r)) = (attr(e, b"Algorithm")?, root.as_mut()) {
                        r.algorithms.push((name, a));
                    }
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                if let (Some((start, d)), Some(r)) = (sig_start, root.as_mut()) {
                    if d == depth && e.local_name().as_ref() == b"Signature" {
                        r.signature = start..reader.buffer_position() as usize;
                        sig_start = None;
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let root = root.ok_or_else(|| invalid("empty document"))?;
    match signatures {
        0 => return Err(XmlError::MissingSignature),
        1 => {}
        _ => return Err(invalid("more than one signature on the aggregate's root")),
    }
    let own = match &root.id {
        Some(id) => format!("#{id}"),
        None => String::new(),
    };
    match references.as_slice() {
        [uri] if uri.is_empty() || *uri == own => Ok(root),
        _ => Err(invalid(
            "the aggregate's signature must reference its root EntitiesDescriptor (and only it)",
        )),
    }
}

/// An IdP entity cut out of the aggregate, before its own checks.
struct Candidate {
    entity_id: String,
    display_name: String,
    scopes: Vec<String>,
    metadata_xml: String,
    valid_until: i64,
}

/// Display names by language, in document order.
#[derive(Default)]
struct Names(Vec<(Option<String>, String)>);

impl Names {
    fn best(&self) -> Option<String> {
        let by = |lang: &str| {
            self.0
                .iter()
                .find(|(l, _)| l.as_deref() == Some(lang))
                .map(|(_, n)| n.clone())
        };
        by("vi")
            .or_else(|| by("en"))
            .or_else(|| self.0.first().map(|(_, n)| n.clone()))
            .filter(|n| !n.is_empty())
    }
}

/// Which text is being collected inside an entity.
enum Collecting {
    Nothing,
    DisplayName(Option<String>),
    OrganizationName(Option<String>),
    Scope,
}

/// The entity being read.
struct Open {
    start: usize,
    start_tag_end: usize,
    depth: usize,
    entity_id: Option<String>,
    own_valid_until: Option<i64>,
    bad_valid_until: bool,
    inherited_valid_until: i64,
    /// Namespace declarations in scope from the ancestors, as written (`xmlns:md="..."`).
    inherited_ns: Vec<(String, String)>,
    own_attributes: Vec<(String, String)>,
    name: String,
    is_idp: bool,
    display: Names,
    organization: Names,
    scopes: Vec<String>,
    collecting: Collecting,
    text: String,
}

/// Reads the (verified) aggregate's entities: IdPs cut out as standalone documents.
fn read_entities(
    text: &str,
    name: Option<String>,
    valid_until: i64,
    now: i64,
) -> Result<Aggregate, XmlError> {
    let mut reader = NsReader::from_str(text);
    // Per open element outside entities: its namespace declarations and validUntil.
    let mut scopes_stack: Vec<(Vec<(String, String)>, i64)> = Vec::new();
    let mut open: Option<Open> = None;
    let mut depth = 0usize;
    let mut candidates = Vec::new();
    let mut skipped = Vec::new();
    let mut other_entities = 0usize;
    loop {
        let before = reader.buffer_position() as usize;
        let (ns, event) = reader.read_resolved_event().map_err(parse_error)?;
        let ns = ns_of(&ns);
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let local = e.local_name();
                if let Some(o) = open.as_mut() {
                    if is(&ns, Ns::Md) && local.as_ref() == b"IDPSSODescriptor" {
                        o.is_idp = true;
                    }
                    if !empty {
                        let lang = || attr(e, b"xml:lang");
                        o.collecting = if is(&ns, Ns::Mdui) && local.as_ref() == b"DisplayName" {
                            Collecting::DisplayName(lang()?)
                        } else if is(&ns, Ns::Md) && local.as_ref() == b"OrganizationDisplayName" {
                            Collecting::OrganizationName(lang()?)
                        } else if is(&ns, Ns::Shibmd)
                            && local.as_ref() == b"Scope"
                            && attr(e, b"regexp")?.as_deref() != Some("true")
                        {
                            Collecting::Scope
                        } else {
                            Collecting::Nothing
                        };
                        o.text.clear();
                        depth += 1;
                    }
                    continue;
                }
                let mut declared = Vec::new();
                let mut attributes = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(parse_error)?;
                    let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                    let raw = String::from_utf8_lossy(&a.value).replace('"', "&quot;");
                    if key == "xmlns" || key.starts_with("xmlns:") {
                        declared.push((key.clone(), raw.clone()));
                    }
                    attributes.push((key, raw));
                }
                let inherited_until = scopes_stack.last().map_or(valid_until, |(_, v)| *v);
                let own_until = attr(e, b"validUntil")?;
                let parsed_until = own_until.as_deref().map(parse_date_time);
                if is(&ns, Ns::Md) && local.as_ref() == b"EntityDescriptor" {
                    let entity_id = attr(e, b"entityID")?.map(|s| s.trim().to_string());
                    if empty {
                        other_entities += 1;
                        continue;
                    }
                    let mut inherited_ns: Vec<(String, String)> = Vec::new();
                    for (decls, _) in &scopes_stack {
                        for (k, v) in decls {
                            inherited_ns.retain(|(k2, _)| k2 != k);
                            inherited_ns.push((k.clone(), v.clone()));
                        }
                    }
                    inherited_ns.retain(|(k, _)| !declared.iter().any(|(k2, _)| k2 == k));
                    open = Some(Open {
                        start: before,
                        start_tag_end: after,
                        depth,
                        entity_id,
                        own_valid_until: parsed_until.flatten(),
                        bad_valid_until: matches!(parsed_until, Some(None)),
                        inherited_valid_until: inherited_until,
                        inherited_ns,
                        own_attributes: attributes,
                        name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                        is_idp: false,
                        display: Names::default(),
                        organization: Names::default(),
                        scopes: Vec::new(),
                        collecting: Collecting::Nothing,
                        text: String::new(),
                    });
                    depth += 1;
                    continue;
                }
                if !empty {
                    let until = match parsed_until {
                        Some(Some(t)) => t.min(inherited_until),
                        _ => inherited_until,
                    };
                    scopes_stack.push((declared, until));
                    depth += 1;
                }
            }
            Event::Text(t) => {
                if let Some(o) = open.as_mut() {
                    if !matches!(o.collecting, Collecting::Nothing) {
                        o.text.push_str(&t.xml10_content().map_err(parse_error)?);
                    }
                }
            }
            Event::GeneralRef(r) => {
                if let Some(o) = open.as_mut() {
                    if !matches!(o.collecting, Collecting::Nothing) {
                        let c = match r.resolve_char_ref().map_err(parse_error)? {
                            Some(c) => c,
                            None => match r.as_ref() {
                                b"lt" => '<',
                                b"gt" => '>',
                                b"amp" => '&',
                                b"quot" => '"',
                                b"apos" => '\'',
                                _ => return Err(invalid("an unknown entity reference")),
                            },
                        };
                        o.text.push(c);
                    }
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                match open.as_mut() {
                    Some(o) if depth == o.depth => {
                        let Some(o) = open.take() else { continue };
                        match finish_entity(text, o, after, now) {
                            Ok(Some(c)) => candidates.push(c),
                            Ok(None) => other_entities += 1,
                            Err(s) => skipped.push(s),
                        }
                    }
                    Some(o) => {
                        let value = std::mem::take(&mut o.text).trim().to_string();
                        match std::mem::replace(&mut o.collecting, Collecting::Nothing) {
                            Collecting::DisplayName(lang) => o.display.0.push((lang, value)),
                            Collecting::OrganizationName(lang) => {
                                o.organization.0.push((lang, value))
                            }
                            Collecting::Scope if !value.is_empty() => o.scopes.push(value),
                            _ => {}
                        }
                    }
                    None => {
                        scopes_stack.pop();
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let (idps, refused) = check_candidates(candidates);
    skipped.extend(refused);
    Ok(Aggregate {
        name,
        valid_until,
        idps,
        skipped,
        other_entities,
    })
}

/// Cuts an entity out as a standalone document: the ancestors' namespace declarations and the
/// effective validUntil are written onto its start tag. `Ok(None)`: not an identity provider.
fn finish_entity(
    text: &str,
    o: Open,
    end: usize,
    now: i64,
) -> Result<Option<Candidate>, SkippedEntity> {
    let entity_id = o.entity_id.clone().unwrap_or_default();
    let skip = |reason: &str| SkippedEntity {
        entity_id: entity_id.clone(),
        reason: reason.to_string(),
    };
    if !o.is_idp {
        return Ok(None);
    }
    if entity_id.is_empty() {
        return Err(skip("EntityDescriptor has no entityID"));
    }
    if o.bad_valid_until {
        return Err(skip("validUntil is not an xs:dateTime"));
    }
    let valid_until = o
        .own_valid_until
        .map_or(o.inherited_valid_until, |t| t.min(o.inherited_valid_until));
    if valid_until <= now {
        return Err(skip("the entity's metadata has expired (validUntil)"));
    }
    let mut tag = format!("<{}", o.name);
    for (k, v) in &o.inherited_ns {
        tag.push_str(&format!(" {k}=\"{v}\""));
    }
    for (k, v) in &o.own_attributes {
        if k != "validUntil" {
            tag.push_str(&format!(" {k}=\"{v}\""));
        }
    }
    tag.push_str(&format!(
        " validUntil=\"{}\">",
        format_date_time(valid_until)
    ));
    let mut metadata_xml = String::with_capacity(end - o.start + tag.len());
    metadata_xml.push_str(&tag);
    metadata_xml.push_str(&text[o.start_tag_end..end]);
    let display_name = o
        .display
        .best()
        .or_else(|| o.organization.best())
        .unwrap_or_else(|| entity_id.clone());
    Ok(Some(Candidate {
        entity_id,
        display_name,
        scopes: o.scopes,
        metadata_xml,
        valid_until,
    }))
}

/// Runs each IdP's own checks ([`super::idp::parse`]), on every core: they are independent.
fn check_candidates(candidates: Vec<Candidate>) -> (Vec<AggregateIdp>, Vec<SkippedEntity>) {
    let check = |c: Candidate| match super::idp::parse(c.metadata_xml.as_bytes(), Limits::default())
    {
        Ok(md) if md.entity_id == c.entity_id => Ok(AggregateIdp {
            entity_id: c.entity_id,
            display_name: c.display_name,
            scopes: c.scopes,
            metadata_xml: c.metadata_xml,
            valid_until: c.valid_until,
        }),
        Ok(_) => Err(SkippedEntity {
            entity_id: c.entity_id,
            reason: "entityID read differently".into(),
        }),
        Err(e) => Err(SkippedEntity {
            entity_id: c.entity_id,
            reason: e.to_string(),
        }),
    };
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = candidates.len().div_ceil(workers).max(1);
    let mut chunks: Vec<Vec<Candidate>> = Vec::new();
    let mut rest = candidates.into_iter().peekable();
    while rest.peek().is_some() {
        chunks.push(rest.by_ref().take(chunk).collect());
    }
    let results: Vec<Vec<Result<AggregateIdp, SkippedEntity>>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|part| s.spawn(move || part.into_iter().map(check).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![Err(SkippedEntity {
                        entity_id: String::new(),
                        reason: XmlError::Panicked.to_string(),
                    })]
                })
            })
            .collect()
    });
    let (mut idps, mut skipped) = (Vec::new(), Vec::new());
    for r in results.into_iter().flatten() {
        match r {
            Ok(i) => idps.push(i),
            Err(s) => skipped.push(s),
        }
    }
    (idps, skipped)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `xs:dateTime` (`2026-12-31T23:59:59Z`, fractions and offsets allowed; no zone means UTC)
/// as Unix seconds.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "" | "Z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hm = &rest[1..];
            if hm.len() != 5 || hm.as_bytes()[2] != b':' {
                return None;
            }
            let oh: i64 = hm[..2].parse().ok()?;
            let om: i64 = hm[3..].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Unix seconds as `xs:dateTime` in UTC.
pub fn format_date_time(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate, KeyAlg};
    use crate::xml::aggregate_writer::{entity_xml, signed_aggregate, EntitySpec};
    use crate::xml::dsig::XmlSigner;

    const NOW: i64 = 1_796_464_800;

    fn spec(n: usize, idp: bool, cert: &[u8]) -> EntitySpec {
        EntitySpec {
            entity_id: format!("https://idp{n}.truong{n}.edu.vn/idp"),
            display_name: format!("Trường Đại học số {n}"),
            scope: format!("truong{n}.edu.vn"),
            idp,
            endpoint: format!("https://idp{n}.truong{n}.edu.vn/sso"),
            cert_der: cert.to_vec(),
        }
    }

    #[test]
    fn reads_idps_of_a_signed_aggregate_and_refuses_a_changed_one() {
        let fed = generate(KeyAlg::EcP256, "federation", NOW - 10, 30).unwrap();
        let idp_key = generate(KeyAlg::EcP256, "idp", NOW - 10, 30).unwrap();
        let signer = XmlSigner::new(KeyAlg::EcP256, &fed.private_der, &fed.cert_der).unwrap();
        let mut bad = spec(3, true, &idp_key.cert_der);
        bad.endpoint = "http://idp3.example/sso".into();
        let entities: Vec<String> = [
            spec(1, true, &idp_key.cert_der),
            spec(2, true, &idp_key.cert_der),
            bad,
            spec(4, false, &idp_key.cert_der),
        ]
        .iter()
        .map(entity_xml)
        .collect();
        let xml = signed_aggregate(&signer, "agg1", "urn:test:fed", NOW + 3600, &entities).unwrap();
        let trusted = [CertificateDer::from(fed.cert_der.clone())];
        let agg = verify(xml.as_bytes(), &trusted, NOW).unwrap();
        assert_eq!(agg.name.as_deref(), Some("urn:test:fed"));
        let ids: Vec<&str> = agg.idps.iter().map(|i| i.entity_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "https://idp1.truong1.edu.vn/idp",
                "https://idp2.truong2.edu.vn/idp"
            ]
        );
        assert_eq!(agg.idps[0].display_name, "Trường Đại học số 1");
        assert_eq!(agg.idps[0].scopes, ["truong1.edu.vn"]);
        assert_eq!(agg.idps[0].valid_until, NOW + 3600);
        // Standalone: registering it alone reads the same IdP, expiring with the aggregate.
        let alone =
            crate::xml::idp::parse(agg.idps[0].metadata_xml.as_bytes(), Limits::default()).unwrap();
        assert_eq!(alone.valid_until, Some(NOW + 3600));
        assert_eq!(agg.skipped.len(), 1);
        assert_eq!(agg.skipped[0].entity_id, "https://idp3.truong3.edu.vn/idp");
        assert_eq!(agg.other_entities, 1);

        let tampered = xml.replace("Trường Đại học số 2", "Trường Giả Mạo");
        assert_eq!(
            verify(tampered.as_bytes(), &trusted, NOW).unwrap_err(),
            XmlError::BadSignature
        );
        let other = generate(KeyAlg::EcP256, "other", NOW - 10, 30).unwrap();
        assert_eq!(
            verify(xml.as_bytes(), &[CertificateDer::from(other.cert_der)], NOW).unwrap_err(),
            XmlError::BadSignature
        );
        let err = verify(xml.as_bytes(), &trusted, NOW + 3600).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn dates_round_trip_and_offsets_apply() {
        assert_eq!(parse_date_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_date_time("2026-12-05T10:00:00.123Z"),
            Some(1_796_464_800)
        );
        assert_eq!(
            parse_date_time("2026-12-05T17:00:00+07:00"),
            parse_date_time("2026-12-05T10:00:00Z")
        );
        assert_eq!(format_date_time(1_796_464_800), "2026-12-05T10:00:00Z");
        for t in [0, 951_782_400, 1_796_464_800, 4_102_444_799] {
            assert_eq!(parse_date_time(&format_date_time(t)), Some(t));
        }
        assert_eq!(parse_date_time("2026-13-05T10:00:00Z"), None);
        assert_eq!(parse_date_time("yesterday"), None);
    }
}
