//! The audit export: the decision log as JSON Lines records (`audit::proof::ExportRecord`,
//! `docs/audit.md`) — the skeleton of every event with the signed checkpoints, then the texts
//! and stored state of the decisions a filter selects, then the policy versions they name.
//! Records are produced a page at a time into a bounded channel, so an export of a year of
//! decisions holds a page, never the year.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Gate, GateError, require};
use crate::audit::proof::{EXPORT_FORMAT, ExportEnd, ExportHeader, ExportRecord};
use crate::auth::{Principal, Role};
use crate::store::{DecisionFilter, LEDGER_PAGE, StoreError};

/// Records in flight between the producer and the writer.
const EXPORT_BUFFER: usize = 256;

/// Decisions read per page for the selected part.
const DECISION_PAGE: u32 = 200;

/// The roles that may export the record.
const EXPORTERS: &[Role] = &[Role::Auditor];

/// What an export selects: the decisions a list filter selects (`created_*` bound the
/// period), described for the header.
#[derive(Debug, Clone, Default)]
pub struct ExportSelection {
    pub filter: DecisionFilter,
    /// `name=value` of each filter given, for the export's header.
    pub described: Vec<String>,
}

/// The stream of an export's records, in order; an error ends it.
pub type ExportStream = mpsc::Receiver<Result<ExportRecord, GateError>>;

impl Gate {
    /// Starts an export for an auditor. Events up to now are signed first, so the export
    /// covers everything stored before it began.
    pub async fn audit_export(
        self: &Arc<Self>,
        principal: &Principal,
        selection: ExportSelection,
    ) -> Result<ExportStream, GateError> {
        require(principal, EXPORTERS)?;
        selection.filter.validate()?;
        let mut selection = selection;
        if !principal.may_read_others() {
            selection.filter.principal = Some(principal.name.clone());
        }
        if self.signer.is_some() {
            self.checkpoint_now().await?;
        }
        let tree_size = self
            .store
            .latest_checkpoint()
            .await?
            .map_or(0, |c| c.checkpoint.tree_size);
        let header = ExportHeader {
            format: EXPORT_FORMAT.to_string(),
            exported_at: self.clock.now(),
            filters: selection.described.clone(),
            tree_size,
        };
        let (tx, rx) = mpsc::channel(EXPORT_BUFFER);
        let gate = Arc::clone(self);
        self.tasks.spawn(async move {
            let result = gate.produce(&tx, header, &selection.filter).await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(rx)
    }

    async fn produce(
        &self,
        tx: &mpsc::Sender<Result<ExportRecord, GateError>>,
        header: ExportHeader,
        filter: &DecisionFilter,
    ) -> Result<(), GateError> {
        let tree_size = header.tree_size;
        let send = |record: ExportRecord| async move {
            // The reader hung up: stop quietly.
            tx.send(Ok(record))
                .await
                .map_err(|_| GateError::ShuttingDown)
        };
        send(ExportRecord::Export(header)).await?;
        let mut end = ExportEnd {
            events: 0,
            checkpoints: 0,
            event_texts: 0,
            decisions: 0,
            policy_versions: 0,
        };

        // The skeleton, with each checkpoint after the event it ends at.
        let mut checkpoints = std::collections::VecDeque::new();
        let mut next_checkpoint = 1u64;
        let mut exhausted = false;
        let mut from = 1u64;
        while from <= tree_size {
            let to = tree_size.min(from + u64::from(LEDGER_PAGE) - 1);
            let entries = self.store.ledger_entries(from, to).await?;
            for e in entries {
                let seq = u64::try_from(e.seq).unwrap_or(0);
                send(ExportRecord::Event {
                    seq,
                    hash: e.hash,
                    pruned: e.body.is_none(),
                })
                .await?;
                end.events += 1;
                loop {
                    if checkpoints.is_empty() && !exhausted {
                        let page = self.store.checkpoints(next_checkpoint, LEDGER_PAGE).await?;
                        exhausted = page.len() < LEDGER_PAGE as usize;
                        next_checkpoint = page
                            .last()
                            .map_or(next_checkpoint, |c| c.checkpoint.index + 1);
                        checkpoints.extend(page);
                    }
                    match checkpoints.front() {
                        Some(c) if c.checkpoint.tree_size <= seq => {
                            if let Some(c) = checkpoints.pop_front() {
                                send(ExportRecord::Checkpoint(c)).await?;
                                end.checkpoints += 1;
                            }
                        }
                        _ => break,
                    }
                }
            }
            from = to + 1;
        }

        // The selected decisions: their events' texts, then their stored state.
        let mut versions = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .store
                .list_decisions(filter, DECISION_PAGE, token.as_deref())
                .await?;
            for listed in page.decisions {
                // The state with its event count, then the numbered events: they belong together
                // only if every counted event is numbered and inside the export's tree. A
                // decision changed since (an event not yet numbered, or numbered after the
                // export's checkpoint) is left for the next export.
                let Some((decision, count)) = self.store.get_decision_versioned(&listed.id).await?
                else {
                    continue;
                };
                let entries = self.store.decision_entries(&decision.id).await?;
                if entries.len() as u64 != count
                    || entries
                        .iter()
                        .any(|e| u64::try_from(e.seq).unwrap_or(u64::MAX) > tree_size)
                {
                    continue;
                }
                for e in entries {
                    send(ExportRecord::EventText {
                        seq: u64::try_from(e.seq).unwrap_or(0),
                        decision_id: decision.id.to_string(),
                        event: e.body.unwrap_or_default(),
                    })
                    .await?;
                    end.event_texts += 1;
                }
                versions.insert(decision.policy_version.clone());
                let value = serde_json::to_value(&decision).map_err(|e| {
                    GateError::Unavailable(StoreError::Corrupt(format!(
                        "decision `{}` could not be encoded: {e}",
                        decision.id
                    )))
                })?;
                send(ExportRecord::Decision { decision: value }).await?;
                end.decisions += 1;
            }
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }

        for version in versions {
            if let Some(text) = self.policy_version_text(&version).await? {
                send(ExportRecord::PolicyVersion(text)).await?;
                end.policy_versions += 1;
            }
        }
        send(ExportRecord::End(end)).await?;
        Ok(())
    }

    /// The stored text of a policy version, as an export record carries it.
    async fn policy_version_text(
        &self,
        version: &str,
    ) -> Result<Option<crate::domain::PolicyVersion>, GateError> {
        Ok(self
            .store
            .get_policy_version(version)
            .await?
            .map(|record| record.policy))
    }
}
