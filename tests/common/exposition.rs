//! A strict reader of the Prometheus/OpenMetrics text exposition that
//! `GET /metrics` serves, so tests compare exact sample values instead of
//! searching the text (where a HELP line would match too).
//!
//! It reads `# HELP`, `# TYPE`, `# UNIT` and `# EOF` lines and samples
//! `name{label="value",...} value [timestamp]`, with the format's escapes in
//! label values (`\\`, `\"`, `\n`). Anything else is an error naming the
//! line: a malformed exposition is a failure of the service.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of one exposition, and each family's declared type.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name → `counter`, `gauge`, `histogram`, ….
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    /// Parses `text`; any line that is not valid exposition is an error
    /// naming it.
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut out = Exposition::default();
        let mut ended = false;
        for (i, line) in text.lines().enumerate() {
            let at = || format!("line {}: {line:?}", i + 1);
            if ended {
                return Err(format!("content after # EOF at {}", at()));
            }
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut parts = comment.trim_start().splitn(3, ' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("EOF"), None, None) => ended = true,
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        out.types.insert(name.to_string(), kind.trim().to_string());
                    }
                    (Some("HELP" | "UNIT"), Some(_), _) => {}
                    _ => return Err(format!("unknown comment at {}", at())),
                }
                continue;
            }
            out.samples
                .push(parse_sample(line).map_err(|e| format!("{e} at {}", at()))?);
        }
        Ok(out)
    }

    /// The value of the sample `name` whose labels are exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// Samples of `name`, keyed by the value of their label `key`.
    /// The samples of `name` summed by the value of label `key` (over any
    /// other labels: e.g. decisions over every source).
    pub fn by_label(&self, name: &str, key: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.samples.iter().filter(|s| s.name == name) {
            *out.entry(s.labels.get(key).cloned().unwrap_or_default())
                .or_insert(0.0) += s.value;
        }
        out
    }

    /// Samples of `name` whose labels include every pair of `filter`.
    pub fn matching(&self, name: &str, filter: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && filter
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }
}

fn is_name_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .char_indices()
        .find(|&(i, c)| !is_name_char(c, i == 0))
        .map_or(line.len(), |(i, _)| i);
    if name_end == 0 {
        return Err("a sample must start with a metric name".into());
    }
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(body)?;
        labels = parsed;
        rest = after;
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or("a space must separate the sample from its value")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    // value [timestamp] [# exemplar]
    let (value, tail) = match fields.as_slice() {
        [value, tail @ ..] => (*value, tail),
        [] => return Err("a sample needs a value".into()),
    };
    let tail = match tail {
        [ts, more @ ..] if ts.parse::<f64>().is_ok() => more,
        more => more,
    };
    if !(tail.is_empty() || tail[0] == "#") {
        return Err(format!("unexpected {tail:?} after the value"));
    }
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// Parses `k="v",...}` and returns the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("a label needs '='")?;
        let key = &s[..eq];
        if key.is_empty()
            || !key
                .chars()
                .enumerate()
                .all(|(i, c)| is_name_char(c, i == 0))
        {
            return Err(format!("bad label name {key:?}"));
        }
        let mut chars = s[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("the value of label {key} must be quoted"));
        }
        let mut value = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = Some(eq + 1 + i + 1);
                    break;
                }
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => return Err(format!("bad escape \\{other:?} in label {key}")),
                },
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("unterminated value of label {key}"))?;
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("label {key} appears twice"));
        }
        s = &s[end..];
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err(format!("',' or '}}' must follow the value of label {key}"));
        }
    }
}
