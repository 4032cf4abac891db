//! Starts the gRPC server on the embedded defaults or a given configuration.

use std::sync::Arc;
use std::time::Duration;

use biomatch_enrollment::JobManager;
use biomatch_index::{Catalog, GalleryOptions};
use biomatch_kernels::Isa;
use biomatch_proto::v1::enrollment_jobs_server::EnrollmentJobsServer;
use biomatch_proto::v1::matcher_server::MatcherServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{error, info};

use crate::config::Config;
use crate::grpc::{JobsGrpc, MatcherGrpc};
use crate::jobs::ServiceSink;
use crate::pool::SearchPool;
use crate::service::{CalibrationStore, MatchService};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory could not be opened.
    #[error("cannot open data directory: {0}")]
    Storage(#[from] biomatch_index::IndexError),
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server error: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The matching settings are invalid.
    #[error("invalid matching configuration: {0}")]
    Config(crate::error::ServiceError),
    /// The enrollment jobs could not be loaded.
    #[error("cannot load enrollment jobs: {0}")]
    Jobs(#[from] biomatch_enrollment::EnrollmentError),
    /// Reflection could not be set up.
    #[error("reflection setup failed: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The platform stores (database, cache) could not be opened.
    #[error("cannot open the platform database or cache: {0}")]
    Platform(#[from] biomatch_platform::PlatformError),
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(cfg: Config) -> Result<(), ServeError> {
    let opts = GalleryOptions {
        flush_records: cfg.storage.flush_records.max(1),
        ann: cfg.ann.options(),
    };
    let data_dir = cfg.storage.data_dir.clone();
    let catalog = tokio::task::spawn_blocking(move || Catalog::open(&data_dir, opts))
        .await
        .map_err(|e| ServeError::Io {
            context: "opening galleries".into(),
            source: std::io::Error::other(e),
        })??;
    let pool = SearchPool::new(cfg.server.search_threads);
    let calibrations =
        CalibrationStore::open(&cfg.storage.data_dir.join("calibration")).map_err(|source| ServeError::Io {
            context: "opening calibrations".into(),
            source,
        })?;
    let svc = Arc::new(
        MatchService::new(Arc::new(catalog), pool.clone(), cfg.matching.clone(), calibrations)
            .map_err(ServeError::Config)?,
    );

    // Jobs that were running when the server stopped resume here.
    let jobs = JobManager::open(
        &cfg.storage.data_dir.join("jobs"),
        Arc::new(ServiceSink::new(svc.clone())),
    )?;

    let platform = biomatch_platform::Platform::open(cfg.platform()).await?;
    if cfg.auth.grpc_anonymous {
        tracing::warn!("gRPC matching accepts calls without credentials (auth.grpc_anonymous)");
    }

    let listener = TcpListener::bind(cfg.server.grpc_addr)
        .await
        .map_err(|source| ServeError::Io {
            context: format!("cannot listen on {}", cfg.server.grpc_addr),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Io {
        context: "reading the bound address".into(),
        source,
    })?;

    let (health, health_svc) = tonic_health::server::health_reporter();
    health.set_serving::<MatcherServer<MatcherGrpc>>().await;
    health.set_serving::<EnrollmentJobsServer<JobsGrpc>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(biomatch_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // The transport's own cap sits well above the configured limit, so that
    // an oversized message reaches the adapter and is refused there with
    // INVALID_ARGUMENT and a message that names the limit.
    let hard_cap = cfg.server.max_message_bytes.saturating_mul(4).max(16 << 20);
    let matcher = MatcherServer::new(MatcherGrpc::new(svc.clone(), cfg.server.max_message_bytes))
        .max_decoding_message_size(hard_cap)
        .max_encoding_message_size(hard_cap);

    let interval = Duration::from_secs(cfg.storage.compaction_interval_secs.max(1));
    let keeper = svc.clone();
    let erase_interval = Duration::from_secs(cfg.ann.erase_interval_secs);
    let auto_optimize = cfg.ann.auto_optimize;
    let clock = crate::service::EraseClock::open(cfg.storage.data_dir.join("erase-clock.json"));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            keeper.maintain(&clock, erase_interval, auto_optimize).await;
        }
    });

    // Expired refresh tokens and dead sessions go hourly (and at start).
    let pruner = platform.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match pruner.prune_sessions().await {
                Ok((tokens, sessions)) => info!(tokens, sessions, "pruned expired refresh tokens and sessions"),
                Err(e) => error!(error = %e, "pruning sessions failed"),
            }
        }
    });

    let http_listener = TcpListener::bind(cfg.http.addr)
        .await
        .map_err(|source| ServeError::Io {
            context: format!("cannot listen on {} (REST)", cfg.http.addr),
            source,
        })?;
    let http_addr = http_listener.local_addr().map_err(|source| ServeError::Io {
        context: "reading the bound REST address".into(),
        source,
    })?;
    let state = crate::rest::AppState {
        platform: platform.clone(),
        matching: svc.clone(),
        http: Arc::new(cfg.http.clone()),
        grpc_anonymous: cfg.auth.grpc_anonymous,
    };
    // One signal stops both servers.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let rest = tokio::spawn(crate::rest::serve(http_listener, state, stopped(stop_rx.clone())));

    info!(
        grpc = %addr,
        http = %http_addr,
        database = ?platform.db.backend,
        cache = platform.cache.kind(),
        data_dir = %cfg.storage.data_dir.display(),
        isa = Isa::active().name(),
        search_threads = pool.threads(),
        "biomatch listening"
    );
    for g in svc.stats().iter().filter(|g| g.error.is_some()) {
        error!(gallery = %g.name, error = g.error.as_deref().unwrap_or(""), "gallery is not served");
    }
    // The REST port file first: scripts wait for the gRPC one.
    if let Some(path) = &cfg.http.port_file {
        std::fs::write(path, http_addr.to_string()).map_err(|source| ServeError::Io {
            context: format!("cannot write port file {}", path.display()),
            source,
        })?;
    }
    if let Some(path) = &cfg.server.port_file {
        std::fs::write(path, addr.to_string()).map_err(|source| ServeError::Io {
            context: format!("cannot write port file {}", path.display()),
            source,
        })?;
    }
    tonic::transport::Server::builder()
        .layer(crate::grpc::guard::GuardLayer::new(platform, cfg.auth.grpc_anonymous))
        .add_service(health_svc)
        .add_service(reflection)
        .add_service(matcher)
        .add_service(EnrollmentJobsServer::new(JobsGrpc::new(jobs)))
        .serve_with_incoming_shutdown(incoming(listener), stopped(stop_rx))
        .await?;
    if let Ok(Err(e)) = rest.await {
        error!(error = %e, "REST server failed");
    }
    info!("biomatch stopped");
    Ok(())
}

/// Accepted connections with Nagle's algorithm off. tonic sets TCP_NODELAY
/// only on listeners it binds itself; without it every small unary reply waits
/// for the peer's delayed ACK (about 40 ms on Linux loopback).
fn incoming(listener: TcpListener) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    info!("shutdown requested");
}
