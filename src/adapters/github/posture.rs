//! GitHub facts computed from the API's answers, with no I/O: the effective branch policy
//! (classic protection ∪ active rules, strictest per property, contract
//! `source-and-findings.md` §2.3), the reviews that count (§3.2), the required checks on the
//! deployed commit (§3.3), and what workflow files ask of the `GITHUB_TOKEN` (§3.5).

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The effective protection of one branch. `classic` is the `/protection` body, `None` when
/// GitHub answered 404 `Branch not protected`; `rules` are the active rules for the branch.
pub fn protection(classic: Option<&Value>, rules: &[Value]) -> Value {
    let mut approvals: (u64, String) = (0, String::new());
    let mut stale = false;
    let mut code_owners = false;
    let mut last_push = false;
    let mut pr_required: Option<String> = None;
    let mut checks: Vec<Value> = Vec::new();
    let mut strict = false;
    let mut force_push_blocked: Option<String> = None;
    let mut deletion_blocked: Option<String> = None;
    let mut signatures: Option<String> = None;
    let mut enforce_admins = false;
    let mut add_check = |context: &str, app: Option<i64>, source: &str| {
        if !checks.iter().any(|c| c["context"] == context) {
            checks.push(json!({"context": context, "app_id": app, "source": source}));
        }
    };
    if let Some(c) = classic {
        let source = "classic".to_string();
        let reviews = &c["required_pull_request_reviews"];
        if reviews.is_object() {
            pr_required = Some(source.clone());
            let n = reviews["required_approving_review_count"]
                .as_u64()
                .unwrap_or(0);
            if n > approvals.0 || approvals.1.is_empty() {
                approvals = (n, source.clone());
            }
            stale |= reviews["dismiss_stale_reviews"] == true;
            code_owners |= reviews["require_code_owner_reviews"] == true;
            last_push |= reviews["require_last_push_approval"] == true;
        }
        let status = &c["required_status_checks"];
        if status.is_object() {
            strict |= status["strict"] == true;
            for check in status["checks"].as_array().into_iter().flatten() {
                if let Some(ctx) = check["context"].as_str() {
                    add_check(ctx, check["app_id"].as_i64(), "classic");
                }
            }
            for ctx in status["contexts"].as_array().into_iter().flatten() {
                if let Some(ctx) = ctx.as_str() {
                    add_check(ctx, None, "classic");
                }
            }
        }
        enforce_admins = c["enforce_admins"]["enabled"] == true;
        if c["allow_force_pushes"]["enabled"] != true {
            force_push_blocked = Some(source.clone());
        }
        if c["allow_deletions"]["enabled"] != true {
            deletion_blocked = Some(source.clone());
        }
        if c["required_signatures"]["enabled"] == true {
            signatures = Some(source);
        }
    }
    let mut ruleset_ids: Vec<Value> = Vec::new();
    let mut other_rules: Vec<Value> = Vec::new();
    for rule in rules {
        let source = format!("ruleset:{}", rule["ruleset_id"]);
        if !ruleset_ids.contains(&rule["ruleset_id"]) {
            ruleset_ids.push(rule["ruleset_id"].clone());
        }
        let p = &rule["parameters"];
        match rule["type"].as_str().unwrap_or("") {
            "pull_request" => {
                pr_required.get_or_insert(source.clone());
                let n = p["required_approving_review_count"].as_u64().unwrap_or(0);
                if n > approvals.0 || approvals.1.is_empty() {
                    approvals = (n, source.clone());
                }
                stale |= p["dismiss_stale_reviews_on_push"] == true;
                code_owners |= p["require_code_owner_review"] == true;
                last_push |= p["require_last_push_approval"] == true;
            }
            "required_status_checks" => {
                strict |= p["strict_required_status_checks_policy"] == true;
                for check in p["required_status_checks"].as_array().into_iter().flatten() {
                    if let Some(ctx) = check["context"].as_str() {
                        add_check(ctx, check["integration_id"].as_i64(), &source);
                    }
                }
            }
            "non_fast_forward" => {
                force_push_blocked.get_or_insert(source);
            }
            "deletion" => {
                deletion_blocked.get_or_insert(source);
            }
            "required_signatures" => {
                signatures.get_or_insert(source);
            }
            other => other_rules.push(json!({"type": other, "source": source})),
        }
    }
    let protected = classic.is_some() || !rules.is_empty();
    json!({
        "protected": protected,
        "classic": classic.is_some(),
        "rulesets": ruleset_ids,
        "pull_request_required": pr_required.is_some(),
        "required_approving_review_count": approvals.0,
        "dismiss_stale_reviews": stale,
        "require_code_owner_reviews": code_owners,
        "require_last_push_approval": last_push,
        "required_status_checks": checks.iter().map(|c| c["context"].clone()).collect::<Vec<_>>(),
        "required_checks": checks,
        "strict_status_checks": strict,
        // Rulesets have no admin enforcement switch: only classic protection says admins obey.
        "enforce_admins": classic.is_some() && enforce_admins,
        "allow_force_pushes": force_push_blocked.is_none(),
        "allow_deletions": deletion_blocked.is_none(),
        "required_signatures": signatures.is_some(),
        "other_rules": other_rules,
        "sources": {
            "pull_request_required": pr_required,
            "required_approving_review_count": (!approvals.1.is_empty()).then_some(approvals.1),
            "force_push_blocked": force_push_blocked,
            "deletion_blocked": deletion_blocked,
            "required_signatures": signatures,
        },
    })
}

