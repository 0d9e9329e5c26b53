//! Validation answers for every served kind, each compared with a `Status`
//! (or the kubectl line printed from one) captured from a real API server,
//! or — where no capture was found — with the 1.32 source of the check.
//! Every case names its source next to the answer it expects.
//!
//! Sources by short name:
//! - apimachinery-0.32: kubernetes/apimachinery at tag v0.32.0 (Kubernetes
//!   1.32): pkg/util/validation/validation.go (name, key and value
//!   messages), pkg/util/validation/field/errors.go (`Required value`,
//!   `Too long: may not be more than N bytes`, …), pkg/api/errors/errors.go
//!   (`NewInvalid`: `<Kind>.<group> "<name>" is invalid: …`, repeated
//!   messages listed once).
//! - core-validation: kubernetes/kubernetes pkg/apis/core/validation
//!   (validation.go, events.go, config_maps.go); batch-validation:
//!   pkg/apis/batch/validation/validation.go; coordination-validation:
//!   pkg/apis/coordination/validation/validation.go.

use serde_json::{json, Value};

use crate::kubectl_support::Cluster;

use crate::http::{post, send};

async fn put(base: &str, path: &str, body: &Value) -> (u16, Value) {
    send(reqwest::Method::PUT, base, path, body).await
}

/// A 422 `Invalid` Status: its message, and (field, reason) of each cause.
fn invalid(code: u16, status: &Value) -> (String, Vec<(String, String)>) {
    assert_eq!(
        (code, status["reason"].as_str()),
        (422, Some("Invalid")),
        "{status}"
    );
    let causes = status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (s("field"), s("reason"))
        })
        .collect();
    (status["message"].as_str().unwrap_or("").to_string(), causes)
}

fn pair(field: &str, reason: &str) -> (String, String) {
    (field.to_string(), reason.to_string())
}

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

#[test]
fn namespace_names_are_dns_labels() {
    let c = Cluster::start();
    let f = c.file(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: NameSpaceName\n",
    );
    // Captured (kubectl apply against a real server), yannh/kubeconform#259:
    // The Namespace "NameSpaceName" is invalid: metadata.name: Invalid value:
    // "NameSpaceName": a lowercase RFC 1123 label must consist of … '[a-z0-9]([-a-z0-9]*[a-z0-9])?')
    let err = c.fails(&["apply", "-f", &f]);
    let expected = format!(
        "The Namespace \"NameSpaceName\" is invalid: metadata.name: Invalid value: \"NameSpaceName\": {LABEL_MSG}"
    );
    assert!(err.contains(&expected), "{err}");
    // apimachinery-0.32 IsDNS1123Label: a valid subdomain that is no label
    // "must not contain dots".
    let err = c.fails(&["create", "namespace", "team.a"]);
    assert!(
        err.contains("metadata.name: Invalid value: \"team.a\": must not contain dots"),
        "{err}"
    );
}

#[tokio::test]
async fn pods_report_names_labels_containers_and_images() {
    let (_c, sim) = kube_api_sim::start().await.unwrap();
    let pods = "/api/v1/namespaces/default/pods";
    // Captured Status, GZTimeWalker/GZCTF#352 (a pod named, labelled and with
    // a container named "-01jaz8d8mb5qzdjn5jrfypxejd" and no image):
    // Pod "-01jaz…" is invalid: [metadata.name: Invalid value: …subdomain…,
    // metadata.labels: Invalid value: …label value…, spec.containers[0].name:
    // Invalid value: …label…, spec.containers[0].image: Required value]
    let bad = "-01jaz8d8mb5qzdjn5jrfypxejd";
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": bad, "labels": {"app": bad}},
        "spec": {"containers": [{"name": bad}]}});
    let (message, causes) = invalid_of(post(&sim.url(), pods, &pod).await);
    let expected = format!(
        "Pod \"{bad}\" is invalid: [metadata.name: Invalid value: \"{bad}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'), metadata.labels: Invalid value: \"{bad}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?'), spec.containers[0].name: Invalid value: \"{bad}\": {LABEL_MSG}, spec.containers[0].image: Required value]"
    );
    assert_eq!(message, expected);
    assert_eq!(
        causes,
        [
            pair("metadata.name", "FieldValueInvalid"),
            pair("metadata.labels", "FieldValueInvalid"),
            pair("spec.containers[0].name", "FieldValueInvalid"),
            pair("spec.containers[0].image", "FieldValueRequired"),
        ]
    );
    // Captured, kubeovn/kube-ovn#686: The Pod "" is invalid: metadata.name:
    // Required value: name or generateName is required
    let unnamed = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (message, _) = invalid_of(post(&sim.url(), pods, &unnamed).await);
    assert_eq!(
        message,
        "Pod \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );
    // core-validation (validateContainers, validateVolumes,
    // ValidateVolumeMounts, validateContainerPorts): a duplicate container
    // name, a volume with two sources, a mount of an unknown volume, a port
    // out of range.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"volumes": [{"name": "v", "emptyDir": {}, "configMap": {"name": "c"}}],
            "containers": [
                {"name": "c", "image": "i", "ports": [{"containerPort": 0}],
                 "volumeMounts": [{"name": "v", "mountPath": "/v"}]},
                {"name": "c", "image": "i"}]}});
    let (message, causes) = invalid_of(post(&sim.url(), pods, &pod).await);
    assert_eq!(
        message,
        "Pod \"p\" is invalid: [spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type, spec.containers[0].ports[0].containerPort: Required value, spec.containers[0].volumeMounts[0].name: Not found: \"v\", spec.containers[1].name: Duplicate value: \"c\"]"
    );
    let reasons: Vec<&str> = causes.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "FieldValueForbidden",
            "FieldValueRequired",
            "FieldValueNotFound",
            "FieldValueDuplicate"
        ]
    );
}

