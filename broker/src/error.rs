//! The broker's one error type. Every layer (store, directory, CLI, web) speaks it, so the
//! edge can answer each class the same way: an exit code, an HTML page or problem+json.

use fedhub_identifiers::IdError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input broke a rule. `field` names what the user gave, `rule` says what was expected.
    #[error("{field}: {rule}")]
    Invalid { field: String, rule: String },
    /// Something the request names does not exist.
    #[error("{what} not found: {id}")]
    NotFound { what: &'static str, id: String },
    /// The change would duplicate or contradict what is stored.
    #[error("{field}: {rule}")]
    Conflict { field: String, rule: String },
    /// The caller has no right to do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The caller is not authenticated.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The database (or another dependency) cannot be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected state; details are logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            rule: rule.into(),
        }
    }
    pub fn conflict(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Error::Conflict {
            field: field.into(),
            rule: rule.into(),
        }
    }
    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            what,
            id: id.into(),
        }
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }

    /// Stable machine name of the class, used in problem+json `type` and in audit entries.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid",
            Error::NotFound { .. } => "not-found",
            Error::Conflict { .. } => "conflict",
            Error::Forbidden(_) => "forbidden",
            Error::Unauthorized(_) => "unauthorized",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// Process exit code for the CLI: 2 bad input, 3 configuration, 4 unavailable, 1 other.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid { .. } | Error::NotFound { .. } | Error::Conflict { .. } => 2,
            Error::Forbidden(_) | Error::Unauthorized(_) => 2,
            Error::Unavailable(_) => 4,
            Error::Internal(_) => 1,
        }
    }
}

impl From<IdError> for Error {
    fn from(e: IdError) -> Self {
        Error::Invalid {
            field: e.kind.field().to_string(),
            rule: e.to_string(),
        }
    }
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as D};
        match e {
            D::NotFound => Error::NotFound {
                what: "record",
                id: String::new(),
            },
            D::DatabaseError(K::UniqueViolation, info) => {
                Error::conflict(constraint_field(info.as_ref()), "already exists")
            }
            D::DatabaseError(K::ForeignKeyViolation, info) => Error::invalid(
                constraint_field(info.as_ref()),
                "refers to something that does not exist",
            ),
            D::DatabaseError(K::ClosedConnection | K::UnableToSendCommand, info) => {
                Error::Unavailable(info.message().to_string())
            }
            D::DatabaseError(K::SerializationFailure, info) => {
                Error::Unavailable(format!("concurrent update, retry: {}", info.message()))
            }
            D::DatabaseError(_, info) if is_busy(info.message()) => {
                Error::Unavailable(info.message().to_string())
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<diesel::r2d2::PoolError> for Error {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        Error::Unavailable(format!("database unreachable: {e}"))
    }
}

fn is_busy(msg: &str) -> bool {
    msg.contains("database is locked") || msg.contains("database is busy")
}

/// Best effort: the column a constraint is about, from either engine's error details.
fn constraint_field(info: &dyn diesel::result::DatabaseErrorInformation) -> String {
    if let Some(c) = info.column_name() {
        return c.to_string();
    }
    // SQLite: "UNIQUE constraint failed: accounts.national_id"
    if let Some((_, cols)) = info.message().split_once("failed: ") {
        return cols.to_string();
    }
    // PostgreSQL: constraint "accounts_national_id_key"
    if let Some(c) = info.constraint_name() {
        return c.to_string();
    }
    "record".to_string()
}
