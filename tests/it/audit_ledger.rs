//! The decision log as an auditor meets it: a decision's proof and the audit export, both
//! verified offline by `portcullis audit verify` with only the public key, and every kind of
//! tampering — in the file and directly in the database — named by the verifier.

use std::path::{Path, PathBuf};

use portcullis::audit::checkpoint::public_key_from_pem;
use portcullis::audit::proof::DecisionProof;
use portcullis::audit::verify::{ExportVerifier, Problem, Report, verify_proof};
use portcullis::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::fixtures::good_check;

const REVIEW: &str = "rules:\n  - id: needs-review\n    title: Needs a human\n    category: test\n    severity: high\n    condition: { path: $.request.application, op: absent }\n";

struct Ledger {
    app: TestApp,
    key: ed25519_dalek::VerifyingKey,
    key_file: PathBuf,
    ids: Vec<String>,
}

/// A service with mixed traffic: three reviews, one approved, one rejected after a refused
/// self-approval, one left pending.
async fn ledger() -> Ledger {
    let app = TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .token("ci", "pc_pipeline", vec![Role::Pipeline])
        .token("bob", "pc_bob", vec![Role::Approver])
        .token("alice", "pc_alice", vec![Role::Approver])
        .token("audit", "pc_audit", vec![Role::Auditor])
        .spawn()
        .await;
    let mut ids = Vec::new();
    for key in ["l1", "l2", "l3"] {
        let d = app
            .check(&good_check(key))
            .await
            .json_with(StatusCode::CREATED);
        ids.push(d["id"].as_str().unwrap().to_string());
    }
    app.approve(Some("pc_bob"), &ids[0])
        .await
        .expect(StatusCode::OK);
    // alice triggered the deploy: her approval is refused, and the refusal recorded.
    app.approve(Some("pc_alice"), &ids[1])
        .await
        .expect(StatusCode::FORBIDDEN);
    app.reject(Some("pc_bob"), &ids[1])
        .await
        .expect(StatusCode::OK);

    let k = app.public_key(None).await.json_with(StatusCode::OK);
    let pem = k["public_key_pem"].as_str().unwrap().to_string();
    let key = public_key_from_pem(&pem).unwrap();
    let key_file = app.dir.path().join("audit-public.pem");
    std::fs::write(&key_file, pem).unwrap();
    Ledger {
        app,
        key,
        key_file,
        ids,
    }
}

/// The body of an auditor's GET of `path`, after checking it answered 200.
async fn proof_text(l: &Ledger, id: &str) -> String {
    l.app
        .proof(Some("pc_audit"), id)
        .await
        .expect(StatusCode::OK)
        .body
}

/// The body of an auditor's export with `query`, after checking it answered 200.
async fn export_text(l: &Ledger, query: &str) -> String {
    l.app
        .audit_export(Some("pc_audit"), query)
        .await
        .expect(StatusCode::OK)
        .body
}

fn verify_export(key: &ed25519_dalek::VerifyingKey, text: &str) -> Report {
    let mut v = ExportVerifier::new(key);
    for line in text.lines() {
        v.feed(line);
    }
    v.finish()
}

