//! Generated types and service stubs for the `biomatch.v1` gRPC contract.
//!
//! The `.proto` files beside this crate are the public contract; this crate only
//! compiles them so that the server, the CLI and the tests share one definition.

#![allow(missing_docs)]

/// `biomatch.v1`: templates, records and the `Matcher` service.
pub mod v1 {
    tonic::include_proto!("biomatch.v1");
}

/// Encoded `FileDescriptorSet` of the contract, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("biomatch_descriptor");

impl v1::Template {
    /// An embedding template of `modality` carrying `values` as
    /// little-endian f32, the form every client should send.
    pub fn embedding(modality: v1::Modality, values: &[f32]) -> v1::Template {
        v1::Template {
            modality: modality as i32,
            kind: Some(v1::template::Kind::Embedding(v1::Embedding {
                values: Some(v1::embedding::Values::F32Le(
                    values.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )),
            })),
            quality: 0.0,
        }
    }
}

/// Client-side credentials: adds `x-api-key` (or `authorization: Bearer`)
/// to every call, for servers that require authentication.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    header: Option<(&'static str, tonic::metadata::MetadataValue<tonic::metadata::Ascii>)>,
}

impl Credentials {
    /// No credentials (anonymous servers).
    pub fn none() -> Credentials {
        Credentials::default()
    }

    /// An API key (`bmk_…`), sent as `x-api-key`; a JWT access token is sent
    /// as `authorization: Bearer`. `None` for an unusable value.
    pub fn from_secret(secret: &str) -> Option<Credentials> {
        let (name, value) = if secret.starts_with("bmk_") {
            ("x-api-key", secret.to_string())
        } else {
            ("authorization", format!("Bearer {secret}"))
        };
        Some(Credentials {
            header: Some((name, value.parse().ok()?)),
        })
    }
}

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some((name, value)) = &self.header {
            req.metadata_mut().insert(*name, value.clone());
        }
        Ok(req)
    }
}

/// A channel that sends [`Credentials`] with every call.
pub type AuthedChannel = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Credentials>;
