//! An Orca-faithful Webhook stage, written from the decision tables in
//! shared/contracts/spinnaker.md §3–§5 (not from the service's code): create → resolve the
//! status URL → poll with compressed timing → map the status → cancel after TERMINAL/CANCELED.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

#[derive(Clone)]
pub enum Resolution {
    /// `statusUrlResolution: webhookResponse` with `statusUrlJsonPath`.
    WebhookResponse(String),
    /// `statusUrlResolution: locationHeader`.
    LocationHeader,
}

#[derive(Clone)]
pub struct Stage {
    pub url: String,
    /// A JSON value (sent as application/json) or a string template (sent as the given type).
    pub payload: Payload,
    pub custom_headers: Vec<(String, String)>,
    pub resolution: Resolution,
    pub status_json_path: String,
    pub progress_json_path: Option<String>,
    pub success_statuses: String,
    pub canceled_statuses: String,
    pub terminal_statuses: String,
    pub fail_fast_status_codes: Vec<u16>,
    pub retry_status_codes: Vec<u16>,
    pub cancel_endpoint: Option<String>,
    pub cancel_payload: Option<Value>,
    /// Orca waits 10 s between create attempts; compressed here.
    pub create_retry: Duration,
    /// Orca polls every 1 s then 15 s; compressed here.
    pub poll_every: Duration,
    pub monitor_timeout: Duration,
}

#[derive(Clone)]
pub enum Payload {
    Json(Value),
    Text { body: String, content_type: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Terminal(String),
    Canceled,
}

#[derive(Debug)]
pub struct Run {
    pub outcome: Outcome,
    pub create_attempts: usize,
    pub polls: usize,
    pub create_body: Value,
    pub create_status: u16,
    pub status_url: Option<String>,
    pub last_monitor_body: Value,
    pub cancel_sent: bool,
}

/// What the test does after each poll (the "user" and the outside world).
pub enum Next {
    Keep,
    /// The user cancels the pipeline while the monitor task runs.
    UserCancels,
}

impl Stage {
    /// The stage as `integrations/spinnaker/webhook-stage.json` configures it.
    pub fn portcullis(base: &str, token: Option<&str>, payload: Value) -> Stage {
        let mut custom_headers = vec![];
        if let Some(t) = token {
            custom_headers.push(("Authorization".to_string(), format!("Bearer {t}")));
        }
        let request_id = payload["requestId"].clone();
        Stage {
            url: format!("{base}/v1/spinnaker/gates"),
            payload: Payload::Json(payload),
            custom_headers,
            resolution: Resolution::WebhookResponse("$.statusUrl".into()),
            status_json_path: "$.status".into(),
            progress_json_path: Some("$.message".into()),
            success_statuses: "APPROVED".into(),
            canceled_statuses: "CANCELED".into(),
            terminal_statuses: "REJECTED,TERMINATED,EXPIRED,ERROR".into(),
            fail_fast_status_codes: vec![504],
            retry_status_codes: vec![],
            cancel_endpoint: Some(format!("{base}/v1/spinnaker/gates/cancel")),
            cancel_payload: Some(
                serde_json::json!({"requestId": request_id, "reason": "spinnaker-cancel"}),
            ),
            create_retry: Duration::from_millis(20),
            poll_every: Duration::from_millis(20),
            monitor_timeout: Duration::from_secs(20),
        }
    }

    pub async fn run(&self, mut after_poll: impl FnMut(usize, &Value) -> Next) -> Run {
        self.run_async(|n, body| std::future::ready(after_poll(n, &body)))
            .await
    }

