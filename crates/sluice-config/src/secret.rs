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

/// `url` with any password replaced by `[redacted]`, for logs and errors: the userinfo's
/// (`postgres://app:hunter2@db/app` → `postgres://app:[redacted]@db/app`), a `password` or
/// `sslpassword` query parameter, and the same keys in the `key=value` form libpq also takes.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return redact_pairs(url);
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = url[..scheme_end + 3].to_owned();
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":[redacted]");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    let Some(q) = tail.find('?') else {
        out.push_str(tail);
        return out;
    };
    out.push_str(&tail[..=q]);
    let query = &tail[q + 1..];
    let (query, fragment) = match query.find('#') {
        Some(h) => (&query[..h], &query[h..]),
        None => (query, ""),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_password_key(k) => format!("{k}=[redacted]"),
            _ => pair.to_owned(),
        })
        .collect();
    out.push_str(&pairs.join("&"));
    out.push_str(fragment);
    out
}

fn is_password_key(key: &str) -> bool {
    matches!(key, "password" | "sslpassword")
}

/// The `key=value` form: every `password=...` value (bare or single-quoted) redacted.
fn redact_pairs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq]
            .rfind(|c: char| c.is_whitespace())
            .map_or(0, |i| i + 1);
        let key = rest[key_start..eq].trim();
        out.push_str(&rest[..=eq]);
        rest = &rest[eq + 1..];
        // The value: quoted up to the closing quote (backslash escapes), else to whitespace.
        let value_end = if rest.starts_with('\'') {
            let mut end = rest.len();
            let mut escaped = false;
            for (i, c) in rest.char_indices().skip(1) {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = i + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            end
        } else {
            rest.find(char::is_whitespace).unwrap_or(rest.len())
        };
        if is_password_key(key) {
            out.push_str("[redacted]");
        } else {
            out.push_str(&rest[..value_end]);
        }
        rest = &rest[value_end..];
    }
    out.push_str(rest);
    out
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
        assert_eq!(
            redact_url("postgres://app@db/app?sslmode=require&password=hunter2#x"),
            "postgres://app@db/app?sslmode=require&password=[redacted]#x"
        );
        assert_eq!(
            redact_url("postgres://app:a@db/app?password=b&sslpassword=c"),
            "postgres://app:[redacted]@db/app?password=[redacted]&sslpassword=[redacted]"
        );
        assert_eq!(
            redact_url("host=db user=app password=hunter2 dbname=app"),
            "host=db user=app password=[redacted] dbname=app"
        );
        assert_eq!(
            redact_url("host=db password='hun ter\\'2' dbname=app"),
            "host=db password=[redacted] dbname=app"
        );
    }
}
