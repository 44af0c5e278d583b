//! Simple JSONPath filters (`[?@.severity == 'CRITICAL']`, `&&`, `||`, comparisons between a
//! relative singular query and a literal), evaluated by our own walker. The `jsonpath-rust`
//! engine costs about 0.5 ms per filter over 2,000 items, which alone broke the evaluation budget
//! for large scanner reports; anything richer than this subset still goes to the engine.
//!
//! Semantics follow RFC 9535 §2.3.5: a missing value equals only another missing value, `!=` is
//! the negation of `==`, and `<`-style comparisons hold only between two numbers or two strings.

use jsonpath_rust::parser::model::{
    Comparable, Comparison, Filter, FilterAtom, Literal, SingularQuery, SingularQuerySegment,
};
use serde_json::Value;

/// A compiled filter condition.
#[derive(Debug, Clone)]
pub(super) enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Cmp(Op, Operand, Operand),
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
pub(super) enum Operand {
    /// `@.a.b[0]`: a path relative to the element being tested.
    Current(Vec<Seg>),
    Literal(Value),
}

#[derive(Debug, Clone)]
pub(super) enum Seg {
    Name(String),
    Index(i64),
}

/// Compiles a filter if it is in the supported subset; `None` sends the path to the engine.
pub(super) fn compile(f: &Filter) -> Option<Cond> {
    match f {
        Filter::And(parts) => parts
            .iter()
            .map(compile)
            .collect::<Option<_>>()
            .map(Cond::And),
        Filter::Or(parts) => parts
            .iter()
            .map(compile)
            .collect::<Option<_>>()
            .map(Cond::Or),
        Filter::Atom(FilterAtom::Filter { expr, not: false }) => compile(expr),
        Filter::Atom(FilterAtom::Comparison(c)) => {
            let (op, l, r) = match c.as_ref() {
                Comparison::Eq(l, r) => (Op::Eq, l, r),
                Comparison::Ne(l, r) => (Op::Ne, l, r),
                Comparison::Lt(l, r) => (Op::Lt, l, r),
                Comparison::Lte(l, r) => (Op::Le, l, r),
                Comparison::Gt(l, r) => (Op::Gt, l, r),
                Comparison::Gte(l, r) => (Op::Ge, l, r),
            };
            Some(Cond::Cmp(op, operand(l)?, operand(r)?))
        }
        Filter::Atom(_) => None,
    }
}

fn operand(c: &Comparable) -> Option<Operand> {
    match c {
        Comparable::Literal(l) => Some(Operand::Literal(match l {
            Literal::Int(i) => Value::from(*i),
            Literal::Float(f) => Value::from(*f),
            Literal::String(s) => Value::String(s.clone()),
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Null => Value::Null,
        })),
        Comparable::SingularQuery(SingularQuery::Current(segs)) => Some(Operand::Current(
            segs.iter()
                .map(|s| match s {
                    SingularQuerySegment::Name(n) => Seg::Name(n.clone()),
                    SingularQuerySegment::Index(i) => Seg::Index(*i),
                })
                .collect(),
        )),
        _ => None,
    }
}

/// Whether `node` (one child of the filtered value) satisfies the condition.
pub(super) fn holds(cond: &Cond, node: &Value) -> bool {
    match cond {
        Cond::And(parts) => parts.iter().all(|c| holds(c, node)),
        Cond::Or(parts) => parts.iter().any(|c| holds(c, node)),
        Cond::Cmp(op, l, r) => {
            let (l, r) = (resolve(l, node), resolve(r, node));
            match op {
                Op::Eq => equal(l, r),
                Op::Ne => !equal(l, r),
                Op::Lt => less(l, r),
                Op::Gt => less(r, l),
                Op::Le => less(l, r) || equal(l, r),
                Op::Ge => less(r, l) || equal(l, r),
            }
        }
    }
}