/// The merged pull request that produced `sha` on `branch`: merged, into that branch, with that
/// merge commit (a squash or merge commit, or the head itself for a fast-forward/rebase).
pub fn merged_pull<'a>(pulls: &'a [Value], sha: &str, branch: &str) -> Option<&'a Value> {
    pulls.iter().find(|p| {
        !p["merged_at"].is_null()
            && p["base"]["ref"] == branch
            && (p["merge_commit_sha"] == sha || p["head"]["sha"] == sha)
    })
}

/// Reviews recounted (§3.2): per reviewer the latest review that is not `COMMENTED`/`PENDING`;
/// an approval counts when it is for the pull request's final head, not by its author, not by a
/// bot, and from someone with write access (`author_association`).
pub fn reviews(pull: &Value, reviews: &[Value]) -> Value {
    let author = pull["user"]["login"].as_str().unwrap_or("");
    let head = pull["head"]["sha"].as_str().unwrap_or("");
    let mut latest: BTreeMap<String, &Value> = BTreeMap::new();
    for r in reviews {
        let state = r["state"].as_str().unwrap_or("");
        if matches!(state, "COMMENTED" | "PENDING") {
            continue;
        }
        if let Some(login) = r["user"]["login"].as_str() {
            latest.insert(login.to_string(), r);
        }
    }
    let mut approvers = Vec::new();
    let mut ignored = Vec::new();
    let mut changes_requested = Vec::new();
    let mut self_approved = false;
    for (login, r) in &latest {
        match r["state"].as_str().unwrap_or("") {
            "APPROVED" => {
                let why = if login == author {
                    self_approved = true;
                    Some("approved by the pull request's author")
                } else if r["user"]["type"] == "Bot" || login.ends_with("[bot]") {
                    Some("approved by a bot")
                } else if r["commit_id"] != head {
                    Some("approval of an earlier head commit")
                } else if !matches!(
                    r["author_association"].as_str().unwrap_or(""),
                    "OWNER" | "MEMBER" | "COLLABORATOR"
                ) {
                    Some("approved by someone without write access")
                } else {
                    None
                };
                match why {
                    None => approvers.push(login.clone()),
                    Some(why) => ignored.push(json!({"login": login, "why": why})),
                }
            }
            "CHANGES_REQUESTED" => changes_requested.push(login.clone()),
            _ => {}
        }
    }
    json!({
        "approvals": approvers.len(),
        "approvers": approvers,
        "approved_by_other": !approvers.is_empty(),
        "self_approved": self_approved,
        "ignored_approvals": ignored,
        "changes_requested": changes_requested,
    })
}

/// Each required check on the deployed commit: a check run of that name (from the pinned app
/// when one is pinned) or a commit status of that context. Only `success` (and `neutral` for
/// check runs) passes; a missing, pending or skipped check does not.
pub fn required_checks(required: &[Value], runs: &[Value], statuses: &[Value]) -> Value {
    let mut results = Vec::new();
    for req in required {
        let context = req["context"].as_str().unwrap_or("");
        let pinned = req["app_id"].as_i64().filter(|id| *id != -1);
        let run = runs
            .iter()
            .filter(|r| r["name"] == context)
            .find(|r| pinned.is_none_or(|id| r["app"]["id"].as_i64() == Some(id)));
        let (state, passed) = if let Some(r) = run {
            let state = if r["status"] == "completed" {
                r["conclusion"].as_str().unwrap_or("unknown")
            } else {
                r["status"].as_str().unwrap_or("unknown")
            };
            (state.to_string(), matches!(state, "success" | "neutral"))
        } else if let Some(s) = statuses
            .iter()
            .find(|s| s["context"] == context && pinned.is_none())
        {
            let state = s["state"].as_str().unwrap_or("unknown");
            (state.to_string(), state == "success")
        } else {
            ("missing".to_string(), false)
        };
        results.push(json!({"context": context, "state": state, "passed": passed}));
    }
    let failed: Vec<Value> = results
        .iter()
        .filter(|r| r["passed"] == false)
        .map(|r| r["context"].clone())
        .collect();
    json!({
        "required_checks": results,
        "required_checks_passed": failed.is_empty(),
        "failed_checks": failed,
    })
}

