//! The sized thread pool that runs CPU-heavy matching off the async workers.
//!
//! A scan of a million templates takes tens of milliseconds of full CPU; run
//! on a tokio worker it would stall every other request on that worker. The
//! pool is a dedicated rayon pool, so a scan's own parallelism stays inside
//! it. A request whose future is dropped (deadline passed, client gone)
//! raises the job's cancellation flag, which the scan checks between chunks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::oneshot;

use crate::error::ServiceError;

/// The matching pool.
#[derive(Clone)]
pub struct SearchPool {
    pool: Arc<rayon::ThreadPool>,
    /// Admits one gallery scan at a time, first come first served.
    scans: Arc<tokio::sync::Semaphore>,
}

/// Raises the flag when the waiting request is dropped before completion.
struct CancelOnDrop(Arc<AtomicBool>, bool);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.1 {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

impl SearchPool {
    /// A pool of `threads` workers (0 = one per CPU).
    pub fn new(threads: usize) -> SearchPool {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("biomatch-search-{i}"))
            .build()
            .expect("failed to start the search thread pool");
        SearchPool {
            pool: Arc::new(pool),
            scans: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// [`run`](Self::run) for a job that scans a gallery with the whole
    /// pool. Scans are admitted one at a time, in arrival order: a rayon
    /// worker that waits inside one scan's join would otherwise pick up the
    /// next queued scan and finish it first, so under load the earlier
    /// request waits for a stack of later ones (a latency tail of seconds
    /// measured with `biomatch bench load`). Small jobs (verify, template
    /// preparation) are not gated.
    pub async fn run_scan<T, F>(&self, job: F) -> Result<T, ServiceError>
    where
        F: FnOnce(&AtomicBool) -> T + Send + 'static,
        T: Send + 'static,
    {
        let _turn = self
            .scans
            .acquire()
            .await
            .map_err(|_| ServiceError::Internal("search pool closed".into()))?;
        self.run(job).await
    }

    /// Runs `job` on the pool and waits for it without blocking the async
    /// worker. `job` gets the cancellation flag to pass to scans.
    pub async fn run<T, F>(&self, job: F) -> Result<T, ServiceError>
    where
        F: FnOnce(&AtomicBool) -> T + Send + 'static,
        T: Send + 'static,
    {
        let cancel = Arc::new(AtomicBool::new(false));
        let mut guard = CancelOnDrop(cancel.clone(), true);
        let (tx, rx) = oneshot::channel();
        self.pool.spawn(move || {
            if !cancel.load(Ordering::Relaxed) {
                let _ = tx.send(job(&cancel));
            }
        });
        let out = rx
            .await
            .map_err(|_| ServiceError::Internal("search worker stopped".into()))?;
        guard.1 = false;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn dropping_the_request_raises_the_flag() {
        let pool = SearchPool::new(1);
        let seen = Arc::new(AtomicBool::new(false));
        let s = seen.clone();
        let fut = pool.run(move |cancel| {
            for _ in 0..500 {
                if cancel.load(Ordering::Relaxed) {
                    s.store(true, Ordering::Relaxed);
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        assert!(tokio::time::timeout(Duration::from_millis(30), fut).await.is_err());
        for _ in 0..200 {
            if seen.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("job never saw the cancellation");
    }

    #[tokio::test]
    async fn scans_run_one_at_a_time() {
        let pool = SearchPool::new(2);
        let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let jobs = (0..4).map(|_| {
            let (active, most) = (active.clone(), most.clone());
            pool.run_scan(move |_| {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                active.fetch_sub(1, Ordering::SeqCst);
            })
        });
        for r in futures::future::join_all(jobs).await {
            r.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        // Plain jobs are not gated: two overlap on two threads.
        let (a, b) = (active.clone(), most.clone());
        most.store(0, Ordering::SeqCst);
        let job = move |_: &AtomicBool| {
            let now = a.fetch_add(1, Ordering::SeqCst) + 1;
            b.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            a.fetch_sub(1, Ordering::SeqCst);
        };
        let (r1, r2) = tokio::join!(pool.run(job.clone()), pool.run(job));
        r1.unwrap();
        r2.unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn returns_the_result() {
        assert_eq!(SearchPool::new(2).run(|_| 41 + 1).await.unwrap(), 42);
    }
}
