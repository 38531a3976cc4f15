//! `sluice init --from URL`: introspect a database and write a commented, working config.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cli::InitArgs;

/// The SQLite file named by `url` (`app.db`, `sqlite:app.db`, `sqlite:///abs/app.db`).
pub fn sqlite_path(url: &str) -> Result<PathBuf> {
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if let Some((scheme, _)) = url.split_once("://") {
        bail!(
            "cannot introspect {scheme}:// databases yet (hint: this build supports SQLite: \
             pass a file path or a sqlite:// URL)"
        );
    } else {
        url
    };
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() {
        bail!("no database path in {url:?} (hint: sqlite:///path/to/app.db or just app.db)");
    }
    Ok(PathBuf::from(path))
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

fn source_name(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("db");
    let name: String = stem
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

/// Render the config for the database at `db` (absolute).
pub fn render(db: &Path) -> Result<String> {
    let tables = sluice_sqlite::introspect(db)?;
    let (keyed, unkeyed): (Vec<_>, Vec<_>) = tables.iter().partition(|t| !t.primary_key.is_empty());
    if keyed.is_empty() {
        bail!(
            "no table in \"{}\" has a primary key (found {}) (hint: sluice keys every change by \
             primary key; add one to the tables you want to capture)",
            db.display(),
            if tables.is_empty() {
                "no tables".to_owned()
            } else {
                format!("{} table(s)", tables.len())
            }
        );
    }
    let name = source_name(db);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# sluice config for {}, written by `sluice init`.",
        db.display()
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
    let _ = writeln!(out, "type = \"sqlite\"");
    let _ = writeln!(out, "path = {}", quote(&db.display().to_string()));
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
            if t.rows == 1 { "" } else { "s" },
            t.primary_key.join(", ")
        );
    }
    let _ = writeln!(out, "]");
    if !unkeyed.is_empty() {
        let _ = writeln!(
            out,
            "# Left out: no primary key, so changes could not be keyed:"
        );
        for t in &unkeyed {
            let _ = writeln!(
                out,
                "#   {} ({} row{})",
                quote(&t.name),
                t.rows,
                if t.rows == 1 { "" } else { "s" }
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

pub fn run(args: InitArgs) -> Result<ExitCode> {
    let db = sqlite_path(&args.from)?;
    let db = std::path::absolute(&db).with_context(|| format!("resolving {}", db.display()))?;
    let text = render(&db)?;
    // The config we hand out must load.
    let target = if args.stdout {
        PathBuf::from("sluice.toml")
    } else {
        args.output.clone()
    };
    sluice_config::parse_str(&text, &target, sluice_config::Format::Toml, &|_| None)
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
    std::fs::write(&args.output, &text)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!("wrote {}", args.output.display());
    eprintln!(
        "next: sluice check -c {0} && sluice run -c {0}",
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            sqlite_path("sqlite:///tmp/a.db").unwrap(),
            PathBuf::from("/tmp/a.db")
        );
        assert_eq!(sqlite_path("sqlite:a.db").unwrap(), PathBuf::from("a.db"));
        assert_eq!(sqlite_path("a.db").unwrap(), PathBuf::from("a.db"));
        assert!(
            sqlite_path("postgres://x/y")
                .unwrap_err()
                .to_string()
                .contains("postgres://")
        );
        assert!(sqlite_path("sqlite://").is_err());
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(source_name(Path::new("/x/my app.db")), "my_app");
    }
}
