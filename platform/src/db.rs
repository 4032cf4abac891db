//! The relational store: SQLite in the data directory by default, PostgreSQL
//! when a `postgres://` URL is configured. Both go through sqlx's `Any`
//! driver so that every query is written once; the few dialect differences
//! (full-text search, the schema's DDL) branch on [`Backend`].

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};
use tracing::info;

use crate::error::{PlatformError, Result};

/// Which database engine is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Schema migrations per backend, applied in order, each once.
const SQLITE_MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/sqlite/0001_init.sql"))];
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/postgres/0001_init.sql"))];

/// A connection pool and the engine it talks to.
#[derive(Clone, Debug)]
pub struct Db {
    /// The pool.
    pub pool: AnyPool,
    /// The engine.
    pub backend: Backend,
}

impl Db {
    /// Connects to `url` when given (`postgres://…` or `sqlite://…`), else to
    /// `platform.db` in `data_dir`, and brings the schema up to date.
    pub async fn connect(url: Option<&str>, data_dir: &Path) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let url = match url {
            Some(u) => u.to_string(),
            None => {
                std::fs::create_dir_all(data_dir)
                    .map_err(|e| PlatformError::Internal(format!("cannot create {}: {e}", data_dir.display())))?;
                format!("sqlite://{}?mode=rwc", data_dir.join("platform.db").display())
            }
        };
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else if url.starts_with("sqlite") {
            Backend::Sqlite
        } else {
            return Err(PlatformError::invalid(
                "database_url",
                "must start with postgres:// or sqlite://",
            ));
        };
        let opts = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets readers proceed during a write; the busy timeout makes
            // concurrent writers wait instead of failing with SQLITE_BUSY.
            sqlx::raw_sql("PRAGMA journal_mode=WAL").execute(&pool).await?;
        }
        let db = Db { pool, backend };
        db.migrate().await?;
        Ok(db)
    }

    /// Applies the migrations the database has not seen yet, each in its own
    /// transaction together with its bookkeeping row.
    async fn migrate(&self) -> Result<()> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<std::result::Result<_, _>>()?;
        let all = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        for (version, sql) in all.iter().filter(|(v, _)| !applied.contains(v)) {
            let mut tx = self.pool.begin().await?;
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(crate::now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            info!(version, backend = ?self.backend, "applied platform migration");
        }
        Ok(())
    }
}