/// What one workflow file asks of the token: `write-all` anywhere, and scopes granted `write`
/// (workflow level and per job). `None` when the file is not a YAML mapping.
pub fn workflow(path: &str, text: &str) -> Result<Value, String> {
    let doc: Value = serde_norway::from_str(text).map_err(|e| format!("`{path}`: {e}"))?;
    if !doc.is_object() {
        return Err(format!("`{path}`: not a mapping"));
    }
    let mut write_all = Vec::new();
    let mut writes = Vec::new();
    let mut inspect = |place: String, perms: &Value| match perms {
        Value::String(s) if s == "write-all" => write_all.push(place),
        Value::Object(map) => {
            for (scope, level) in map {
                if level == "write" {
                    writes.push(format!("{place}: {scope}"));
                }
            }
        }
        _ => {}
    };
    let top = doc.get("permissions");
    if let Some(p) = top {
        inspect(path.to_string(), p);
    }
    let mut jobs_without = Vec::new();
    if let Some(jobs) = doc.get("jobs").and_then(Value::as_object) {
        for (id, job) in jobs {
            match job.get("permissions") {
                Some(p) => inspect(format!("{path} job `{id}`"), p),
                None if top.is_none() => jobs_without.push(id.clone()),
                None => {}
            }
        }
    }
    let triggers = doc.get("on").or_else(|| doc.get("true"));
    let pull_request_target = match triggers {
        Some(Value::String(s)) => s == "pull_request_target",
        Some(Value::Array(a)) => a.iter().any(|t| t == "pull_request_target"),
        Some(Value::Object(m)) => m.contains_key("pull_request_target"),
        _ => false,
    };
    Ok(json!({
        "path": path,
        "permissions": top.cloned(),
        "write_all": write_all,
        "write_scopes": writes,
        "jobs_without_permissions": jobs_without,
        "pull_request_target": pull_request_target,
    }))
}

