//! Unit tests of the policy module's public behaviour: loading errors with their positions,
//! evaluation outcomes and reasons, scoping and required sources.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;
use crate::domain::{Application, CallerKind, Environment, RuleOutcome};

fn load(text: &str) -> Result<PolicySet, PolicyErrors> {
    PolicySet::from_sources(vec![PolicySource {
        name: "p.yaml".into(),
        text: text.into(),
    }])
}

fn errors(text: &str) -> Vec<String> {
    load(text)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn now() -> DateTime<Utc> {
    "2025-06-04T12:00:00Z".parse().unwrap()
}

fn run(
    set: &PolicySet,
    env: &str,
    doc: &Value,
    unavailable: &BTreeMap<String, (FailureReason, String)>,
) -> Evaluation {
    let app = Application::parse("payments-api").unwrap();
    let env = Environment::parse(env).unwrap();
    let subject = Subject {
        application: &app,
        environment: &env,
        tier: tier_of(&env),
        caller: CallerKind::Spinnaker,
    };
    set.evaluate(&EvalInput {
        subject,
        document: doc,
        unavailable,
        now: now(),
        no_rules_verdict: Verdict::ManualReview,
    })
}

fn tier_of(env: &Environment) -> crate::domain::Tier {
    crate::domain::Environments::default().tier_of(env).unwrap()
}

fn rule(condition: &str) -> String {
    format!("rules:\n  - id: r\n    title: T\n    severity: critical\n    condition: {condition}\n")
}

#[test]
fn every_problem_is_reported_with_its_position() {
    let text = "\
rules:
  - id: Bad_Id
    title: T
    severity: severe
    colour: red
    condition:
      all:
        - path: $.sonarqube.
          op: '=='
          value: OK
        - path: $.request.x
          op: equals
          value: 1
        - path: $.request.y
          op: matches
          value: '(unclosed'
        - path: $.request.z
          op: '<'
    on_fail: stop
";
    let got = errors(text);
    let want = [
        "p.yaml:2:9: rule id `Bad_Id` is not valid",
        "p.yaml:4:15: unknown severity `severe`",
        "p.yaml:5:5: unknown field `colour`",
        "p.yaml:8:29: invalid JSONPath `$.sonarqube.`: expected wildcard_selector or a name at character 13",
        "p.yaml:12:15: unknown operator `equals`",
        "p.yaml:16:18: invalid regular expression `(unclosed`: unclosed group",
        "p.yaml:17:11: missing `value` for operator `<`",
        "p.yaml:19:14: unknown verdict `stop`",
    ];
    let mut sorted = got.clone();
    sorted.sort();
    let mut want_sorted: Vec<String> = want.iter().map(ToString::to_string).collect();
    want_sorted.sort();
    assert_eq!(sorted, want_sorted, "{got:#?}");
}

#[test]
fn errors_have_help_and_display_one_per_line() {
    let e = load("rules:\n  - id: r\n    title: T\n    severity: low\n    condition: {path: $.request.x, op: exist}\n").unwrap_err();
    assert_eq!(e.to_string(), "p.yaml:5:40: unknown operator `exist`");
    assert!(
        e.0[0]
            .help
            .as_deref()
            .unwrap()
            .starts_with("did you mean `exists`?")
    );
    let many = errors("rules:\n  - id: a\n  - id: b\n");
    assert_eq!(many.len(), 6, "{many:?}");
}

#[test]
fn yaml_syntax_errors_and_wrong_types_are_located() {
    assert_eq!(
        errors("rules:\n  - id: [a\n"),
        vec!["p.yaml:3:1: invalid YAML: while parsing a flow sequence, expected ',' or ']'"]
    );
    assert_eq!(
        errors("rules: 5\n"),
        vec!["p.yaml:1:8: `rules` must be a list, found a single value"]
    );
    assert_eq!(
        errors("- a\n"),
        vec!["p.yaml:1:1: the top level must be a mapping with a `rules` list"]
    );
    let e = errors(&rule("{path: $.request.x, op: exists, value: 1}"));
    assert_eq!(e, vec!["p.yaml:5:55: `exists` takes no `value`"]);
    let e = errors(&rule("{path: $.request.x, op: in, value: 3}"));
    assert_eq!(
        e,
        vec!["p.yaml:5:51: `in` needs a non-empty list of values, found `3`"]
    );
    let e = errors(&rule("{all: [], any: []}"));
    assert_eq!(e, vec!["p.yaml:5:26: a condition mixes `all` with `any`"]);
}

#[test]
fn duplicate_ids_across_files_point_at_the_second() {
    let a = PolicySource {
        name: "a.yaml".into(),
        text: rule("{path: $.request.x, op: exists}"),
    };
    let b = PolicySource {
        name: "b.yaml".into(),
        text: format!("\n{}", rule("{path: $.request.x, op: exists}")),
    };
    let e = PolicySet::from_sources(vec![b, a]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.yaml:3:9: duplicate rule id `r` (first defined in `a.yaml` at line 2)"
    );
}

#[test]
fn version_is_a_content_digest() {
    let a = load(&rule("{path: $.request.x, op: exists}")).unwrap();
    let b = load(&rule("{path: $.request.x, op: exists}")).unwrap();
    let c = load(&rule("{path: $.request.y, op: exists}")).unwrap();
    assert_eq!(a.version(), b.version());
    assert_ne!(a.version(), c.version());
    assert!(a.version().starts_with("sha256:") && a.version().len() == 7 + 64);
}

/// The text a set keeps is exactly what its version is the digest of: recomputing the digest
/// from the kept files (as a verifier does with a stored copy) gives the version, for a
/// directory and for the built-in pack alike.
#[test]
fn the_kept_text_recomputes_to_the_version() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        rule("{path: $.request.x, op: exists}"),
    )
    .unwrap();
    std::fs::write(dir.path().join("a.yml"), "rules: []\n").unwrap();
    // Not part of the set, so not part of its text.
    std::fs::write(dir.path().join("b.cases.yaml"), "cases: []\n").unwrap();
    std::fs::write(dir.path().join(".hidden.yaml"), "x: 1\n").unwrap();
    let set = PolicySet::load_dir(dir.path()).unwrap();
    let text = set.text();
    let paths: Vec<&str> = text.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["a.yml", "b.yaml"]);
    assert_eq!(text.files[0].content, "rules: []\n");
    assert_eq!(text.version, set.version());
    let recomputed = crate::domain::policy_digest(
        text.files
            .iter()
            .map(|f| (f.path.as_str(), f.content.as_str())),
    );
    assert_eq!(recomputed, set.version());

    let builtin = PolicySet::builtin().unwrap();
    let text = builtin.text();
    assert!(text.is_intact());
    assert_eq!(text.version, builtin.version());
    assert!(
        text.files.iter().all(|f| f.path.starts_with("builtin:")),
        "built-in files keep the names their rule results cite"
    );
    assert_eq!(text.files.len(), 7);
}

