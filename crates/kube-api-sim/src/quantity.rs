//! Resource quantities as a real API server decodes them (apimachinery's
//! `ParseQuantity`, Kubernetes 1.32): a malformed quantity in a pod spec
//! makes the whole body undecodable, a 400 with the parser's own words.
//! `k8s-openapi` keeps quantities as plain strings, so the simulator checks
//! them itself.

use serde_json::Value;

/// `ErrFormatWrong`.
pub const FORMAT_WRONG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// `ErrSuffix`.
pub const BAD_SUFFIX: &str = "unable to parse quantity's suffix";

fn digits_end(b: &[u8], from: usize) -> usize {
    from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Why `text` (a JSON string's content, or a JSON number) is not a
/// quantity, following `parseQuantityString` and the suffix tables.
pub fn problem(text: &str) -> Option<&'static str> {
    let s = text.trim();
    if s.is_empty() {
        return Some(FORMAT_WRONG);
    }
    let b = s.as_bytes();
    let mut pos = usize::from(matches!(b[0], b'+' | b'-'));
    // The number: digits, then an optional '.' and digits ("1." is fine).
    pos = digits_end(b, pos);
    if pos < b.len() && b[pos] == b'.' {
        pos = digits_end(b, pos + 1);
    }
    if pos == b.len() {
        return None;
    }
    // The suffix: letters of "eEinumkKMGTP", an optional sign, digits, and
    // nothing after them.
    let suffix_start = pos;
    pos += b[pos..]
        .iter()
        .take_while(|c| b"eEinumkKMGTP".contains(c))
        .count();
    if pos < b.len() && matches!(b[pos], b'+' | b'-') {
        pos += 1;
    }
    if digits_end(b, pos) != b.len() {
        return Some(FORMAT_WRONG);
    }
    let suffix = &s[suffix_start..];
    let known = [
        "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    let exponent =
        suffix.len() > 1 && suffix.starts_with(['e', 'E']) && suffix[1..].parse::<i64>().is_ok();
    if known.contains(&suffix) || exponent {
        None
    } else {
        Some(BAD_SUFFIX)
    }
}

/// How a quantity was written, which decides how it is written back
/// (apimachinery's `Format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `e3`, `E-2`.
    DecimalExponent,
    /// `Ki` … `Ei`.
    BinarySI,
    /// No suffix, or `n` … `E`.
    DecimalSI,
}

/// A parsed quantity: exactly `mantissa × 10^scale`, no finer than nano
/// (finer values round up, away from zero, as `ParseQuantity` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    scale: i32,
    format: Format,
}

fn pow(base: i128, exp: u32) -> Option<i128> {
    base.checked_pow(exp)
}

