//! `sluice init --from URL`: introspect a database and write a commented, working config.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cli::InitArgs;

/// The database `--from` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A SQLite file (`app.db`, `sqlite:app.db`, `sqlite:///abs/app.db`).
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://user:pass@host:5432/db`).
    Postgres(String),
}

/// Parse `--from`.
pub fn target(url: &str) -> Result<Target> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres(url.to_owned()));
    }
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if let Some((scheme, _)) = url.split_once("://") {
        bail!(
            "cannot introspect {scheme}:// databases (hint: pass a SQLite file path or \
             sqlite:// URL, or a postgres:// URL)"
        );
    } else {
        url
    };
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() {
        bail!("no database path in {url:?} (hint: sqlite:///path/to/app.db or just app.db)");
    }
    Ok(Target::Sqlite(PathBuf::from(path)))
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn component_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "db".to_owned()
    } else {
        name
    }
}

/// A table found by introspection, whatever the database.
struct Found {
    name: String,
    primary_key: Vec<String>,
    rows: u64,
    /// Why it is left out, when it is.
    left_out: Option<&'static str>,
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Render a config with `source_lines` (the `[sources.NAME]` body after `type`) and `tables`.
fn render(
    title: &str,
    name: &str,
    type_name: &str,
    source_lines: &[String],
    tables: &[Found],
) -> Result<String> {
    let keyed: Vec<&Found> = tables.iter().filter(|t| t.left_out.is_none()).collect();
    if keyed.is_empty() {
        bail!(
            "no table in {title} can be captured (found {} table{}) (hint: sluice keys every \
             change by primary key; add one to the tables you want to capture)",
            tables.len(),
            plural(tables.len() as u64)
        );
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# sluice config for {title}, written by `sluice init`."
    );
    let _ = writeln!(out, "# Check it:  sluice check -c <this file>");
    let _ = writeln!(out, "# Run it:    sluice run -c <this file>");
    let _ = writeln!(
        out,
        "# Reference: docs/configuration.md (environment variables, transforms, sinks)."
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "# Checkpoints live here (relative to this file).");
    let _ = writeln!(out, "data_dir = \".sluice\"");
    let _ = writeln!(out);
    let _ = writeln!(out, "[sources.{name}]");
    let _ = writeln!(out, "type = \"{type_name}\"");
    for line in source_lines {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "# Tables to capture: every table with a primary key that was found."
    );
    let _ = writeln!(out, "tables = [");
    for t in &keyed {
        let _ = writeln!(
            out,
            "  {},  # {} row{}, key ({})",
            quote(&t.name),
            t.rows,
            plural(t.rows),
            t.primary_key.join(", ")
        );
    }
    let _ = writeln!(out, "]");
    let left_out: Vec<&Found> = tables.iter().filter(|t| t.left_out.is_some()).collect();
    if !left_out.is_empty() {
        let _ = writeln!(out, "# Left out:");
        for t in left_out {
            let why = t.left_out.unwrap_or_default();
            let _ = writeln!(
                out,
                "#   {} ({} row{}): {why}",
                quote(&t.name),
                t.rows,
                plural(t.rows)
            );
        }
    }
    let _ = writeln!(
        out,
        "# \"initial\" reads existing rows first; \"never\" streams only new changes."
    );
    let _ = writeln!(out, "snapshot = \"initial\"");
    let _ = writeln!(out);
    let _ = writeln!(out, "[sinks.out]");
    let _ = writeln!(out, "type = \"stdout\"");
    let _ = writeln!(out, "inputs = [\"{name}\"]");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "# Durable JSON lines in a file instead (fsynced before each checkpoint):"
    );
    let _ = writeln!(out, "# [sinks.out]");
    let _ = writeln!(out, "# type = \"file\"");
    let _ = writeln!(out, "# inputs = [\"{name}\"]");
    let _ = writeln!(out, "# path = \"changes.jsonl\"");
    Ok(out)
}

