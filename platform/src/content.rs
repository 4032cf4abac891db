//! Content items (articles, notices) with drafts and publishing. Owners see
//! and edit their own, everyone with `content:read` sees published items,
//! administrators see and edit everything. Search is SQLite FTS5 or
//! PostgreSQL full-text search, with the same visibility rules.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::{IntoParams, ToSchema};

use crate::audit::AuditEvent;
use crate::db::Backend;
use crate::error::{PlatformError, Result};
use crate::rbac::Permission;
use crate::{Platform, Principal, now_ms};

/// A content item.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Content {
    /// Id.
    pub id: String,
    /// The author.
    pub owner_id: String,
    /// Title, 1 to 200 characters.
    pub title: String,
    /// Body, up to 100,000 characters.
    pub body: String,
    /// `draft` or `published`.
    pub status: String,
    /// Created, Unix ms.
    pub created_at: i64,
    /// Last changed, Unix ms.
    pub updated_at: i64,
    /// Last published, Unix ms.
    pub published_at: Option<i64>,
}

/// Fields of a new item.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct NewContent {
    /// Title.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// Body.
    #[schema(max_length = 100000)]
    pub body: String,
}

/// Changes to an item; absent fields stay.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct ContentUpdate {
    /// New title.
    pub title: Option<String>,
    /// New body.
    pub body: Option<String>,
}

/// List and search parameters.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContentQuery {
    /// Search words (search only); every word must occur.
    pub q: Option<String>,
    /// `draft` or `published`.
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u32>,
}

const COLUMNS: &str = "c.id, c.owner_id, c.title, c.body, c.status, c.created_at, c.updated_at, c.published_at";

fn from_row(r: &AnyRow) -> Result<Content> {
    Ok(Content {
        id: r.try_get("id")?,
        owner_id: r.try_get("owner_id")?,
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        published_at: r.try_get("published_at")?,
    })
}

fn check_title(t: &str) -> Result<String> {
    let t = t.trim();
    if (1..=200).contains(&t.chars().count()) {
        Ok(t.to_string())
    } else {
        Err(PlatformError::invalid("title", "must be 1 to 200 characters"))
    }
}

fn check_body(b: &str) -> Result<String> {
    if b.chars().count() <= 100_000 {
        Ok(b.to_string())
    } else {
        Err(PlatformError::invalid("body", "must be at most 100000 characters"))
    }
}

fn check_status(s: Option<&str>) -> Result<String> {
    match s {
        None => Ok(String::new()),
        Some(s @ ("draft" | "published")) => Ok(s.to_string()),
        Some(_) => Err(PlatformError::invalid("status", "must be draft or published")),
    }
}