impl Quantity {
    /// A well-formed quantity (see [`problem`]); `None` for anything else,
    /// and for values too large to hold exactly here (then nothing is
    /// compared).
    pub fn parse(text: &str) -> Option<Quantity> {
        if problem(text).is_some() {
            return None;
        }
        let s = text.trim();
        let (negative, s) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let end = s
            .bytes()
            .position(|c| !(c.is_ascii_digit() || c == b'.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = format!("{whole}{fraction}");
        let mut mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let mut scale = -i32::try_from(fraction.len()).ok()?;
        let binary = |e: u32| (Format::BinarySI, e);
        let (format, exp) = match suffix {
            "Ki" => binary(10),
            "Mi" => binary(20),
            "Gi" => binary(30),
            "Ti" => binary(40),
            "Pi" => binary(50),
            "Ei" => binary(60),
            _ => {
                let (format, e) = match suffix {
                    "" => (Format::DecimalSI, 0),
                    "n" => (Format::DecimalSI, -9),
                    "u" => (Format::DecimalSI, -6),
                    "m" => (Format::DecimalSI, -3),
                    "k" => (Format::DecimalSI, 3),
                    "M" => (Format::DecimalSI, 6),
                    "G" => (Format::DecimalSI, 9),
                    "T" => (Format::DecimalSI, 12),
                    "P" => (Format::DecimalSI, 15),
                    "E" => (Format::DecimalSI, 18),
                    e => (Format::DecimalExponent, e[1..].parse::<i32>().ok()?),
                };
                scale = scale.checked_add(e)?;
                (format, 0)
            }
        };
        mantissa = mantissa.checked_mul(pow(2, exp)?)?;
        if scale < -9 {
            // Round up to the nearest nano.
            let div = pow(10, u32::try_from(-9 - scale).ok()?)?;
            mantissa = mantissa / div + i128::from(mantissa % div != 0);
            scale = -9;
        }
        if negative {
            mantissa = -mantissa;
        }
        Some(Quantity {
            mantissa,
            scale,
            format,
        })
    }

    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    pub fn is_positive(&self) -> bool {
        self.mantissa > 0
    }

    /// The exact integer value when it is one.
    fn as_integer(&self) -> Option<i128> {
        if self.scale >= 0 {
            return self
                .mantissa
                .checked_mul(pow(10, u32::try_from(self.scale).ok()?)?);
        }
        let div = pow(10, u32::try_from(-self.scale).ok()?)?;
        (self.mantissa % div == 0).then_some(self.mantissa / div)
    }

    /// Compares the values (`Quantity.Cmp`); `None` if they cannot be
    /// aligned exactly here.
    pub fn compare(&self, other: &Quantity) -> Option<std::cmp::Ordering> {
        let (a, b, _) = self.aligned(other)?;
        Some(a.cmp(&b))
    }

    /// Both mantissas at the finer of the two scales, and that scale.
    fn aligned(&self, other: &Quantity) -> Option<(i128, i128, i32)> {
        let low = self.scale.min(other.scale);
        let at = |q: &Quantity| {
            q.mantissa
                .checked_mul(pow(10, u32::try_from(q.scale - low).ok()?)?)
        };
        Some((at(self)?, at(other)?, low))
    }

    /// The sum, in the format of `self` (`Quantity.Add`); `None` if it
    /// cannot be held exactly here.
    pub fn add(&self, other: &Quantity) -> Option<Quantity> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Quantity {
            mantissa: a.checked_add(b)?,
            scale,
            format: self.format,
        })
    }

    /// The canonical text, as `Quantity.String()` writes it: `1.5` is
    /// `1500m`, `1024Mi` is `1Gi`, `1000m` is `1`, binary values below 1024
    /// or with a fraction are written decimally.
    pub fn canonical(&self) -> String {
        if self.mantissa == 0 {
            return "0".into();
        }
        let mut format = self.format;
        let integer = self.as_integer();
        if format == Format::BinarySI
            && (integer.is_none() || integer.is_some_and(|v| v.abs() < 1024))
        {
            format = Format::DecimalSI;
        }
        if let (Format::BinarySI, Some(mut v)) = (format, integer) {
            let mut e = 0;
            while v % 1024 == 0 && e < 6 {
                v /= 1024;
                e += 1;
            }
            return format!("{v}{}", ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][e]);
        }
        let (mut amount, mut exp) = (self.mantissa, self.scale);
        while amount % 10 == 0 {
            amount /= 10;
            exp += 1;
        }
        // The exponent a multiple of 3 (Go's remainder keeps the sign).
        match exp % 3 {
            1 | -2 => {
                amount *= 10;
                exp -= 1;
            }
            2 | -1 => {
                amount *= 100;
                exp -= 2;
            }
            _ => {}
        }
        let suffix = match (format, exp) {
            (Format::DecimalExponent, 0) => String::new(),
            (Format::DecimalExponent, e) => format!("e{e}"),
            (_, e) => match e {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                0 => "",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                18 => "E",
                _ => return format!("{amount}e{e}"),
            }
            .to_string(),
        };
        format!("{amount}{suffix}")
    }
}

/// A quantity given as a JSON string or number.
pub fn of_value(v: &Value) -> Option<Quantity> {
    match v {
        Value::String(s) => Quantity::parse(s),
        Value::Number(n) => Quantity::parse(&n.to_string()),
        _ => None,
    }
}

fn check_map(v: &Value) -> Option<&'static str> {
    v.as_object()?.values().find_map(check_value)
}

