//! The platform against real stores: SQLite in a temporary directory and
//! PostgreSQL (`BIOMATCH_TEST_POSTGRES`, default the local server) with
//! Redis (`BIOMATCH_TEST_REDIS`). Checks the properties that depend on the
//! database rather than on HTTP: concurrent refreshes of one token have
//! exactly one winner, migrations are idempotent, and the Redis limiter is
//! shared between two platform instances.

use std::time::Duration;

use biomatch_platform::ratelimit::Limit;
use biomatch_platform::testing::{TestDatabase, redis_url};
use biomatch_platform::{Platform, PlatformConfig, PlatformError};

/// A config on SQLite in `dir`, or on a fresh PostgreSQL database with
/// Redis and a fresh key prefix.
async fn config(postgres: bool, dir: &std::path::Path) -> (PlatformConfig, Option<TestDatabase>) {
    let mut cfg = PlatformConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    if !postgres {
        return (cfg, None);
    }
    let db = TestDatabase::create().await;
    cfg.database_url = Some(db.url.clone());
    cfg.redis_url = Some(redis_url());
    cfg.redis_prefix = db.redis_prefix.clone();
    (cfg, Some(db))
}

async fn concurrent_refresh_has_one_winner(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, db) = config(postgres, dir.path()).await;
    let p = Platform::open(cfg.clone()).await.unwrap();
    // Reopening runs the migrator again: nothing to apply, nothing breaks.
    drop(Platform::open(cfg).await.unwrap());
    p.bootstrap_admin("a@example.org", "correct horse battery", "A")
        .await
        .unwrap();
    let pair = p
        .login("a@example.org", "correct horse battery", None, None)
        .await
        .unwrap();
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let (p, t) = (p.clone(), pair.refresh_token.clone());
            tokio::spawn(async move { p.refresh(&t, None).await })
        })
        .collect();
    let mut won = 0;
    for t in tries {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert!(matches!(e.code(), "AUTH_TOKEN_REUSED" | "AUTH_TOKEN_REVOKED"), "{e}"),
        }
    }
    assert_eq!(won, 1, "exactly one concurrent refresh wins");
    // The losers count as reuse, so the session is gone.
    let e = p.authenticate_token(&pair.access_token).await.unwrap_err();
    assert_eq!(e.code(), "AUTH_TOKEN_REVOKED");
    drop(p);
    if let Some(db) = db {
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refresh_sqlite() {
    concurrent_refresh_has_one_winner(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refresh_postgres() {
    concurrent_refresh_has_one_winner(true).await
}

/// Two server instances on one Redis share one budget.
#[tokio::test]
async fn redis_rate_limit_is_shared_between_instances() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut cfg, _) = config(false, d1.path()).await;
    cfg.redis_url = Some(redis_url());
    cfg.redis_prefix = format!("rl{}:", uuid::Uuid::new_v4().simple());
    let a = Platform::open(cfg.clone()).await.unwrap();
    let b = Platform::open(PlatformConfig {
        data_dir: d2.path().to_path_buf(),
        ..cfg
    })
    .await
    .unwrap();
    assert_eq!(a.cache.kind(), "redis");
    // A day-long window, so that the loop cannot straddle a window edge.
    let lim = Limit {
        max: 4,
        window: Duration::from_secs(86_400),
    };
    let mut refused = 0;
    for i in 0..8 {
        let p = if i % 2 == 0 { &a } else { &b };
        if let Err(PlatformError::RateLimited { .. }) = p.limiter.check("login", "10.0.0.1", lim).await {
            refused += 1;
        }
    }
    assert_eq!(refused, 4, "eight calls over two instances, four allowed in all");
}

async fn pruning_keeps_what_reuse_detection_needs(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (mut cfg, db) = config(postgres, dir.path()).await;
    cfg.refresh_ttl = Duration::from_millis(1500);
    cfg.access_ttl = Duration::from_secs(1);
    let p = Platform::open(cfg).await.unwrap();
    p.bootstrap_admin("a@example.org", "correct horse battery", "A")
        .await
        .unwrap();
    let old = p
        .login("a@example.org", "correct horse battery", None, None)
        .await
        .unwrap();
    let live = p
        .login("a@example.org", "correct horse battery", None, None)
        .await
        .unwrap();
    let rotated = p.refresh(&live.refresh_token, None).await.unwrap();
    assert_eq!(p.prune_sessions().await.unwrap(), (0, 0), "nothing has expired yet");
    let e = p.refresh(&live.refresh_token, None).await.unwrap_err();
    assert_eq!(
        e.code(),
        "AUTH_TOKEN_REUSED",
        "pruning kept the used token, so reuse is still caught"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (tokens, sessions) = p.prune_sessions().await.unwrap();
    assert_eq!((tokens, sessions), (3, 2), "both sessions' tokens had expired");
    let e = p.refresh(&old.refresh_token, None).await.unwrap_err();
    assert_eq!(e.code(), "AUTH_TOKEN_INVALID");
    let e = p.refresh(&rotated.refresh_token, None).await.unwrap_err();
    assert_eq!(e.code(), "AUTH_TOKEN_INVALID");
    drop(p);
    if let Some(db) = db {
        db.drop_db().await;
    }
}

#[tokio::test]
async fn pruning_sqlite() {
    pruning_keeps_what_reuse_detection_needs(false).await
}

#[tokio::test]
async fn pruning_postgres() {
    pruning_keeps_what_reuse_detection_needs(true).await
}
