//! Secrets that never print.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret string (password, API key, token). `Debug` and `Display` print `[redacted]`;
/// read it with [`Secret::expose`] where it is actually used.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// `url` with any password replaced by `[redacted]`, for logs and errors
/// (`postgres://app:hunter2@db/app` → `postgres://app:[redacted]@db/app`).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    if user.len() == userinfo.len() {
        return url.to_owned();
    }
    format!("{}{user}:[redacted]{}", &url[..scheme_end + 3], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn urls_lose_passwords() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/app"),
            "postgres://app:[redacted]@db:5432/app"
        );
        assert_eq!(redact_url("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(redact_url("http://h/p?x=a@b"), "http://h/p?x=a@b");
        assert_eq!(redact_url("/tmp/app.db"), "/tmp/app.db");
    }
}
