//! Service configuration: built-in defaults, then an optional TOML file,
//! then `BIOMATCH_*` environment variables, then command-line flags; each
//! layer overrides the one before.
//!
//! ```toml
//! [server]
//! grpc_addr = "127.0.0.1:50051"
//! max_message_bytes = 4194304
//! search_threads = 0            # 0 = one per CPU
//!
//! [storage]
//! data_dir = "./biomatch-data"
//! flush_records = 65536
//! compaction_interval_secs = 10
//!
//! [ann]                         # graph search of FACE and VOICE galleries
//! min_records = 50000           # smaller galleries are always scanned exactly
//! shards = 1                    # write shards of every gallery: a log, a tail and an indexed segment each
//! m = 16                        # graph links per node (32 on layer 0)
//! ef_construction = 100         # build beam width
//! auto_optimize = true          # rebuild graphs in the background as galleries grow
//! erase_interval_secs = 3600    # deleted templates leave indexed segments within this
//!
//! [matching]
//! max_dimension = 4096
//! face_threshold = 0.40
//! voice_threshold = 0.74
//! face_dimensions = []          # empty = any dimension
//! voice_dimensions = []
//! iris_threshold = 0.65         # on 1 - Hamming distance
//! iris_rotation_shift = 15      # open-iris HammingDistanceMatcher defaults
//! iris_normalise = true
//! iris_separate_half_matching = true
//! iris_code_version = "v2.1"
//! fingerprint_threshold = 0.03  # MCC similarity; see BENCHMARKS.md for FMR
//! fingerprint_screen_penetration = 0.05  # share a screened Identify scores in full
//! fingerprint_screen_min_records = 0     # screen galleries this large by default; 0 = on request
//! multi_threshold = 4.0         # fused score = -log10(combined FMR)
//! fusion_method = "stouffer"    # or "fisher"
//!
//! [http]                        # the REST layer
//! addr = "127.0.0.1:8080"
//! cors_origins = []             # e.g. ["https://console.example"]; ["*"] for any
//! rate_limit_per_minute = 1200  # per client address, every route
//! login_per_minute = 10
//! register_per_minute = 10
//! user_create_per_minute = 10
//! refresh_per_minute = 60
//!
//! [auth]
//! jwt_secret = "..."            # unset: generated into data_dir/jwt.secret
//! access_ttl_secs = 900
//! refresh_ttl_secs = 2592000
//! lockout_threshold = 5
//! lockout_secs = 900
//! grpc_anonymous = false        # true: matching RPCs need no credentials
//!
//! [database]
//! url = "postgres://..."        # or DATABASE_URL; unset: SQLite in data_dir
//! redis_url = "redis://..."     # or REDIS_URL; unset: in-process cache
//! redis_prefix = "biomatch:"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use biomatch_matcher::fusion::FusionMethod;
use serde::Deserialize;

/// Everything the server reads at start.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct Config {
    /// Network and request limits.
    pub server: ServerConfig,
    /// Where and how galleries are stored.
    pub storage: StorageConfig,
    /// Graph indexes for approximate search.
    pub ann: AnnConfig,
    /// Matching rules per modality.
    pub matching: MatchingConfig,
    /// The REST layer.
    pub http: HttpConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Platform database and cache.
    pub database: DatabaseConfig,
}

/// The REST layer's address and limits.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address; port 0 picks a free port.
    pub addr: SocketAddr,
    /// When set, the bound HTTP address is written here once listening.
    pub port_file: Option<PathBuf>,
    /// Origins allowed by CORS; empty sends no CORS headers, `*` allows any.
    pub cors_origins: Vec<String>,
    /// Requests per minute per client address, on every route (0 = off).
    pub rate_limit_per_minute: u64,
    /// Login attempts per minute per client address.
    pub login_per_minute: u64,
    /// Registrations per minute per client address.
    pub register_per_minute: u64,
    /// Users created by administrators per minute per administrator.
    pub user_create_per_minute: u64,
    /// Token refreshes per minute per client address.
    pub refresh_per_minute: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: "127.0.0.1:8080".parse().expect("valid literal"),
            port_file: None,
            cors_origins: Vec::new(),
            rate_limit_per_minute: 1200,
            login_per_minute: 10,
            register_per_minute: 10,
            user_create_per_minute: 10,
            refresh_per_minute: 60,
        }
    }
}