fn check_value(v: &Value) -> Option<&'static str> {
    match v {
        Value::String(s) => problem(s),
        Value::Number(n) => problem(&n.to_string()),
        _ => None,
    }
}

fn check_resources(r: &Value) -> Option<&'static str> {
    check_map(&r["limits"]).or_else(|| check_map(&r["requests"]))
}

/// The first malformed quantity of a pod spec: container resources, pod
/// resources and overhead, `emptyDir.sizeLimit`, ephemeral claim templates.
pub fn pod_spec_problem(spec: &Value) -> Option<&'static str> {
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|f| spec[*f].as_array())
        .flatten()
        .find_map(|c| check_resources(&c["resources"]));
    let volumes = || {
        spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|v| {
                check_value(&v["emptyDir"]["sizeLimit"]).or_else(|| {
                    check_resources(&v["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"])
                })
            })
    };
    containers
        .or_else(|| check_resources(&spec["resources"]))
        .or_else(|| check_map(&spec["overhead"]))
        .or_else(volumes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_as_quantity_string_writes_it() {
        for (text, canonical) in [
            ("0", "0"),
            ("0Gi", "0"),
            ("1", "1"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("1.5", "1500m"),
            (".5", "500m"),
            ("470m", "470m"),
            ("0.1", "100m"),
            ("100", "100"),
            ("1000", "1k"),
            ("1717986920", "1717986920"),
            ("1717986919", "1717986919"),
            ("129M", "129M"),
            ("128974848", "128974848"),
            ("4Mi", "4Mi"),
            ("32Mi", "32Mi"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("1Ki", "1Ki"),
            ("512Ki", "512Ki"),
            ("1.5Ki", "1536"),
            ("0.5Ki", "512"),
            ("1e3", "1e3"),
            ("1E6", "1e6"),
            ("12e2", "1200"),
            ("1e-3", "1e-3"),
            ("-1", "-1"),
            ("-500m", "-500m"),
            ("+2", "2"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("1.0000000001", "1000000001n"),
            (" 2Gi ", "2Gi"),
        ] {
            let q = Quantity::parse(text).unwrap_or_else(|| panic!("{text:?} parses"));
            assert_eq!(q.canonical(), canonical, "{text:?}");
        }
        assert_eq!(Quantity::parse("1 Gi"), None);
    }

    #[test]
    fn comparisons_are_exact_across_suffixes() {
        let q = |t: &str| Quantity::parse(t).expect("a quantity");
        use std::cmp::Ordering::*;
        for (a, b, want) in [
            ("1", "1000m", Equal),
            ("1Gi", "1024Mi", Equal),
            ("1G", "1Gi", Less),
            ("470m", "460m", Greater),
            ("1717986920", "1717986919", Greater),
            ("1e3", "1k", Equal),
            ("-1", "0", Less),
            ("0.5", "512Mi", Less),
        ] {
            assert_eq!(q(a).compare(&q(b)), Some(want), "{a} vs {b}");
        }
        let sum = |a: &str, b: &str| q(a).add(&q(b)).expect("a sum").canonical();
        assert_eq!(sum("500m", "1.5"), "2");
        assert_eq!(sum("512Mi", "0.5Gi"), "1Gi");
        assert_eq!(sum("1", "-250m"), "750m");
    }

    #[test]
    fn quantities_as_parse_quantity_takes_them() {
        for ok in [
            "1",
            "0",
            "100m",
            "1.5",
            "1.",
            ".5",
            "2Gi",
            "128974848",
            "129e6",
            "129M",
            "1E",
            "+1k",
            "-1",
            " 1Gi ",
            "1e-3",
        ] {
            assert_eq!(problem(ok), None, "{ok:?}");
        }
        for bad in ["", "1 Gi", "1Gb", "1KB", "abc", "1..5", "1Gi2x"] {
            assert_eq!(problem(bad), Some(FORMAT_WRONG), "{bad:?}");
        }
        for bad in ["192i", "1GG", "1e", "1mi"] {
            assert_eq!(problem(bad), Some(BAD_SUFFIX), "{bad:?}");
        }
    }
}
