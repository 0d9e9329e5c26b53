//! Deletion: finalizers, propagation policies (Background, Foreground,
//! Orphan) and garbage collection of dependents through ownerReferences.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{meta_str, now_rfc3339, DeleteOptions, EventType, Inner, Key, Record, Store, Stored};
use crate::error::ApiError;
use crate::resources::{NAMESPACES, PODS, RESOURCES};
use crate::selector::{FieldSelector, LabelSelector};

/// A pod's grace period as the pod registry's `CheckGracefulDelete` sets
/// it: the one asked for, else `terminationGracePeriodSeconds`; 0 for a pod
/// never scheduled or already terminated; a negative one becomes 1.
fn pod_grace_period(pod: &Value, asked: Option<i64>) -> i64 {
    let period = asked
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(0);
    let scheduled = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let terminal = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !scheduled || terminal {
        0
    } else if period < 0 {
        1
    } else {
        period
    }
}

impl Store {
    /// Removes an object now, publishes `DELETED`, and garbage-collects its
    /// dependents (background). Returns the deleted state.
    pub(super) fn remove_locked(&self, g: &mut Inner, key: &Key) -> Option<Arc<Value>> {
        let old = g.take(key)?;
        g.rv += 1;
        let rv = g.rv;
        let mut last = old.value();
        last["metadata"]["resourceVersion"] = json!(rv.to_string());
        let stored = self.encode(key, &last, rv, old.created_rv);
        self.publish(
            g,
            Record {
                rv,
                kind: EventType::Deleted,
                object: stored,
                old: Some(old.clone()),
            },
        );
        if key.0 == NAMESPACES {
            let in_ns: Vec<Key> = g
                .objects
                .keys()
                .filter(|(r, ons, _)| RESOURCES[*r].namespaced && *ons == key.2)
                .cloned()
                .collect();
            for k in in_ns {
                self.remove_locked(g, &k);
            }
        }
        if !old.uid.is_empty() {
            self.collect_dependents(g, &old.uid, &key.1, false);
        }
        if key.0 == crate::resources::PODS {
            if let Ok(mut logs) = self.logs.lock() {
                logs.remove(&(key.1.clone(), key.2.clone()));
            }
        }
        self.release_foreground_owners(g, &old);
        Some(Arc::new(last))
    }

