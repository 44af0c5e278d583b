//! Following a decision until it is final: an in-process broadcast for changes made here, plus a
//! periodic re-read of the store so changes made by another replica are seen too.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast;

use super::GateError;
use crate::domain::{Decision, DecisionId, DecisionStatus};
use crate::store::Store;

/// How often a watcher re-reads the store; bounds how late a change made elsewhere is seen.
const REREAD_EVERY: Duration = Duration::from_secs(2);

pub type DecisionStream = Pin<Box<dyn Stream<Item = Result<Decision, GateError>> + Send>>;

#[derive(Debug)]
pub(super) struct Updates {
    tx: broadcast::Sender<Arc<Decision>>,
}

impl Default for Updates {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(256);
        Self { tx }
    }
}

impl Updates {
    pub(super) fn publish(&self, decision: &Decision) {
        // Nobody watching is the usual case, and then the copy would be made only to be dropped.
        // A watcher that subscribes just after this test reads the store after subscribing, and
        // the store already holds this version, so it is not lost.
        if self.tx.receiver_count() == 0 {
            return;
        }
        // No receivers left by now is normal too: the last watcher ended.
        let _ = self.tx.send(Arc::new(decision.clone()));
    }
}

pub(super) async fn stream(
    store: Arc<dyn Store>,
    updates: &Updates,
    id: DecisionId,
) -> Result<DecisionStream, GateError> {
    // Subscribe before the first read, so a change between the two is not lost.
    let rx = updates.tx.subscribe();
    let first = store
        .get_decision(&id)
        .await?
        .ok_or_else(|| GateError::NotFound(id.clone()))?;
    let state = State {
        rx,
        store,
        id,
        first: Some(first),
        last: None,
        done: false,
    };
    Ok(Box::pin(futures::stream::unfold(state, next)))
}

struct State {
    rx: broadcast::Receiver<Arc<Decision>>,
    store: Arc<dyn Store>,
    id: DecisionId,
    first: Option<Decision>,
    last: Option<Decision>,
    done: bool,
}

async fn next(mut s: State) -> Option<(Result<Decision, GateError>, State)> {
    if s.done {
        return None;
    }
    if let Some(first) = s.first.take() {
        return Some((Ok(s.emit(first)), s));
    }
    loop {
        let candidate = tokio::select! {
            msg = s.rx.recv() => match msg {
                Ok(d) if d.id == s.id => Some((*d).clone()),
                Ok(_) => None,
                // Lagged or closed: the store is the truth.
                Err(_) => s.store.get_decision(&s.id).await.ok().flatten(),
            },
            () = tokio::time::sleep(REREAD_EVERY) => s.store.get_decision(&s.id).await.ok().flatten(),
        };
        if let Some(d) = candidate {
            if s.last.as_ref() != Some(&d) {
                return Some((Ok(s.emit(d)), s));
            }
        }
    }
}

impl State {
    fn emit(&mut self, d: Decision) -> Decision {
        self.done = d.status == DecisionStatus::Final;
        self.last = Some(d.clone());
        d
    }
}
