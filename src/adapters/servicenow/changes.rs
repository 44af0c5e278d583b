//! Change requests for reviews routed to ServiceNow: open a normal change through the Change
//! Management API, find the change a check names, read its raw `state` / `approval`, and name
//! who approved or rejected it from `sysapproval_approver`.
//!
//! Raw values only (contract §3.5): `approval` is `approved` / `rejected` / `requested` /
//! `not requested`; a rejected normal change goes back to state New (`-5`) with approval
//! `rejected`, so the approval, not the state, says how the review ends.

use chrono::{DateTime, Utc};
use http::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::super::instance;
use super::super::{AdapterError, http_client::HttpRequest};
use super::{ServiceNowAdapter, raw};

/// What a gate-opened change request says.
#[derive(Debug, Clone)]
pub struct ChangeDraft {
    pub short_description: String,
    pub description: String,
    /// `assignment_group` (a sys_id or, where the instance resolves it, a name).
    pub assignment_group: Option<String>,
    /// `cmdb_ci` (a sys_id); left out when unknown.
    pub cmdb_ci: Option<String>,
    pub start_date: DateTime<Utc>,
    pub end_date: DateTime<Utc>,
    /// `correlation_id`: the decision id, so the change can be traced back.
    pub correlation_id: String,
}

/// A change request's identity and where its approval stands (raw values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeStatus {
    pub number: String,
    pub sys_id: String,
    pub state: String,
    pub approval: String,
    /// Request fields the instance dropped when creating it (`__meta.ignoredAttributes`).
    pub ignored: Vec<String>,
}

impl ServiceNowAdapter {
    /// Opens a normal change (`POST /api/sn_chg_rest/change/normal`).
    pub async fn open_change(
        &self,
        draft: &ChangeDraft,
        deadline: Instant,
    ) -> Result<ChangeStatus, AdapterError> {
        let inner = &self.inner;
        let url = instance::endpoint(&inner.base, "api/sn_chg_rest/change/normal")?;
        let mut body = json!({
            "short_description": draft.short_description,
            "description": draft.description,
            "start_date": raw_utc(draft.start_date),
            "end_date": raw_utc(draft.end_date),
            "correlation_id": draft.correlation_id,
            "correlation_display": "Portcullis",
        });
        if let Some(g) = &draft.assignment_group {
            body["assignment_group"] = json!(g);
        }
        if let Some(ci) = &draft.cmdb_ci {
            body["cmdb_ci"] = json!(ci);
        }
        let mut req = HttpRequest::new(Method::POST, url);
        req.body = Some(body);
        let response = inner
            .send(req, instance::call_deadline(deadline, inner.timeout))
            .await?;
        let mut status = status_of(&response.json["result"])?;
        status.ignored = response.json["__meta"]["ignoredAttributes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(status)
    }

    /// The change numbered `number`, re-checked client-side (a dropped query condition would
    /// otherwise return another change).
    pub async fn find_change(
        &self,
        number: &str,
        deadline: Instant,
    ) -> Result<ChangeStatus, AdapterError> {
        let inner = &self.inner;
        let (records, _, _) = inner
            .list(
                &format!("number={number}"),
                instance::call_deadline(deadline, inner.timeout),
            )
            .await?;
        records
            .iter()
            .map(status_of)
            .filter_map(Result::ok)
            .find(|c| c.number == number)
            .ok_or_else(|| AdapterError::NotFound {
                detail: format!(
                    "ServiceNow returned no change `{number}`: it does not exist or the integration user cannot read it (ACL)"
                ),
            })
    }

    /// The change with `sys_id`, as it stands now.
    pub async fn change_status(
        &self,
        sys_id: &str,
        deadline: Instant,
    ) -> Result<ChangeStatus, AdapterError> {
        let inner = &self.inner;
        let path = match inner.api {
            super::ServiceNowApi::Table => format!("api/now/table/change_request/{sys_id}"),
            super::ServiceNowApi::Change => format!("api/sn_chg_rest/change/{sys_id}"),
        };
        let mut url = instance::endpoint(&inner.base, &path)?;
        url.query_pairs_mut().extend_pairs([
            ("sysparm_display_value", "all"),
            ("sysparm_exclude_reference_link", "true"),
            ("sysparm_fields", "sys_id,number,state,approval"),
        ]);
        let response = inner
            .get(url, instance::call_deadline(deadline, inner.timeout))
            .await?;
        let status = status_of(&response.json["result"])?;
        if status.sys_id != sys_id {
            return Err(AdapterError::BadResponse {
                detail: format!(
                    "asked for change `{sys_id}`, ServiceNow answered `{}`",
                    status.sys_id
                ),
            });
        }
        Ok(status)
    }

    /// Who last gave the change's approval record the state `approval` (`approved` /
    /// `rejected`), as their user name (`sys_updated_by`), with their comment. `None` when the
    /// history does not say.
    pub async fn approver(
        &self,
        sys_id: &str,
        approval: &str,
        deadline: Instant,
    ) -> Result<Option<(String, String)>, AdapterError> {
        let inner = &self.inner;
        let mut url = instance::endpoint(&inner.base, "api/now/table/sysapproval_approver")?;
        url.query_pairs_mut().extend_pairs([
            (
                "sysparm_query",
                format!("sysapproval={sys_id}^state={approval}^ORDERBYDESCsys_updated_on").as_str(),
            ),
            ("sysparm_display_value", "false"),
            ("sysparm_exclude_reference_link", "true"),
            (
                "sysparm_fields",
                "sysapproval,state,sys_updated_by,comments,sys_updated_on",
            ),
            ("sysparm_limit", "10"),
        ]);
        let response = inner
            .get(url, instance::call_deadline(deadline, inner.timeout))
            .await?;
        let rows = response.json["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // Re-check client-side: a dropped condition would name someone else's approval.
        Ok(rows
            .iter()
            .find(|r| {
                raw(r, "sysapproval").as_deref() == Some(sys_id)
                    && raw(r, "state").as_deref() == Some(approval)
            })
            .and_then(|r| {
                let by = raw(r, "sys_updated_by").filter(|s| !s.trim().is_empty())?;
                Some((by, raw(r, "comments").unwrap_or_default()))
            }))
    }
}

fn status_of(record: &Value) -> Result<ChangeStatus, AdapterError> {
    let need = |f: &str| {
        raw(record, f).ok_or_else(|| AdapterError::BadResponse {
            detail: format!("a change request has no raw `{f}`"),
        })
    };
    Ok(ChangeStatus {
        number: need("number")?,
        sys_id: need("sys_id")?,
        state: need("state")?,
        approval: need("approval")?,
        ignored: Vec::new(),
    })
}

/// ServiceNow's raw date format, UTC.
fn raw_utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}
