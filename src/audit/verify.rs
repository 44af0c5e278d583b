//! The offline verifier: checks a decision proof or a whole audit export with nothing but the
//! public key, and names every problem it finds — an edited, missing, inserted or reordered
//! event, a decision whose stored state disagrees with its events, a bad signature, a gap
//! between checkpoints. The export is read a line at a time (`ExportVerifier::feed`), so its
//! size is bounded only by the decisions it selects, never by the log.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ed25519_dalek::VerifyingKey;

use super::checkpoint::{SignedCheckpoint, key_id, signature_holds};
use super::proof::{DecisionProof, EXPORT_FORMAT, ExportEnd, ExportRecord, PROOF_FORMAT};
use super::{chain, hash_from_hex, hex, merkle};
use crate::domain::{DecisionEvent, replay};

/// One thing wrong with what was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The line (or document) could not be read as the format says.
    Malformed {
        line: u64,
        why: String,
    },
    /// The event's text does not hash to its recorded hash.
    EditedEvent {
        seq: u64,
    },
    /// Two neighbouring events each hash correctly only in the other's place.
    Reordered {
        first: u64,
        second: u64,
    },
    /// Sequence numbers jump: these events are not there.
    MissingEvents {
        from: u64,
        to: u64,
    },
    /// An event whose number was already seen or comes out of order.
    UnexpectedEvent {
        seq: u64,
        expected: u64,
    },
    /// An event's `previous_hash` is not the hash of the event before it.
    BrokenLink {
        seq: u64,
    },
    /// The event's audit path does not lead to the checkpoint's root.
    NotInTree {
        seq: u64,
        checkpoint: u64,
    },
    /// Events after the last checkpoint: nothing signed covers them.
    Uncovered {
        from: u64,
        to: u64,
    },
    /// The event text is not an event of this decision log.
    UnreadableEvent {
        seq: u64,
        why: String,
    },
    /// A proof's event belongs to another decision.
    WrongDecision {
        seq: u64,
        decision_id: String,
    },
    BadSignature {
        checkpoint: u64,
    },
    UnknownKey {
        checkpoint: u64,
        key_id: String,
        expected: String,
    },
    /// Checkpoint indexes jump.
    CheckpointGap {
        after: u64,
        next: u64,
    },
    /// A checkpoint's `previous` is not the hash of the checkpoint before it.
    CheckpointChain {
        index: u64,
    },
    /// A checkpoint's root or last hash disagrees with the events it covers.
    CheckpointMismatch {
        index: u64,
        what: &'static str,
    },
    /// A checkpoint that sits where the events it covers do not end.
    CheckpointMisplaced {
        index: u64,
        tree_size: u64,
        events: u64,
    },
    /// Replaying the decision's events gives another state than the stored one.
    StateDisagrees {
        decision_id: String,
        field: String,
        stored: String,
        replayed: String,
    },
    /// An event the rules of `domain::apply` refuse.
    InvalidTransition {
        decision_id: String,
        seq: u64,
        why: String,
    },
    /// A stored decision with no events in the log.
    NoEvents {
        decision_id: String,
    },
    /// Events of a decision whose stored state is not in the export.
    NoStoredState {
        decision_id: String,
        events: usize,
    },
    /// A policy version's files do not hash to its version.
    PolicyVersionAltered {
        version: String,
    },
    /// A decision names a policy version the export does not carry.
    PolicyVersionMissing {
        version: String,
        decision_id: String,
    },
    /// The export ends early or its counts disagree.
    Truncated {
        why: String,
    },
    /// A checkpoint the verifier kept from before says something else at the same index: the
    /// history was rewritten and signed again.
    CheckpointRewritten {
        index: u64,
    },
    /// A checkpoint the verifier kept from before is not in the export: the log was rolled back.
    CheckpointRolledBack {
        index: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Malformed { line, why } => write!(f, "line {line} is not readable: {why}"),
            Problem::EditedEvent { seq } => write!(
                f,
                "event {seq} was edited: its text does not hash to its recorded hash"
            ),
            Problem::Reordered { first, second } => write!(
                f,
                "events {first} and {second} are in each other's place (reordered)"
            ),
            Problem::MissingEvents { from, to } if from == to => {
                write!(f, "event {from} is missing")
            }
            Problem::MissingEvents { from, to } => write!(f, "events {from}..={to} are missing"),
            Problem::UnexpectedEvent { seq, expected } => write!(
                f,
                "event {seq} is out of place: event {expected} was expected next (inserted, repeated or reordered)"
            ),
            Problem::BrokenLink { seq } => write!(
                f,
                "event {seq} does not chain to the event before it (an event was inserted or removed there)"
            ),
            Problem::NotInTree { seq, checkpoint } => write!(
                f,
                "event {seq} is not in the tree checkpoint {checkpoint} signed: its audit path does not reach the root"
            ),
            Problem::Uncovered { from, to } => write!(
                f,
                "events {from}..={to} are not covered by a signed checkpoint"
            ),
            Problem::UnreadableEvent { seq, why } => {
                write!(f, "event {seq} is not a decision event: {why}")
            }
            Problem::WrongDecision { seq, decision_id } => {
                write!(f, "event {seq} belongs to decision `{decision_id}`")
            }
            Problem::BadSignature { checkpoint } => write!(
                f,
                "checkpoint {checkpoint} has a bad signature: it was altered or not signed by this key"
            ),
            Problem::UnknownKey {
                checkpoint,
                key_id,
                expected,
            } => write!(
                f,
                "checkpoint {checkpoint} names key `{key_id}`, not the given key `{expected}`"
            ),
            Problem::CheckpointGap { after, next } => {
                write!(f, "checkpoints are missing between {after} and {next}")
            }
            Problem::CheckpointChain { index } => write!(
                f,
                "checkpoint {index} does not chain to the checkpoint before it"
            ),
            Problem::CheckpointMismatch { index, what } => write!(
                f,
                "checkpoint {index} disagrees with the events it covers: its {what} differs"
            ),
            Problem::CheckpointMisplaced {
                index,
                tree_size,
                events,
            } => write!(
                f,
                "checkpoint {index} covers {tree_size} events but follows event {events}"
            ),
            Problem::StateDisagrees {
                decision_id,
                field,
                stored,
                replayed,
            } => write!(
                f,
                "decision `{decision_id}` disagrees with its events at `{field}`: stored {stored}, its events give {replayed}"
            ),
            Problem::InvalidTransition {
                decision_id,
                seq,
                why,
            } => write!(
                f,
                "decision `{decision_id}`: event {seq} is not a valid change: {why}"
            ),
            Problem::NoEvents { decision_id } => {
                write!(f, "decision `{decision_id}` has no events in the log")
            }
            Problem::NoStoredState {
                decision_id,
                events,
            } => write!(
                f,
                "decision `{decision_id}` has {events} events in the log but no stored state in the export"
            ),
            Problem::PolicyVersionAltered { version } => write!(
                f,
                "policy version `{version}` was altered: its files do not hash to it"
            ),
            Problem::PolicyVersionMissing {
                version,
                decision_id,
            } => write!(
                f,
                "policy version `{version}` of decision `{decision_id}` is not in the export"
            ),
            Problem::Truncated { why } => write!(f, "the export is incomplete: {why}"),
            Problem::CheckpointRewritten { index } => write!(
                f,
                "checkpoint {index} is not the checkpoint {index} kept from before: the history was rewritten"
            ),
            Problem::CheckpointRolledBack { index } => write!(
                f,
                "checkpoint {index}, kept from before, is not in the export: the log was rolled back"
            ),
        }
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub decisions: u64,
    pub events: u64,
    /// The last checkpoint checked: index, tree size, key id, when signed.
    pub checkpoint: Option<(u64, u64, String, chrono::DateTime<chrono::Utc>)>,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} decision(s), {} event(s)",
            self.decisions, self.events
        )?;
        if let Some((index, size, key, at)) = &self.checkpoint {
            write!(
                f,
                "; verified against checkpoint {index} (tree size {size}, {}) signed by key {key}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )?;
        }
        Ok(())
    }
}

