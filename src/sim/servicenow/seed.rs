//! The ServiceNow simulator's seeded changes and approvals, and how a change created through the
//! API moves on by itself (one step per read), as a CAB would move it.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};

use super::{Data, Record, raw, sys_id};

pub(super) fn seed() -> Data {
    let now = Utc::now();
    let payments = sys_id(0xc1_0001);
    let orders = sys_id(0xc1_0002);
    let change =
        |n: u32, ty: &str, state: &str, approval: &str, start: String, end: String, ci: &str| {
            Record::from([
                ("sys_id", sys_id(0xa000 + n)),
                ("number", format!("CHG003000{n}")),
                ("short_description", format!("Deploy change {n}")),
                ("type", ty.into()),
                ("state", state.into()),
                ("approval", approval.into()),
                ("start_date", start),
                ("end_date", end),
                ("cmdb_ci", ci.into()),
                ("risk", "3".into()),
                ("impact", "2".into()),
                ("on_hold", "false".into()),
                ("conflict_status", "No Conflict".into()),
                ("active", "true".into()),
                ("sys_updated_on", raw(now - Duration::hours(3))),
            ])
        };
    let open = (raw(now - Duration::hours(1)), raw(now + Duration::hours(4)));
    let past = (raw(now - Duration::days(2)), raw(now - Duration::days(1)));
    let changes = vec![
        change(
            1,
            "normal",
            "-2",
            "approved",
            open.0.clone(),
            open.1.clone(),
            &payments,
        ),
        change(
            2,
            "normal",
            "-3",
            "requested",
            open.0.clone(),
            open.1.clone(),
            &payments,
        ),
        change(
            3,
            "normal",
            "-5",
            "rejected",
            open.0.clone(),
            open.1.clone(),
            &payments,
        ),
        change(
            4,
            "normal",
            "-2",
            "approved",
            open.0.clone(),
            String::new(),
            &payments,
        ),
        change(5, "normal", "-2", "approved", past.0, past.1, &payments),
        change(
            6,
            "normal",
            "4",
            "approved",
            open.0.clone(),
            open.1.clone(),
            &payments,
        ),
        change(7, "standard", "-1", "approved", open.0, open.1, &orders),
    ];
    let approvals = vec![
        Record::from([
            ("sys_id", sys_id(0xb001)),
            ("state", "approved".into()),
            ("approver", sys_id(0xd001)),
            ("sysapproval", sys_id(0xa001)),
            ("comments", String::new()),
            ("sys_updated_by", "carol.cab".into()),
            ("sys_updated_on", raw(now - Duration::hours(2))),
        ]),
        Record::from([
            ("sys_id", sys_id(0xb002)),
            ("state", "requested".into()),
            ("approver", sys_id(0xd002)),
            ("sysapproval", sys_id(0xa002)),
            ("comments", String::new()),
            ("sys_updated_by", "system".into()),
            ("sys_updated_on", raw(now - Duration::hours(2))),
        ]),
    ];
    Data {
        changes,
        approvals,
        cis: BTreeMap::from([
            (payments, "payments-api".to_string()),
            (orders, "orders-api".to_string()),
        ]),
        tokens: Vec::new(),
        created: 0,
        progressing: Vec::new(),
    }
}

/// Who approves a created change that moves on by itself (its `sysapproval_approver` record).
pub const PROGRESSION_APPROVER: &str = "cab.sim";

/// One step of a created change's life, applied when it is read.
pub(super) fn advance(data: &mut Data, id: &str) {
    if !data.progressing.iter().any(|p| p == id) {
        return;
    }
    let Some(change) = data
        .changes
        .iter_mut()
        .find(|r| r.get("sys_id").is_some_and(|s| s == id))
    else {
        return;
    };
    let (state, approval) = match change.get("state").map(String::as_str) {
        Some("-5") => ("-4", "not requested"),
        Some("-4") => ("-3", "requested"),
        _ => ("-2", "approved"),
    };
    change.insert("state", state.into());
    change.insert("approval", approval.into());
    if state == "-2" {
        data.progressing.retain(|p| p != id);
        let n = u32::try_from(data.approvals.len()).unwrap_or(0);
        data.approvals.push(Record::from([
            ("sys_id", sys_id(0xb100 + n)),
            ("state", "approved".to_string()),
            ("approver", sys_id(0xd100 + n)),
            ("sysapproval", id.to_string()),
            ("comments", String::new()),
            ("sys_updated_by", PROGRESSION_APPROVER.to_string()),
            ("sys_updated_on", raw(Utc::now())),
        ]));
    }
}
