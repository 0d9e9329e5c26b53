//! Just enough of Kubernetes' protobuf encoding to read the review requests
//! kubectl sends that way (`kubectl auth can-i` posts a protobuf
//! `SelfSubjectAccessReview`). The body is the `k8s\0` magic followed by a
//! `runtime.Unknown` whose field 2 holds the object; only the string fields of
//! the review specs are decoded, into the JSON shape the handlers read.
//! (The stored types go through [`crate::protobuf`] and the vendored `.proto`
//! files, which do not include the authorization/authentication groups.)

use serde_json::{json, Map, Value};

/// One decoded field: number and payload (varints are skipped).
type Fields<'a> = Vec<(u64, &'a [u8])>;

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// The length-delimited fields of one message.
fn fields(buf: &[u8]) -> Result<Fields<'_>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        match key & 7 {
            0 => {
                varint(buf, &mut pos)?;
            }
            1 => pos += 8,
            5 => pos += 4,
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|e| e.to_string())?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len());
                let end = end.ok_or("truncated field")?;
                out.push((key >> 3, &buf[pos..end]));
                pos = end;
            }
            w => return Err(format!("unsupported wire type {w}")),
        }
    }
    if pos > buf.len() {
        return Err("truncated message".into());
    }
    Ok(out)
}

fn field<'a>(f: &Fields<'a>, n: u64) -> Option<&'a [u8]> {
    f.iter().rev().find(|(k, _)| *k == n).map(|(_, v)| *v)
}

fn strings(buf: &[u8], names: &[(u64, &str)]) -> Result<Value, String> {
    let f = fields(buf)?;
    let mut m = Map::new();
    for (n, name) in names {
        if let Some(b) = field(&f, *n) {
            m.insert((*name).into(), json!(String::from_utf8_lossy(b)));
        }
    }
    Ok(Value::Object(m))
}

/// Decodes a protobuf review body into the JSON the handlers expect.
pub fn decode_review(body: &[u8], kind: &str) -> Result<Value, String> {
    let unknown = body
        .strip_prefix(b"k8s\0")
        .ok_or("missing the k8s protobuf magic prefix")?;
    let outer = fields(unknown)?;
    let raw = field(&outer, 2).ok_or("no object in the protobuf envelope")?;
    let obj = fields(raw)?;
    let spec = fields(field(&obj, 2).unwrap_or_default())?;
    let spec = match kind {
        "SelfSubjectAccessReview" => {
            let mut s = Map::new();
            if let Some(r) = field(&spec, 1) {
                let attrs = strings(
                    r,
                    &[
                        (1, "namespace"),
                        (2, "verb"),
                        (3, "group"),
                        (4, "version"),
                        (5, "resource"),
                        (6, "subresource"),
                        (7, "name"),
                    ],
                )?;
                s.insert("resourceAttributes".into(), attrs);
            }
            if let Some(r) = field(&spec, 2) {
                let attrs = strings(r, &[(1, "path"), (2, "verb")])?;
                s.insert("nonResourceAttributes".into(), attrs);
            }
            Value::Object(s)
        }
        "SelfSubjectRulesReview" => match field(&spec, 1) {
            Some(ns) => json!({"namespace": String::from_utf8_lossy(ns)}),
            None => json!({}),
        },
        _ => json!({}),
    };
    Ok(json!({"kind": kind, "spec": spec}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(n << 3 | 2) as u8, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_an_access_review() {
        let attrs = [
            ld(1, b"default"),
            ld(2, b"create"),
            ld(3, b"batch"),
            ld(5, b"jobs"),
        ]
        .concat();
        let spec = ld(1, &attrs);
        let obj = [ld(1, b""), ld(2, &spec)].concat();
        let body = [b"k8s\0".to_vec(), ld(1, b""), ld(2, &obj)].concat();
        let v = decode_review(&body, "SelfSubjectAccessReview").unwrap();
        assert_eq!(v["spec"]["resourceAttributes"]["verb"], "create");
        assert_eq!(v["spec"]["resourceAttributes"]["group"], "batch");
        assert_eq!(v["spec"]["resourceAttributes"]["namespace"], "default");
        assert!(decode_review(b"{}", "SelfSubjectAccessReview").is_err());
        assert!(decode_review(b"k8s\0\x12\x7f", "SelfSubjectAccessReview").is_err());
    }
}
