//! Starts the real `biomatch` binary on a loopback port for black-box tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use biomatch_proto::v1 as pb;
use pb::matcher_client::MatcherClient;
use tonic::transport::Channel;

/// A running server process.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
    /// The REST base URL, `http://127.0.0.1:<port>`.
    pub http: String,
    pub data_dir: PathBuf,
}

impl Server {
    /// Starts `biomatch serve` on `data_dir` with extra `BIOMATCH_*` settings.
    /// gRPC matching is anonymous unless `env` says otherwise (the matching
    /// tests are not about authentication; `tests/platform.rs` is).
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let port_file = data_dir.with_extension("port");
        let http_port_file = data_dir.with_extension("http-port");
        let _ = std::fs::remove_file(&port_file);
        let _ = std::fs::remove_file(&http_port_file);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_biomatch"));
        cmd.args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .arg("--port-file")
        .arg(&port_file)
        .arg("--http-port-file")
        .arg(&http_port_file)
        .env("BIOMATCH_GRPC_ANONYMOUS", "true")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("BIOMATCH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn biomatch");
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Ok(a) = std::fs::read_to_string(&port_file)
                && !a.is_empty()
            {
                break a;
            }
            assert!(Instant::now() < deadline, "server did not start within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        let http = std::fs::read_to_string(&http_port_file).expect("the REST port file precedes the gRPC one");
        Server {
            child: Some(child),
            addr: format!("http://{addr}"),
            http: format!("http://{http}"),
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// A connected client.
    pub async fn client(&self) -> MatcherClient<Channel> {
        MatcherClient::connect(self.addr.clone())
            .await
            .expect("connect")
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// Graceful stop (SIGTERM), waiting for exit.
    pub fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain syscall on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// `kill -9`, waiting for exit.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the `biomatch` CLI against `server` with `--modality modality`
/// appended, asserts that it succeeded and returns its standard output.
pub fn cli(server: &Server, modality: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_biomatch"))
        .args(args)
        .args(["--server", &server.addr, "--modality", modality])
        .output()
        .expect("run the biomatch CLI");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `../shared/datasets` (or `$BIOMATCH_SHARED/datasets`); fails loudly
/// when absent, so a test needing real data never skips.
pub fn shared() -> PathBuf {
    let p = std::env::var_os("BIOMATCH_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    assert!(
        p.join("datasets").is_dir(),
        "shared datasets not found at {} (set BIOMATCH_SHARED)",
        p.display()
    );
    p.join("datasets")
}

/// An embedding template from f32 values.
pub fn emb(modality: pb::Modality, v: &[f32]) -> pb::Template {
    pb::Template::embedding(modality, v)
}

/// A face template.
pub fn face(v: &[f32]) -> pb::Template {
    emb(pb::Modality::Face, v)
}

/// An enroll request.
pub fn enroll_req(subject: &str, record: &str, t: pb::Template) -> pb::EnrollRequest {
    pb::EnrollRequest {
        subject_id: subject.into(),
        record_id: record.into(),
        template: Some(t),
        metadata: Default::default(),
    }
}

/// Decodes a stored template's vector.
pub fn vector_of(r: &pb::Record) -> Vec<f32> {
    match r.template.as_ref().and_then(|t| t.kind.clone()) {
        Some(pb::template::Kind::Embedding(pb::Embedding {
            values: Some(pb::embedding::Values::F32Le(b)),
        })) => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        other => panic!("unexpected template {other:?}"),
    }
}

/// Normalises like the server does.
pub fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    v.iter().map(|x| (*x as f64 / n) as f32).collect()
}

/// Streams `reqs` through EnrollStream, asserts that no record was refused
/// and returns how many were acknowledged.
pub async fn enroll_all(c: &mut MatcherClient<Channel>, reqs: Vec<pb::EnrollRequest>) -> usize {
    let mut acks = c.enroll_stream(tokio_stream::iter(reqs)).await.unwrap().into_inner();
    let mut acked = 0;
    while let Some(a) = acks.message().await.unwrap() {
        assert!(a.errors.is_empty(), "{:?}", a.errors);
        acked += a.record_ids.len();
    }
    acked
}

/// Total live records per the server.
pub async fn total(c: &mut MatcherClient<Channel>) -> u64 {
    c.gallery_stats(pb::GalleryStatsRequest {})
        .await
        .unwrap()
        .into_inner()
        .total_records
}

/// A FINGERPRINT template from an ISO/IEC 19794-2 record.
pub fn finger(iso: &[u8]) -> pb::Template {
    pb::Template {
        modality: pb::Modality::Fingerprint as i32,
        kind: Some(pb::template::Kind::Fingerprint(pb::FingerprintTemplate {
            iso_19794_2: iso.to_vec(),
        })),
        quality: 0.0,
    }
}

/// An IRIS template in packed form, with `iris_code_version` `version`.
pub fn packed_iris_version(t: &biomatch_datasets::PackedIris, version: &str) -> pb::Template {
    pb::Template {
        modality: pb::Modality::Iris as i32,
        kind: Some(pb::template::Kind::Iris(pb::IrisTemplate {
            form: Some(pb::iris_template::Form::Packed(pb::PackedIrisCode {
                code: t.code.clone(),
                mask: t.mask.clone(),
                version: version.into(),
            })),
        })),
        quality: 0.0,
    }
}

/// An IRIS template in packed form, version v2.1 (the server default).
pub fn packed_iris(t: &biomatch_datasets::PackedIris) -> pb::Template {
    packed_iris_version(t, "v2.1")
}