/// The workflow facts of a repository from its settings (`None`: not readable with these
/// credentials) and its parsed files; `problems` names the files that could not be read.
///
/// A fact that an unread file or the unread default could change is `null` (missing evidence),
/// never "no write permissions"; a `write-all` or write scope that was read is a fact whatever
/// else could not be.
pub fn workflows(settings: Option<&Value>, files: &[Value], problems: &[String]) -> Value {
    let empty = Value::Null;
    let s = settings.unwrap_or(&empty);
    let default = s["default_workflow_permissions"].as_str();
    let list = |key: &str| -> Vec<Value> {
        files
            .iter()
            .flat_map(|f| f[key].as_array().cloned().unwrap_or_default())
            .collect()
    };
    let write_all = list("write_all");
    let write_scopes = list("write_scopes");
    let inherits = files.iter().any(|f| {
        f["permissions"].is_null()
            && f["jobs_without_permissions"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
    });
    let complete = problems.is_empty();
    // `true` once seen; `false` only when every file was read.
    let seen = |found: bool| {
        if found {
            json!(true)
        } else if complete {
            json!(false)
        } else {
            Value::Null
        }
    };
    let broad_write = if !write_all.is_empty() || !write_scopes.is_empty() {
        json!(true)
    } else if !complete {
        Value::Null
    } else if inherits {
        default.map_or(Value::Null, |d| json!(d == "write"))
    } else {
        json!(false)
    };
    let mut all_problems: Vec<String> = problems.to_vec();
    if settings.is_none() {
        all_problems.push(
            "the repository's workflow settings (`actions/permissions/workflow`) are not readable with these credentials".into(),
        );
    }
    json!({
        "default_workflow_permissions": default,
        "can_approve_pull_request_reviews": s["can_approve_pull_request_reviews"],
        "files": files,
        "write_all": seen(!write_all.is_empty()),
        "write_all_in": write_all,
        "write_scopes": write_scopes,
        "broad_write": broad_write,
        "pull_request_target": seen(files.iter().any(|f| f["pull_request_target"] == true)),
        "problems": all_problems,
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn classic_and_rulesets_merge_to_the_strictest() {
        let classic = json!({
            "required_pull_request_reviews": {"required_approving_review_count": 1},
            "required_status_checks": {"strict": false, "checks": [{"context": "build", "app_id": 15368}]},
            "enforce_admins": {"enabled": false},
            "allow_force_pushes": {"enabled": true},
            "allow_deletions": {"enabled": false},
        });
        let rules = [
            json!({"type": "pull_request", "ruleset_id": 7, "parameters": {"required_approving_review_count": 2}}),
            json!({"type": "non_fast_forward", "ruleset_id": 7}),
        ];
        let p = protection(Some(&classic), &rules);
        assert_eq!(p["protected"], true);
        assert_eq!(p["required_approving_review_count"], 2);
        assert_eq!(p["sources"]["required_approving_review_count"], "ruleset:7");
        assert_eq!(p["allow_force_pushes"], false, "the ruleset blocks it");
        assert_eq!(p["sources"]["force_push_blocked"], "ruleset:7");
        assert_eq!(p["allow_deletions"], false);
        assert_eq!(p["enforce_admins"], false);
        assert_eq!(p["required_status_checks"], json!(["build"]));

        let none = protection(None, &[]);
        assert_eq!(none["protected"], false);
        assert_eq!(none["allow_force_pushes"], true);
        let rules_only = protection(None, &rules);
        assert_eq!(rules_only["protected"], true);
        assert_eq!(rules_only["allow_deletions"], true);
    }

    #[test]
    fn only_fresh_approvals_by_others_count() {
        let pull = json!({"user": {"login": "alice"}, "head": {"sha": "h2"}});
        let r = |login: &str, state: &str, commit: &str| json!({"user": {"login": login, "type": "User"}, "state": state, "commit_id": commit, "author_association": "MEMBER"});
        let counted = reviews(
            &pull,
            &[
                r("alice", "APPROVED", "h2"),
                r("bob", "APPROVED", "h1"),
                r("carol", "APPROVED", "h2"),
                r("carol", "COMMENTED", "h2"),
                r("dave", "APPROVED", "h2"),
                r("dave", "DISMISSED", "h2"),
            ],
        );
        assert_eq!(counted["approvers"], json!(["carol"]), "{counted}");
        assert_eq!(counted["self_approved"], true);
        assert_eq!(counted["ignored_approvals"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn required_checks_must_succeed_from_the_pinned_app() {
        let required = [
            json!({"context": "build", "app_id": 15368}),
            json!({"context": "lint", "app_id": null}),
            json!({"context": "e2e", "app_id": null}),
        ];
        let runs = [
            json!({"name": "build", "status": "completed", "conclusion": "success", "app": {"id": 999}}),
            json!({"name": "lint", "status": "completed", "conclusion": "skipped", "app": {"id": 1}}),
        ];
        let statuses = [json!({"context": "e2e", "state": "success"})];
        let c = required_checks(&required, &runs, &statuses);
        assert_eq!(c["required_checks_passed"], false);
        assert_eq!(c["failed_checks"], json!(["build", "lint"]), "{c}");
    }

    #[test]
    fn workflow_permissions_are_read_from_yaml() {
        let w = workflow(
            "a.yml",
            "on: [push]\npermissions: write-all\njobs:\n  b:\n    runs-on: x\n    permissions:\n      contents: write\n      id-token: write\n",
        )
        .unwrap();
        assert_eq!(w["write_all"], json!(["a.yml"]));
        assert_eq!(
            w["write_scopes"],
            json!(["a.yml job `b`: contents", "a.yml job `b`: id-token"])
        );
        let w = workflow("b.yml", "on:\n  pull_request_target: {}\njobs:\n  x: {}\n").unwrap();
        assert_eq!(w["pull_request_target"], true);
        assert_eq!(w["jobs_without_permissions"], json!(["x"]));
        let settings = json!({"default_workflow_permissions": "write"});
        let all = workflows(Some(&settings), std::slice::from_ref(&w), &[]);
        assert_eq!(all["broad_write"], true, "inherits a write default");
        let unread = workflows(None, std::slice::from_ref(&w), &[]);
        assert!(
            unread["broad_write"].is_null(),
            "the default decides: {unread}"
        );
        assert_eq!(unread["write_all"], false);
        assert!(workflow("c.yml", "jobs: [").is_err());
        let unknown = workflows(Some(&settings), &[], &["`c.yml`: bad".into()]);
        assert!(unknown["write_all"].is_null());
        assert!(unknown["broad_write"].is_null());
        let seen = workflow("d.yml", "on: push\npermissions: write-all\njobs: {}\n").unwrap();
        let known = workflows(None, &[seen], &["`c.yml`: bad".into()]);
        assert_eq!(known["write_all"], true, "a write-all read is a fact");
        assert_eq!(known["broad_write"], true);
    }
}