/// `portcullis audit verify`'s exit code and output for `text`.
async fn cli_verify(key_file: &Path, dir: &Path, name: &str, text: &str) -> (i32, String) {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "verify", "--public-key"])
        .arg(key_file)
        .arg(&file)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn problems(r: &Report) -> String {
    r.problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_decision_proof_verifies_offline_and_every_alteration_is_named() {
    let l = ledger().await;
    let text = proof_text(&l, &l.ids[1]).await;
    let proof: DecisionProof = serde_json::from_str(&text).unwrap();
    // Created, a refused approval, the rejection.
    assert_eq!(proof.events.len(), 3, "{text}");
    let report = verify_proof(&proof, &l.key);
    assert!(report.ok(), "{}", problems(&report));
    let (code, out) = cli_verify(&l.key_file, l.app.dir.path(), "proof.json", &text).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("verified: 1 decision(s), 3 event(s)"),
        "{out}"
    );

    // An edited event text.
    let mut edited = proof.clone();
    edited.events[1].event = edited.events[1].event.replace("alice", "alicf");
    let r = verify_proof(&edited, &l.key);
    assert!(
        r.problems.contains(&Problem::EditedEvent {
            seq: proof.events[1].seq
        }),
        "{}",
        problems(&r)
    );

    // A missing event: the stored state no longer follows from the rest.
    let mut missing = proof.clone();
    missing.events.remove(2);
    let r = verify_proof(&missing, &l.key);
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, Problem::StateDisagrees { field, .. } if field == "decided_at" || field == "status" || field == "verdict" || field == "resolution" || field == "summary")),
        "{}",
        problems(&r)
    );

    // Reordered events.
    let mut reordered = proof.clone();
    reordered.events.swap(1, 2);
    let r = verify_proof(&reordered, &l.key);
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, Problem::UnexpectedEvent { .. })),
        "{}",
        problems(&r)
    );

    // A stored state that disagrees with the events.
    let mut stored = proof.clone();
    stored.decision["verdict"] = json!("continue");
    let r = verify_proof(&stored, &l.key);
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, Problem::StateDisagrees { field, .. } if field == "verdict")),
        "{}",
        problems(&r)
    );

    // A checkpoint with a bad signature.
    let mut forged = proof.clone();
    forged.checkpoint.checkpoint.tree_size += 1;
    let r = verify_proof(&forged, &l.key);
    assert!(
        r.problems.contains(&Problem::BadSignature {
            checkpoint: proof.checkpoint.checkpoint.index
        }),
        "{}",
        problems(&r)
    );

    // Another key.
    let other = portcullis::audit::checkpoint::CheckpointSigner::generate();
    let other_key = public_key_from_pem(&other.public_pem().unwrap()).unwrap();
    let r = verify_proof(&proof, &other_key);
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, Problem::UnknownKey { .. })),
        "{}",
        problems(&r)
    );

    // The CLI says so with exit 7, naming the problem.
    let bad = serde_json::to_string(&edited).unwrap();
    let (code, out) = cli_verify(&l.key_file, l.app.dir.path(), "bad.json", &bad).await;
    assert_eq!(code, 7, "{out}");
    assert!(
        out.contains(&format!("event {} was edited", proof.events[1].seq)),
        "{out}"
    );

    // gRPC serves the same document.
    let mut grpc = portcullis::pb::gate_client::GateClient::connect(l.app.grpc_url())
        .await
        .unwrap();
    let mut req = tonic::Request::new(portcullis::pb::GetDecisionProofRequest {
        id: l.ids[1].clone(),
    });
    req.metadata_mut()
        .insert("authorization", "Bearer pc_audit".parse().unwrap());
    let got = grpc.get_decision_proof(req).await.unwrap().into_inner();
    let via_grpc: DecisionProof = serde_json::from_str(&got.proof_json).unwrap();
    assert!(verify_proof(&via_grpc, &l.key).ok());
    assert_eq!(got.decision_id, l.ids[1]);
}

