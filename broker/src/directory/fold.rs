//! Name search ignores case and Vietnamese diacritics: "nguyen van an" finds "Nguyễn Văn An".

const GROUPS: &[(&str, char)] = &[
    ("àáảãạăằắẳẵặâầấẩẫậ", 'a'),
    ("đ", 'd'),
    ("èéẻẽẹêềếểễệ", 'e'),
    ("ìíỉĩị", 'i'),
    ("òóỏõọôồốổỗộơờớởỡợ", 'o'),
    ("ùúủũụưừứửữự", 'u'),
    ("ỳýỷỹỵ", 'y'),
];

fn fold_char(c: char) -> char {
    GROUPS
        .iter()
        .find(|(letters, _)| letters.contains(c))
        .map(|(_, base)| *base)
        .unwrap_or(c)
}

/// Lower case, diacritics removed, runs of whitespace collapsed to one space.
pub fn fold_name(name: &str) -> String {
    let lowered = name.to_lowercase();
    let folded: String = lowered.chars().map(fold_char).collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::fold_name;

    #[test]
    fn folds_vietnamese_names() {
        assert_eq!(fold_name("Nguyễn  Văn An"), "nguyen van an");
        assert_eq!(fold_name("ĐẶNG THỊ HƯỜNG"), "dang thi huong");
        assert_eq!(fold_name("Trần Quốc Toản"), "tran quoc toan");
        assert_eq!(fold_name("Lê Thị Thuỷ"), "le thi thuy");
    }
}
