//! Errors classed by what the engine should do about them.

use std::fmt;

/// What the engine does with an error: retry it, or stop the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// May succeed if tried again (connection lost, database locked, server restarting).
    /// The engine retries with exponential backoff and jitter.
    Transient,
    /// Will fail again the same way (bad config, missing table, disk full, invalid data).
    /// The engine stops the pipeline, leaving the last checkpoint intact.
    Permanent,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
        })
    }
}

/// An error from a source, sink or store. The message names what failed and where, is
/// lowercase, and may end with a hint; the optional cause is printed by the CLI as a chain.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    class: ErrorClass,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result alias used throughout sluice libraries.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    /// An error worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Transient,
            message: message.into(),
            source: None,
        }
    }

    /// An error that will not go away by retrying.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Permanent,
            message: message.into(),
            source: None,
        }
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The class that decides retry.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// True when the engine should retry.
    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }

    /// The message without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefix the message with more context, keeping class and cause.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_and_chain() {
        let io = std::io::Error::other("disk on fire");
        let e = Error::permanent("writing \"out.jsonl\" failed").with_source(io);
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(!e.is_transient());
        assert_eq!(e.to_string(), "writing \"out.jsonl\" failed");
        let cause = std::error::Error::source(&e).map(|c| c.to_string());
        assert_eq!(cause.as_deref(), Some("disk on fire"));
        let e = Error::transient("database is locked").context("sqlite source \"app\"");
        assert!(e.is_transient());
        assert_eq!(e.to_string(), "sqlite source \"app\": database is locked");
    }
}