/// The verdict: what was covered, and every problem (none when it verifies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub verified: Verified,
    pub problems: Vec<Problem>,
}

impl Report {
    /// The report on a document that could not be read at all.
    pub fn unreadable(why: String) -> Self {
        Self {
            verified: Verified {
                decisions: 0,
                events: 0,
                checkpoint: None,
            },
            problems: vec![Problem::Malformed { line: 1, why }],
        }
    }

    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn checkpoint_problems(signed: &SignedCheckpoint, key: &VerifyingKey) -> Option<Problem> {
    let expected = key_id(key);
    let index = signed.checkpoint.index;
    if signed.checkpoint.key_id != expected {
        return Some(Problem::UnknownKey {
            checkpoint: index,
            key_id: signed.checkpoint.key_id.clone(),
            expected,
        });
    }
    (!signature_holds(signed, key)).then_some(Problem::BadSignature { checkpoint: index })
}

/// Checks one decision's proof, and its checkpoint against any kept from before with the same
/// index.
pub fn verify_proof_trusting(
    proof: &DecisionProof,
    key: &VerifyingKey,
    kept: &[SignedCheckpoint],
) -> Report {
    let mut report = verify_proof(proof, key);
    let index = proof.checkpoint.checkpoint.index;
    if kept
        .iter()
        .any(|k| k.checkpoint.index == index && *k != proof.checkpoint)
    {
        report.problems.push(Problem::CheckpointRewritten { index });
    }
    report
}

/// Checks one decision's proof.
pub fn verify_proof(proof: &DecisionProof, key: &VerifyingKey) -> Report {
    let mut problems = Vec::new();
    let cp = &proof.checkpoint.checkpoint;
    if proof.format != PROOF_FORMAT {
        problems.push(Problem::Malformed {
            line: 1,
            why: format!("format `{}` is not `{PROOF_FORMAT}`", proof.format),
        });
    }
    problems.extend(checkpoint_problems(&proof.checkpoint, key));
    let root = hash_from_hex(&cp.root, "the checkpoint's root");
    let mut events = Vec::new();
    let mut last: Option<(u64, &str)> = None;
    for e in &proof.events {
        if let Some((seq, hash)) = last {
            if e.seq <= seq {
                problems.push(Problem::UnexpectedEvent {
                    seq: e.seq,
                    expected: seq + 1,
                });
            } else if e.seq == seq + 1 && e.previous_hash != hash {
                problems.push(Problem::BrokenLink { seq: e.seq });
            }
        }
        last = Some((e.seq, &e.hash));
        let hash = hash_from_hex(&e.hash, "an event hash");
        match (hash_from_hex(&e.previous_hash, "a previous hash"), &hash) {
            (Ok(previous), Ok(hash)) if chain::link(&previous, &e.event) == *hash => {}
            _ => problems.push(Problem::EditedEvent { seq: e.seq }),
        }
        if e.seq == 0 || e.seq > cp.tree_size {
            problems.push(Problem::Uncovered {
                from: e.seq,
                to: e.seq,
            });
        } else {
            let path: Option<Vec<[u8; 32]>> = e
                .inclusion
                .iter()
                .map(|h| hash_from_hex(h, "an audit path hash").ok())
                .collect();
            let holds = match (&hash, &root, path) {
                (Ok(hash), Ok(root), Some(path)) => merkle::verify_inclusion(
                    e.seq - 1,
                    cp.tree_size,
                    &merkle::leaf_hash(hash),
                    &path,
                    root,
                ),
                _ => false,
            };
            if !holds {
                problems.push(Problem::NotInTree {
                    seq: e.seq,
                    checkpoint: cp.index,
                });
            }
        }
        match serde_json::from_str::<DecisionEvent>(&e.event) {
            Ok(event) if event.decision_id.as_str() != proof.decision_id => {
                problems.push(Problem::WrongDecision {
                    seq: e.seq,
                    decision_id: event.decision_id.to_string(),
                });
            }
            Ok(event) => events.push((e.seq, event)),
            Err(why) => problems.push(Problem::UnreadableEvent {
                seq: e.seq,
                why: why.to_string(),
            }),
        }
    }
    if proof.decision.get("id").and_then(|v| v.as_str()) != Some(proof.decision_id.as_str()) {
        problems.push(Problem::Malformed {
            line: 1,
            why: format!(
                "the stored decision is not decision `{}`",
                proof.decision_id
            ),
        });
    }
    problems.extend(state_problems(&proof.decision_id, &proof.decision, &events));
    Report {
        verified: Verified {
            decisions: 1,
            events: proof.events.len() as u64,
            checkpoint: Some((cp.index, cp.tree_size, cp.key_id.clone(), cp.at)),
        },
        problems,
    }
}

/// Replays `events` and compares the result with `stored`.
fn state_problems(
    decision_id: &str,
    stored: &serde_json::Value,
    events: &[(u64, DecisionEvent)],
) -> Vec<Problem> {
    if events.is_empty() {
        return vec![Problem::NoEvents {
            decision_id: decision_id.to_string(),
        }];
    }
    // Replay one event at a time so a refused one is named by its place in the log.
    let mut state = None;
    for (seq, event) in events {
        match crate::domain::apply(state.as_ref(), event, event.at) {
            Ok(next) => state = Some(next),
            Err(refusal) => {
                return vec![Problem::InvalidTransition {
                    decision_id: decision_id.to_string(),
                    seq: *seq,
                    why: refusal.to_string(),
                }];
            }
        }
    }
    let replayed = match replay(events.iter().map(|(_, e)| e)) {
        Ok(d) => d,
        Err(refusal) => {
            return vec![Problem::InvalidTransition {
                decision_id: decision_id.to_string(),
                seq: events.first().map_or(0, |(s, _)| *s),
                why: refusal.to_string(),
            }];
        }
    };
    let replayed = match serde_json::to_value(&replayed) {
        Ok(v) => v,
        Err(e) => {
            return vec![Problem::Malformed {
                line: 0,
                why: e.to_string(),
            }];
        }
    };
    match first_difference(stored, &replayed, String::new()) {
        None => Vec::new(),
        Some((field, stored, replayed)) => vec![Problem::StateDisagrees {
            decision_id: decision_id.to_string(),
            field: if field.is_empty() {
                "(the whole decision)".into()
            } else {
                field
            },
            stored,
            replayed,
        }],
    }
}

/// The first place two JSON values differ: its path and both values, shortened.
fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: String,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    let show = |v: Option<&Value>| {
        let text = v.map_or_else(|| "nothing".to_string(), Value::to_string);
        if text.chars().count() > 80 {
            format!("{}…", text.chars().take(80).collect::<String>())
        } else {
            text
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => {
                        if let Some(d) = first_difference(p, q, sub) {
                            return Some(d);
                        }
                    }
                    (p, q) => return Some((sub, show(p), show(q))),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some((path, show(Some(a)), show(Some(b)))),
    }
}

/// Checks an export line by line. It keeps the log's hashes (32 bytes an event) and the
/// events of the one decision being read; nothing else grows with the file.
pub struct ExportVerifier<'k> {
    key: &'k VerifyingKey,
    line: u64,
    problems: Vec<Problem>,
    header: Option<u64>,
    /// The skeleton's chain hashes, `hashes[seq - 1]`.
    hashes: Vec<[u8; 32]>,
    frontier: merkle::Frontier,
    last_checkpoint: Option<SignedCheckpoint>,
    checkpoints: u64,
    texts: u64,
    /// Texts that do not hash in their place, with the neighbour they would fit after (a
    /// move rather than an edit); named once all are known, as pairs where they pair up.
    failed: BTreeMap<u64, Option<u64>>,
    /// The texts read since the last decision record.
    current: Vec<(u64, String, DecisionEvent)>,
    decisions: u64,
    policy_versions: BTreeMap<String, bool>,
    wanted_versions: BTreeMap<String, String>,
    end: Option<ExportEnd>,
    /// Checkpoints kept from earlier exports or proofs, by index.
    trusted: BTreeMap<u64, SignedCheckpoint>,
}

