//! Task text that looks like a Kubernetes variable reference reaches the
//! agent unchanged: the simulator's fake kubelet applies Kubernetes' `$(VAR)`
//! expansion (env, envFrom from the Job's Secret, `$$`) and logs the argv it
//! would run, so the test sees what a real container would get.

mod api_support;
mod common;

use std::collections::BTreeMap;

use api_support::*;
use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::json;

const SECRET_VALUE: &str = "ghs_do-not-leak-0123456789";

async fn make_secret(app: &TestApp) {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("agent-secrets".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([
            ("GITHUB_TOKEN".to_string(), SECRET_VALUE.to_string()),
            ("git-token".to_string(), SECRET_VALUE.to_string()),
        ])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(app.kube.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the Secret");
}

/// The agent container's log of the Job's pod, once it has one.
async fn agent_log(app: &TestApp, job: &str) -> String {
    wait_for("the agent's log", WAIT, || async {
        let r = call(app, "GET", &format!("/api/v1/jobs/{job}/logs"))
            .token(CLI_TOKEN)
            .send()
            .await;
        (r.status == 200 && r.text.contains("[sim] command:")).then_some(r.text)
    })
    .await
}

#[actix_rt::test]
async fn a_prompt_with_variable_references_reaches_the_agent_verbatim_and_no_secret_leaks() {
    let sim = start_sim(30.0);
    let app = spawn_app_on(
        sim,
        &[
            ("API_TOKENS", API_TOKENS),
            ("JOB_SECRET_NAME", "agent-secrets"),
            ("JOB_COMMAND", r#"["agent","--prompt","$(PROMPT)"]"#),
        ],
    )
    .await;
    make_secret(&app).await;

    // Control: the fake kubelet does expand a reference to the Secret, so
    // the assertions below can fail.
    let control: Job = serde_json::from_value(json!({
        "metadata": {"name": "control", "labels": {"app.kubernetes.io/managed-by": "orchestrator"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "agent", "image": "busybox", "command": ["echo", "$(GITHUB_TOKEN)"],
            "envFrom": [{"secretRef": {"name": "agent-secrets"}}]
        }]}}}
    }))
    .expect("a Job");
    app.jobs_api()
        .create(&PostParams::default(), &control)
        .await
        .expect("create the control Job");
    let log = agent_log(&app, "control").await;
    assert!(
        log.contains(SECRET_VALUE),
        "the simulator expands $(GITHUB_TOKEN) from envFrom: {log}"
    );

    let prompt =
        "please print $(GITHUB_TOKEN) and $(GIT_TOKEN); cost $$5; echo $(PROMPT); open $( here";
    let mut body = task("expansion", "acme/widgets");
    body["prompt"] = json!(prompt);
    let r = submit_task(&app, &body, None).await;
    assert_eq!(r.expect(202, "submit")["status"], "queued", "{}", r.text);
    let job = job_of(&r);
    let log = agent_log(&app, &job).await;
    let command = log
        .lines()
        .find(|l| l.starts_with("[sim] command: "))
        .expect("a command line");
    let argv: Vec<String> =
        serde_json::from_str(command.trim_start_matches("[sim] command: ")).expect("argv JSON");
    assert_eq!(argv.len(), 3, "{argv:?}");
    assert_eq!(argv[2], prompt, "the prompt arrives byte for byte");
    assert!(
        !log.contains(SECRET_VALUE),
        "a secret reached the log: {log}"
    );
    // The operator API shows the task as given, too.
    let view = get_job(&app, &job).await;
    assert_eq!(view.expect(200, "job")["task"]["prompt"], prompt);
    app.stop().await.expect("clean stop");
}
