//! Helpers for tests that run against real servers: a throwaway PostgreSQL
//! database and a Redis key prefix per test. Used by this crate's and the
//! service's black-box tests; nothing in the server calls them.

use sqlx::Connection;

/// `BIOMATCH_TEST_POSTGRES`, default the local server (no database part).
pub fn pg_base() -> String {
    std::env::var("BIOMATCH_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// `BIOMATCH_TEST_REDIS`, default the local server.
pub fn redis_url() -> String {
    std::env::var("BIOMATCH_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh, uniquely named PostgreSQL database; drop it with
/// [`TestDatabase::drop_db`]. Panics (failing the test, never skipping it)
/// when the server cannot be reached.
pub struct TestDatabase {
    /// The database's name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// A unique Redis key prefix to go with it.
    pub redis_prefix: String,
}

impl TestDatabase {
    /// Creates the database.
    pub async fn create() -> TestDatabase {
        sqlx::any::install_default_drivers();
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("biomatch_t_{tag}");
        let mut c = sqlx::AnyConnection::connect(&format!("{}/postgres", pg_base()))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {} is needed (.ci/run starts it): {e}", pg_base()));
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .expect("create the test database");
        TestDatabase {
            url: format!("{}/{name}", pg_base()),
            redis_prefix: format!("t{tag}:"),
            name,
        }
    }

    /// Drops the database, closing its remaining connections.
    pub async fn drop_db(&self) {
        let mut c = sqlx::AnyConnection::connect(&format!("{}/postgres", pg_base()))
            .await
            .expect("reach PostgreSQL");
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .execute(&mut c)
            .await
            .expect("drop the test database");
    }
}
