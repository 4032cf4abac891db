//! `biomatch`: the server and its command-line client.

use biomatch_api::cli::{Cli, Command};
use biomatch_api::config::Config;
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_));
    let filter = EnvFilter::try_from_env("BIOMATCH_LOG")
        .unwrap_or_else(|_| EnvFilter::new(if serving { "info" } else { "warn" }));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("biomatch: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result: Result<(), Box<dyn std::error::Error>> = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let mut cfg = Config::load(args.config.as_deref())?;
                if let Some(d) = args.data_dir {
                    cfg.storage.data_dir = d;
                }
                if let Some(a) = args.grpc_addr {
                    cfg.server.grpc_addr = a;
                }
                if let Some(p) = args.port_file {
                    cfg.server.port_file = Some(p);
                }
                if let Some(a) = args.http_addr {
                    cfg.http.addr = a;
                }
                if let Some(p) = args.http_port_file {
                    cfg.http.port_file = Some(p);
                }
                biomatch_api::server::serve(cfg).await?;
                Ok(())
            }
            other => biomatch_api::cli::run_client(other).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("biomatch: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
