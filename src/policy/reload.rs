//! Hot reload: a shared handle to the current policy set, and a poller that swaps in a new set
//! when the directory's content changes, keeping the last good set when an edit is broken.
//!
//! Polling rather than file-system events, because Kubernetes updates a mounted ConfigMap by
//! swapping a symlink to a new directory, which inotify watches on the old files never see.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tracing::{info, warn};

use super::{PolicyErrors, PolicySet, PolicySource, digest};

/// The policy set in force. Cheap to clone; every clone sees replacements.
#[derive(Debug, Clone)]
pub struct PolicyHandle {
    inner: Arc<RwLock<Arc<PolicySet>>>,
    /// Why the newest edit of the directory was refused, while the last good set stays in force.
    rejected: Arc<RwLock<Option<Arc<PolicyErrors>>>>,
}

impl PolicyHandle {
    pub fn new(set: PolicySet) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Arc::new(set))),
            rejected: Arc::new(RwLock::new(None)),
        }
    }

    /// Why the newest edit was refused, if it was (cleared by the next good edit).
    pub fn rejected_edit(&self) -> Option<Arc<PolicyErrors>> {
        match self.rejected.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_rejected(&self, errors: Option<PolicyErrors>) {
        let errors = errors.map(Arc::new);
        match self.rejected.write() {
            Ok(mut g) => *g = errors,
            Err(poisoned) => *poisoned.into_inner() = errors,
        }
    }

    /// The set in force now. An evaluation holds on to it, so a reload mid-check does not mix
    /// two versions in one decision.
    pub fn current(&self) -> Arc<PolicySet> {
        // A poisoned lock still holds a complete `Arc`: writers only ever assign whole values.
        match self.inner.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts `set` in force for every later `current()`.
    pub fn replace(&self, set: PolicySet) {
        let set = Arc::new(set);
        match self.inner.write() {
            Ok(mut g) => *g = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The directory's content is what was last seen.
    Unchanged,
    /// A new set is in force, with this version.
    Reloaded(String),
    /// The new content does not load; the previous set stays in force.
    Rejected(PolicyErrors),
}

/// One poll: reads `dir`, and when its digest differs from `last_seen`, loads it and swaps it in.
/// `last_seen` is updated even when the content is rejected, so a broken edit is reported once,
/// not on every poll.
pub fn reload_once(dir: &Path, handle: &PolicyHandle, last_seen: &mut String) -> ReloadOutcome {
    let sources = match PolicySource::read_dir(dir) {
        Ok(s) => s,
        Err(e) => {
            let key = format!("unreadable:{e}");
            if *last_seen == key {
                return ReloadOutcome::Unchanged;
            }
            *last_seen = key;
            handle.set_rejected(Some(e.clone()));
            return ReloadOutcome::Rejected(e);
        }
    };
    let version = digest(&sources);
    if *last_seen == version {
        return ReloadOutcome::Unchanged;
    }
    *last_seen = version;
    let loaded = if sources.is_empty() {
        PolicySet::load_dir(dir)
    } else {
        PolicySet::from_sources(sources)
    };
    match loaded {
        Ok(set) => {
            let v = set.version().to_string();
            handle.replace(set);
            handle.set_rejected(None);
            ReloadOutcome::Reloaded(v)
        }
        Err(e) => {
            handle.set_rejected(Some(e.clone()));
            ReloadOutcome::Rejected(e)
        }
    }
}

/// Polls `dir` every `interval` until `shutdown` completes, logging each reload and each
/// rejected edit (one `file:line:col: message` per warning).
pub async fn watch_dir(
    dir: PathBuf,
    interval: Duration,
    handle: PolicyHandle,
    shutdown: impl Future,
) {
    let mut last_seen = handle.current().version().to_string();
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => {}
        }
        let poll_dir = dir.clone();
        let poll_handle = handle.clone();
        let mut seen = last_seen.clone();
        // Reading and compiling files is blocking work; keep it off the async workers.
        let polled = tokio::task::spawn_blocking(move || {
            let outcome = reload_once(&poll_dir, &poll_handle, &mut seen);
            (outcome, seen)
        })
        .await;
        let Ok((outcome, seen)) = polled else {
            warn!(dir = %dir.display(), "policy reload task failed; keeping the current policies");
            continue;
        };
        last_seen = seen;
        match outcome {
            ReloadOutcome::Unchanged => {}
            ReloadOutcome::Reloaded(version) => {
                let rules = handle.current().rule_count();
                info!(dir = %dir.display(), policy_version = %version, rules, "policies reloaded");
            }
            ReloadOutcome::Rejected(errors) => {
                let kept = handle.current().version().to_string();
                for e in &errors.0 {
                    warn!(dir = %dir.display(), policy_version = %kept, "policy edit rejected, keeping the last good policies: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    const GOOD: &str = "rules:\n  - id: a\n    title: A\n    severity: low\n    condition: {path: $.request.x, op: exists}\n";

    #[test]
    fn good_edits_swap_and_broken_edits_keep_the_last_good_set() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.yaml"), GOOD).unwrap();
        let handle = PolicyHandle::new(PolicySet::load_dir(dir.path()).unwrap());
        let mut seen = handle.current().version().to_string();
        assert_eq!(
            reload_once(dir.path(), &handle, &mut seen),
            ReloadOutcome::Unchanged
        );

        std::fs::write(dir.path().join("q.yaml"), GOOD.replace("id: a", "id: b")).unwrap();
        let ReloadOutcome::Reloaded(v) = reload_once(dir.path(), &handle, &mut seen) else {
            panic!("expected a reload");
        };
        assert_eq!(handle.current().version(), v);
        assert_eq!(handle.current().rule_count(), 2);

        std::fs::write(
            dir.path().join("q.yaml"),
            "rules:\n  - id: b\n    oops: 1\n",
        )
        .unwrap();
        let ReloadOutcome::Rejected(errors) = reload_once(dir.path(), &handle, &mut seen) else {
            panic!("expected a rejection");
        };
        assert!(
            errors
                .to_string()
                .contains("q.yaml:3:5: unknown field `oops`"),
            "{errors}"
        );
        assert_eq!(
            handle.current().version(),
            v,
            "the last good set stays in force"
        );
        assert_eq!(
            reload_once(dir.path(), &handle, &mut seen),
            ReloadOutcome::Unchanged,
            "reported once"
        );

        std::fs::remove_file(dir.path().join("q.yaml")).unwrap();
        assert!(matches!(
            reload_once(dir.path(), &handle, &mut seen),
            ReloadOutcome::Reloaded(_)
        ));
        assert_eq!(handle.current().rule_count(), 1);
    }

    #[test]
    fn an_empty_set_is_refused_at_load_and_on_reload() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.yaml"), "rules: []\n").unwrap();
        let e = PolicySet::load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("p.yaml:1:1: the policy set has no rules"), "{e}");

        std::fs::write(dir.path().join("p.yaml"), GOOD).unwrap();
        let handle = PolicyHandle::new(PolicySet::load_dir(dir.path()).unwrap());
        let good = handle.current().version().to_string();
        let mut seen = good.clone();
        for empty in [
            "rules: []\n",
            "rules:\n",
            "# all commented out\nrules: []\n",
        ] {
            std::fs::write(dir.path().join("p.yaml"), empty).unwrap();
            let outcome = reload_once(dir.path(), &handle, &mut seen);
            assert!(
                matches!(outcome, ReloadOutcome::Rejected(_)),
                "{empty:?}: {outcome:?}"
            );
            assert_eq!(handle.current().version(), good, "the last good set stays");
            let why = handle.rejected_edit().unwrap().to_string();
            assert!(why.contains("p.yaml:"), "{why}");
        }
        std::fs::write(dir.path().join("p.yaml"), GOOD).unwrap();
        assert!(matches!(
            reload_once(dir.path(), &handle, &mut seen),
            ReloadOutcome::Reloaded(_)
        ));
        assert!(
            handle.rejected_edit().is_none(),
            "a good edit clears the rejection"
        );
    }

    #[test]
    fn handle_clones_share_replacements() {
        let a = PolicyHandle::new(
            PolicySet::from_sources(vec![PolicySource {
                name: "p.yaml".into(),
                text: GOOD.into(),
            }])
            .unwrap(),
        );
        let b = a.clone();
        a.replace(PolicySet::builtin().unwrap());
        assert_eq!(
            b.current().version(),
            PolicySet::builtin().unwrap().version()
        );
    }
}
