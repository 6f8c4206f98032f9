//! Personal ID numbers: the 12-digit CCCD (căn cước công dân, now the personal identification
//! number) and the old CMND (chứng minh nhân dân).

use crate::{string_identifier, IdError, IdKind};

/// Province-of-birth codes, Appendix 1 of Circular 07/2016/TT-BCA (the place where the birth
/// was registered). The 63 pre-2025 provinces keep their codes in numbers already issued, so
/// the list does not shrink with the 2025 mergers. Sorted for binary search.
const PROVINCES: [(&str, &str); 63] = [
    ("001", "Hà Nội"),
    ("002", "Hà Giang"),
    ("004", "Cao Bằng"),
    ("006", "Bắc Kạn"),
    ("008", "Tuyên Quang"),
    ("010", "Lào Cai"),
    ("011", "Điện Biên"),
    ("012", "Lai Châu"),
    ("014", "Sơn La"),
    ("015", "Yên Bái"),
    ("017", "Hòa Bình"),
    ("019", "Thái Nguyên"),
    ("020", "Lạng Sơn"),
    ("022", "Quảng Ninh"),
    ("024", "Bắc Giang"),
    ("025", "Phú Thọ"),
    ("026", "Vĩnh Phúc"),
    ("027", "Bắc Ninh"),
    ("030", "Hải Dương"),
    ("031", "Hải Phòng"),
    ("033", "Hưng Yên"),
    ("034", "Thái Bình"),
    ("035", "Hà Nam"),
    ("036", "Nam Định"),
    ("037", "Ninh Bình"),
    ("038", "Thanh Hóa"),
    ("040", "Nghệ An"),
    ("042", "Hà Tĩnh"),
    ("044", "Quảng Bình"),
    ("045", "Quảng Trị"),
    ("046", "Thừa Thiên Huế"),
    ("048", "Đà Nẵng"),
    ("049", "Quảng Nam"),
    ("051", "Quảng Ngãi"),
    ("052", "Bình Định"),
    ("054", "Phú Yên"),
    ("056", "Khánh Hòa"),
    ("058", "Ninh Thuận"),
    ("060", "Bình Thuận"),
    ("062", "Kon Tum"),
    ("064", "Gia Lai"),
    ("066", "Đắk Lắk"),
    ("067", "Đắk Nông"),
    ("068", "Lâm Đồng"),
    ("070", "Bình Phước"),
    ("072", "Tây Ninh"),
    ("074", "Bình Dương"),
    ("075", "Đồng Nai"),
    ("077", "Bà Rịa - Vũng Tàu"),
    ("079", "Hồ Chí Minh"),
    ("080", "Long An"),
    ("082", "Tiền Giang"),
    ("083", "Bến Tre"),
    ("084", "Trà Vinh"),
    ("086", "Vĩnh Long"),
    ("087", "Đồng Tháp"),
    ("089", "An Giang"),
    ("091", "Kiên Giang"),
    ("092", "Cần Thơ"),
    ("093", "Hậu Giang"),
    ("094", "Sóc Trăng"),
    ("095", "Bạc Liêu"),
    ("096", "Cà Mau"),
];

fn province_name(code: &str) -> Option<&'static str> {
    PROVINCES
        .binary_search_by(|(c, _)| (*c).cmp(code))
        .ok()
        .map(|i| PROVINCES[i].1)
}

const DIGITS_ONLY: &str = "must contain only the digits 0-9, with no spaces, dots or dashes inside";

/// Sex encoded in the century digit of a CCCD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    Male,
    Female,
}

/// A 12-digit CCCD: province of birth (3) + century/gender (1) + birth year (2) + serial (6).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cccd(String);

string_identifier!(Cccd);

