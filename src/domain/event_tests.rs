//! `apply` over plain values: each kind of change, each refusal, and replay.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};

use super::*;
use crate::domain::{
    Application, Caller, CallerKind, ChangeRefs, Channel, CheckRequest, Environment, Evidence,
    RuleOutcome, Severity,
};

fn t(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, minute, 0).unwrap()
}

fn pending() -> Decision {
    let request = CheckRequest {
        application: Application::parse("payments-api").unwrap(),
        environment: Environment::parse("prod").unwrap(),
        images: vec![],
        sources: vec![],
        caller: Caller {
            kind: CallerKind::Api,
            ids: BTreeMap::new(),
        },
        triggered_by: Some("alice".into()),
        change_refs: ChangeRefs::default(),
        labels: BTreeMap::new(),
        idempotency_key: None,
    };
    Decision {
        id: DecisionId::generate(),
        verdict: Verdict::ManualReview,
        status: DecisionStatus::Pending,
        request,
        rule_results: vec![rule("window", RuleOutcome::Pass, Verdict::Continue)],
        evidence: Evidence {
            document: serde_json::json!({}),
            sources: vec![],
        },
        policy_version: "sha256:00".into(),
        created_at: t(0),
        decided_at: None,
        summary: "manual_review".into(),
        resolution: None,
        review_deadline: Some(t(30)),
        approvals: vec![],
        review_ticket: None,
        refused_attempts: vec![],
        principal: Some("ci".into()),
        replaces: None,
        key_generation: 0,
    }
}

fn rule(id: &str, outcome: RuleOutcome, effect: Verdict) -> RuleResult {
    RuleResult {
        rule_id: id.into(),
        title: id.into(),
        category: "change".into(),
        severity: Severity::High,
        outcome,
        effect,
        reason: format!("{id} {}", outcome.as_str()),
        remediation: String::new(),
        policy_file: "builtin:baseline".into(),
    }
}

fn event(d: &Decision, at: DateTime<Utc>, change: EventKind) -> DecisionEvent {
    DecisionEvent::new(d.id.clone(), at, change)
}

fn approval(by: &str, at: DateTime<Utc>) -> Approval {
    Approval {
        by: by.into(),
        principal: Some(by.into()),
        at,
        comment: "ok".into(),
        channel: Channel::Api,
    }
}

fn approve(d: &Decision, by: &str, required: u32) -> DecisionEvent {
    event(
        d,
        t(1),
        EventKind::ApprovalRecorded {
            approval: approval(by, t(1)),
            required,
            groups: None,
        },
    )
}

fn resolved(
    d: &Decision,
    outcome: ResolutionOutcome,
    by: &str,
    at: DateTime<Utc>,
) -> DecisionEvent {
    event(
        d,
        at,
        EventKind::Resolved {
            resolution: Resolution {
                outcome,
                by: by.into(),
                principal: Some(by.into()),
                at,
                comment: String::new(),
                channel: Channel::Api,
            },
            groups: None,
            newly_blocking: vec![],
        },
    )
}

#[test]
fn created_makes_the_decision_and_only_once() {
    let d = pending();
    let created = event(
        &d,
        t(0),
        EventKind::Created {
            decision: Box::new(d.clone()),
        },
    );
    assert_eq!(apply(None, &created, t(0)).unwrap(), d);
    assert_eq!(
        apply(Some(&d), &created, t(0)),
        Err(Refusal::AlreadyCreated)
    );
    assert_eq!(
        apply(None, &approve(&d, "bob", 1), t(1)),
        Err(Refusal::NotCreated)
    );
}

#[test]
fn an_event_for_another_decision_is_refused() {
    let d = pending();
    let other = pending();
    let e = approve(&other, "bob", 1);
    assert!(matches!(
        apply(Some(&d), &e, t(1)),
        Err(Refusal::WrongDecision { .. })
    ));
}