#[test]
fn reasons_say_what_was_found_where_and_what_was_expected() {
    let set = load(&rule(
        "{path: '$.request.images[*].pinned', op: '==', value: true}",
    ))
    .unwrap();
    let doc = json!({"request": {"images": [
        {"reference": "ghcr.io/acme/api@sha256:aa", "pinned": true},
        {"reference": "ghcr.io/acme/api:1.2", "pinned": false},
    ]}});
    let ev = run(&set, "prod", &doc, &BTreeMap::new());
    assert_eq!(ev.verdict, Verdict::Terminate);
    assert_eq!(
        ev.results[0].reason,
        "`$.request.images[*].pinned` is `false` for `ghcr.io/acme/api:1.2` (1 of 2 values), expected `== true`"
    );
}

#[test]
fn missing_evidence_is_missing_and_fail_closed() {
    let set = load(&rule(
        "{path: $.sonarqube.quality_gate.status, op: '==', value: OK}",
    ))
    .unwrap();
    let mut unavailable = BTreeMap::new();
    unavailable.insert(
        "sonarqube".to_string(),
        (
            FailureReason::Timeout,
            "no answer within 2000 ms".to_string(),
        ),
    );
    let ev = run(&set, "prod", &json!({"request": {}}), &unavailable);
    assert_eq!(ev.results[0].outcome, RuleOutcome::Missing);
    assert_eq!(
        ev.results[0].effect,
        Verdict::Terminate,
        "critical: max(terminate, manual_review)"
    );
    assert_eq!(
        ev.results[0].reason,
        "evidence unavailable: `sonarqube`: timeout: no answer within 2000 ms"
    );

    let ev = run(&set, "prod", &json!({"request": {}}), &BTreeMap::new());
    assert_eq!(
        ev.results[0].reason,
        "no evidence source named `sonarqube` answered"
    );
    let ev = run(
        &set,
        "prod",
        &json!({"request": {}, "sonarqube": {}}),
        &BTreeMap::new(),
    );
    assert_eq!(
        ev.results[0].reason,
        "no value at `$.sonarqube.quality_gate.status`"
    );
    let ev = run(
        &set,
        "prod",
        &json!({"request": {}, "sonarqube": {"quality_gate": {"status": 5}}}),
        &BTreeMap::new(),
    );
    assert_eq!(ev.results[0].outcome, RuleOutcome::Fail);
    assert_eq!(
        ev.results[0].reason,
        "`$.sonarqube.quality_gate.status` is `5`, expected `== \"OK\"` but found a number where a string was expected"
    );
}