impl Cccd {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let raw = input.trim();
        let err = |rule: String| IdError::new(IdKind::Cccd, raw, rule);
        if !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(DIGITS_ONLY.into()));
        }
        if raw.len() != 12 {
            return Err(err(format!("must be exactly 12 digits, got {}", raw.len())));
        }
        let province = &raw[..3];
        if province_name(province).is_none() {
            return Err(err(format!(
                "first three digits must be a province-of-birth code from Circular 07/2016/TT-BCA \
                 (001 Hà Nội to 096 Cà Mau); {province} is not one"
            )));
        }
        // 0-5 cover births 1900-2199; 6-9 would mean 2200 or later, so they are typos.
        if raw.as_bytes()[3] > b'5' {
            return Err(err(
                "fourth digit (century and sex) must be 0-5, i.e. born 1900-2199".into(),
            ));
        }
        Ok(Cccd(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Code of the province where the birth was registered, e.g. "001".
    pub fn province_code(&self) -> &str {
        &self.0[..3]
    }

    /// Name of that province as it was before the 2025 mergers (what the code was issued for).
    pub fn province_name(&self) -> Option<&'static str> {
        province_name(self.province_code())
    }

    fn century_digit(&self) -> u16 {
        u16::from(self.0.as_bytes()[3] - b'0')
    }

    pub fn gender(&self) -> Gender {
        // Even digits are men, odd digits women (Circular 07/2016/TT-BCA, Article 7).
        match self.century_digit() % 2 {
            0 => Gender::Male,
            _ => Gender::Female,
        }
    }

    pub fn birth_year(&self) -> u16 {
        let b = self.0.as_bytes();
        let yy = u16::from(b[4] - b'0') * 10 + u16::from(b[5] - b'0');
        1900 + 100 * (self.century_digit() / 2) + yy
    }
}

/// An old identity card number: 9 digits, or 12 for the last cards issued before CCCD.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cmnd(String);

string_identifier!(Cmnd);

