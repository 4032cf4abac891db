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