#[test]
fn three_valued_logic() {
    let cond = |c: &str| load(&rule(c)).unwrap();
    let doc = json!({"request": {"a": 1}});
    let un = BTreeMap::new();
    let outcome = |set: &PolicySet| run(set, "prod", &doc, &un).results[0].outcome;
    let pass = "{path: $.request.a, op: '==', value: 1}";
    let fail = "{path: $.request.a, op: '==', value: 2}";
    let miss = "{path: $.sonarqube.x, op: exists}";
    assert_eq!(
        outcome(&cond(&format!("{{any: [{miss}, {pass}]}}"))),
        RuleOutcome::Pass
    );
    assert_eq!(
        outcome(&cond(&format!("{{any: [{miss}, {fail}]}}"))),
        RuleOutcome::Missing
    );
    assert_eq!(
        outcome(&cond(&format!("{{all: [{miss}, {fail}]}}"))),
        RuleOutcome::Fail
    );
    assert_eq!(
        outcome(&cond(&format!("{{all: [{miss}, {pass}]}}"))),
        RuleOutcome::Missing
    );
    assert_eq!(
        outcome(&cond(&format!("{{not: {miss}}}"))),
        RuleOutcome::Missing
    );
    assert_eq!(
        outcome(&cond(&format!("{{not: {fail}}}"))),
        RuleOutcome::Pass
    );
}

#[test]
fn not_over_unusable_evidence_is_missing_never_a_pass() {
    let cond = |c: &str| load(&rule(c)).unwrap();
    let doc = json!({"request": {"a": 1, "s": "x", "list": [1, "x"]}});
    let un = BTreeMap::new();
    let outcome = |c: &str| run(&cond(c), "prod", &doc, &un).results[0].outcome;
    // A number where a string is expected: the tool changed shape, the condition is not false.
    let mismatch = "{path: $.request.a, op: '==', value: OK}";
    assert_eq!(
        outcome(mismatch),
        RuleOutcome::Fail,
        "fails where it stands"
    );
    assert_eq!(
        outcome(&format!("{{not: {mismatch}}}")),
        RuleOutcome::Missing
    );
    assert_eq!(
        outcome("{not: {path: $.request.a, op: matches, value: '^x$'}}"),
        RuleOutcome::Missing
    );
    // No value: `not exists` is not a way to write `absent`.
    assert_eq!(
        outcome("{not: {path: $.request.nothing, op: exists}}"),
        RuleOutcome::Missing
    );
    assert_eq!(
        outcome("{not: {path: $.request.nothing, op: '==', value: 1}}"),
        RuleOutcome::Missing
    );
    // Nested: an inconclusive part keeps `any` inconclusive; a conclusive failure decides `all`.
    let fail = "{path: $.request.s, op: '==', value: y}";
    assert_eq!(
        outcome(&format!("{{not: {{any: [{mismatch}, {fail}]}}}}")),
        RuleOutcome::Missing
    );
    assert_eq!(
        outcome(&format!("{{not: {{all: [{mismatch}, {fail}]}}}}")),
        RuleOutcome::Pass
    );
    assert_eq!(
        outcome(&format!("{{not: {{all: [{mismatch}]}}}}")),
        RuleOutcome::Missing
    );
    assert_eq!(
        outcome(&format!("{{not: {{not: {mismatch}}}}}")),
        RuleOutcome::Missing
    );
    // Over several values: one value of the right type that fails decides `all`; for `any`,
    // one value of the wrong type leaves the answer open.
    assert_eq!(
        outcome("{not: {path: '$.request.list[*]', op: '==', value: y}}"),
        RuleOutcome::Pass
    );
    assert_eq!(
        outcome("{not: {path: '$.request.list[*]', op: '==', value: y, quantifier: any}}"),
        RuleOutcome::Missing
    );
    // A real failure still negates to a pass.
    assert_eq!(outcome(&format!("{{not: {fail}}}")), RuleOutcome::Pass);
}

