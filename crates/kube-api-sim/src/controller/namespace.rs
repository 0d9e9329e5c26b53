//! The namespace controller: a `Terminating` namespace has its contents
//! deleted (Background propagation, pods gracefully, finalizers honoured);
//! once nothing is left its `kubernetes` finalizer is removed and the
//! namespace is gone (pkg/controller/namespace).

use super::{deleting, Controller};
use crate::resources::NAMESPACES;
use crate::store::DeleteOptions;

impl Controller {
    pub(super) fn reconcile_namespace(&mut self, name: &str) {
        let Ok(ns) = self.store().get(NAMESPACES, "", name) else {
            self.terminating.remove(name);
            return;
        };
        if !deleting(&ns) {
            self.terminating.remove(name);
            return;
        }
        let contents = self.store().namespace_contents(name);
        let opts = DeleteOptions {
            propagation: Some("Background".into()),
            ..Default::default()
        };
        for (res, obj, being_deleted) in &contents {
            if !being_deleted {
                let _ = self.store().delete(*res, name, obj, &opts);
            }
        }
        if contents.is_empty() {
            self.store().system_write(NAMESPACES, "", name, |n| {
                if let Some(f) = n["spec"]["finalizers"].as_array_mut() {
                    f.retain(|x| x != "kubernetes");
                }
            });
        }
    }
}
