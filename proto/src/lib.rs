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