#[test]
fn approvals_count_until_the_quorum() {
    let d = pending();
    let one = apply(Some(&d), &approve(&d, "bob", 2), t(1)).unwrap();
    assert_eq!(one.status, DecisionStatus::Pending);
    assert_eq!(one.approvals.len(), 1);
    assert_eq!(one.summary, "manual review: 1 of 2 approvals (bob)");
    assert_eq!(
        apply(Some(&one), &approve(&d, "bob", 2), t(2)),
        Err(Refusal::AlreadyApproved {
            principal: "bob".into(),
            have: 1,
            need: 2
        })
    );
}

#[test]
fn who_triggered_the_deploy_cannot_approve_it() {
    let d = pending();
    let refused = apply(Some(&d), &approve(&d, "alice", 1), t(1)).unwrap_err();
    assert_eq!(refused.reason_code(), "review.separation_of_duties");
    // Nor through an outside channel naming them.
    let refused = apply(
        Some(&d),
        &resolved(&d, ResolutionOutcome::Approved, "alice", t(1)),
        t(1),
    )
    .unwrap_err();
    assert_eq!(refused.reason_code(), "review.separation_of_duties");
    // Rejecting is not approving.
    let rejected = apply(
        Some(&d),
        &resolved(&d, ResolutionOutcome::Rejected, "alice", t(1)),
        t(1),
    )
    .unwrap();
    assert_eq!(rejected.verdict, Verdict::Terminate);
}

#[test]
fn only_the_named_groups_may_approve() {
    let d = pending();
    let mut e = approve(&d, "bob", 1);
    if let EventKind::ApprovalRecorded { groups, .. } = &mut e.change {
        *groups = Some(GroupRule {
            any_of: vec!["release-managers".into()],
            member_of: vec!["developers".into()],
        });
    }
    assert_eq!(
        apply(Some(&d), &e, t(1)),
        Err(Refusal::NotInApproverGroup {
            principal: "bob".into(),
            groups: "release-managers".into()
        })
    );
    if let EventKind::ApprovalRecorded {
        groups: Some(g), ..
    } = &mut e.change
    {
        g.member_of.push("release-managers".into());
    }
    assert!(apply(Some(&d), &e, t(1)).is_ok());
}

#[test]
fn a_resolved_review_names_who_resolved_it() {
    let d = pending();
    let done = apply(
        Some(&d),
        &resolved(&d, ResolutionOutcome::Rejected, "carol", t(3)),
        t(3),
    )
    .unwrap();
    assert_eq!(done.status, DecisionStatus::Final);
    assert_eq!(done.decided_at, Some(t(3)));
    assert_eq!(done.summary, "terminate (review rejected by carol)");
    let again = apply(
        Some(&done),
        &resolved(&d, ResolutionOutcome::Approved, "bob", t(4)),
        t(4),
    )
    .unwrap_err();
    assert_eq!(
        again,
        Refusal::AlreadyResolved {
            outcome: ResolutionOutcome::Rejected,
            by: "carol".into(),
            at: t(3)
        }
    );
    assert!(
        again
            .to_string()
            .starts_with("it was already rejected by carol at")
    );
    assert_eq!(
        apply(Some(&done), &approve(&d, "bob", 1), t(4))
            .unwrap_err()
            .reason_code(),
        "review.conflict"
    );
}

#[test]
fn a_decision_that_never_awaited_review_cannot_be_resolved() {
    let mut d = pending();
    d.status = DecisionStatus::Final;
    d.verdict = Verdict::Continue;
    assert_eq!(
        apply(
            Some(&d),
            &resolved(&d, ResolutionOutcome::Canceled, "ci", t(1)),
            t(1)
        ),
        Err(Refusal::NeverPending)
    );
}

