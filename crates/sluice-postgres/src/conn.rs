//! Ordinary (non-replication) connections through `tokio-postgres`, URL handling, and the
//! classification of server errors into transient and permanent.

use std::str::FromStr;
use std::time::Duration;

use sluice_config::model::PostgresSourceConfig;
use sluice_config::redact_url;
use sluice_core::{Error, ErrorClass, Result};
use tokio_postgres::Client;

use crate::tls::{MakeTls, TlsParams, is_permanent_tls_error, split_url};

/// How long to wait for a connection (TCP, TLS-less startup and authentication).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Session settings that make the text output of values match what
/// [`crate::types::text_to_value`] expects, on every connection (snapshot and stream alike),
/// so that a row reads the same whichever path delivers it.
pub(crate) const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("client_encoding", "UTF8"),
];

/// The parsed connection settings of a source's `url`, and its TLS parameters.
pub(crate) fn parse_url(
    config: &PostgresSourceConfig,
) -> Result<(tokio_postgres::Config, TlsParams)> {
    let url = config.url.expose();
    let (rest, tls) = split_url(url).map_err(|e| {
        Error::permanent(format!("invalid postgres url \"{}\": {e}", redact_url(url)))
    })?;
    let mut pg = tokio_postgres::Config::from_str(&rest).map_err(|e| {
        // tokio-postgres says "invalid connection string" and puts what is wrong (an
        // unknown option, a bad port) in its source.
        Error::permanent(format!(
            "invalid postgres url \"{}\": {} (hint: write postgres://user:password@host:port/database?option=value)",
            redact_url(url),
            crate::tls::describe(&e as &(dyn std::error::Error + 'static))
        ))
    })?;
    if pg.get_hosts().is_empty() {
        return Err(Error::permanent(format!(
            "invalid postgres url \"{}\": it names no host (hint: postgres://user:password@host:port/database, or ?host=/var/run/postgresql for a Unix socket)",
            redact_url(url)
        )));
    }
    if pg.get_ports().contains(&0) {
        return Err(Error::permanent(format!(
            "invalid postgres url \"{}\": port 0 (hint: PostgreSQL listens on 5432 by default)",
            redact_url(url)
        )));
    }
    // Over a Unix socket there is no TLS whatever sslmode says, as with libpq (and the
    // replication connection): the server refuses it there.
    #[cfg(unix)]
    let all_unix = pg
        .get_hosts()
        .iter()
        .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
    #[cfg(not(unix))]
    let all_unix = false;
    pg.ssl_mode(if all_unix {
        tokio_postgres::config::SslMode::Disable
    } else {
        tls.tokio_postgres_mode()
    });
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(CONNECT_TIMEOUT);
    }
    if pg.get_application_name().is_none() {
        pg.application_name("sluice");
    }
    Ok((pg, tls))
}

/// `url` without its password, for messages.
pub(crate) fn shown_url(config: &PostgresSourceConfig) -> String {
    redact_url(config.url.expose())
}

/// Open an ordinary connection with the pinned session settings. The connection's I/O runs
/// in a spawned task that ends when the [`Client`] is dropped.
pub(crate) async fn connect(config: &PostgresSourceConfig) -> Result<Client> {
    let (pg, tls) = parse_url(config)?;
    let connecting = pg.connect(MakeTls(tls.client_config()?));
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| {
            Error::transient(format!(
                "connecting to postgres at \"{}\" timed out after {}s",
                shown_url(config),
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| connect_error(e, &tls, &shown_url(config)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
    let settings: String = SESSION_SETTINGS
        .iter()
        .map(|(k, v)| format!("SET {k} = '{v}';"))
        .collect();
    client
        .batch_execute(&settings)
        .await
        .map_err(|e| pg_error(e, "setting session parameters"))?;
    Ok(client)
}

/// A failed connection attempt: TLS failures that will recur (a certificate that does not
/// verify, a server without TLS under a mode that needs it) are permanent.
fn connect_error(e: tokio_postgres::Error, tls: &TlsParams, shown: &str) -> Error {
    let what = format!("connecting to postgres at \"{shown}\"");
    let text = e.to_string();
    if text.contains("server does not support TLS") && tls.mode.required() {
        return Error::permanent(format!(
            "{what} failed: the server does not offer TLS, which the url's sslmode requires (hint: enable ssl on the server, or set sslmode=prefer or disable)"
        ));
    }
    let tls_failure = std::error::Error::source(&e).is_some_and(is_permanent_tls_error);
    if tls_failure {
        return Error::permanent(format!(
            "{what} failed: {}",
            crate::tls::describe(&e as &(dyn std::error::Error + 'static))
        ));
    }
    pg_error(e, &what)
}

/// The class of a server error by its SQLSTATE: connection trouble, shutdowns, resource
/// shortages, serialization failures, deadlocks and "object in use" (a slot still active
/// for a dying walsender) may pass; everything else will fail again.
pub(crate) fn sqlstate_class(code: &str) -> ErrorClass {
    let transient = code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || code.starts_with("58")
        || matches!(code, "40001" | "40P01" | "55006" | "55P03" | "57014");
    if transient {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

fn classed(class: ErrorClass, message: String) -> Error {
    match class {
        ErrorClass::Transient => Error::transient(message),
        ErrorClass::Permanent => Error::permanent(message),
    }
}

/// A `tokio-postgres` error as a sluice error: `what` failed, with the server's message and
/// SQLSTATE, classed by [`sqlstate_class`]. Errors without a SQLSTATE (I/O, closed
/// connection) are transient.
pub(crate) fn pg_error(e: tokio_postgres::Error, what: &str) -> Error {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let mut message = format!("{what} failed: {} (SQLSTATE {code})", db.message());
            if let Some(hint) = db.hint().or_else(|| our_hint(code)) {
                message.push_str(&format!(" (hint: {hint})"));
            }
            classed(sqlstate_class(code), message)
        }
        None => {
            let text = crate::tls::describe(&e as &(dyn std::error::Error + 'static));
            let hint = if text.contains("Connection refused") {
                " (hint: is PostgreSQL running and listening on that host and port? check the url and listen_addresses)"
            } else if text.contains("failed to lookup address")
                || text.contains("Name or service not known")
            {
                " (hint: the host name does not resolve; check the url)"
            } else {
                ""
            };
            Error::transient(format!("{what} failed: {text}{hint}")).with_source(e)
        }
    }
}

/// A hint for server errors that come without one and have a usual cause on sluice's side.
fn our_hint(code: &str) -> Option<&'static str> {
    match code {
        "53300" => Some(
            "the server's max_connections is reached; sluice opens snapshot_parallelism connections for a snapshot plus one for the stream and one for heartbeats: lower snapshot_parallelism or raise max_connections",
        ),
        _ => None,
    }
}

/// A server error reported on the replication connection.
pub(crate) fn server_error(what: &str, code: &str, message: &str, hint: Option<&str>) -> Error {
    let mut text = format!("{what} failed: {message} (SQLSTATE {code})");
    if let Some(hint) = hint.or_else(|| our_hint(code)) {
        text.push_str(&format!(" (hint: {hint})"));
    }
    classed(sqlstate_class(code), text)
}

/// `name` as a quoted SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a quoted SQL string literal.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classed() {
        for code in ["08006", "57P01", "53300", "40001", "55006"] {
            assert_eq!(sqlstate_class(code), ErrorClass::Transient, "{code}");
        }
        for code in ["42704", "42P01", "28P01", "42501", "XX000"] {
            assert_eq!(sqlstate_class(code), ErrorClass::Permanent, "{code}");
        }
    }

    #[test]
    fn a_bad_url_names_what_is_wrong() {
        let bad = |url: &str| {
            let config = PostgresSourceConfig::new("app", url);
            parse_url(&config).unwrap_err().to_string()
        };
        let e = bad("postgres://u:secret@h/db?foo=bar");
        assert!(e.contains("unknown option `foo`"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let e = bad("postgres://u@h:99999/db");
        assert!(e.contains("invalid value for option `port`"), "{e}");
        let e = bad("postgres://u@h/db?sslmode=sometimes");
        assert!(e.contains("sslmode \"sometimes\""), "{e}");
    }

    #[test]
    fn quoting() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
