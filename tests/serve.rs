//! `hpo serve` through a real HTTP client: the API, tokens, bad input.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Dir, branin_study, repo};

/// A running `hpo serve` on an ephemeral loopback port; stopped (SIGTERM) on drop.
pub struct Server {
    child: Child,
    pub base: String,
    agent: ureq::Agent,
}

impl Server {
    pub fn start(dir: &Dir, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--bind", "127.0.0.1:0"];
        if !extra.contains(&"--db") {
            args.extend_from_slice(&["--db", "api.sqlite"]);
        }
        args.extend_from_slice(extra);
        let mut child = dir
            .hpo(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hpo serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = lines.next().expect("a first line").unwrap();
        // The rest of the log is drained so the server never blocks writing it.
        std::thread::spawn(move || for _ in lines {});
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches("/api/v1")
            .to_owned();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Server { child, base, agent }
    }

    /// `METHOD path` with an optional bearer token and body: (status, JSON body).
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let get = || {
            let mut request = self.agent.get(&url);
            if let Some(auth) = &auth {
                request = request.header("Authorization", auth);
            }
            request.call()
        };
        let response = match method {
            // A GET is safe to send again when the pooled connection it went out on
            // had been closed by the server (as after refusing an oversized body).
            "GET" => get().or_else(|err| match err {
                ureq::Error::Io(_) => get(),
                other => Err(other),
            }),
            _ => {
                let mut request = self.agent.post(&url);
                if let Some(auth) = &auth {
                    request = request.header("Authorization", auth);
                }
                request.send(body.unwrap_or(""))
            }
        };
        let mut response = response.unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, value)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None, None)
    }

    /// `GET /metrics`, parsed as Prometheus parses it.
    pub fn scrape(&self) -> prometheus_parse::Scrape {
        let mut response = self.agent.get(format!("{}/metrics", self.base)).call().unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("Prometheus text format")
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.call("POST", path, None, Some(body))
    }

    /// SIGTERM, then the exit code.
    fn stop(mut self) -> Option<i32> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let code = self.child.wait().unwrap().code();
        std::mem::forget(self);
        code
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn quadratic() -> String {
    std::fs::read_to_string(repo().join("studies/external-quadratic.toml")).unwrap()
}

const STUDY: &str = "/api/v1/studies/external-quadratic";

#[test]
fn the_api_runs_an_external_study_and_serves_its_trials() {
    let dir = Dir::new();
    let server = Server::start(&dir, &[]);
    let (status, none) = server.get("/api/v1/studies");
    assert_eq!((status, none), (200, json!({"studies": []})));
    // The first ask creates the study from the file in the body; later ones need no body.
    let (status, first) = server.post(&format!("{STUDY}/ask"), &quadratic());
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["trial"], 0);
    let x = first["params"]["x"].as_f64().unwrap();
    assert!((-3.0..=3.0).contains(&x), "{first}");
    for step in 1..=3 {
        let body = json!({"step": step, "value": x * x + 1.0 / f64::from(step)}).to_string();
        let (status, answer) = server.post(&format!("{STUDY}/trials/0/steps"), &body);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["prune"], false);
    }
    let (status, told) =
        server.post(&format!("{STUDY}/trials/0/tell"), &json!({"value": x * x}).to_string());
    assert_eq!((status, told["state"].as_str()), (200, Some("complete")), "{told}");
    let (status, second) = server.post(&format!("{STUDY}/ask"), "");
    assert_eq!((status, second["trial"].as_u64()), (200, Some(1)), "{second}");
    let (_, failed) = server.post(&format!("{STUDY}/trials/1/tell"), r#"{"state": "fail"}"#);
    assert_eq!(failed["state"], "fail");

    let (status, studies) = server.get("/api/v1/studies");
    assert_eq!(status, 200);
    let listed = &studies["studies"][0];
    assert_eq!(listed["name"], "external-quadratic");
    assert_eq!(listed["metric"], "loss");
    assert_eq!(
        listed["trials"],
        json!({"total": 2, "complete": 1, "pruned": 0, "fail": 1, "running": 0, "waiting": 0})
    );
    assert_eq!(listed["best_value"].as_f64(), Some(x * x));
    let (_, study) = server.get(STUDY);
    assert_eq!(
        (study["sampler"].as_str(), study["objective"].as_str()),
        (Some("auto"), Some("external"))
    );
    assert_eq!(study["study_file"].as_str(), Some(quadratic().as_str()));
    let (_, trials) = server.get(&format!("{STUDY}/trials?state=complete,fail&sort=value"));
    assert_eq!(trials["total"], 2);
    assert_eq!(trials["trials"][0]["number"], 0, "the complete trial first: {trials}");
    assert_eq!(trials["trials"][1]["value"], Value::Null);
    let (_, trial) = server.get(&format!("{STUDY}/trials/0"));
    assert_eq!(trial["intermediate_values"].as_array().unwrap().len(), 3, "{trial}");
    assert_eq!(trial["curves"]["loss"].as_array().unwrap().len(), 3, "{trial}");
    assert_eq!(server.stop(), Some(0), "SIGTERM ends the server cleanly");
    // What the API wrote is what `hpo export` reads.
    let export = dir.export("external-quadratic", "api.sqlite");
    assert_eq!(export["trials"][0]["value"].as_f64(), Some(x * x));
}