    /// When the last dependent of an owner deleted in the foreground is
    /// gone, the owner's `foregroundDeletion` finalizer is removed (and so
    /// the owner), as the garbage collector does.
    fn release_foreground_owners(&self, g: &mut Inner, removed: &Stored) {
        for owner in removed.owners.iter() {
            if g.has_dependents(&owner.uid) {
                continue;
            }
            let Some(key) = find_owner(g, owner, &removed.namespace) else {
                continue;
            };
            let Some(cur) = g.objects.get(&key).map(|o| o.value()) else {
                continue;
            };
            let waiting = cur["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "foregroundDeletion"));
            if waiting {
                let mut done = cur;
                if let Some(f) = done["metadata"]["finalizers"].as_array_mut() {
                    f.retain(|x| x != "foregroundDeletion");
                }
                self.write_locked(g, &key, done);
            }
        }
    }

    /// Deletes (or, with `orphan`, releases) the objects owned by `uid`.
    fn collect_dependents(&self, g: &mut Inner, uid: &str, ns: &str, orphan: bool) {
        let dependents: Vec<Key> = g
            .dependents_of(uid)
            .into_iter()
            .filter(|(r, ons, _)| !RESOURCES[*r].namespaced || ons == ns)
            .collect();
        for k in dependents {
            let Some(obj) = g.value(&k) else {
                continue;
            };
            let refs = obj["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let others: Vec<Value> = refs.into_iter().filter(|o| o["uid"] != uid).collect();
            if orphan || !others.is_empty() {
                let mut n = (*obj).clone();
                if others.is_empty() {
                    if let Some(m) = n["metadata"].as_object_mut() {
                        m.remove("ownerReferences");
                    }
                } else {
                    n["metadata"]["ownerReferences"] = Value::Array(others);
                }
                let _ = self.update_locked(g, &k, obj, n, false, false);
            } else if obj["metadata"].get("deletionTimestamp").is_none() {
                // The garbage collector deletes dependents as a client
                // would: pods gracefully, finalizers honoured.
                self.delete_locked(g, &k, obj, "Background", None);
            }
        }
    }

    /// `DELETE` one object.
    pub fn delete(
        &self,
        res_id: usize,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Arc<Value>, ApiError> {
        let res = &RESOURCES[res_id];
        if res_id == NAMESPACES && matches!(name, "default" | "kube-system" | "kube-public") {
            let mut e = ApiError::bad_request(format!(
                "namespace {name:?} is forbidden: this namespace may not be deleted"
            ));
            e.code = 403;
            e.reason = "Forbidden";
            return Err(e);
        }
        let mut g = self.lock();
        let key = Self::key(res_id, ns, name);
        let cur = g.value(&key).ok_or_else(|| Self::not_found(res, name))?;
        if let Some(uid) = &opts.precondition_uid {
            if Some(uid.as_str()) != meta_str(&cur, "uid") {
                return Err(ApiError::conflict(
                    res.plural,
                    res.group,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&cur, "uid").unwrap_or("")
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.precondition_rv {
            if Some(rv.as_str()) != meta_str(&cur, "resourceVersion") {
                return Err(ApiError::conflict(res.plural, res.group, name, &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", meta_str(&cur, "resourceVersion").unwrap_or(""))));
            }
        }
        let policy = match opts.propagation.as_deref() {
            Some(p @ ("Background" | "Foreground" | "Orphan")) => p.to_string(),
            Some(other) => {
                return Err(ApiError::invalid(
                    "DeleteOptions",
                    "",
                    "",
                    vec![crate::error::Cause::not_supported(
                        "propagationPolicy",
                        other,
                        &["Foreground", "Background", "Orphan"],
                    )],
                ))
            }
            // batch/v1 Jobs orphan their pods by default, for compatibility;
            // clients that want cascading deletion must ask for it.
            None if res_id == crate::resources::JOBS => "Orphan".to_string(),
            None => "Background".to_string(),
        };
        if opts.dry_run {
            return Ok(cur);
        }
        self.delete_locked(&mut g, &key, cur, &policy, opts.grace_period_seconds)
            .ok_or_else(|| Self::not_found(res, name))
    }

    /// Deletes the stored object `cur` at `key` with a propagation policy
    /// and (pods) a grace period. Returns the state the answer shows: the
    /// object marked for deletion, or its last state if it is gone.
    pub(super) fn delete_locked(
        &self,
        g: &mut Inner,
        key: &Key,
        cur: Arc<Value>,
        policy: &str,
        grace: Option<i64>,
    ) -> Option<Arc<Value>> {
        let uid = meta_str(&cur, "uid").unwrap_or("").to_string();
        if key.0 == NAMESPACES {
            return Some(self.terminate_namespace(g, key, cur));
        }
        if policy == "Orphan" {
            self.collect_dependents(g, &uid, &key.1, true);
        }
        if policy == "Foreground" {
            // Mark the owner, delete its dependents, then the owner (the
            // foregroundDeletion finalizer is removed at once: the
            // simulator collects dependents synchronously).
            let mut marked = (*cur).clone();
            if marked["metadata"].get("deletionTimestamp").is_none() {
                marked["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            }
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            let mut fin = marked["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            fin.push(json!("foregroundDeletion"));
            marked["metadata"]["finalizers"] = Value::Array(fin);
            let marked = self.write_locked(g, key, marked);
            // Dependents that go at once release the owner right away
            // (release_foreground_owners); terminating ones when they go.
            self.collect_dependents(g, &uid, &key.1, false);
            if let Some(now) = g.value(key) {
                if !g.has_dependents(&uid) {
                    let mut done = (*now).clone();
                    if let Some(f) = done["metadata"]["finalizers"].as_array_mut() {
                        f.retain(|x| x != "foregroundDeletion");
                    }
                    return Some(self.write_locked(g, key, done));
                }
                return Some(now);
            }
            return Some(marked);
        }
        let period = if key.0 == PODS {
            pod_grace_period(&cur, grace)
        } else {
            0
        };
        let pending = cur["metadata"]["deletionGracePeriodSeconds"].as_i64();
        if period > 0 {
            // Graceful: the kubelet stops the pod and deletes it with
            // grace 0 once its containers ended. A second delete may only
            // shorten the period.
            if pending.is_some_and(|p| p <= period) {
                return Some(cur);
            }
            let mut marked = (*cur).clone();
            let at = chrono::Utc::now() + chrono::Duration::seconds(period);
            marked["metadata"]["deletionTimestamp"] =
                json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(period);
            return Some(self.write_locked(g, key, marked));
        }
        let has_finalizers = cur["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if pending == Some(0) {
                return Some(cur);
            }
            let mut marked = (*cur).clone();
            if marked["metadata"].get("deletionTimestamp").is_none() {
                marked["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            }
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            return Some(self.write_locked(g, key, marked));
        }
        self.remove_locked(g, key)
    }

    /// A namespace delete: the namespace turns `Terminating` and stays
    /// until the namespace controller has deleted its contents and removed
    /// its `kubernetes` finalizer.
    fn terminate_namespace(&self, g: &mut Inner, key: &Key, cur: Arc<Value>) -> Arc<Value> {
        if cur["metadata"].get("deletionTimestamp").is_some() {
            return cur;
        }
        let mut marked = (*cur).clone();
        marked["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        marked["status"]["phase"] = json!("Terminating");
        self.write_locked(g, key, marked)
    }

    /// `DELETECOLLECTION`: deletes every matching object; returns them.
    pub fn delete_collection(
        &self,
        res_id: usize,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        opts: &DeleteOptions,
    ) -> Result<Vec<Arc<Value>>, ApiError> {
        let page = self.list(res_id, ns, labels, fields, None, None)?;
        let mut out = Vec::new();
        for obj in page.items {
            match self.delete(res_id, &obj.namespace, &obj.name, opts) {
                Ok(o) => out.push(o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// The object an owner reference names: same namespace as its dependent
/// (or cluster-scoped), kind, name and uid.
fn find_owner(g: &Inner, owner: &super::Owner, ns: &str) -> Option<Key> {
    RESOURCES
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == &*owner.kind)
        .map(|(i, r)| {
            let ns = if r.namespaced { ns } else { "" };
            (i, ns.to_string(), owner.name.to_string())
        })
        .find(|k| g.objects.get(k).is_some_and(|o| o.uid == owner.uid))
}
