//! The OpenAPI document and the router agree, both ways.

use std::collections::BTreeSet;

use portcullis::api::http::{OPENAPI, ROUTES};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::spawn_app;

fn documented() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.clone(), path.clone()));
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(routes, documented());
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let app = spawn_app().await;
    for (method, path) in documented() {
        let path = path.replace("{id}", "0190f5c2-0000-7000-8000-000000000000");
        let req = match method.as_str() {
            "get" => app.http.get(app.url(&path)),
            "post" => app.http.post(app.url(&path)).json(&serde_json::json!({})),
            other => panic!("unexpected method {other}"),
        };
        let resp = req.send().await.unwrap();
        assert_ne!(resp.status(), 405, "{method} {path}");
        if resp.status() == 404 {
            let p: Value = resp.json().await.unwrap();
            assert_ne!(
                p["reason_code"], "route.not_found",
                "{method} {path} is documented but not routed"
            );
        }
    }
}

/// Removes every schema's `environment` property.
fn without_environments(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get_mut("properties") {
                props.remove("environment");
            }
            map.values_mut().for_each(without_environments);
        }
        Value::Array(items) => items.iter_mut().for_each(without_environments),
        _ => {}
    }
}

#[tokio::test]
async fn the_served_document_is_the_embedded_one_with_the_declared_environments() {
    let app = crate::support::TestApp::builder()
        .environments(vec![portcullis::domain::EnvironmentDecl {
            name: "live".into(),
            tier: portcullis::domain::Tier::Production,
        }])
        .spawn()
        .await;
    let mut served = app
        .get_as(None, "/openapi.json")
        .await
        .json_with(StatusCode::OK);
    for schema in [
        "/components/schemas/CheckRequest/properties/environment",
        "/paths/~1v1~1analysis/post/requestBody/content/application~1json/schema/properties/environment",
    ] {
        let env = served.pointer(schema).unwrap_or_else(|| panic!("{schema}"));
        assert_eq!(env["pattern"], "^(?:live)$", "{schema}: {env}");
        assert!(
            env["description"].as_str().unwrap().contains(": live."),
            "{env}"
        );
    }
    // Everything else is the embedded document.
    let mut embedded: Value = serde_json::from_str(OPENAPI).unwrap();
    without_environments(&mut served);
    without_environments(&mut embedded);
    assert_eq!(served, embedded);
}

/// The keys of a served decision, and of its approvals and resolution, are exactly the
/// documented `Decision` properties: a field added to `api/view.rs` without the document (or the
/// other way round) fails here.
#[tokio::test]
async fn a_served_decision_has_exactly_the_documented_fields() {
    let review = "rules:\n  - id: r\n    title: Reviewed\n    category: c\n    severity: high\n    condition: { path: $.request.labels.reviewed, op: exists }\n";
    let app = crate::support::TestApp::builder()
        .policies(&[("p.yaml", review)])
        .spawn()
        .await;
    let id = app
        .check(&crate::support::fixtures::good_check("openapi-fields"))
        .await
        .json_with(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let served = app.approve(None, &id).await.json_with(StatusCode::OK);
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let schema = &doc["components"]["schemas"]["Decision"]["properties"];
    let keys = |v: &Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&served), keys(schema));
    assert_eq!(
        keys(&served["resolution"]),
        keys(&schema["resolution"]["properties"])
    );
    assert_eq!(
        keys(&served["approvals"][0]),
        keys(&schema["approvals"]["items"]["properties"])
    );
    assert_eq!(served["principal"], "anonymous");
}

#[tokio::test]
async fn page_size_is_held_to_the_documented_maximum() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let max = doc["paths"]["/v1/decisions"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "page_size")
        .unwrap()["schema"]["maximum"]
        .as_u64()
        .unwrap();
    let app = spawn_app().await;
    let at = app
        .get_as(None, &format!("/v1/decisions?page_size={max}"))
        .await;
    at.expect(StatusCode::OK);
    let over = app
        .get_as(None, &format!("/v1/decisions?page_size={}", max + 1))
        .await
        .json_with(StatusCode::BAD_REQUEST);
    assert_eq!(over["field"], "page_size", "{over}");
}

#[tokio::test]
async fn every_secured_operation_documents_401_and_the_server_sends_it() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let app = crate::support::TestApp::builder()
        .token("ci", "pc_ci", vec![portcullis::auth::Role::Pipeline])
        .spawn()
        .await;
    for (method, path) in documented() {
        let op = &doc["paths"][&path][&method];
        if op["security"] == serde_json::json!([]) {
            continue;
        }
        assert!(
            op["responses"]["401"].is_object(),
            "{method} {path} does not document 401"
        );
        let url = app.url(&path.replace("{id}", "0190f5c2-0000-7000-8000-000000000000"));
        let req = match method.as_str() {
            "get" => app.http.get(url),
            _ => app.http.post(url).json(&serde_json::json!({})),
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{method} {path} without a token");
    }
}