#[tokio::test]
async fn an_export_verifies_and_edits_to_the_file_are_named() {
    let l = ledger().await;
    let text = export_text(&l, "").await;
    let report = verify_export(&l.key, &text);
    assert!(report.ok(), "{}", problems(&report));
    assert_eq!(report.verified.decisions, 3);
    let (code, out) = cli_verify(&l.key_file, l.app.dir.path(), "export.jsonl", &text).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("3 decision(s)") && out.contains("signed by key ed25519:"),
        "{out}"
    );

    // The same export through the CLI, filtered to one application, verifies too.
    let file = l.app.dir.path().join("cli-export.jsonl");
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "export", "--url"])
        .arg(format!("http://{}", l.app.http_addr))
        .args(["--filter", "application=payments", "-o"])
        .arg(&file)
        .env("PORTCULLIS_TOKEN", "pc_audit")
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let cli_text = std::fs::read_to_string(&file).unwrap();
    let r = verify_export(&l.key, &cli_text);
    assert!(r.ok(), "{}", problems(&r));
    assert_eq!(r.verified.decisions, 3);
    let none = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "export", "--url"])
        .arg(format!("http://{}", l.app.http_addr))
        .args(["--filter", "application=billing"])
        .env("PORTCULLIS_TOKEN", "pc_audit")
        .output()
        .await
        .unwrap();
    assert!(none.status.success());
    let r = verify_export(&l.key, &String::from_utf8_lossy(&none.stdout));
    assert!(r.ok(), "{}", problems(&r));
    assert_eq!(r.verified.decisions, 0, "the log's skeleton, no decision");
    // A pipeline token may not export.
    let denied = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "export", "--url"])
        .arg(format!("http://{}", l.app.http_addr))
        .env("PORTCULLIS_TOKEN", "pc_pipeline")
        .output()
        .await
        .unwrap();
    assert_eq!(denied.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("403"));

    // Traceability filters select decisions; every filtered export still verifies.
    for (query, decisions) in [
        ("?rule_id=needs-review&rule_outcome=failed", 3),
        ("?rule_id=needs-review&rule_outcome=passed", 0),
        (
            &format!("?image_digest={}", crate::support::app::digest('a')) as &str,
            3,
        ),
        (
            &format!("?image_digest={}", crate::support::app::digest('b')),
            0,
        ),
        (
            "?created_from=2000-01-01T00:00:00Z&created_until=2100-01-01T00:00:00Z",
            3,
        ),
        ("?created_until=2000-01-01T00:00:00Z", 0),
    ] {
        let r = verify_export(&l.key, &export_text(&l, query).await);
        assert!(r.ok(), "{query}: {}", problems(&r));
        assert_eq!(r.verified.decisions, decisions, "{query}");
    }
    let bad = l
        .app
        .audit_export(Some("pc_audit"), "?rule_outcome=failed")
        .await;
    bad.expect(StatusCode::BAD_REQUEST);

    let lines: Vec<&str> = text.lines().collect();
    let find = |record: &str, seq: u64| {
        lines
            .iter()
            .position(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["record"] == record && v["seq"] == seq
            })
            .unwrap()
    };
    let with = |edit: &dyn Fn(&mut Vec<String>)| {
        let mut ls: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        edit(&mut ls);
        ls.join("\n")
    };

    // One byte of an event's text.
    let i = find("event_text", 2);
    let r = verify_export(
        &l.key,
        &with(&|ls| ls[i] = ls[i].replacen("payments", "paymentz", 1)),
    );
    assert!(
        r.problems.contains(&Problem::EditedEvent { seq: 2 }),
        "{}",
        problems(&r)
    );

    // An event deleted from the log.
    let i = find("event", 3);
    let r = verify_export(
        &l.key,
        &with(&|ls| {
            ls.remove(i);
        }),
    );
    assert!(
        r.problems
            .contains(&Problem::MissingEvents { from: 3, to: 3 }),
        "{}",
        problems(&r)
    );

    // An event inserted (a repeat).
    let i = find("event", 2);
    let r = verify_export(
        &l.key,
        &with(&|ls| {
            let dup = ls[i].clone();
            ls.insert(i + 1, dup);
        }),
    );
    assert!(
        r.problems.contains(&Problem::UnexpectedEvent {
            seq: 2,
            expected: 3
        }),
        "{}",
        problems(&r)
    );

    // Two texts in each other's place.
    let (a, b) = (find("event_text", 1), find("event_text", 4));
    let swapped = with(&|ls| {
        let (ta, tb): (Value, Value) = (
            serde_json::from_str(&ls[a]).unwrap(),
            serde_json::from_str(&ls[b]).unwrap(),
        );
        let mut na = ta.clone();
        na["event"] = tb["event"].clone();
        let mut nb = tb.clone();
        nb["event"] = ta["event"].clone();
        ls[a] = na.to_string();
        ls[b] = nb.to_string();
    });
    let r = verify_export(&l.key, &swapped);
    assert!(!r.ok());

    // A checkpoint removed, and one altered.
    let cp: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].contains("\"record\":\"checkpoint\""))
        .collect();
    assert!(!cp.is_empty());
    let r = verify_export(
        &l.key,
        &with(&|ls| ls[cp[0]] = ls[cp[0]].replace("\"tree_size\":", "\"tree_size\":1")),
    );
    assert!(
        r.problems.iter().any(|p| matches!(
            p,
            Problem::BadSignature { .. } | Problem::CheckpointMisplaced { .. }
        )),
        "{}",
        problems(&r)
    );

    // Cut short.
    let r = verify_export(
        &l.key,
        &with(&|ls| {
            ls.pop();
        }),
    );
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, Problem::Truncated { .. })),
        "{}",
        problems(&r)
    );
}