/// Authentication settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret (at least 32 bytes); unset generates one into the data
    /// directory. Set it when several instances share a database.
    pub jwt_secret: Option<String>,
    /// Access-token lifetime, seconds.
    pub access_ttl_secs: u64,
    /// Refresh-token lifetime, seconds.
    pub refresh_ttl_secs: u64,
    /// Consecutive failed logins that lock an account.
    pub lockout_threshold: u32,
    /// Seconds such a lockout lasts.
    pub lockout_secs: u64,
    /// Seconds a checked API key is trusted from the cache.
    pub api_key_cache_secs: u64,
    /// Serve matching RPCs without credentials (closed networks, tests).
    pub grpc_anonymous: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: None,
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            lockout_threshold: 5,
            lockout_secs: 900,
            api_key_cache_secs: 10,
            grpc_anonymous: false,
        }
    }
}

/// Where the platform's users, content and audit log live.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…`; unset uses SQLite in the data directory.
    pub url: Option<String>,
    /// `redis://…`; unset uses an in-process cache.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            redis_url: None,
            redis_prefix: "biomatch:".into(),
        }
    }
}

impl Config {
    /// The platform layer's settings.
    pub fn platform(&self) -> biomatch_platform::PlatformConfig {
        use std::time::Duration;
        biomatch_platform::PlatformConfig {
            data_dir: self.storage.data_dir.clone(),
            database_url: self.database.url.clone(),
            redis_url: self.database.redis_url.clone(),
            redis_prefix: self.database.redis_prefix.clone(),
            jwt_secret: self.auth.jwt_secret.clone(),
            access_ttl: Duration::from_secs(self.auth.access_ttl_secs.max(1)),
            refresh_ttl: Duration::from_secs(self.auth.refresh_ttl_secs.max(1)),
            lockout_threshold: self.auth.lockout_threshold.max(1),
            lockout: Duration::from_secs(self.auth.lockout_secs),
            api_key_cache: Duration::from_secs(self.auth.api_key_cache_secs),
        }
    }
}

/// Network and request limits.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC listen address; port 0 picks a free port.
    pub grpc_addr: SocketAddr,
    /// Largest request message accepted, in bytes; bigger ones are refused
    /// with INVALID_ARGUMENT.
    pub max_message_bytes: usize,
    /// Threads of the search pool; 0 means one per CPU.
    pub search_threads: usize,
    /// When set, the bound gRPC address is written to this file once the
    /// server accepts connections (for scripts and tests using port 0).
    pub port_file: Option<PathBuf>,
}

/// Where and how galleries are stored.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Unflushed records per gallery that trigger a segment write.
    pub flush_records: usize,
    /// How often galleries with deletes are compacted, in seconds.
    pub compaction_interval_secs: u64,
}

/// Graph indexes of FACE and VOICE galleries (see `biomatch_index::ann`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AnnConfig {
    /// Galleries with fewer live records get no graph and are scanned
    /// exactly: below this a scan is about as fast and always exact.
    pub min_records: usize,
    /// Write shards of every gallery: each has its own write-ahead log and
    /// unflushed tail, so enrolls to different shards fsync in parallel,
    /// and an optimisation gives each its own indexed segment with a graph,
    /// searched in parallel. A record's shard is a hash of its id. Changing
    /// it is safe: at the next start each gallery flushes the logs of the
    /// old layout into segments.
    pub shards: usize,
    /// Graph links per node on the upper layers (twice this on layer 0).
    pub m: usize,
    /// Beam width while building.
    pub ef_construction: usize,
    /// Optimise galleries in the background when enough records sit outside
    /// any graph.
    pub auto_optimize: bool,
    /// A delete is purged from segments that carry a graph (a graph rebuild)
    /// at most this long after it is made, unless the Delete call asked to
    /// purge at once. Segments without a graph are compacted every
    /// `storage.compaction_interval_secs`.
    pub erase_interval_secs: u64,
}

