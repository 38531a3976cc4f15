//! The one explicit list of connectors: config variant → implementation. Adding a connector
//! means one arm in each function here.

use sluice_config::{Config, SinkKind, SourceConfig};
use sluice_core::{Error, Result, Sink, Source};

/// Build the source configured under `name`.
pub fn build_source(name: &str, config: &SourceConfig) -> Box<dyn Source> {
    match config {
        SourceConfig::Sqlite(c) => Box::new(sluice_sqlite::SqliteSource::new(name, c)),
        SourceConfig::Postgres(c) => Box::new(sluice_postgres::PostgresSource::new(name, c)),
    }
}

/// Check each source's config beyond what the config loader knows, without connecting (a
/// postgres `url`'s options and values). The first problem, with the path of its field.
pub fn validate(config: &Config) -> Option<(String, Error)> {
    config.sources.iter().find_map(|(name, source)| {
        let result = match source {
            SourceConfig::Sqlite(_) => Ok(()),
            SourceConfig::Postgres(c) => {
                sluice_postgres::validate(c).map_err(|e| (format!("sources.{name}.url"), e))
            }
        };
        result.err()
    })
}

/// Build a sink.
pub fn build_sink(kind: &SinkKind) -> Box<dyn Sink> {
    match kind {
        SinkKind::Stdout(c) => Box::new(sluice_sinks::stdout::StdoutSink::new(c)),
        SinkKind::File(c) => Box::new(sluice_sinks::file::FileSink::new(c)),
        SinkKind::Null(_) => Box::new(sluice_sinks::null::NullSink::default()),
    }
}

/// What one lifecycle step did or found, per component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `sources.app`, `sinks.out`.
    pub component: String,
    /// Human-readable lines.
    pub lines: Vec<String>,
}

/// Create what the sources need (changelog tables, triggers, slots...). Idempotent.
pub async fn setup(config: &Config) -> Result<Vec<Report>> {
    let mut out = Vec::new();
    for (name, source) in &config.sources {
        let lines = match source {
            SourceConfig::Sqlite(c) => sluice_sqlite::setup(c).await,
            SourceConfig::Postgres(c) => sluice_postgres::setup(c).await,
        }
        .map_err(|e| e.context(format!("setting up source \"{name}\"")))?;
        out.push(Report {
            component: format!("sources.{name}"),
            lines,
        });
    }
    Ok(out)
}

/// Remove what [`setup`] created. Idempotent; user data is never touched.
pub async fn teardown(config: &Config) -> Result<Vec<Report>> {
    let mut out = Vec::new();
    for (name, source) in &config.sources {
        let lines = match source {
            SourceConfig::Sqlite(c) => sluice_sqlite::teardown(c).await,
            SourceConfig::Postgres(c) => sluice_postgres::teardown(c).await,
        }
        .map_err(|e| e.context(format!("tearing down source \"{name}\"")))?;
        out.push(Report {
            component: format!("sources.{name}"),
            lines,
        });
    }
    Ok(out)
}

/// Reach every live system the config names, changing nothing. Every component is checked;
/// failures are collected, not short-circuited.
pub async fn check(config: &Config) -> Vec<(String, Result<Vec<String>>)> {
    let mut out = Vec::new();
    for (name, source) in &config.sources {
        let result = match source {
            SourceConfig::Sqlite(c) => sluice_sqlite::check(c).await,
            SourceConfig::Postgres(c) => sluice_postgres::check(c).await,
        };
        out.push((format!("sources.{name}"), result));
    }
    for (name, sink) in &config.sinks {
        let result = match &sink.kind {
            SinkKind::Stdout(_) => Ok(vec!["writes JSON lines to standard output".to_owned()]),
            SinkKind::Null(_) => Ok(vec!["discards every change".to_owned()]),
            SinkKind::File(c) => check_file_sink(&c.path),
        };
        out.push((format!("sinks.{name}"), result));
    }
    out
}

fn check_file_sink(path: &std::path::Path) -> Result<Vec<String>> {
    if path.is_dir() {
        return Err(Error::permanent(format!(
            "file sink path \"{}\" is a directory (hint: name a file inside it)",
            path.display()
        )));
    }
    // The nearest existing ancestor must be a writable directory.
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        dir = d.parent();
    }
    let dir = dir
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let meta = std::fs::metadata(dir).map_err(|e| {
        Error::permanent(format!("cannot inspect \"{}\"", dir.display())).with_source(e)
    })?;
    if meta.permissions().readonly() {
        return Err(Error::permanent(format!(
            "directory \"{}\" is read-only (hint: choose a writable path for the file sink)",
            dir.display()
        )));
    }
    let state = if path.exists() {
        "appends to existing"
    } else {
        "will create"
    };
    Ok(vec![format!("{state} \"{}\"", path.display())])
}
