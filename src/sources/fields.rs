//! Field-by-field validation of JSON request bodies, so a bad document is
//! answered 422 with *every* problem named by its field path.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// One field problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON path of the field, e.g. `repository.url` or `markdown_files[2].filename`.
    pub field: String,
    pub message: String,
}

/// Collects field problems while reading an object.
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: String,
    pub errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    /// Reads `v` as an object (an error at `prefix` otherwise).
    pub fn new(v: &'a Value, prefix: &str) -> Result<Self, FieldError> {
        match v.as_object() {
            Some(obj) => Ok(Fields {
                obj,
                prefix: prefix.to_string(),
                errors: Vec::new(),
            }),
            None => Err(FieldError {
                field: if prefix.is_empty() {
                    "(body)".into()
                } else {
                    prefix.into()
                },
                message: "must be a JSON object".into(),
            }),
        }
    }

    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        let field = self.path(name);
        self.errors.push(FieldError {
            field,
            message: message.into(),
        });
    }

    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    /// Rejects keys not in `known`.
    pub fn only(&mut self, known: &[&str]) {
        let unknown: Vec<String> = self
            .obj
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in unknown {
            self.error(&k, "unknown field");
        }
    }

    /// An optional string of at most `max` bytes.
    pub fn opt_str(&mut self, name: &str, max: usize) -> Option<String> {
        match self.get(name) {
            None => None,
            Some(Value::String(s)) if s.len() <= max => Some(s.clone()),
            Some(Value::String(_)) => {
                self.error(name, format!("must be at most {max} bytes"));
                None
            }
            Some(_) => {
                self.error(name, "must be a string");
                None
            }
        }
    }

    /// A required non-blank string of at most `max` bytes.
    pub fn req_str(&mut self, name: &str, max: usize) -> Option<String> {
        let v = self.opt_str(name, max);
        match v {
            Some(s) if !s.trim().is_empty() => Some(s),
            Some(_) => {
                self.error(name, "must not be empty");
                None
            }
            None if self.get(name).is_none() => {
                self.error(name, "is required");
                None
            }
            None => None,
        }
    }

    /// An optional integer within `range`.
    pub fn opt_int(&mut self, name: &str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
        match self.get(name) {
            None => None,
            Some(v) => match v.as_i64() {
                Some(n) if range.contains(&n) => Some(n),
                _ => {
                    self.error(
                        name,
                        format!(
                            "must be an integer from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    );
                    None
                }
            },
        }
    }

    /// An optional string or integer, as a string (ids come both ways).
    pub fn opt_id(&mut self, name: &str) -> Option<String> {
        match self.get(name) {
            None => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Some(s.clone()),
            Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
            Some(_) => {
                self.error(
                    name,
                    "must be a non-negative integer or a string of 1 to 64 characters",
                );
                None
            }
        }
    }

    /// An optional array.
    pub fn opt_array(&mut self, name: &str, max: usize) -> Option<&'a Vec<Value>> {
        match self.get(name) {
            None => None,
            Some(Value::Array(a)) if a.len() <= max => Some(a),
            Some(Value::Array(_)) => {
                self.error(name, format!("must have at most {max} items"));
                None
            }
            Some(_) => {
                self.error(name, "must be an array");
                None
            }
        }
    }

    /// An optional object whose values are strings.
    pub fn opt_string_map(&mut self, name: &str, max: usize) -> Option<Vec<(String, String)>> {
        match self.get(name) {
            None => None,
            Some(Value::Object(m)) if m.len() <= max => {
                let mut out = Vec::new();
                for (k, v) in m {
                    match v.as_str() {
                        Some(s) if k.len() <= 63 && s.len() <= 256 => {
                            out.push((k.clone(), s.to_string()))
                        }
                        _ => self.error(
                            &format!("{name}.{k}"),
                            "keys must be ≤ 63 and values strings ≤ 256 bytes",
                        ),
                    }
                }
                Some(out)
            }
            Some(Value::Object(_)) => {
                self.error(name, format!("must have at most {max} entries"));
                None
            }
            Some(_) => {
                self.error(name, "must be an object of strings");
                None
            }
        }
    }

    /// Takes the errors of a nested reader.
    pub fn absorb(&mut self, nested: Fields<'_>) {
        self.errors.extend(nested.errors);
    }
}