/// Rewrites the database under the service, then exports and verifies.
async fn tampered_export(l: &Ledger, sql: &[&str]) -> Report {
    let url = l.app.settings.store.url.clone();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    unpack_bodies(&pool).await;
    for statement in sql {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    verify_export(&l.key, &export_text(l, "").await)
}

/// Stores every packed body (zstd, migration 0014) as plain text again, and every decision stored
/// once in its `created` event as a row text of its own, as someone editing the database would
/// first, so the edits below can be written in SQL. The store reads every form.
async fn unpack_bodies(pool: &sqlx::SqlitePool) {
    for table in ["decisions", "decision_events"] {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT rowid, packed FROM {table} WHERE packed IS NOT NULL"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        for (rowid, packed) in rows {
            let text = String::from_utf8(zstd::decode_all(packed.as_slice()).unwrap()).unwrap();
            sqlx::query(&format!(
                "UPDATE {table} SET body = ?, packed = NULL WHERE rowid = ?"
            ))
            .bind(text)
            .bind(rowid)
            .execute(pool)
            .await
            .unwrap();
        }
    }
    // A decision no later event changed is stored once, in its `created` event (its row's body
    // is empty): write its text into the row, cut out of the event's `change.decision`.
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT d.rowid, e.body FROM decisions AS d JOIN decision_events AS e \
         ON e.decision_id = d.id AND e.idx = 0 WHERE d.body = '' AND d.packed IS NULL",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (rowid, event) in rows {
        let start = event.find(",\"change\":{\"decision\":").unwrap() + 22;
        let end = event
            .rfind(",\"kind\":\"created\"},\"decision_id\":")
            .unwrap();
        sqlx::query("UPDATE decisions SET body = ? WHERE rowid = ?")
            .bind(&event[start..end])
            .bind(rowid)
            .execute(pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn edits_made_directly_in_the_database_are_named() {
    let l = ledger().await;
    // Signed up to here; the tampering below happens after.
    assert!(verify_export(&l.key, &export_text(&l, "").await).ok());

    let r = tampered_export(
        &l,
        &["UPDATE decision_events SET body = replace(body, 'payments', 'paymentz') WHERE seq = 2"],
    )
    .await;
    assert!(
        r.problems.contains(&Problem::EditedEvent { seq: 2 }),
        "{}",
        problems(&r)
    );
}

#[tokio::test]
async fn a_stored_decision_rewritten_in_the_database_disagrees_with_its_events() {
    let l = ledger().await;
    let id = &l.ids[1];
    let r = tampered_export(
        &l,
        &[&format!(
            "UPDATE decisions SET body = json_set(body, '$.verdict', 'continue'), verdict = 'continue' WHERE id = '{id}'"
        )],
    )
    .await;
    assert!(
        r.problems.iter().any(|p| matches!(p, Problem::StateDisagrees { decision_id, field, .. } if decision_id == id && field == "verdict")),
        "{}",
        problems(&r)
    );
}

#[tokio::test]
async fn rows_deleted_reordered_or_forged_in_the_database_are_named() {
    let l = ledger().await;
    assert!(verify_export(&l.key, &export_text(&l, "").await).ok());
    // A second checkpoint, so removing the first leaves a gap rather than an empty log.
    l.app
        .check(&good_check("l4"))
        .await
        .expect(StatusCode::CREATED);
    assert!(verify_export(&l.key, &export_text(&l, "").await).ok());

    // Two events' places swapped.
    let r = tampered_export(
        &l,
        &[
            "UPDATE decision_events SET seq = -4 WHERE seq = 4",
            "UPDATE decision_events SET seq = 4 WHERE seq = 5",
            "UPDATE decision_events SET seq = 5 WHERE seq = -4",
        ],
    )
    .await;
    assert!(
        r.problems.contains(&Problem::Reordered {
            first: 4,
            second: 5
        }),
        "{}",
        problems(&r)
    );
    let r = tampered_export(
        &l,
        &[
            "UPDATE decision_events SET seq = -4 WHERE seq = 4",
            "UPDATE decision_events SET seq = 4 WHERE seq = 5",
            "UPDATE decision_events SET seq = 5 WHERE seq = -4",
        ],
    )
    .await;
    assert!(r.ok(), "swapped back: {}", problems(&r));

    // A checkpoint deleted, then one whose statement was changed.
    let r = tampered_export(&l, &["DELETE FROM ledger_checkpoints WHERE idx = 1"]).await;
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, Problem::CheckpointGap { after: 0, .. })),
        "{}",
        problems(&r)
    );

    // An event deleted.
    let r = tampered_export(&l, &["DELETE FROM decision_events WHERE seq = 3"]).await;
    assert!(
        r.problems
            .contains(&Problem::MissingEvents { from: 3, to: 3 }),
        "{}",
        problems(&r)
    );
}