/// Writes a tokens file with one read and one write token, private.
pub fn tokens_file(dir: &Dir) {
    dir.write("tokens", "# team tokens\nreader-token read\nwriter-token write\n");
    std::fs::set_permissions(dir.path().join("tokens"), std::fs::Permissions::from_mode(0o600))
        .unwrap();
}

#[test]
fn tokens_decide_who_reads_and_who_writes() {
    let dir = Dir::new();
    tokens_file(&dir);
    let server = Server::start(&dir, &["--tokens", "tokens"]);
    let ask = format!("{STUDY}/ask");
    let cases = [
        ("GET", "/api/v1/studies", None, 401),
        ("GET", "/api/v1/studies", Some("not-a-token"), 401),
        ("GET", "/api/v1/studies", Some("reader-token"), 200),
        ("GET", "/api/v1/studies", Some("writer-token"), 200),
        ("POST", ask.as_str(), None, 401),
        ("POST", ask.as_str(), Some("reader-token"), 403),
        ("POST", ask.as_str(), Some("writer-token"), 200),
    ];
    let study = quadratic();
    for (method, path, token, expected) in cases {
        let (status, body) = server.call(method, path, token, Some(&study));
        assert_eq!(status, expected, "{method} {path} with {token:?}: {body}");
        if status >= 400 {
            assert!(body["detail"].as_str().is_some_and(|d| !d.contains("reader-token")), "{body}");
        }
    }
    drop(server);
    let public = Server::start(&dir, &["--tokens", "tokens", "--public-read"]);
    assert_eq!(public.get("/api/v1/studies").0, 200);
    assert_eq!(public.post(&ask, "").0, 401, "writes still need a token");
}

#[test]
fn a_readable_tokens_file_or_an_open_bind_without_tokens_is_refused() {
    let dir = Dir::new();
    tokens_file(&dir);
    std::fs::set_permissions(dir.path().join("tokens"), std::fs::Permissions::from_mode(0o644))
        .unwrap();
    let err = dir.bad_input(&["serve", "--db", "api.sqlite", "--tokens", "tokens"]);
    assert!(err.contains("can be read by anyone") && err.contains("chmod 600 tokens"), "{err}");
    assert!(!err.contains("writer-token"), "{err}");
    let err = dir.bad_input(&["serve", "--db", "api.sqlite", "--bind", "0.0.0.0:0"]);
    assert!(err.contains("refusing to listen on 0.0.0.0:0 without --tokens"), "{err}");
}

