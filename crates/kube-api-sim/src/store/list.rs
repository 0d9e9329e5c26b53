//! Lists: one page of one type, read at the newest state or at an exact
//! earlier resourceVersion (rebuilt from the retained history), with
//! `limit`/`continue` pages that all read the first page's snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::{EventType, Inner, ListPage, Store, Stored};
use crate::error::ApiError;
use crate::resources::RESOURCES;
use crate::selector::{FieldSelector, LabelSelector};

/// Which state a list reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListAt {
    /// The newest state.
    Latest,
    /// The state exactly at this resourceVersion (`resourceVersionMatch=Exact`,
    /// or a legacy paged list with a resourceVersion).
    Exact(u64),
}

/// The message of a real API server's 410 for an Exact list at a compacted
/// resourceVersion (apiserver `storage/etcd3`).
const TOO_OLD: &str = "The resourceVersion for the provided list is too old.";
const CONTINUE_TOO_OLD: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";

type View = BTreeMap<(String, String), Arc<Stored>>;

impl Store {
    /// `LIST` objects of one type, in one namespace or (None) all, at the
    /// newest state.
    pub fn list(
        &self,
        res_id: usize,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<ListPage, ApiError> {
        self.list_at(
            res_id,
            ns,
            labels,
            fields,
            limit,
            continue_token,
            ListAt::Latest,
        )
    }

    /// `LIST` at `at`; a continue token reads the snapshot its first page read.
    #[allow(clippy::too_many_arguments)]
    pub fn list_at(
        &self,
        res_id: usize,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
        at: ListAt,
    ) -> Result<ListPage, ApiError> {
        let g = self.lock();
        let (start_after, list_rv) = match (continue_token, at) {
            (Some(tok), _) => {
                let (rv, key) = decode_continue(tok)?;
                if rv < g.oldest_rv || rv > g.rv {
                    return Err(ApiError::expired(CONTINUE_TOO_OLD));
                }
                (Some(key), rv)
            }
            (None, ListAt::Latest) => (None, g.rv),
            (None, ListAt::Exact(rv)) => {
                if rv < g.oldest_rv {
                    return Err(ApiError::expired(TOO_OLD));
                }
                if rv > g.rv {
                    return Err(ApiError::resource_version_too_large(rv, g.rv));
                }
                (None, rv)
            }
        };
        if let Some(ns) = ns {
            // Listing an unknown namespace is an empty list, as in Kubernetes.
            if let Err(e) = Self::check_namespace(&g, &RESOURCES[res_id], ns) {
                if e.code != 404 {
                    return Err(e);
                }
            }
        }
        let rewound = (list_rv < g.rv).then(|| rewind(&g, res_id, ns, list_rv));
        let lower = (res_id, String::new(), String::new());
        let upper = (res_id + 1, String::new(), String::new());
        let entries: Box<dyn Iterator<Item = (&String, &String, &Arc<Stored>)>> = match &rewound {
            Some(view) => Box::new(view.iter().map(|((ons, name), o)| (ons, name, o))),
            None => Box::new(
                g.objects
                    .range(lower..upper)
                    .map(|((_, ons, name), o)| (ons, name, o)),
            ),
        };
        let mut items = Vec::new();
        let mut last_key = None;
        let mut remaining = 0u64;
        for (ons, oname, obj) in entries {
            if ns.is_some_and(|ns| ons != ns) {
                continue;
            }
            if let Some(after) = &start_after {
                if (ons.as_str(), oname.as_str()) <= (after.0.as_str(), after.1.as_str()) {
                    continue;
                }
            }
            if !labels.matches_stored(obj) || !fields.matches_stored(obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            last_key = Some((ons.clone(), oname.clone()));
            items.push(obj.clone());
        }
        let continue_token = if remaining > 0 {
            last_key.map(|k| encode_continue(list_rv, &k))
        } else {
            None
        };
        Ok(ListPage {
            items,
            resource_version: list_rv,
            continue_token,
            remaining: (remaining > 0).then_some(remaining),
        })
    }

    /// Waits (at most `limit`) until the store has reached resourceVersion
    /// `rv`, as the API server's watch cache waits for a version it has not
    /// seen yet. True if it has.
    pub async fn wait_for_rv(&self, rv: u64, limit: Duration) -> bool {
        let mut rx = self.tx.subscribe();
        if self.current_rv() >= rv {
            return true;
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(c)) if c.rv >= rv => return true,
                Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {
                    if self.current_rv() >= rv {
                        return true;
                    }
                }
                Ok(Err(RecvError::Closed)) | Err(_) => return self.current_rv() >= rv,
            }
        }
    }
}

/// The objects of one type as they were at `rv`: the current ones with every
/// later change undone (the history holds all of them: `rv >= oldest_rv`).
fn rewind(g: &Inner, res_id: usize, ns: Option<&str>, rv: u64) -> View {
    let lower = (res_id, String::new(), String::new());
    let upper = (res_id + 1, String::new(), String::new());
    let mut view: View = g
        .objects
        .range(lower..upper)
        .filter(|((_, ons, _), _)| ns.is_none_or(|n| n == ons))
        .map(|((_, ons, name), o)| ((ons.clone(), name.clone()), o.clone()))
        .collect();
    for c in g.history.iter().rev().take_while(|c| c.rv > rv) {
        let o = &c.object;
        if o.res != res_id || ns.is_some_and(|n| n != &*o.namespace) {
            continue;
        }
        let key = (o.namespace.to_string(), o.name.to_string());
        match (c.kind, &c.old) {
            (EventType::Added, _) => {
                view.remove(&key);
            }
            (_, Some(old)) => {
                view.insert(key, old.clone());
            }
            (_, None) => {}
        }
    }
    view
}

fn encode_continue(rv: u64, key: &(String, String)) -> String {
    use base64::Engine;
    let raw = json!({"v": "sim.continue/1", "rv": rv, "ns": key.0, "name": key.1}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(tok: &str) -> Result<(u64, (String, String)), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request("continue key is not valid: invalid continue token");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let ns = v["ns"].as_str().ok_or_else(bad)?.to_string();
    let name = v["name"].as_str().ok_or_else(bad)?.to_string();
    Ok((rv, (ns, name)))
}
