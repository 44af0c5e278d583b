//! The simulators answer as the contract document says the real tools do (auth, error bodies,
//! paging, traps), their fault knobs work, and they never borrow the adapters' types.

use portcullis::sim;
use serde_json::{Value, json};

async fn get(url: &str, auth: Option<(&str, &str)>, bearer: Option<&str>) -> (u16, String) {
    let mut r = reqwest::Client::new()
        .get(url)
        .header("accept", "application/json");
    if let Some((u, p)) = auth {
        r = r.basic_auth(u, Some(p));
    }
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn sonarqube_speaks_the_contract() {
    let sims = sim::start(0).await.unwrap();
    let base = &sims.sonarqube.base_url;
    let status = format!("{base}/api/qualitygates/project_status?projectKey=fresh-service");
    // 401 has an empty body; Basic `token:` and Bearer both work.
    assert_eq!(
        get(&status, None, Some("wrong")).await,
        (401, String::new())
    );
    let (code, body) = get(&status, Some((sim::sonarqube::TOKEN, "")), None).await;
    assert_eq!(code, 200);
    assert_eq!(
        json(&body),
        json!({"projectStatus": {"status": "NONE", "conditions": []}})
    );
    let tok = Some(sim::sonarqube::TOKEN);
    let (code, body) = get(
        &format!("{base}/api/qualitygates/project_status?projectKey=payments-api&branch=x"),
        None,
        tok,
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        json(&body)["errors"][0]["msg"],
        "Branch 'x' in project 'payments-api' not found"
    );
    let (code, _) = get(
        &format!("{base}/api/qualitygates/project_status?projectKey=a&analysisId=b"),
        None,
        tok,
    )
    .await;
    assert_eq!(code, 400);
    let steps: Vec<String> = futures::future::join_all((0..3).map(|_| async {
        let (_, b) = get(&format!("{base}/api/ce/task?id=AX-task-slow"), None, tok).await;
        json(&b)["task"]["status"].as_str().unwrap().to_string()
    }))
    .await;
    let mut sorted = steps.clone();
    sorted.sort();
    assert_eq!(sorted, ["IN_PROGRESS", "PENDING", "SUCCESS"], "{steps:?}");
    // Community edition has only the main branch.
    let client = reqwest::Client::new();
    client
        .post(format!("{base}/_sim/scenario/community_edition"))
        .send()
        .await
        .unwrap();
    let (code, _) = get(
        &format!(
            "{base}/api/qualitygates/project_status?projectKey=payments-api&branch=release/1.8"
        ),
        None,
        tok,
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn jira_pages_by_token_and_has_removed_the_legacy_search() {
    let sims = sim::start(0).await.unwrap();
    let base = &sims.jira.base_url;
    let auth = Some((sim::jira::EMAIL, sim::jira::API_TOKEN));
    let (code, body) = get(&format!("{base}/rest/api/3/issue/OPS-42"), None, None).await;
    assert_eq!(
        (code, body.as_str()),
        (401, "Client must be authenticated to access this resource.")
    );
    let (_, body) = get(
        &format!("{base}/rest/api/2/issue/OPS-44?fields=status"),
        None,
        Some(sim::jira::PAT),
    )
    .await;
    let issue = json(&body);
    assert_eq!(issue["fields"]["status"]["name"], "Approved");
    assert_eq!(
        issue["fields"]["status"]["statusCategory"]["key"],
        "indeterminate"
    );
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = format!(
            "{base}/rest/api/3/search/jql?jql=project%20%3D%20REL&maxResults=3&fields=status"
        );
        if let Some(t) = &token {
            url.push_str(&format!("&nextPageToken={t}"));
        }
        let (code, body) = get(&url, auth, None).await;
        assert_eq!(code, 200, "{body}");
        let page = json(&body);
        assert!(page.get("total").is_none());
        keys.extend(
            page["issues"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["key"].as_str().unwrap().to_string()),
        );
        if page["isLast"] == true {
            assert!(page.get("nextPageToken").is_none());
            break;
        }
        token = Some(page["nextPageToken"].as_str().unwrap().to_string());
    }
    assert_eq!(keys.len(), 7);
    let (code, _) = get(
        &format!("{base}/rest/api/3/search?jql=project%3DREL"),
        auth,
        None,
    )
    .await;
    assert_eq!(code, 410);
    let (code, _) = get(&format!("{base}/rest/api/3/search/jql?jql="), auth, None).await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn servicenow_distinguishes_raw_and_display_values() {
    let sims = sim::start(0).await.unwrap();
    let base = &sims.servicenow.base_url;
    let auth = Some((sim::servicenow::USER, sim::servicenow::PASSWORD));
    let table = format!("{base}/api/now/table/change_request");
    let (code, body) = get(
        &format!("{table}?sysparm_query=number=CHG0030004"),
        auth,
        None,
    )
    .await;
    assert_eq!(code, 200);
    let rec = &json(&body)["result"][0];
    assert_eq!(rec["approval"], "approved");
    assert_eq!(rec["state"], "-2");
    assert_eq!(rec["end_date"], "");
    assert!(rec["cmdb_ci"]["link"].is_string());
    let (_, body) = get(&format!("{table}?sysparm_query=number=CHG0030001&sysparm_display_value=all&sysparm_exclude_reference_link=true"), auth, None).await;
    let rec = &json(&body)["result"][0];
    assert_eq!(
        rec["state"],
        json!({"display_value": "Scheduled", "value": "-2"})
    );
    assert_eq!(rec["cmdb_ci"]["display_value"], "payments-api");
    assert_ne!(
        rec["start_date"]["display_value"],
        rec["start_date"]["value"]
    );
    // An unknown condition is dropped silently: the result widens.
    let (_, body) = get(
        &format!("{table}?sysparm_query=numbr=CHG0030001"),
        auth,
        None,
    )
    .await;
    assert_eq!(json(&body)["result"].as_array().unwrap().len(), 7);
    let (_, body) = get(&format!("{table}?sysparm_query=number=CHG9"), auth, None).await;
    assert_eq!(json(&body), json!({"result": []}));
    let (code, body) = get(&format!("{table}/nope"), auth, None).await;
    assert_eq!(code, 404);
    assert_eq!(json(&body)["error"]["message"], "No Record found");
    let (code, body) = get(&table, Some(("x", "y")), None).await;
    assert_eq!(code, 401);
    assert_eq!(json(&body)["error"]["message"], "User Not Authenticated");
    let (_, body) = get(
        &format!("{base}/api/sn_chg_rest/change?sysparm_query=number=CHG0030003"),
        auth,
        None,
    )
    .await;
    let rec = &json(&body)["result"][0];
    assert_eq!(rec["state"], json!({"display_value": "New", "value": "-5"}));
    assert_eq!(rec["approval"]["value"], "rejected");
}

#[tokio::test]
async fn aqua_logs_in_and_reports_the_scanned_digest() {
    let sims = sim::start(0).await.unwrap();
    let base = &sims.aqua.base_url;
    let client = reqwest::Client::new();
    let login = client
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"id": sim::aqua::USER, "password": sim::aqua::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::OK);
    let token = login.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = get(
        &format!("{base}/api/v2/images/GHCR/acme/worker/3.1"),
        None,
        Some(&token),
    )
    .await;
    assert_eq!(code, 200);
    let image = json(&body);
    assert_eq!(image["scan_status"], "finished");
    assert_ne!(image["digest"], sim::aqua::DIGESTS[2].1);
    let (code, _) = get(
        &format!("{base}/api/v2/images/GHCR/acme/nothing/1"),
        None,
        Some(&token),
    )
    .await;
    assert_eq!(code, 404);
    sims.aqua.control.apply(&sim::FaultSettings {
        tokens_expired: Some(true),
        ..Default::default()
    });
    let (code, _) = get(
        &format!("{base}/api/v2/images/GHCR/acme/worker/3.1"),
        None,
        Some(&token),
    )
    .await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn fault_knobs_fail_delay_rate_limit_and_garble() {
    let sims = sim::start(0).await.unwrap();
    let base = &sims.sonarqube.base_url;
    let client = reqwest::Client::new();
    let faults = json!({"fail_next": {"count": 1, "status": 503}, "rate_limit_next": {"count": 1, "retry_after_s": 7}, "malformed_next": 1});
    let r = client
        .post(format!("{base}/_sim/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let url = format!("{base}/api/qualitygates/project_status?projectKey=payments-api");
    let tok = Some(sim::sonarqube::TOKEN);
    assert_eq!(get(&url, None, tok).await.0, 503);
    let r = client
        .get(&url)
        .bearer_auth(sim::sonarqube::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let (code, body) = get(&url, None, tok).await;
    assert_eq!(code, 200);
    assert!(serde_json::from_str::<Value>(&body).is_err());
    assert_eq!(get(&url, None, tok).await.0, 200);
    client
        .post(format!("{base}/_sim/faults"))
        .json(&json!({"credentials_expired": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&url, None, tok).await.0, 401);
    client
        .post(format!("{base}/_sim/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&url, None, tok).await.0, 200);
    let stats: Value = client
        .get(format!("{base}/_sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 6);
}

#[test]
fn simulators_never_use_the_adapters_types() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("sim.rs")];
    // Every file under `sim/`, sub-directories (`sim/github/`) included.
    let mut dirs = vec![root.join("sim")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("adapters::"),
            "{} uses the adapters",
            f.display()
        );
    }
}

#[test]
fn the_demo_walks_through_continue_review_and_terminate() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["sim", "demo"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("verdict  "))
        .map(|l| l.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(
        verdicts,
        ["CONTINUE", "MANUAL REVIEW", "TERMINATE"],
        "{text}"
    );
    assert!(
        text.contains("`$.aqua.vulnerabilities.critical` is `2`"),
        "{text}"
    );
}

#[tokio::test]
async fn a_created_normal_change_moves_from_new_to_scheduled() {
    let sims = sim::start(0).await.unwrap();
    let base = &sims.servicenow.base_url;
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{base}/api/sn_chg_rest/change/normal"))
        .basic_auth(sim::servicenow::USER, Some(sim::servicenow::PASSWORD))
        .json(&json!({"short_description": "deploy", "cmdb_ci": "nonexistent", "bogus": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["result"]["state"]["value"], "-5");
    assert_eq!(created["result"]["approval"]["value"], "not requested");
    assert_eq!(
        created["__meta"]["ignoredAttributes"],
        json!(["bogus", "cmdb_ci"])
    );
    let id = created["result"]["sys_id"]["value"].as_str().unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (_, body) = get(
            &format!("{base}/api/sn_chg_rest/change/{id}"),
            Some((sim::servicenow::USER, sim::servicenow::PASSWORD)),
            None,
        )
        .await;
        let r = json(&body)["result"].clone();
        seen.push(format!(
            "{}/{}",
            r["state"]["value"].as_str().unwrap(),
            r["approval"]["value"].as_str().unwrap()
        ));
    }
    assert_eq!(
        seen,
        [
            "-4/not requested",
            "-3/requested",
            "-2/approved",
            "-2/approved"
        ]
    );
}
