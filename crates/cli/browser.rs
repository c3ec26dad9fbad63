//! A headless Chromium driven over the DevTools protocol (a JSON-RPC over one
//! WebSocket): open a page, evaluate script in it, click at a point, take a
//! screenshot, and collect every console error and uncaught exception. `hpo bench
//! dashboard` times the dashboard in it, and the dashboard's tests use it.
//!
//! Chromium is found as `$HPO_CHROMIUM`, else `chromium`, `chromium-browser` or
//! `google-chrome` on the PATH.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A running headless Chromium with one page open; killed on drop.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Console errors, uncaught exceptions and failed loads, as text, in order.
    pub errors: Vec<String>,
}

fn chromium() -> Result<String> {
    if let Ok(path) = std::env::var("HPO_CHROMIUM") {
        return Ok(path);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .is_ok_and(|out| out.status.success());
        if found {
            return Ok(name.to_owned());
        }
    }
    bail!(
        "no Chromium found: install Debian's `chromium` package (scripts/test.sh does), or set HPO_CHROMIUM to a Chromium or Chrome binary"
    )
}

impl Browser {
    /// Starts Chromium headless with a `width` x `height` window and a fresh profile.
    pub fn launch(width: u32, height: u32) -> Result<Browser> {
        let profile = tempfile::tempdir()?;
        let binary = chromium()?;
        let mut child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {binary}"))?;
        let stderr = child.stderr.take().context("Chromium's stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let endpoint = loop {
            let line = lines
                .next()
                .ok_or_else(|| anyhow!("{binary} exited before it listened for DevTools"))??;
            if let Some(at) = line.find("ws://") {
                break line[at..].trim().to_owned();
            }
        };
        // Chromium keeps writing to stderr; drain it so it never blocks.
        std::thread::spawn(move || for _ in lines {});
        let port = endpoint
            .trim_start_matches("ws://")
            .split(['/', ':'])
            .nth(1)
            .context("no port in the DevTools address")?
            .to_owned();
        let targets: Value = ureq::get(&format!("http://127.0.0.1:{port}/json/list"))
            .call()?
            .body_mut()
            .read_json()?;
        let page = targets
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .context("Chromium opened no page")?
            .to_owned();
        let (socket, _) = tungstenite::connect(page.as_str())?;
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        }
        let mut browser =
            Browser { child, _profile: profile, socket, next_id: 0, errors: Vec::new() };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.call(domain, json!({}))?;
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 700}),
        )?;
        Ok(browser)
    }

    /// Calls DevTools method `method` and returns its result; events that arrive
    /// meanwhile are read for errors.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params});
        self.socket.send(Message::text(request.to_string()))?;
        loop {
            let message = self.socket.read().with_context(|| format!("waiting for {method}"))?;
            let Message::Text(text) = message else { continue };
            let doc: Value = serde_json::from_str(text.as_str())?;
            if doc["id"] == id {
                if let Some(err) = doc.get("error") {
                    bail!("{method} failed: {err}");
                }
                return Ok(doc["result"].clone());
            }
            self.event(&doc);
        }
    }

    /// Records an event that tells of an error.
    fn event(&mut self, doc: &Value) {
        let params = &doc["params"];
        match doc["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                let details = &params["exceptionDetails"];
                let text = details["exception"]["description"]
                    .as_str()
                    .or(details["text"].as_str())
                    .unwrap_or("an exception");
                self.errors.push(format!("uncaught: {text}"));
            }
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
                let args: Vec<String> = params["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        a["value"].as_str().or(a["description"].as_str()).unwrap_or("?").to_owned()
                    })
                    .collect();
                self.errors.push(format!("console.error: {}", args.join(" ")));
            }
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                let entry = &params["entry"];
                self.errors.push(format!(
                    "{}: {} {}",
                    entry["source"].as_str().unwrap_or("log"),
                    entry["text"].as_str().unwrap_or(""),
                    entry["url"].as_str().unwrap_or("")
                ));
            }
            _ => {}
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, expression: &str) -> Result<Value> {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(details) = result.get("exceptionDetails") {
            let text = details["exception"]["description"].as_str().unwrap_or("an exception");
            bail!("`{expression}` threw: {text}");
        }
        Ok(result["result"]["value"].clone())
    }

    /// Opens `url` and waits until the document has loaded.
    pub fn goto(&mut self, url: &str) -> Result<()> {
        self.call("Page.navigate", json!({"url": url}))?;
        self.wait_for("document.readyState === 'complete'", Duration::from_secs(30))?;
        Ok(())
    }

    /// Evaluates `expression` every 50 ms until it is truthy; returns its value.
    pub fn wait_for(&mut self, expression: &str, timeout: Duration) -> Result<Value> {
        let started = Instant::now();
        loop {
            let value = self.eval(expression).unwrap_or(Value::Null);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if started.elapsed() > timeout {
                bail!("timed out after {timeout:?} waiting for `{expression}`");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A left click at (`x`, `y`) in CSS pixels of the viewport, as a user's mouse.
    pub fn click_at(&mut self, x: f64, y: f64) -> Result<()> {
        self.mouse("mouseMoved", x, y)?;
        self.mouse("mousePressed", x, y)?;
        self.mouse("mouseReleased", x, y)
    }

    /// One mouse event at (`x`, `y`): `mouseMoved`, `mousePressed` or `mouseReleased`.
    pub fn mouse(&mut self, kind: &str, x: f64, y: f64) -> Result<()> {
        let button = if kind == "mouseMoved" { "none" } else { "left" };
        self.call(
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": x, "y": y, "button": button, "clickCount": 1}),
        )?;
        Ok(())
    }

    /// The centre of the first element matching CSS `selector`, scrolled into view.
    pub fn centre_of(&mut self, selector: &str) -> Result<(f64, f64)> {
        let selector = serde_json::to_string(selector)?;
        let at = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector}); if (!e) return null; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ))?;
        match (at[0].as_f64(), at[1].as_f64()) {
            (Some(x), Some(y)) => Ok((x, y)),
            _ => bail!("no element matches {selector}"),
        }
    }

    /// Saves the whole page (not just the viewport) as a PNG at `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<()> {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        )?;
        let data = shot["data"].as_str().context("no screenshot data")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, base64(data)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (the screenshot's encoding) decoded.
fn base64(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("the screenshot is not base64"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}
