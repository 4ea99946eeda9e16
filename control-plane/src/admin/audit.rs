//! The audit trail for admins: filtered pages (newest first, keyset-paginated, so a page costs
//! the same however long the trail), and the export of a whole filtered trail as CSV or JSON
//! Lines, streamed a page at a time in constant memory.

use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use serde_json::Value;

use super::{decode_cursor, encode_cursor, page_size, time, AdminError, AdminResult, Capability};
use super::{Page, Principal};
use crate::store::{AuditCursor, AuditEvent, AuditFilter, Store};

/// One audit event as shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: String,
    /// RFC 3339.
    pub at: String,
    /// Who: `person:…`, `api-token:…`, `scim-token:…`, `cli:…`, `system`, …
    pub actor: String,
    /// The client address of a console or API change.
    pub source: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl From<&AuditEvent> for AuditEntry {
    fn from(e: &AuditEvent) -> AuditEntry {
        AuditEntry {
            id: e.id.clone(),
            at: time(e.at),
            actor: e.actor.clone(),
            source: e.source.clone(),
            action: e.action.clone(),
            resource_type: e.resource_type.clone(),
            resource_id: e.resource_id.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// What an admin filters the trail on, as given (times in RFC 3339).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// A person's userName or id: events about them.
    pub person: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

fn parse_time(field: &str, text: &str) -> AdminResult<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|_| AdminError::invalid(field, "an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"))
}

fn bounded(field: &str, v: &Option<String>) -> AdminResult<Option<String>> {
    match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > 256 => {
            Err(AdminError::invalid(field, "at most 256 characters"))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

/// The store filter for `q` in the principal's organisation.
async fn filter(store: &Store, who: &Principal, q: &AuditQuery) -> AdminResult<AuditFilter> {
    let resource_id = match bounded("person", &q.person)? {
        None => None,
        Some(p) => match store.user_by_user_name(&who.org_id, &p).await? {
            Some(u) => Some(u.id),
            // An id (also of a person since deleted, whose history stays).
            None => Some(p),
        },
    };
    Ok(AuditFilter {
        actor: bounded("actor", &q.actor)?,
        action: bounded("action", &q.action)?,
        resource_id,
        since: q
            .since
            .as_deref()
            .map(|t| parse_time("since", t))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|t| parse_time("until", t))
            .transpose()?,
    })
}

fn cursor_of(e: &AuditEvent) -> String {
    encode_cursor(&[&e.at.to_string(), &e.id])
}

fn parse_cursor(c: &str) -> AdminResult<AuditCursor> {
    let parts = decode_cursor(c, 2)?;
    Ok(AuditCursor {
        at: parts[0]
            .parse()
            .map_err(|_| AdminError::invalid("cursor", "not a cursor this API returned"))?,
        id: parts[1].clone(),
    })
}

/// One page of the trail, newest first.
pub async fn page(
    store: &Store,
    who: &Principal,
    q: &AuditQuery,
    cursor: Option<&str>,
    limit: Option<usize>,
) -> AdminResult<Page<AuditEntry>> {
    who.require(Capability::ViewAudit)?;
    let f = filter(store, who, q).await?;
    let after = cursor
        .filter(|c| !c.is_empty())
        .map(parse_cursor)
        .transpose()?;
    let size = page_size(limit);
    let mut events = store
        .audit_page(&who.org_id, &f, after.as_ref(), size + 1)
        .await?;
    let more = events.len() > size;
    events.truncate(size);
    Ok(Page {
        next_cursor: more.then(|| events.last().map(cursor_of)).flatten(),
        items: events.iter().map(AuditEntry::from).collect(),
    })
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    JsonLines,
}

impl ExportFormat {
    /// `csv` (also when absent) or `jsonl`.
    pub fn parse(name: Option<&str>) -> AdminResult<ExportFormat> {
        match name {
            None | Some("csv") => Ok(ExportFormat::Csv),
            Some("jsonl") => Ok(ExportFormat::JsonLines),
            Some(_) => Err(AdminError::invalid("format", "csv or jsonl")),
        }
    }
}

/// Rows read per database round trip while exporting.
const EXPORT_BATCH: usize = 1000;

/// The whole filtered trail, newest first, as a stream of CSV or JSON Lines chunks. Checks
/// access and the filter before the first byte; a database error later ends the stream.
pub async fn export(
    store: &Store,
    who: &Principal,
    q: &AuditQuery,
    format: ExportFormat,
) -> AdminResult<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static> {
    who.require(Capability::ViewAudit)?;
    let f = filter(store, who, q).await?;
    let store = store.clone();
    let org = who.org_id.clone();
    let header = match format {
        ExportFormat::Csv => Some(Bytes::from_static(
            b"id,at,actor,source,action,resource_type,resource_id,detail\n",
        )),
        ExportFormat::JsonLines => None,
    };
    // State: the cursor to continue after, or None once done.
    let state = (Some(None::<AuditCursor>), header);
    Ok(futures::stream::unfold(state, move |(next, header)| {
        let store = store.clone();
        let org = org.clone();
        let f = f.clone();
        async move {
            if let Some(h) = header {
                return Some((Ok(h), (next, None)));
            }
            let after = next?;
            match store
                .audit_page(&org, &f, after.as_ref(), EXPORT_BATCH)
                .await
            {
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed");
                    Some((
                        Err(std::io::Error::other("audit export failed")),
                        (None, None),
                    ))
                }
                Ok(events) if events.is_empty() => None,
                Ok(events) => {
                    let mut out = String::with_capacity(events.len() * 256);
                    for e in &events {
                        let entry = AuditEntry::from(e);
                        match format {
                            ExportFormat::Csv => out.push_str(&csv_line(&entry)),
                            ExportFormat::JsonLines => {
                                out.push_str(&serde_json::to_string(&entry).unwrap_or_default());
                                out.push('\n');
                            }
                        }
                    }
                    let cont = (events.len() == EXPORT_BATCH).then(|| {
                        events.last().map(|e| AuditCursor {
                            at: e.at,
                            id: e.id.clone(),
                        })
                    });
                    Some((Ok(Bytes::from(out)), (cont, None)))
                }
            }
        }
    }))
}

/// One CSV record (RFC 4180 quoting; a cell a spreadsheet would run as a formula is prefixed
/// with `'`).
fn csv_line(e: &AuditEntry) -> String {
    let cells = [
        e.id.as_str(),
        e.at.as_str(),
        e.actor.as_str(),
        e.source.as_str(),
        e.action.as_str(),
        e.resource_type.as_str(),
        e.resource_id.as_deref().unwrap_or(""),
        &e.detail.to_string(),
    ]
    .map(csv_cell);
    let mut line = cells.join(",");
    line.push('\n');
    line
}

fn csv_cell(cell: &str) -> String {
    let neutral = if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    };
    if neutral.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

/// Deletes events older than each organisation's retention, every hour, for as long as the
/// control plane runs.
pub async fn run_retention(store: Store) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        if let Err(e) = prune_once(&store).await {
            tracing::warn!(error = %e, "audit retention: pruning failed; trying again in an hour");
        }
    }
}

