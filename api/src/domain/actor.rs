//! Who did something, as the audit log records it: a caller (the `sub` of
//! its token) or one of the service's own actors. A caller's `sub` can never
//! take a system actor's name (the token verifier refuses those subjects).

/// Who acted.
#[derive(
    Debug, Clone, PartialEq, Eq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Actor {
    /// A caller, by the `sub` of its token.
    Caller(String),
    /// Microsoft's token endpoint (the back channel).
    Microsoft,
    /// Whatever came through the browser (the front channel of the callback).
    Browser,
    /// The service itself (the token keeper, the keep-alive).
    Inboxlink,
}

/// Names no caller may have: the system actors', and others kept for them.
pub const RESERVED_ACTORS: &[&str] = &["microsoft", "inboxlink", "browser", "keepalive", "system"];

/// Actors named `system:<what>` are the service's too.
pub const RESERVED_ACTOR_PREFIX: &str = "system:";

/// Whether `name` is one of the service's own actors (see [`RESERVED_ACTORS`]).
pub fn is_reserved_actor(name: &str) -> bool {
    RESERVED_ACTORS.iter().any(|r| r.eq_ignore_ascii_case(name))
        || name
            .get(..RESERVED_ACTOR_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_ACTOR_PREFIX))
}

impl Actor {
    pub fn as_str(&self) -> &str {
        match self {
            Actor::Caller(sub) => sub,
            Actor::Microsoft => "microsoft",
            Actor::Browser => "browser",
            Actor::Inboxlink => "inboxlink",
        }
    }

    /// Reads a stored actor back.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "microsoft" => Actor::Microsoft,
            "browser" => Actor::Browser,
            "inboxlink" => Actor::Inboxlink,
            sub => Actor::Caller(sub.to_owned()),
        })
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// Any text reads back: what is not a system actor's name is a caller's `sub`.
super::sql::text_column!(Actor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_actors() {
        for name in ["microsoft", "Browser", "SYSTEM", "system:x", "keepalive"] {
            assert!(is_reserved_actor(name), "{name}");
        }
        for name in ["jane", "systematic", "microsoftie"] {
            assert!(!is_reserved_actor(name), "{name}");
        }
        for a in [Actor::Microsoft, Actor::Browser, Actor::Inboxlink] {
            assert!(is_reserved_actor(a.as_str()));
            assert_eq!(Actor::parse(a.as_str()), Some(a));
        }
    }
}
