//! Property tests: loading any text never panics and every error has a real position;
//! evaluating any document never panics and always yields a result per applicable rule.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::Value;

use super::{EvalInput, PolicySet, PolicySource};
use crate::domain::{Application, CallerKind, Environment, FailureReason, Subject};

fn load(text: String) -> Result<PolicySet, super::PolicyErrors> {
    PolicySet::from_sources(vec![PolicySource {
        name: "p.yaml".into(),
        text,
    }])
}

/// YAML-ish text assembled from the words policy files use, so that the generator reaches deep
/// into the decoder instead of stopping at the first syntax error.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "rules:",
        "- ",
        "id: r",
        "title: t",
        "severity: high",
        "severity: x",
        "condition:",
        "all:",
        "any:",
        "not:",
        "path: $.request.a",
        "path: $.x[*].y",
        "path: '$..'",
        "op: '=='",
        "op: in",
        "op: matches",
        "op: exists",
        "op: outside_windows",
        "value: 1",
        "value: [a, 1]",
        "value: '(x'",
        "value: {days: [sat]}",
        "value: [{start: 2025-01-01T00:00:00Z, end: 2024-01-01T00:00:00Z}]",
        "applies_to: {environments: ['p*']}",
        "on_missing: continue",
        "message: '{reason}'",
        "{",
        "}",
        "[",
        "]",
        ":",
        "\"",
        "'",
        "&a",
        "*a",
        "!t",
        "\t",
        "#",
        "  ",
        "    ",
        "\n",
    ]);
    prop::collection::vec(token, 0..60).prop_map(|ts| ts.concat())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-zA-Z0-9:. -]{0,12}".prop_map(Value::String),
        Just(Value::String("2025-06-01T00:00:00Z".into())),
        Just(Value::String("OK".into())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "request",
                    "sonarqube",
                    "trivy",
                    "servicenow",
                    "images",
                    "pinned",
                    "reference",
                    "status",
                    "quality_gate",
                    "change",
                    "vulnerabilities",
                    "critical",
                    "approval",
                    "start_date",
                    "end_date",
                    "scanned_at",
                    "change_refs",
                    "jira_keys",
                    "servicenow_changes"
                ]),
                inner,
                0..8,
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

proptest! {
    #[test]
    fn loading_arbitrary_text_never_panics(text in "\\PC{0,200}") {
        if let Err(e) = load(text) {
            prop_assert!(e.0.iter().all(|e| e.line >= 1 && e.col >= 1 && !e.message.is_empty()));
        }
    }

    #[test]
    fn loading_yamlish_text_never_panics(text in yamlish()) {
        if let Err(e) = load(text) {
            prop_assert!(!e.0.is_empty());
            prop_assert!(e.0.iter().all(|e| e.line >= 1 && e.col >= 1 && e.help.is_some()));
        }
    }

    #[test]
    fn evaluating_random_documents_never_panics(doc in json_value(), env in "(prod|staging|dev)", down in any::<bool>()) {
        let set = PolicySet::builtin().unwrap();
        let app = Application::parse("payments-api").unwrap();
        let env = Environment::parse(&env).unwrap();
        let subject = Subject { application: &app, environment: &env, tier: crate::domain::Environments::default().tier_of(&env).unwrap_or(crate::domain::Tier::Other), caller: CallerKind::Argocd };
        let mut unavailable = BTreeMap::new();
        if down {
            unavailable.insert("sonarqube".to_string(), (FailureReason::Timeout, String::new()));
        }
        let now = "2025-06-04T12:00:00Z".parse().unwrap();
        let ev = set.evaluate(&EvalInput { subject, document: &doc, unavailable: &unavailable, now, no_rules_verdict: crate::domain::Verdict::ManualReview });
        let applicable = set.rules().iter().filter(|r| r.scope.matches(subject)).count();
        prop_assert_eq!(ev.results.len(), applicable);
        prop_assert_eq!(ev.verdict, ev.results.iter().map(|r| r.effect).max().unwrap_or(crate::domain::Verdict::Continue));
    }

    #[test]
    fn not_passes_only_over_a_value_of_the_right_type_that_fails(value in json_value()) {
        let text = "rules:\n  - id: r\n    title: T\n    severity: high\n    condition: {not: {path: $.request.a, op: '==', value: OK}}\n  - id: e\n    title: E\n    severity: high\n    condition: {not: {path: $.request.a, op: exists}}\n";
        let set = load(text.to_string()).unwrap();
        let app = Application::parse("payments-api").unwrap();
        let env = Environment::parse("prod").unwrap();
        let subject = Subject { application: &app, environment: &env, tier: crate::domain::Environments::default().tier_of(&env).unwrap_or(crate::domain::Tier::Other), caller: CallerKind::Argocd };
        let doc = serde_json::json!({"request": {"a": value.clone()}});
        let now = "2025-06-04T12:00:00Z".parse().unwrap();
        let unavailable = BTreeMap::new();
        let ev = set.evaluate(&EvalInput { subject, document: &doc, unavailable: &unavailable, now, no_rules_verdict: crate::domain::Verdict::ManualReview });
        let is_other_string = value.as_str().is_some_and(|s| s != "OK");
        prop_assert_eq!(ev.results[0].outcome == crate::domain::RuleOutcome::Pass, is_other_string);
        prop_assert_ne!(ev.results[1].outcome, crate::domain::RuleOutcome::Pass);
    }
}
