//! The GitHub simulator's data: one repository's state as the REST API exposes it, seeded
//! through the control API (`PUT /_sim/github/repos/{owner}/{repo}` with a [`RepoState`]
//! document), and the default seed — `acme/payments-api`, a well-protected `main` whose head
//! came through pull request #42 by `alice`, approved by `bob`, with a green `build` check, a
//! verified signature, a read-only default workflow token and a workflow asking for
//! `contents: read`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The seeded repository.
pub const REPOSITORY: &str = "acme/payments-api";
/// The head of the seeded `main`: the merge commit of pull request #42.
pub const SEEDED_COMMIT: &str = "4a1f0c9e8d7b6a5f4e3d2c1b0a9f8e7d6c5b4a39";
/// The seeded pull request's own head.
pub const SEEDED_HEAD: &str = "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c";

/// One repository, in the vendor's own shapes (objects are returned as stored, with `sha` and
/// `number` filled in where the API has them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoState {
    pub default_branch: String,
    /// Branch → the body of `GET …/branches/{b}/protection`; a branch not listed answers 404
    /// `Branch not protected`.
    #[serde(default)]
    pub protection: BTreeMap<String, Value>,
    /// The credentials lack Administration read: `…/protection` answers 403 `Resource not
    /// accessible by integration` (never "not protected").
    #[serde(default)]
    pub protection_forbidden: bool,
    /// Branch → the active rules of `GET …/rules/branches/{b}`.
    #[serde(default)]
    pub rules: BTreeMap<String, Vec<Value>>,
    /// Full SHA → the commit (`commit.verification`, `author`).
    #[serde(default)]
    pub commits: BTreeMap<String, Value>,
    /// Pull requests (`number`, `user`, `head`, `base`, `merged_at`, `merge_commit_sha`).
    #[serde(default)]
    pub pulls: Vec<Value>,
    /// Pull request number → its reviews, oldest first.
    #[serde(default)]
    pub reviews: BTreeMap<String, Vec<Value>>,
    /// SHA → check runs on it.
    #[serde(default)]
    pub check_runs: BTreeMap<String, Vec<Value>>,
    /// SHA → commit statuses on it (latest per context).
    #[serde(default)]
    pub statuses: BTreeMap<String, Vec<Value>>,
    /// `GET …/actions/permissions/workflow`.
    #[serde(default)]
    pub workflow_permissions: Value,
    /// SHA → path → file text, for the contents API.
    #[serde(default)]
    pub files: BTreeMap<String, BTreeMap<String, String>>,
}

/// A review as GitHub lists it.
pub fn review(id: u64, login: &str, state: &str, commit: &str) -> Value {
    json!({"id": id, "user": {"login": login, "type": "User"}, "state": state,
        "commit_id": commit, "author_association": "MEMBER",
        "submitted_at": "2026-11-30T10:00:00Z", "body": ""})
}

/// A merged pull request.
pub fn merged_pull(number: u64, author: &str, head: &str, merge: &str, base: &str) -> Value {
    json!({"number": number, "state": "closed", "user": {"login": author, "type": "User"},
        "head": {"sha": head, "ref": format!("feature-{number}")}, "base": {"ref": base},
        "merged_at": "2026-11-30T10:05:00Z", "merge_commit_sha": merge})
}

/// A completed check run from the GitHub Actions app (id 15368).
pub fn check_run(id: u64, name: &str, conclusion: &str, sha: &str) -> Value {
    json!({"id": id, "name": name, "head_sha": sha, "status": "completed", "conclusion": conclusion,
        "app": {"id": 15368, "slug": "github-actions"}})
}

/// The default seed.
pub fn seeded() -> BTreeMap<String, RepoState> {
    let mut repo = RepoState {
        default_branch: "main".into(),
        ..Default::default()
    };
    repo.protection.insert(
        "main".into(),
        json!({
            "url": format!("https://api.github.com/repos/{REPOSITORY}/branches/main/protection"),
            "required_status_checks": {"strict": true, "contexts": ["build"],
                "checks": [{"context": "build", "app_id": 15368}]},
            "required_pull_request_reviews": {"dismiss_stale_reviews": true,
                "require_code_owner_reviews": false, "require_last_push_approval": false,
                "required_approving_review_count": 1},
            "required_signatures": {"enabled": true},
            "enforce_admins": {"enabled": true},
            "required_linear_history": {"enabled": false},
            "allow_force_pushes": {"enabled": false},
            "allow_deletions": {"enabled": false},
            "required_conversation_resolution": {"enabled": true},
        }),
    );
    repo.commits.insert(
        SEEDED_COMMIT.into(),
        json!({"author": {"login": "alice"}, "commit": {"message": "Merge pull request #42",
            "verification": {"verified": true, "reason": "valid", "signature": "-----BEGIN PGP SIGNATURE-----", "payload": "tree", "verified_at": "2026-11-30T10:05:00Z"}}}),
    );
    repo.pulls
        .push(merged_pull(42, "alice", SEEDED_HEAD, SEEDED_COMMIT, "main"));
    repo.reviews.insert(
        "42".into(),
        vec![
            review(1, "carol", "COMMENTED", SEEDED_HEAD),
            review(2, "bob", "APPROVED", SEEDED_HEAD),
        ],
    );
    repo.check_runs.insert(
        SEEDED_COMMIT.into(),
        vec![check_run(1, "build", "success", SEEDED_COMMIT)],
    );
    repo.workflow_permissions =
        json!({"default_workflow_permissions": "read", "can_approve_pull_request_reviews": false});
    repo.files.insert(
        SEEDED_COMMIT.into(),
        BTreeMap::from([(
            ".github/workflows/ci.yml".to_string(),
            "name: ci\non: [push, pull_request]\npermissions:\n  contents: read\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n".to_string(),
        )]),
    );
    BTreeMap::from([(REPOSITORY.to_string(), repo)])
}
