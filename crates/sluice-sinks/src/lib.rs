//! sluice sinks, one module each. Every sink honours the [`sluice_core::Sink`] contract:
//! `write` returns only when the batch is durable, delivery is at-least-once, and order per
//! key is kept.
//!
//! - [`file::FileSink`]: JSON lines in the native event format, appended and fsynced.
//! - [`stdout::StdoutSink`]: JSON lines on standard output, flushed.
//! - [`null::NullSink`]: discards everything (benchmarks).

pub mod file;
pub mod null;
pub mod stdout;

use sluice_core::Change;

/// Append the native JSON line of every change to `out`.
pub fn encode_lines(batch: &[Change], pretty: bool, out: &mut Vec<u8>) -> sluice_core::Result<()> {
    for change in batch {
        let result = if pretty {
            serde_json::to_writer_pretty(&mut *out, change)
        } else {
            serde_json::to_writer(&mut *out, change)
        };
        result.map_err(|e| {
            sluice_core::Error::permanent(format!(
                "cannot encode a change of table \"{}\" as JSON",
                change.table
            ))
            .with_source(e)
        })?;
        out.push(b'\n');
    }
    Ok(())
}