/// The words of a search, each quoted for FTS5 so that operators and stray
/// quotes in user input cannot make the query invalid.
fn fts5_query(q: &str) -> String {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Platform {
    /// `content:write`: a new draft owned by the caller.
    pub async fn create_content(&self, p: &Principal, new: NewContent) -> Result<Content> {
        p.require(Permission::ContentWrite)?;
        let (title, body) = (check_title(&new.title)?, check_body(&new.body)?);
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO content (id, owner_id, title, body, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'draft', $5, $5)",
        )
        .bind(&id)
        .bind(&p.user_id)
        .bind(title)
        .bind(body)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        self.content_row(&id).await
    }

    async fn content_row(&self, id: &str) -> Result<Content> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM content c WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or(PlatformError::NotFound { what: "content" })?;
        from_row(&row)
    }

    /// `content:read`: the item, if the caller may see it.
    pub async fn get_content(&self, p: &Principal, id: &str) -> Result<Content> {
        p.require(Permission::ContentRead)?;
        self.visible_content(p, id).await
    }

    /// The item for a change by the caller: their own, or any for an admin.
    async fn content_for_change(&self, p: &Principal, id: &str, perm: Permission) -> Result<Content> {
        p.require(perm)?;
        let c = self.visible_content(p, id).await?;
        if c.owner_id == p.user_id || p.is_admin() {
            Ok(c)
        } else {
            Err(PlatformError::Forbidden {
                message: "only the owner or an administrator may change this item".into(),
            })
        }
    }

    /// The item if it is published, the caller's, or the caller is an admin;
    /// else `NotFound`, so that drafts' ids are not confirmed.
    async fn visible_content(&self, p: &Principal, id: &str) -> Result<Content> {
        let c = self.content_row(id).await?;
        if c.status == "published" || c.owner_id == p.user_id || p.is_admin() {
            Ok(c)
        } else {
            Err(PlatformError::NotFound { what: "content" })
        }
    }

    /// `content:write` on one's own item (any, for admins).
    pub async fn update_content(&self, p: &Principal, id: &str, upd: ContentUpdate) -> Result<Content> {
        self.content_for_change(p, id, Permission::ContentWrite).await?;
        let title = upd.title.as_deref().map(check_title).transpose()?;
        let body = upd.body.as_deref().map(check_body).transpose()?;
        sqlx::query(
            "UPDATE content SET title = COALESCE($1, title), body = COALESCE($2, body), updated_at = $3 WHERE id = $4",
        )
        .bind(title)
        .bind(body)
        .bind(now_ms())
        .bind(id)
        .execute(&self.db.pool)
        .await?;
        self.content_row(id).await
    }

    /// `content:delete` on one's own item (any, for admins).
    pub async fn delete_content(&self, p: &Principal, id: &str) -> Result<()> {
        self.content_for_change(p, id, Permission::ContentDelete).await?;
        sqlx::query("DELETE FROM content WHERE id = $1")
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        self.audit(AuditEvent::by(p, "content.delete", "success").target(id))
            .await;
        Ok(())
    }

    /// `content:publish`: publishes or withdraws an item.
    pub async fn set_published(&self, p: &Principal, id: &str, published: bool) -> Result<Content> {
        self.content_for_change(p, id, Permission::ContentPublish).await?;
        let now = now_ms();
        let sql = if published {
            "UPDATE content SET status = 'published', published_at = $1, updated_at = $1 WHERE id = $2"
        } else {
            "UPDATE content SET status = 'draft', updated_at = $1 WHERE id = $2"
        };
        sqlx::query(sql).bind(now).bind(id).execute(&self.db.pool).await?;
        let action = if published {
            "content.publish"
        } else {
            "content.unpublish"
        };
        self.audit(AuditEvent::by(p, action, "success").target(id)).await;
        self.content_row(id).await
    }

    /// `content:read`: the caller's own items and published ones (all, for
    /// admins), newest first.
    pub async fn list_content(&self, p: &Principal, q: &ContentQuery) -> Result<Vec<Content>> {
        p.require(Permission::ContentRead)?;
        let status = check_status(q.status.as_deref())?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM content c \
             WHERE ($1 = 1 OR c.owner_id = $2 OR c.status = 'published') AND ($3 = '' OR c.status = $3) \
             ORDER BY c.updated_at DESC, c.id LIMIT $4 OFFSET $5"
        ))
        .bind(i64::from(p.is_admin()))
        .bind(&p.user_id)
        .bind(status)
        .bind(i64::from(q.limit.unwrap_or(50).clamp(1, 200)))
        .bind(i64::from(q.offset.unwrap_or(0)))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// `content:read`: full-text search over title and body, best match
    /// first, with the visibility rules of [`Platform::list_content`].
    pub async fn search_content(&self, p: &Principal, q: &ContentQuery) -> Result<Vec<Content>> {
        p.require(Permission::ContentRead)?;
        let words = q.q.as_deref().unwrap_or_default();
        let status = check_status(q.status.as_deref())?;
        let limit = i64::from(q.limit.unwrap_or(50).clamp(1, 200));
        let offset = i64::from(q.offset.unwrap_or(0));
        let visible = "($2 = 1 OR c.owner_id = $3 OR c.status = 'published') AND ($4 = '' OR c.status = $4)";
        let (sql, query) = match self.db.backend {
            Backend::Sqlite => (
                format!(
                    "SELECT {COLUMNS} FROM content_fts f JOIN content c ON c.rowid = f.rowid \
                     WHERE content_fts MATCH $1 AND {visible} ORDER BY f.rank LIMIT $5 OFFSET $6"
                ),
                fts5_query(words),
            ),
            Backend::Postgres => (
                format!(
                    "SELECT {COLUMNS} FROM content c \
                     WHERE to_tsvector('english', c.title || ' ' || c.body) @@ plainto_tsquery('english', $1) \
                     AND {visible} \
                     ORDER BY ts_rank(to_tsvector('english', c.title || ' ' || c.body), plainto_tsquery('english', $1)) DESC, c.id \
                     LIMIT $5 OFFSET $6"
                ),
                words.to_string(),
            ),
        };
        if fts5_query(words).is_empty() {
            return Err(PlatformError::invalid("q", "give at least one word to search for"));
        }
        let rows = sqlx::query(&sql)
            .bind(query)
            .bind(i64::from(p.is_admin()))
            .bind(&p.user_id)
            .bind(status)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_are_quoted_for_fts5() {
        assert_eq!(
            fts5_query("border \"control\" OR NOT"),
            "\"border\" \"control\" \"OR\" \"NOT\""
        );
        assert_eq!(fts5_query(" *:() "), "");
    }
}
