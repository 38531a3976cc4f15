//! `check`, `setup`, `teardown`, `run` and `status`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use sluice_config::Config;
use sluice_core::CheckpointStore;
use sluice_engine::{DataDirLock, FileCheckpointStore, RunOptions, registry, topology};

use crate::InvalidConfig;

/// Load and validate a config; errors exit with status 2.
pub fn load(path: &Path) -> Result<Config> {
    let config = sluice_config::load(path).map_err(InvalidConfig)?;
    if let Some((field, e)) = registry::validate(&config) {
        return Err(InvalidConfig(sluice_config::ConfigError {
            file: config.file.clone(),
            location: None,
            path: Some(field),
            message: e.message().to_owned(),
            hint: None,
        })
        .into());
    }
    Ok(config)
}

pub async fn check(config: &crate::cli::ConfigArg) -> Result<ExitCode> {
    let config = load(&config.config)?;
    say!("config {}: valid", config.file.display());
    let mut failed = 0;
    for (component, result) in registry::check(&config).await {
        match result {
            Ok(lines) => {
                // Missing capture objects are not errors: `setup` or `run` creates them.
                let missing = lines.iter().any(|l| l.starts_with("missing"));
                say!("{} {component}", if missing { "!" } else { "ok" });
                for line in lines {
                    say!("    {line}");
                }
                if missing {
                    say!("    (`sluice setup` creates what is missing; `sluice run` does too)");
                }
            }
            Err(e) => {
                failed += 1;
                say!("FAIL {component}: {e}");
                for c in crate::new_causes(&e) {
                    say!("    caused by: {c}");
                }
            }
        }
    }
    if failed > 0 {
        say!("{failed} component(s) need attention");
        return Ok(ExitCode::FAILURE);
    }
    say!(
        "ready: `sluice run -c {}` will start capturing",
        config.file.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn setup(config: &crate::cli::ConfigArg) -> Result<ExitCode> {
    let config = load(&config.config)?;
    for report in registry::setup(&config).await? {
        say!("{}:", report.component);
        for line in report.lines {
            say!("    {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn teardown(config: &crate::cli::ConfigArg) -> Result<ExitCode> {
    let config = load(&config.config)?;
    for report in registry::teardown(&config).await? {
        say!("{}:", report.component);
        for line in report.lines {
            say!("    {line}");
        }
    }
    say!(
        "note: checkpoints in {} are kept; delete them to start over with a new snapshot",
        config.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn run(path: &Path, once: bool, resnapshot: &[String]) -> Result<ExitCode> {
    let mut config = load(path)?;
    if !resnapshot.is_empty() {
        let mut any = false;
        for source in config.sources.values_mut() {
            if let sluice_config::SourceConfig::Postgres(pg) = source {
                pg.resnapshot = resnapshot.to_vec();
                any = true;
            }
        }
        if !any {
            anyhow::bail!(
                "--resnapshot needs a postgres source (hint: for a SQLite source, delete its \
                 checkpoint to take a new snapshot)"
            );
        }
    }
    let _lock = DataDirLock::acquire(&config.data_dir)?;
    // Streamed in-progress transactions wait for their commit beside the checkpoints.
    for source in config.sources.values_mut() {
        if let sluice_config::SourceConfig::Postgres(pg) = source {
            pg.spill_dir = Some(config.data_dir.join("spill"));
            pg.state_dir = Some(config.data_dir.join("state"));
        }
    }
    let store = Arc::new(FileCheckpointStore::new(&config.data_dir));
    let options = RunOptions {
        exit_when_idle: once,
        ..RunOptions::default()
    };
    let pipeline = topology::build(&config, store, options);
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown_tx.send_replace(true);
        // A second signal while draining exits at once; checkpoints are still consistent.
        wait_for_signal().await;
        eprintln!("second signal: exiting without draining");
        std::process::exit(130);
    });
    let summary = pipeline.run(shutdown_rx).await?;
    for (source, events, position) in summary.sources {
        let at = position.map_or_else(|| "nothing yet".to_owned(), |p| p.to_string());
        tracing::info!(source = %source, events, checkpoint = %at, "stopped cleanly");
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn status(path: &Path, json: bool) -> Result<ExitCode> {
    let config = load(path)?;
    let store = FileCheckpointStore::new(&config.data_dir);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut rows = Vec::new();
    for (name, source_config) in &config.sources {
        let checkpoint = store
            .load(name)
            .with_context(|| format!("reading the checkpoint of source \"{name}\""))?;
        let mut source = registry::build_source(name, source_config);
        let lag = source.lag(checkpoint.as_ref().map(|c| &c.position)).await;
        let (lag, lag_error) = match lag {
            Ok(l) => (l, None),
            Err(e) => (None, Some(e.to_string())),
        };
        rows.push(serde_json::json!({
            "source": name,
            "type": source_config.type_name(),
            "position": checkpoint.as_ref().map(|c| &c.position),
            "position_text": checkpoint.as_ref().map(|c| c.position.to_string()),
            "events": checkpoint.as_ref().map(|c| c.events),
            "checkpoint_age_s": checkpoint.as_ref().map(|c| now_ms.saturating_sub(c.updated_at_ms) as f64 / 1000.0),
            "lag_events": lag.and_then(|l| l.events),
            "lag_bytes": lag.and_then(|l| l.bytes),
            "lag_seconds": lag.and_then(|l| l.seconds),
            "lag_error": lag_error,
        }));
    }
    if json {
        say!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    say!("data dir: {}", config.data_dir.display());
    say!(
        "{:<16} {:<8} {:<20} {:>12} {:>12} {:>10} {:>14}",
        "SOURCE",
        "TYPE",
        "CHECKPOINT",
        "EVENTS",
        "SAVED AGO",
        "LAG",
        "LAG TIME"
    );
    for r in rows {
        let text = |k: &str| {
            r[k].as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| "-".to_owned())
        };
        let num = |k: &str| r[k].as_u64().map_or("-".to_owned(), |v| v.to_string());
        // Lag in changes when the source counts them, else in bytes of WAL.
        let lag = match (r["lag_events"].as_u64(), r["lag_bytes"].as_u64()) {
            (Some(events), _) => events.to_string(),
            (None, Some(bytes)) if bytes >= 1 << 20 => {
                format!("{:.1} MB", bytes as f64 / 1048576.0)
            }
            (None, Some(bytes)) => format!("{bytes} B"),
            (None, None) => "-".to_owned(),
        };
        let secs = |k: &str| r[k].as_f64().map_or("-".to_owned(), |v| format!("{v:.1}s"));
        say!(
            "{:<16} {:<8} {:<20} {:>12} {:>12} {:>10} {:>14}",
            text("source"),
            text("type"),
            r["position_text"].as_str().unwrap_or("none (not started)"),
            num("events"),
            secs("checkpoint_age_s"),
            lag,
            secs("lag_seconds"),
        );
        if let Some(e) = r["lag_error"].as_str() {
            say!("    lag unavailable: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
