//! `type = "stdout"`: JSON lines on standard output. "Durable" here means flushed to the
//! stdout file descriptor; a closed pipe is a permanent error.

use std::io::Write;

use async_trait::async_trait;
use sluice_config::StdoutSinkConfig;
use sluice_core::{Change, Error, Result, Sink};

/// Writes each change as one JSON line (or pretty JSON) to standard output.
#[derive(Debug)]
pub struct StdoutSink {
    pretty: bool,
    buf: Vec<u8>,
}

impl StdoutSink {
    /// A stdout sink.
    pub fn new(config: &StdoutSinkConfig) -> Self {
        Self {
            pretty: config.pretty,
            buf: Vec::new(),
        }
    }
}

#[async_trait]
impl Sink for StdoutSink {
    async fn write(&mut self, batch: &[Change]) -> Result<()> {
        self.buf.clear();
        crate::encode_lines(batch, self.pretty, &mut self.buf)?;
        let mut out = std::io::stdout().lock();
        out.write_all(&self.buf)
            .and_then(|()| out.flush())
            .map_err(|e| {
                Error::permanent("cannot write to standard output (is the pipe closed?)")
                    .with_source(e)
            })
    }
}