fn invalid_of((code, status): (u16, Value)) -> (String, Vec<(String, String)>) {
    invalid(code, &status)
}

#[tokio::test]
async fn config_maps_check_keys_duplicates_and_immutability() {
    let (_c, sim) = kube_api_sim::start().await.unwrap();
    let cms = "/api/v1/namespaces/default/configmaps";
    // core-validation ValidateConfigMap + apimachinery-0.32 IsConfigMapKey:
    // each bad key at data[<key>]; a key in data and binaryData is reported
    // at data[<key>].
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
        "data": {"bad key": "x"}});
    let (message, causes) = invalid_of(post(&sim.url(), cms, &cm).await);
    assert_eq!(
        message,
        "ConfigMap \"cfg\" is invalid: data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    );
    assert_eq!(causes, [pair("data[bad key]", "FieldValueInvalid")]);
    let dup = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
        "data": {"k": "x"}, "binaryData": {"k": "eA=="}});
    let (message, _) = invalid_of(post(&sim.url(), cms, &dup).await);
    assert_eq!(
        message,
        "ConfigMap \"cfg\" is invalid: data[k]: Invalid value: \"k\": duplicate of key present in binaryData"
    );
    // core-validation ValidateConfigMapUpdate: once immutable, data and the
    // flag are Forbidden to change.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fixed"},
        "immutable": true, "data": {"k": "1"}});
    assert_eq!(post(&sim.url(), cms, &cm).await.0, 201);
    let mut changed = cm.clone();
    changed["data"]["k"] = json!("2");
    let (message, causes) = invalid_of(put(&sim.url(), &format!("{cms}/fixed"), &changed).await);
    assert_eq!(
        message,
        "ConfigMap \"fixed\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    assert_eq!(causes, [pair("data", "FieldValueForbidden")]);
    // Captured (a ConfigMap), zoetrope/kubebuilder-training#36:
    // metadata.finalizers[0]: Invalid value: "markdownview.finalizers.view.zoetrope.github.io":
    // name is neither a standard finalizer name nor is it fully qualified
    let finalizer = "markdownview.finalizers.view.zoetrope.github.io";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "test", "finalizers": [finalizer]}});
    let (message, causes) = invalid_of(post(&sim.url(), cms, &cm).await);
    assert_eq!(
        message,
        format!("ConfigMap \"test\" is invalid: metadata.finalizers[0]: Invalid value: \"{finalizer}\": name is neither a standard finalizer name nor is it fully qualified")
    );
    assert_eq!(
        causes,
        [pair("metadata.finalizers[0]", "FieldValueInvalid")]
    );
}

#[tokio::test]
async fn secrets_need_their_types_keys_and_keep_their_type() {
    let (_c, sim) = kube_api_sim::start().await.unwrap();
    let secrets = "/api/v1/namespaces/default/secrets";
    // Captured, sapcc/helm-charts#7420 (also bitnami/charts#8094):
    // Secret "…" is invalid: [data[tls.crt]: Required value, data[tls.key]: Required value]
    let tls = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"},
        "type": "kubernetes.io/tls", "data": {"cert.pem": "eA=="}});
    let (message, causes) = invalid_of(post(&sim.url(), secrets, &tls).await);
    assert_eq!(
        message,
        "Secret \"tls\" is invalid: [data[tls.crt]: Required value, data[tls.key]: Required value]"
    );
    assert_eq!(
        causes,
        [
            pair("data[tls.crt]", "FieldValueRequired"),
            pair("data[tls.key]", "FieldValueRequired")
        ]
    );
    // Captured, nrvnrvn/secreter#3: Secret "tls-ingress" is invalid: type:
    // Invalid value: "kubernetes.io/tls": field is immutable
    let opaque = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls-ingress"},
        "data": {"tls.crt": "eA==", "tls.key": "eA=="}});
    assert_eq!(post(&sim.url(), secrets, &opaque).await.0, 201);
    let mut retyped = opaque.clone();
    retyped["type"] = json!("kubernetes.io/tls");
    let path = format!("{secrets}/tls-ingress");
    let (message, causes) = invalid_of(put(&sim.url(), &path, &retyped).await);
    assert_eq!(
        message,
        "Secret \"tls-ingress\" is invalid: type: Invalid value: \"kubernetes.io/tls\": field is immutable"
    );
    assert_eq!(causes, [pair("type", "FieldValueInvalid")]);
    // core-validation ValidateSecret: the service-account-token type needs
    // the service account's name.
    let sa = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sa"},
        "type": "kubernetes.io/service-account-token"});
    let (message, _) = invalid_of(post(&sim.url(), secrets, &sa).await);
    assert_eq!(
        message,
        "Secret \"sa\" is invalid: metadata.annotations[kubernetes.io/service-account.name]: Required value"
    );
}