#[test]
fn absent_over_a_tool_is_refused_unless_the_rule_says_it_means_it() {
    let e = errors(&rule(
        "{path: $.trivy.vulnerabilities.critical, op: absent}",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("p.yaml:5:23: `absent` over `$.trivy.vulnerabilities.critical` also passes when `trivy` changes its response shape"),
        "{e:?}"
    );
    // Nested under `any` / `not` too.
    assert_eq!(
        errors(&rule(
            "{any: [{path: $.request.a, op: exists}, {not: {path: $.jira.x, op: absent}}]}"
        ))
        .len(),
        1
    );
    // The request is what the caller sent: no value there is a fact.
    assert!(
        load(&rule(
            "{path: '$.request.change_refs.jira_keys[*]', op: absent}"
        ))
        .is_ok()
    );
    // Said on the condition, or for the whole rule.
    assert!(load(&rule("{path: $.trivy.x, op: absent, allow_absent: true}")).is_ok());
    assert!(
        load(&format!(
            "{}    allow_absent: true\n",
            rule("{path: $.trivy.x, op: absent}")
        ))
        .is_ok()
    );
    // Only where it means something, and only a boolean.
    let e = errors(&rule("{path: $.trivy.x, op: exists, allow_absent: true}"));
    assert!(
        e[0].contains("`allow_absent` only applies to `op: absent`"),
        "{e:?}"
    );
    let e = errors(&rule("{path: $.trivy.x, op: absent, allow_absent: yes}"));
    assert!(
        e[0].contains("`allow_absent` must be `true` or `false`"),
        "{e:?}"
    );
}

#[test]
fn an_empty_set_is_refused_and_linted() {
    for text in [
        "rules: []\n",
        "# every rule commented out\n# - id: r\nrules: []\n",
    ] {
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("the policy set has no rules (1 file read)"),
            "{e:?}"
        );
        let report = lint::lint_sources(vec![PolicySource {
            name: "p.yaml".into(),
            text: text.into(),
        }]);
        assert!(report.has_errors(), "{}", report.render_human());
        assert!(
            report
                .render_human()
                .contains("error: the policy set has no rules")
        );
    }
    assert!(PolicySet::from_sources(vec![]).is_err());
}

#[test]
fn rules_select_on_the_tier_and_no_applicable_rule_answers_the_configured_verdict() {
    let set = load("rules:\n  - id: prod\n    title: P\n    severity: critical\n    applies_to: {tiers: [production]}\n    condition: {path: $.request.a, op: exists}\n").unwrap();
    let app = Application::parse("payments-api").unwrap();
    let env = Environment::parse("live").unwrap();
    let doc = json!({"request": {}});
    let un = BTreeMap::new();
    let eval = |tier, no_rules_verdict| {
        set.evaluate(&EvalInput {
            subject: Subject {
                application: &app,
                environment: &env,
                tier,
                caller: CallerKind::Api,
            },
            document: &doc,
            unavailable: &un,
            now: now(),
            no_rules_verdict,
        })
    };
    let ev = eval(crate::domain::Tier::Production, Verdict::Continue);
    assert_eq!(ev.results[0].rule_id, "prod");
    assert_eq!(ev.verdict, Verdict::Terminate);
    for v in Verdict::ALL {
        let ev = eval(crate::domain::Tier::Staging, v);
        assert_eq!(ev.verdict, v);
        assert_eq!(ev.results.len(), 1);
        assert_eq!(ev.results[0].rule_id, NO_APPLICABLE_RULE);
        assert_eq!(ev.results[0].effect, v);
        assert!(
            ev.results[0]
                .reason
                .contains("no policy rule applies to `payments-api` in `live` (tier staging)"),
            "{}",
            ev.results[0].reason
        );
    }
    let e = errors(
        "rules:\n  - id: r\n    title: T\n    severity: low\n    applies_to: {tiers: [prodution]}\n    condition: {path: $.request.a, op: exists}\n",
    );
    assert!(e[0].contains("unknown tier `prodution`"), "{e:?}");
}

