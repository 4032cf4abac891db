//! The biomatch service: configuration, the transport-independent service
//! layer, the gRPC adapter, the server and the command-line client.

#![warn(missing_docs)]

pub mod admin_cli;
pub mod cli;
pub mod config;
pub mod error;
pub mod grpc;
pub mod job_cli;
pub mod jobs;
pub mod pool;
pub mod rest;
pub mod server;
pub mod service;
