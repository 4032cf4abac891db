//! `biomatch admin`: operator commands that work on the platform database
//! directly (no server needed), for the first administrator and the first
//! service key.

use std::path::PathBuf;

use biomatch_platform::Platform;
use biomatch_platform::api_keys::NewApiKey;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::config::Config;

/// `admin` subcommands.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Creates the administrator account (or promotes an existing one).
    Bootstrap(BootstrapArgs),
    /// Creates an API key for a user and prints it once.
    ApiKey(ApiKeyArgs),
}

/// Which database: the server's configuration.
#[derive(Args, Debug)]
pub struct StoreArgs {
    /// TOML configuration file (as for `serve`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (as for `serve`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// `admin bootstrap` arguments.
#[derive(Args, Debug)]
pub struct BootstrapArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The administrator's email.
    #[arg(long)]
    email: String,
    /// The password (10 to 128 characters).
    #[arg(long, env = "BIOMATCH_ADMIN_PASSWORD", hide_env_values = true)]
    password: String,
    /// Display name.
    #[arg(long, default_value = "Administrator")]
    name: String,
}

/// `admin api-key` arguments.
#[derive(Args, Debug)]
pub struct ApiKeyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The owner's email.
    #[arg(long)]
    email: String,
    /// A label for the key.
    #[arg(long)]
    name: String,
    /// Comma-separated permissions, e.g. `biometric:verify,biometric:identify`.
    #[arg(long, value_delimiter = ',')]
    scopes: Vec<String>,
    /// Lifetime in days (none: until revoked).
    #[arg(long)]
    expires_in_days: Option<u32>,
    /// Print only the key (for `export BIOMATCH_API_KEY=$(...)`).
    #[arg(long)]
    key_only: bool,
}

async fn open(s: &StoreArgs) -> Result<Platform, Box<dyn std::error::Error>> {
    let mut cfg = Config::load(s.config.as_deref())?;
    if let Some(d) = &s.data_dir {
        cfg.storage.data_dir = d.clone();
    }
    Ok(Platform::open(cfg.platform()).await?)
}

/// Runs an `admin` command, printing one JSON object.
pub async fn run(cmd: AdminCommand) -> Result<(), Box<dyn std::error::Error>> {
    let out = match cmd {
        AdminCommand::Bootstrap(a) => {
            let u = open(&a.store)
                .await?
                .bootstrap_admin(&a.email, &a.password, &a.name)
                .await?;
            json!({ "user": u })
        }
        AdminCommand::ApiKey(a) => {
            let key_only = a.key_only;
            let k = open(&a.store)
                .await?
                .create_api_key_as_operator(
                    &a.email,
                    NewApiKey {
                        name: a.name,
                        scopes: a.scopes,
                        expires_in_days: a.expires_in_days,
                    },
                )
                .await?;
            if key_only {
                println!("{}", k.key);
                return Ok(());
            }
            json!({ "key": k.key, "info": k.info })
        }
    };
    println!("{out}");
    Ok(())
}