fn resolve<'a>(o: &'a Operand, node: &'a Value) -> Option<&'a Value> {
    match o {
        Operand::Literal(v) => Some(v),
        Operand::Current(segs) => segs.iter().try_fold(node, |v, s| match s {
            Seg::Name(n) => v.as_object()?.get(n),
            Seg::Index(i) => {
                let arr = v.as_array()?;
                let idx = if *i < 0 {
                    arr.len().checked_sub(i.unsigned_abs() as usize)?
                } else {
                    usize::try_from(*i).ok()?
                };
                arr.get(idx)
            }
        }),
    }
}

fn equal(l: Option<&Value>, r: Option<&Value>) -> bool {
    match (l, r) {
        (None, None) => true,
        (Some(Value::Number(a)), Some(Value::Number(b))) => a.as_f64() == b.as_f64(),
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn less(l: Option<&Value>, r: Option<&Value>) -> bool {
    match (l, r) {
        (Some(Value::Number(a)), Some(Value::Number(b))) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a < b,
            _ => false,
        },
        (Some(Value::String(a)), Some(Value::String(b))) => a < b,
        _ => false,
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use serde_json::json;

    use super::super::Path;

    /// The fast path must select exactly what the engine selects.
    #[test]
    fn simple_filters_agree_with_the_engine() {
        let doc = json!({"scan": {"vulns": [
            {"id": "a", "severity": "CRITICAL", "score": 9.8, "fixed": true, "tags": ["x"]},
            {"id": "b", "severity": "HIGH", "score": 7, "fixed": false},
            {"id": "c", "severity": "CRITICAL", "score": 10, "fixed": null},
            {"id": "d", "score": "n/a"},
            {"id": "e", "severity": "LOW", "score": 2.0, "nested": {"n": 1}},
            "not an object", 3
        ], "by_name": {"x": {"severity": "CRITICAL"}, "y": {"severity": "LOW"}}}});
        let paths = [
            "$.scan.vulns[?@.severity == 'CRITICAL']",
            "$.scan.vulns[?@.severity != 'CRITICAL'].id",
            "$.scan.vulns[?@.score >= 7]",
            "$.scan.vulns[?@.score < 7.5]",
            "$.scan.vulns[?@.score > 'a']",
            "$.scan.vulns[?@.fixed == true].id",
            "$.scan.vulns[?@.fixed == null].id",
            "$.scan.vulns[?@.severity == 'CRITICAL' && @.score == 10].id",
            "$.scan.vulns[?@.severity == 'LOW' || @.score == 7].id",
            "$.scan.vulns[?(@.severity == 'HIGH')].id",
            "$.scan.vulns[?@.nested.n == 1].id",
            "$.scan.vulns[?@.tags[0] == 'x'].id",
            "$.scan.vulns[?@.missing == @.also_missing].id",
            "$.scan.by_name[?@.severity == 'CRITICAL']",
        ];
        for p in paths {
            let compiled = Path::compile(p).unwrap();
            assert!(
                matches!(compiled.query, super::super::Query::Steps(_)),
                "{p} should use the fast path"
            );
            let fast: Vec<_> = compiled
                .select(&doc, 10_000)
                .unwrap()
                .into_iter()
                .map(|h| h.value.clone())
                .collect();
            let parsed = jsonpath_rust::parser::parse_json_path(p).unwrap();
            let engine: Vec<_> = jsonpath_rust::query::js_path_process(&parsed, &doc)
                .unwrap()
                .into_iter()
                .map(|r| r.val.clone())
                .collect();
            assert_eq!(fast, engine, "{p}");
        }
    }

    #[test]
    fn filter_hits_are_located_by_index() {
        let doc = json!({"s": {"v": [{"k": 1}, {"k": 2}]}});
        let p = Path::compile("$.s.v[?@.k == 2].k").unwrap();
        let hits = p.select(&doc, 10).unwrap();
        assert_eq!(p.location(&hits[0]), "$.s.v[1].k");
    }

    #[test]
    fn richer_filters_still_go_to_the_engine() {
        let p = Path::compile("$.s.v[?length(@.k) > 1]").unwrap();
        assert!(matches!(p.query, super::super::Query::Full(_)));
    }
}