    /// Like `run`, with an async hook between polls (to restart the service, say).
    pub async fn run_async<F, Fut>(&self, mut after_poll: F) -> Run
    where
        F: FnMut(usize, Value) -> Fut,
        Fut: std::future::Future<Output = Next>,
    {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let mut run = Run {
            outcome: Outcome::Terminal("not started".into()),
            create_attempts: 0,
            polls: 0,
            create_body: Value::Null,
            create_status: 0,
            status_url: None,
            last_monitor_body: Value::Null,
            cancel_sent: false,
        };
        // --- create (3a) ---
        let created = loop {
            run.create_attempts += 1;
            let mut req = client.post(&self.url);
            for (k, v) in &self.custom_headers {
                req = req.header(k, v);
            }
            req = match &self.payload {
                Payload::Json(v) => req.json(v),
                Payload::Text { body, content_type } => {
                    req.header("content-type", content_type).body(body.clone())
                }
            };
            match req.send().await {
                Err(e) if e.is_timeout() => {
                    // C5: a timed-out POST is not retried.
                    run.outcome = Outcome::Terminal(format!("create timed out: {e}"));
                    return self.finish(&client, run).await;
                }
                Err(e) => {
                    // C6: refused, reset, TLS: terminal. (DNS failures cannot happen on 127.0.0.1.)
                    run.outcome = Outcome::Terminal(format!("create failed: {e}"));
                    return self.finish(&client, run).await;
                }
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let body = read_body(resp, true).await;
                    run.create_status = code;
                    run.create_body = body.clone();
                    if self.fail_fast_status_codes.contains(&code) {
                        run.outcome = Outcome::Terminal(format!("create: fail-fast status {code}"));
                        return self.finish(&client, run).await;
                    }
                    if code >= 500 || code == 429 {
                        tokio::time::sleep(self.create_retry).await;
                        continue; // C2
                    }
                    if code >= 400 {
                        run.outcome = Outcome::Terminal(format!("create: {code}: {body}"));
                        return self.finish(&client, run).await;
                    }
                    break (headers, body);
                }
            }
        };
        // C8: resolve the status URL.
        let (headers, body) = created;
        let url = match &self.resolution {
            Resolution::WebhookResponse(path) => match json_path(&body, path) {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    run.outcome = Outcome::Terminal("the status URL could not be resolved".into());
                    return self.finish(&client, run).await;
                }
            },
            Resolution::LocationHeader => headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
        };
        if url.trim().is_empty() {
            run.outcome =
                Outcome::Terminal("no status URL found although waiting was requested".into());
            return self.finish(&client, run).await;
        }
        run.status_url = Some(url.clone());
        // M2: the URL check rejects URIs that are not absolute.
        if reqwest::Url::parse(url.trim()).is_err() {
            run.outcome = Outcome::Terminal(format!("status URL `{url}` is not absolute"));
            return self.finish(&client, run).await;
        }
        // --- monitor (3b) ---
        let table = match self.status_table() {
            Ok(t) => t,
            Err(e) => {
                run.outcome = Outcome::Terminal(e);
                return self.finish(&client, run).await;
            }
        };
        let started = tokio::time::Instant::now();
        loop {
            if started.elapsed() > self.monitor_timeout {
                run.outcome = Outcome::Terminal("monitor timed out".into());
                return self.finish(&client, run).await;
            }
            run.polls += 1;
            let mut req = client.get(url.trim());
            for (k, v) in &self.custom_headers {
                req = req.header(k, v);
            }
            let result = match req.send().await {
                Err(e) if e.is_timeout() => None, // M1
                Err(e) => {
                    run.outcome = Outcome::Terminal(format!("poll failed: {e}")); // M2
                    return self.finish(&client, run).await;
                }
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    if code >= 400 {
                        if code >= 500 || code == 429 || self.retry_status_codes.contains(&code) {
                            None // M4
                        } else {
                            run.outcome = Outcome::Terminal(format!("poll: HTTP {code}")); // M5
                            return self.finish(&client, run).await;
                        }
                    } else {
                        let body = read_body(resp, false).await;
                        run.last_monitor_body = body.clone();
                        Some(body)
                    }
                }
            };
            if let Some(body) = result {
                if body.is_null() {
                    run.outcome = Outcome::Terminal("empty poll body".into()); // M7
                    return self.finish(&client, run).await;
                }
                let Some(status) = json_path(&body, &self.status_json_path) else {
                    run.outcome = Outcome::Terminal("status path not found".into()); // M8
                    return self.finish(&client, run).await;
                };
                if let Some(p) = &self.progress_json_path {
                    // M10: checked before the status is mapped.
                    if !matches!(json_path(&body, p), Some(Value::String(_))) {
                        run.outcome =
                            Outcome::Terminal("progress path missing or not a string".into());
                        return self.finish(&client, run).await;
                    }
                }
                let mapped = match status {
                    Value::Number(n) if n.as_u64() == Some(100) && !n.is_f64() => {
                        Some(Outcome::Succeeded)
                    } // M11
                    Value::Number(_) => None,
                    Value::String(s) => table.get(&s.trim().to_uppercase()).cloned(),
                    Value::Bool(b) => table.get(if *b { "TRUE" } else { "FALSE" }).cloned(),
                    _ => {
                        run.outcome = Outcome::Terminal("status is not a single value".into()); // M9
                        return self.finish(&client, run).await;
                    }
                };
                if let Some(outcome) = mapped {
                    run.outcome = outcome;
                    return self.finish(&client, run).await;
                }
            }
            if let Next::UserCancels = after_poll(run.polls, run.last_monitor_body.clone()).await {
                // MonitorWebhookTask.onCancel sends the cancel request.
                run.outcome = Outcome::Canceled;
                self.send_cancel(&client, &mut run).await;
                return run;
            }
            tokio::time::sleep(self.poll_every).await;
        }
    }

    /// M12a: lists uppercased and trimmed; a later list overrides an earlier one; duplicates
    /// within one list, or no success list, fail the stage.
    fn status_table(&self) -> Result<HashMap<String, Outcome>, String> {
        if self.success_statuses.trim().is_empty() {
            return Err("successStatuses is required".into());
        }
        let mut table = HashMap::new();
        for (list, outcome) in [
            (&self.success_statuses, Outcome::Succeeded),
            (&self.canceled_statuses, Outcome::Canceled),
            (
                &self.terminal_statuses,
                Outcome::Terminal("terminal status".into()),
            ),
        ] {
            let mut seen = std::collections::HashSet::new();
            for item in list
                .split(',')
                .map(|s| s.trim().to_uppercase())
                .filter(|s| !s.is_empty())
            {
                if !seen.insert(item.clone()) {
                    return Err(format!("duplicate status `{item}`"));
                }
                table.insert(item, outcome.clone());
            }
        }
        Ok(table)
    }

    /// §5: the cancel request follows every TERMINAL or CANCELED end.
    async fn finish(&self, client: &reqwest::Client, mut run: Run) -> Run {
        if matches!(run.outcome, Outcome::Terminal(_) | Outcome::Canceled) {
            self.send_cancel(client, &mut run).await;
        }
        run
    }

    async fn send_cancel(&self, client: &reqwest::Client, run: &mut Run) {
        if let Some(url) = &self.cancel_endpoint {
            let mut req = client.post(url);
            for (k, v) in &self.custom_headers {
                req = req.header(k, v);
            }
            if let Some(p) = &self.cancel_payload {
                req = req.json(p);
            }
            // Best effort: the result is ignored, errors swallowed.
            let _ = req.send().await;
            run.cancel_sent = true;
        }
    }
}

/// How Orca reads a body: JSON only with a JSON content type; anything else is a string. On the
/// create call's error responses, text starting with `{` or `[` is parsed too.
async fn read_body(resp: reqwest::Response, error_sniffing: bool) -> Value {
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if text.is_empty() {
        return Value::Null;
    }
    let json_type = ct.starts_with("application/json")
        || (ct.starts_with("application/") && ct.contains("+json"));
    let sniff =
        error_sniffing && !status.is_success() && (text.starts_with('{') || text.starts_with('['));
    if json_type || sniff {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    } else {
        Value::String(text)
    }
}

/// Definite Jayway paths only (`$.a.b`, `a.b`), which is all a gate should use.
fn json_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let p = path.trim().trim_start_matches('$').trim_start_matches('.');
    p.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(v, |cur, key| cur.as_object()?.get(key))
}