#[test]
fn expiry_waits_for_the_deadline() {
    let d = pending();
    let early = resolved(&d, ResolutionOutcome::Expired, "portcullis", t(10));
    assert_eq!(
        apply(Some(&d), &early, t(10)),
        Err(Refusal::NotYetDue {
            deadline: Some(t(30))
        })
    );
    let due = resolved(&d, ResolutionOutcome::Expired, "portcullis", t(30));
    assert_eq!(
        apply(Some(&d), &due, t(30)).unwrap().verdict,
        Verdict::Terminate
    );
}

#[test]
fn an_approval_over_rules_that_no_longer_hold_terminates_on_them() {
    let d = pending();
    let mut e = resolved(&d, ResolutionOutcome::Approved, "bob", t(5));
    let now_failing = rule("window", RuleOutcome::Fail, Verdict::Terminate);
    if let EventKind::Resolved { newly_blocking, .. } = &mut e.change {
        newly_blocking.push(now_failing.clone());
    }
    let done = apply(Some(&d), &e, t(5)).unwrap();
    assert_eq!(done.verdict, Verdict::Terminate);
    assert!(
        done.summary
            .starts_with("terminate: approved, but window no longer holds")
    );
    assert_eq!(done.rule_results, vec![now_failing]);
    assert_eq!(
        done.resolution.map(|r| r.outcome),
        Some(ResolutionOutcome::Approved)
    );
}

#[test]
fn tickets_and_refusals_are_kept_while_pending() {
    let d = pending();
    let ticket = ReviewTicket {
        system: "servicenow".into(),
        adapter: "servicenow".into(),
        number: "CHG0040001".into(),
        id: "abc".into(),
        opened_by_gate: true,
        at: t(1),
    };
    let attach = event(&d, t(1), EventKind::ReviewTicketAttached { ticket });
    let routed = apply(Some(&d), &attach, t(1)).unwrap();
    assert!(routed.review_ticket.is_some());
    assert_eq!(
        apply(Some(&routed), &attach, t(2)),
        Err(Refusal::TicketAlreadyAttached)
    );

    let attempt = RefusedAttempt {
        by: "servicenow".into(),
        principal: None,
        at: t(2),
        channel: Channel::Servicenow,
        reason_code: "approver_unknown".into(),
        reason: "nobody named".into(),
    };
    let refusal = event(
        &d,
        t(2),
        EventKind::RefusalRecorded {
            attempt,
            dedupe: true,
        },
    );
    let once = apply(Some(&routed), &refusal, t(2)).unwrap();
    assert_eq!(once.refused_attempts.len(), 1);
    assert_eq!(
        apply(Some(&once), &refusal, t(3)),
        Err(Refusal::RepeatedRefusal)
    );
    let mut full = once.clone();
    if let EventKind::RefusalRecorded { attempt, .. } = &refusal.change {
        full.refused_attempts = vec![attempt.clone(); MAX_REFUSALS];
    }
    assert_eq!(
        apply(Some(&full), &refusal, t(3)),
        Err(Refusal::TooManyRefusals)
    );
}

#[test]
fn replay_rebuilds_the_state_from_its_events() {
    let d = pending();
    let events = vec![
        event(
            &d,
            t(0),
            EventKind::Created {
                decision: Box::new(d.clone()),
            },
        ),
        approve(&d, "bob", 2),
        {
            let mut e = approve(&d, "carol", 2);
            e.at = t(2);
            e
        },
        resolved(&d, ResolutionOutcome::Approved, "carol", t(2)),
    ];
    let state = replay(&events).unwrap();
    assert_eq!(state.status, DecisionStatus::Final);
    assert_eq!(state.verdict, Verdict::Continue);
    assert_eq!(state.approvals.len(), 2);
    // A stored event round-trips through its JSON.
    let json = serde_json::to_string(&events[1]).unwrap();
    assert_eq!(
        serde_json::from_str::<DecisionEvent>(&json).unwrap(),
        events[1]
    );
    assert!(json.contains("\"kind\":\"approval_recorded\""), "{json}");
    assert_eq!(replay(&events[1..]), Err(Refusal::NotCreated));
}