#[tokio::test]
async fn leases_need_positive_durations() {
    let (_c, sim) = kube_api_sim::start().await.unwrap();
    // coordination-validation ValidateLeaseSpec: leaseDurationSeconds must
    // be > 0, leaseTransitions >= 0; the Status names the kind with its
    // group (apimachinery-0.32 NewInvalid).
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 0, "leaseTransitions": -1}});
    let (message, causes) = invalid_of(
        post(
            &sim.url(),
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            &lease,
        )
        .await,
    );
    assert_eq!(
        message,
        "Lease.coordination.k8s.io \"leader\" is invalid: [spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0, spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0]"
    );
    assert_eq!(
        causes,
        [
            pair("spec.leaseDurationSeconds", "FieldValueInvalid"),
            pair("spec.leaseTransitions", "FieldValueInvalid")
        ]
    );
}

#[tokio::test]
async fn events_match_their_involved_objects_namespace() {
    let (_c, sim) = kube_api_sim::start().await.unwrap();
    let events = "/api/v1/namespaces/default/events";
    // Captured Status, fabric8io/kubernetes-client#2219: Event "…" is
    // invalid: involvedObject.namespace: Invalid value: "…": does not match
    // event.namespace (cause FieldValueInvalid at involvedObject.namespace);
    // the rule is kubernetes/kubernetes#30533 (core-validation events.go).
    let ev = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "pod.17a"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "other"},
        "reason": "Started", "message": "m"});
    let (message, causes) = invalid_of(post(&sim.url(), events, &ev).await);
    assert_eq!(
        message,
        "Event \"pod.17a\" is invalid: involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"
    );
    assert_eq!(
        causes,
        [pair("involvedObject.namespace", "FieldValueInvalid")]
    );
    // core/v1 Events skip ObjectMeta name validation (events.go checks names
    // only for events.k8s.io); only the generic path-segment check of
    // k8s.io/apiserver pkg/registry/rest/create.go applies.
    let mut upper = ev.clone();
    upper["metadata"]["name"] = json!("Pod.Started_1");
    upper["involvedObject"]["namespace"] = json!("default");
    let (code, body) = post(&sim.url(), events, &upper).await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test]
async fn jobs_check_counts_and_immutable_fields() {
    let (_c, sim) = kube_api_sim::start().await.unwrap();
    let jobs = "/apis/batch/v1/namespaces/default/jobs";
    let job = |name: &str, completions: i64| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"completions": completions, "suspend": true, "template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})
    };
    // batch-validation validateJobSpec: ValidateNonnegativeField; an
    // activeDeadlineSeconds of 0 is allowed for a Job.
    let mut bad = job("counts", 1);
    bad["spec"]["backoffLimit"] = json!(-1);
    bad["spec"]["activeDeadlineSeconds"] = json!(0);
    let (message, causes) = invalid_of(post(&sim.url(), jobs, &bad).await);
    assert_eq!(
        message,
        "Job.batch \"counts\" is invalid: spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"
    );
    assert_eq!(causes, [pair("spec.backoffLimit", "FieldValueInvalid")]);
    // Captured, aws-samples/aws-workshop-for-kubernetes#111: The Job "wait"
    // is invalid: spec.completions: Invalid value: 6: field is immutable
    let (code, mut created) = post(&sim.url(), jobs, &job("wait", 1)).await;
    assert_eq!(code, 201, "{created}");
    // An unconditional update (Jobs allow one), so the controller's own
    // status writes cannot turn the answer into a 409.
    created["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("resourceVersion");
    let mut more = created.clone();
    more["spec"]["completions"] = json!(6);
    let path = format!("{jobs}/wait");
    let (message, _) = invalid_of(put(&sim.url(), &path, &more).await);
    assert_eq!(
        message,
        "Job.batch \"wait\" is invalid: spec.completions: Invalid value: 6: field is immutable"
    );
    // Captured, mkubaczyk/helmsman#308: Job.batch "…" is invalid:
    // spec.template: Invalid value: core.PodTemplateSpec{…}: field is
    // immutable (the simulator abbreviates the Go struct it prints).
    let mut image = created.clone();
    image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("alpine");
    let (message, causes) = invalid_of(put(&sim.url(), &path, &image).await);
    assert!(
        message.starts_with(
            "Job.batch \"wait\" is invalid: spec.template: Invalid value: core.PodTemplateSpec{"
        ) && message.ends_with("}: field is immutable"),
        "{message}"
    );
    assert_eq!(causes, [pair("spec.template", "FieldValueInvalid")]);
    // batch-validation ValidateJobSpec: a manual selector is required.
    let mut manual = job("manual", 1);
    manual["spec"]["manualSelector"] = json!(true);
    let (message, _) = invalid_of(post(&sim.url(), jobs, &manual).await);
    assert_eq!(
        message,
        "Job.batch \"manual\" is invalid: spec.selector: Required value"
    );
}

