//! Made-up but plausible directory data: a seeded random source, Vietnamese personal and
//! company names, and identifiers that pass the product's own validators.

use fedhub_identifiers::{Cccd, Phone, TaxCode};

/// SplitMix64: small, fast and fully determined by its seed, so `--seed` repeats a data set.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` ≥ 1; the modulo bias is far below what matters here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// One of `words`.
    pub fn word(&mut self, words: &[&'static str]) -> &'static str {
        words[self.below(words.len())]
    }

    /// `digits` random decimal digits.
    pub fn digits(&mut self, digits: usize) -> String {
        (0..digits)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// Picks indexes with fixed weights (cumulative table, binary search).
pub struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    pub fn new(weights: impl IntoIterator<Item = f64>) -> Weighted {
        let mut total = 0.0;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                total += w;
                total
            })
            .collect();
        Weighted { cumulative }
    }

    /// Zipf-like: item k (from 0) weighs 1 / (k + 1)^s.
    pub fn zipf(n: usize, s: f64) -> Weighted {
        Weighted::new((1..=n).map(|k| 1.0 / (k as f64).powf(s)))
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = rng.unit() * total;
        self.cumulative
            .partition_point(|c| *c <= x)
            .min(self.cumulative.len().saturating_sub(1))
    }
}

/// Family names with rough shares of the population (Nguyễn alone is about four in ten).
pub const FAMILY: &[(&str, f64)] = &[
    ("Nguyễn", 38.0),
    ("Trần", 11.0),
    ("Lê", 9.5),
    ("Phạm", 7.0),
    ("Hoàng", 5.0),
    ("Huỳnh", 4.0),
    ("Phan", 4.5),
    ("Vũ", 4.0),
    ("Võ", 3.5),
    ("Đặng", 2.0),
    ("Bùi", 2.0),
    ("Đỗ", 1.5),
    ("Hồ", 1.3),
    ("Ngô", 1.3),
    ("Dương", 1.0),
    ("Lý", 0.5),
    ("Đinh", 0.8),
    ("Trương", 0.8),
    ("Lương", 0.5),
    ("Mai", 0.5),
    ("Tạ", 0.3),
    ("Quách", 0.2),
];

pub const MIDDLE_MALE: &[&str] = &[
    "Văn", "Hữu", "Đức", "Minh", "Quốc", "Thanh", "Xuân", "Công", "Đình", "Gia", "Bảo", "Tuấn",
    "Quang", "Hoàng", "Ngọc", "Trọng",
];

pub const MIDDLE_FEMALE: &[&str] = &[
    "Thị", "Ngọc", "Thu", "Thanh", "Minh", "Hoài", "Phương", "Diệu", "Bích", "Kim", "Mỹ", "Thùy",
    "Hồng", "Khánh", "Bảo",
];

pub const GIVEN_MALE: &[&str] = &[
    "An", "Bình", "Cường", "Dũng", "Duy", "Đạt", "Hải", "Hiếu", "Hòa", "Hùng", "Huy", "Khang",
    "Khoa", "Kiên", "Long", "Lộc", "Mạnh", "Minh", "Nam", "Nghĩa", "Phong", "Phúc", "Quân",
    "Quang", "Sơn", "Tài", "Tâm", "Thắng", "Thành", "Thịnh", "Toàn", "Trí", "Trung", "Tuấn",
    "Tùng", "Việt", "Vinh", "Vũ",
];

pub const GIVEN_FEMALE: &[&str] = &[
    "Anh", "Châu", "Chi", "Dung", "Giang", "Hà", "Hạnh", "Hằng", "Hiền", "Hoa", "Hồng", "Hương",
    "Hường", "Lan", "Liên", "Linh", "Loan", "Mai", "My", "Nga", "Ngân", "Ngọc", "Nhung", "Oanh",
    "Phương", "Quyên", "Tâm", "Thảo", "Thủy", "Thư", "Trang", "Trinh", "Tuyết", "Uyên", "Vân",
    "Vy", "Xuân", "Yến",
];

/// Words of company names: "Công ty TNHH Thương mại Hưng Thịnh".
const COMPANY_FORM: &[&str] = &[
    "Công ty TNHH",
    "Công ty Cổ phần",
    "Công ty TNHH MTV",
    "Hợp tác xã",
    "Doanh nghiệp tư nhân",
];
const COMPANY_TRADE: &[&str] = &[
    "Thương mại",
    "Xây dựng",
    "Dịch vụ",
    "Vận tải",
    "Công nghệ",
    "Nông sản",
    "Du lịch",
    "Dược phẩm",
    "Thủy sản",
    "Cơ khí",
    "Đầu tư",
    "May mặc",
];
const COMPANY_NAME: &[&str] = &[
    "Hưng Thịnh",
    "Phát Đạt",
    "An Phú",
    "Thành Công",
    "Bình Minh",
    "Sao Việt",
    "Hoàng Long",
    "Đại Dương",
    "Phú Quý",
    "Trường An",
    "Minh Khang",
    "Tân Tiến",
    "Kim Ngân",
    "Nam Việt",
    "Hải Âu",
    "Thái Bình Dương",
];

