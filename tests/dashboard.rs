//! The web dashboard in a real browser: headless Chromium driven over
//! WebDriver (`fantoccini`; chromedriver started here on a free loopback
//! port) against a running service that received real fixtures — GitHub
//! issues labeled (one a redelivery), an ignored push, a Grafana alert and
//! an API task — on the simulator. It checks what each page shows, that
//! payload text stays text (no alert dialog opens), that the pages fetch
//! nothing beyond 127.0.0.1, the login, session cookie and CSRF rules, the
//! log follow, and runs axe-core on every page (no serious or critical
//! violation). Screenshots go to `target/tmp/dashboard/`.
//!
//! Chromium and chromedriver come from Debian (`apt-get install chromium
//! chromium-driver`), axe-core from npm; `scripts/test.sh` installs all
//! three. Without Chromium the test says so loudly and passes; without the
//! others it fails with the command that installs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CLI_TOKEN: &str = "dash-cli-token-0123456789";
const VIEWER_TOKEN: &str = "dash-viewer-token-0123456789";
const SESSION_SECRET: &str = "a-dashboard-session-secret-of-32-bytes-or-more";
const BASIC_USER_PASS: &str = "grafana:correct-horse-battery";

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn tool(var: &str, names: &[&str]) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => which(names),
    }
}

/// axe-core's script: `AXE_CORE_JS`, else where scripts/test.sh puts it.
fn axe_source() -> String {
    let candidates: Vec<PathBuf> = [
        std::env::var_os("AXE_CORE_JS").map(PathBuf::from),
        std::env::var_os("ORCHESTRATOR_CI_TOOLS")
            .map(|t| PathBuf::from(t).join("axe/node_modules/axe-core/axe.min.js")),
        std::env::var_os("HOME").map(|h| {
            PathBuf::from(h)
                .join(".cache/orchestrator-ci-tools/axe/node_modules/axe-core/axe.min.js")
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    for c in &candidates {
        if let Ok(s) = std::fs::read_to_string(c) {
            return s;
        }
    }
    panic!(
        "axe-core is missing (looked at {candidates:?}): run scripts/test.sh --tools-only, \
         or npm install --prefix ~/.cache/orchestrator-ci-tools/axe axe-core@4.10.3"
    );
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Chromium under chromedriver, or `None` (said loudly) without Chromium.
async fn browser() -> Option<(Driver, Client)> {
    let Some(chromium) = tool(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    ) else {
        eprintln!(
            "\n\n################################################################\n\
             ## tests/dashboard.rs SKIPPED: Chromium is not installed.      ##\n\
             ## apt-get install -y chromium chromium-driver (scripts/test.sh ##\n\
             ## does it) to run the dashboard's browser tests.               ##\n\
             ################################################################\n"
        );
        return None;
    };
    let chromedriver = tool("CHROMEDRIVER", &["chromedriver"]).unwrap_or_else(|| {
        panic!("chromedriver is missing (Chromium is at {chromium:?}): apt-get install -y chromium-driver")
    });
    let port = free_port();
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_for("chromedriver to answer", WAIT, || {
        let http = http.clone();
        let status = format!("{url}/status");
        async move { http.get(status).send().await.ok().map(|_| ()) }
    })
    .await;
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "browserName": "chrome",
        "unhandledPromptBehavior": "ignore",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
            ],
        },
    }))
    .expect("capabilities");
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&url)
        .await
        .expect("a WebDriver session on Chromium");
    Some((driver, client))
}

fn shots_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&d).expect("the screenshot directory");
    d
}

/// Everything one page is checked for: no alert dialog, nothing fetched
/// beyond the service on 127.0.0.1, no serious or critical axe violation,
/// and a screenshot.
async fn check_page(c: &Client, app: &TestApp, axe: &str, shot: &str) {
    assert!(
        c.get_alert_text().await.is_err(),
        "{shot}: an alert dialog is open (payload text was executed)"
    );
    let urls = c
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);",
            vec![],
        )
        .await
        .expect("resource URLs");
    for u in urls.as_array().expect("a list") {
        let u = u.as_str().unwrap_or_default();
        assert!(
            u.starts_with(&format!("{}/", app.address)),
            "{shot}: the page fetched {u}, not from the service on 127.0.0.1"
        );
    }
    c.execute(axe, vec![]).await.expect("axe-core loads");
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']}).then(r => done(\
               r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')\
                 .map(v => v.impact + ' ' + v.id + ': ' + v.help + ' at ' +\
                   v.nodes.map(n => n.target.join(' ')).join(', '))),\
               e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .expect("axe runs");
    let found = found.as_array().cloned().unwrap_or_default();
    assert!(found.is_empty(), "{shot}: axe-core found {found:#?}");
    let png = c.screenshot().await.expect("a screenshot");
    std::fs::write(shots_dir().join(format!("{shot}.png")), png).expect("the screenshot is saved");
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} on the page: {e}"))
        .text()
        .await
        .expect("its text")
}

