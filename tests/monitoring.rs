//! The monitoring kit (deploy/) against a real Prometheus: `promtool` checks the
//! alert rules, and a Prometheus scraping `hpo serve` during a study answers every
//! PromQL expression of the Grafana dashboard and the alert rules with data.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hpo_core::testing::gpu_study;
use hpo_store::SqliteStorage;
use serde_json::Value;

use crate::serve::{Server, quadratic};
use crate::util::{Dir, repo};

/// A port free now on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Prometheus process, killed on drop.
struct Prometheus {
    child: Child,
    base: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prometheus on deploy/prometheus/prometheus.yml, scraping `target` every second
/// and evaluating deploy/prometheus/alerts.yml.
fn start_prometheus(dir: &Dir, target: &str) -> Prometheus {
    let deploy = repo().join("deploy/prometheus");
    let config = std::fs::read_to_string(deploy.join("prometheus.yml")).unwrap();
    assert!(config.contains("127.0.0.1:8080"), "the kit scrapes hpo serve's default address");
    let config = config
        .replace("127.0.0.1:8080", target)
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("- alerts.yml", &format!("- {}", deploy.join("alerts.yml").display()));
    let config_path = dir.write("prometheus.yml", &config);
    let check = Command::new("promtool").arg("check").arg("config").arg(&config_path).output();
    let check = check.expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's prometheus package; scripts/test.sh installs it)");
    Prometheus { child, base: format!("http://127.0.0.1:{port}") }
}

/// The expressions of the dashboard's panels, `$study` meaning every study.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/hpo.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL target");
            queries.push(expr.replace("$study", ".*"));
        }
    }
    queries
}

/// The alert rules' expressions, each comparison with a number made a `bool` one,
/// so the expression has data whether or not the alert fires.
fn alert_queries() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    let mut queries = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(expr) = line.trim_start().strip_prefix("expr:") else { continue };
        let mut expr = expr.trim().to_owned();
        if expr == "|" {
            expr.clear();
            while let Some(next) = lines.peek().filter(|l| l.starts_with("          ")) {
                expr.push_str(next.trim());
                expr.push(' ');
                lines.next();
            }
        }
        let mut out = String::new();
        let mut rest = expr.as_str();
        while let Some(at) = rest.find(['>', '<']) {
            let (head, tail) = rest.split_at(at);
            let op_len = if tail[1..].starts_with('=') { 2 } else { 1 };
            let (op, after) = tail.split_at(op_len);
            out.push_str(head);
            out.push_str(op);
            if after.trim_start().starts_with(|c: char| c.is_ascii_digit()) {
                out.push_str(" bool");
            }
            rest = after;
        }
        out.push_str(rest);
        queries.push(out);
    }
    assert_eq!(queries.len(), 4, "the four alert rules: {queries:?}");
    queries
}

fn query(agent: &ureq::Agent, base: &str, expr: &str) -> Value {
    let mut response = agent
        .get(format!("{base}/api/v1/query"))
        .query("query", expr)
        .call()
        .unwrap_or_else(|err| panic!("{expr}: {err}"));
    response.body_mut().read_json().unwrap()
}

#[test]
fn prometheus_answers_every_dashboard_and_alert_expression_from_hpo_serve() {
    let rules = repo().join("deploy/prometheus/alerts.yml");
    let check = Command::new("promtool").args(["check", "rules"]).arg(&rules).output();
    let check = check.expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    let dir = Dir::new();
    // A study on two GPUs, as its workers would write it.
    gpu_study(&SqliteStorage::open(&dir.path().join("api.sqlite")).unwrap());
    let server = Server::start(&dir, &[]);
    let target = server.base.trim_start_matches("http://").to_owned();
    let prometheus = start_prometheus(&dir, &target);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    // An external study runs while Prometheus scrapes: a trial a quarter second,
    // every fifth one failing, for a few seconds of scrapes.
    let study = "/api/v1/studies/external-quadratic";
    let file = quadratic()
        .replace("trials = 30", "trials = 1000")
        .replace("kind = \"auto\"", "kind = \"random\"");
    let mut queries = dashboard_queries();
    queries.extend(alert_queries());
    let started = Instant::now();
    let mut number = 0;
    let mut missing = Vec::new();
    while started.elapsed() < Duration::from_secs(60) {
        let body = if number == 0 { file.as_str() } else { "" };
        let (status, asked) = server.post(&format!("{study}/ask"), body);
        assert_eq!(status, 200, "{asked}");
        let tell = if number % 5 == 4 { r#"{"state": "fail"}"# } else { r#"{"value": 1.0}"# };
        assert_eq!(server.post(&format!("{study}/trials/{number}/tell"), tell).0, 200);
        number += 1;
        std::thread::sleep(Duration::from_millis(250));
        if started.elapsed() < Duration::from_secs(5) {
            continue;
        }
        missing = queries
            .iter()
            .filter(|expr| {
                let answer = query(&agent, &prometheus.base, expr);
                assert_eq!(answer["status"], "success", "{expr}: {answer}");
                answer["data"]["result"].as_array().is_none_or(Vec::is_empty)
            })
            .cloned()
            .collect();
        if missing.is_empty() {
            break;
        }
    }
    assert!(missing.is_empty(), "no data from Prometheus for:\n{}", missing.join("\n"));
    // The numbers are the store's, as Prometheus saw them.
    let placed =
        query(&agent, &prometheus.base, r#"hpo_device_trials{device="cuda:0",state="finished"}"#);
    assert_eq!(placed["data"]["result"][0]["value"][1], "2", "{placed}");
    let saved =
        query(&agent, &prometheus.base, r#"hpo_epochs_saved_total{study="gpu",by="pruning"}"#);
    assert_eq!(saved["data"]["result"][0]["value"][1], "7", "{saved}");
}