/// A person's full name and whether she is a woman (which the CCCD encodes too).
pub fn person_name(rng: &mut Rng, family: &Weighted) -> (String, bool) {
    let female = rng.chance(0.5);
    let (middles, givens) = if female {
        (MIDDLE_FEMALE, GIVEN_FEMALE)
    } else {
        (MIDDLE_MALE, GIVEN_MALE)
    };
    let mut words = vec![FAMILY[family.sample(rng)].0, rng.word(middles)];
    if rng.chance(0.15) {
        // Some people have two middle names: "Nguyễn Thị Ngọc Anh".
        words.push(rng.word(middles));
    }
    words.push(rng.word(givens));
    (words.join(" "), female)
}

pub fn company_name(rng: &mut Rng) -> String {
    format!(
        "{} {} {}",
        rng.pick(COMPANY_FORM),
        rng.pick(COMPANY_TRADE),
        rng.pick(COMPANY_NAME)
    )
}

/// Province-of-birth codes a CCCD may start with (Circular 07/2016/TT-BCA).
pub const CCCD_PROVINCES: &[&str] = &[
    "001", "002", "004", "006", "008", "010", "011", "012", "014", "015", "017", "019", "020",
    "022", "024", "025", "026", "027", "030", "031", "033", "034", "035", "036", "037", "038",
    "040", "042", "044", "045", "046", "048", "049", "051", "052", "054", "056", "058", "060",
    "062", "064", "066", "067", "068", "070", "072", "074", "075", "077", "079", "080", "082",
    "083", "084", "086", "087", "089", "091", "092", "093", "094", "095", "096",
];

/// A CCCD for someone born 1940–2009: province (3) + century and sex (1) + year (2) + serial
/// (6). Checked by the product's parser.
pub fn cccd(rng: &mut Rng, female: bool) -> Option<Cccd> {
    let year = 1940 + rng.below(70);
    let century = if year >= 2000 { 2 } else { 0 } + usize::from(female);
    let text = format!(
        "{}{}{:02}{}",
        rng.pick(CCCD_PROVINCES),
        century,
        year % 100,
        rng.digits(6)
    );
    Cccd::parse(&text).ok()
}

/// A mobile number in the form the product stores (`+84…`), checked by its parser.
pub fn mobile(rng: &mut Rng) -> Option<Phone> {
    const PREFIXES: &[&str] = &[
        "32", "33", "34", "35", "36", "37", "38", "39", "56", "58", "70", "76", "77", "78", "79",
        "81", "82", "83", "84", "85", "86", "88", "89", "90", "91", "93", "94", "96", "97", "98",
    ];
    Phone::parse(&format!("0{}{}", rng.pick(PREFIXES), rng.digits(7))).ok()
}

/// A 10-digit enterprise tax code: province (2) + serial (7) + the check digit the product's
/// parser accepts (found by trying all ten; a prefix with no valid check digit is redrawn).
pub fn tax_code(rng: &mut Rng) -> TaxCode {
    loop {
        let first9 = format!("{:02}{}", 1 + rng.below(96), rng.digits(7));
        if let Some(code) = (0..10).find_map(|d| TaxCode::parse(&format!("{first9}{d}")).ok()) {
            return code;
        }
    }
}

/// ASCII local part of an e-mail address from a name: "Nguyễn Văn An" → "an.nguyenvan".
pub fn email_local(folded_name: &str) -> String {
    let words: Vec<&str> = folded_name.split(' ').collect();
    match words.split_last() {
        Some((given, rest)) => format!("{given}.{}", rest.concat()),
        None => folded_name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identifiers_pass_the_product_parsers() {
        let mut rng = Rng::new(7);
        for _ in 0..2000 {
            let female = rng.chance(0.5);
            let c = cccd(&mut rng, female).expect("valid CCCD");
            assert_eq!(c.gender() == fedhub_identifiers::Gender::Female, female);
            assert!(mobile(&mut rng).expect("valid phone").is_mobile());
            let t = tax_code(&mut rng);
            assert_eq!(t.as_str().len(), 10);
        }
    }

    #[test]
    fn weighted_sampling_follows_the_weights() {
        let mut rng = Rng::new(1);
        let w = Weighted::new([1.0, 3.0]);
        let ones = (0..10_000).filter(|_| w.sample(&mut rng) == 1).count();
        assert!((7_000..8_000).contains(&ones), "{ones}");
        let z = Weighted::zipf(200, 1.0);
        let mut hits = [0usize; 200];
        for _ in 0..20_000 {
            hits[z.sample(&mut rng)] += 1;
        }
        // Item 1 weighs 1/5.88 of the total (the 200th harmonic number), item 200 1/1176.
        assert!((3_000..3_800).contains(&hits[0]), "{}", hits[0]);
        assert!(hits[0] > hits[1] && hits[1] > hits[199]);
    }
}