/// The config for the SQLite database at `db` (absolute).
pub fn render_sqlite(db: &Path) -> Result<String> {
    let tables: Vec<Found> = sluice_sqlite::introspect(db)?
        .into_iter()
        .map(|t| Found {
            left_out: t
                .primary_key
                .is_empty()
                .then_some("no primary key, so changes could not be keyed"),
            name: t.name,
            primary_key: t.primary_key,
            rows: t.rows,
        })
        .collect();
    let name = component_name(db.file_stem().and_then(|s| s.to_str()).unwrap_or("db"));
    let path = format!("path = {}", quote(&db.display().to_string()));
    render(
        &format!("\"{}\"", db.display()),
        &name,
        "sqlite",
        &[path],
        &tables,
    )
}

/// The config for the PostgreSQL database at `url`.
pub async fn render_postgres(url: &str) -> Result<String> {
    let shown = sluice_config::redact_url(url);
    let tables: Vec<Found> = sluice_postgres::introspect(url)
        .await
        .with_context(|| format!("introspecting {shown}"))?
        .into_iter()
        .map(|t| Found {
            left_out: t.primary_key.is_empty().then_some(
                "no primary key; to capture it, give it one, or set REPLICA IDENTITY FULL and add it to `tables`",
            ),
            name: t.name,
            primary_key: t.primary_key,
            rows: t.rows,
        })
        .collect();
    let db = url
        .rsplit('/')
        .next()
        .and_then(|d| d.split('?').next())
        .filter(|d| !d.is_empty());
    let name = component_name(db.unwrap_or("postgres"));
    let mut lines = vec![format!("url = {}", quote(url))];
    if shown != url {
        lines.insert(
            0,
            "# The password is in this file (written with mode 0600); to keep it out, use"
                .to_owned(),
        );
        lines.insert(
            1,
            "# an environment variable instead: url = \"postgres://user:${PGPASSWORD}@host/db\""
                .to_owned(),
        );
    }
    lines.push(
        "# Needs wal_level = logical and a role with REPLICATION; `sluice check` verifies both."
            .to_owned(),
    );
    render(&shown, &name, "postgres", &lines, &tables)
}

pub async fn run(args: InitArgs) -> Result<ExitCode> {
    let (text, secret) = match target(&args.from)? {
        Target::Sqlite(db) => {
            let db =
                std::path::absolute(&db).with_context(|| format!("resolving {}", db.display()))?;
            (render_sqlite(&db)?, false)
        }
        Target::Postgres(url) => {
            let secret = sluice_config::redact_url(&url) != url;
            (render_postgres(&url).await?, secret)
        }
    };
    // The config we hand out must load.
    let target_path = if args.stdout {
        PathBuf::from("sluice.toml")
    } else {
        args.output.clone()
    };
    sluice_config::parse_str(&text, &target_path, sluice_config::Format::Toml, &|_| None)
        .context("the generated config does not validate (this is a bug in `sluice init`)")?;
    if args.stdout {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    if args.output.exists() && !args.force {
        bail!(
            "{} already exists (hint: pass --force to overwrite, or -o to pick another file)",
            args.output.display()
        );
    }
    write_config(&args.output, &text, secret)?;
    eprintln!("wrote {}", args.output.display());
    eprintln!(
        "next: sluice check -c {0} && sluice run -c {0}",
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_config(path: &Path, text: &str, secret: bool) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            target("sqlite:///tmp/a.db").unwrap(),
            Target::Sqlite("/tmp/a.db".into())
        );
        assert_eq!(
            target("sqlite:a.db").unwrap(),
            Target::Sqlite("a.db".into())
        );
        assert_eq!(target("a.db").unwrap(), Target::Sqlite("a.db".into()));
        assert_eq!(
            target("postgres://u@h/d").unwrap(),
            Target::Postgres("postgres://u@h/d".into())
        );
        assert!(
            target("mysql://x/y")
                .unwrap_err()
                .to_string()
                .contains("mysql://")
        );
        assert!(target("sqlite://").is_err());
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(component_name("my app"), "my_app");
    }
}
