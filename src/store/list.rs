//! The decision list's SQL that both backends share: the filter's conditions on `d.*`, the
//! keyset cursor, the order and limit, and rows → page.
//!
//! sqlx's `QueryBuilder` writes each database's placeholders (`?` or `$n`), so this is written
//! once, generic over the database. A backend writes only what truly differs, its FROM clause
//! (which index table drives the walk, SQLite's `CROSS JOIN`, its failed-rule catch-up), then
//! calls `push_conditions` and `push_page` with the id column that gives the page its order.

use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::domain::DecisionId;

use super::page::encode_token;
use super::row::StoredDecision;
use super::{DecisionFilter, DecisionPage, StoreError};

/// What PostgreSQL's list query selects; the backend appends its FROM clause.
pub(super) const SELECT: &str = concat!("SELECT ", postgres_decision_columns!(), " FROM ");
/// SQLite's, with the packed bodies (migration 0014, `store/packed.rs`).
pub(super) const SELECT_WITH_PACKED: &str =
    concat!("SELECT ", sqlite_decision_columns!(), " FROM ");

/// ` AND` a decision of `d` names the image `digest`, as a semi-join on `decision_images`. A
/// decision's image rows carry its environment, so this is a full-key lookup.
pub(super) fn push_image_exists<'a, DB>(query: &mut QueryBuilder<'a, DB>, digest: &'a str)
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
{
    query
        .push(" AND EXISTS (SELECT 1 FROM decision_images AS i WHERE i.digest = ")
        .push_bind(digest)
        .push(" AND i.environment = d.environment AND i.decision_id = d.id)");
}

/// ` AND` one condition per set filter on the decision's own columns. Only the filters that are
/// set become conditions, so the planner sees plain equalities it can serve from the
/// `(column, id)` indexes. The image and rule filters are the backend's: they choose its FROM.
pub(super) fn push_conditions<'a, DB>(query: &mut QueryBuilder<'a, DB>, filter: &'a DecisionFilter)
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    if let Some(application) = &filter.application {
        query
            .push(" AND d.application = ")
            .push_bind(application.as_str());
    }
    if let Some(environment) = &filter.environment {
        query
            .push(" AND d.environment = ")
            .push_bind(environment.as_str());
    }
    if let Some(verdict) = filter.verdict {
        query.push(" AND d.verdict = ").push_bind(verdict.as_str());
    }
    if let Some(status) = filter.status {
        query.push(" AND d.status = ").push_bind(status.as_str());
    }
    if let Some(caller_kind) = filter.caller_kind {
        query
            .push(" AND d.caller_kind = ")
            .push_bind(caller_kind.as_str());
    }
    if let Some(principal) = &filter.principal {
        query
            .push(" AND d.principal = ")
            .push_bind(principal.as_str());
    }
    let (from, until) = filter.created_range_millis();
    if let Some(from) = from {
        query.push(" AND d.created_at >= ").push_bind(from);
    }
    if let Some(until) = until {
        query.push(" AND d.created_at < ").push_bind(until);
    }
}

/// The cursor, the order and the limit. `order` is the id column of the table that drives the
/// walk (`d.id`, or an index table's `decision_id`, which equals it): naming that column lets the
/// planner see that its index already gives the order. One row beyond the page tells whether
/// another page exists, so the last page carries no token and callers never fetch an empty page.
pub(super) fn push_page<'a, DB>(
    query: &mut QueryBuilder<'a, DB>,
    order: &'static str,
    after: Option<&'a DecisionId>,
    page_size: u32,
) where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    if let Some(after) = after {
        query
            .push(" AND ")
            .push(order)
            .push(" < ")
            .push_bind(after.as_str());
    }
    query
        .push(" ORDER BY ")
        .push(order)
        .push(" DESC LIMIT ")
        .push_bind(i64::from(page_size) + 1);
}

/// The page from the rows a query built with `push_page(…, page_size)` returned.
pub(super) fn page(rows: Vec<StoredDecision>, page_size: u32) -> Result<DecisionPage, StoreError> {
    let more = rows.len() > page_size as usize;
    let decisions = rows
        .into_iter()
        .take(page_size as usize)
        .map(StoredDecision::into_decision)
        .collect::<Result<Vec<_>, _>>()?;
    let next_page_token = match decisions.last() {
        Some(last) if more => Some(encode_token(&last.id)),
        _ => None,
    };
    Ok(DecisionPage {
        decisions,
        next_page_token,
    })
}