/// A replica on `schema` reviewing every deploy, on the shared `clock`.
async fn replica(
    schema: &crate::support::db::PgSchema,
    clock: &std::sync::Arc<portcullis::clock::ManualClock>,
) -> TestApp {
    TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .store_url(&schema.url())
        .token("ci", "pc_pipeline", vec![Role::Pipeline])
        .token("bob", "pc_bob", vec![Role::Approver])
        .token("alice", "pc_alice", vec![Role::Approver])
        .token("audit", "pc_audit", vec![Role::Auditor])
        .review_timeout(std::time::Duration::from_secs(3600))
        .clock(clock.clone())
        .spawn()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_export_from_replicas_on_postgres_after_mixed_traffic_verifies() {
    let Some(schema) = crate::support::db::PgSchema::create().await else {
        return;
    };
    let clock = std::sync::Arc::new(portcullis::clock::ManualClock::new(
        chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
    ));
    let (a, b) = (
        replica(&schema, &clock).await,
        replica(&schema, &clock).await,
    );
    let mut ids = Vec::new();
    // Checks through both replicas at once.
    let checks = (0..8).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        async move {
            app.check(&good_check(&format!("rep-{i}")))
                .await
                .json_with(StatusCode::CREATED)["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    });
    ids.extend(futures::future::join_all(checks).await);
    let post = |app: &TestApp, token: &str, id: &str, body: Value| {
        app.http
            .post(app.url(&format!("/v1/decisions/{id}/review")))
            .bearer_auth(token.to_string())
            .json(&body)
            .send()
    };
    // Approvals, a refusal and a rejection, through both, some racing each other.
    let (r1, r2, r3) = tokio::join!(
        post(&a, "pc_bob", &ids[0], json!({"resolution": "approve"})),
        post(&b, "pc_alice", &ids[1], json!({"resolution": "approve"})),
        post(&b, "pc_bob", &ids[2], json!({"resolution": "reject"})),
    );
    assert_eq!(r1.unwrap().status(), StatusCode::OK);
    assert_eq!(
        r2.unwrap().status(),
        StatusCode::FORBIDDEN,
        "alice triggered it"
    );
    assert_eq!(r3.unwrap().status(), StatusCode::OK);
    let (r4, r5) = tokio::join!(
        post(&a, "pc_bob", &ids[3], json!({"resolution": "approve"})),
        post(&b, "pc_alice", &ids[3], json!({"resolution": "reject"})),
    );
    let statuses = [r4.unwrap().status(), r5.unwrap().status()];
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");

    // A restart of one replica, then reviews past their deadline expire.
    let (settings, dir) = a.stop().await;
    let a = crate::support::app::start_with_clock(
        settings,
        dir,
        Some("pc_pipeline".into()),
        clock.clone(),
    )
    .await;
    clock.advance(chrono::Duration::hours(2));
    // Every review left is now past its deadline: each read expires it (or finds the sweeper
    // did), so nothing changes while the exports below run.
    for id in &ids[4..] {
        let d = b.decision(id).await.json_with(StatusCode::OK);
        assert_eq!(d["resolution"]["outcome"], "expired", "{d}");
    }
    a.check(&good_check("after-restart"))
        .await
        .expect(StatusCode::CREATED);

    let k = b.public_key(None).await.json_with(StatusCode::OK);
    let key = public_key_from_pem(k["public_key_pem"].as_str().unwrap()).unwrap();
    for app in [&a, &b] {
        let text = app
            .audit_export(Some("pc_audit"), "")
            .await
            .expect(StatusCode::OK)
            .body;
        let r = verify_export(&key, &text);
        assert!(r.ok(), "{}", problems(&r));
        assert_eq!(r.verified.decisions, 9);
    }
}

#[tokio::test]
async fn a_history_rewritten_and_signed_again_is_caught_by_the_checkpoints_kept_from_before() {
    let l = ledger().await;
    let before = export_text(&l, "").await;
    assert!(verify_export(&l.key, &before).ok());
    let kept = l.app.dir.path().join("kept.jsonl");
    std::fs::write(&kept, &before).unwrap();

    // Someone with the database rewrites a decision consistently (its event and its row), then
    // wipes the log's numbering and checkpoints so the gate numbers and signs it all again.
    let id = &l.ids[2];
    let r = tampered_export(
        &l,
        &[
            &format!("UPDATE decision_events SET body = replace(body, 'OPS-1', 'OPS-9') WHERE decision_id = '{id}'"),
            &format!("UPDATE decisions SET body = replace(body, 'OPS-1', 'OPS-9') WHERE id = '{id}'"),
            "UPDATE decision_events SET seq = NULL, hash = NULL",
            "UPDATE ledger_head SET seq = 0, hash = '0000000000000000000000000000000000000000000000000000000000000000'",
            "DELETE FROM ledger_checkpoints",
            "DELETE FROM ledger_nodes",
        ],
    )
    .await;
    assert!(
        r.ok(),
        "on its own the new history verifies: {}",
        problems(&r)
    );

    let after = export_text(&l, "").await;
    let file = l.app.dir.path().join("after.jsonl");
    std::fs::write(&file, &after).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "verify", "--public-key"])
        .arg(&l.key_file)
        .arg("--trusted")
        .arg(&kept)
        .arg(&file)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{stdout}");
    assert!(
        stdout.contains("checkpoint 1 is not the checkpoint 1 kept from before"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_decision_older_than_the_log_is_adopted_when_its_proof_is_asked_for() {
    let l = ledger().await;
    let d = l
        .app
        .check(&good_check("legacy"))
        .await
        .json_with(StatusCode::CREATED);
    let id = d["id"].as_str().unwrap().to_string();
    // As a decision stored before migration 0005 looks: no events, a count of 0, and a log
    // that never held them. Its `created` event is the last one numbered (SQLite numbers events
    // as it stores them) and no checkpoint covers it yet (the signer's next round is seconds
    // away), so taking it out and moving the head back leaves no hole.
    let url = l.app.settings.store.url.clone();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    // Such a decision's row holds its own text.
    unpack_bodies(&pool).await;
    let gone = sqlx::query(
        "DELETE FROM decision_events WHERE decision_id = ? \
         AND seq = (SELECT seq FROM ledger_head WHERE id = 1)",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(gone.rows_affected(), 1);
    sqlx::query(
        "UPDATE ledger_head SET seq = seq - 1, hash = COALESCE(\
         (SELECT hash FROM decision_events WHERE seq = ledger_head.seq - 1), \
         '0000000000000000000000000000000000000000000000000000000000000000') WHERE id = 1",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE decisions SET event_count = 0 WHERE id = ?")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let proof: DecisionProof = serde_json::from_str(&proof_text(&l, &id).await).unwrap();
    assert_eq!(proof.events.len(), 1);
    assert!(
        proof.events[0].event.contains("\"kind\":\"adopted\""),
        "{}",
        proof.events[0].event
    );
    let r = verify_proof(&proof, &l.key);
    assert!(r.ok(), "{}", problems(&r));
    assert!(verify_export(&l.key, &export_text(&l, "").await).ok());
}