impl Default for AnnConfig {
    fn default() -> Self {
        AnnConfig {
            min_records: 50_000,
            shards: 1,
            m: 16,
            ef_construction: 100,
            auto_optimize: true,
            erase_interval_secs: 3_600,
        }
    }
}

impl AnnConfig {
    /// The index crate's options.
    pub fn options(&self) -> biomatch_index::ann::AnnOptions {
        biomatch_index::ann::AnnOptions {
            min_rows: self.min_records.max(1),
            shards: self.shards.clamp(1, 256),
            hnsw: biomatch_index::ann::HnswParams {
                m: self.m.clamp(4, 64),
                ef_construction: self.ef_construction.clamp(8, 2_000),
                ..Default::default()
            },
        }
    }
}

/// Matching rules per modality.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MatchingConfig {
    /// Largest embedding dimension accepted.
    pub max_dimension: usize,
    /// Default FACE decision threshold (cosine).
    pub face_threshold: f32,
    /// Default VOICE decision threshold (cosine).
    pub voice_threshold: f32,
    /// Allowed FACE dimensions; empty allows any up to `max_dimension`.
    pub face_dimensions: Vec<usize>,
    /// Allowed VOICE dimensions; empty allows any.
    pub voice_dimensions: Vec<usize>,
    /// Default IRIS decision threshold on the score, 1 - Hamming distance.
    pub iris_threshold: f32,
    /// Columns the iris probe is rotated by at most, each way.
    pub iris_rotation_shift: u32,
    /// open-iris distance normalisation.
    pub iris_normalise: bool,
    /// open-iris half matching (false = SimpleHammingDistanceMatcher).
    pub iris_separate_half_matching: bool,
    /// The open-iris `iris_code_version` every iris template must carry:
    /// codes of different versions are not comparable.
    pub iris_code_version: String,
    /// Default FINGERPRINT decision threshold on the MCC similarity (0 to 1).
    pub fingerprint_threshold: f32,
    /// Share of a FINGERPRINT gallery a screened Identify scores with the
    /// full matcher, when the request does not say (see
    /// `biomatch_matcher::fingerprint::screen`).
    pub fingerprint_screen_penetration: f32,
    /// FINGERPRINT galleries with at least this many records are screened
    /// unless a request asks for an exact search; 0 screens only on request.
    pub fingerprint_screen_min_records: u64,
    /// Default MULTI decision threshold on the fused score, -log10 of the
    /// combined false match rate (4 = FMR 1e-4).
    pub multi_threshold: f32,
    /// How MULTI combines the modalities' false match rates.
    pub fusion_method: FusionMethod,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            grpc_addr: "127.0.0.1:50051".parse().expect("valid literal"),
            max_message_bytes: 4 << 20,
            search_threads: 0,
            port_file: None,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./biomatch-data"),
            flush_records: 65_536,
            compaction_interval_secs: 10,
        }
    }
}

/// The default FINGERPRINT threshold. On the real FVC2002 templates
/// (`fingerprint_calibration`, BENCHMARKS.md) no impostor pair of 12,160
/// reaches it (the highest scores 0.027) and FNMR is 7.5%; 0.0247 gives
/// FMR 1e-4, 0.0217 FMR 1e-3.
pub const FINGERPRINT_THRESHOLD: f32 = 0.03;

