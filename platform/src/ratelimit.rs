//! Fixed-window rate limits per route and client, counted in the
//! [`Cache`](crate::cache::Cache) so that with Redis every instance shares
//! one budget. A fixed window is crude at its edges (up to twice the limit
//! across a boundary) but needs one atomic INCR per request.

use std::time::Duration;

use crate::cache::Cache;
use crate::error::{PlatformError, Result};

/// A limit: at most `max` requests per `window`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit {
    /// Requests allowed per window; 0 disables the limit.
    pub max: u64,
    /// Window length.
    pub window: Duration,
}

impl Limit {
    /// `max` requests per minute.
    pub fn per_minute(max: u64) -> Limit {
        Limit {
            max,
            window: Duration::from_secs(60),
        }
    }
}

/// Counts requests against limits.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    cache: Cache,
}

impl RateLimiter {
    /// A limiter counting in `cache`.
    pub fn new(cache: Cache) -> RateLimiter {
        RateLimiter { cache }
    }

    /// Counts one request of `client` on `route`; `RateLimited` (with the
    /// seconds until the window ends) once the limit is passed.
    pub async fn check(&self, route: &str, client: &str, limit: Limit) -> Result<()> {
        if limit.max == 0 {
            return Ok(());
        }
        let win_ms = limit.window.as_millis().max(1) as i64;
        let now = crate::now_ms();
        let slot = now / win_ms;
        let key = format!("rl:{route}:{client}:{slot}");
        let n = self.cache.incr(&key, limit.window * 2).await?;
        if n > limit.max {
            let left_ms = win_ms - now % win_ms;
            return Err(PlatformError::RateLimited {
                retry_after_secs: (left_ms as u64).div_ceil(1000).max(1),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limit_is_per_route_and_client() {
        let rl = RateLimiter::new(Cache::connect(None, "").await.unwrap());
        let lim = Limit {
            max: 3,
            window: Duration::from_secs(60),
        };
        for _ in 0..3 {
            rl.check("login", "1.2.3.4", lim).await.unwrap();
        }
        let e = rl.check("login", "1.2.3.4", lim).await.unwrap_err();
        assert!(matches!(e, PlatformError::RateLimited { retry_after_secs } if (1..=60).contains(&retry_after_secs)));
        rl.check("login", "5.6.7.8", lim).await.unwrap();
        rl.check("register", "1.2.3.4", lim).await.unwrap();
        rl.check("x", "y", Limit::per_minute(0)).await.unwrap();
    }
}
