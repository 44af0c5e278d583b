//! The repository, commit and branch a check deploys from, as source-control adapters read them:
//! the first `sources[]` entry that names a repository, with the repository normalised by the
//! host's own rule (`owner/name` on GitHub, `group/sub/project` on GitLab).

use super::AdapterError;
use crate::domain::CheckRequest;

/// What a source-control adapter looks up for one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeployedSource {
    /// The repository as the host names it.
    pub repository: String,
    pub commit: Option<String>,
    pub branch: Option<String>,
}

impl DeployedSource {
    /// The check's first source with a repository; `normalise` turns what the caller wrote into
    /// the host's name for it, and `what` says what that name looks like, for the error.
    pub(crate) fn of(
        request: &CheckRequest,
        normalise: fn(&str) -> Option<String>,
        what: &str,
    ) -> Result<Self, AdapterError> {
        let source = request
            .sources
            .iter()
            .find(|s| !s.repository.is_empty())
            .ok_or_else(|| AdapterError::NotFound {
                detail: "the check names no source repository".into(),
            })?;
        let repository = normalise(&source.repository).ok_or_else(|| AdapterError::NotFound {
            detail: format!("`{}` does not name {what}", source.repository),
        })?;
        Ok(Self {
            repository,
            commit: source.commit.as_ref().map(|c| c.as_str().to_string()),
            branch: source.branch.clone(),
        })
    }

    /// The response-cache key: one entry per repository, commit and branch.
    pub(crate) fn cache_key(&self) -> String {
        format!("{} {:?} {:?}", self.repository, self.commit, self.branch)
    }
}