impl<'k> ExportVerifier<'k> {
    pub fn new(key: &'k VerifyingKey) -> Self {
        Self {
            key,
            line: 0,
            problems: Vec::new(),
            header: None,
            hashes: Vec::new(),
            frontier: merkle::Frontier::default(),
            last_checkpoint: None,
            checkpoints: 0,
            texts: 0,
            failed: BTreeMap::new(),
            current: Vec::new(),
            decisions: 0,
            policy_versions: BTreeMap::new(),
            wanted_versions: BTreeMap::new(),
            end: None,
            trusted: BTreeMap::new(),
        }
    }

    /// Checks the export against checkpoints kept from before (an earlier export or proof):
    /// each must be in it, unchanged. A log rewritten and re-signed, or rolled back, fails.
    pub fn trusting(mut self, kept: impl IntoIterator<Item = SignedCheckpoint>) -> Self {
        self.trusted
            .extend(kept.into_iter().map(|c| (c.checkpoint.index, c)));
        self
    }

    fn malformed(&mut self, why: impl Into<String>) {
        self.problems.push(Problem::Malformed {
            line: self.line,
            why: why.into(),
        });
    }

    /// Reads the next line of the export.
    pub fn feed(&mut self, line: &str) {
        self.line += 1;
        if line.trim().is_empty() {
            return;
        }
        let record: ExportRecord = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => return self.malformed(e.to_string()),
        };
        if self.end.is_some() {
            self.malformed("a record after the `end` record");
        }
        if self.header.is_none() && !matches!(record, ExportRecord::Export(_)) {
            self.malformed("the file does not start with the `export` record");
            self.header = Some(u64::MAX);
        }
        match record {
            ExportRecord::Export(h) => {
                if self.line != 1 || self.header.is_some() {
                    self.malformed("the `export` record must be the first line, once");
                }
                if h.format != EXPORT_FORMAT {
                    self.malformed(format!("format `{}` is not `{EXPORT_FORMAT}`", h.format));
                }
                self.header = Some(h.tree_size);
            }
            ExportRecord::Event { seq, hash, .. } => self.event(seq, &hash),
            ExportRecord::Checkpoint(signed) => self.checkpoint(signed),
            ExportRecord::EventText {
                seq,
                decision_id,
                event,
            } => self.text(seq, &decision_id, event),
            ExportRecord::Decision { decision } => self.decision(&decision),
            ExportRecord::PolicyVersion(v) => {
                let intact = v.is_intact();
                if !intact {
                    self.problems.push(Problem::PolicyVersionAltered {
                        version: v.version.clone(),
                    });
                }
                self.policy_versions.insert(v.version, intact);
            }
            ExportRecord::End(end) => self.end = Some(end),
        }
    }

    fn event(&mut self, seq: u64, hash: &str) {
        if self.texts > 0 || self.decisions > 0 {
            self.malformed(format!("event {seq} of the log after the decisions"));
        }
        let next = self.hashes.len() as u64 + 1;
        if seq < next {
            self.problems.push(Problem::UnexpectedEvent {
                seq,
                expected: next,
            });
            return;
        }
        let Ok(hash) = hash_from_hex(hash, "an event hash") else {
            return self.malformed(format!("event {seq} has no valid hash"));
        };
        if seq > next {
            self.problems.push(Problem::MissingEvents {
                from: next,
                to: seq - 1,
            });
            // Keep places aligned with sequence numbers; the checkpoints fail on the gap.
            self.hashes.resize((seq - 1) as usize, [0; 32]);
        }
        self.hashes.push(hash);
        self.frontier.push(merkle::leaf_hash(&hash));
    }

    fn hash_before(&self, seq: u64) -> Option<[u8; 32]> {
        match seq {
            0 => None,
            1 => Some(chain::GENESIS),
            n => self.hashes.get((n - 2) as usize).copied(),
        }
    }

    fn hash_at(&self, seq: u64) -> Option<[u8; 32]> {
        seq.checked_sub(1)
            .and_then(|i| self.hashes.get(i as usize).copied())
    }

    fn text(&mut self, seq: u64, decision_id: &str, text: String) {
        self.texts += 1;
        let (Some(previous), Some(hash)) = (self.hash_before(seq), self.hash_at(seq)) else {
            self.problems
                .push(Problem::Uncovered { from: seq, to: seq });
            return;
        };
        if chain::link(&previous, &text) != hash {
            // Moved rather than edited: it hashes in a neighbour's place (its text moved there
            // under the neighbour's hash, or its whole row did).
            let moved = (seq.saturating_sub(2)..=seq + 2).find(|&j| {
                j != seq
                    && j > 0
                    && ((self.hash_before(j).zip(self.hash_at(j)))
                        .is_some_and(|(p, h)| chain::link(&p, &text) == h)
                        || self
                            .hash_at(j)
                            .is_some_and(|p| chain::link(&p, &text) == hash))
            });
            self.failed.insert(seq, moved);
        }
        match serde_json::from_str::<DecisionEvent>(&text) {
            Ok(event) if event.decision_id.as_str() != decision_id => {
                self.problems.push(Problem::WrongDecision {
                    seq,
                    decision_id: event.decision_id.to_string(),
                });
            }
            Ok(event) => self.current.push((seq, decision_id.to_string(), event)),
            Err(e) => self.problems.push(Problem::UnreadableEvent {
                seq,
                why: e.to_string(),
            }),
        }
    }

    fn checkpoint(&mut self, signed: SignedCheckpoint) {
        self.checkpoints += 1;
        if let Some(kept) = self.trusted.remove(&signed.checkpoint.index)
            && kept != signed
        {
            self.problems.push(Problem::CheckpointRewritten {
                index: kept.checkpoint.index,
            });
        }
        let c = &signed.checkpoint;
        self.problems.extend(checkpoint_problems(&signed, self.key));
        match &self.last_checkpoint {
            None if c.index != 1 => self.problems.push(Problem::CheckpointGap {
                after: 0,
                next: c.index,
            }),
            None if c.previous != hex(&[0u8; 32]) => {
                self.problems
                    .push(Problem::CheckpointChain { index: c.index });
            }
            Some(last) => {
                if c.index != last.checkpoint.index + 1 {
                    self.problems.push(Problem::CheckpointGap {
                        after: last.checkpoint.index,
                        next: c.index,
                    });
                } else if last.checkpoint.hash().ok().as_deref() != Some(c.previous.as_str()) {
                    self.problems
                        .push(Problem::CheckpointChain { index: c.index });
                }
            }
            None => {}
        }
        let seen = self.hashes.len() as u64;
        if c.tree_size != seen {
            self.problems.push(Problem::CheckpointMisplaced {
                index: c.index,
                tree_size: c.tree_size,
                events: seen,
            });
        } else {
            if hex(&self.frontier.root()) != c.root {
                self.problems.push(Problem::CheckpointMismatch {
                    index: c.index,
                    what: "Merkle root",
                });
            }
            if self.hashes.last().map(|h| hex(h)) != Some(c.last_event_hash.clone()) {
                self.problems.push(Problem::CheckpointMismatch {
                    index: c.index,
                    what: "last event hash",
                });
            }
        }
        self.last_checkpoint = Some(signed);
    }

    fn decision(&mut self, decision: &serde_json::Value) {
        self.decisions += 1;
        let events = std::mem::take(&mut self.current);
        let Some(id) = decision.get("id").and_then(|v| v.as_str()) else {
            return self.malformed("a decision without an `id`");
        };
        if let Some(version) = decision.get("policy_version").and_then(|v| v.as_str()) {
            self.wanted_versions
                .entry(version.to_string())
                .or_insert_with(|| id.to_string());
        }
        let mut mine = Vec::with_capacity(events.len());
        for (seq, owner, event) in events {
            if owner == id {
                mine.push((seq, event));
            } else {
                self.problems.push(Problem::NoStoredState {
                    decision_id: owner,
                    events: 1,
                });
            }
        }
        for pair in mine.windows(2) {
            if pair[1].0 <= pair[0].0 {
                self.problems.push(Problem::UnexpectedEvent {
                    seq: pair[1].0,
                    expected: pair[0].0 + 1,
                });
            }
        }
        let problems = state_problems(id, decision, &mine);
        self.problems.extend(problems);
    }

    /// Ends the export and gives the verdict.
    pub fn finish(mut self) -> Report {
        for index in std::mem::take(&mut self.trusted).into_keys() {
            self.problems.push(Problem::CheckpointRolledBack { index });
        }
        let failed = std::mem::take(&mut self.failed);
        let mut named = BTreeSet::new();
        for (&seq, moved) in &failed {
            if named.contains(&seq) {
                continue;
            }
            let problem = match moved {
                Some(_) if failed.get(&(seq + 1)).is_some_and(Option::is_some) => {
                    named.insert(seq + 1);
                    Problem::Reordered {
                        first: seq,
                        second: seq + 1,
                    }
                }
                Some(j) => Problem::Reordered {
                    first: seq.min(*j),
                    second: seq.max(*j),
                },
                None => Problem::EditedEvent { seq },
            };
            self.problems.push(problem);
        }
        let events = self.hashes.len() as u64;
        let covered = self
            .last_checkpoint
            .as_ref()
            .map_or(0, |c| c.checkpoint.tree_size);
        if events > covered {
            self.problems.push(Problem::Uncovered {
                from: covered + 1,
                to: events,
            });
        }
        if let Some(said) = self.header
            && said != events
            && said != u64::MAX
        {
            self.problems.push(Problem::Truncated {
                why: format!("the header promises {said} events, the file has {events}"),
            });
        }
        for (_, id, _) in std::mem::take(&mut self.current) {
            self.problems.push(Problem::NoStoredState {
                decision_id: id,
                events: 1,
            });
        }
        for (version, decision_id) in std::mem::take(&mut self.wanted_versions) {
            if !self.policy_versions.contains_key(&version) {
                self.problems.push(Problem::PolicyVersionMissing {
                    version,
                    decision_id,
                });
            }
        }
        match self.end {
            None => self.problems.push(Problem::Truncated {
                why: "it has no `end` record".into(),
            }),
            Some(end) => {
                let found = ExportEnd {
                    events,
                    checkpoints: self.checkpoints,
                    event_texts: self.texts,
                    decisions: self.decisions,
                    policy_versions: self.policy_versions.len() as u64,
                };
                if end != found {
                    self.problems.push(Problem::Truncated {
                        why: format!("its `end` record counts {end:?}, the file holds {found:?}"),
                    });
                }
            }
        }
        let checkpoint = self.last_checkpoint.map(|c| {
            let c = c.checkpoint;
            (c.index, c.tree_size, c.key_id, c.at)
        });
        Report {
            verified: Verified {
                decisions: self.decisions,
                events,
                checkpoint,
            },
            problems: self.problems,
        }
    }
}