#[tokio::test]
async fn container_requests_above_their_limits_are_refused_with_the_limit_named_and_quantities_stored_canonically(
) {
    let (_c, sim) = kube_api_sim::start().await.unwrap();
    let jobs = "/apis/batch/v1/namespaces/default/jobs";
    let job = |name: &str, resources: Value| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox", "resources": resources}]}}}})
    };
    // Captured before 1.27, nautobot/helm-charts#43: Deployment.apps
    // "nautobot" is invalid: [spec.template.spec.containers[0].resources.requests:
    // Invalid value: "8704M": must be less than orequal to memory limit, …
    // "600m": must be less than or equal to cpu limit] — the path is the
    // requests map, the value the request as Quantity.String() writes it.
    // Since kubernetes/kubernetes#112925 (1.27) the message ends with
    // " limit of <limit>" (core-validation ValidateResourceRequirements).
    let over = job(
        "over",
        json!({"requests": {"cpu": "600m", "memory": "8704M"},
               "limits": {"cpu": "0.5", "memory": "8Gi"}}),
    );
    let (message, causes) = invalid_of(post(&sim.url(), jobs, &over).await);
    assert_eq!(
        message,
        "Job.batch \"over\" is invalid: [spec.template.spec.containers[0].resources.requests: Invalid value: \"600m\": must be less than or equal to cpu limit of 500m, spec.template.spec.containers[0].resources.requests: Invalid value: \"8704M\": must be less than or equal to memory limit of 8Gi]"
    );
    assert_eq!(
        causes,
        [
            pair(
                "spec.template.spec.containers[0].resources.requests",
                "FieldValueInvalid"
            ),
            pair(
                "spec.template.spec.containers[0].resources.requests",
                "FieldValueInvalid"
            ),
        ]
    );
    // Equal values written differently, and requests below their limits,
    // are fine.
    let fine = job(
        "fine",
        json!({"requests": {"cpu": "1", "memory": "1Gi"},
               "limits": {"cpu": "1000m", "memory": "1024Mi"}}),
    );
    let (code, body) = post(&sim.url(), jobs, &fine).await;
    assert_eq!(code, 201, "{body}");
    // apimachinery-0.32 resource/quantity.go: a Quantity is encoded as
    // `String()` writes it, so the stored Job holds the canonical forms.
    assert_eq!(
        body["spec"]["template"]["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "1", "memory": "1Gi"},
               "limits": {"cpu": "1", "memory": "1Gi"}})
    );
    let numbers = job(
        "numbers",
        json!({"requests": {"cpu": 0.25}, "limits": {"cpu": 1, "memory": "1.5Gi"}}),
    );
    let (code, body) = post(&sim.url(), jobs, &numbers).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        body["spec"]["template"]["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "1", "memory": "1536Mi"}})
    );
    // core-validation: an extended resource cannot be overcommitted — its
    // request must equal a limit that is set; no quantity is negative.
    let gpu = job(
        "gpu",
        json!({"requests": {"example.com/gpu": "1", "example.com/fpga": "1"},
               "limits": {"example.com/gpu": "2", "memory": "-1Gi"}}),
    );
    let (message, _) = invalid_of(post(&sim.url(), jobs, &gpu).await);
    assert_eq!(
        message,
        "Job.batch \"gpu\" is invalid: [spec.template.spec.containers[0].resources.limits[memory]: Invalid value: \"-1Gi\": must be greater than or equal to 0, spec.template.spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources, spec.template.spec.containers[0].resources.requests: Invalid value: \"1\": must be equal to example.com/gpu limit of 2]"
    );
}
