//! An authenticated caller and the permission checks made against it.

use std::collections::BTreeSet;

use crate::error::{PlatformError, Result};
use crate::rbac::{Permission, Role};

/// How the caller proved who they are.
#[derive(Clone, Debug, PartialEq)]
pub enum AuthMethod {
    /// A JWT access token of this login session.
    Session(String),
    /// This API key (its id).
    ApiKey(String),
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    /// The user (for an API key: its owner).
    pub user_id: String,
    /// The user's email.
    pub email: String,
    /// The user's role.
    pub role: Role,
    /// What this caller may do: the role's permissions, narrowed to the
    /// key's scopes for an API key.
    pub permissions: BTreeSet<Permission>,
    /// How they authenticated.
    pub via: AuthMethod,
}

impl Principal {
    /// `Forbidden` unless the caller holds `p`.
    pub fn require(&self, p: Permission) -> Result<()> {
        if self.permissions.contains(&p) {
            Ok(())
        } else {
            Err(PlatformError::Forbidden {
                message: format!("this action needs the {p} permission"),
            })
        }
    }

    /// True when the caller holds `p`.
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    /// True for administrators (who see every user's content).
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// "user" or "api_key", for the audit log.
    pub fn kind(&self) -> &'static str {
        match self.via {
            AuthMethod::Session(_) => "user",
            AuthMethod::ApiKey(_) => "api_key",
        }
    }
}

impl Principal {
    /// The login session, for a caller holding an access token.
    pub fn session_id(&self) -> Option<&str> {
        match &self.via {
            AuthMethod::Session(s) => Some(s),
            AuthMethod::ApiKey(_) => None,
        }
    }
}