impl Default for MatchingConfig {
    fn default() -> Self {
        // Thresholds measured on ../shared/datasets: FaceNet-128 on LFW has
        // FMR 0.79% and FNMR 0.39% at 0.40; Resemblyzer on LibriSpeech has
        // every impostor <= 0.733 and every genuine >= 0.751. Calibrate per
        // deployment (a later issue fits thresholds to a target FMR).
        MatchingConfig {
            max_dimension: 4096,
            face_threshold: 0.40,
            voice_threshold: 0.74,
            face_dimensions: Vec::new(),
            voice_dimensions: Vec::new(),
            iris_threshold: 0.65,
            iris_rotation_shift: 15,
            iris_normalise: true,
            iris_separate_half_matching: true,
            iris_code_version: "v2.1".to_string(),
            fingerprint_threshold: FINGERPRINT_THRESHOLD,
            fingerprint_screen_penetration: 0.05,
            fingerprint_screen_min_records: 0,
            multi_threshold: 4.0,
            fusion_method: FusionMethod::default(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {}: {detail}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// An environment variable has an unusable value.
    #[error("invalid value {value:?} in environment variable {var}: {detail}")]
    Env {
        /// Variable name.
        var: String,
        /// Its value.
        value: String,
        /// What is wrong.
        detail: String,
    },
}

impl Config {
    /// Defaults, overridden by `file` when given, then by the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut c = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.into(),
                    detail: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        c.apply_env(|k| std::env::var(k).ok())?;
        Ok(c)
    }

    /// Applies `BIOMATCH_*` variables read through `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &str, v: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                var: var.into(),
                value: v.into(),
                detail: e.to_string(),
            })
        }
        fn list(var: &str, v: &str) -> Result<Vec<usize>, ConfigError> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| parse(var, s))
                .collect()
        }
        macro_rules! set {
            ($var:literal, $field:expr, $conv:expr) => {
                if let Some(v) = get($var) {
                    $field = $conv($var, &v)?;
                }
            };
        }
        set!("BIOMATCH_GRPC_ADDR", self.server.grpc_addr, parse);
        set!("BIOMATCH_MAX_MESSAGE_BYTES", self.server.max_message_bytes, parse);
        set!("BIOMATCH_SEARCH_THREADS", self.server.search_threads, parse);
        set!("BIOMATCH_DATA_DIR", self.storage.data_dir, parse::<PathBuf>);
        set!("BIOMATCH_FLUSH_RECORDS", self.storage.flush_records, parse);
        set!(
            "BIOMATCH_COMPACTION_INTERVAL_SECS",
            self.storage.compaction_interval_secs,
            parse
        );
        set!("BIOMATCH_ANN_MIN_RECORDS", self.ann.min_records, parse);
        set!("BIOMATCH_ANN_SHARDS", self.ann.shards, parse);
        set!("BIOMATCH_ANN_M", self.ann.m, parse);
        set!("BIOMATCH_ANN_EF_CONSTRUCTION", self.ann.ef_construction, parse);
        set!("BIOMATCH_ANN_AUTO_OPTIMIZE", self.ann.auto_optimize, parse);
        set!("BIOMATCH_ANN_ERASE_INTERVAL_SECS", self.ann.erase_interval_secs, parse);
        set!("BIOMATCH_MAX_DIMENSION", self.matching.max_dimension, parse);
        set!("BIOMATCH_FACE_THRESHOLD", self.matching.face_threshold, parse);
        set!("BIOMATCH_VOICE_THRESHOLD", self.matching.voice_threshold, parse);
        set!("BIOMATCH_FACE_DIMENSIONS", self.matching.face_dimensions, list);
        set!("BIOMATCH_VOICE_DIMENSIONS", self.matching.voice_dimensions, list);
        set!("BIOMATCH_IRIS_THRESHOLD", self.matching.iris_threshold, parse);
        set!(
            "BIOMATCH_FINGERPRINT_THRESHOLD",
            self.matching.fingerprint_threshold,
            parse
        );
        set!(
            "BIOMATCH_FINGERPRINT_SCREEN_PENETRATION",
            self.matching.fingerprint_screen_penetration,
            parse
        );
        set!(
            "BIOMATCH_FINGERPRINT_SCREEN_MIN_RECORDS",
            self.matching.fingerprint_screen_min_records,
            parse
        );
        set!("BIOMATCH_MULTI_THRESHOLD", self.matching.multi_threshold, parse);
        set!("BIOMATCH_FUSION_METHOD", self.matching.fusion_method, parse);
        set!("BIOMATCH_IRIS_ROTATION_SHIFT", self.matching.iris_rotation_shift, parse);
        set!("BIOMATCH_IRIS_NORMALISE", self.matching.iris_normalise, parse);
        set!(
            "BIOMATCH_IRIS_SEPARATE_HALF_MATCHING",
            self.matching.iris_separate_half_matching,
            parse
        );
        set!(
            "BIOMATCH_IRIS_CODE_VERSION",
            self.matching.iris_code_version,
            parse::<String>
        );
        set!("BIOMATCH_HTTP_ADDR", self.http.addr, parse);
        set!("BIOMATCH_RATE_LIMIT_PER_MINUTE", self.http.rate_limit_per_minute, parse);
        set!("BIOMATCH_LOGIN_PER_MINUTE", self.http.login_per_minute, parse);
        set!("BIOMATCH_REGISTER_PER_MINUTE", self.http.register_per_minute, parse);
        set!(
            "BIOMATCH_USER_CREATE_PER_MINUTE",
            self.http.user_create_per_minute,
            parse
        );
        set!("BIOMATCH_REFRESH_PER_MINUTE", self.http.refresh_per_minute, parse);
        set!("BIOMATCH_ACCESS_TTL_SECS", self.auth.access_ttl_secs, parse);
        set!("BIOMATCH_REFRESH_TTL_SECS", self.auth.refresh_ttl_secs, parse);
        set!("BIOMATCH_LOCKOUT_THRESHOLD", self.auth.lockout_threshold, parse);
        set!("BIOMATCH_LOCKOUT_SECS", self.auth.lockout_secs, parse);
        set!("BIOMATCH_API_KEY_CACHE_SECS", self.auth.api_key_cache_secs, parse);
        set!("BIOMATCH_GRPC_ANONYMOUS", self.auth.grpc_anonymous, parse);
        set!("BIOMATCH_REDIS_PREFIX", self.database.redis_prefix, parse::<String>);
        for var in ["DATABASE_URL", "BIOMATCH_DATABASE_URL"] {
            if let Some(v) = get(var).filter(|v| !v.trim().is_empty()) {
                self.database.url = Some(v);
            }
        }
        for var in ["REDIS_URL", "BIOMATCH_REDIS_URL"] {
            if let Some(v) = get(var).filter(|v| !v.trim().is_empty()) {
                self.database.redis_url = Some(v);
            }
        }
        if let Some(v) = get("BIOMATCH_JWT_SECRET") {
            self.auth.jwt_secret = Some(v);
        }
        if let Some(v) = get("BIOMATCH_CORS_ORIGINS") {
            self.http.cors_origins = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = get("BIOMATCH_HTTP_PORT_FILE") {
            self.http.port_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("BIOMATCH_PORT_FILE") {
            self.server.port_file = Some(PathBuf::from(v));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[storage]\ndata_dir = \"/srv/bio\"\n[matching]\nface_threshold = 0.5\n",
        )
        .unwrap();
        let mut c: Config = toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(c.storage.data_dir, PathBuf::from("/srv/bio"));
        assert_eq!(c.storage.flush_records, 65_536, "unset keys keep defaults");
        let env = |k: &str| match k {
            "BIOMATCH_FACE_THRESHOLD" => Some("0.61".to_string()),
            "BIOMATCH_FACE_DIMENSIONS" => Some("128, 512".to_string()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.matching.face_threshold, 0.61);
        assert_eq!(c.matching.face_dimensions, vec![128, 512]);
        let bad = |k: &str| (k == "BIOMATCH_SEARCH_THREADS").then(|| "many".to_string());
        assert!(
            c.apply_env(bad)
                .unwrap_err()
                .to_string()
                .contains("BIOMATCH_SEARCH_THREADS")
        );
        std::fs::write(&p, "[storage]\nbogus = 1\n").unwrap();
        assert!(Config::load(Some(&p)).unwrap_err().to_string().contains("bogus"));
    }
}
