//! Roles and permissions. A role is a fixed set of permissions; an API key
//! carries scopes, and what it may do is its scopes intersected with its
//! owner's role at the time of the call (so demoting a user demotes their keys).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A user's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only access to published content.
    Guest,
    /// A regular user: own profile and content, AI calls, verify and identify.
    User,
    /// Everything.
    Admin,
}

macro_rules! permissions {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// One thing a caller may be allowed to do.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Permission {
            $(#[doc = $name] $variant,)*
        }

        impl Permission {
            /// Every permission.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            /// The wire name, such as `content:publish`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)*
                }
            }
        }

        impl FromStr for Permission {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok(Permission::$variant),)*
                    other => Err(format!("unknown permission {other:?}")),
                }
            }
        }
    };
}

permissions! {
    UserRead = "user:read",
    UserWrite = "user:write",
    UserDelete = "user:delete",
    ContentRead = "content:read",
    ContentWrite = "content:write",
    ContentDelete = "content:delete",
    ContentPublish = "content:publish",
    AiGenerate = "ai:generate",
    AiAnalyze = "ai:analyze",
    AdminUsers = "admin:users",
    AdminSystem = "admin:system",
    AdminAudit = "admin:audit",
    BiometricEnroll = "biometric:enroll",
    BiometricVerify = "biometric:verify",
    BiometricIdentify = "biometric:identify",
    BiometricDelete = "biometric:delete",
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Role {
    /// The permissions this role grants.
    pub fn permissions(self) -> BTreeSet<Permission> {
        use Permission::*;
        match self {
            Role::Guest => [ContentRead].into(),
            Role::User => [
                UserRead,
                UserWrite,
                ContentRead,
                ContentWrite,
                ContentDelete,
                AiGenerate,
                AiAnalyze,
                BiometricVerify,
                BiometricIdentify,
            ]
            .into(),
            Role::Admin => Permission::ALL.iter().copied().collect(),
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "guest" => Ok(Role::Guest),
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?} (guest, user or admin)")),
        }
    }
}

/// Parses scope names, refusing unknown ones.
pub fn parse_scopes(names: &[String]) -> Result<BTreeSet<Permission>, String> {
    names.iter().map(|n| n.parse()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest_and_names_round_trip() {
        let (g, u, a) = (
            Role::Guest.permissions(),
            Role::User.permissions(),
            Role::Admin.permissions(),
        );
        assert!(g.is_subset(&u) && u.is_subset(&a));
        assert!(!u.contains(&Permission::AdminAudit) && !u.contains(&Permission::BiometricEnroll));
        assert_eq!(a.len(), 16);
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), *p);
        }
        assert!("content:nuke".parse::<Permission>().is_err());
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
    }
}