/// One pass of [`run_retention`].
pub async fn prune_once(store: &Store) -> Result<u64, crate::store::StoreError> {
    let mut total = 0;
    for org in store.list_orgs().await? {
        let days = store.org_settings(&org.id).await?.audit_retention_days;
        let before = crate::domain::now_micros() - days.max(1) * 86_400 * 1_000_000;
        total += store.prune_audit(&org.id, before).await?;
    }
    if total > 0 {
        tracing::info!(
            events = total,
            "audit retention: deleted events past retention"
        );
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The retention pass deletes each organisation's events older than its setting, and
    /// nothing newer.
    #[tokio::test]
    async fn retention_deletes_only_what_is_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let store = Store::connect(&url).await.unwrap();
        // Old events are written directly: the store stamps its own with the current time.
        let raw = sqlx::AnyPool::connect(&url).await.unwrap();
        let (org, _) = store.ensure_default_org().await.unwrap();
        let mut settings = store.org_settings(&org.id).await.unwrap();
        settings.audit_retention_days = 30;
        let actor = crate::domain::Actor::Operator { login: "t".into() };
        store
            .set_org_settings(
                &org.id,
                &settings,
                &actor,
                crate::domain::AuditAction::OrgSettingsSet,
            )
            .await
            .unwrap();
        let day: i64 = 86_400 * 1_000_000;
        let now = crate::domain::now_micros();
        for (i, age_days) in [40, 31, 29, 1].iter().enumerate() {
            sqlx::query("INSERT INTO audit_events (id, org_id, at, actor, action, resource_type, resource_id, detail, source) VALUES ($1, $2, $3, 'x', 'signin', 'User', NULL, '{}', '')")
                .bind(format!("old-{i}"))
                .bind(&org.id)
                .bind(now - age_days * day)
                .execute(&raw)
                .await
                .unwrap();
        }
        assert_eq!(prune_once(&store).await.unwrap(), 2);
        let left: Vec<String> = store
            .audit_events(&org.id, None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .filter(|id| id.starts_with("old-"))
            .collect();
        assert_eq!(left, vec!["old-2", "old-3"]);
        store.close().await;
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=cmd()"), "'=cmd()");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
    }
}
