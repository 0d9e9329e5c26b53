//! Server-side printing: the `meta.k8s.io/v1 Table` the API server answers
//! when a client (`kubectl get`) asks for `as=Table`. Columns and cells follow
//! the built-in printers of the real API server; priority-1 columns are the
//! ones `kubectl get -o wide` adds. The cells come from [`super::printers`].

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::printers::cells;
use super::resources;

/// What each row's `object` holds (`includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(v: Option<&str>) -> Result<Include, String> {
        match v.unwrap_or("") {
            "" | "Metadata" => Ok(Include::Metadata),
            "None" => Ok(Include::None),
            "Object" => Ok(Include::Object),
            other => Err(format!(
                "includeObject: Unsupported value: {other:?}: supported values: \"Metadata\", \"None\", \"Object\""
            )),
        }
    }
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated.";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";

fn col(name: &str, ty: &str, priority: u8, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

/// The column definitions of a type.
pub fn columns(res: usize) -> Vec<Value> {
    let name = col("Name", "string", 0, NAME_DOC);
    let age = col("Age", "string", 0, AGE_DOC);
    match res {
        resources::JOBS => vec![
            name,
            col("Status", "string", 0, "Status of the job."),
            col("Completions", "string", 0, "The desired number of successfully finished pods the job should be run with."),
            col("Duration", "string", 0, "Time required to complete the job."),
            age,
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "A label query over pods that should match the pod count."),
        ],
        resources::PODS => vec![
            name,
            col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", 0, "The aggregate status of the containers in this pod."),
            col("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            age,
            col("IP", "string", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
            col("Node", "string", 1, "NodeName is a request to schedule this pod onto a specific node."),
            col("Nominated Node", "string", 1, "nominatedNodeName is set when this pod preempts other pods on the node."),
            col("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
        ],
        resources::NAMESPACES => vec![
            name,
            col("Status", "string", 0, "The status of the namespace"),
            age,
        ],
        resources::CONFIGMAPS => vec![
            name,
            col("Data", "string", 0, "Data contains the configuration data."),
            age,
        ],
        resources::SECRETS => vec![
            name,
            col("Type", "string", 0, "Used to facilitate programmatic handling of secret data."),
            col("Data", "string", 0, "Data contains the secret data."),
            age,
        ],
        resources::LEASES => vec![
            name,
            col("Holder", "string", 0, "holderIdentity contains the identity of the holder of a current lease."),
            age,
        ],
        resources::LOCALQUEUES => vec![
            name,
            col("ClusterQueue", "string", 0, "Backing ClusterQueue"),
            col("Pending Workloads", "integer", 0, "Number of pending workloads"),
            col("Admitted Workloads", "integer", 0, "Number of admitted workloads that haven't finished yet."),
        ],
        resources::CLUSTERQUEUES => vec![
            name,
            col("Cohort", "string", 0, "Cohort that this ClusterQueue belongs to"),
            col("Strategy", "string", 1, "The queueing strategy used to prioritize workloads"),
            col("Pending Workloads", "integer", 0, "Number of pending workloads"),
            col("Admitted Workloads", "integer", 1, "Number of admitted workloads that haven't finished yet"),
        ],
        resources::WORKLOADPRIORITYCLASSES => vec![
            name,
            col("Value", "integer", 0, "Value of workloadPriorityClass's Priority"),
            age,
        ],
        resources::EVENTS => vec![
            col("Last Seen", "string", 0, "The time at which the most recent occurrence of this event was recorded."),
            col("Type", "string", 0, "Type of this event (Normal, Warning)."),
            col("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            col("Object", "string", 0, "The object that this event is about."),
            col("Message", "string", 0, "A human-readable description of the status of this operation."),
            col("Count", "string", 1, "The number of times this event has occurred."),
            col("Name", "string", 1, NAME_DOC),
        ],
        _ => vec![name, age],
    }
}

/// `PartialObjectMetadata` of `meta.k8s.io/<version>` for an object.
pub fn partial_metadata(obj: &Value, meta_api_version: &str) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": meta_api_version, "metadata": obj["metadata"]})
}

/// One row: cells, row conditions (`Completed` for finished pods), object.
pub fn row(
    res: usize,
    obj: &Value,
    include: Include,
    meta_api_version: &str,
    now: DateTime<Utc>,
) -> Value {
    let mut r = Map::new();
    r.insert("cells".into(), Value::Array(cells(res, obj, now)));
    let phase = obj["status"]["phase"].as_str().unwrap_or("");
    let why = match phase {
        "Succeeded" => "The pod has completed successfully.",
        _ => "The pod failed.",
    };
    if res == resources::PODS && matches!(phase, "Succeeded" | "Failed") {
        let c = json!([{"type": "Completed", "status": "True", "reason": phase, "message": why}]);
        r.insert("conditions".into(), c);
    }
    match include {
        Include::None => {}
        Include::Metadata => {
            r.insert("object".into(), partial_metadata(obj, meta_api_version));
        }
        Include::Object => {
            r.insert("object".into(), obj.clone());
        }
    }
    Value::Object(r)
}

/// A whole Table. `list_meta` is the list's metadata (or `{resourceVersion}`
/// for a single object); `with_columns` is false for watch events after the
/// first, as the API server leaves the column definitions out there.
pub fn table<'a>(
    res: usize,
    objs: impl IntoIterator<Item = &'a Value>,
    list_meta: Value,
    include: Include,
    meta_api_version: &str,
    with_columns: bool,
) -> Value {
    let now = Utc::now();
    let rows: Vec<Value> = objs
        .into_iter()
        .map(|o| row(res, o, include, meta_api_version, now))
        .collect();
    let columns = if with_columns {
        json!(columns(res))
    } else {
        Value::Null
    };
    json!({
        "kind": "Table",
        "apiVersion": meta_api_version,
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_one_cell_per_column() {
        let now = Utc::now();
        for res in 0..resources::RESOURCES.len() {
            let obj =
                json!({"metadata": {"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"}});
            assert_eq!(
                cells(res, &obj, now).len(),
                columns(res).len(),
                "{}",
                resources::RESOURCES[res].plural
            );
        }
    }
}
