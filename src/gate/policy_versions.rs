//! The text of every policy version that decides: stored once, before the first decision it
//! makes, and read back by auditors (`GET /v1/policies/{version}`, `GetPolicyVersion`).

use std::collections::HashSet;
use std::sync::RwLock;

use crate::auth::{Principal, Role};
use crate::domain::{PolicyVersionRecord, parse_policy_version};
use crate::policy::PolicySet;

use super::{Gate, GateError, require};

/// Who may read policy texts: the people who explain and judge decisions. A pipeline's token
/// does not need the rules to act on a verdict (its decisions carry their reasons).
const POLICY_READERS: &[Role] = &[Role::Auditor, Role::Approver];

/// The versions this process has already stored, so a check pays one shared read lock and a
/// hash lookup after the first decision of a version, not a database round trip.
#[derive(Debug, Default)]
pub(super) struct StoredVersions(RwLock<HashSet<String>>);

impl StoredVersions {
    fn contains(&self, version: &str) -> bool {
        match self.0.read() {
            Ok(g) => g.contains(version),
            Err(poisoned) => poisoned.into_inner().contains(version),
        }
    }

    fn insert(&self, version: &str) {
        // A poisoned set is still a set of versions that were stored; adding to it is sound.
        match self.0.write() {
            Ok(mut g) => g.insert(version.to_string()),
            Err(poisoned) => poisoned.into_inner().insert(version.to_string()),
        };
    }
}

impl Gate {
    /// Stores the text of `set` unless this process already did. Called before a decision of
    /// the set is stored, so every stored decision's `policy_version` can be read back. The
    /// store's insert-or-ignore makes replicas (and two first checks at once) store it once; a
    /// store failure fails the check like any other (503 / `UNAVAILABLE`), since a decision
    /// whose rules could not be kept cannot be explained later.
    pub(super) async fn keep_policy_text(&self, set: &PolicySet) -> Result<(), GateError> {
        let version = set.version();
        if self.stored_versions.contains(version) {
            return Ok(());
        }
        let record = PolicyVersionRecord {
            policy: set.text().as_ref().clone(),
            stored_at: self.clock.now(),
        };
        let newly = self.store.put_policy_version(&record).await?;
        if newly {
            tracing::info!(
                policy_version = version,
                files = record.policy.files.len(),
                "policy text stored"
            );
        }
        self.stored_versions.insert(version);
        Ok(())
    }

    /// The stored text of policy version `version`, for auditors and approvers (and admins).
    pub async fn policy_version(
        &self,
        principal: &Principal,
        version: &str,
    ) -> Result<PolicyVersionRecord, GateError> {
        require(principal, POLICY_READERS)?;
        let version = parse_policy_version(version)?;
        self.store
            .get_policy_version(version)
            .await?
            .ok_or_else(|| GateError::PolicyVersionUnknown(version.to_string()))
    }
}
