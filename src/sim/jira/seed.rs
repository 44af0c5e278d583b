//! The Jira simulator's seeded issues: `OPS-42` … `OPS-45`, the moved `OLD-7` and `REL-1` …
//! `REL-7` for paging.

use std::collections::BTreeMap;

use super::{DONE, Data, IN_PROGRESS, Issue, TODO};

pub(super) fn seed() -> Data {
    let issue = |id, key: &str, summary: &str, status, resolution| Issue {
        id,
        key: key.into(),
        summary: summary.into(),
        status,
        resolution,
        labels: vec!["release".into()],
        history: Vec::new(),
    };
    let mut issues = vec![
        issue(
            10042,
            "OPS-42",
            "Release payments-api 1.8.3",
            ("Done", "10001", DONE),
            Some("Done"),
        ),
        issue(
            10043,
            "OPS-43",
            "Release orders-api 2.0.0",
            ("In Progress", "3", IN_PROGRESS),
            None,
        ),
        issue(
            10044,
            "OPS-44",
            "Release worker 3.1",
            ("Approved", "10100", IN_PROGRESS),
            None,
        ),
        issue(
            10045,
            "OPS-45",
            "Release legacy-app",
            ("Done", "10001", DONE),
            None,
        ),
        issue(
            10046,
            "OPS-46",
            "Moved from OLD-7",
            ("Done", "10001", DONE),
            Some("Done"),
        ),
    ];
    for n in 1..=7 {
        issues.push(issue(
            10100 + n,
            &format!("REL-{n}"),
            &format!("Release train item {n}"),
            ("To Do", "10000", TODO),
            None,
        ));
    }
    Data {
        data_center: false,
        issues,
        moved: BTreeMap::from([("OLD-7".to_string(), "OPS-46".to_string())]),
        next_id: 10500,
    }
}