impl Cmnd {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let raw = input.trim();
        let err = |rule: String| IdError::new(IdKind::Cmnd, raw, rule);
        if !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(DIGITS_ONLY.into()));
        }
        if raw.len() != 9 && raw.len() != 12 {
            return Err(err(format!("must be 9 or 12 digits, got {}", raw.len())));
        }
        Ok(Cmnd(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a citizen types in the "CCCD/CMND" box: 12 digits are read as a CCCD, 9 as a CMND.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PersonalId {
    Cccd(Cccd),
    Cmnd(Cmnd),
}

string_identifier!(PersonalId);

impl PersonalId {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let raw = input.trim();
        let all_digits = raw.bytes().all(|b| b.is_ascii_digit());
        match raw.len() {
            // A 12-digit number is held to CCCD rules so a typo is reported precisely.
            12 if all_digits => Cccd::parse(raw).map(PersonalId::Cccd),
            9 if all_digits => Cmnd::parse(raw).map(PersonalId::Cmnd),
            _ => Err(IdError::new(
                IdKind::PersonalId,
                raw,
                "must be a 12-digit CCCD or a 9-digit CMND, digits only",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            PersonalId::Cccd(c) => c.as_str(),
            PersonalId::Cmnd(c) => c.as_str(),
        }
    }
}

impl From<Cccd> for PersonalId {
    fn from(c: Cccd) -> Self {
        PersonalId::Cccd(c)
    }
}

impl From<Cmnd> for PersonalId {
    fn from(c: Cmnd) -> Self {
        PersonalId::Cmnd(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn province_table_is_sorted_unique_and_complete() {
        assert!(PROVINCES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(PROVINCES.len(), 63);
        assert_eq!(PROVINCES[0], ("001", "Hà Nội"));
        assert_eq!(PROVINCES[62], ("096", "Cà Mau"));
    }

    #[test]
    fn decodes_a_hanoi_man_born_1990() {
        let c = Cccd::parse(" 001090012345 ").unwrap();
        assert_eq!(c.as_str(), "001090012345");
        assert_eq!(c.province_code(), "001");
        assert_eq!(c.province_name(), Some("Hà Nội"));
        assert_eq!(c.gender(), Gender::Male);
        assert_eq!(c.birth_year(), 1990);
    }

    #[test]
    fn decodes_century_and_sex() {
        let cases = [
            ("079185000001", Gender::Female, 1985),
            ("036303000002", Gender::Female, 2003),
            ("022210000003", Gender::Male, 2010),
            ("096499000004", Gender::Male, 2199),
            ("046500000005", Gender::Female, 2100),
        ];
        for (s, g, y) in cases {
            let c = Cccd::parse(s).unwrap();
            assert_eq!((c.gender(), c.birth_year()), (g, y), "{s}");
        }
        assert_eq!(
            Cccd::parse("079185000001").unwrap().province_name(),
            Some("Hồ Chí Minh")
        );
    }

    #[test]
    fn cccd_rejections() {
        let rule = |s: &str| {
            let e = Cccd::parse(s).unwrap_err();
            assert_eq!(e.kind, IdKind::Cccd);
            e.rule
        };
        assert_eq!(rule("001 090 012345"), DIGITS_ONLY);
        assert_eq!(rule("001.090.012345"), DIGITS_ONLY);
        assert_eq!(rule("00109001234a"), DIGITS_ONLY);
        assert_eq!(rule("00109001234"), "must be exactly 12 digits, got 11");
        assert_eq!(rule(""), "must be exactly 12 digits, got 0");
        // 003 and 097 sit in gaps of / beyond the official list.
        assert!(rule("003090012345").ends_with("003 is not one"));
        assert!(rule("097090012345").ends_with("097 is not one"));
        assert!(rule("000090012345").ends_with("000 is not one"));
        assert!(rule("001690012345").starts_with("fourth digit (century and sex) must be 0-5"));
        assert!(rule("001990012345").starts_with("fourth digit"));
    }

    #[test]
    fn cmnd_rules() {
        assert_eq!(Cmnd::parse(" 012345678").unwrap().as_str(), "012345678");
        assert_eq!(
            Cmnd::parse("025123456789").unwrap().as_str(),
            "025123456789"
        );
        let e = Cmnd::parse("0123456789").unwrap_err();
        assert_eq!(
            (e.kind, e.rule.as_str()),
            (IdKind::Cmnd, "must be 9 or 12 digits, got 10")
        );
        assert_eq!(Cmnd::parse("012-345-678").unwrap_err().rule, DIGITS_ONLY);
    }

    #[test]
    fn personal_id_dispatches_on_length() {
        let p = PersonalId::parse("001090012345").unwrap();
        assert!(matches!(p, PersonalId::Cccd(_)));
        assert_eq!(p.to_string(), "001090012345");
        let p = PersonalId::parse("012345678").unwrap();
        assert!(matches!(p, PersonalId::Cmnd(_)));
        assert_eq!(p.as_str(), "012345678");

        // 12 digits failing CCCD rules report the CCCD rule, not a generic one.
        let e = PersonalId::parse("003090012345").unwrap_err();
        assert_eq!(e.kind, IdKind::Cccd);

        for bad in [
            "0123456789",
            "01234567",
            "",
            "00109001234x",
            "001 090 012345",
        ] {
            let e = PersonalId::parse(bad).unwrap_err();
            assert_eq!(e.kind, IdKind::PersonalId, "{bad}");
            assert_eq!(
                e.rule,
                "must be a 12-digit CCCD or a 9-digit CMND, digits only"
            );
        }
    }

    #[test]
    fn serde_goes_through_parse() {
        let p: PersonalId = crate::from_str_de("079185000001").unwrap();
        assert_eq!(p, PersonalId::Cccd(Cccd::parse("079185000001").unwrap()));
        assert!(crate::from_str_de::<Cccd>("003090012345").is_err());
        assert!(crate::from_str_de::<Cmnd>("12345").is_err());
    }
}