async fn path_of(c: &Client) -> String {
    let u = c.current_url().await.expect("the URL");
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

async fn log_in(c: &Client, app: &TestApp, token: &str, next: &str) {
    c.goto(&format!("{}{next}", app.address))
        .await
        .expect("goto");
    assert!(
        path_of(c).await.starts_with("/ui/login?next="),
        "a page without the session cookie goes to the login: {}",
        path_of(c).await
    );
    let token_field = c.find(Locator::Id("token")).await.expect("the token field");
    token_field.send_keys(token).await.expect("type the token");
    c.find(Locator::Css("form.login button"))
        .await
        .expect("the login button")
        .click()
        .await
        .expect("log in");
    wait_for("the page after logging in", WAIT, || async {
        (path_of(c).await == next).then_some(())
    })
    .await;
}

async fn wait_text(c: &Client, css: &str, want: &str) {
    wait_for(&format!("{css} to show {want:?}"), WAIT, || async {
        let t = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        t.contains(want).then_some(())
    })
    .await;
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(BASIC_USER_PASS)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_answers_what_happened_to_each_event_in_a_real_browser() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let axe = axe_source();
    let tokens = format!("cli={CLI_TOKEN},viewer={VIEWER_TOKEN}");
    // Pods run two minutes: the first Job runs while the others queue.
    let app = spawn_app_on(
        start_sim(120.0),
        &[
            ("API_TOKENS", &tokens),
            ("MAX_CONCURRENT_JOBS", "1"),
            ("GRAFANA_BASIC_AUTH", BASIC_USER_PASS),
            ("DASHBOARD_SESSION_SECRET", SESSION_SECRET),
        ],
    )
    .await;

    // --- the deliveries
    let mut issue = issue_labeled_agent(101);
    set(
        &mut issue,
        "/issue/title",
        "<script>alert(1)</script> flaky login".into(),
    );
    set(
        &mut issue,
        "/issue/body",
        "Steps: <img src=x onerror=alert(2)> then {{ 7*7 }}".into(),
    );
    let first = app
        .deliver("issues", "dash-delivery-1", bytes(&issue))
        .await;
    assert_eq!(first.status_field(), "queued", "{first:?}");
    let job_a = first.job().expect("a Job");
    let again = app
        .deliver("issues", "dash-delivery-1", bytes(&issue))
        .await;
    assert_eq!(again.status_field(), "duplicate", "{again:?}");
    assert_eq!(again.job().as_deref(), Some(job_a.as_str()));
    let second = app
        .deliver(
            "issues",
            "dash-delivery-2",
            bytes(&issue_labeled_agent(102)),
        )
        .await;
    let job_b = second.job().expect("a second Job");
    let push = app
        .deliver(
            "push",
            "dash-delivery-push",
            bytes(&fixture("push/push.json")),
        )
        .await;
    assert_eq!(push.status_field(), "ignored", "{push:?}");
    let push_reason = push.json["reason"].as_str().expect("a reason").to_string();
    let alert: Value =
        serde_json::from_slice(
            &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(
                "tests/fixtures/alertmanager/prometheus-msteams-prom_post_request.firing.json",
            ))
            .expect("the alert fixture"),
        )
        .expect("JSON");
    let r = app
        .http
        .post(format!("{}/webhook/grafana", app.address))
        .header("authorization", basic())
        .header("content-type", "application/json")
        .json(&alert)
        .send()
        .await
        .expect("the alert is sent");
    assert_eq!(r.status().as_u16(), 202);
    let prompt = "Render {{ config }} and </textarea><script>alert(3)</script> as text";
    let r = app
        .http
        .post(format!("{}/api/v1/tasks", app.address))
        .bearer_auth(CLI_TOKEN)
        .json(&json!({"title": "An API task", "prompt": prompt, "repository": "acme/web"}))
        .send()
        .await
        .expect("the task is sent");
    assert_eq!(r.status().as_u16(), 202);
    let job_d = r.json::<Value>().await.expect("JSON")["job"]
        .as_str()
        .expect("a Job")
        .to_string();
    // The first Job runs (its pod prints), the others wait.
    wait_for("the first Job's pod", WAIT, || async {
        (!app.pods_of(&job_a).await.is_empty()).then_some(())
    })
    .await;
    wait_for(
        "the first Job running and the API task's Job known",
        WAIT,
        || async {
            let a = app
                .http
                .get(format!("{}/api/v1/jobs/{job_a}", app.address))
                .bearer_auth(CLI_TOKEN)
                .send()
                .await
                .ok()?
                .json::<Value>()
                .await
                .ok()?;
            let d = app
                .http
                .get(format!("{}/api/v1/jobs/{job_d}", app.address))
                .bearer_auth(CLI_TOKEN)
                .send()
                .await
                .ok()?;
            (a["state"] == "running" && d.status().is_success()).then_some(())
        },
    )
    .await;

    // --- the login: a wrong token is refused, a viewer token works
    c.goto(&format!("{}/", app.address)).await.expect("goto /");
    assert!(
        path_of(&c).await.starts_with("/ui/login"),
        "{}",
        path_of(&c).await
    );
    check_page(&c, &app, &axe, "login").await;
    c.find(Locator::Id("token"))
        .await
        .expect("token field")
        .send_keys("not-a-token")
        .await
        .expect("type");
    c.find(Locator::Css("form.login button"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    wait_text(&c, ".error", "not one of API_TOKENS").await;
    log_in(&c, &app, VIEWER_TOKEN, "/ui/").await;

    // --- deliveries
    let table = text_of(&c, "#live").await;
    for want in [
        "queued",
        "duplicate",
        "ignored",
        &push_reason,
        "grafana",
        "cli",
        "acme/web",
        "issues / labeled",
    ] {
        assert!(
            table.contains(want),
            "the deliveries show {want:?}:\n{table}"
        );
    }
    let links = c
        .execute(
            "return [...document.querySelectorAll('tr.decision-duplicate a, tr.decision-queued a')]\
             .map(a => [a.closest('tr').className, a.getAttribute('href')]);",
            vec![],
        )
        .await
        .expect("links");
    let dup_link = json!(["decision-duplicate", format!("/ui/jobs/{job_a}")]);
    let first_link = json!(["decision-queued", format!("/ui/jobs/{job_a}")]);
    let links = links.as_array().expect("a list");
    assert!(
        links.contains(&dup_link) && links.contains(&first_link),
        "{links:?}"
    );
    check_page(&c, &app, &axe, "deliveries").await;
    // The filters work without script (query parameters).
    c.goto(&format!("{}/ui/?decision=ignored", app.address))
        .await
        .expect("goto");
    let rows = c
        .find_all(Locator::Css("#live tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1, "one ignored delivery");
    assert!(text_of(&c, "#live").await.contains(&push_reason));

    // --- jobs
    c.goto(&format!("{}/ui/jobs", app.address))
        .await
        .expect("goto");
    let queued = text_of(&c, "#live").await;
    assert!(
        queued.contains(&job_b) && queued.contains(&job_d) && queued.contains(&job_a),
        "{queued}"
    );
    let queue_rows = c
        .execute(
            "return [...document.querySelectorAll('table[aria-labelledby=queued] tbody tr')]\
             .map(r => r.cells[0].textContent);",
            vec![],
        )
        .await
        .expect("queue rows");
    assert_eq!(
        queue_rows,
        json!(["1", "2", "3"]),
        "positions of the three queued Jobs"
    );
    check_page(&c, &app, &axe, "jobs").await;

    // --- the running Job: payload text as text, timeline, log and follow
    c.goto(&format!("{}/ui/jobs/{job_a}", app.address))
        .await
        .expect("goto");
    let title = text_of(&c, "p.title").await;
    assert!(title.contains("<script>alert(1)</script>"), "{title}");
    let prompt_text = text_of(&c, "pre.prompt").await;
    assert!(
        prompt_text.contains("<img src=x onerror=alert(2)>"),
        "{prompt_text}"
    );
    assert!(c
        .find_all(Locator::Css("main img, main script"))
        .await
        .expect("query")
        .is_empty());
    let timeline = text_of(&c, "ol.timeline").await;
    assert!(
        timeline.contains("created") && timeline.contains("started"),
        "{timeline}"
    );
    wait_for("a log tail", WAIT, || async {
        let t = text_of(&c, "#log").await;
        (!t.trim().is_empty()).then_some(())
    })
    .await;
    assert!(
        c.find_all(Locator::Css("form.actions"))
            .await
            .expect("query")
            .is_empty(),
        "a viewer session gets no cancel button"
    );
    check_page(&c, &app, &axe, "job").await;
    c.find(Locator::Id("follow"))
        .await
        .expect("follow")
        .click()
        .await
        .expect("click");
    wait_text(&c, "#follow-status", "Following").await;
    let pod = app.pods_of(&job_a).await[0]
        .metadata
        .name
        .clone()
        .expect("a pod name");
    // New lines the agent prints while the browser follows: the first
    // shows once the stream is open (the page's tail predates it), the
    // second can only come through the stream.
    for marker in [
        "dashboard-follow-marker-1",
        "dashboard-follow-marker-2 <b>not bold</b>",
    ] {
        app.sim
            .store()
            .append_log("default", &pod, "agent", [marker.to_string()]);
        wait_text(&c, "#log", marker).await;
    }

    // --- the API task's prompt keeps its braces and tags as text
    c.goto(&format!("{}/ui/jobs/{job_d}", app.address))
        .await
        .expect("goto");
    assert_eq!(text_of(&c, "pre.prompt").await, prompt);
    assert!(c.get_alert_text().await.is_err());

    // --- system
    c.goto(&format!("{}/ui/system", app.address))
        .await
        .expect("goto");
    let sys = text_of(&c, "main").await;
    for want in [
        "Leads (admits Jobs)",
        "Preflight checks",
        "scheduler",
        "KUBERNETES_NAMESPACE",
    ] {
        assert!(sys.contains(want), "the system page shows {want:?}");
    }
    for secret in [
        CLI_TOKEN,
        VIEWER_TOKEN,
        SESSION_SECRET,
        TEST_SECRET,
        "correct-horse",
    ] {
        assert!(
            !c.source().await.expect("source").contains(secret),
            "no secret on the page"
        );
    }
    check_page(&c, &app, &axe, "system").await;

    // --- the session cookie: forged, expired and revoked ones are refused
    let cookie = c
        .get_named_cookie("orchestrator_session")
        .await
        .expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    let genuine = cookie.value().to_string();
    assert!(!genuine.contains(VIEWER_TOKEN));
    let keys = orchestrator::http::dashboard::session::Keys::from_secret(
        &orchestrator::config::Secret::new(SESSION_SECRET),
    );
    let now = chrono::Utc::now().timestamp();
    let viewer = orchestrator::config::TokenKind::Viewer;
    let mut expired = keys.start(viewer, VIEWER_TOKEN, now);
    expired.expires = now - 1;
    let revoked = keys.start(viewer, "a-token-not-configured", now);
    let (sig_start, _) = genuine.split_once('.').expect("payload.signature");
    let forged = format!("{sig_start}.{}", "A".repeat(43));
    for (what, value) in [
        ("forged", forged),
        ("expired", keys.seal(&expired)),
        ("revoked", keys.seal(&revoked)),
    ] {
        let mut bad = cookie.clone();
        bad.set_value(value);
        c.delete_cookie("orchestrator_session")
            .await
            .expect("delete");
        c.add_cookie(bad).await.expect("add");
        c.goto(&format!("{}/ui/jobs", app.address))
            .await
            .expect("goto");
        assert!(
            path_of(&c).await.starts_with("/ui/login"),
            "a {what} cookie is refused: {}",
            path_of(&c).await
        );
    }
    c.delete_cookie("orchestrator_session")
        .await
        .expect("delete");

    // --- cancel: a cli session, with the CSRF token only
    log_in(&c, &app, CLI_TOKEN, &format!("/ui/jobs/{job_b}")).await;
    c.execute(
        "const f = document.querySelector('form.actions');\
         f.querySelector('input[name=csrf]').value = '';\
         f.submit();",
        vec![],
    )
    .await
    .expect("submit without the CSRF token");
    wait_text(&c, "h1", "Refused").await;
    let b = app.job(&job_b).await.expect("the Job");
    assert!(
        !b.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("orchestrator.dev/cancelled-at"),
        "not cancelled without the CSRF token"
    );
    c.goto(&format!("{}/ui/jobs/{job_b}", app.address))
        .await
        .expect("goto");
    c.find(Locator::Css("form.actions button"))
        .await
        .expect("the cancel button")
        .click()
        .await
        .expect("cancel");
    wait_text(&c, "p.notice", "Cancel requested").await;
    wait_for("the Job cancelled on the API server", WAIT, || async {
        let j = app.job(&job_b).await?;
        j.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("orchestrator.dev/cancelled-at")
            .then_some(())
    })
    .await;
    wait_for("the page to show it cancelled", WAIT, || async {
        c.goto(&format!("{}/ui/jobs/{job_b}", app.address))
            .await
            .ok()?;
        text_of(&c, "#job-state")
            .await
            .contains("cancelled")
            .then_some(())
    })
    .await;

    // --- retry: the finished Job's page offers a new run of its task
    let retry_form = c
        .find(Locator::Css("form.retry"))
        .await
        .expect("a cancelled Job's page has the retry form");
    let number = retry_form
        .find(Locator::Css("input[name=retry]"))
        .await
        .expect("the retry number")
        .attr("value")
        .await
        .expect("attr")
        .expect("a value");
    let csrf = retry_form
        .find(Locator::Css("input[name=csrf]"))
        .await
        .expect("the CSRF field")
        .attr("value")
        .await
        .expect("attr")
        .expect("a value");
    assert_eq!(number, "1", "the first retry");
    c.find(Locator::Css("form.retry button"))
        .await
        .expect("the retry button")
        .click()
        .await
        .expect("retry");
    // The new Job's page; it says "just created" until the watch shows it.
    wait_for("the retry's Job page", WAIT, || async {
        let here = path_of(&c).await;
        (here.starts_with("/ui/jobs/") && here.contains("?retry_of=")).then_some(())
    })
    .await;
    let retry_path = path_of(&c).await;
    wait_for("the retry's notice", WAIT, || async {
        let notice = match c.find(Locator::Css("p.notice")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => {
                c.goto(&format!("{}{retry_path}", app.address)).await.ok()?;
                return None;
            }
        };
        notice.contains(&format!("retry of {job_b}")).then_some(())
    })
    .await;
    let job_r = retry_path
        .strip_prefix("/ui/jobs/")
        .and_then(|p| p.split_once('?'))
        .map(|(name, _)| name.to_string())
        .expect("the new Job's page");
    assert_ne!(job_r, job_b, "a new Job");
    let (r, b) = (
        app.job(&job_r).await.expect("the retry's Job"),
        app.job(&job_b).await.expect("the original Job"),
    );
    let key = |j: &k8s_openapi::api::batch::v1::Job| {
        j.metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .get("orchestrator.dev/dedup-key")
            .cloned()
            .expect("a dedup key")
    };
    assert_eq!(key(&r), format!("{}#retry-1", key(&b)));
    // The same form sent again (a double click, a reload): the same Job.
    let session = c
        .get_named_cookie("orchestrator_session")
        .await
        .expect("the session cookie");
    let again = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
        .post(format!("{}/ui/jobs/{job_b}/retry", app.address))
        .header(
            "cookie",
            format!("orchestrator_session={}", session.value()),
        )
        .form(&[("csrf", csrf.as_str()), ("retry", number.as_str())])
        .send()
        .await
        .expect("the form again");
    assert_eq!(again.status().as_u16(), 303);
    assert_eq!(
        again.headers()["location"],
        format!("/ui/jobs/{job_r}?retry_of={job_b}").as_str()
    );
    // A Job still queued or running is not retried.
    let busy = reqwest::Client::new()
        .post(format!("{}/ui/jobs/{job_r}/retry", app.address))
        .header(
            "cookie",
            format!("orchestrator_session={}", session.value()),
        )
        .form(&[("csrf", csrf.as_str()), ("retry", "1")])
        .send()
        .await
        .expect("retry a live Job");
    assert_eq!(busy.status().as_u16(), 409);

    c.close().await.expect("the browser closes");
    app.stop().await.expect("the service stops");
}

/// Without a browser: the headers of every `/ui` answer, the login's
/// cookie, the redirect of a page without one, a `pm-agent` session's
/// scope, and `DASHBOARD_PUBLIC`.
#[tokio::test]
async fn pages_need_a_session_and_every_answer_carries_the_security_headers() {
    let tokens = format!("cli={CLI_TOKEN},viewer={VIEWER_TOKEN},pm-agent=dash-pm-token-0123456789");
    let app = spawn_app(&[("API_TOKENS", &tokens)]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let url = |p: &str| format!("{}{p}", app.address);
    // A GitHub delivery and an API task: a pm-agent session sees neither.
    let d = app
        .deliver("issues", "dash-scope-1", bytes(&issue_labeled_agent(7)))
        .await;
    let gh_job = d.job().expect("a Job");
    let r = http.get(url("/")).send().await.expect("GET /");
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(r.headers()["location"], "/ui/");
    for path in [
        "/ui/",
        "/ui/jobs",
        "/ui/system",
        &format!("/ui/jobs/{gh_job}"),
    ] {
        let r = http.get(url(path)).send().await.expect("GET");
        assert_eq!(r.status().as_u16(), 303, "{path} without a session");
        let to = r.headers()["location"].to_str().expect("text").to_string();
        assert!(to.starts_with("/ui/login?next="), "{path} → {to}");
    }
    let css = {
        let r = http.get(url("/ui/login")).send().await.expect("login form");
        let body = r.text().await.expect("text");
        // minijinja's HTML escaping writes `/` as `&#x2f;` in attributes.
        let key = "rel=\"stylesheet\" href=\"";
        let at = body.find(key).expect("the stylesheet link") + key.len();
        let end = body[at..].find('"').expect("quoted") + at;
        body[at..end].replace("&#x2f;", "/")
    };
    let r = http
        .post(url("/ui/login"))
        .form(&[("token", "wrong")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let login = |token: &'static str| {
        let http = http.clone();
        let to = url("/ui/login");
        async move {
            let r = http
                .post(to)
                .form(&[("token", token), ("next", "/ui/jobs")])
                .send()
                .await
                .expect("login");
            assert_eq!(r.status().as_u16(), 303);
            assert_eq!(r.headers()["location"], "/ui/jobs");
            let set = r.headers()["set-cookie"]
                .to_str()
                .expect("text")
                .to_string();
            for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
                assert!(set.contains(flag), "{flag} in {set}");
            }
            assert!(
                !set.contains("Secure"),
                "plain HTTP without an https PUBLIC_URL"
            );
            assert!(!set.contains(token), "the token is not in the cookie");
            set.split(';').next().expect("name=value").to_string()
        }
    };
    let viewer = login(VIEWER_TOKEN).await;
    let pm = login("dash-pm-token-0123456789").await;
    // An open redirect is not followed.
    let r = http
        .post(url("/ui/login"))
        .form(&[("token", VIEWER_TOKEN), ("next", "//evil.example/")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.headers()["location"], "/ui/");
    let paths = [
        "/ui/".to_string(),
        "/ui/jobs".into(),
        "/ui/system".into(),
        format!("/ui/jobs/{gh_job}"),
        "/ui/login".into(),
        "/ui/no-such-page".into(),
        css.clone(),
    ];
    for path in &paths {
        let r = http
            .get(url(path))
            .header("cookie", &viewer)
            .send()
            .await
            .expect("GET");
        let h = r.headers();
        assert_eq!(
            h["content-security-policy"],
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let status = r.status().as_u16();
        let expected = if path.contains("no-such") { 404 } else { 200 };
        assert_eq!(status, expected, "{path}");
        if *path == css {
            assert!(h["cache-control"]
                .to_str()
                .expect("text")
                .contains("immutable"));
        } else {
            let body = r.text().await.expect("text");
            assert!(
                !body.contains("<script>") && !body.contains("style="),
                "{path}: no inline script or style"
            );
        }
    }
    let page = |cookie: String, path: String| {
        let http = http.clone();
        let to = url(&path);
        async move {
            http.get(to)
                .header("cookie", cookie)
                .send()
                .await
                .expect("GET")
                .text()
                .await
                .expect("text")
        }
    };
    assert!(page(viewer.clone(), "/ui/".into())
        .await
        .contains("dash-scope-1"));
    // The jobs page lists the watch store, which shows the new Job a
    // moment after its create answered.
    wait_for("the GitHub Job on the jobs page", WAIT, || {
        let (page, viewer, gh_job) = (&page, viewer.clone(), gh_job.clone());
        async move {
            page(viewer, "/ui/jobs".into())
                .await
                .contains(&gh_job)
                .then_some(())
        }
    })
    .await;
    // A pm-agent session sees only pm-agent Jobs and deliveries.
    assert!(!page(pm.clone(), "/ui/".into())
        .await
        .contains("dash-scope-1"));
    assert!(!page(pm.clone(), "/ui/jobs".into()).await.contains(&gh_job));
    assert!(page(pm.clone(), format!("/ui/jobs/{gh_job}"))
        .await
        .contains("No such Job"));
    // A viewer may not cancel, even with its CSRF token.
    let job_page = page(viewer.clone(), format!("/ui/jobs/{gh_job}")).await;
    let at = job_page
        .find("name=\"csrf\" value=\"")
        .expect("the logout form's CSRF field")
        + 19;
    let csrf = &job_page[at..at + job_page[at..].find('"').expect("quoted")];
    let r = http
        .post(url(&format!("/ui/jobs/{gh_job}/cancel")))
        .header("cookie", &viewer)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .expect("cancel");
    assert_eq!(r.status().as_u16(), 403);
    let r = http
        .post(url(&format!("/ui/jobs/{gh_job}/retry")))
        .header("cookie", &viewer)
        .form(&[("csrf", csrf), ("retry", "1")])
        .send()
        .await
        .expect("retry");
    assert_eq!(r.status().as_u16(), 403, "a viewer may not retry");
    app.stop().await.expect("stops");

    // DASHBOARD_PUBLIC: pages without a session, read-only.
    let app = spawn_app(&[("API_TOKENS", &tokens), ("DASHBOARD_PUBLIC", "true")]).await;
    let r = http
        .get(format!("{}/ui/jobs", app.address))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    let r = http
        .post(format!("{}/ui/jobs/{gh_job}/cancel", app.address))
        .form(&[("csrf", "x")])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 403);
    app.stop().await.expect("stops");
}

/// A client address gets `LOGINS_PER_MINUTE` login attempts a minute,
/// right or wrong; the next is refused `429` with `Retry-After` before its
/// token is checked, so even the right token waits. Another address (a
/// trusted proxy's `X-Forwarded-For`) has its own allowance.
#[tokio::test]
async fn login_attempts_are_limited_per_client_address() {
    let tokens = format!("viewer={VIEWER_TOKEN}");
    let app = spawn_app(&[("API_TOKENS", &tokens), ("TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let attempt = |token: &'static str, from: &'static str| {
        let http = http.clone();
        let to = format!("{}/ui/login", app.address);
        async move {
            http.post(to)
                .header("x-forwarded-for", from)
                .form(&[("token", token), ("next", "/ui/")])
                .send()
                .await
                .expect("login")
        }
    };
    let allowed = orchestrator::http::dashboard::LOGINS_PER_MINUTE;
    for i in 0..allowed {
        let token = if i % 2 == 0 {
            "a-wrong-guess"
        } else {
            VIEWER_TOKEN
        };
        let r = attempt(token, "203.0.113.7").await;
        let want = if i % 2 == 0 { 401 } else { 303 };
        assert_eq!(r.status().as_u16(), want, "attempt {i} is within the limit");
    }
    let r = attempt(VIEWER_TOKEN, "203.0.113.7").await;
    assert_eq!(r.status().as_u16(), 429, "one attempt too many");
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert!(r.headers().get("set-cookie").is_none(), "no session");
    let body = r.text().await.expect("text");
    assert!(body.contains("Too many login attempts"), "{body}");
    // Another client is not held back by the first one's attempts.
    let r = attempt(VIEWER_TOKEN, "198.51.100.9").await;
    assert_eq!(r.status().as_u16(), 303);
    app.stop().await.expect("stops");
}
