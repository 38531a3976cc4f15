//! The `sluice` binary: the only crate that uses `anyhow` and exit codes.
//!
//! Exit status: 0 success, 1 runtime failure (or `check` found problems), 2 invalid config
//! or usage.

/// `println!` that ends the process quietly when standard output is a closed pipe
/// (`sluice check | head -1`) instead of panicking, and with status 1 on other write errors.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1);
        }
    }};
}

mod cli;
mod commands;
mod demo;
mod init;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};

/// mimalloc: faster than glibc's malloc for the many small, short-lived row allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An invalid config: exit status 2.
#[derive(Debug)]
pub struct InvalidConfig(pub sluice_config::ConfigError);

impl std::fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for InvalidConfig {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo narrates on stderr itself; keep routine logs out of its way.
    let default_level = if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    init_logging(cli.log_format, default_level);
    // Each PostgreSQL transaction streamed while in progress keeps a spill file open until it
    // ends: with many at once, the usual soft limit of 1,024 open files would be reached long
    // before the hard one.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Init(args) => init::run(args).await,
            Command::Check(args) => commands::check(&args).await,
            Command::Setup(args) => commands::setup(&args).await,
            Command::Teardown(args) => commands::teardown(&args).await,
            Command::Run(args) => {
                commands::run(&args.config.config, args.once, &args.resnapshot).await
            }
            Command::Status(args) => commands::status(&args.config.config, args.json).await,
        }
    });
    // Do not wait for blocked reader threads (stdin, sqlite polling) at exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            for c in new_causes(&*e) {
                eprintln!("  caused by: {c}");
            }
            if e.downcast_ref::<InvalidConfig>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The causes of `e` worth printing under it: each cause's text, skipping one already
/// contained in what was printed before (libraries often repeat their source in their own
/// message).
fn new_causes(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut seen = e.to_string();
    let mut out = Vec::new();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !seen.contains(&text) {
            seen.push('\n');
            seen.push_str(&text);
            out.push(text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::new_causes;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn repeated_causes_are_printed_once() {
        let e = E(
            "connecting failed: error connecting to server",
            Some(Box::new(E(
                "error connecting to server",
                Some(Box::new(E("Connection refused (os error 111)", None))),
            ))),
        );
        assert_eq!(new_causes(&e), ["Connection refused (os error 111)"]);
    }
}
