//! The audit trail of admin actions (API.md §7, `clientele audit`): who did
//! what to which account or token, and when. Never a secret.

use std::fmt;
use std::str::FromStr;

/// What an operator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    AccountCreated,
    TokenCreated,
    TokenRotated,
    TokenRevoked,
}

impl AuditAction {
    /// Every action, as stored and printed.
    pub const ALL: [AuditAction; 4] =
        [Self::AccountCreated, Self::TokenCreated, Self::TokenRotated, Self::TokenRevoked];

    /// The action as stored and printed, e.g. `token.revoked`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AccountCreated => "account.created",
            Self::TokenCreated => "token.created",
            Self::TokenRotated => "token.rotated",
            Self::TokenRevoked => "token.revoked",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for AuditAction {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|action| action.as_str() == raw).ok_or_else(|| format!("unknown action '{raw}'"))
    }
}

/// One admin action, written in the same transaction as the action itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unix seconds; also the time the action stamps on what it changes (`revoked_at`, ...).
    pub at: i64,
    /// The operating-system user who ran the command ([`os_user`]).
    pub actor: String,
    pub action: AuditAction,
    /// The account's name or the token's id (`tok_...`).
    pub target: String,
    /// What else an auditor needs (account, scope, expiry, grace), never a secret.
    pub detail: Option<String>,
}

impl AuditEntry {
    /// An entry for an action taken now by this process's operating-system user.
    pub fn now(action: AuditAction, target: impl Into<String>, detail: Option<String>) -> Self {
        Self { at: super::time::now_unix(), actor: os_user(), action, target: target.into(), detail }
    }
}

/// The operating-system user running this process, by the `whoami` crate:
/// the password database's name for the effective user id (so `$USER` cannot
/// pretend to be someone else); `unknown` when it has none.
pub fn os_user() -> String {
    whoami::fallible::username().unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip() {
        for action in AuditAction::ALL {
            assert_eq!(action.as_str().parse(), Ok(action));
        }
        assert!("token.eaten".parse::<AuditAction>().is_err());
    }

    #[test]
    fn entries_name_the_os_user() {
        let entry = AuditEntry::now(AuditAction::AccountCreated, "acme", None);
        assert!(!entry.actor.is_empty());
        assert!(entry.at > 1_700_000_000);
    }
}
