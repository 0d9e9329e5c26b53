//! Content negotiation for reads (get, list, watch): plain JSON, a
//! server-side `Table` (`as=Table;g=meta.k8s.io;v=v1`, what `kubectl get`
//! asks for) or `PartialObjectMetadata(List)` (metadata-only clients), and
//! the rewriting of watch streams into those forms.

// `ApiError` is a whole `Status` (about 160 bytes); errors are the cold path.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use actix_web::body::MessageBody;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::error::ApiError;
use super::resources::RESOURCES;
use super::table::{self, Include};

/// The read verbs that negotiate their output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Get,
    List,
    Watch,
}

/// The form of a read's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Plain,
    /// `meta.k8s.io/<v> Table`; the `&str` is the Table's apiVersion.
    Table(&'static str, Include),
    /// `PartialObjectMetadata(List)` of `meta.k8s.io/<v>`.
    Metadata(&'static str),
}

fn meta_version(params: &HashMap<String, String>) -> Option<&'static str> {
    if params.get("g").map(String::as_str) != Some("meta.k8s.io") {
        return None;
    }
    match params.get("v").map(String::as_str) {
        Some("v1") => Some("meta.k8s.io/v1"),
        Some("v1beta1") => Some("meta.k8s.io/v1beta1"),
        _ => None,
    }
}

/// Picks the answer's form from `Accept` (first acceptable media range, by
/// q-value then order) and `includeObject`. 406 when nothing is acceptable.
pub fn negotiate(
    req: &HttpRequest,
    q: &HashMap<String, String>,
    read: Read,
) -> Result<Output, ApiError> {
    let accept = req
        .headers()
        .get_all("accept")
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if accept.trim().is_empty() {
        return Ok(Output::Plain);
    }
    let mut ranges: Vec<(f32, String, HashMap<String, String>)> = accept
        .split(',')
        .map(|range| {
            let mut parts = range.split(';');
            let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let params: HashMap<String, String> = parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                .collect();
            let qv = params.get("q").and_then(|v| v.parse().ok()).unwrap_or(1.0);
            (qv, mime, params)
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (qv, mime, params) in &ranges {
        if *qv <= 0.0 || !matches!(mime.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        let Some(kind) = params.get("as") else {
            return Ok(Output::Plain);
        };
        let Some(version) = meta_version(params) else {
            continue;
        };
        match (kind.as_str(), read) {
            ("Table", _) => {
                let include = Include::parse(q.get("includeObject").map(String::as_str))
                    .map_err(ApiError::bad_request)?;
                return Ok(Output::Table(version, include));
            }
            ("PartialObjectMetadataList", Read::List)
            | ("PartialObjectMetadata", Read::Get | Read::Watch) => {
                return Ok(Output::Metadata(version))
            }
            _ => {}
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io (got {accept:?})"
    )))
}

fn json_body(v: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(serde_json::to_vec(v).unwrap_or_default())
}

/// A single object in the negotiated form (`out` is not `Plain`).
pub fn object(out: Output, res: usize, obj: &Value) -> HttpResponse {
    let rv = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
    match out {
        Output::Table(v, include) => json_body(&table::table(res, [obj], rv, include, v, true)),
        Output::Metadata(v) => json_body(&table::partial_metadata(obj, v)),
        Output::Plain => json_body(obj),
    }
}

/// A list page in the negotiated form; `meta` is the list's metadata.
pub fn list(out: Output, res: usize, items: &[&Value], meta: Value) -> HttpResponse {
    match out {
        Output::Table(v, include) => json_body(&table::table(
            res,
            items.iter().copied(),
            meta,
            include,
            v,
            true,
        )),
        Output::Metadata(v) => {
            let items: Vec<Value> = items
                .iter()
                .map(|o| table::partial_metadata(o, v))
                .collect();
            json_body(
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": v, "metadata": meta, "items": items}),
            )
        }
        Output::Plain => {
            #[derive(serde::Serialize)]
            struct List<'a> {
                kind: String,
                #[serde(rename = "apiVersion")]
                api_version: String,
                metadata: Value,
                items: &'a [&'a Value],
            }
            let r = &RESOURCES[res];
            let l = List {
                kind: r.list_kind(),
                api_version: r.api_version(),
                metadata: meta,
                items,
            };
            HttpResponse::Ok()
                .content_type("application/json")
                .body(serde_json::to_vec(&l).unwrap_or_default())
        }
    }
}