#[test]
fn bad_requests_are_told_with_their_status_and_change_nothing() {
    let dir = Dir::new();
    let server = Server::start(&dir, &[]);
    let (status, _) = server.post(&format!("{STUDY}/ask"), &quadratic());
    assert_eq!(status, 200);
    let before = server.get(&format!("{STUDY}/trials/0")).1;
    let steps = format!("{STUDY}/trials/0/steps");
    let tell = format!("{STUDY}/trials/0/tell");
    let bad_file = quadratic().replace("trials = 30", "trials = \"many\"");
    let big = "x".repeat(2 << 20);
    let cases: Vec<(String, String, u16, &str)> = vec![
        (steps.clone(), "{not json".into(), 400, "not the JSON this endpoint takes"),
        (steps.clone(), r#"{"step": "one", "value": 1.0}"#.into(), 400, "invalid type"),
        (steps.clone(), r#"{"value": 1.0}"#.into(), 400, "missing field `step`"),
        (
            steps.clone(),
            r#"{"step": 1, "value": 1.0, "extra": 2}"#.into(),
            400,
            "unknown field `extra`",
        ),
        (
            steps.clone(),
            r#"{"step": 1, "value": "NaN"}"#.into(),
            422,
            "got the value NaN at step 1",
        ),
        (
            steps.clone(),
            r#"{"step": 9223372036854775808, "value": 1.0}"#.into(),
            400,
            "past the largest step, 9223372036854775807",
        ),
        (tell.clone(), r#"{"value": "NaN"}"#.into(), 422, "tell a finite value"),
        (tell.clone(), r#"{"state": "done"}"#.into(), 400, "unknown state `done`"),
        (format!("{STUDY}/trials/9/tell"), r#"{"value": 1}"#.into(), 404, "has no trial 9"),
        (
            "/api/v1/studies/nope/trials/0/tell".into(),
            r#"{"value": 1}"#.into(),
            404,
            "no study named `nope`",
        ),
        ("/api/v1/studies/nope/ask".into(), String::new(), 404, "send its study file as the body"),
        (format!("{STUDY}/ask"), bad_file, 400, "request body:15:10: [study].trials"),
        (format!("{STUDY}/ask"), big, 413, "length limit"),
    ];
    for (path, body, expected, says) in cases {
        let (status, answer) = server.post(&path, &body);
        assert_eq!(status, expected, "{path}: {answer}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{path}: {detail}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    assert_eq!(server.get(&format!("{STUDY}/trials/0")).1, before, "nothing changed");
    // Telling twice: the second is a conflict.
    assert_eq!(server.post(&tell, r#"{"value": 2.5}"#).0, 200);
    let (status, twice) = server.post(&tell, r#"{"value": 2.5}"#);
    assert_eq!(status, 409, "{twice}");
    assert!(twice["detail"].as_str().unwrap().contains("is complete, not running"), "{twice}");
    let (status, unknown) = server.get("/api/v2/studies");
    assert_eq!(status, 404, "{unknown}");
    assert_eq!(server.get(&format!("{STUDY}/trials?sort=size")).0, 400);
}

/// Eight clients ask, report and tell at once against one budget: the budget is
/// met exactly, every trial number is handed out once, and the database checks
/// clean. Then the server is killed (SIGKILL) under load and started again: every
/// trial it acknowledged as told is stored as told.
#[test]
fn concurrent_clients_meet_the_budget_exactly_and_a_killed_server_loses_nothing() {
    let dir = Dir::new();
    let study = quadratic()
        .replace("trials = 30", "trials = 1000")
        .replace("kind = \"auto\"", "kind = \"random\"");
    let server = Server::start(&dir, &[]);
    assert_eq!(server.post(&format!("{STUDY}/ask"), &study).0, 200);
    assert_eq!(server.post(&format!("{STUDY}/trials/0/tell"), r#"{"value": 1.0}"#).0, 200);
    let told: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(vec![0]);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                loop {
                    let (status, asked) = server.post(&format!("{STUDY}/ask"), "");
                    if status == 409 {
                        break;
                    }
                    assert_eq!(status, 200, "{asked}");
                    let number = asked["trial"].as_u64().unwrap();
                    for step in 1..=3 {
                        let body =
                            json!({"step": step, "value": 1.0 / f64::from(step)}).to_string();
                        let path = format!("{STUDY}/trials/{number}/steps");
                        assert_eq!(server.post(&path, &body).0, 200);
                    }
                    let path = format!("{STUDY}/trials/{number}/tell");
                    assert_eq!(server.post(&path, r#"{"value": 0.5}"#).0, 200);
                    told.lock().unwrap().push(number);
                }
            });
        }
    });
    let mut told = told.into_inner().unwrap();
    told.sort_unstable();
    assert_eq!(told, (0..1000).collect::<Vec<u64>>(), "each number once, the budget exactly");
    drop(server);
    let check = dir.ok(&["check", "--db", "api.sqlite"]);
    assert!(check.trim_end().ends_with(": ok"), "{check}");

    // Kill -9 while clients ask and tell; every acknowledged tell survives.
    let study = study
        .replace("trials = 1000", "trials = 100000")
        .replace("external-quadratic", "kill-test");
    let server = Server::start(&dir, &[]);
    assert_eq!(server.post("/api/v1/studies/kill-test/ask", &study).0, 200);
    let acknowledged: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());
    let pid = server.child.id();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let agent = &server.agent;
                loop {
                    let url = format!("{}/api/v1/studies/kill-test/ask", server.base);
                    let Ok(mut asked) = agent.post(&url).send("") else { break };
                    let Ok(asked) = asked.body_mut().read_json::<Value>() else { break };
                    let Some(number) = asked["trial"].as_u64() else { break };
                    let url =
                        format!("{}/api/v1/studies/kill-test/trials/{number}/tell", server.base);
                    match agent.post(&url).send(r#"{"value": 2.0}"#) {
                        Ok(response) if response.status() == 200 => {
                            acknowledged.lock().unwrap().push(number);
                        }
                        _ => break,
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(700));
        Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    });
    drop(server);
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() > 5, "the clients got going: {}", acknowledged.len());
    let restarted = Server::start(&dir, &[]);
    for number in acknowledged {
        let (status, trial) = restarted.get(&format!("/api/v1/studies/kill-test/trials/{number}"));
        assert_eq!(status, 200);
        assert_eq!(
            (trial["state"].as_str(), trial["value"].as_f64()),
            (Some("complete"), Some(2.0))
        );
    }
    drop(restarted);
    let check = dir.ok(&["check", "--db", "api.sqlite"]);
    assert!(check.trim_end().ends_with(": ok"), "{check}");
}

/// examples/remote_client.py (Python's standard library only) drives a 50-trial TPE
/// study with the median pruner to its budget over HTTP; Optuna reads the result
/// as it reads `hpo run`'s.
#[test]
fn the_python_client_runs_a_pruned_tpe_study_to_its_budget_over_http() {
    let dir = Dir::new();
    let study = quadratic()
        .replace("name = \"external-quadratic\"", "name = \"remote\"")
        .replace("trials = 30", "trials = 50")
        .replace("kind = \"auto\"", "kind = \"tpe\"")
        .replace(
            "[objective]",
            "[pruner]\nkind = \"median\"\nstartup_trials = 5\nwarmup_steps = 2\n\n[objective]",
        );
    dir.write("remote.toml", &study);
    let server = Server::start(&dir, &[]);
    let out = Command::new("python3")
        .arg(repo().join("examples/remote_client.py"))
        .args([server.base.as_str(), "remote.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let counts: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (complete, pruned) =
        (counts["complete"].as_u64().unwrap(), counts["pruned"].as_u64().unwrap());
    assert_eq!(complete + pruned, 50, "{counts}");
    assert!(pruned > 0 && complete > 5, "{counts}");
    assert_eq!(server.stop(), Some(0));
    let ours = dir.export("remote", "api.sqlite");
    let theirs = crate::optuna::optuna("read", &dir.path().join("api.sqlite"), "remote");
    let (ours, theirs) = (ours["trials"].as_array().unwrap(), theirs["trials"].as_array().unwrap());
    assert_eq!(ours.len(), 50);
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(theirs) {
        crate::optuna::assert_same_trial(a, b);
    }
}

/// `/metrics` parses as Prometheus text, and its numbers are the store's.
#[test]
fn metrics_parse_as_prometheus_text_and_match_the_store() {
    let dir = Dir::new();
    let server = Server::start(&dir, &[]);
    for number in 0..4 {
        let body = if number == 0 { quadratic() } else { String::new() };
        assert_eq!(server.post(&format!("{STUDY}/ask"), &body).0, 200);
        // Trial 1 trains two steps before it completes.
        for step in (1..=2).filter(|_| number == 1) {
            let path = format!("{STUDY}/trials/1/steps");
            let body = json!({"step": step, "value": 2.0}).to_string();
            assert_eq!(server.post(&path, &body).0, 200);
        }
        let tell = if number == 3 {
            r#"{"state": "fail"}"#.to_owned()
        } else {
            json!({"value": f64::from(number) + 0.5}).to_string()
        };
        assert_eq!(server.post(&format!("{STUDY}/trials/{number}/tell"), &tell).0, 200);
    }
    assert_eq!(server.post(&format!("{STUDY}/ask"), "").0, 200, "one left running");
    assert_eq!(server.get(&format!("{STUDY}/trials/99")).0, 404);
    let mut response = server.agent.get(format!("{}/metrics", server.base)).call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = response.body_mut().read_to_string().unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let sample = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let found = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
        let names: Vec<String> =
            scrape.samples.iter().map(|s| format!("{} {:?}", s.metric, s.labels)).collect();
        match found.unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{names:#?}")).value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) => v,
            prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        }
    };
    let study = ("study", "external-quadratic");
    let (_, listed) = server.get("/api/v1/studies");
    for state in ["complete", "pruned", "fail", "running", "waiting"] {
        let stored = listed["studies"][0]["trials"][state].as_f64().unwrap();
        assert_eq!(sample("hpo_trials", &[study, ("state", state)]), stored, "{state}");
    }
    assert_eq!(sample("hpo_trials", &[study, ("state", "complete")]), 3.0);
    assert_eq!(sample("hpo_best_value", &[study]), 0.5);
    let last_activity = sample("hpo_last_activity_timestamp_seconds", &[study]);
    let last_finished = sample("hpo_last_finished_timestamp_seconds", &[study]);
    assert!(last_finished > 1.7e9 && last_finished <= last_activity, "{last_finished}");
    // What is told of the finished trials: counted by state (pruned at 0 before
    // any), timed, and their steps summed.
    for (state, n) in [("complete", 3.0), ("pruned", 0.0), ("fail", 1.0)] {
        assert_eq!(sample("hpo_trials_finished_total", &[study, ("state", state)]), n, "{state}");
    }
    let durations = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "hpo_trial_duration_seconds" && s.labels.get("study") == Some(study.1)
        })
        .expect("the trial duration histogram");
    let prometheus_parse::Value::Histogram(buckets) = &durations.value else {
        panic!("{:?}", durations.value)
    };
    assert_eq!(buckets.last().unwrap().count, 4.0, "the four finished trials");
    assert_eq!(sample("hpo_epochs_trained_total", &[study]), 2.0);
    let ask_route = ("route", "/api/v1/studies/:study/ask");
    assert_eq!(sample("hpo_http_requests_total", &[ask_route, ("status", "200")]), 5.0);
    let trial_route = ("route", "/api/v1/studies/:study/trials/:number");
    assert_eq!(sample("hpo_http_requests_total", &[trial_route, ("status", "404")]), 1.0);
    let asks = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "hpo_http_request_duration_seconds"
                && s.labels.get("route") == Some(ask_route.1)
        })
        .expect("the ask latency histogram");
    let prometheus_parse::Value::Histogram(buckets) = &asks.value else {
        panic!("{:?}", asks.value)
    };
    assert_eq!(buckets.last().unwrap().count, 5.0, "every ask in the +Inf bucket");
}

/// The report's computations over HTTP are those of `hpo report`: the same pick
/// (which `hpo report` stores), a leaderboard led by the best trial, an importance
/// per parameter, a panel per regularization parameter, and every trial's gap.
#[test]
fn the_report_endpoint_answers_what_the_html_report_computes() {
    let dir = Dir::new();
    let study = quadratic().replace("[space]", "[space]\ndropout = { float = [0.0, 0.5] }");
    let server = Server::start(&dir, &[]);
    let mut values = Vec::new();
    for number in 0..12u64 {
        let body = if number == 0 { study.as_str() } else { "" };
        let (status, asked) = server.post(&format!("{STUDY}/ask"), body);
        assert_eq!(status, 200, "{asked}");
        let x = asked["params"]["x"].as_f64().unwrap();
        let dropout = asked["params"]["dropout"].as_f64().unwrap();
        let value = x * x + dropout;
        let tell = json!({"value": value}).to_string();
        assert_eq!(server.post(&format!("{STUDY}/trials/{number}/tell"), &tell).0, 200);
        values.push((value, number));
    }
    let best = values.iter().min_by(|a, b| a.0.total_cmp(&b.0)).unwrap().1;
    let (status, report) = server.get(&format!("{STUDY}/report"));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["recommendation"]["trial"], best, "{report}");
    assert_eq!(report["recommendation"]["provisional"], true);
    let leaderboard = report["leaderboard"].as_array().unwrap();
    assert_eq!(leaderboard[0]["trial"], best);
    assert_eq!(leaderboard[0]["rank"], 1);
    let mut params: Vec<&str> = report["importance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["param"].as_str().unwrap())
        .collect();
    params.sort_unstable();
    assert_eq!(params, ["dropout", "layers", "lr", "x"]);
    let panels = report["regularization"].as_array().unwrap();
    assert_eq!(panels.len(), 1, "{panels:?}");
    assert_eq!(panels[0]["param"], "dropout");
    assert_eq!(panels[0]["points"].as_array().unwrap().len(), 12);
    assert_eq!(report["generalization_gap"].as_array().unwrap().len(), 12);
    assert_eq!(report["overview"]["complete"], 12);
    // `hpo report` computes the same pick, and stores it with the study.
    dir.ok(&["report", "external-quadratic", "--db", "api.sqlite", "--out", "report"]);
    let (_, summary) = server.get(STUDY);
    assert_eq!(summary["pick"]["trial"], best, "{summary}");
    // An unknown study is a 404.
    assert_eq!(server.get("/api/v1/studies/nope/report").0, 404);
}

/// One trial's answer carries the runs `hpo confirm` trained of its configuration.
#[test]
fn a_trial_comes_with_its_confirm_runs() {
    let dir = Dir::new();
    dir.write("study.toml", &branin_study("conf", 6));
    dir.ok(&["run", "study.toml", "--db", "api.sqlite"]);
    dir.ok(&["confirm", "study.toml", "--top", "1", "--seeds", "2", "--db", "api.sqlite"]);
    let server = Server::start(&dir, &[]);
    let (_, report) = server.get("/api/v1/studies/conf/report");
    let best = report["leaderboard"][0]["trial"].as_u64().unwrap();
    let (status, trial) = server.get(&format!("/api/v1/studies/conf/trials/{best}"));
    assert_eq!(status, 200, "{trial}");
    let runs = trial["confirm_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{trial}");
    assert!(runs.iter().all(|r| r["state"] == "complete"), "{runs:?}");
    let other = (0..6).find(|n| *n != best).unwrap();
    let (_, other) = server.get(&format!("/api/v1/studies/conf/trials/{other}"));
    assert_eq!(other["confirm_runs"], json!([]));
}