#[test]
fn defaults_follow_severity_and_scope_limits_rules_and_sources() {
    let text = "\
rules:
  - id: warn
    title: W
    severity: low
    condition: {path: $.sonarqube.x, op: exists}
  - id: prod-only
    title: P
    severity: high
    applies_to: {environments: [\"prod-*\"], callers: [argocd]}
    condition: {path: $.jira.x, op: exists}
";
    let set = load(text).unwrap();
    let ev = run(&set, "dev", &json!({"request": {}}), &BTreeMap::new());
    assert_eq!(ev.results.len(), 1);
    assert_eq!(
        ev.results[0].effect,
        Verdict::ManualReview,
        "missing on a low rule still asks a human"
    );
    let app = Application::parse("a").unwrap();
    let env = Environment::parse("prod-eu").unwrap();
    let sources = |caller| {
        set.required_sources(Subject {
            application: &app,
            environment: &env,
            tier: tier_of(&env),
            caller,
        })
    };
    assert_eq!(
        sources(CallerKind::Argocd).into_iter().collect::<Vec<_>>(),
        ["jira", "sonarqube"]
    );
    assert_eq!(
        sources(CallerKind::Cli).into_iter().collect::<Vec<_>>(),
        ["sonarqube"]
    );
}

#[test]
fn too_many_values_fail_instead_of_running_unbounded() {
    let set = load(&rule("{path: '$.trivy.v[*]', op: exists}")).unwrap();
    let doc = json!({"request": {}, "trivy": {"v": vec![1; MAX_VALUES + 1]}});
    let ev = run(&set, "prod", &doc, &BTreeMap::new());
    assert_eq!(ev.results[0].outcome, RuleOutcome::Fail);
    assert!(ev.results[0].reason.contains("more than 10000 values"));
}

#[test]
fn builtin_pack_loads_with_file_names() {
    let set = PolicySet::builtin().unwrap();
    assert!(set.rule_count() >= 9);
    assert!(
        set.rules()
            .iter()
            .all(|r| r.file.starts_with("builtin:") && r.file.ends_with(".yaml"))
    );
}

#[test]
fn load_dir_reads_policy_files_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b.yml"),
        rule("{path: $.request.x, op: exists}"),
    )
    .unwrap();
    std::fs::write(dir.path().join("b.cases.yaml"), "cases: []").unwrap();
    std::fs::write(dir.path().join(".hidden.yaml"), "nonsense: [").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    let set = PolicySet::load_dir(dir.path()).unwrap();
    assert_eq!(set.rule_ids(), ["r"]);
    let empty = tempfile::tempdir().unwrap();
    assert!(
        PolicySet::load_dir(empty.path())
            .unwrap_err()
            .to_string()
            .contains("no policy files")
    );
}

#[test]
fn comparing_two_facts_is_checked_at_load() {
    let misuse = [
        (
            "{path: $.a.x, op: matches, value_from: $.b.y}",
            "`matches` cannot take `value_from`",
        ),
        (
            "{path: $.a.x, op: \"==\", value: 1, value_from: $.b.y}",
            "both `value` and `value_from`",
        ),
        (
            "{path: $.a.x, op: \"==\", value: 1, relative_to: $.b.y}",
            "`relative_to` only applies to",
        ),
        (
            "{path: $.a.x, op: in, value_from: '$.b[?'}",
            "invalid JSONPath `$.b[?` in `value_from`",
        ),
        (
            "{path: $.a.x, op: before, value: 1h}",
            "`before` takes no `value`",
        ),
    ];
    for (condition, want) in misuse {
        let errs = errors(&rule(condition));
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "{condition}: {errs:?}"
        );
    }
    // The facts compared with are sources the rule needs, so the gate asks for them.
    let app = Application::parse("a").unwrap();
    let env = Environment::parse("prod-eu").unwrap();
    let needs = |condition: &str| {
        load(&rule(condition))
            .unwrap()
            .required_sources(Subject {
                application: &app,
                environment: &env,
                tier: tier_of(&env),
                caller: CallerKind::Argocd,
            })
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        needs("{path: $.a.x, op: newer_than, value: 1h, relative_to: $.c.end}"),
        ["a", "c"]
    );
    assert_eq!(
        needs("{path: $.a.x, op: in, value_from: $.b.list}"),
        ["a", "b"]
    );
}
