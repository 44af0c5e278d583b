//! The GitLab simulator's data: one project's state as the REST API exposes it
//! ([`ProjectState`], what `PUT /_sim/gitlab/projects/{path}` takes) and the default seed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A personal access token with `read_api`.
pub const TOKEN: &str = "glpat-simPortcullis0123456789";
pub const PROJECT: &str = "acme/payments-api";
pub const SEEDED_COMMIT: &str = "7c2e9b1a0f3d4e5c6b7a8f9e0d1c2b3a4f5e6d7c";
const SEEDED_SOURCE_HEAD: &str = "1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c";

/// One project, in GitLab's own shapes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectState {
    pub id: u64,
    pub default_branch: String,
    #[serde(default)]
    pub only_allow_merge_if_pipeline_succeeds: bool,
    #[serde(default)]
    pub protected_branches: Vec<Value>,
    /// `GET /projects/:id/approvals`; absent answers 403 as on the Free tier.
    #[serde(default)]
    pub approvals: Option<Value>,
    #[serde(default)]
    pub approval_rules: Option<Vec<Value>>,
    /// Full SHA → commit.
    #[serde(default)]
    pub commits: BTreeMap<String, Value>,
    /// SHA → signature; a commit without one answers 404.
    #[serde(default)]
    pub signatures: BTreeMap<String, Value>,
    #[serde(default)]
    pub merge_requests: Vec<Value>,
    /// MR iid → its approvals.
    #[serde(default)]
    pub mr_approvals: BTreeMap<String, Value>,
    /// Pipelines (`id`, `sha`, `ref`, `status`).
    #[serde(default)]
    pub pipelines: Vec<Value>,
    /// SHA → commit statuses.
    #[serde(default)]
    pub statuses: BTreeMap<String, Vec<Value>>,
}

/// A merged merge request.
pub fn merged_request(iid: u64, author: &str, merge: &str, target: &str) -> Value {
    json!({"id": 1000 + iid, "iid": iid, "project_id": 7, "state": "merged",
        "author": {"username": author}, "target_branch": target, "source_branch": format!("feature-{iid}"),
        "sha": SEEDED_SOURCE_HEAD, "merge_commit_sha": merge, "squash_commit_sha": null,
        "merged_at": "2026-11-30T10:05:00.000Z"})
}

/// Approvals of a merge request by these users.
pub fn approvals(iid: u64, users: &[&str]) -> Value {
    json!({"iid": iid, "approvals_required": 1, "approvals_left": 0,
        "approved_by": users.iter().map(|u| json!({"user": {"username": u}})).collect::<Vec<_>>()})
}

pub fn seeded() -> BTreeMap<String, ProjectState> {
    let mut p = ProjectState {
        id: 7,
        default_branch: "main".into(),
        only_allow_merge_if_pipeline_succeeds: true,
        ..Default::default()
    };
    p.protected_branches.push(json!({"id": 1, "name": "main",
        "push_access_levels": [{"id": 1, "access_level": 40, "access_level_description": "Maintainers", "user_id": null, "group_id": null}],
        "merge_access_levels": [{"id": 2, "access_level": 40, "access_level_description": "Maintainers", "user_id": null, "group_id": null}],
        "unprotect_access_levels": [], "allow_force_push": false, "code_owner_approval_required": false}));
    p.approvals = Some(
        json!({"approvers": [], "approver_groups": [], "approvals_before_merge": 1,
        "reset_approvals_on_push": true, "selective_code_owner_removals": false,
        "disable_overriding_approvers_per_merge_request": true, "merge_requests_author_approval": false,
        "merge_requests_disable_committers_approval": true, "require_password_to_approve": false}),
    );
    p.approval_rules = Some(vec![
        json!({"id": 1, "name": "All Members", "rule_type": "any_approver",
        "approvals_required": 1, "eligible_approvers": [], "users": [], "groups": [],
        "protected_branches": [], "applies_to_all_protected_branches": true, "contains_hidden_groups": false}),
    ]);
    p.commits.insert(SEEDED_COMMIT.into(), json!({"id": SEEDED_COMMIT, "short_id": &SEEDED_COMMIT[..8],
        "title": "Merge branch 'feature-12' into 'main'", "author_name": "Alice", "author_email": "alice@acme.example",
        "parent_ids": ["0000000000000000000000000000000000000001", SEEDED_SOURCE_HEAD]}));
    p.signatures.insert(SEEDED_COMMIT.into(), json!({"signature_type": "PGP", "verification_status": "verified",
        "gpg_key_id": 1, "gpg_key_primary_keyid": "8254AAB3FBD54AC9", "gpg_key_user_name": "Alice",
        "gpg_key_user_email": "alice@acme.example", "gpg_key_subkey_id": null, "commit_source": "gitaly"}));
    p.merge_requests
        .push(merged_request(12, "alice", SEEDED_COMMIT, "main"));
    p.mr_approvals.insert("12".into(), approvals(12, &["bob"]));
    p.pipelines.push(
        json!({"id": 501, "iid": 88, "project_id": 7, "sha": SEEDED_COMMIT, "ref": "main",
        "status": "success", "source": "push"}),
    );
    p.statuses.insert(
        SEEDED_COMMIT.into(),
        vec![json!({"id": 9001, "sha": SEEDED_COMMIT, "ref": "main",
        "status": "success", "name": "build", "allow_failure": false})],
    );
    BTreeMap::from([(PROJECT.to_string(), p)])
}
