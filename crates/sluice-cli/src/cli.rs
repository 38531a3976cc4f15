//! Command-line definition.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Move data out of SQL databases the moment it changes.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about,
    long_about = "sluice captures row changes from SQL databases (snapshot first, then every \
insert, update and delete) and delivers them to sinks, checkpointing a source position only \
after every sink has durably accepted everything before it.",
    after_help = "Examples:\n  sluice demo                          # see it work, no setup needed\n  sluice init --from app.db            # write sluice.toml for a SQLite database\n  sluice check -c sluice.toml          # validate config and reach the databases\n  sluice run -c sluice.toml            # capture and deliver until Ctrl-C\n  sluice status -c sluice.toml         # checkpoints and lag\n\nLogs go to stderr; set SLUICE_LOG=debug (or any tracing filter) for more."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SLUICE_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the embedded quickstart: a sample SQLite database streamed to stdout while it changes
    #[command(
        after_help = "Examples:\n  sluice demo\n  sluice demo --changes 50 --interval-ms 100"
    )]
    Demo(DemoArgs),
    /// Introspect a database and write a commented, working config
    #[command(
        after_help = "Examples:\n  sluice init --from app.db\n  sluice init --from postgres://app:secret@127.0.0.1:5432/app\n  sluice init --from sqlite:///var/lib/app/app.db -o /etc/sluice/app.toml\n  sluice init --from app.db --stdout"
    )]
    Init(InitArgs),
    /// Validate the config, then reach every database and destination without changing anything
    #[command(
        after_help = "Examples:\n  sluice check -c sluice.toml\n\nExit status: 0 when everything is ready, 1 when something is missing or wrong, 2 for an invalid config."
    )]
    Check(ConfigArg),
    /// Create what capture needs (changelog tables, triggers); idempotent
    #[command(after_help = "Examples:\n  sluice setup -c sluice.toml")]
    Setup(ConfigArg),
    /// Remove what `setup` created; never touches your data; idempotent
    #[command(after_help = "Examples:\n  sluice teardown -c sluice.toml")]
    Teardown(ConfigArg),
    /// Capture and deliver changes until interrupted (Ctrl-C / SIGTERM drain and checkpoint)
    #[command(
        after_help = "Examples:\n  sluice run -c sluice.toml\n  sluice run -c sluice.toml --once     # deliver what is there now, then exit\n  sluice run -c sluice.toml --resnapshot public.users   # read a table again, then stream\n  SLUICE_LOG=debug sluice run -c sluice.toml"
    )]
    Run(RunArgs),
    /// Show checkpointed positions and how far each source is behind
    #[command(
        after_help = "Examples:\n  sluice status -c sluice.toml\n  sluice status -c sluice.toml --json"
    )]
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Config file (TOML, or YAML with a .yaml/.yml extension).
    #[arg(short, long, env = "SLUICE_CONFIG", default_value = "sluice.toml")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Exit once every source is idle and everything is delivered and checkpointed.
    #[arg(long)]
    pub once: bool,
    /// Read this table again (PostgreSQL sources) under a fresh snapshot before resuming the
    /// stream from the checkpoint; repeat for several tables.
    #[arg(long, value_name = "TABLE", value_parser = table_name)]
    pub resnapshot: Vec<String>,
}

/// `schema.table` or `table`, neither part empty.
fn table_name(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.splitn(2, '.').collect();
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err(format!(
            "{text:?} is not a table name (expected schema.table, or table for public.table)"
        ));
    }
    Ok(text.to_owned())
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Database to introspect: a SQLite file path or sqlite:// URL, or a postgres:// URL.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Where to write the config.
    #[arg(short, long, default_value = "sluice.toml", conflicts_with = "stdout")]
    pub output: PathBuf,
    /// Print the config instead of writing a file.
    #[arg(long)]
    pub stdout: bool,
    /// Overwrite an existing config file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Live changes to make while the pipeline runs.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub changes: u32,
    /// Pause between live changes, in milliseconds.
    #[arg(long, default_value_t = 150)]
    pub interval_ms: u64,
}