/// A list page of stored objects in the negotiated form: plain lists are
/// written from the stored JSON without decoding it.
pub fn list_stored(
    out: Output,
    res: usize,
    items: &[std::sync::Arc<crate::store::Stored>],
    meta: Value,
) -> HttpResponse {
    if out != Output::Plain {
        let values: Vec<Value> = items.iter().map(|o| o.value()).collect();
        let refs: Vec<&Value> = values.iter().collect();
        return list(out, res, &refs, meta);
    }
    #[derive(serde::Serialize)]
    struct Head {
        kind: String,
        #[serde(rename = "apiVersion")]
        api_version: String,
        metadata: Value,
    }
    let r = &RESOURCES[res];
    let head = Head {
        kind: r.list_kind(),
        api_version: r.api_version(),
        metadata: meta,
    };
    let mut buf = serde_json::to_vec(&head).unwrap_or_default();
    // `{…}` → `{…,"items":[…]}`
    buf.pop();
    buf.extend_from_slice(b",\"items\":[");
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(&o.json());
    }
    buf.extend_from_slice(b"]}");
    HttpResponse::Ok()
        .content_type("application/json")
        .body(buf)
}

/// Rewrites one watch event line; `first` tracks whether column
/// definitions were sent (the API server sends them on the first event only).
fn rewrite_event(line: &[u8], out: Output, res: usize, first: &mut bool) -> Bytes {
    let mut ev: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(_) => return Bytes::copy_from_slice(line),
    };
    let kind = ev["type"].as_str().unwrap_or("").to_string();
    let obj = ev["object"].take();
    ev["object"] = match (out, kind.as_str()) {
        (Output::Table(v, include), "ADDED" | "MODIFIED" | "DELETED") => {
            let rv = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
            let t = table::table(res, [&obj], rv, include, v, *first);
            *first = false;
            t
        }
        (Output::Metadata(v), "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK") => {
            table::partial_metadata(&obj, v)
        }
        _ => obj,
    };
    let mut buf = serde_json::to_vec(&ev).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

/// Wraps a watch response (one JSON event per line) so that each event's
/// object is in the negotiated form.
pub fn watch(out: Output, res: usize, resp: HttpResponse) -> HttpResponse {
    if out == Output::Plain {
        return resp;
    }
    let mut builder = HttpResponse::build(resp.status());
    for (k, v) in resp.headers() {
        builder.insert_header((k.clone(), v.clone()));
    }
    struct St {
        body: actix_web::body::BoxBody,
        buf: Vec<u8>,
        first: bool,
        done: bool,
    }
    let st = St {
        body: resp.into_body(),
        buf: Vec::new(),
        first: true,
        done: false,
    };
    let stream = futures::stream::unfold(st, move |mut st| async move {
        loop {
            if let Some(pos) = st.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = st.buf.drain(..=pos).collect();
                let text = &line[..line.len() - 1];
                if text.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let b = rewrite_event(text, out, res, &mut st.first);
                return Some((Ok::<_, actix_web::Error>(b), st));
            }
            if st.done {
                if st.buf.is_empty() {
                    return None;
                }
                let rest = std::mem::take(&mut st.buf);
                let b = rewrite_event(&rest, out, res, &mut st.first);
                return Some((Ok(b), st));
            }
            let next =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut st.body).poll_next(cx)).await;
            match next {
                Some(Ok(chunk)) => st.buf.extend_from_slice(&chunk),
                Some(Err(_)) | None => st.done = true,
            }
        }
    });
    builder.streaming(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn pick(accept: &str, read: Read) -> Result<Output, u16> {
        let req = TestRequest::default()
            .insert_header(("accept", accept))
            .to_http_request();
        negotiate(&req, &HashMap::new(), read).map_err(|e| e.code)
    }

    #[test]
    fn kubectl_get_accept_header_selects_a_v1_table() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            pick(a, Read::List),
            Ok(Output::Table("meta.k8s.io/v1", Include::Metadata))
        );
        assert_eq!(pick("application/json", Read::List), Ok(Output::Plain));
        assert_eq!(pick("*/*", Read::Get), Ok(Output::Plain));
        assert_eq!(
            pick(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                Read::List
            ),
            Ok(Output::Metadata("meta.k8s.io/v1"))
        );
        assert_eq!(
            pick(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                Read::Get
            ),
            Err(406)
        );
        assert_eq!(
            pick("application/vnd.kubernetes.protobuf", Read::Get),
            Err(406)
        );
    }
}
