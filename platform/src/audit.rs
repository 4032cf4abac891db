//! The audit log: security events and every biometric operation, as who,
//! what, when and outcome. Entries name operations and ids only; templates
//! and passwords never reach it.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use tracing::error;
use utoipa::{IntoParams, ToSchema};

use crate::error::Result;
use crate::rbac::Permission;
use crate::{Platform, Principal, now_ms};

/// One audit entry.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i64,
    /// When, Unix ms.
    pub at: i64,
    /// The acting user (or the API key's owner); none when anonymous.
    pub actor_id: Option<String>,
    /// `user`, `api_key` or `anonymous`.
    pub actor_kind: String,
    /// What, such as `auth.login` or `biometric.identify`.
    pub action: String,
    /// The object acted on, when there is one.
    pub target: Option<String>,
    /// `success`, `failure`, `denied`, or a status code.
    pub outcome: String,
    /// The client's address.
    pub ip: Option<String>,
    /// Free-form detail (never biometric data).
    pub detail: Option<String>,
    /// The request's trace id.
    pub trace_id: Option<String>,
}

/// An entry about to be written.
#[derive(Clone, Debug, Default)]
pub struct AuditEvent {
    at: i64,
    actor_id: Option<String>,
    actor_kind: &'static str,
    action: String,
    target: Option<String>,
    outcome: String,
    ip: Option<String>,
    detail: Option<String>,
    trace_id: Option<String>,
}

impl AuditEvent {
    /// An event by an authenticated caller.
    pub fn by(p: &Principal, action: &str, outcome: &str) -> Self {
        AuditEvent {
            actor_id: Some(p.user_id.clone()),
            actor_kind: p.kind(),
            action: action.into(),
            outcome: outcome.into(),
            ..Default::default()
        }
    }

    /// An event by a known user who is not (yet) authenticated.
    pub fn by_user(user_id: &str, action: &str, outcome: &str) -> Self {
        AuditEvent {
            actor_id: Some(user_id.into()),
            actor_kind: "user",
            action: action.into(),
            outcome: outcome.into(),
            ..Default::default()
        }
    }

    /// An event with no known actor.
    pub fn anonymous(action: &str, outcome: &str) -> Self {
        AuditEvent {
            actor_kind: "anonymous",
            action: action.into(),
            outcome: outcome.into(),
            ..Default::default()
        }
    }

    /// Sets the target.
    pub fn target(mut self, t: &str) -> Self {
        self.target = Some(t.into());
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, d: &str) -> Self {
        self.detail = Some(d.into());
        self
    }

    /// Sets the client address.
    pub fn ip(mut self, ip: Option<&str>) -> Self {
        self.ip = ip.map(String::from);
        self
    }

    /// Sets the trace id.
    pub fn trace(mut self, t: Option<&str>) -> Self {
        self.trace_id = t.map(String::from);
        self
    }
}

/// Filters of an audit query.
#[derive(Clone, Debug, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this actor.
    pub actor_id: Option<String>,
    /// Only this action, or actions starting with it when it ends in `.`
    /// (for example `biometric.`).
    pub action: Option<String>,
    /// From this time, Unix ms.
    pub since: Option<i64>,
    /// Before this time, Unix ms.
    pub until: Option<i64>,
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<u32>,
    /// Entries to skip.
    pub offset: Option<u32>,
}

/// Entries buffered for the background writer at most; a full buffer makes
/// callers wait (back-pressure) rather than drop entries.
pub(crate) const AUDIT_QUEUE: usize = 8192;

/// Writes queued entries in batches, one transaction each, so that auditing
/// every matching call costs one channel send on the request path.
pub(crate) fn spawn_writer(db: crate::db::Db) -> tokio::sync::mpsc::Sender<AuditEvent> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<AuditEvent>(AUDIT_QUEUE);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(256);
        while rx.recv_many(&mut batch, 256).await > 0 {
            if let Err(e) = write_batch(&db, &batch).await {
                error!(entries = batch.len(), error = %e, "cannot write audit entries");
            }
            batch.clear();
        }
    });
    tx
}

async fn write_batch(db: &crate::db::Db, batch: &[AuditEvent]) -> std::result::Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    for e in batch {
        insert(e, &mut *tx).await?;
    }
    tx.commit().await
}

async fn insert<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(
    e: &AuditEvent,
    ex: E,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, actor_kind, action, target, outcome, ip, detail, trace_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.at)
    .bind(e.actor_id.clone())
    .bind(e.actor_kind)
    .bind(e.action.clone())
    .bind(e.target.clone())
    .bind(e.outcome.clone())
    .bind(e.ip.clone())
    .bind(e.detail.clone())
    .bind(e.trace_id.clone())
    .execute(ex)
    .await
    .map(|_| ())
}

impl Platform {
    /// Queues an entry for the background writer (hot paths: every gRPC
    /// matching call). It reaches the log within milliseconds.
    pub async fn audit_deferred(&self, mut e: AuditEvent) {
        e.at = now_ms();
        e.trace_id = e.trace_id.or_else(crate::trace_id);
        if let Err(err) = self.audit_tx.send(e).await {
            error!(action = %err.0.action, "audit writer has stopped; entry lost");
        }
    }

    /// Writes an entry. A failure to write is logged, not returned: the
    /// operation being audited has already happened.
    pub async fn audit(&self, e: AuditEvent) {
        let mut e = e;
        e.at = now_ms();
        e.trace_id = e.trace_id.or_else(crate::trace_id);
        let res = insert(&e, &self.db.pool).await;
        if let Err(err) = res {
            error!(action = %e.action, error = %err, "cannot write audit entry");
        }
    }

    /// `admin:audit`: entries matching `q`, newest first.
    pub async fn query_audit(&self, p: &Principal, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        p.require(Permission::AdminAudit)?;
        let (action, prefix) = match q.action.as_deref() {
            Some(a) if a.ends_with('.') => (format!("{}%", a.replace(['%', '_'], "")), 1i64),
            Some(a) => (a.to_string(), 0),
            None => (String::new(), -1),
        };
        let rows = sqlx::query(
            "SELECT id, at, actor_id, actor_kind, action, target, outcome, ip, detail, trace_id FROM audit_log \
             WHERE ($1 = '' OR actor_id = $1) \
               AND ($2 < 0 OR ($2 = 0 AND action = $3) OR ($2 = 1 AND action LIKE $3)) \
               AND at >= $4 AND at < $5 \
             ORDER BY id DESC LIMIT $6 OFFSET $7",
        )
        .bind(q.actor_id.clone().unwrap_or_default())
        .bind(prefix)
        .bind(action)
        .bind(q.since.unwrap_or(0))
        .bind(q.until.unwrap_or(i64::MAX))
        .bind(i64::from(q.limit.unwrap_or(100).clamp(1, 500)))
        .bind(i64::from(q.offset.unwrap_or(0)))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor_id: r.try_get("actor_id")?,
                    actor_kind: r.try_get("actor_kind")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    outcome: r.try_get("outcome")?,
                    ip: r.try_get("ip")?,
                    detail: r.try_get("detail")?,
                    trace_id: r.try_get("trace_id")?,
                })
            })
            .collect()
    }
}
